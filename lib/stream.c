/*
 * stream.c: the mea record stream (spec: mea-stream(5)).
 *
 * A record is a 16-byte header followed by a body whose length the header
 * gives.  The reader reads the header, checks it against the limits, then
 * reads the whole body into its buffer and parses it from memory, so
 * every later length check is a bounds check inside one buffer.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mea.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define MEA_BIG_ENDIAN 1
#else
#define MEA_BIG_ENDIAN 0
#endif

/* ------------------------------------------------ little-endian access */

static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }
static void put16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void
put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> 8 * i);
}
static void put64(unsigned char *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }

/* Tensor data is little-endian on the wire; swap in place on big-endian
 * hosts (a no-op on the x86 and ARM machines mea targets). */
static void
swap_elems(void *data, size_t nelem, size_t size)
{
	unsigned char *p = data, t;

	if (!MEA_BIG_ENDIAN || size == 1)
		return;
	for (size_t i = 0; i < nelem; i++, p += size)
		for (size_t a = 0, b = size - 1; a < b; a++, b--)
			t = p[a], p[a] = p[b], p[b] = t;
}

/* Names of fields and tensors: 1..63 bytes of [A-Za-z0-9_.-]. */
static int
valid_name(const unsigned char *s, size_t n)
{
	if (n == 0 || n > MEA_MAX_NAME)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
				!(s[i] >= '0' && s[i] <= '9') && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return 0;
	return 1;
}

/* --------------------------------------------------------------- encode */

static int
encoded_size(const struct mea_record *r, size_t *out)
{
	size_t n = MEA_RECORD_HEADER;

	for (int i = 0; i < r->nfields; i++) {
		const struct mea_field *f = &r->field[i];
		n += 2 + strlen(f->key) + (f->type == MEA_FIELD_STR ? 4 + f->slen : 8);
	}
	for (int i = 0; i < r->ntensors; i++) {
		const struct mea_tensor *t = &r->tensor[i];
		if (mea_add_size(n, 4 + strlen(t->name) + 4 * (size_t)t->ndim, &n) ||
				mea_add_size(n, t->nbytes, &n))
			return MEA_E_LIMIT;
	}
	if (n - MEA_RECORD_HEADER > MEA_MAX_RECORD_BODY)
		return MEA_E_LIMIT;
	*out = n;
	return MEA_OK;
}

int
mea_record_encode(const struct mea_record *r, unsigned char **buf, size_t *cap,
		size_t *len, struct mea_err *e)
{
	unsigned char *p;
	size_t n;

	if (r->nfields > MEA_MAX_FIELDS || r->ntensors > MEA_MAX_TENSORS)
		return mea_errf(e, MEA_E_LIMIT, "too many fields or tensors");
	if (encoded_size(r, &n))
		return mea_errf(e, MEA_E_LIMIT, "record body exceeds %u bytes", MEA_MAX_RECORD_BODY);
	if (n > *cap) {
		unsigned char *nb = realloc(*buf, n);
		if (!nb)
			return mea_errf(e, MEA_E_NOMEM, "out of memory for a %zu-byte record", n);
		*buf = nb;
		*cap = n;
	}
	p = *buf;
	memcpy(p, MEA_RECORD_MAGIC, 4);
	put16(p + 4, MEA_STREAM_VERSION);
	put16(p + 6, 0);
	put32(p + 8, (uint32_t)(n - MEA_RECORD_HEADER));
	put16(p + 12, (uint16_t)r->nfields);
	put16(p + 14, (uint16_t)r->ntensors);
	p += MEA_RECORD_HEADER;
	for (int i = 0; i < r->nfields; i++) {
		const struct mea_field *f = &r->field[i];
		size_t kl = strlen(f->key);
		*p++ = (unsigned char)f->type;
		*p++ = (unsigned char)kl;
		memcpy(p, f->key, kl);
		p += kl;
		if (f->type == MEA_FIELD_STR) {
			put32(p, (uint32_t)f->slen);
			memcpy(p + 4, f->s, f->slen);
			p += 4 + f->slen;
		} else if (f->type == MEA_FIELD_INT) {
			put64(p, (uint64_t)f->i);
			p += 8;
		} else {
			uint64_t bits;
			memcpy(&bits, &f->f, 8);
			put64(p, bits);
			p += 8;
		}
	}
	for (int i = 0; i < r->ntensors; i++) {
		const struct mea_tensor *t = &r->tensor[i];
		size_t nl = strlen(t->name);
		*p++ = (unsigned char)t->dtype;
		*p++ = (unsigned char)t->ndim;
		*p++ = (unsigned char)nl;
		*p++ = 0;
		memcpy(p, t->name, nl);
		p += nl;
		for (int d = 0; d < t->ndim; d++, p += 4)
			put32(p, t->dim[d]);
		memcpy(p, t->data, t->nbytes);
		swap_elems(p, t->nelem, mea_dtype_size(t->dtype));
		p += t->nbytes;
	}
	*len = n;
	return MEA_OK;
}

