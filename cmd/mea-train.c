/*
 * mea-train: make and train model files (mea-train(1)).
 *
 * Jobs: init (a random model of a named architecture), full (train the
 * main block: an edge main block or a cloud model), calibrate (hard
 * classes and T from held-out images), ext (the adaptive and extension
 * blocks with the main block frozen, bn statistics included) and eval.
 * Training reads a labelled stream on stdin and keeps it as u8;
 * --val-frac of it, drawn with --split-seed, is held out and never used
 * for a gradient step.  The output file is also the checkpoint.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "model.h"
#include "train_opts.h"

static struct train_opts opt;
static int threads;     /* -t, or MEA_THREADS, or 1 */

/* ------------------------------------------------------------ progress */

struct progress {
	struct mea_model *m;
	const struct mea_dataset *ds;
	const int32_t *val, *remap;
	size_t nval;
	int tty, first_epoch;
	struct mea_err err;
	int failed;
};

static const char *
hms(char *buf, double s)
{
	if (!(s >= 0 && s < 1e7))
		return "?";
	sprintf(buf, "%d:%02d:%02d", (int)(s / 3600), (int)(s / 60) % 60, (int)s % 60);
	return buf;
}

/* After every step a bar on a terminal; after every epoch one line, a
 * held-out evaluation and a checkpoint in the output file. */
static int
on_step(void *ctx, const struct mea_train_status *st)
{
	struct progress *pr = ctx;
	double part = (double)st->step / (double)st->steps;
	double ran = st->epoch - pr->first_epoch + part;
	double left = st->seconds / ran * (st->epochs - st->epoch - part);
	char t1[32], t2[32], v[32];

	if (!opt.quiet && pr->tty && !st->epoch_done) {
		fprintf(stderr, "\repoch %d/%d [%-30.*s] loss %.4f acc %.4f lr %.4f left %s ",
				st->epoch + 1, st->epochs, (int)(30 * part),
				"==============================", st->loss, st->acc, st->lr, hms(t1, left));
		fflush(stderr);
	}
	if (!st->epoch_done)
		return 0;
	double va = NAN;
	if (mea_eval_accuracy(pr->m, pr->ds, pr->val, pr->nval, opt.cfg.out_node, pr->remap,
			threads, &va, &pr->err))
		return pr->failed = 1;
	/* With --val-frac 0 nothing is held out: "none", not a NaN. */
	char vs[16] = "none";
	if (pr->nval > 0)
		snprintf(vs, sizeof vs, "%.4f", va);
	if (!opt.quiet)
		fprintf(stderr, "%sepoch %d/%d loss %.4f acc %.4f held-out %s lr %.4f time %s left %s\n",
				pr->tty ? "\r" : "", st->epoch + 1, st->epochs, st->loss, st->acc, vs,
				st->lr, hms(t1, st->seconds), hms(t2, left));
	/* The checkpoint holds no clock time, so that a run and its resumed
	 * twin write the same bytes. */
	snprintf(v, sizeof v, "%d", st->epoch + 1);
	if (mea_model_set_info(pr->m, "train.epoch", v, &pr->err) ||
			mea_model_save(pr->m, opt.out, &pr->err))
		return pr->failed = 1;
	return opt.stop_after && st->epoch + 1 - pr->first_epoch >= opt.stop_after;
}

/* --------------------------------------------------------------- jobs */

static struct mea_model *
load_model(const char *path)
{
	struct mea_model *m;
	struct mea_err e;

	if (mea_model_load(&m, path, &e))
		die_err(&e);
	return m;
}

static void
read_data(struct mea_dataset *ds, int nclasses)
{
	struct mea_reader rd;
	struct mea_err e;

	mea_reader_init(&rd, 0, "stdin");
	if (mea_dataset_read(ds, &rd, nclasses, &e))
		die_err(&e);
	mea_reader_free(&rd);
}

static void
split(const struct mea_dataset *ds, int32_t **tr, size_t *ntr, int32_t **val, size_t *nval)
{
	if (mea_dataset_split(ds, opt.val_frac, (uint64_t)opt.split_seed, tr, ntr, val, nval))
		die(EXIT_IO, "out of memory");
}

