/*
 * mkrec: test tool that turns a line-based text description into a mea
 * stream (or, with -p, prints a stream as text), so tests can build
 * records with known contents by hand.
 *
 *   field KEY i|f|s VALUE         (s takes the rest of the line)
 *   tensor NAME DTYPE D1,D2,.. V1 V2 ...   (dims "-" for a scalar;
 *                                  fewer values than elements repeat the last)
 *   end                           writes the record
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mea.h"

static void
fail(const char *msg, int line)
{
	fprintf(stderr, "mkrec: line %d: %s\n", line, msg);
	exit(2);
}

static void
set_value(struct mea_tensor *t, size_t i, double v)
{
	switch (t->dtype) {
	case MEA_U8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
	case MEA_I8: ((int8_t *)t->data)[i] = (int8_t)v; break;
	case MEA_F16: ((uint16_t *)t->data)[i] = mea_f32_to_f16((float)v); break;
	case MEA_F32: ((float *)t->data)[i] = (float)v; break;
	case MEA_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
	}
}

static void
parse_tensor(struct mea_record *r, char *rest, int line)
{
	char *name = strtok(rest, " \t\n"), *dt = strtok(NULL, " \t\n");
	char *dims = strtok(NULL, " \t\n"), *v;
	uint32_t dim[MEA_MAX_DIMS];
	int ndim = 0;
	struct mea_err e;
	struct mea_tensor *t;
	double last = 0;
	size_t i = 0;

	if (!name || !dt || !dims)
		fail("tensor NAME DTYPE DIMS VALUES...", line);
	/* Values follow the dims; find them before strtok cuts dims up. */
	v = dims + strlen(dims) + 1;
	if (strcmp(dims, "-") != 0)
		for (char *d = strtok(dims, ","); d; d = strtok(NULL, ",")) {
			if (ndim == MEA_MAX_DIMS)
				fail("too many dims", line);
			dim[ndim++] = (uint32_t)strtoul(d, NULL, 10);
		}
	if (!(t = mea_tensor_add(r, name, mea_dtype_parse(dt), ndim, dim, &e)))
		fail(e.msg, line);
	for (char *tok = strtok(v, " \t\n"); tok && i < t->nelem; tok = strtok(NULL, " \t\n"))
		set_value(t, i++, last = strtod(tok, NULL));
	for (; i < t->nelem; i++)
		set_value(t, i, last);
}

int
main(int argc, char **argv)
{
	struct mea_record r;
	struct mea_err e;
	char buf[65536];
	int line = 0;

	mea_record_init(&r);
	if (argc > 1 && strcmp(argv[1], "-p") == 0) {
		struct mea_reader rd;
		int rc;
		mea_reader_init(&rd, 0, "stdin");
		while ((rc = mea_read(&rd, &r, &e)) == 0)
			mea_record_print(stdout, &r, rd.nrec - 1, 8);
		mea_record_clear(&r);
		mea_reader_free(&rd);
		if (rc != MEA_EOF) {
			fprintf(stderr, "mkrec: %s\n", e.msg);
			return 1;
		}
		return 0;
	}
	struct mea_writer w;
	mea_writer_init(&w, 1, "stdout");
	while (fgets(buf, sizeof buf, stdin)) {
		char *kw, *rest;
		line++;
		buf[strcspn(buf, "\n")] = '\0';
		kw = buf + strspn(buf, " \t");
		if (!*kw || *kw == '#')
			continue;
		rest = kw + strcspn(kw, " \t");
		if (*rest)
			*rest++ = '\0';
		if (strcmp(kw, "end") == 0) {
			if (mea_write(&w, &r, &e))
				fail(e.msg, line);
			mea_record_clear(&r);
		} else if (strcmp(kw, "field") == 0) {
			char key[64], type;
			int n = 0;
			if (sscanf(rest, "%63s %c %n", key, &type, &n) < 2 || !n)
				fail("field KEY TYPE VALUE", line);
			if (type == 'i')
				mea_field_set_int(&r, key, strtoll(rest + n, NULL, 10));
			else if (type == 'f')
				mea_field_set_float(&r, key, strtod(rest + n, NULL));
			else
				mea_field_set_str(&r, key, rest + n);
		} else if (strcmp(kw, "tensor") == 0) {
			parse_tensor(&r, rest, line);
		} else {
			fail("unknown keyword", line);
		}
	}
	mea_record_clear(&r);
	mea_writer_free(&w);
	return 0;
}
