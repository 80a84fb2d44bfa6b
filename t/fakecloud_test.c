/*
 * fakecloud: a stand-in cloud worker for the mea-offload tests and the
 * offload benchmark, until mea-main --cloud serves.  It answers each
 * record, in order, with the record plus "cloud_logits" f32 [K] (logit 4
 * for class image[0] % K, 0 for the others) and macs_cloud += M.
 *
 *   fakecloud_test [-k K] [-M macs] [-d seconds] [-a N -x how]
 *
 * -d waits before each answer.  -x makes it misbehave after N good
 * answers (-a, default 0):
 *   die       exit 3 when the next record arrives, unanswered
 *   hang      read and drop every further record, answer nothing
 *   garbage   answer the next record with bytes that are not a stream
 *   half      answer with the first half of a record, then hang
 *   wrongid   answer with another "id"
 *   wrongseq  answer with another "seq"
 *   nologits  answer without "cloud_logits"
 *   nan       answer with a NaN logit
 * After misbehaving it reads until end of input and exits 0, so a
 * serving socat never keeps it around.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mea.h"

static void
answer(struct mea_record *r, int K, long macs, int nan_logit)
{
	const struct mea_tensor *img = mea_tensor_get(r, MEA_T_IMAGE);
	int cls = img && img->nelem ? ((const uint8_t *)img->data)[0] % K : 0;
	uint32_t dim = (uint32_t)K;
	struct mea_tensor *t;
	struct mea_err e;

	if (!(t = mea_tensor_add(r, "cloud_logits", MEA_F32, 1, &dim, &e))) {
		fprintf(stderr, "fakecloud: %s\n", e.msg);
		exit(1);
	}
	((float *)t->data)[cls] = nan_logit ? NAN : 4.0f;
	mea_field_add_int(r, "macs_cloud", macs);
}

static void
drain(struct mea_reader *rd, struct mea_record *r)
{
	struct mea_err e;

	while (mea_read(rd, r, &e) == 0)
		;
	exit(0);
}

int
main(int argc, char **argv)
{
	struct mea_reader rd;
	struct mea_writer w;
	struct mea_record r;
	struct mea_err e;
	const char *how = NULL;
	double delay = 0;
	long K = 10, macs = 1000, after = 0, n = 0;
	int c, rc;

	while ((c = getopt(argc, argv, "k:M:d:a:x:")) != -1) {
		switch (c) {
		case 'k': K = strtol(optarg, NULL, 10); break;
		case 'M': macs = strtol(optarg, NULL, 10); break;
		case 'd': delay = strtod(optarg, NULL); break;
		case 'a': after = strtol(optarg, NULL, 10); break;
		case 'x': how = optarg; break;
		default:
			fprintf(stderr, "usage: fakecloud_test [-k K] [-M macs] [-d s] [-a N -x how]\n");
			return 2;
		}
	}
	if (K < 1 || K > 100000)
		return 2;
	mea_record_init(&r);
	mea_reader_init(&rd, 0, "stdin");
	mea_writer_init(&w, 1, "stdout");
	while ((rc = mea_read(&rd, &r, &e)) == 0) {
		if (delay > 0) {
			struct timespec ts = { (time_t)delay, (long)((delay - (time_t)delay) * 1e9) };
			nanosleep(&ts, NULL);
		}
		if (how && n >= after) {
			if (strcmp(how, "die") == 0)
				_exit(3);
			if (strcmp(how, "hang") == 0)
				drain(&rd, &r);
			if (strcmp(how, "garbage") == 0) {
				static const char junk[] = "HTTP/1.0 400 Bad Request\r\n\r\nthis is not a stream";
				mea_write_all(1, junk, sizeof junk - 1);
				drain(&rd, &r);
			}
			if (strcmp(how, "half") == 0) {
				unsigned char *buf = NULL;
				size_t cap = 0, len;
				answer(&r, (int)K, macs, 0);
				if (mea_record_encode(&r, &buf, &cap, &len, &e) == 0)
					mea_write_all(1, buf, len / 2);
				free(buf);
				drain(&rd, &r);
			}
			if (strcmp(how, "wrongid") == 0)
				mea_field_set_str(&r, "id", "not-the-id");
			if (strcmp(how, "wrongseq") == 0)
				mea_field_add_int(&r, "seq", 1);
			if (strcmp(how, "nologits") == 0) {
				mea_field_add_int(&r, "macs_cloud", macs);
				goto write;
			}
		}
		answer(&r, (int)K, macs, how && n >= after && strcmp(how, "nan") == 0);
write:
		if (mea_write(&w, &r, &e) != 0) {
			fprintf(stderr, "fakecloud: %s\n", e.msg);
			return 1;
		}
		n++;
	}
	mea_record_clear(&r);
	mea_reader_free(&rd);
	mea_writer_free(&w);
	if (rc != MEA_EOF) {
		fprintf(stderr, "fakecloud: %s\n", e.msg);
		return 1;
	}
	return 0;
}
