/* data.c: a labelled image set in memory, its split, and batches with
 * augmentation for training. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mea.h"

void
mea_dataset_free(struct mea_dataset *ds)
{
	free(ds->pix);
	free(ds->label);
	free(ds->soft);
	memset(ds, 0, sizeof *ds);
}

static int
grow(struct mea_dataset *ds, size_t plane, struct mea_err *e)
{
	size_t ncap = ds->cap ? ds->cap * 2 : 1024, nbytes;
	uint8_t *pix;
	int32_t *lab;

	if (mea_mul_size(ncap, plane, &nbytes))
		return mea_errf(e, MEA_E_LIMIT, "dataset too large");
	if (!(pix = realloc(ds->pix, nbytes)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory for %zu images", ncap);
	ds->pix = pix;
	if (!(lab = realloc(ds->label, ncap * sizeof *lab)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory for %zu labels", ncap);
	ds->label = lab;
	if (ds->K > 0) {
		float *soft = realloc(ds->soft, ncap * (size_t)ds->K * sizeof *soft);
		if (!soft)
			return mea_errf(e, MEA_E_NOMEM, "out of memory for %zu teacher rows", ncap);
		ds->soft = soft;
	}
	ds->cap = ncap;
	return MEA_OK;
}

/* Check one record and add it; `where` names it in messages. */
static int
add_record(struct mea_dataset *ds, const struct mea_record *r, int nclasses,
		const char *where, struct mea_err *e)
{
	const struct mea_tensor *t = mea_tensor_get(r, MEA_T_IMAGE);
	int64_t label;
	size_t plane;

	if (!t || t->dtype != MEA_U8 || t->ndim != 3)
		return mea_errf(e, MEA_E_FORMAT, "%s: no u8 [C,H,W] image tensor", where);
	if (!mea_field_int(r, MEA_F_LABEL, &label))
		return mea_errf(e, MEA_E_FORMAT, "%s: no label (training needs labelled records)", where);
	if (label < 0 || label >= nclasses)
		return mea_errf(e, MEA_E_FORMAT, "%s: label %lld outside 0..%d", where,
				(long long)label, nclasses - 1);
	const struct mea_tensor *soft = mea_tensor_get(r, "cloud_logits");
	if (soft && (soft->dtype != MEA_F32 || soft->nelem != (size_t)nclasses))
		return mea_errf(e, MEA_E_FORMAT, "%s: cloud_logits is not %d f32 values", where,
				nclasses);
	for (size_t k = 0; soft && k < soft->nelem; k++)
		if (!isfinite(((const float *)soft->data)[k]))
			return mea_errf(e, MEA_E_FORMAT, "%s: cloud_logits[%zu] is not finite",
					where, k);
	if (ds->n == 0 && ds->cap == 0) {
		ds->C = (int)t->dim[0];
		ds->H = (int)t->dim[1];
		ds->W = (int)t->dim[2];
		ds->K = soft ? nclasses : 0;
	} else if ((soft != NULL) != (ds->K > 0)) {
		return mea_errf(e, MEA_E_FORMAT, "%s: %s cloud_logits, the earlier records %s",
				where, soft ? "has" : "has no", soft ? "had none" : "had them");
	} else if (t->dim[0] != (uint32_t)ds->C || t->dim[1] != (uint32_t)ds->H ||
			t->dim[2] != (uint32_t)ds->W) {
		return mea_errf(e, MEA_E_FORMAT, "%s: image is %ux%ux%u, earlier ones %dx%dx%d",
				where, (unsigned)t->dim[0], (unsigned)t->dim[1], (unsigned)t->dim[2],
				ds->C, ds->H, ds->W);
	}
	plane = t->nbytes;
	if (ds->n == ds->cap && grow(ds, plane, e))
		return e->code;
	memcpy(ds->pix + ds->n * plane, t->data, plane);
	if (soft)
		memcpy(ds->soft + ds->n * (size_t)ds->K, soft->data, soft->nbytes);
	ds->label[ds->n++] = (int32_t)label;
	return MEA_OK;
}

int
mea_dataset_read(struct mea_dataset *ds, struct mea_reader *rd, int nclasses,
		struct mea_err *e)
{
	struct mea_record r;
	size_t before = ds->n;
	int rc;

	mea_record_init(&r);
	while ((rc = mea_read(rd, &r, e)) == MEA_OK) {
		char where[MEA_MAX_STR + 64];
		const char *id = mea_field_str(&r, MEA_F_ID);
		snprintf(where, sizeof where, "%s: record %llu%s%s%s", rd->name,
				(unsigned long long)rd->nrec - 1, id ? " (" : "", id ? id : "", id ? ")" : "");
		if ((rc = add_record(ds, &r, nclasses, where, e)))
			break;
	}
	mea_record_clear(&r);
	if (rc != MEA_EOF)
		return rc;
	if (ds->n == before)
		return mea_errf(e, MEA_E_FORMAT, "%s: no records (an empty training stream)", rd->name);
	return MEA_OK;
}

static int
cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

