/* calib.c: choosing the hard classes and the entropy threshold T from a
 * trained main block's answers on held-out data (see MEANET.md). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mea.h"

int
mea_class_precision(int K, size_t n, const int32_t *pred, const int32_t *label,
		double *precision)
{
	size_t *hit = calloc((size_t)K, sizeof *hit), *all = calloc((size_t)K, sizeof *all);

	if (!hit || !all) {
		free(hit);
		free(all);
		return MEA_E_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (pred[i] < 0 || pred[i] >= K)
			continue;
		all[pred[i]]++;
		hit[pred[i]] += pred[i] == label[i];
	}
	for (int c = 0; c < K; c++)
		precision[c] = all[c] ? (double)hit[c] / (double)all[c] : 0.0;
	free(hit);
	free(all);
	return MEA_OK;
}

int
mea_hard_classes(int K, const double *precision, int nhard, int32_t *hard)
{
	/* Selection by repeated minimum: K is at most a few thousand and this
	 * runs once per calibration, so clarity beats a sort with a context. */
	char *taken = calloc((size_t)K, 1);

	if (!taken)
		return MEA_E_NOMEM;
	for (int k = 0; k < nhard && k < K; k++) {
		int best = -1;
		for (int c = 0; c < K; c++)
			if (!taken[c] && (best < 0 || precision[c] < precision[best]))
				best = c;
		hard[k] = best;
		taken[best] = 1;
	}
	free(taken);
	return MEA_OK;
}

static double
phi(double z)
{
	return 0.5 * erfc(-z / sqrt(2.0));
}

double
mea_threshold_fit(size_t n, const float *entropy, const uint8_t *correct)
{
	double sc = 0, sw = 0, sw2 = 0, mu_c, mu_w, sd_w, best_t = 0.8, best = -INFINITY;
	size_t nc = 0, nw = 0;

	for (size_t i = 0; i < n; i++) {
		if (correct[i]) {
			sc += entropy[i];
			nc++;
		} else {
			sw += entropy[i];
			sw2 += (double)entropy[i] * entropy[i];
			nw++;
		}
	}
	if (nc == 0 || nw < 2)
		return 0.8;
	mu_c = sc / (double)nc;
	mu_w = sw / (double)nw;
	sd_w = sqrt(fmax((sw2 - (double)nw * mu_w * mu_w) / (double)(nw - 1), 1e-12));
	if (mu_c <= 0)
		mu_c = 1e-6;
	for (int k = 1; k <= 19; k++) {
		double t = k / 10.0;
		double score = 0.6 * (1 - exp(-t / mu_c)) - 0.4 * phi((t - mu_w) / sd_w);
		if (score > best) {
			best = score;
			best_t = t;
		}
	}
	return best_t;
}

static int
cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

double
mea_threshold_share(size_t n, const float *entropy, double share)
{
	size_t above = (size_t)floor(share * (double)n), i;
	float *s;
	double t;

	if (n == 0 || above >= n)
		return 0.0;
	if (!(s = malloc(n * sizeof *s)))
		return NAN;
	memcpy(s, entropy, n * sizeof *s);
	qsort(s, n, sizeof *s, cmp_float);
	/* Everything strictly above s[n - above - 1] is at most `above`
	 * entries; step down past ties is not needed since ties stay below. */
	i = n - above - 1;
	t = s[i];
	free(s);
	return t;
}
