/*
 * mea.h: the one public header of libmea.
 *
 * libmea is the product; the programs in cmd/ are thin shells around it.
 * The library never exits, never prints, never reads argv or the
 * environment.  Every fallible function returns 0 (MEA_OK) or a MEA_E*
 * code and, when given a struct mea_err, fills in a one-line message
 * naming what went wrong.
 *
 * Ownership: a struct mea_record owns its strings and tensor data;
 * mea_record_clear() frees them and leaves an empty, reusable record.
 */
#ifndef MEA_H
#define MEA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MEA_VERSION "0.1.0"

/* ---------------------------------------------------------------- errors */

enum {
	MEA_OK = 0,
	MEA_EOF = 1,      /* clean end of stream at a record boundary */
	MEA_E_FORMAT,     /* malformed data: bad magic, bad field, bad value */
	MEA_E_TRUNC,      /* input ended inside a record or file */
	MEA_E_LIMIT,      /* a size beyond a documented limit */
	MEA_E_NOMEM,      /* out of memory */
	MEA_E_IO,         /* read/write/open failed (errno in the message) */
	MEA_E_IMAGE,      /* an image could not be decoded */
	MEA_E_MODEL,      /* a model file is malformed or does not fit */
	MEA_E_ARG,        /* a caller passed something impossible */
	MEA_E_NET,        /* a network peer failed */
};

struct mea_err {
	int code;
	char msg[512];
};

