/*
 * cli.h: what every mea program shares: its name, the exit statuses,
 * one-line diagnostics and checked option parsing.  Library code never
 * includes this.
 */
#ifndef MEA_CLI_H
#define MEA_CLI_H

#include <stdint.h>
#include "mea.h"

/* Exit statuses, the same in every program (see mea(7)). */
enum {
	EXIT_OK = 0,
	EXIT_DATA = 1,   /* bad input data: a corrupt stream, an image that failed */
	EXIT_USAGE = 2,  /* bad command line */
	EXIT_MODEL = 3,  /* a model file is missing, unreadable or malformed */
	EXIT_IO = 4,     /* system or I/O error: open, write, memory */
	EXIT_CLOUD = 5,  /* the cloud was unreachable; fallback answers were used */
};

extern const char *argv0;        /* program name for messages */

void cli_init(const char *name); /* sets argv0, ignores nothing, checks stdout */
/* "argv0: message" on stderr. */
void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Exit status for a library error code. */
int cli_status(int code);
/* Print e's message and exit with the status that fits its code. */
_Noreturn void die_err(const struct mea_err *e);

_Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void print_version(void);        /* "argv0 0.1.0" on stdout */
/* The cases every option loop shares, for getopt_long with an option
 * string that starts with ':': -h/--help prints usage and exits 0,
 * -V/--version prints the version and exits 0, a missing value or an
 * unknown option is a usage error naming it.  Call it from `default:`. */
_Noreturn void cli_other_opt(int c, const char *usage, char **argv);
/* Seconds on the monotonic clock, for the t_* fields. */
double cli_now(void);

/* Option parsing with range checks; a bad value names the option and
 * exits with EXIT_USAGE. */
long opt_long(const char *opt, const char *arg, long min, long max);
double opt_double(const char *opt, const char *arg, double min, double max);
/* "HxW" or "N" (square). */
void opt_size(const char *opt, const char *arg, int *h, int *w);

/* Threads: --threads wins, then MEA_THREADS, then 1. */
int cli_threads(long opt);

/* Close stdout and report a failed write (a full disk); returns the
 * status to exit with. */
int close_stdout(int status);

/* --profile: a table on stderr of the time each step of a profiled plan
 * took, its share and its GFLOP/s (mea_plan_profile). */
struct mea_model;
struct mea_plan;
void cli_print_profile(const struct mea_model *m, const struct mea_plan *p);

#endif
