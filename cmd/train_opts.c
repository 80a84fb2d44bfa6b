/*
 * train_opts.c: mea-train's command line and its init job (a random
 * model of a named architecture), kept apart from the training jobs so
 * that each file reads in one sitting.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model.h"
#include "train_opts.h"

static const char usage_text[] =
"usage: mea-train --init -a ARCH -i CxHxW -k K [-E [-H N] [-A N]] [-w W] [-N names] -o OUT\n"
"       mea-train -j full|ext -m MODEL -o OUT [training options] < train.mea\n"
"       mea-train -j calibrate -m MODEL -o OUT [-C share] < train.mea\n"
"       mea-train -j eval -m MODEL < test.mea\n"
"  -j, --job NAME         init, full, calibrate, ext or eval\n"
"  -I, --init             the same as --job init\n"
"  -a, --arch NAME        resnet8..resnet110 (6n+2), resnet18, resnet34, mobilenetv2\n"
"  -i, --input CxHxW      input shape, e.g. 1x28x28\n"
"  -k, --classes K        number of classes\n"
"  -E, --meanet           add MEANet's adaptive and extension blocks\n"
"  -H, --hard N           extension classes (default classes/2)\n"
"  -A, --adaptive-depth N BasicBlocks per stage of the adaptive block (1)\n"
"  -w, --width W          channel multiplier (default 1)\n"
"  -N, --names FILE       class names, one per line\n"
"  -M, --mean LIST        per-channel input mean of pixel/255 (init; full measures it)\n"
"  -S, --std LIST         per-channel input standard deviation\n"
"  -T, --threshold T      entropy threshold stored by init (default 0.8)\n"
"  -F, --test-flip        init: score the image and its mirror image, average\n"
"  -v, --verbose          init: print the model's costs on stderr\n"
"  -m, --model FILE       the model to start from\n"
"  -o, --output FILE      the model to write (also the checkpoint)\n"
"  -e, --epochs N         epochs of the schedule (default 30)\n"
"  -b, --batch N          batch size (default 128)\n"
"  -l, --lr F             peak learning rate (default 0.1)\n"
"  -u, --momentum F       SGD momentum (default 0.9)\n"
"  -n, --nesterov         Nesterov momentum\n"
"  -d, --wd F             weight decay (default 5e-4)\n"
"  -c, --schedule NAME    cosine (default) or step\n"
"  -L, --milestones LIST  step: fractions of the schedule (default 0.5,0.75)\n"
"  -g, --gamma F          step: factor (default 0.1)\n"
"  -W, --warmup E         epochs of linear warm-up (default 1)\n"
"  -p, --pad N            random-crop padding (default 2)\n"
"  -x, --no-flip          no random horizontal flips\n"
"  -O, --erase P          random erasing: a random rectangle of each image set\n"
"                         to the mean, with probability P (default 0)\n"
"  -Z, --smooth F         label smoothing (default 0)\n"
"  -G, --feature-drop P   ext: drop each channel of the main block's features\n"
"                         with probability P while training (default 0)\n"
"  -B, --adaptive-from-main  ext: start the adaptive block as a copy of the\n"
"                         main block's layers (init it with -A = the main\n"
"                         block's BasicBlocks a stage for the whole trunk)\n"
"  -D, --distill A        weight of a teacher's soft targets (the records'\n"
"                         cloud_logits, from mea-main --cloud), 0..1 (0)\n"
"  -K, --temperature T    their temperature (default 4)\n"
"  -R, --no-row-shift     stride-1 convolutions by im2col, as the shipped edge\n"
"                         model was trained (slower; other bits than the default)\n"
"  -s, --seed N           seed of initialisation, shuffling, augmentation (1)\n"
"  -f, --val-frac F       share held out for evaluation and calibration (0.1)\n"
"  -Y, --split-seed N     seed of the held-out split (default 1)\n"
"  -C, --share F          calibrate: store the T for at most this cloud share\n"
"  -r, --resume           continue the run saved in --output\n"
"  -X, --stop-after N     end this run after N epochs (resume later)\n"
"  -t, --threads N        threads (default MEA_THREADS or 1): training splits\n"
"                         each batch between them, evaluation the batches\n"
"  -q, --quiet            no progress on stderr\n"
"  -P, --predictions      eval: one line per image instead of the summary\n"
"  -h, --help             this help;  -V, --version  the version\n";

/* "1x28x28" into C, H, W. */
static void
parse_shape(const char *arg, int *c, int *h, int *w)
{
	char buf[64], *x1, *x2;

	if (strlen(arg) >= sizeof buf || !(x1 = strchr(strcpy(buf, arg), 'x')) ||
			!(x2 = strchr(x1 + 1, 'x')))
		usage_error("--input: '%s' is not a shape like 1x28x28", arg);
	*x1 = *x2 = '\0';
	*c = (int)opt_long("--input", buf, 1, MEA_MODEL_MAX_IN_C);
	*h = (int)opt_long("--input", x1 + 1, 1, MEA_MODEL_MAX_IN_SIDE);
	*w = (int)opt_long("--input", x2 + 1, 1, MEA_MODEL_MAX_IN_SIDE);
}

