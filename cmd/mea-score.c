/* mea-score: the end of a pipeline: accuracy per exit and per class, cost
 * and energy per image, stage times, lost records, and the threshold
 * sweep (see mea-score(1)). */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gate.h"
#include "image.h"
#include "model.h"
#include "score.h"

static const char usage_text[] =
"usage: mea-score [-jrsV] [-m model] [-H list] [-K classes] [-N names]\n"
"                 [-e energy] [-S steps] [-M macs] [-X macs] [-C macs]\n"
"                 [-B bytes]\n"
"Summarise a finished stream: accuracy overall, per exit and per class,\n"
"MACs, bytes and energy per image, time per stage, lost records.\n"
"  -m, --model FILE        hard classes, class count and names from a model\n"
"  -H, --hard LIST         hard class ids, e.g. 6,0,4 (default: the records')\n"
"  -K, --classes K         class ids must be below K\n"
"  -N, --names FILE        class names, one a line\n"
"  -e, --energy PROFILE    a profile file, or NAME for share/energy/NAME.energy\n"
"                          (default: default, when it is found)\n"
"  -r, --records           one tab-separated line per record instead\n"
"  -j, --json              the summary as JSON\n"
"  -s, --sweep             accuracy and costs for every threshold T, from\n"
"                          records made with mea-gate --all\n"
"  -S, --steps N           sweep: N+1 thresholds from 0 to the largest entropy\n"
"  -M, --macs-main N       sweep: main-block MACs (default: from the records)\n"
"  -X, --macs-ext N        sweep: adaptive + extension MACs (same)\n"
"  -C, --macs-cloud N      sweep: cloud MACs per offload (same)\n"
"  -B, --bytes-image N     sweep: bytes up and down per offload (same)\n"
"  -h, --help              this help;  -V, --version  the version\n";

static struct {
	const char *model, *hard, *names, *energy;
	long classes;
	int records, json, sweep;
	struct mea_score_sweep_opts sw;
} opt = { .sw = { 0, -1, -1, -1, -1, NULL } };

static struct mea_score sc;
static struct mea_classes names;
static struct mea_score_view view;

/*
 * The one place that knows the model file: the class count, the hard
 * classes and the class names from its metadata (mea-model(5)).  Names
 * that are just the class number are left out, so they print once.
 */
static void
load_model_meta(const char *path)
{
	struct mea_model *m;
	struct mea_err e;
	char num[16];

	if (mea_model_load(&m, path, &e) != 0)
		die_err(&e);
	if (mea_score_set_classes(&sc, m->nclasses, &e) != 0 ||
	    mea_score_set_hard(&sc, m->hard, m->nhard, &e) != 0)
		die(EXIT_MODEL, "%s: %s", path, e.msg);
	view.hard_source = "from the model";
	for (int c = 0; c < m->nclasses && !opt.names; c++) {
		snprintf(num, sizeof num, "%d", c);
		if (mea_classes_add(&names, strcmp(m->class_name[c], num) ? m->class_name[c] : "",
				&e) != 0)
			die_err(&e);
	}
	mea_model_free(m);
}

/* The energy profile: PROFILE as a path if it names a file, else
 * NAME.energy in the executable's ../share/mea/energy (installed) or
 * ../share/energy (the build tree).  Returns 0 when it is not found. */
static int
find_profile(const char *name, char *path)
{
	static const char *const dir[] = { "../share/mea/energy", "../share/energy" };
	char exe[PATH_MAX], cand[2 * PATH_MAX];
	ssize_t n;

	if (strchr(name, '/') || access(name, F_OK) == 0)
		return snprintf(path, PATH_MAX, "%s", name) < PATH_MAX;
	if ((n = readlink("/proc/self/exe", exe, sizeof exe - 1)) <= 0)
		return 0;
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	for (int i = 0; i < 2; i++) {
		snprintf(cand, sizeof cand, "%s/%s/%s.energy", exe, dir[i], name);
		if (access(cand, F_OK) == 0 && realpath(cand, path))
			return 1;
	}
	return 0;
}