int
mea_dataset_split(const struct mea_dataset *ds, double frac, uint64_t seed,
		int32_t **train, size_t *ntrain, int32_t **val, size_t *nval)
{
	size_t n = ds->n, nv = (size_t)llround(frac * (double)n);
	int32_t *all = malloc((n ? n : 1) * sizeof *all);
	struct mea_rng rng;

	if (!all)
		return MEA_E_NOMEM;
	if (nv > n)
		nv = n;
	for (size_t i = 0; i < n; i++)
		all[i] = (int32_t)i;
	mea_rng_seed(&rng, seed);
	mea_rng_shuffle(&rng, all, n);
	*val = malloc((nv ? nv : 1) * sizeof **val);
	*train = malloc((n - nv ? n - nv : 1) * sizeof **train);
	if (!*val || !*train) {
		free(*val);
		free(*train);
		free(all);
		return MEA_E_NOMEM;
	}
	memcpy(*val, all, nv * sizeof *all);
	memcpy(*train, all + nv, (n - nv) * sizeof *all);
	qsort(*val, nv, sizeof **val, cmp_i32);
	qsort(*train, n - nv, sizeof **train, cmp_i32);
	*nval = nv;
	*ntrain = n - nv;
	free(all);
	return MEA_OK;
}

/* Random erasing: with probability aug->erase, one rectangle of the
 * normalised image x[C][H][W] becomes 0, the dataset's mean, in every
 * channel.  Draws nothing when erase is 0, so that runs without it keep
 * their random stream.  Ten tries at a rectangle that fits, then none. */
static void
erase_rect(float *x, int C, int H, int W, float erase, struct mea_rng *rng)
{
	if (erase <= 0 || mea_rng_uniform(rng) >= erase)
		return;
	for (int t = 0; t < 10; t++) {
		double area = (0.02 + 0.38 * mea_rng_uniform(rng)) * H * W;
		double ratio = exp(log(0.3) + (log(3.3) - log(0.3)) * mea_rng_uniform(rng));
		int h = (int)lround(sqrt(area * ratio)), w = (int)lround(sqrt(area / ratio));
		if (h < 1 || w < 1 || h > H || w > W)
			continue;
		int y0 = (int)mea_rng_below(rng, (uint32_t)(H - h + 1));
		int x0 = (int)mea_rng_below(rng, (uint32_t)(W - w + 1));
		for (int c = 0; c < C; c++)
			for (int i = y0; i < y0 + h; i++)
				memset(x + ((size_t)c * H + i) * W + x0, 0, (size_t)w * sizeof *x);
		return;
	}
}

void
mea_dataset_batch(const struct mea_dataset *ds, const int32_t *idx, int n,
		const float *mean, const float *std, const struct mea_augment *aug,
		struct mea_rng *rng, float *x, int32_t *y)
{
	int C = ds->C, H = ds->H, W = ds->W;
	size_t plane = (size_t)C * H * W;

	for (int b = 0; b < n; b++) {
		const uint8_t *src = ds->pix + (size_t)idx[b] * plane;
		float *dst = x + (size_t)b * plane;
		int dy = 0, dx = 0, flip = 0;

		if (aug && aug->pad > 0) {
			dy = (int)mea_rng_below(rng, 2u * aug->pad + 1) - aug->pad;
			dx = (int)mea_rng_below(rng, 2u * aug->pad + 1) - aug->pad;
		}
		if (aug && aug->flip)
			flip = (int)mea_rng_below(rng, 2);
		for (int c = 0; c < C; c++) {
			float scale = 1.0f / (255.0f * std[c]), shift = -mean[c] / std[c];
			for (int i = 0; i < H; i++) {
				int si = i + dy;
				for (int j = 0; j < W; j++) {
					int sj = (flip ? W - 1 - j : j) + dx;
					/* Pixels shifted in from the zero padding are black
					 * before normalisation, as in torchvision's crop. */
					float v = si >= 0 && si < H && sj >= 0 && sj < W
						? src[((size_t)c * H + si) * W + sj] : 0.0f;
					dst[((size_t)c * H + i) * W + j] = v * scale + shift;
				}
			}
		}
		if (aug)
			erase_rect(dst, C, H, W, aug->erase, rng);
		if (y)
			y[b] = ds->label[idx[b]];
	}
}

void
mea_dataset_stats(const struct mea_dataset *ds, float *mean, float *std)
{
	size_t hw = (size_t)ds->H * ds->W;

	for (int c = 0; c < ds->C; c++) {
		double s = 0, s2 = 0, cnt = (double)ds->n * (double)hw;
		for (size_t i = 0; i < ds->n; i++) {
			const uint8_t *p = ds->pix + (i * ds->C + c) * hw;
			for (size_t k = 0; k < hw; k++) {
				s += p[k];
				s2 += (double)p[k] * p[k];
			}
		}
		double m = cnt > 0 ? s / cnt : 0, v = cnt > 0 ? s2 / cnt - m * m : 0;
		mean[c] = (float)(m / 255.0);
		std[c] = (float)(sqrt(v > 0 ? v : 0) / 255.0);
		if (std[c] < 1e-6f)
			std[c] = 1.0f;
	}
}
