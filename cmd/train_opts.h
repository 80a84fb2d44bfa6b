/* train_opts.h: mea-train's options, shared by its two source files. */
#ifndef MEA_TRAIN_OPTS_H
#define MEA_TRAIN_OPTS_H

#include "model.h"

enum { JOB_NONE, JOB_INIT, JOB_FULL, JOB_CALIBRATE, JOB_EXT, JOB_EVAL };
static const char *const job_names[] = {"", "init", "full", "calibrate", "ext", "eval", NULL};

struct train_opts {
	int job, verbose, quiet, resume, predictions;
	int test_flip;         /* init: store info test-flip=1 */
	int adaptive_from_main; /* ext: mea_arch_seed_adaptive before training */
	long threads, seed, split_seed, stop_after;
	const char *model, *out, *names, *mean, *std;
	struct mea_arch arch;
	double threshold, val_frac, share;
	struct mea_train_cfg cfg;
};

/* Parse and check the command line (exits with EXIT_USAGE on a fault). */
void train_parse_args(struct train_opts *o, int argc, char **argv);
/* The init job: write a randomly initialised model. */
int cmd_init(const struct train_opts *o);

#endif
