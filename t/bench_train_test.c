/*
 * bench_train_test: training (or inference) throughput of a named
 * architecture through the graph engine, on random data, so that no
 * dataset has to be read.  Not a test (it prints no TAP and is not run
 * by the suites); share/bench.sh runs it.
 *
 *   bench_train_test [-i] [-r] ARCH CxHxW CLASSES BATCH STEPS
 *
 * A training step is what lib/trainer.c does for one batch: copy the
 * inputs in, forward, zero the gradients, cross-entropy, backward, and
 * SGD with momentum over every trained parameter.  With -i the plan is
 * an inference plan and a step is one forward pass (for profiling the
 * kernels without mea-main's record handling).  With -r a training plan
 * takes the row shift (mea-train --row-shift).
 *
 * Prints the BLAS configuration, then one line with images/s and
 * GFLOP/s for the best and the median step (two untimed warm-up steps
 * first), in wall-clock time and, for a noisy machine where other jobs
 * take the core away, in the process's CPU time.  FLOPs count a multiply-add as 2; a training step counts 3x
 * the forward MACs (forward, then the two products of backward:
 * gradients of inputs and of weights), the usual convention.
 * One OpenBLAS thread unless MEA_THREADS says otherwise, as in the
 * programs (OpenBLAS alone would take every core).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mea.h"
#include "model.h"

static double
clock_s(clockid_t id)
{
	struct timespec t;
	clock_gettime(id, &t);
	return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void
check(int rc, const struct mea_err *e)
{
	if (rc) {
		fprintf(stderr, "bench_train_test: %s\n", e->msg);
		exit(4);
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void
usage(void)
{
	fputs("usage: bench_train_test [-i] [-r] ARCH CxHxW CLASSES BATCH STEPS\n", stderr);
	exit(2);
}

/* One SGD step, as trainer.c's sgd_step does it (its settings). */
static void
sgd(struct mea_model *m, struct mea_plan *p)
{
	for (int t = 0; t < m->ntensors; t++) {
		struct mea_weight *w = &m->tensor[t];
		float *g = mea_plan_param_grad(p, t);
		int s;
		if (w->kind != MEA_TK_PARAM || !g || (s = mea_model_state_of(m, t)) < 0)
			continue;
		mea_sgd_step(w->nelem, w->data, g, m->tensor[s].data, 0.01f, 0.9f, 5e-4f, 0);
	}
}

int
main(int argc, char **argv)
{
	struct mea_arch a = {0};
	struct mea_model *m;
	struct mea_plan *p;
	struct mea_plan_opts po = { .ninputs = 1, .noutputs = 1 };
	struct mea_err e;
	struct mea_rng r;
	int infer = 0, batch, steps;
	const char *t = getenv("MEA_THREADS");

	for (; argc > 1 && argv[1][0] == '-'; argc--, argv++)
		if (strcmp(argv[1], "-i") == 0)
			infer = 1;
		else if (strcmp(argv[1], "-r") == 0)
			po.row_shift = 1;
		else
			usage();
	if (argc != 6 || sscanf(argv[2], "%dx%dx%d", &a.in_c, &a.in_h, &a.in_w) != 3)
		usage();
	a.name = argv[1];
	a.nclasses = atoi(argv[3]);
	batch = atoi(argv[4]);
	steps = atoi(argv[5]);
	if (a.nclasses < 1 || batch < 1 || steps < 1)
		usage();
	mea_set_threads(t && atoi(t) > 0 ? atoi(t) : 1);

	check(mea_arch_build(&m, &a, &e), &e);
	mea_model_init(m, 1, MEA_BLOCKS_ALL);
	if (!infer)
		check(mea_model_add_state(m, MEA_BLOCK_BIT(MEA_BLOCK_MAIN), &e), &e);
	po.batch = batch;
	po.output[0] = m->node_logits;
	po.train_mask = infer ? 0 : MEA_BLOCK_BIT(MEA_BLOCK_MAIN);
	check(mea_plan_new(&p, m, &po, &e), &e);

	size_t per = (size_t)a.in_c * a.in_h * a.in_w;
	float *x = malloc((size_t)batch * per * sizeof *x);
	int32_t *y = malloc((size_t)batch * sizeof *y);
	double *dt = malloc((size_t)steps * sizeof *dt);
	double *dc = malloc((size_t)steps * sizeof *dc);
	if (!x || !y || !dt || !dc) {
		fprintf(stderr, "bench_train_test: out of memory\n");
		return 4;
	}
	mea_rng_seed(&r, 1);
	for (size_t i = 0; i < (size_t)batch * per; i++)
		x[i] = mea_rng_normal(&r);
	for (int i = 0; i < batch; i++)
		y[i] = (int32_t)mea_rng_below(&r, (uint32_t)a.nclasses);

	for (int s = -2; s < steps; s++) {   /* s < 0 warms up */
		double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
		memcpy(mea_plan_value(p, 0), x, (size_t)batch * per * sizeof *x);
		check(mea_plan_forward(p, batch, &e), &e);
		if (!infer) {
			mea_plan_zero_grad(p);
			mea_plan_xent(p, m->node_logits, y, 0);
			check(mea_plan_backward(p, &e), &e);
			sgd(m, p);
		}
		if (s >= 0) {
			dt[s] = clock_s(CLOCK_MONOTONIC) - t0;
			dc[s] = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
		}
	}
	qsort(dt, (size_t)steps, sizeof *dt, cmp_double);
	qsort(dc, (size_t)steps, sizeof *dc, cmp_double);

	double flop = 2.0 * (double)m->macs[MEA_BLOCK_MAIN] * batch * (infer ? 1 : 3);
	double best = dt[0], med = dt[steps / 2];
	printf("blas: %s\n", mea_blas_info());
	printf("%s %s %s %dx%dx%d, %d classes, batch %d, %d steps: "
			"best %.1f images/s %.1f GFLOP/s, median %.1f images/s %.1f GFLOP/s "
			"(CPU time: best %.1f GFLOP/s, median %.1f; "
			"%.1f M MACs/image%s; plan %.1f MiB)\n",
			infer ? "infer" : po.row_shift ? "train-rowshift" : "train", a.name,
			infer ? "forward" : "step",
			a.in_c, a.in_h, a.in_w, a.nclasses, batch, steps,
			batch / best, flop / best * 1e-9, batch / med, flop / med * 1e-9,
			flop / dc[0] * 1e-9, flop / dc[steps / 2] * 1e-9,
			(double)m->macs[MEA_BLOCK_MAIN] * 1e-6, infer ? "" : ", x3 for training",
			(double)mea_plan_bytes(p) / (1 << 20));
	mea_plan_free(p);
	mea_model_free(m);
	free(x);
	free(y);
	free(dt);
	free(dc);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("bench_train_test: stdout");
		return 4;
	}
	return 0;
}
