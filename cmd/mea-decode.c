/* mea-decode: PNG, JPEG, IDX and CIFAR files into a mea record stream. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "image.h"

static const char usage_text[] =
"usage: mea-decode [-DFStV] [-s HxW | -r N] [-C HxW] [-c 1|3] [-l labels]\n"
"                  [-L classes] [-b 10|100] [-e dir] [-n N] [path ...]\n"
"Decode images, folders, IDX and CIFAR files and streams into mea records.\n"
"  -s, --size HxW|N         resize to exactly HxW\n"
"  -r, --resize N           resize so that the shorter side is N\n"
"  -C, --crop HxW|N         then keep the centred HxW\n"
"  -c, --channels 1|3       grey or RGB (default: as in the file)\n"
"  -F, --fast               let libjpeg scale down while decoding\n"
"  -l, --labels FILE        IDX labels (default: the file beside the images)\n"
"  -L, --classes FILE       class names, one a line; label = folder's place\n"
"  -D, --classes-from-dirs  classes = sorted sub-folders of the folders given\n"
"  -b, --cifar 10|100       read files as CIFAR-10/100 binary batches\n"
"  -e, --export DIR         write DIR/CLASS/SEQ.png instead of records\n"
"  -n, --limit N            stop after N records\n"
"  -S, --strict             stop at the first bad input\n"
"  -t, --text               print the records as text\n"
"  -h, --help               print this help;  -V, --version  the version\n";

static struct {
	struct mea_prep prep;
	const char *labels, *classes, *export;
	int cifar, from_dirs, fast, strict, text;
	int min_h, min_w;           /* how small a JPEG may decode, with --fast */
	long limit;
} opt;

/* Everything a record needs, reused from one to the next (and still
 * reachable when the program exits from anywhere: exit frees it). */
static struct mea_classes classes;
static struct mea_writer out;
static struct mea_record rec;
static struct mea_image im, tmp;
static struct mea_imagefile set;
static struct mea_reader rd;
static unsigned char *filebuf;
static size_t filecap;
static char line[PATH_MAX + 2];  /* a path from stdin, its newline, the NUL */
static uint64_t seq;
static int status = EXIT_OK;

/* rec (and im, its image) is finished: out it goes, whole. */
static void
emit(void)
{
	struct mea_err e;
	int64_t label = -1;

	if (opt.export) {
		mea_field_int(&rec, MEA_F_LABEL, &label);     /* stays -1 without one */
		if (mea_image_export(&im, opt.export, &classes, label, seq, &e))
			die_err(&e);
	} else if (opt.text) {
		mea_record_print(stdout, &rec, seq, 8);
	} else if (mea_write(&out, &rec, &e)) {
		die_err(&e);
	}
	if (++seq == (uint64_t)opt.limit || ferror(stdout))   /* or: --text | head */
		exit(close_stdout(status));
}

/* One input is done: out goes its record or, when rc says it was bad, one
 * line why (where is NULL when e names the place); --strict stops there. */
static void
done(const char *where, int rc, const struct mea_err *e)
{
	if (rc == MEA_OK) {
		emit();
		return;
	}
	warnx("%s%s%s", where ? where : "", where ? ": " : "", e->msg);
	status = e->code == MEA_E_NOMEM ? EXIT_IO : EXIT_DATA;
	if (opt.strict || status == EXIT_IO)
		exit(close_stdout(status));
}

/* im was just decoded: prepare it and make rec of it. */
static int
make_record(const char *id, int label, int coarse, struct mea_err *e)
{
	return mea_image_prepare(&im, &tmp, &opt.prep, e) ||
		mea_image_record(&rec, &im, id, seq, label, coarse, e) ? e->code : MEA_OK;
}

static int
do_image(void *arg, const char *path, const struct mea_err *walk_err)
{
	struct mea_err e;
	int label = -1;

	(void)arg;
	if (walk_err)
		done(path, walk_err->code, walk_err);
	else
		done(path, (classes.n && mea_classes_label(&classes, path, &label, &e)) ||
				mea_image_load(&im, path, &filebuf, &filecap,
					opt.fast * opt.min_h, opt.fast * opt.min_w, &e) ||
				make_record(path, label, -1, &e), &e);
	return 0;
}

/* An IDX or CIFAR file: one record per image, id "path:index". */
static void
do_set(const char *path, int kind)
{
	char id[MEA_MAX_STR];
	struct mea_err e;
	int rc, label, coarse;

	rc = mea_imagefile_open(&set, path, kind, opt.labels, &e);
	while (!rc && (rc = mea_imagefile_next(&set, &im, &label, &coarse, &e)) == MEA_OK) {
		snprintf(id, sizeof id, "%s:%" PRIu64, path, set.next - 1);
		done(id, make_record(id, label, coarse, &e), &e);
	}
	if (rc != MEA_EOF)
		done(path, rc, &e);
	mea_imagefile_close(&set);
}

/* A mea stream ("-" for stdin): records pass through, prepared when
 * options ask for it. */