/* A comma-separated list of at most max numbers in [min, maxv]. */
static int
parse_list(const char *what, const char *arg, float *v, int max, double min, double maxv)
{
	char *buf = strdup(arg), *tok, *save = NULL;
	int n = 0;

	if (!buf)
		die(EXIT_IO, "out of memory");
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == max)
			usage_error("%s: more than %d values", what, max);
		v[n++] = (float)opt_double(what, tok, min, maxv);
	}
	free(buf);
	return n;
}

static int
parse_job(const char *arg)
{
	for (int j = JOB_INIT; job_names[j]; j++)
		if (strcmp(arg, job_names[j]) == 0)
			return j;
	usage_error("--job: '%s' is not init, full, calibrate, ext or eval", arg);
}

static void
check_args(struct train_opts *o)
{
	if (o->job == JOB_NONE)
		usage_error("nothing to do: give --job (or --init)");
	if (o->job == JOB_INIT) {
		if (!o->arch.name || !o->arch.in_c || !o->arch.nclasses || !o->out)
			usage_error("--init needs --arch, --input, --classes and --output");
		if (o->arch.nhard && !o->arch.meanet)
			usage_error("--hard needs --meanet");
		if (o->arch.adepth && !o->arch.meanet)
			usage_error("--adaptive-depth needs --meanet");
		/* mea-ext scores the image as given: a main block that
		 * averaged over mirror images would disagree with it. */
		if (o->test_flip && o->arch.meanet)
			usage_error("--test-flip is for whole classifiers, not with --meanet");
		return;
	}
	if (!o->model && !(o->resume && o->job != JOB_CALIBRATE))
		usage_error("--job %s needs --model", job_names[o->job]);
	if (o->job != JOB_EVAL && !o->out)
		usage_error("--job %s needs --output", job_names[o->job]);
	if (o->resume && o->job != JOB_FULL && o->job != JOB_EXT)
		usage_error("--resume goes with --job full or ext");
	if (o->adaptive_from_main && o->job != JOB_EXT)
		usage_error("--adaptive-from-main goes with --job ext");
	if (o->cfg.feature_drop > 0 && o->job != JOB_EXT)
		usage_error("--feature-drop goes with --job ext (it drops the main block's features)");
	if ((o->job == JOB_FULL || o->job == JOB_EXT) && o->val_frac >= 1)
		usage_error("--val-frac must leave images to train on");
}