/* --------------------------------------------------------------- decode */

/* A cursor over one record body; every take checks the bounds. */
struct cursor {
	const unsigned char *p, *end;
};

static const unsigned char *
take(struct cursor *c, size_t n)
{
	const unsigned char *p = c->p;
	if ((size_t)(c->end - c->p) < n)
		return NULL;
	c->p += n;
	return p;
}

static int
decode_field(struct mea_record *r, struct cursor *c, struct mea_err *e)
{
	const unsigned char *h = take(c, 2), *key, *v;
	char name[MEA_MAX_NAME + 1];
	int type, rc;

	if (!h)
		return mea_errf(e, MEA_E_FORMAT, "field %d overruns the record", r->nfields);
	type = h[0];
	if (!(key = take(c, h[1])) || !valid_name(key, h[1]))
		return mea_errf(e, MEA_E_FORMAT, "field %d has a bad name", r->nfields);
	memcpy(name, key, h[1]);
	name[h[1]] = '\0';
	if (mea_field_get(r, name))
		return mea_errf(e, MEA_E_FORMAT, "field '%s' appears twice", name);
	if (type == MEA_FIELD_INT || type == MEA_FIELD_FLOAT) {
		uint64_t bits;
		double d;
		if (!(v = take(c, 8)))
			return mea_errf(e, MEA_E_FORMAT, "field '%s' overruns the record", name);
		bits = get64(v);
		memcpy(&d, &bits, 8);
		rc = type == MEA_FIELD_INT ? mea_field_set_int(r, name, (int64_t)bits)
			: mea_field_set_float(r, name, d);
	} else if (type == MEA_FIELD_STR) {
		char *s;
		size_t n;
		if (!(v = take(c, 4)) || (n = get32(v)) > MEA_MAX_STR)
			return mea_errf(e, MEA_E_FORMAT, "field '%s': bad string length", name);
		if (!(v = take(c, n)))
			return mea_errf(e, MEA_E_FORMAT, "field '%s' overruns the record", name);
		if (memchr(v, '\0', n))
			return mea_errf(e, MEA_E_FORMAT, "field '%s': NUL byte in a string", name);
		if (!(s = malloc(n + 1)))
			return mea_errf(e, MEA_E_NOMEM, "out of memory");
		memcpy(s, v, n);
		s[n] = '\0';
		rc = mea_field_set_str(r, name, s);
		free(s);
	} else {
		return mea_errf(e, MEA_E_FORMAT, "field '%s' has unknown type 0x%02x", name, type);
	}
	return rc ? mea_errf(e, rc, "field '%s': %s", name, mea_strerror(rc)) : MEA_OK;
}

static int
decode_tensor(struct mea_record *r, struct cursor *c, struct mea_err *e)
{
	const unsigned char *h = take(c, 4), *nm, *d;
	char name[MEA_MAX_NAME + 1];
	uint32_t dim[MEA_MAX_DIMS];
	struct mea_tensor shape, *t;
	int idx = r->ntensors;

	if (!h)
		return mea_errf(e, MEA_E_FORMAT, "tensor %d overruns the record", idx);
	if (!(nm = take(c, h[2])) || !valid_name(nm, h[2]))
		return mea_errf(e, MEA_E_FORMAT, "tensor %d has a bad name", idx);
	memcpy(name, nm, h[2]);
	name[h[2]] = '\0';
	if (h[3] != 0)
		return mea_errf(e, MEA_E_FORMAT, "tensor '%s': reserved byte is not zero", name);
	if (h[1] > MEA_MAX_DIMS)
		return mea_errf(e, MEA_E_LIMIT, "tensor '%s': %d dimensions (at most %d)",
				name, h[1], MEA_MAX_DIMS);
	if (!(d = take(c, 4u * h[1])))
		return mea_errf(e, MEA_E_FORMAT, "tensor '%s' overruns the record", name);
	for (int i = 0; i < h[1]; i++)
		dim[i] = get32(d + 4 * i);
	if (mea_tensor_shape(&shape, h[0], h[1], dim, e))
		return mea_err_prefix(e, "tensor '%s'", name);
	if (mea_tensor_get(r, name))
		return mea_errf(e, MEA_E_FORMAT, "tensor '%s' appears twice", name);
	/* The data must be inside the body before anything is allocated. */
	if (!(d = take(c, shape.nbytes)))
		return mea_errf(e, MEA_E_FORMAT, "tensor '%s' data (%zu bytes) overruns the record",
				name, shape.nbytes);
	if (!(t = mea_tensor_add(r, name, h[0], h[1], dim, e)))
		return mea_err_prefix(e, "tensor '%s'", name);
	memcpy(t->data, d, t->nbytes);
	swap_elems(t->data, t->nelem, mea_dtype_size(t->dtype));
	return MEA_OK;
}

