/* mea-offload: send the records routed to the cloud to a cloud worker and
 * write its answers into them, in input order (see mea-offload(1)). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "offload.h"

#define CLOUD_MODEL "fmnist-cloud.mea-model"

static const char usage_text[] =
"usage: mea-offload [-fvV] [-c host:port | -e command | -m model] [-n inflight]\n"
"                   [-t seconds] [-r retries]\n"
"Send each record routed to the cloud (route=cloud, or sweep=1) to a cloud\n"
"worker and add its answer: cloud_pred, cloud_conf, macs_cloud, bytes_up,\n"
"bytes_down, t_offload, and for route=cloud pred, conf and exit=cloud.  Other\n"
"records pass through.  Without -c or -e the shipped cloud model runs here.\n"
"When the cloud stays unreachable the edge answer stands (exit=fallback,\n"
"status 5).\n"
"  -c, --connect HOST:PORT  a worker over TCP (mea-cloud.sh, socat, haproxy)\n"
"  -e, --exec COMMAND       run the worker with sh -c; stream on its stdin/stdout\n"
"  -m, --model FILE         the model of the local worker (mea-main --cloud)\n"
"  -n, --inflight N         requests in flight at once (default 8)\n"
"  -t, --timeout SECONDS    to connect, and for each answer (default 10)\n"
"  -r, --retries N          reconnects in a row before giving up (default 5)\n"
"  -f, --send-feat          also send the tensor \"feat\"\n"
"  -v, --verbose            a summary line on stderr at the end\n"
"  -h, --help               this help;  -V, --version  the version\n";

static struct {
	const char *model;
	int verbose;
} opt;

static void
parse_args(int argc, char **argv, struct mea_offload_conf *c)
{
	static const struct option longopts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "exec", required_argument, NULL, 'e' },
		{ "model", required_argument, NULL, 'm' },
		{ "inflight", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "retries", required_argument, NULL, 'r' },
		{ "send-feat", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:e:m:n:t:r:fvhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': c->connect = optarg; break;
		case 'e': c->command = optarg; break;
		case 'm': opt.model = optarg; break;
		case 'n':
			c->inflight = (int)opt_long("--inflight", optarg, 1, MEA_OFFLOAD_MAX_INFLIGHT);
			break;
		case 't': c->timeout = opt_double("--timeout", optarg, 0.001, 86400); break;
		case 'r': c->retries = (int)opt_long("--retries", optarg, 0, 1000); break;
		case 'f': c->send_feat = 1; break;
		case 'v': opt.verbose = 1; break;
		default: cli_other_opt(ch, usage_text, argv);
		}
	}
	if (optind < argc)
		usage_error("%s: unexpected argument (the stream comes on stdin)", argv[optind]);
	if (!!c->connect + !!c->command + !!opt.model > 1)
		usage_error("give at most one of --connect, --exec and --model");
}

/* s in single quotes for sh, appended to buf. */
static void
append_quoted(char *buf, size_t n, const char *s)
{
	size_t len = strlen(buf);

	for (buf[len++] = '\''; *s && len + 5 < n; s++) {
		if (*s == '\'') {
			memcpy(buf + len, "'\\''", 4);
			len += 4;
		} else {
			buf[len++] = *s;
		}
	}
	buf[len++] = '\'';
	buf[len] = '\0';
}

/* A model the local worker could not load is status 3 here, in one
 * line, rather than a worker failing at every retry. */
static void
check_model(const char *path)
{
	struct mea_model *m;
	struct mea_err e;

	if (mea_model_load(&m, path, &e))
		die_err(&e);
	mea_model_free(m);
}

/*
 * The default worker: mea-main --cloud on the shipped cloud model, both
 * found from this executable: an installed tree keeps the weights in
 * ../share/mea/weights, the build tree in ../weights.  MEA_CLOUD, a
 * command, replaces all of it.
 */
static const char *
default_command(void)
{
	static char cmd[3 * PATH_MAX + 64];
	char dir[PATH_MAX], path[PATH_MAX + 64], model[PATH_MAX + 64];
	const char *env = getenv("MEA_CLOUD"), *sub[] = { "share/mea/weights", "weights" };
	ssize_t k;
	char *slash;

	if (!opt.model && env && *env)
		return env;
	if ((k = readlink("/proc/self/exe", dir, sizeof dir - 1)) <= 0)
		k = 0;
	dir[k] = '\0';
	if ((slash = strrchr(dir, '/')))
		*slash = '\0';
	else
		strcpy(dir, ".");
	if (opt.model) {
		check_model(opt.model);
		snprintf(model, sizeof model, "%s", opt.model);
	} else {
		model[0] = '\0';
		for (int i = 0; i < 2 && !model[0]; i++) {
			snprintf(path, sizeof path, "%s/../%s/%s", dir, sub[i], CLOUD_MODEL);
			if (access(path, R_OK) == 0)
				snprintf(model, sizeof model, "%s", path);
		}
		if (!model[0])
			die(EXIT_MODEL, "%s: not in %s/../share/mea/weights or %s/../weights "
					"(give --model, --exec or --connect)", CLOUD_MODEL, dir, dir);
		check_model(model);
	}
	snprintf(path, sizeof path, "%s/mea-main", dir);
	cmd[0] = '\0';
	append_quoted(cmd, sizeof cmd, access(path, X_OK) == 0 ? path : "mea-main");
	strcat(cmd, " -m ");
	append_quoted(cmd, sizeof cmd, model);
	strcat(cmd, " --cloud");
	return cmd;
}

static void
report(const struct mea_offload_stats *st)
{
	warnx("%llu records, %llu for the cloud: %llu answered there, %llu at the edge; "
			"%llu connections, %llu failed, %llu requests resent; "
			"%llu bytes up, %llu down",
			(unsigned long long)st->records, (unsigned long long)st->routed,
			(unsigned long long)st->answered, (unsigned long long)st->fallback,
			(unsigned long long)st->connects, (unsigned long long)st->failures,
			(unsigned long long)st->resent, (unsigned long long)st->bytes_up,
			(unsigned long long)st->bytes_down);
}

int
main(int argc, char **argv)
{
	struct mea_offload_conf conf;
	struct mea_offload_stats st;
	struct mea_reader in;
	struct mea_writer out;
	struct mea_err e;
	int rc, status = EXIT_OK;

	cli_init(argv[0]);
	mea_offload_conf_init(&conf);
	parse_args(argc, argv, &conf);
	if (!conf.connect && !conf.command)
		conf.command = default_command();

	mea_reader_init(&in, 0, "stdin");
	mea_writer_init(&out, 1, "stdout");
	rc = mea_offload_run(&conf, &in, &out, &st, &e);
	mea_reader_free(&in);
	mea_writer_free(&out);

	if (opt.verbose)
		report(&st);
	if (rc == MEA_E_ARG)
		usage_error("%s", e.msg);
	if (rc != MEA_OK)
		die_err(&e);
	if (st.fallback > 0) {
		warnx("%s; %llu record%s answered at the edge", st.failure,
				(unsigned long long)st.fallback, st.fallback == 1 ? "" : "s");
		status = EXIT_CLOUD;
	}
	return close_stdout(status);
}
