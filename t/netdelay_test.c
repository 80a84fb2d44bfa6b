/*
 * netdelay: copy stdin to stdout, each chunk of bytes SECONDS after it
 * arrived, like a link with that one-way delay (not a slow one: chunks
 * in transit do not wait for each other).  For share/bench-offload.sh:
 *
 *   mea-offload -e 'netdelay_test 0.005 | fakecloud_test | netdelay_test 0.005'
 *
 * is a worker 10 ms of round trip away.  At end of input it delivers what
 * is in transit, then exits.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mea.h"

struct chunk {
	double due;
	size_t len;
	unsigned char *p;
};

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct chunk *q = NULL;
	size_t head = 0, n = 0, cap = 0;
	double delay;
	int in_open = 1;

	if (argc != 2 || (delay = strtod(argv[1], NULL)) < 0) {
		fprintf(stderr, "usage: netdelay_test SECONDS\n");
		return 2;
	}
	while (in_open || head < n) {
		struct pollfd p = { 0, POLLIN, 0 };
		int ms = -1;

		if (head < n) {
			double left = q[head].due - now();
			ms = left > 0 ? (int)(left * 1000) + 1 : 0;
		}
		if (poll(&p, in_open ? 1 : 0, ms) < 0 && errno != EINTR)
			return 1;
		if (in_open && p.revents) {
			unsigned char buf[65536];
			ssize_t k = read(0, buf, sizeof buf);
			if (k < 0 && errno != EINTR)
				return 1;
			if (k == 0)
				in_open = 0;
			if (k > 0) {
				if (n == cap) {
					cap = cap ? 2 * cap : 64;
					if (!(q = realloc(q, cap * sizeof *q)))
						return 1;
				}
				if (!(q[n].p = malloc((size_t)k)))
					return 1;
				memcpy(q[n].p, buf, (size_t)k);
				q[n].len = (size_t)k;
				q[n++].due = now() + delay;
			}
		}
		for (; head < n && q[head].due <= now(); head++) {
			if (mea_write_all(1, q[head].p, q[head].len))
				return 1;
			free(q[head].p);
		}
		if (head == n)
			head = n = 0;
	}
	free(q);
	return 0;
}