/* Check a record header; *body gets the body length. */
static int
check_header(const unsigned char *h, uint32_t *body, struct mea_err *e)
{
	if (memcmp(h, MEA_RECORD_MAGIC, 4) != 0)
		return mea_errf(e, MEA_E_FORMAT, "bad magic (not a mea stream)");
	if (get16(h + 4) != MEA_STREAM_VERSION)
		return mea_errf(e, MEA_E_FORMAT, "stream version %u (this reader knows %d)",
				get16(h + 4), MEA_STREAM_VERSION);
	if (get16(h + 6) != 0)
		return mea_errf(e, MEA_E_FORMAT, "unknown flags 0x%04x", get16(h + 6));
	if (get16(h + 12) > MEA_MAX_FIELDS)
		return mea_errf(e, MEA_E_LIMIT, "%u fields (at most %d)", get16(h + 12), MEA_MAX_FIELDS);
	if (get16(h + 14) > MEA_MAX_TENSORS)
		return mea_errf(e, MEA_E_LIMIT, "%u tensors (at most %d)", get16(h + 14), MEA_MAX_TENSORS);
	if ((*body = get32(h + 8)) > MEA_MAX_RECORD_BODY)
		return mea_errf(e, MEA_E_LIMIT, "record body of %u bytes (at most %u)",
				(unsigned)*body, MEA_MAX_RECORD_BODY);
	return MEA_OK;
}

int
mea_record_decode(struct mea_record *r, const unsigned char *p, size_t n, struct mea_err *e)
{
	struct cursor c;
	uint32_t body;
	int rc;

	mea_record_clear(r);
	if (n < MEA_RECORD_HEADER)
		return mea_errf(e, MEA_E_TRUNC, "truncated header");
	if ((rc = check_header(p, &body, e)))
		return rc;
	if (n - MEA_RECORD_HEADER != body)
		return mea_errf(e, MEA_E_TRUNC, "record of %zu bytes, header says %u",
				n - MEA_RECORD_HEADER, (unsigned)body);
	c.p = p + MEA_RECORD_HEADER;
	c.end = p + n;
	for (int i = 0, nf = get16(p + 12); i < nf; i++)
		if ((rc = decode_field(r, &c, e)))
			goto fail;
	for (int i = 0, nt = get16(p + 14); i < nt; i++)
		if ((rc = decode_tensor(r, &c, e)))
			goto fail;
	if (c.p != c.end) {
		rc = mea_errf(e, MEA_E_FORMAT, "%zu stray bytes after the last tensor",
				(size_t)(c.end - c.p));
		goto fail;
	}
	return MEA_OK;
fail:
	mea_record_clear(r);
	return rc;
}

/* --------------------------------------------------------------- reader */

void
mea_reader_init(struct mea_reader *rd, int fd, const char *name)
{
	memset(rd, 0, sizeof *rd);
	rd->fd = fd;
	rd->name = name;
}

void
mea_reader_free(struct mea_reader *rd)
{
	free(rd->buf);
	rd->buf = NULL;
	rd->cap = rd->len = rd->off = 0;
}

/* Make sure at least `need` bytes are buffered from rd->off on.  Returns
 * 0, MEA_EOF when input ended first (rd->len - rd->off tells how much was
 * there), or MEA_E_IO / MEA_E_NOMEM. */
