/*
 * stream_fuzz: the record stream (mea-stream(5)) from both ends.
 *
 *  1. The input as one record, through mea_record_decode.  A record it
 *     accepts must encode back to exactly the same bytes: the format has
 *     one spelling, so anything else was accepted by mistake.
 *  2. The input as a stream, through mea_read on a pipe that a thread
 *     fills in chunks of 1..64 bytes (so the reader sees short reads and
 *     records split anywhere).  The reader must return the same records
 *     and the same final error as a walk over the bytes in memory.
 *  3. Every record it reads goes through what the programs do with a
 *     record: the gate's rule, the scorer, the text dumps.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "fuzz.h"

struct stream_feed {
	int fd;
	const uint8_t *p;
	size_t n, chunk;
};

static void *
stream_writer(void *arg)
{
	struct stream_feed *f = arg;

	for (size_t off = 0; off < f->n; ) {
		size_t k = f->n - off < f->chunk ? f->n - off : f->chunk;
		ssize_t w = write(f->fd, f->p + off, k);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;          /* the reader stopped early: EPIPE */
		off += (size_t)w;
	}
	close(f->fd);
	return NULL;
}

static uint32_t
stream_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* What mea_read must make of record k of the bytes in memory: 0 and the
 * record in r, MEA_EOF, or an error code; *off moves past a good record. */
static int
stream_expect(const uint8_t *p, size_t n, size_t *off, struct mea_record *r,
		struct mea_err *e)
{
	size_t have = n - *off, want;
	int rc;

	if (have == 0)
		return MEA_EOF;
	if (have < MEA_RECORD_HEADER)
		return MEA_E_TRUNC;
	want = MEA_RECORD_HEADER + (size_t)stream_le32(p + *off + 8);
	fuzz_err_reset(e);
	rc = mea_record_decode(r, p + *off, have < want ? have : want, e);
	fuzz_check("mea_record_decode (walk)", rc, e);
	if (rc == MEA_OK)
		*off += want;
	return rc;
}

/* What a pipeline does with one record. */
static void
stream_use(struct mea_record *r, struct mea_gate *g, struct mea_score *sc,
		struct mea_score *sw, uint64_t idx)
{
	struct mea_record copy;
	struct mea_err e;
	int rc;

	mea_record_init(&copy);
	fuzz_err_reset(&e);
	rc = mea_record_copy(&copy, r, &e);
	fuzz_check("mea_record_copy", rc, &e);
	mea_record_print(fuzz_devnull(), r, idx, 8);
	mea_score_record_line(fuzz_devnull(), r);
	fuzz_err_reset(&e);
	fuzz_check("mea_score_add", mea_score_add(sc, r, &e), &e);
	fuzz_err_reset(&e);
	if (!(rc = mea_gate_route(g, &copy, &e))) {
		fuzz_err_reset(&e);
		fuzz_check("mea_score_add (sweep)", mea_score_add(sw, &copy, &e), &e);
	}
	fuzz_check("mea_gate_route", rc, &e);
	mea_record_clear(&copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int32_t hard[2] = { 2, 0 };
	struct mea_record r, want;
	struct stream_feed feed;
	struct mea_reader rd;
	struct mea_gate gate;
	struct mea_score sc, sw;
	struct mea_err e, we;
	unsigned char *buf = NULL;
	size_t cap = 0, len, off = 0;
	pthread_t th;
	uint64_t nrec = 0, no_cloud;
	int fds[2], rc, wrc;

	fuzz_ignore_sigpipe();
	mea_record_init(&r);
	mea_record_init(&want);

	/* 1. One record, and its one spelling. */
	fuzz_err_reset(&e);
	rc = mea_record_decode(&r, data, size, &e);
	fuzz_check("mea_record_decode", rc, &e);
	if (rc == MEA_OK) {
		fuzz_err_reset(&e);
		rc = mea_record_encode(&r, &buf, &cap, &len, &e);
		fuzz_check("mea_record_encode", rc, &e);
		if (rc || len != size || memcmp(buf, data, size) != 0)
			fuzz_fail("a decoded record does not encode to the same bytes", rc, &e);
	}
	free(buf);
	mea_record_clear(&r);

	/* 2. A stream through a pipe, in chunks. */
	if (pipe(fds) != 0)
		abort();
	feed.fd = fds[1];
	feed.p = data;
	feed.n = size;
	feed.chunk = 1 + (size ? data[size - 1] % 64 : 0);
	if (pthread_create(&th, NULL, stream_writer, &feed) != 0)
		abort();
	mea_reader_init(&rd, fds[0], "fuzz");
	mea_gate_init(&gate);
	gate.sweep = 1;
	mea_score_init(&sc);
	mea_score_init(&sw);
	sw.sweep = 1;
	fuzz_err_reset(&e);
	if (mea_gate_set_hard(&gate, hard, 2, &e) || mea_score_set_hard(&sw, hard, 2, &e))
		fuzz_fail("setting the hard classes", e.code, &e);
	for (;;) {
		(void)mea_reader_pending(&rd);
		fuzz_err_reset(&e);
		rc = mea_read(&rd, &r, &e);
		fuzz_check("mea_read", rc, &e);
		wrc = stream_expect(data, size, &off, &want, &we);
		if (rc != wrc)
			fuzz_fail("mea_read and the walk in memory disagree", rc, &e);
		if (rc)
			break;
		if (r.nfields != want.nfields || r.ntensors != want.ntensors)
			fuzz_fail("mea_read and mea_record_decode read different records", rc, &e);
		stream_use(&r, &gate, &sc, &sw, nrec++);
	}
	if (rd.nrec != nrec)
		fuzz_fail("the reader's record count is wrong", rc, &e);
	close(fds[0]);
	pthread_join(th, NULL);

	/* 3. The summaries of what was read. */
	mea_score_print(fuzz_devnull(), &sc, &(struct mea_score_view){ 0 });
	mea_score_print_json(fuzz_devnull(), &sc, &(struct mea_score_view){ 0 });
	fuzz_err_reset(&e);
	rc = mea_score_sweep(fuzz_devnull(), &sw, &(struct mea_score_sweep_opts){ 0, -1, -1, -1,
			-1, NULL }, &no_cloud, &e);
	fuzz_check("mea_score_sweep", rc, &e);
	fflush(fuzz_devnull());

	mea_record_clear(&r);
	mea_record_clear(&want);
	mea_reader_free(&rd);
	mea_gate_free(&gate);
	mea_score_free(&sc);
	mea_score_free(&sw);
	return 0;
}
