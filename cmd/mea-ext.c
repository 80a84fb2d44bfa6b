/* mea-ext: run MEANet's adaptive and extension blocks on the records the
 * gate routed to the extension, and answer among the hard classes (see
 * mea-ext(1)).  Every other record passes through untouched. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "model.h"

static const char usage_text[] =
"usage: mea-ext -m model [-P] [-b batch] [-t threads]\n"
"Run the adaptive and extension blocks of a MEANet edge model on every record\n"
"with route=ext (and, in sweep mode, every record with hard=1); add tensor\n"
"\"ext_logits\", fields ext_pred, ext_conf, t_ext, add to macs_edge, and for\n"
"route=ext the answer: pred, conf, exit=ext.\n"
"  -m, --model FILE     the MEANet edge model (mea-model(5))\n"
"  -b, --batch N        images per forward pass, 1..4096 (default 32)\n"
"  -t, --threads N      OpenBLAS threads (default MEA_THREADS or 1)\n"
"  -P, --profile        at the end, each layer's time and GFLOP/s on stderr\n"
"  -h, --help           this help;  -V, --version  the version\n";

static struct {
	const char *model;
	long batch, threads;
	int profile;
} opt = { .batch = 32 };

static struct mea_batch q;   /* records waiting for one forward pass */
static struct mea_model *model;
static struct mea_plan *plan;
static struct mea_writer out;
static float *prob;

static void
parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "batch", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{ "profile", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:b:t:PhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': opt.model = optarg; break;
		case 'P': opt.profile = 1; break;
		case 'b': opt.batch = opt_long("--batch", optarg, 1, MEA_MODEL_MAX_BATCH); break;
		case 't': opt.threads = opt_long("--threads", optarg, 1, 256); break;
		default: cli_other_opt(c, usage_text, argv);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s' (records come on stdin)", argv[optind]);
	if (!opt.model)
		usage_error("no model: give -m FILE");
}

/* Does the extension answer this record?  The gate's route says so; in
 * sweep mode every record with a hard main prediction is answered too. */
static int
wanted(const struct mea_record *r)
{
	const char *route = mea_field_str(r, "route");
	int64_t sweep = 0, hard = 0;

	if (route && strcmp(route, "ext") == 0)
		return 1;
	return mea_field_int(r, "sweep", &sweep) && sweep && mea_field_int(r, "hard", &hard) && hard;
}

/* Copy the record's image and main feature map into row `row` of the
 * plan's inputs. */
static int
load_inputs(struct mea_record *r, int row, struct mea_err *e)
{
	const struct mea_node *f = &model->node[model->node_feat];
	const struct mea_tensor *img = mea_tensor_get(r, MEA_T_IMAGE);
	const struct mea_tensor *feat = mea_tensor_get(r, "feat");
	size_t nimg = (size_t)model->in_c * model->in_h * model->in_w;
	size_t nfeat = (size_t)f->C * f->H * f->W;
	const float *src;

	if (!img)
		return mea_errf(e, MEA_E_FORMAT, "no image (mea-ext needs the raw image)");
	if (!feat)
		return mea_errf(e, MEA_E_FORMAT, "no feat tensor (run mea-main with a MEANet edge model first)");
	if (feat->dtype != MEA_F32 || feat->ndim != 3 || feat->dim[0] != (uint32_t)f->C ||
			feat->dim[1] != (uint32_t)f->H || feat->dim[2] != (uint32_t)f->W)
		return mea_errf(e, MEA_E_FORMAT, "feat is not f32 [%d,%d,%d]", f->C, f->H, f->W);
	src = feat->data;
	for (size_t i = 0; i < nfeat; i++)
		if (!isfinite(src[i]))
			return mea_errf(e, MEA_E_FORMAT, "feat value %zu is not finite", i);
	memcpy(mea_plan_value(plan, model->node_feat) + (size_t)row * nfeat, src,
			nfeat * sizeof(float));
	return mea_model_input(model, img, mea_plan_value(plan, 0) + (size_t)row * nimg, e);
}

