/* calib_test: hard-class selection, threshold picking, the seeded RNG and
 * training batches, each against values worked out by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mea.h"

static int failures;

#define CHECK(cond, ...) do { \
	if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
		printf(__VA_ARGS__); putchar('\n'); } } while (0)

static void
test_precision_and_hard(void)
{
	/* class 0: predicted 4 times, 2 right (0.5); class 1: 2 of 2 (1.0);
	 * class 2: 1 of 3 (0.33); class 3: never predicted (0). */
	int32_t pred[] = {0, 0, 0, 0, 1, 1, 2, 2, 2};
	int32_t lab[]  = {0, 0, 1, 2, 1, 1, 2, 0, 3};
	double p[4];
	int32_t hard[2];

	CHECK(mea_class_precision(4, 9, pred, lab, p) == 0, "precision failed");
	CHECK(fabs(p[0] - 0.5) < 1e-12 && fabs(p[1] - 1) < 1e-12 &&
			fabs(p[2] - 1.0 / 3) < 1e-12 && p[3] == 0, "precision %g %g %g %g",
			p[0], p[1], p[2], p[3]);
	CHECK(mea_hard_classes(4, p, 2, hard) == 0, "hard failed");
	CHECK(hard[0] == 3 && hard[1] == 2, "hard classes %d %d, want 3 2", hard[0], hard[1]);
	printf("ok precision and hard classes\n");
}

static void
test_thresholds(void)
{
	float h[10] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f};
	uint8_t ok[10] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 0};
	double t;

	t = mea_threshold_share(10, h, 0.2);    /* 2 of 10 above */
	CHECK(fabsf((float)t - 0.8f) < 1e-6, "share 20%%: T = %g, want 0.8", t);
	t = mea_threshold_share(10, h, 0.0);
	CHECK(fabsf((float)t - 1.0f) < 1e-6, "share 0: T = %g, want 1.0", t);
	t = mea_threshold_share(10, h, 1.0);
	CHECK(t == 0.0, "share 100%%: T = %g, want 0", t);
	/* correct: mean 0.35; wrong: mean 0.85, sd 0.129.  Evaluate the
	 * objective by hand at every grid point and compare. */
	double best = -1e9, bt = 0;
	for (int k = 1; k <= 19; k++) {
		double T = k / 10.0, sd = sqrt((0.0225 + 0.0025 + 0.0025 + 0.0225) / 3);
		double s = 0.6 * (1 - exp(-T / 0.35)) - 0.4 * 0.5 * erfc(-(T - 0.85) / sd / sqrt(2));
		if (s > best)
			best = s, bt = T;
	}
	t = mea_threshold_fit(10, h, ok);
	CHECK(fabs(t - bt) < 1e-9, "fit T = %g, want %g", t, bt);
	CHECK(mea_threshold_fit(4, h, ok) == 0.8, "no wrong answers: want the default 0.8");
	printf("ok thresholds (fit picked %.1f)\n", t);
}

static void
test_rng(void)
{
	struct mea_rng a, b;
	int same = 1, inrange = 1;
	double s = 0, s2 = 0;

	mea_rng_seed(&a, 42);
	mea_rng_seed(&b, 42);
	for (int i = 0; i < 1000; i++)
		same &= mea_rng_next(&a) == mea_rng_next(&b);
	CHECK(same, "same seed gave different numbers");
	for (int i = 0; i < 100000; i++) {
		float u = mea_rng_uniform(&a), z = mea_rng_normal(&a);
		inrange &= u >= 0 && u < 1 && mea_rng_below(&a, 7) < 7;
		s += z;
		s2 += (double)z * z;
	}
	CHECK(inrange, "uniform or below out of range");
	CHECK(fabs(s / 1e5) < 0.02 && fabs(s2 / 1e5 - 1) < 0.02, "normal mean %g var %g",
			s / 1e5, s2 / 1e5);
	printf("ok rng\n");
}