/* The training settings as one line, stored in the model so that a
 * resumed run can refuse to continue with different ones. */
static void
describe(char *buf, size_t n, const struct mea_train_cfg *c)
{
	snprintf(buf, n, "job=%s epochs=%d batch=%d lr=%g mom=%g%s wd=%g %s warmup=%g pad=%d "
			"flip=%d seed=%llu val=%g/%ld", job_names[opt.job], c->epochs, c->batch, c->lr,
			c->momentum, c->nesterov ? " nesterov" : "", c->wd, c->cosine ? "cosine" : "step",
			c->warmup, c->aug.pad, c->aug.flip, (unsigned long long)c->seed, opt.val_frac,
			opt.split_seed);
	/* Only when used, so that runs from before smoothing still resume. */
	if (c->aug.erase != 0)
		snprintf(buf + strlen(buf), n - strlen(buf), " erase=%g", c->aug.erase);
	if (c->feature_drop != 0)
		snprintf(buf + strlen(buf), n - strlen(buf), " fdrop=%g", c->feature_drop);
	if (c->smooth != 0)
		snprintf(buf + strlen(buf), n - strlen(buf), " smooth=%g", c->smooth);
	if (c->workers > 1)
		snprintf(buf + strlen(buf), n - strlen(buf), " threads=%d", c->workers);
	if (c->distill != 0)
		snprintf(buf + strlen(buf), n - strlen(buf), " distill=%g tau=%g", c->distill,
				c->tau);
	if (opt.adaptive_from_main)
		snprintf(buf + strlen(buf), n - strlen(buf), " adaptive=main");
	/* Runs from before the row shift trained by im2col and said nothing. */
	if (c->row_shift)
		snprintf(buf + strlen(buf), n - strlen(buf), " rowshift=1");
}

static int
cmd_train(void)
{
	struct mea_model *m = load_model(opt.resume ? opt.out : opt.model);
	struct mea_dataset ds = {0};
	struct progress pr = {.m = m, .ds = &ds, .tty = isatty(2)};
	int32_t *tr, *val, *remap;
	size_t ntr, nval;
	const char *s;
	char cfg[512];
	struct mea_err e;

	read_data(&ds, m->nclasses);
	split(&ds, &tr, &ntr, &val, &nval);
	opt.cfg.workers = threads;
	if (mea_train_target(m, opt.job == JOB_EXT, &opt.cfg, &remap, &e)) {
		if (e.code == MEA_E_NOMEM)
			die_err(&e);
		die(EXIT_MODEL, "%s: %s", opt.resume ? opt.out : opt.model, e.msg);
	}
	describe(cfg, sizeof cfg, &opt.cfg);
	if (opt.resume) {
		if (!(s = mea_model_get_info(m, "train.cfg")) || strcmp(s, cfg) != 0)
			die(EXIT_USAGE, "%s: was trained with '%s', not '%s'", opt.out, s ? s : "nothing", cfg);
		pr.first_epoch = (s = mea_model_get_info(m, "train.epoch")) ? atoi(s) : 0;
	} else if (opt.job == JOB_FULL) {
		mea_dataset_stats(&ds, m->mean, m->std);
	} else if (opt.adaptive_from_main && mea_arch_seed_adaptive(m, &e)) {
		die(EXIT_MODEL, "%s: %s", opt.model, e.msg);
	}
	if (mea_model_set_info(m, "train.cfg", cfg, &e))
		die_err(&e);
	pr.val = val;
	pr.nval = nval;
	pr.remap = remap;
	if (mea_train(m, &ds, tr, ntr, remap, &opt.cfg, pr.first_epoch, on_step, &pr, &e))
		die_err(&e);
	if (pr.failed)
		die_err(&pr.err);
	if (pr.first_epoch >= opt.cfg.epochs && mea_model_save(m, opt.out, &e))
		die_err(&e);
	mea_model_free(m);
	mea_dataset_free(&ds);
	free(tr);
	free(val);
	free(remap);
	return EXIT_OK;
}

