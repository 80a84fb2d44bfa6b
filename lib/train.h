/*
 * train.h: what training and calibration need outside the network
 * itself (part of libmea; included by mea.h): a seeded random number
 * generator, a labelled image set held in memory as u8, batches with
 * augmentation, hard-class selection and threshold picking.
 */
#ifndef MEA_TRAIN_H
#define MEA_TRAIN_H

#include <stddef.h>
#include <stdint.h>

struct mea_err;
struct mea_reader;

/* ---------------------------------------------------------------- rng */

/* xoshiro128+-style generator state (own implementation), so results do
 * not depend on the C library's rand(). */
struct mea_rng {
	uint64_t s[2];
};
void mea_rng_seed(struct mea_rng *r, uint64_t seed);
uint64_t mea_rng_next(struct mea_rng *r);
uint32_t mea_rng_below(struct mea_rng *r, uint32_t n); /* uniform 0..n-1 */
float mea_rng_uniform(struct mea_rng *r);              /* [0, 1) */
float mea_rng_normal(struct mea_rng *r);               /* N(0, 1) */
void mea_rng_shuffle(struct mea_rng *r, int32_t *a, size_t n);

/* ------------------------------------------------------------ dataset */

/* Labelled images of one shape, kept as u8 [n][C][H][W]. */
struct mea_dataset {
	size_t n;
	int C, H, W;
	uint8_t *pix;     /* owned */
	int32_t *label;   /* owned; all >= 0 */
	size_t cap;
};

/* Read every record of rd (each needs a u8 "image" of one shape and an
 * int "label" in 0..nclasses-1) and append it to ds.  Refuses an empty
 * stream, unlabelled records and mismatched shapes, naming the record. */
int mea_dataset_read(struct mea_dataset *ds, struct mea_reader *rd, int nclasses,
		struct mea_err *e);
void mea_dataset_free(struct mea_dataset *ds);
/* Split 0..n-1 into a held-out part of round(n * frac) indices and the
 * rest, stratified by nothing but a seeded shuffle; both lists are
 * sorted.  Caller frees *train and *val. */
int mea_dataset_split(const struct mea_dataset *ds, double frac, uint64_t seed,
		int32_t **train, size_t *ntrain, int32_t **val, size_t *nval);

/* Augmentation applied while a batch is filled. */
struct mea_augment {
	int pad;      /* random crop from the image padded with pad zeros */
	int flip;     /* random horizontal flip with probability 1/2 */
};

/* Fill x[n][C][H][W] with (pixel/255 - mean[c]) / std[c] of the images
 * idx[0..n-1] (augmented when aug is not NULL, drawing from rng) and
 * y[n] with their labels (y may be NULL). */
void mea_dataset_batch(const struct mea_dataset *ds, const int32_t *idx, int n,
		const float *mean, const float *std, const struct mea_augment *aug,
		struct mea_rng *rng, float *x, int32_t *y);
/* Per-channel mean and standard deviation of pixel/255 over ds. */
void mea_dataset_stats(const struct mea_dataset *ds, float *mean, float *std);

/* -------------------------------------------------------- calibration */

/* Per-class precision of predictions pred[n] against label[n]: for each
 * class, the share of the inputs predicted as it that truly are it
 * (a class never predicted has precision 0: it is never trusted). */
int mea_class_precision(int K, size_t n, const int32_t *pred, const int32_t *label,
		double *precision);
/* The nhard classes of lowest precision, hardest first (ties broken by
 * class id), into hard[nhard]. */
int mea_hard_classes(int K, const double *precision, int nhard, int32_t *hard);

/* The authors' threshold: fit the entropies of correct predictions as an
 * exponential (mean mu_c) and of wrong ones as a Gaussian (mu_w, sigma_w),
 * scan T = 0.1 .. 1.9 in steps of 0.1 and return the T maximising
 *   0.6 (1 - exp(-T / mu_c)) - 0.4 Phi((T - mu_w) / sigma_w).
 * Falls back to 0.8 (the published default) when either group is empty. */
double mea_threshold_fit(size_t n, const float *entropy, const uint8_t *correct);
/* The smallest T such that at most share * n entropies exceed T. */
double mea_threshold_share(size_t n, const float *entropy, double share);

#endif