/* Set e (if not NULL) to code and a printf-style message; return code. */
int mea_errf(struct mea_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefix the message already in e with "prefix: ". Returns e->code. */
int mea_err_prefix(struct mea_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
const char *mea_strerror(int code);

/* Checked size arithmetic: return 0 on success, MEA_E_LIMIT on overflow. */
int mea_mul_size(size_t a, size_t b, size_t *out);
int mea_add_size(size_t a, size_t b, size_t *out);

/* ---------------------------------------------------------------- tensors */

enum mea_dtype {
	MEA_U8 = 1,
	MEA_I8 = 2,
	MEA_F16 = 3,
	MEA_F32 = 4,
	MEA_I32 = 5,
};

#define MEA_MAX_DIMS 4
#define MEA_MAX_DIM  (1u << 20)           /* any single dimension */
#define MEA_MAX_TENSOR_BYTES (256u << 20) /* data of one tensor */
#define MEA_MAX_NAME 63                   /* tensor and field names */

struct mea_tensor {
	char name[MEA_MAX_NAME + 1];
	int dtype;
	int ndim;                      /* 0..MEA_MAX_DIMS; 0 is a scalar */
	uint32_t dim[MEA_MAX_DIMS];
	size_t nelem;
	size_t nbytes;
	void *data;                    /* owned: freed by mea_record_clear */
};

size_t mea_dtype_size(int dtype);      /* 0 for an unknown dtype */
const char *mea_dtype_name(int dtype); /* "u8", "f32", ... or NULL */
int mea_dtype_parse(const char *s);    /* 0 when unknown */

/* Check dtype, ndim and dims against the limits and compute nelem and
 * nbytes.  After this returns 0 the sizes are safe to allocate. */
int mea_tensor_shape(struct mea_tensor *t, int dtype, int ndim,
		const uint32_t *dim, struct mea_err *e);

/* IEEE half <-> float, for f16 tensors. */
float mea_f16_to_f32(uint16_t h);
uint16_t mea_f32_to_f16(float f);

/* ---------------------------------------------------------------- records */

enum mea_ftype { MEA_FIELD_INT = 'i', MEA_FIELD_FLOAT = 'f', MEA_FIELD_STR = 's' };

#define MEA_MAX_FIELDS 64
#define MEA_MAX_TENSORS 32
#define MEA_MAX_STR 4096                  /* one string field value */
#define MEA_MAX_RECORD_BODY (512u << 20)  /* body of one record */

struct mea_field {
	char key[MEA_MAX_NAME + 1];
	int type;          /* enum mea_ftype */
	int64_t i;
	double f;
	char *s;           /* owned, NUL-terminated; slen excludes the NUL */
	size_t slen;
};

struct mea_record {
	int nfields;
	struct mea_field field[MEA_MAX_FIELDS];
	int ntensors;
	struct mea_tensor tensor[MEA_MAX_TENSORS];
};

/* Well-known field and tensor names (see mea-stream(5)). */
#define MEA_F_ID       "id"
#define MEA_F_SEQ      "seq"
#define MEA_F_LABEL    "label"
#define MEA_F_ROUTE    "route"
#define MEA_T_IMAGE    "image"

void mea_record_init(struct mea_record *r);
void mea_record_clear(struct mea_record *r);

/* Fields.  The set functions replace a field of the same key (keeping its
 * position) or append one; they fail with MEA_E_LIMIT when full. */
struct mea_field *mea_field_find(struct mea_record *r, const char *key);
const struct mea_field *mea_field_get(const struct mea_record *r, const char *key);
int mea_field_set_int(struct mea_record *r, const char *key, int64_t v);
int mea_field_set_float(struct mea_record *r, const char *key, double v);
int mea_field_set_str(struct mea_record *r, const char *key, const char *s);
int mea_field_add_int(struct mea_record *r, const char *key, int64_t v);   /* += */
int mea_field_add_float(struct mea_record *r, const char *key, double v); /* += */
/* Read helpers: return 1 and store the value when the field exists with
 * that type, else 0. */
int mea_field_int(const struct mea_record *r, const char *key, int64_t *v);
int mea_field_float(const struct mea_record *r, const char *key, double *v);
const char *mea_field_str(const struct mea_record *r, const char *key);
void mea_field_remove(struct mea_record *r, const char *key);

/* Tensors.  mea_tensor_add appends a tensor of the given shape with
 * zeroed, owned data (or replaces one of the same name in place) and
 * returns it, or NULL with e set. */
struct mea_tensor *mea_tensor_find(struct mea_record *r, const char *name);
const struct mea_tensor *mea_tensor_get(const struct mea_record *r, const char *name);
struct mea_tensor *mea_tensor_add(struct mea_record *r, const char *name, int dtype,
		int ndim, const uint32_t *dim, struct mea_err *e);
void mea_tensor_remove(struct mea_record *r, const char *name);

/* Deep copy of src into dst (dst is cleared first). */
int mea_record_copy(struct mea_record *dst, const struct mea_record *src, struct mea_err *e);

struct mea_reader;
/* "NAME: record N (id)" for messages about the record just read from rd;
 * returns buf. */
const char *mea_record_where(const struct mea_reader *rd, const struct mea_record *r,
		char *buf, size_t n);

/* Human-readable dump: fields, tensors with shape and up to nvals values. */
void mea_record_print(FILE *f, const struct mea_record *r, uint64_t index, int nvals);

/* ---------------------------------------------------------------- stream */

/*
 * The reader works on a raw file descriptor with its own buffer so that a
 * program can ask whether a whole record is already waiting
 * (mea_reader_pending) and never block on a stalled pipe while it holds
 * finished work.  The writer writes each record with a loop of write(2)
 * calls: nothing is held in a user-space buffer.
 */
struct mea_reader {
	int fd;
	const char *name;       /* for messages: "stdin", a path, a host */
	uint64_t nrec;          /* records read so far */
	unsigned char *buf;
	size_t cap, len, off;   /* buffered bytes are buf[off..len) */
	int eof;
};

struct mea_writer {
	int fd;
	const char *name;
	uint64_t nrec;
	unsigned char *buf;     /* serialisation scratch, reused */
	size_t cap;
	uint64_t bytes;         /* total bytes written */
};

void mea_reader_init(struct mea_reader *rd, int fd, const char *name);
void mea_reader_free(struct mea_reader *rd);
/* Read the next record into r (cleared first).  Returns 0, MEA_EOF at a
 * clean end, or an error naming "NAME: record N". */
int mea_read(struct mea_reader *rd, struct mea_record *r, struct mea_err *e);
/* 1 when a complete record is already buffered or the fd is readable
 * now (so mea_read will not block for long), else 0. */
int mea_reader_pending(struct mea_reader *rd);

void mea_writer_init(struct mea_writer *w, int fd, const char *name);
void mea_writer_free(struct mea_writer *w);
int mea_write(struct mea_writer *w, const struct mea_record *r, struct mea_err *e);

/*
 * A queue of records waiting for one forward pass of a plan.  A program
 * reads each record into mea_batch_slot(), then mea_batch_push() says
 * whether it takes a row of the plan's inputs (returning the row, or -1
 * for a record that passes through).  When the queue is full, or the
 * input has nothing more waiting (mea_reader_pending), the program runs
 * the plan on nrows rows, adds the results, and mea_batch_write() writes
 * every queued record in input order and empties the queue.
 */
struct mea_batch {
	struct mea_record *rec;
	int *row;              /* rec[i]'s input row, -1 when it passes through */
	int cap, nrec, nrows;
};
int mea_batch_init(struct mea_batch *b, int cap, struct mea_err *e);
void mea_batch_free(struct mea_batch *b);
static inline struct mea_record *mea_batch_slot(struct mea_batch *b) { return &b->rec[b->nrec]; }
static inline int mea_batch_full(const struct mea_batch *b) { return b->nrec == b->cap; }
int mea_batch_push(struct mea_batch *b, int takes_row);
/* Write and clear every queued record; on a write error the rest are
 * dropped (the stream is broken anyway) and the error returned. */
int mea_batch_write(struct mea_batch *b, struct mea_writer *w, struct mea_err *e);

/* Serialise into a growing buffer (*buf, *cap); *len gets the size. */
int mea_record_encode(const struct mea_record *r, unsigned char **buf, size_t *cap,
		size_t *len, struct mea_err *e);
/* Parse one whole record from memory: n must be exactly its size. */
int mea_record_decode(struct mea_record *r, const unsigned char *p, size_t n,
		struct mea_err *e);

#define MEA_RECORD_MAGIC "MEAR"
#define MEA_STREAM_VERSION 1
#define MEA_RECORD_HEADER 16

/* Write all n bytes to fd, retrying on EINTR and short writes. */
int mea_write_all(int fd, const void *p, size_t n);

#include "nn.h"
#include "train.h"
#include "image.h"
#include "gate.h"
#include "score.h"
#include "model.h"
#include "offload.h"

#endif