static int
fill(struct mea_reader *rd, size_t need, struct mea_err *e)
{
	if (rd->off > 0 && rd->len - rd->off < need) {
		memmove(rd->buf, rd->buf + rd->off, rd->len - rd->off);
		rd->len -= rd->off;
		rd->off = 0;
	}
	while (rd->len - rd->off < need) {   /* here rd->off is 0 */
		ssize_t n;
		if (rd->eof)
			return MEA_EOF;
		/* The buffer doubles as bytes arrive, up to what the record
		 * needs: a header that claims a huge body costs memory only for
		 * the bytes that really come. */
		if (rd->len == rd->cap) {
			size_t most = need < 65536 ? 65536 : need;
			size_t ncap = rd->cap ? 2 * rd->cap : 65536;
			unsigned char *nb;
			if (ncap > most)
				ncap = most;
			if (!(nb = realloc(rd->buf, ncap)))
				return mea_errf(e, MEA_E_NOMEM, "%s: record %llu: out of memory",
						rd->name, (unsigned long long)rd->nrec);
			rd->buf = nb;
			rd->cap = ncap;
		}
		n = read(rd->fd, rd->buf + rd->len, rd->cap - rd->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return mea_errf(e, MEA_E_IO, "%s: record %llu: %s", rd->name,
					(unsigned long long)rd->nrec, strerror(errno));
		if (n == 0)
			rd->eof = 1;
		rd->len += (size_t)n;
	}
	return MEA_OK;
}

int
mea_read(struct mea_reader *rd, struct mea_record *r, struct mea_err *e)
{
	unsigned long long idx = rd->nrec;
	uint32_t body;
	int rc;

	mea_record_clear(r);
	rc = fill(rd, MEA_RECORD_HEADER, e);
	if (rc == MEA_EOF && rd->len == rd->off)
		return MEA_EOF;
	if (rc == MEA_EOF)
		return mea_errf(e, MEA_E_TRUNC, "%s: record %llu: truncated (stream ends inside the header)",
				rd->name, idx);
	if (rc)
		return rc;
	if ((rc = check_header(rd->buf + rd->off, &body, e)))
		return mea_err_prefix(e, "%s: record %llu", rd->name, idx);
	rc = fill(rd, MEA_RECORD_HEADER + (size_t)body, e);
	if (rc == MEA_EOF)
		return mea_errf(e, MEA_E_TRUNC, "%s: record %llu: truncated (%zu of %u body bytes)",
				rd->name, idx, rd->len - rd->off - MEA_RECORD_HEADER, (unsigned)body);
	if (rc)
		return rc;
	rc = mea_record_decode(r, rd->buf + rd->off, MEA_RECORD_HEADER + (size_t)body, e);
	if (rc)
		return mea_err_prefix(e, "%s: record %llu", rd->name, idx);
	rd->off += MEA_RECORD_HEADER + (size_t)body;
	rd->nrec++;
	return MEA_OK;
}

int
mea_reader_pending(struct mea_reader *rd)
{
	size_t have = rd->len - rd->off;
	struct pollfd pfd;

	if (rd->eof)
		return 1;
	if (have >= MEA_RECORD_HEADER &&
			have - MEA_RECORD_HEADER >= get32(rd->buf + rd->off + 8))
		return 1;
	pfd.fd = rd->fd;
	pfd.events = POLLIN;
	return poll(&pfd, 1, 0) > 0;
}

/* --------------------------------------------------------------- writer */

int
mea_write_all(int fd, const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n > 0) {
		ssize_t k = write(fd, c, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return MEA_E_IO;
		c += k;
		n -= (size_t)k;
	}
	return MEA_OK;
}

void
mea_writer_init(struct mea_writer *w, int fd, const char *name)
{
	memset(w, 0, sizeof *w);
	w->fd = fd;
	w->name = name;
}

void
mea_writer_free(struct mea_writer *w)
{
	free(w->buf);
	w->buf = NULL;
	w->cap = 0;
}

int
mea_write(struct mea_writer *w, const struct mea_record *r, struct mea_err *e)
{
	size_t len;
	int rc;

	if ((rc = mea_record_encode(r, &w->buf, &w->cap, &len, e)))
		return mea_err_prefix(e, "%s: record %llu", w->name, (unsigned long long)w->nrec);
	if (mea_write_all(w->fd, w->buf, len))
		return mea_errf(e, MEA_E_IO, "%s: %s", w->name, strerror(errno));
	w->nrec++;
	w->bytes += len;
	return MEA_OK;
}