static void
do_stream(const char *path)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY) : 0, rc;
	int prep = opt.prep.c || opt.prep.h || opt.prep.side || opt.prep.crop_h;
	char where[MEA_MAX_STR + 32];
	struct mea_err e;

	if (fd < 0) {
		done(path, mea_errf(&e, MEA_E_IO, "%s", strerror(errno)), &e);
		return;
	}
	mea_reader_init(&rd, fd, fd ? path : "stdin");
	while ((rc = mea_read(&rd, &rec, &e)) == MEA_OK) {
		snprintf(where, sizeof where, "%s: record %" PRIu64, rd.name, rd.nrec - 1);
		done(where, (prep || opt.export) &&
				mea_image_prepare_record(&rec, &im, &tmp, &opt.prep, prep, &e), &e);
	}
	if (rc != MEA_EOF)
		done(NULL, rc, &e);     /* the message names the stream and record */
	mea_reader_free(&rd);
	if (fd)
		close(fd);
}

/* listed: the path came from stdin, where a folder is a mistake. */
static void
do_path(const char *path, int listed)
{
	struct mea_err e;
	struct stat st;
	int kind, rc = 0;

	if (!listed && strcmp(path, "-") == 0)
		do_stream(path);
	else if (!listed && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		rc = mea_dir_walk(path, do_image, NULL, &e);  /* fails only for memory */
	else if (mea_file_kind(path, opt.cifar, &kind, &e))
		done(path, e.code, &e);
	else if (kind == MEA_KIND_STREAM)
		do_stream(path);
	else if (kind == MEA_KIND_IDX || kind == MEA_KIND_CIFAR10 || kind == MEA_KIND_CIFAR100)
		do_set(path, kind);
	else
		do_image(NULL, path, NULL);
	if (rc)
		die_err(&e);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", 1, NULL, 's' }, { "resize", 1, NULL, 'r' }, { "crop", 1, NULL, 'C' },
		{ "channels", 1, NULL, 'c' }, { "fast", 0, NULL, 'F' }, { "labels", 1, NULL, 'l' },
		{ "classes", 1, NULL, 'L' }, { "classes-from-dirs", 0, NULL, 'D' },
		{ "cifar", 1, NULL, 'b' }, { "export", 1, NULL, 'e' }, { "limit", 1, NULL, 'n' },
		{ "strict", 0, NULL, 'S' }, { "text", 0, NULL, 't' }, { "help", 0, NULL, 'h' },
		{ "version", 0, NULL, 'V' }, { NULL, 0, NULL, 0 },
	};
	struct mea_err e;
	int c;

	cli_init(argv[0]);
	opterr = 0;                 /* getopt would name the program by its path */
	while ((c = getopt_long(argc, argv, ":s:r:C:c:Fl:L:Db:e:n:SthV", longopts, NULL)) != -1) {
		switch (c) {
		case 's': opt_size("--size", optarg, &opt.prep.h, &opt.prep.w); break;
		case 'r': opt.prep.side = (int)opt_long("--resize", optarg, 1, 16384); break;
		case 'C': opt_size("--crop", optarg, &opt.prep.crop_h, &opt.prep.crop_w); break;
		case 'c': opt.prep.c = (int)opt_long("--channels", optarg, 1, 3); break;
		case 'F': opt.fast = 1; break;
		case 'l': opt.labels = optarg; break;
		case 'L': opt.classes = optarg; break;
		case 'D': opt.from_dirs = 1; break;
		case 'b': opt.cifar = (int)opt_long("--cifar", optarg, 10, 100); break;
		case 'e': opt.export = optarg; break;
		case 'n': opt.limit = opt_long("--limit", optarg, 1, LONG_MAX); break;
		case 'S': opt.strict = 1; break;
		case 't': opt.text = 1; break;
		default: cli_other_opt(c, usage_text, argv);
		}
	}
	if (opt.prep.c == 2 || (opt.cifar && opt.cifar != 10 && opt.cifar != 100))
		usage_error("--channels takes 1 or 3, --cifar 10 or 100");
	if ((opt.prep.h && opt.prep.side) || (opt.text && opt.export) ||
			(opt.classes && opt.from_dirs))
		usage_error("--size and --resize, --text and --export, --classes and "
				"--classes-from-dirs exclude each other");
	if (!opt.text && !opt.export && isatty(1))
		usage_error("stdout is a terminal: use --text, or send the records on");

	if (opt.classes && mea_classes_load(&classes, opt.classes, &e))
		die(e.code == MEA_E_NOMEM ? EXIT_IO : EXIT_DATA, "%s: %s", opt.classes, e.msg);
	for (int i = optind; opt.from_dirs && i < argc; i++)
		if (mea_classes_from_dir(&classes, argv[i], &e))
			die(cli_status(e.code), "%s: %s", argv[i], e.msg);
	mea_prep_min(&opt.prep, &opt.min_h, &opt.min_w);
	mea_writer_init(&out, 1, "stdout");

	for (int i = optind; i < argc; i++)
		do_path(argv[i], 0);
	for (unsigned long n = 1; optind == argc && fgets(line, sizeof line, stdin); n++) {
		if (!strchr(line, '\n') && strlen(line) == sizeof line - 1) {
			/* Longer than any path: skip it, and keep memory bounded
			 * on a line that never ends. */
			int ch;
			while ((ch = getchar()) != EOF && ch != '\n')
				;
			warnx("stdin: line %lu: longer than %d bytes", n, PATH_MAX);
			status = EXIT_DATA;
			if (opt.strict)
				exit(close_stdout(status));
			continue;
		}
		line[strcspn(line, "\n")] = '\0';
		if (*line)
			do_path(line, 1);
	}
	if (optind == argc && ferror(stdin))
		die(EXIT_IO, "stdin: %s", strerror(errno));
	return close_stdout(status);
}
