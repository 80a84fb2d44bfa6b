/*
 * fuzz.h: what the libFuzzer targets in fuzz/ share.
 *
 * Each target is one file defining LLVMFuzzerTestOneInput.  The same
 * files are compiled into t/fuzz_replay_test.c (by gcc, without
 * libFuzzer), which replays fuzz/corpus and fuzz/regress in `make test`;
 * that is why every other function here and in the targets is static
 * with a prefix of its own.
 *
 * Besides what the sanitizers catch, the targets check the library's
 * promises and abort() when one is broken: an error code is one of the
 * MEA_E_* codes and matches e->code, and its message is one non-empty
 * line.
 */
#ifndef MEA_FUZZ_H
#define MEA_FUZZ_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mea.h"

/* A poisoned error, so a function that fails without filling it in is
 * caught. */
static inline void
fuzz_err_reset(struct mea_err *e)
{
	e->code = -1;
	memset(e->msg, 0, sizeof e->msg);
}

static inline void
fuzz_fail(const char *what, int rc, const struct mea_err *e)
{
	fprintf(stderr, "fuzz: %s: rc %d, e->code %d, message \"%s\"\n", what, rc,
			e ? e->code : -1, e ? e->msg : "");
	abort();
}

/* rc is 0, MEA_EOF or a MEA_E_* code with e filled in as promised. */
static inline void
fuzz_check(const char *what, int rc, const struct mea_err *e)
{
	if (rc == MEA_OK || rc == MEA_EOF)
		return;
	if (rc < MEA_E_FORMAT || rc > MEA_E_NET)
		fuzz_fail(what, rc, e);
	if (e->code != rc || !e->msg[0] || strchr(e->msg, '\n'))
		fuzz_fail(what, rc, e);
}

/* Output nobody reads, for the printing functions. */
static inline FILE *
fuzz_devnull(void)
{
	static FILE *f;

	if (!f && !(f = fopen("/dev/null", "w")))
		abort();
	return f;
}

/* Writers to a closed pipe get EPIPE, as the programs do. */
static inline void
fuzz_ignore_sigpipe(void)
{
	static int done;

	if (!done) {
		signal(SIGPIPE, SIG_IGN);
		done = 1;
	}
}

#endif