static int
cmd_calibrate(void)
{
	struct mea_model *m = load_model(opt.model);
	struct mea_dataset ds = {0};
	struct mea_calib_report rep;
	int32_t *tr, *val;
	size_t ntr, nval;
	double *prec;
	struct mea_err e;

	read_data(&ds, m->nclasses);
	split(&ds, &tr, &ntr, &val, &nval);
	if (!(prec = malloc((size_t)m->nclasses * sizeof *prec)))
		die(EXIT_IO, "out of memory");
	if (mea_calibrate(m, &ds, val, nval, opt.share, threads, prec, &rep, &e) ||
			mea_model_save(m, opt.out, &e))
		die_err(&e);
	printf("held-out images  %zu\nmain accuracy    %.4f\n", rep.n, rep.accuracy);
	printf("T (entropy fit)  %.2f  (cloud share %.4f)\n", rep.t_fit, rep.share_at_fit);
	if (opt.share >= 0)
		printf("T (share %.3f)   %.4f\n", opt.share, rep.t_share);
	printf("T stored         %.4f\nhard classes, hardest first:\n", m->threshold);
	for (int k = 0; k < m->nhard; k++)
		printf("  %d %-16s precision %.4f\n", m->hard[k], m->class_name[m->hard[k]],
				prec[m->hard[k]]);
	mea_model_free(m);
	mea_dataset_free(&ds);
	free(tr);
	free(val);
	free(prec);
	return EXIT_OK;
}

static void print_eval(const struct mea_model *m, const struct mea_edge_report *r);

static int
cmd_eval(void)
{
	struct mea_model *m = load_model(opt.model);
	struct mea_dataset ds = {0};
	struct mea_edge_report r;
	int32_t *idx, *pm, *pe;
	float *ent;
	struct mea_err e;

	read_data(&ds, m->nclasses);
	idx = malloc(ds.n * sizeof *idx);
	pm = malloc(ds.n * sizeof *pm);
	pe = malloc(ds.n * sizeof *pe);
	ent = malloc(ds.n * sizeof *ent);
	if (!idx || !pm || !pe || !ent)
		die(EXIT_IO, "out of memory");
	for (size_t i = 0; i < ds.n; i++)
		idx[i] = (int32_t)i;
	if (mea_eval_edge(m, &ds, idx, ds.n, threads, &r, pm, ent, pe, &e))
		die_err(&e);
	/* Per image, for checking a pipeline against the model run whole. */
	if (opt.predictions) {
		printf("index\tlabel\tmain_pred\tentropy\tedge_pred\n");
		for (size_t i = 0; i < ds.n; i++)
			printf("%zu\t%d\t%d\t%.6f\t%d\n", i, ds.label[i], pm[i], ent[i], pe[i]);
	} else {
		print_eval(m, &r);
	}
	mea_model_free(m);
	mea_dataset_free(&ds);
	free(idx);
	free(pm);
	free(pe);
	free(ent);
	return EXIT_OK;
}

static void
print_eval(const struct mea_model *m, const struct mea_edge_report *r)
{
	printf("images       %zu\nmain         %.4f\n", r->n, (double)r->main_hits / (double)r->n);
	if (m->node_ext >= 0 && r->hard_n) {
		printf("edge         %.4f  (main + extension, no cloud)\n", (double)r->edge_hits / (double)r->n);
		printf("hard classes %.4f main, %.4f edge, on %zu images\n",
				(double)r->hard_main_hits / (double)r->hard_n,
				(double)r->hard_edge_hits / (double)r->hard_n, r->hard_n);
	}
	printf("above T      %.4f  (T = %.4f)\n", (double)r->above_t / (double)r->n, m->threshold);
	mea_model_print(stdout, m, 0);
}

int
main(int argc, char **argv)
{
	cli_init(argv[0]);
	train_parse_args(&opt, argc, argv);
	/* Every job splits its work between its threads (training: each
	 * batch; evaluation: the batches); OpenBLAS's own threads would only
	 * compete with them, and give these small convolutions little. */
	threads = cli_threads(opt.threads);
	mea_set_threads(1);
	switch (opt.job) {
	case JOB_INIT: return close_stdout(cmd_init(&opt));
	case JOB_CALIBRATE: return close_stdout(cmd_calibrate());
	case JOB_EVAL: return close_stdout(cmd_eval());
	default: return close_stdout(cmd_train());
	}
}
