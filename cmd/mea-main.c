/* mea-main: run a model's main block on the image of each record and add
 * its logits (and the feature map a MEANet extension needs); see
 * mea-main(1). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "model.h"

static const char usage_text[] =
"usage: mea-main -m model [-cP] [-b batch] [-t threads]\n"
"Run the main block of a model on the \"image\" of each record; add tensor\n"
"\"logits\" (and \"feat\" for a MEANet edge model) and fields macs_edge and\n"
"t_main.  Records without an image pass through unchanged.\n"
"  -m, --model FILE     the model file (mea-model(5))\n"
"  -c, --cloud          the cloud side: add \"cloud_logits\", macs_cloud, t_cloud\n"
"  -b, --batch N        images per forward pass, 1..4096 (default 32)\n"
"  -t, --threads N      OpenBLAS threads (default MEA_THREADS or 1)\n"
"  -P, --profile        at the end, each layer's time and GFLOP/s on stderr\n"
"  -h, --help           this help;  -V, --version  the version\n";

static struct {
	const char *model;
	long batch, threads;
	int cloud, profile;
} opt = { .batch = 32 };

static struct mea_batch q;   /* records waiting for one forward pass */

static struct mea_model *model;
static struct mea_plan *plan;
static struct mea_writer out;
static int node_feat = -1;
static int64_t macs;          /* per image: the main block, twice for a test-flip model */

static void
parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "cloud", no_argument, NULL, 'c' },
		{ "batch", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{ "profile", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:cb:t:PhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': opt.model = optarg; break;
		case 'c': opt.cloud = 1; break;
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

/* Copy row `slot` of a plan output into a new tensor of r. */
static void
attach(struct mea_record *r, const char *name, int node, int slot)
{
	const struct mea_node *n = &model->node[node];
	uint32_t dim[3] = { (uint32_t)n->C, (uint32_t)n->H, (uint32_t)n->W };
	size_t per = (size_t)n->C * (size_t)n->H * (size_t)n->W;
	struct mea_tensor *t;
	struct mea_err e;

	/* Logits are a vector; a feature map keeps its C x H x W. */
	if (!(t = mea_tensor_add(r, name, MEA_F32, node == node_feat ? 3 : 1, dim, &e)))
		die_err(&e);
	memcpy(t->data, mea_plan_value(plan, node) + (size_t)slot * per, per * sizeof(float));
}

/* Run the queued images, add the results and write every queued record. */
static void
flush(void)
{
	double t = 0;
	struct mea_err e;

	if (q.nrows > 0) {
		t = cli_now();
		if (mea_plan_forward_tta(plan, q.nrows, model->node_logits, &e))
			die_err(&e);
		t = (cli_now() - t) / q.nrows;
	}
	for (int i = 0; i < q.nrec; i++) {
		struct mea_record *r = &q.rec[i];
		if (q.row[i] < 0)
			continue;
		attach(r, opt.cloud ? "cloud_logits" : "logits", model->node_logits, q.row[i]);
		if (node_feat >= 0)
			attach(r, "feat", node_feat, q.row[i]);
		if (mea_field_add_int(r, opt.cloud ? "macs_cloud" : "macs_edge", macs) ||
				mea_field_set_float(r, opt.cloud ? "t_cloud" : "t_main", t))
			die(EXIT_DATA, "%s: record %llu: too many fields", out.name,
					(unsigned long long)(out.nrec + (uint64_t)i));
	}
	if (mea_batch_write(&q, &out, &e))
		die_err(&e);
}

int
main(int argc, char **argv)
{
	struct mea_plan_opts po = { .ninputs = 1, .input = { 0 }, .noutputs = 1 };
	struct mea_reader in;
	struct mea_err e;
	int rc;

	cli_init(argv[0]);
	parse_args(argc, argv);
	mea_set_threads(cli_threads(opt.threads));
	if ((rc = mea_model_load(&model, opt.model, &e)))
		die_err(&e);
	macs = (int64_t)model->macs[MEA_BLOCK_MAIN] * (1 + mea_model_test_flip(model));
	po.batch = (int)opt.batch;
	po.output[0] = model->node_logits;
	if (!opt.cloud && model->node_feat >= 0)
		po.output[po.noutputs++] = node_feat = model->node_feat;
	if ((rc = mea_plan_new(&plan, model, &po, &e)))
		die(rc == MEA_E_NOMEM ? EXIT_IO : EXIT_MODEL, "%s: %s", opt.model, e.msg);
	if (mea_batch_init(&q, (int)opt.batch, &e))
		die_err(&e);
	mea_plan_profile(plan, opt.profile);

	mea_reader_init(&in, 0, "stdin");
	mea_writer_init(&out, 1, "stdout");
	/* Fill a batch only while records are already waiting, so a stalled
	 * producer never holds back work this stage has finished. */
	while ((rc = mea_read(&in, mea_batch_slot(&q), &e)) == 0) {
		struct mea_record *r = mea_batch_slot(&q);
		const struct mea_tensor *img = mea_tensor_get(r, MEA_T_IMAGE);
		size_t per = (size_t)model->in_c * model->in_h * model->in_w;
		if (img && mea_model_input(model, img, mea_plan_value(plan, 0) +
				(size_t)q.nrows * per, &e)) {
			char where[300];
			mea_record_where(&in, r, where, sizeof where);
			mea_record_clear(r);
			flush();   /* the records before it are good: pass them on */
			die(EXIT_DATA, "%s: %s", where, e.msg);
		}
		mea_batch_push(&q, img != NULL);
		if (mea_batch_full(&q) || !mea_reader_pending(&in))
			flush();
	}
	if (rc != MEA_EOF) {
		flush();
		die_err(&e);
	}
	flush();
	if (opt.profile)
		cli_print_profile(model, plan);
	mea_reader_free(&in);
	mea_writer_free(&out);
	mea_plan_free(plan);
	mea_model_free(model);
	mea_batch_free(&q);
	return close_stdout(EXIT_OK);
}
