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
	float *soft;      /* owned: [n][K] a teacher's logits, from a "cloud_logits"
	                     tensor in every record (mea-main --cloud), or NULL
	                     when the records have none */
	int K;            /* classes of soft */
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
	float erase;  /* probability of random erasing (Zhong et al. 2017): a
	                 rectangle of 2% to 40% of the image, aspect 0.3 to 3.3,
	                 set to the mean (0 after normalisation) */
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

/* ------------------------------------------------------------ training */

struct mea_model;

/* What one training run does (see mea-train(1) for the defaults). */
struct mea_train_cfg {
	int epochs;            /* total epochs of the schedule */
	int batch;
	float lr, momentum, wd;
	int nesterov;
	int cosine;            /* 1: cosine decay to 0; 0: steps at milestones */
	int nmilestones;
	float milestones[8];   /* fractions of the schedule, e.g. 0.5 0.75 */
	float gamma;           /* step factor, e.g. 0.1 */
	float warmup;          /* epochs of linear warm-up from lr/10 */
	float smooth;          /* label smoothing, 0 for plain cross-entropy */
	float distill;         /* weight of the teacher's soft targets (the
	                          dataset's soft logits; mea_distill), 0: none */
	float tau;             /* their temperature */
	float feature_drop;    /* channel dropout of frozen features entering a
	                          trained concatenation (mea_plan_set_drop), 0: none */
	struct mea_augment aug;
	uint64_t seed;
	int mask;              /* MEA_BLOCK_BIT()s of the blocks to train */
	int out_node;          /* the node whose output the loss reads */
	int workers;           /* data-parallel threads (see trainer.c); 0 or 1: one */
	int row_shift;         /* convolutions by row shifts (mea_plan_opts) */
};

struct mea_train_status {
	int epoch, epochs;     /* epoch is 0-based and running */
	size_t step, steps;    /* within the epoch */
	double loss, acc;      /* running means over the epoch so far */
	double lr;
	double seconds;        /* since this run started */
	int epoch_done;        /* 1 on the last call of an epoch */
};
/* Called after every step; a non-zero return stops training after this
 * step (the status is then returned as MEA_OK with *stopped set). */
typedef int mea_train_cb(void *ctx, const struct mea_train_status *st);

/* The learning rate of step `step` (counted from the start of the
 * schedule) of `steps_per_epoch`. */
double mea_train_lr(const struct mea_train_cfg *cfg, size_t step, size_t steps_per_epoch);

/*
 * What a training job of m trains and scores: the main block over all
 * classes (ext 0), or MEANet's adaptive and extension blocks over the
 * hard classes (ext 1), set as cfg->mask and cfg->out_node.  For the
 * latter *remap (the caller frees it) maps each class to its place among
 * the hard classes, -1 for an easy one, for mea_train; otherwise it is
 * NULL.  MEA_E_ARG when ext is asked of a model without an extension
 * block or hard classes.
 */
int mea_train_target(const struct mea_model *m, int ext, struct mea_train_cfg *cfg,
		int32_t **remap, struct mea_err *e);

/*
 * Train the blocks in cfg->mask of m on the images idx[0..n-1] of ds,
 * epochs first_epoch .. cfg->epochs-1.  Labels go through remap (label
 * -> target class, -1 to leave the image out) when it is not NULL.
 * Shuffling and augmentation of epoch k are drawn from seed and k alone,
 * so a run resumed at an epoch boundary repeats the uninterrupted run
 * exactly.  Momentum buffers live in m as state tensors.  A non-finite
 * loss stops with MEA_E_FORMAT naming the epoch and step.
 */
int mea_train(struct mea_model *m, const struct mea_dataset *ds, const int32_t *idx,
		size_t n, const int32_t *remap, const struct mea_train_cfg *cfg,
		int first_epoch, mea_train_cb *cb, void *ctx, struct mea_err *e);

/* Run node out_node of m in inference mode on images idx[0..n-1] and
 * store the argmax of each in pred[] and (when not NULL) the softmax
 * entropy in entropy[].  Up to `threads` threads share the batches;
 * each batch holds the same images whatever their number, so the
 * answers do not depend on it (OpenBLAS should then be single-threaded,
 * mea_set_threads(1)).  The other evaluations below pass it on. */
int mea_eval(struct mea_model *m, const struct mea_dataset *ds, const int32_t *idx,
		size_t n, int out_node, int batch, int threads, int32_t *pred, float *entropy,
		struct mea_err *e);

/* What calibration measured on the held-out images. */
struct mea_calib_report {
	size_t n;              /* held-out images */
	double accuracy;       /* main block accuracy on them */
	double t_fit;          /* the authors' entropy-fit T */
	double t_share;        /* T for the requested cloud share (NAN if none) */
	double share_at_fit;   /* share of held-out images above t_fit */
};

/* From the main block's answers on held-out images: store the nhard
 * classes of lowest precision (hardest first) in m, and the threshold T:
 * the authors' fit, or, when share >= 0, the T that sends at most that
 * share of the held-out images to the cloud.  precision[K] (may be NULL)
 * gets each class's precision. */
int mea_calibrate(struct mea_model *m, const struct mea_dataset *ds, const int32_t *idx,
		size_t n, double share, int threads, double *precision,
		struct mea_calib_report *rep, struct mea_err *e);

/* The share of the images idx[0..n-1] that node out_node gets right,
 * in its own label space: labels go through remap (-1 leaves the image
 * out) when it is not NULL.  NAN when no image is left. */
int mea_eval_accuracy(struct mea_model *m, const struct mea_dataset *ds, const int32_t *idx,
		size_t n, int out_node, const int32_t *remap, int threads, double *acc,
		struct mea_err *e);

/* Accuracy of a MEANet edge model on labelled images, without a cloud. */
struct mea_edge_report {
	size_t n;
	size_t main_hits;      /* main block alone */
	size_t edge_hits;      /* main, then the extension for hard predictions */
	size_t hard_n;         /* images whose true class is hard */
	size_t hard_main_hits, hard_edge_hits;
	size_t above_t;        /* images whose main entropy exceeds m->threshold */
};
/* Without an extension, edge equals main.  When the arrays are not NULL
 * they get each image's main-block answer, its entropy and the edge's
 * answer. */
int mea_eval_edge(struct mea_model *m, const struct mea_dataset *ds, const int32_t *idx,
		size_t n, int threads, struct mea_edge_report *rep, int32_t *main_pred,
		float *entropy, int32_t *edge_pred, struct mea_err *e);