static void
test_batch(void)
{
	struct mea_dataset ds = {0};
	uint8_t pix[2 * 1 * 2 * 3] = {0, 51, 102, 153, 204, 255,   10, 20, 30, 40, 50, 60};
	int32_t lab[2] = {4, 7}, idx[2] = {1, 0}, y[2];
	float x[12], mean = 0.5f, sd = 0.25f;
	struct mea_augment flip = {0, 1, 0};
	struct mea_rng rng;

	ds.n = 2; ds.C = 1; ds.H = 2; ds.W = 3; ds.pix = pix; ds.label = lab;
	mea_dataset_batch(&ds, idx, 2, &mean, &sd, NULL, NULL, x, y);
	CHECK(y[0] == 7 && y[1] == 4, "labels %d %d", y[0], y[1]);
	CHECK(fabsf(x[6] - (0 / 255.0f - 0.5f) / 0.25f) < 1e-6 &&
			fabsf(x[11] - (1 - 0.5f) / 0.25f) < 1e-6, "normalised values %g %g", x[6], x[11]);
	/* A flipped row reads right to left; find one flip among a few draws. */
	int seen_flip = 0;
	mea_rng_seed(&rng, 1);
	for (int k = 0; k < 20 && !seen_flip; k++) {
		mea_dataset_batch(&ds, idx + 1, 1, &mean, &sd, &flip, &rng, x, NULL);
		seen_flip = fabsf(x[0] - (102 / 255.0f - 0.5f) / 0.25f) < 1e-6;
	}
	CHECK(seen_flip, "no horizontal flip in 20 draws");
	printf("ok batch\n");
}

/* Random erasing zeroes one rectangle of 2% to 40% of the image, in
 * every channel; at probability 0 it draws nothing from the generator,
 * so runs without it are unchanged. */
static void
test_erase(void)
{
	enum { C = 2, H = 10, W = 12 };
	static uint8_t pix[C * H * W];
	struct mea_dataset ds = {0};
	int32_t lab = 0, idx = 0;
	float x[C * H * W], mean[C] = {0, 0}, sd[C] = {1, 1};
	struct mea_augment none = {0, 1, 0}, all = {0, 0, 1};
	struct mea_rng r1, r2;
	int bad = 0, minarea = H * W, maxarea = 0;

	memset(pix, 255, sizeof pix);
	ds.n = 1; ds.C = C; ds.H = H; ds.W = W; ds.pix = pix; ds.label = &lab;
	mea_rng_seed(&r1, 3);
	mea_rng_seed(&r2, 3);
	mea_dataset_batch(&ds, &idx, 1, mean, sd, &none, &r1, x, NULL);
	(void)mea_rng_below(&r2, 2);
	CHECK(mea_rng_next(&r1) == mea_rng_next(&r2), "erase 0 drew from the generator");
	for (int k = 0; k < 200; k++) {
		int y0 = H, y1 = -1, x0 = W, x1 = -1, n = 0;
		mea_dataset_batch(&ds, &idx, 1, mean, sd, &all, &r1, x, NULL);
		for (int i = 0; i < H; i++)
			for (int j = 0; j < W; j++)
				if (x[i * W + j] == 0) {
					n++;
					y0 = i < y0 ? i : y0; y1 = i > y1 ? i : y1;
					x0 = j < x0 ? j : x0; x1 = j > x1 ? j : x1;
				}
		/* One solid rectangle, the same in the second channel. */
		bad += n == 0 || n != (y1 - y0 + 1) * (x1 - x0 + 1) ||
			memcmp(x, x + H * W, sizeof x / 2) != 0;
		minarea = n < minarea ? n : minarea;
		maxarea = n > maxarea ? n : maxarea;
	}
	CHECK(bad == 0, "%d of 200 draws not one erased rectangle in both channels", bad);
	CHECK(minarea >= 1 && maxarea <= 0.4 * H * W + 4 && maxarea > 0.2 * H * W,
			"erased areas %d..%d of %d pixels", minarea, maxarea, H * W);
	printf("ok erase\n");
}

int
main(void)
{
	test_precision_and_hard();
	test_thresholds();
	test_rng();
	test_batch();
	test_erase();
	if (failures)
		printf("%d failures\n", failures);
	return failures != 0;
}
