/* cli.c: shared command-line plumbing for the mea programs. */
#include <errno.h>
#include <getopt.h>
#include <time.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

#include "cli.h"
#include "model.h"

const char *argv0 = "mea";

/*
 * Debian's OpenBLAS 0.3.21 does not know every recent x86 CPU and then
 * falls back to its Prescott (SSE3) kernels, several times slower than
 * the AVX2 ones the CPU can run.  OpenBLAS chooses its kernel when it is
 * loaded, before main(), so the only remedy is to name the kernel in the
 * environment and start again.  An explicit OPENBLAS_CORETYPE is always
 * left alone.
 */
static void
fast_blas(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	static char buf[65536];
	char *argv[256];
	int argc = 0, fd;
	ssize_t n;

	if (getenv("OPENBLAS_CORETYPE") || !strstr(mea_blas_info(), "core Prescott"))
		return;
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
		return;
	if ((fd = open("/proc/self/cmdline", O_RDONLY)) < 0)
		return;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0 || (size_t)n >= sizeof buf - 1)
		return;
	for (char *p = buf; p < buf + n && argc < 255; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	if (setenv("OPENBLAS_CORETYPE", "Haswell", 1) == 0)
		execv("/proc/self/exe", argv);
	unsetenv("OPENBLAS_CORETYPE");   /* exec failed: carry on, slowly */
#endif
}

void
cli_init(const char *name)
{
	const char *slash = strrchr(name, '/');
	argv0 = slash ? slash + 1 : name;
	fast_blas();
	/* A closed stdout (mea-decode | head) ends the program quietly via
	 * EPIPE from write(2), which the writers report as an I/O error; the
	 * default SIGPIPE would kill it before it could say anything, so it
	 * stays ignored and the programs exit with EXIT_IO silently on EPIPE. */
	signal(SIGPIPE, SIG_IGN);
}

/* One line, always: what a message quotes from the input (a record's
 * id, a file name) may hold newlines or terminal escapes; they print as
 * '?'. */
static void
vwarn(const char *fmt, va_list ap)
{
	char buf[1024];

	vsnprintf(buf, sizeof buf, fmt, ap);
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	fprintf(stderr, "%s: %s\n", argv0, buf);
}

void
warnx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
}

void
die(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
	exit(status);
}

int
cli_status(int code)
{
	switch (code) {
	case MEA_OK: case MEA_EOF: return EXIT_OK;
	case MEA_E_FORMAT: case MEA_E_TRUNC: case MEA_E_LIMIT: case MEA_E_IMAGE:
		return EXIT_DATA;
	case MEA_E_MODEL: return EXIT_MODEL;
	case MEA_E_ARG: return EXIT_USAGE;
	case MEA_E_NET: return EXIT_CLOUD;
	default: return EXIT_IO;
	}
}

void
die_err(const struct mea_err *e)
{
	/* A reader whose consumer went away (EPIPE) ends quietly. */
	if (e->code == MEA_E_IO && strstr(e->msg, strerror(EPIPE)))
		exit(EXIT_IO);
	die(cli_status(e->code), "%s", e->msg);
}

void
usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
	exit(EXIT_USAGE);
}

void
print_version(void)
{
	printf("%s %s\n", argv0, MEA_VERSION);
}

void
cli_other_opt(int c, const char *usage, char **argv)
{
	const char *opt = argv[optind - 1];

	switch (c) {
	case 'h':
		fputs(usage, stdout);
		exit(close_stdout(EXIT_OK));
	case 'V':
		print_version();
		exit(close_stdout(EXIT_OK));
	case ':':
		usage_error("%s: missing value", opt);
	default:
		/* getopt leaves a grouped short option's letter in optopt */
		if (optopt)
			usage_error("unknown option '-%c'", optopt);
		usage_error("unknown option '%s'", opt);
	}
}

double
cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

long
opt_long(const char *opt, const char *arg, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < min || v > max)
		usage_error("%s: '%s' is not a whole number from %ld to %ld", opt, arg, min, max);
	return v;
}

double
opt_double(const char *opt, const char *arg, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || !(v >= min && v <= max))
		usage_error("%s: '%s' is not a number from %g to %g", opt, arg, min, max);
	return v;
}