/* Write the extension's answer for row `row` into r. */
static void
answer(struct mea_record *r, int row, double seconds)
{
	int K = model->nhard, best = 0, rc;
	uint32_t dim[1] = { (uint32_t)K };
	const float *logits = mea_plan_value(plan, model->node_ext) + (size_t)row * K;
	const char *route = mea_field_str(r, "route");
	struct mea_tensor *t;
	struct mea_err e;

	if (!(t = mea_tensor_add(r, "ext_logits", MEA_F32, 1, dim, &e)))
		die_err(&e);
	memcpy(t->data, logits, (size_t)K * sizeof(float));
	mea_softmax(1, K, logits, prob);
	for (int k = 1; k < K; k++)
		if (prob[k] > prob[best])
			best = k;
	rc = mea_field_set_int(r, "ext_pred", model->hard[best]) ||
		mea_field_set_float(r, "ext_conf", prob[best]) ||
		mea_field_add_int(r, "macs_edge", (int64_t)(model->macs[MEA_BLOCK_ADAPTIVE] +
				model->macs[MEA_BLOCK_EXT])) ||
		mea_field_set_float(r, "t_ext", seconds);
	if (!rc && route && strcmp(route, "ext") == 0)
		rc = mea_field_set_int(r, "pred", model->hard[best]) ||
			mea_field_set_float(r, "conf", prob[best]) ||
			mea_field_set_str(r, "exit", "ext");
	if (rc)
		die(EXIT_DATA, "%s: record %llu: too many fields", out.name,
				(unsigned long long)out.nrec);
}

/* Run the queued rows and write every queued record, in order. */
static void
flush(void)
{
	double t = 0;
	struct mea_err e;

	if (q.nrows > 0) {
		t = cli_now();
		if (mea_plan_forward(plan, q.nrows, &e))
			die_err(&e);
		t = (cli_now() - t) / q.nrows;
	}
	for (int i = 0; i < q.nrec; i++)
		if (q.row[i] >= 0)
			answer(&q.rec[i], q.row[i], t);
	if (mea_batch_write(&q, &out, &e))
		die_err(&e);
}

static void
setup(void)
{
	struct mea_plan_opts po = { .ninputs = 2, .noutputs = 1 };
	struct mea_err e;
	int rc;

	if (mea_model_load(&model, opt.model, &e))
		die_err(&e);
	if (model->node_ext < 0 || model->node_feat < 0 || model->nhard < 1)
		die(EXIT_MODEL, "%s: not a MEANet edge model (no extension block)", opt.model);
	po.batch = (int)opt.batch;
	po.input[0] = 0;
	po.input[1] = model->node_feat;
	po.output[0] = model->node_ext;
	if ((rc = mea_plan_new(&plan, model, &po, &e)))
		die(rc == MEA_E_NOMEM ? EXIT_IO : EXIT_MODEL, "%s: %s", opt.model, e.msg);
	if (mea_batch_init(&q, (int)opt.batch, &e))
		die_err(&e);
	mea_plan_profile(plan, opt.profile);
	if (!(prob = malloc((size_t)model->nhard * sizeof *prob)))
		die(EXIT_IO, "out of memory");
}

int
main(int argc, char **argv)
{
	struct mea_reader in;
	struct mea_err e;
	char where[300];
	int rc;

	cli_init(argv[0]);
	parse_args(argc, argv);
	mea_set_threads(cli_threads(opt.threads));
	setup();
	mea_reader_init(&in, 0, "stdin");
	mea_writer_init(&out, 1, "stdout");
	/* Fill a batch only while records are already waiting, so a stalled
	 * producer never holds back a record this stage could finish. */
	while ((rc = mea_read(&in, mea_batch_slot(&q), &e)) == 0) {
		struct mea_record *r = mea_batch_slot(&q);
		if (wanted(r) && load_inputs(r, q.nrows, &e)) {
			mea_record_where(&in, r, where, sizeof where);
			mea_record_clear(r);
			flush();   /* the records before it are good: pass them on */
			die(EXIT_DATA, "%s: %s", where, e.msg);
		}
		mea_batch_push(&q, wanted(r));
		if (mea_batch_full(&q) || !mea_reader_pending(&in))
			flush();
	}
	flush();
	if (rc != MEA_EOF)
		die_err(&e);
	if (opt.profile)
		cli_print_profile(model, plan);
	mea_reader_free(&in);
	mea_writer_free(&out);
	mea_plan_free(plan);
	mea_model_free(model);
	mea_batch_free(&q);
	free(prob);
	return close_stdout(EXIT_OK);
}