static void
parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "hard", required_argument, NULL, 'H' },
		{ "classes", required_argument, NULL, 'K' },
		{ "names", required_argument, NULL, 'N' },
		{ "energy", required_argument, NULL, 'e' },
		{ "records", no_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "sweep", no_argument, NULL, 's' },
		{ "steps", required_argument, NULL, 'S' },
		{ "macs-main", required_argument, NULL, 'M' },
		{ "macs-ext", required_argument, NULL, 'X' },
		{ "macs-cloud", required_argument, NULL, 'C' },
		{ "bytes-image", required_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c, sweep_opt = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:H:K:N:e:rjsS:M:X:C:B:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': opt.model = optarg; break;
		case 'H': opt.hard = optarg; break;
		case 'K': opt.classes = opt_long("--classes", optarg, 1, MEA_SCORE_MAX_CLASSES); break;
		case 'N': opt.names = optarg; break;
		case 'e': opt.energy = optarg; break;
		case 'r': opt.records = 1; break;
		case 'j': opt.json = 1; break;
		case 's': opt.sweep = 1; break;
		case 'S': opt.sw.steps = (int)opt_long("--steps", optarg, 1, 1000000); sweep_opt = 1; break;
		case 'M': opt.sw.macs_main = opt_double("--macs-main", optarg, 0, 1e18); sweep_opt = 1; break;
		case 'X': opt.sw.macs_ext = opt_double("--macs-ext", optarg, 0, 1e18); sweep_opt = 1; break;
		case 'C': opt.sw.macs_cloud = opt_double("--macs-cloud", optarg, 0, 1e18); sweep_opt = 1; break;
		case 'B': opt.sw.bytes = opt_double("--bytes-image", optarg, 0, 1e18); sweep_opt = 1; break;
		default: cli_other_opt(c, usage_text, argv);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s' (records come on stdin)", argv[optind]);
	if (opt.records + opt.json + opt.sweep > 1)
		usage_error("--records, --json and --sweep exclude each other");
	if (sweep_opt && !opt.sweep)
		usage_error("--steps and the cost options need --sweep");
}

static void
setup(struct mea_energy *en)
{
	static char profile[PATH_MAX];
	struct mea_err e;

	mea_score_init(&sc);
	sc.sweep = opt.sweep;
	if (opt.model)
		load_model_meta(opt.model);
	if (opt.classes && mea_score_set_classes(&sc, (int)opt.classes, &e) != 0)
		usage_error("--classes: %s", e.msg);
	if (opt.hard) {
		int32_t *hard;
		int n;
		if (mea_gate_parse_list(opt.hard, &hard, &n, &e) != 0 ||
		    mea_score_set_hard(&sc, hard, n, &e) != 0)
			usage_error("--hard: %s", e.msg);
		free(hard);
		view.hard_source = "from --hard";
	}
	if (opt.names && mea_classes_load(&names, opt.names, &e) != 0)
		die(cli_status(e.code), "%s: %s", opt.names, e.msg);
	if (mea_score_reserve(&sc, names.n, &e) != 0)
		die_err(&e);
	if (find_profile(opt.energy ? opt.energy : "default", profile)) {
		if (mea_energy_load(en, profile, &e) != 0)
			die_err(&e);
		view.energy = en;
		view.energy_name = profile;
	} else if (opt.energy) {
		die(EXIT_IO, "%s: no such file or profile", opt.energy);
	}
	view.names = names.name;
	view.nnames = names.n;
	opt.sw.energy = view.energy;
}

int
main(int argc, char **argv)
{
	struct mea_reader in;
	struct mea_record rec;
	struct mea_energy en;
	struct mea_err e;
	uint64_t no_cloud;
	int rc, status = EXIT_OK;

	cli_init(argv[0]);
	parse_args(argc, argv);
	setup(&en);

	mea_reader_init(&in, 0, "stdin");
	mea_record_init(&rec);
	if (opt.records)
		mea_score_record_header(stdout);
	while ((rc = mea_read(&in, &rec, &e)) == 0) {
		unsigned long long idx = (unsigned long long)(in.nrec - 1);
		if (mea_score_add(&sc, &rec, &e) != 0) {
			const char *id = mea_field_str(&rec, MEA_F_ID);
			mea_err_prefix(&e, "%s: record %llu%s%s%s", in.name, idx,
					id ? " (" : "", id ? id : "", id ? ")" : "");
			die_err(&e);
		}
		if (sc.gap) {
			warnx("%s: record %llu: seq jumps from %lld to %lld (%lld lost)", in.name, idx,
					(long long)sc.gap_from, (long long)sc.gap_to,
					(long long)(sc.gap_to - sc.gap_from - 1));
			status = EXIT_DATA;
		}
		if (opt.records)
			mea_score_record_line(stdout, &rec);
	}
	if (rc != MEA_EOF)
		die_err(&e);

	if (opt.json) {
		mea_score_print_json(stdout, &sc, &view);
	} else if (opt.sweep) {
		if (mea_score_sweep(stdout, &sc, &opt.sw, &no_cloud, &e) != 0)
			die_err(&e);
		if (no_cloud)
			warnx("%llu of %llu records have no cloud_pred: their cloud answer is the edge's",
					(unsigned long long)no_cloud, (unsigned long long)sc.npt);
	} else if (!opt.records) {
		mea_score_print(stdout, &sc, &view);
	}
	mea_record_clear(&rec);
	mea_reader_free(&in);
	mea_classes_free(&names);
	mea_score_free(&sc);
	return close_stdout(status);
}