void
opt_size(const char *opt, const char *arg, int *h, int *w)
{
	char buf[64], *x;

	if (strlen(arg) >= sizeof buf)
		usage_error("%s: '%s' is not a size like 28x28", opt, arg);
	strcpy(buf, arg);
	x = strchr(buf, 'x');
	if (!x) {
		*h = *w = (int)opt_long(opt, buf, 1, 16384);
		return;
	}
	*x = '\0';
	*h = (int)opt_long(opt, buf, 1, 16384);
	*w = (int)opt_long(opt, x + 1, 1, 16384);
}

int
cli_threads(long opt)
{
	const char *env;

	if (opt > 0)
		return (int)opt;
	env = getenv("MEA_THREADS");
	if (env && *env)
		return (int)opt_long("MEA_THREADS", env, 1, 256);
	return 1;
}

int
close_stdout(int status)
{
	if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
		if (errno == EPIPE)
			return status ? status : EXIT_IO;
		warnx("stdout: %s", strerror(errno));
		return EXIT_IO;
	}
	return status;
}

/* "conv 3x3 s2", "dwconv 3x3 s1", "conv 1x1 s1 g2", with "+add" when a
 * residual add is fused in and " nhwc" when the step runs channels-last;
 * other ops by name. */
static void
step_label(const struct mea_node *n, const struct mea_node *in, int fused_add, int nhwc,
		char *buf, size_t len)
{
	if (n->op != MEA_OP_CONV) {
		snprintf(buf, len, "%s", mea_op_name(n->op));
		return;
	}
	int dw = n->groups > 1 && n->groups == in->C && n->K == in->C;
	int k = snprintf(buf, len, "%s %dx%d s%d", dw ? "dwconv" : "conv", n->R, n->S, n->stride);
	if (k > 0 && (size_t)k < len && n->groups > 1 && !dw)
		k += snprintf(buf + k, len - (size_t)k, " g%d", n->groups);
	if (k > 0 && (size_t)k < len && fused_add)
		k += snprintf(buf + k, len - (size_t)k, "+add");
	if (k > 0 && (size_t)k < len && nhwc)
		snprintf(buf + k, len - (size_t)k, " nhwc");
}

void
cli_print_profile(const struct mea_model *m, const struct mea_plan *p)
{
	int ns = mea_plan_nsteps(p);
	double total = 0, macs = 0;
	uint64_t images = 0;
	struct mea_step_time t;

	for (int s = 0; s < ns; s++) {
		mea_plan_step_time(p, s, &t);
		total += t.seconds;
		if (t.images > images)
			images = t.images;
	}
	fprintf(stderr, "%s: profile: %d steps, %llu images, %.3f s in the steps\n", argv0, ns,
		(unsigned long long)images, total);
	fprintf(stderr, "%5s  %-26s %-20s %12s %9s %9s %7s %8s\n", "step", "layer", "op",
		"output", "MMAC/img", "ms", "share", "GFLOP/s");
	for (int s = 0; s < ns; s++) {
		const struct mea_node *n;
		char op[40], shape[40];
		mea_plan_step_time(p, s, &t);
		n = &m->node[t.node];
		if (t.block)   /* a fused inverted residual: its stride, by its last node's name */
			snprintf(op, sizeof op, "ir s%d%s%s", n->H / m->node[t.last].H,
				t.fused_add ? "+add" : "", t.channels_last ? " nhwc" : "");
		else
			step_label(n, n->input[0] >= 0 ? &m->node[n->input[0]] : n, t.fused_add,
				t.channels_last, op, sizeof op);
		n = &m->node[t.last];
		snprintf(shape, sizeof shape, "%dx%dx%d", n->C, n->H, n->W);
		macs += (double)t.macs;
		fprintf(stderr, "%5d  %-26s %-20s %12s %9.2f %9.1f %6.1f%% %8.1f\n", s, n->name, op,
			shape, (double)t.macs * 1e-6, t.seconds * 1e3,
			total > 0 ? 100 * t.seconds / total : 0,
			t.seconds > 0 ? 2.0 * (double)t.macs * (double)t.images / t.seconds * 1e-9 : 0);
	}
	fprintf(stderr, "%5s  %-26s %-20s %12s %9.2f %9.1f %6.1f%% %8.1f\n", "", "total", "", "",
		macs * 1e-6, total * 1e3, 100.0,
		total > 0 ? 2.0 * macs * (double)images / total * 1e-9 : 0);
}
