/* mea-gate: route each record to the main block, the extension or the
 * cloud by the MEANet rule on its main-block logits (see mea-gate(1)). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "gate.h"
#include "model.h"

static const char usage_text[] =
"usage: mea-gate [-anV] [-m model] [-T threshold] [-H list] [-K classes]\n"
"                [-r argmax|hardprob|maxprob] [-p min-conf]\n"
"Mark each record with entropy, main_pred, main_conf, hard and route\n"
"(main, ext or cloud) from its \"logits\"; answer the easy ones (pred, conf,\n"
"exit=main).  Records without logits pass through unchanged.\n"
"  -m, --model FILE        take T, the hard classes and K from a model file\n"
"  -T, --threshold T       complex when entropy > T nats (default 0.8)\n"
"  -H, --hard LIST         hard class ids, hardest first: 6,0,4 ('' for none)\n"
"  -K, --classes K         refuse logits that do not have K classes\n"
"  -r, --rule RULE         argmax (default), hardprob or maxprob\n"
"  -p, --min-conf P        maxprob: complex when max probability < P (0.5)\n"
"  -n, --no-cloud          complex records stay at the edge\n"
"  -a, --all               sweep mode: mark records sweep=1 for later stages\n"
"  -h, --help              this help;  -V, --version  the version\n";

static struct {
	const char *model, *hard;
	double threshold, min_conf;
	long classes;
	int has_threshold, has_min_conf;
} opt;

static struct mea_gate gate;

/*
 * The one place that knows the model file: it supplies K, the ordered
 * hard-class list and T from the model's metadata (mea-model(5)).  The
 * weights are loaded too and dropped: the gate needs none of them.
 */
static void
load_model_meta(const char *path, struct mea_gate *g)
{
	struct mea_model *m;
	struct mea_err e;

	if (mea_model_load(&m, path, &e) != 0)
		die_err(&e);
	g->nclasses = m->nclasses;
	g->threshold = m->threshold;
	if (mea_gate_set_hard(g, m->hard, m->nhard, &e) != 0)
		die(EXIT_MODEL, "%s: %s", path, e.msg);
	mea_model_free(m);
}

/* "stdin: record 17 (shirt.png): " before the library's message. */
static _Noreturn void
die_record(const struct mea_reader *in, const struct mea_record *r, struct mea_err *e)
{
	const char *id = mea_field_str(r, MEA_F_ID);

	mea_err_prefix(e, "%s: record %llu%s%s%s", in->name, (unsigned long long)(in->nrec - 1),
			id ? " (" : "", id ? id : "", id ? ")" : "");
	die_err(e);
}

static void
parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "threshold", required_argument, NULL, 'T' },
		{ "hard", required_argument, NULL, 'H' },
		{ "classes", required_argument, NULL, 'K' },
		{ "rule", required_argument, NULL, 'r' },
		{ "min-conf", required_argument, NULL, 'p' },
		{ "no-cloud", no_argument, NULL, 'n' },
		{ "all", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:T:H:K:r:p:nahV", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': opt.model = optarg; break;
		case 'T':
			opt.threshold = opt_double("--threshold", optarg, 0, 1e6);
			opt.has_threshold = 1;
			break;
		case 'H': opt.hard = optarg; break;
		case 'K': opt.classes = opt_long("--classes", optarg, 1, MEA_GATE_MAX_CLASSES); break;
		case 'r':
			if ((gate.rule = mea_gate_rule_parse(optarg)) < 0)
				usage_error("--rule: '%s' is not argmax, hardprob or maxprob", optarg);
			break;
		case 'p':
			opt.min_conf = opt_double("--min-conf", optarg, 0, 1);
			opt.has_min_conf = 1;
			break;
		case 'n': gate.cloud = 0; break;
		case 'a': gate.sweep = 1; break;
		default: cli_other_opt(c, usage_text, argv);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s' (records come on stdin)", argv[optind]);
	if (opt.has_min_conf && gate.rule != MEA_GATE_MAXPROB)
		usage_error("--min-conf needs --rule maxprob");
	if (!opt.model && !opt.hard)
		usage_error("no hard classes: give -m MODEL or --hard LIST (--hard '' for none)");
}

int
main(int argc, char **argv)
{
	struct mea_reader in;
	struct mea_writer out;
	struct mea_record rec;
	struct mea_err e;
	int rc;

	cli_init(argv[0]);
	mea_gate_init(&gate);
	parse_args(argc, argv);

	/* The model first; the options override what it says. */
	if (opt.model)
		load_model_meta(opt.model, &gate);
	if (opt.classes)
		gate.nclasses = (int)opt.classes;
	if (opt.has_threshold)
		gate.threshold = opt.threshold;
	if (opt.has_min_conf)
		gate.min_conf = opt.min_conf;
	if (opt.hard) {
		int32_t *hard;
		int n;
		if (mea_gate_parse_list(opt.hard, &hard, &n, &e) != 0 ||
		    mea_gate_set_hard(&gate, hard, n, &e) != 0)
			usage_error("--hard: %s", e.msg);
		free(hard);
	} else if (opt.classes && gate.span > gate.nclasses) {
		usage_error("--classes: %ld, but the model's hard class %d is beyond it",
				opt.classes, gate.span - 1);
	}

	mea_reader_init(&in, 0, "stdin");
	mea_writer_init(&out, 1, "stdout");
	mea_record_init(&rec);
	while ((rc = mea_read(&in, &rec, &e)) == 0) {
		double t0 = cli_now();
		if (mea_gate_route(&gate, &rec, &e) != 0)
			die_record(&in, &rec, &e);
		if (mea_tensor_get(&rec, "logits") &&
		    mea_field_set_float(&rec, "t_gate", cli_now() - t0) != 0) {
			mea_errf(&e, MEA_E_LIMIT, "cannot set field 't_gate': the record has 64 fields");
			die_record(&in, &rec, &e);
		}
		if ((rc = mea_write(&out, &rec, &e)) != 0)
			break;
	}
	if (rc != MEA_EOF)
		die_err(&e);
	mea_record_clear(&rec);
	mea_reader_free(&in);
	mea_writer_free(&out);
	mea_gate_free(&gate);
	return close_stdout(EXIT_OK);
}