void
train_parse_args(struct train_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"job", 1, NULL, 'j'}, {"init", 0, NULL, 'I'}, {"arch", 1, NULL, 'a'},
		{"input", 1, NULL, 'i'}, {"classes", 1, NULL, 'k'}, {"meanet", 0, NULL, 'E'},
		{"hard", 1, NULL, 'H'}, {"adaptive-depth", 1, NULL, 'A'}, {"width", 1, NULL, 'w'}, {"names", 1, NULL, 'N'},
		{"mean", 1, NULL, 'M'}, {"std", 1, NULL, 'S'}, {"threshold", 1, NULL, 'T'},
		{"verbose", 0, NULL, 'v'}, {"test-flip", 0, NULL, 'F'}, {"model", 1, NULL, 'm'}, {"output", 1, NULL, 'o'},
		{"epochs", 1, NULL, 'e'}, {"batch", 1, NULL, 'b'}, {"lr", 1, NULL, 'l'},
		{"momentum", 1, NULL, 'u'}, {"nesterov", 0, NULL, 'n'}, {"wd", 1, NULL, 'd'},
		{"schedule", 1, NULL, 'c'}, {"milestones", 1, NULL, 'L'}, {"gamma", 1, NULL, 'g'},
		{"warmup", 1, NULL, 'W'}, {"pad", 1, NULL, 'p'}, {"no-flip", 0, NULL, 'x'},
		{"erase", 1, NULL, 'O'}, {"feature-drop", 1, NULL, 'G'},
		{"adaptive-from-main", 0, NULL, 'B'},
		{"smooth", 1, NULL, 'Z'}, {"distill", 1, NULL, 'D'}, {"temperature", 1, NULL, 'K'},
		{"no-row-shift", 0, NULL, 'R'},
		{"seed", 1, NULL, 's'}, {"val-frac", 1, NULL, 'f'}, {"split-seed", 1, NULL, 'Y'},
		{"share", 1, NULL, 'C'}, {"resume", 0, NULL, 'r'}, {"stop-after", 1, NULL, 'X'}, {"threads", 1, NULL, 't'},
		{"quiet", 0, NULL, 'q'}, {"predictions", 0, NULL, 'P'}, {"help", 0, NULL, 'h'}, {"version", 0, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	struct mea_train_cfg *c = &o->cfg;
	int ch;

	*o = (struct train_opts){ .seed = 1, .threshold = 0.8, .val_frac = 0.1, .share = -1,
		.split_seed = 1 };
	*c = (struct mea_train_cfg){ .epochs = 30, .batch = 128, .lr = 0.1f, .momentum = 0.9f,
		.wd = 5e-4f, .cosine = 1, .nmilestones = 2, .milestones = {0.5f, 0.75f},
		.gamma = 0.1f, .warmup = 1, .aug = {2, 1, 0}, .tau = 4, .row_shift = 1 };
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":j:Ia:i:k:EH:A:w:N:M:S:T:vFm:o:e:b:l:u:nd:c:L:g:W:p:xO:G:BZ:D:K:Rs:f:Y:C:rX:t:qPhV",
			longopts, NULL)) != -1) {
		switch (ch) {
		case 'j': o->job = parse_job(optarg); break;
		case 'I': o->job = JOB_INIT; break;
		case 'a': o->arch.name = optarg; break;
		case 'i': parse_shape(optarg, &o->arch.in_c, &o->arch.in_h, &o->arch.in_w); break;
		case 'k': o->arch.nclasses = (int)opt_long("--classes", optarg, 1, MEA_MODEL_MAX_CLASSES); break;
		case 'E': o->arch.meanet = 1; break;
		case 'H': o->arch.nhard = (int)opt_long("--hard", optarg, 1, MEA_MODEL_MAX_CLASSES); break;
		case 'A': o->arch.adepth = (int)opt_long("--adaptive-depth", optarg, 1, 64); break;
		case 'w': o->arch.width = (float)opt_double("--width", optarg, 0.01, 64); break;
		case 'N': o->names = optarg; break;
		case 'M': o->mean = optarg; break;
		case 'S': o->std = optarg; break;
		case 'T': o->threshold = opt_double("--threshold", optarg, 0, 1e6); break;
		case 'v': o->verbose = 1; break;
		case 'F': o->test_flip = 1; break;
		case 'm': o->model = optarg; break;
		case 'o': o->out = optarg; break;
		case 'e': c->epochs = (int)opt_long("--epochs", optarg, 1, 100000); break;
		case 'b': c->batch = (int)opt_long("--batch", optarg, 1, MEA_MODEL_MAX_BATCH); break;
		case 'l': c->lr = (float)opt_double("--lr", optarg, 0, 1e30); break;
		case 'u': c->momentum = (float)opt_double("--momentum", optarg, 0, 0.999); break;
		case 'n': c->nesterov = 1; break;
		case 'd': c->wd = (float)opt_double("--wd", optarg, 0, 1); break;
		case 'c':
			if (strcmp(optarg, "cosine") && strcmp(optarg, "step"))
				usage_error("--schedule: '%s' is not cosine or step", optarg);
			c->cosine = strcmp(optarg, "cosine") == 0;
			break;
		case 'L': c->nmilestones = parse_list("--milestones", optarg, c->milestones, 8, 0, 1); break;
		case 'g': c->gamma = (float)opt_double("--gamma", optarg, 0, 1); break;
		case 'W': c->warmup = (float)opt_double("--warmup", optarg, 0, 1000); break;
		case 'p': c->aug.pad = (int)opt_long("--pad", optarg, 0, 64); break;
		case 'x': c->aug.flip = 0; break;
		case 'O': c->aug.erase = (float)opt_double("--erase", optarg, 0, 1); break;
		case 'B': o->adaptive_from_main = 1; break;
		case 'G': c->feature_drop = (float)opt_double("--feature-drop", optarg, 0, 0.95); break;
		case 'Z': c->smooth = (float)opt_double("--smooth", optarg, 0, 0.999); break;
		case 'D': c->distill = (float)opt_double("--distill", optarg, 0, 1); break;
		case 'R': c->row_shift = 0; break;
		case 'K': c->tau = (float)opt_double("--temperature", optarg, 0.01, 100); break;
		case 's': o->seed = opt_long("--seed", optarg, 0, 0x7fffffffL); break;
		case 'f': o->val_frac = opt_double("--val-frac", optarg, 0, 1); break;
		case 'Y': o->split_seed = opt_long("--split-seed", optarg, 0, 0x7fffffffL); break;
		case 'C': o->share = opt_double("--share", optarg, 0, 1); break;
		case 'r': o->resume = 1; break;
		case 'X': o->stop_after = opt_long("--stop-after", optarg, 1, 100000); break;
		case 't': o->threads = opt_long("--threads", optarg, 1, 256); break;
		case 'q': o->quiet = 1; break;
		case 'P': o->predictions = 1; break;
		default: cli_other_opt(ch, usage_text, argv);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	c->seed = (uint64_t)o->seed;
	check_args(o);
}

/* A list of one value per channel, or one value for all. */
static void
parse_channels(const char *what, const char *arg, float *v, int C, double min)
{
	float tmp[MEA_MODEL_MAX_IN_C];
	int n = parse_list(what, arg, tmp, MEA_MODEL_MAX_IN_C, min, 1e6);

	if (n != 1 && n != C)
		usage_error("%s: %d values for %d channels", what, n, C);
	for (int k = 0; k < C; k++)
		v[k] = tmp[n == 1 ? 0 : k];
}

static void
read_names(struct mea_model *m, const char *path)
{
	char line[256];
	struct mea_err e;
	FILE *f = fopen(path, "r");
	int k = 0;

	if (!f)
		die(EXIT_USAGE, "--names: %s: cannot open", path);
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (k == m->nclasses)
			die(EXIT_USAGE, "%s: more than %d names", path, m->nclasses);
		if (mea_model_set_class_name(m, k++, line, &e))
			die(EXIT_USAGE, "%s: line %d: %s", path, k, e.msg);
	}
	fclose(f);
	if (k != m->nclasses)
		die(EXIT_USAGE, "%s: %d names for %d classes", path, k, m->nclasses);
}

int
cmd_init(const struct train_opts *o)
{
	struct mea_model *m;
	struct mea_err e;
	char seed[32];

	if (mea_arch_build(&m, &o->arch, &e))
		die(cli_status(e.code), "%s", e.msg);
	mea_model_init(m, (uint64_t)o->seed, MEA_BLOCKS_ALL);
	m->threshold = (float)o->threshold;
	if (o->mean)
		parse_channels("--mean", o->mean, m->mean, m->in_c, -1e6);
	if (o->std)
		parse_channels("--std", o->std, m->std, m->in_c, 1e-6);
	if (o->names)
		read_names(m, o->names);
	snprintf(seed, sizeof seed, "%ld", o->seed);
	if (mea_model_set_info(m, "init-seed", seed, &e) ||
			(o->test_flip && mea_model_set_info(m, "test-flip", "1", &e)) ||
			mea_model_check(m, &e) ||
			mea_model_save(m, o->out, &e))
		die_err(&e);
	if (o->verbose)
		mea_model_print(stderr, m, 0);
	mea_model_free(m);
	return EXIT_OK;
}
