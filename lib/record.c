/* record.c: records in memory: typed fields and named tensors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mea.h"

size_t
mea_dtype_size(int dtype)
{
	switch (dtype) {
	case MEA_U8: case MEA_I8: return 1;
	case MEA_F16: return 2;
	case MEA_F32: case MEA_I32: return 4;
	}
	return 0;
}

static const char *const dtype_names[] = {
	[MEA_U8] = "u8", [MEA_I8] = "i8", [MEA_F16] = "f16",
	[MEA_F32] = "f32", [MEA_I32] = "i32",
};

const char *
mea_dtype_name(int dtype)
{
	if (dtype < MEA_U8 || dtype > MEA_I32)
		return NULL;
	return dtype_names[dtype];
}

int
mea_dtype_parse(const char *s)
{
	for (int d = MEA_U8; d <= MEA_I32; d++)
		if (strcmp(s, dtype_names[d]) == 0)
			return d;
	return 0;
}

int
mea_tensor_shape(struct mea_tensor *t, int dtype, int ndim, const uint32_t *dim,
		struct mea_err *e)
{
	size_t n = 1, nbytes;

	if (!mea_dtype_size(dtype))
		return mea_errf(e, MEA_E_FORMAT, "unknown dtype %d", dtype);
	if (ndim < 0 || ndim > MEA_MAX_DIMS)
		return mea_errf(e, MEA_E_LIMIT, "%d dimensions (at most %d)", ndim, MEA_MAX_DIMS);
	for (int i = 0; i < ndim; i++) {
		if (dim[i] > MEA_MAX_DIM)
			return mea_errf(e, MEA_E_LIMIT, "dimension %d is %u (at most %u)",
					i, (unsigned)dim[i], MEA_MAX_DIM);
		if (mea_mul_size(n, dim[i], &n))
			return mea_errf(e, MEA_E_LIMIT, "element count overflows");
	}
	if (mea_mul_size(n, mea_dtype_size(dtype), &nbytes) || nbytes > MEA_MAX_TENSOR_BYTES)
		return mea_errf(e, MEA_E_LIMIT, "tensor data of %zu elements exceeds %u bytes",
				n, MEA_MAX_TENSOR_BYTES);
	t->dtype = dtype;
	t->ndim = ndim;
	for (int i = 0; i < MEA_MAX_DIMS; i++)
		t->dim[i] = i < ndim ? dim[i] : 0;
	t->nelem = n;
	t->nbytes = nbytes;
	return MEA_OK;
}

/* IEEE 754 binary16 conversions (round to nearest even on the way in). */
float
mea_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
	float f;

	if (exp == 0)
		f = ldexpf((float)man, -24);
	else if (exp == 31)
		f = man ? NAN : INFINITY;
	else
		f = ldexpf((float)(man | 0x400), (int)exp - 25);
	return sign ? -f : f;
}

uint16_t
mea_f32_to_f16(float f)
{
	uint16_t sign = signbit(f) ? 0x8000 : 0;
	float a = fabsf(f);
	int exp;

	if (isnan(f))
		return sign | 0x7e00;
	if (a >= 65520.0f)
		return sign | 0x7c00;
	if (a < ldexpf(1, -14)) /* subnormal: units of 2^-24 */
		return sign | (uint16_t)nearbyintf(ldexpf(a, 24));
	frexpf(a, &exp);        /* a = m * 2^exp, m in [0.5, 1) */
	/* mantissa with the implicit bit, in units of 2^(exp-11) */
	uint32_t m = (uint32_t)nearbyintf(ldexpf(a, 11 - exp));
	if (m == 2048) {
		m = 1024;
		exp++;
	}
	return sign | (uint16_t)((uint32_t)(exp + 14) << 10) | (uint16_t)(m & 0x3ff);
}

void
mea_record_init(struct mea_record *r)
{
	memset(r, 0, sizeof *r);
}

void
mea_record_clear(struct mea_record *r)
{
	for (int i = 0; i < r->nfields; i++)
		free(r->field[i].s);
	for (int i = 0; i < r->ntensors; i++)
		free(r->tensor[i].data);
	r->nfields = 0;
	r->ntensors = 0;
}

struct mea_field *
mea_field_find(struct mea_record *r, const char *key)
{
	for (int i = 0; i < r->nfields; i++)
		if (strcmp(r->field[i].key, key) == 0)
			return &r->field[i];
	return NULL;
}

const struct mea_field *
mea_field_get(const struct mea_record *r, const char *key)
{
	return mea_field_find((struct mea_record *)r, key);
}

/* The field named key, emptied and ready to take a value of type; NULL
 * when the record is full or the key is too long. */
static struct mea_field *
field_slot(struct mea_record *r, const char *key, int type)
{
	struct mea_field *f = mea_field_find(r, key);

	if (!f) {
		if (r->nfields >= MEA_MAX_FIELDS || strlen(key) > MEA_MAX_NAME || !*key)
			return NULL;
		f = &r->field[r->nfields++];
		memset(f, 0, sizeof *f);
		strcpy(f->key, key);
	}
	free(f->s);
	f->s = NULL;
	f->slen = 0;
	f->type = type;
	return f;
}

int
mea_field_set_int(struct mea_record *r, const char *key, int64_t v)
{
	struct mea_field *f = field_slot(r, key, MEA_FIELD_INT);
	if (!f)
		return MEA_E_LIMIT;
	f->i = v;
	return MEA_OK;
}

int
mea_field_set_float(struct mea_record *r, const char *key, double v)
{
	struct mea_field *f = field_slot(r, key, MEA_FIELD_FLOAT);
	if (!f)
		return MEA_E_LIMIT;
	f->f = v;
	return MEA_OK;
}

int
mea_field_set_str(struct mea_record *r, const char *key, const char *s)
{
	size_t n = strlen(s);
	struct mea_field *f;
	char *copy;

	if (n > MEA_MAX_STR)
		return MEA_E_LIMIT;
	if (!(copy = malloc(n + 1)))
		return MEA_E_NOMEM;
	memcpy(copy, s, n + 1);
	if (!(f = field_slot(r, key, MEA_FIELD_STR))) {
		free(copy);
		return MEA_E_LIMIT;
	}
	f->s = copy;
	f->slen = n;
	return MEA_OK;
}

int
mea_field_add_int(struct mea_record *r, const char *key, int64_t v)
{
	int64_t old = 0;
	mea_field_int(r, key, &old);
	return mea_field_set_int(r, key, old + v);
}

int
mea_field_add_float(struct mea_record *r, const char *key, double v)
{
	double old = 0;
	mea_field_float(r, key, &old);
	return mea_field_set_float(r, key, old + v);
}

int
mea_field_int(const struct mea_record *r, const char *key, int64_t *v)
{
	const struct mea_field *f = mea_field_get(r, key);
	if (!f || f->type != MEA_FIELD_INT)
		return 0;
	*v = f->i;
	return 1;
}

int
mea_field_float(const struct mea_record *r, const char *key, double *v)
{
	const struct mea_field *f = mea_field_get(r, key);
	if (!f || f->type != MEA_FIELD_FLOAT)
		return 0;
	*v = f->f;
	return 1;
}

const char *
mea_field_str(const struct mea_record *r, const char *key)
{
	const struct mea_field *f = mea_field_get(r, key);
	return f && f->type == MEA_FIELD_STR ? f->s : NULL;
}

void
mea_field_remove(struct mea_record *r, const char *key)
{
	struct mea_field *f = mea_field_find(r, key);
	if (!f)
		return;
	free(f->s);
	memmove(f, f + 1, (size_t)(&r->field[r->nfields] - (f + 1)) * sizeof *f);
	r->nfields--;
}

struct mea_tensor *
mea_tensor_find(struct mea_record *r, const char *name)
{
	for (int i = 0; i < r->ntensors; i++)
		if (strcmp(r->tensor[i].name, name) == 0)
			return &r->tensor[i];
	return NULL;
}

const struct mea_tensor *
mea_tensor_get(const struct mea_record *r, const char *name)
{
	return mea_tensor_find((struct mea_record *)r, name);
}

struct mea_tensor *
mea_tensor_add(struct mea_record *r, const char *name, int dtype, int ndim,
		const uint32_t *dim, struct mea_err *e)
{
	struct mea_tensor shape, *t;
	void *data;

	if (!*name || strlen(name) > MEA_MAX_NAME) {
		mea_errf(e, MEA_E_ARG, "tensor name '%s' is empty or too long", name);
		return NULL;
	}
	if (mea_tensor_shape(&shape, dtype, ndim, dim, e))
		return NULL;
	t = mea_tensor_find(r, name);
	if (!t && r->ntensors >= MEA_MAX_TENSORS) {
		mea_errf(e, MEA_E_LIMIT, "more than %d tensors in a record", MEA_MAX_TENSORS);
		return NULL;
	}
	if (!(data = calloc(1, shape.nbytes ? shape.nbytes : 1))) {
		mea_errf(e, MEA_E_NOMEM, "out of memory for tensor '%s'", name);
		return NULL;
	}
	if (t)
		free(t->data);
	else
		t = &r->tensor[r->ntensors++];
	strcpy(shape.name, name);
	shape.data = data;
	*t = shape;
	return t;
}

void
mea_tensor_remove(struct mea_record *r, const char *name)
{
	struct mea_tensor *t = mea_tensor_find(r, name);
	if (!t)
		return;
	free(t->data);
	memmove(t, t + 1, (size_t)(&r->tensor[r->ntensors] - (t + 1)) * sizeof *t);
	r->ntensors--;
}

int
mea_record_copy(struct mea_record *dst, const struct mea_record *src, struct mea_err *e)
{
	mea_record_clear(dst);
	for (int i = 0; i < src->nfields; i++) {
		const struct mea_field *f = &src->field[i];
		int rc = f->type == MEA_FIELD_STR ? mea_field_set_str(dst, f->key, f->s)
			: f->type == MEA_FIELD_INT ? mea_field_set_int(dst, f->key, f->i)
			: mea_field_set_float(dst, f->key, f->f);
		if (rc)
			return mea_errf(e, rc, "copying field '%s': %s", f->key, mea_strerror(rc));
	}
	for (int i = 0; i < src->ntensors; i++) {
		const struct mea_tensor *s = &src->tensor[i];
		struct mea_tensor *t = mea_tensor_add(dst, s->name, s->dtype, s->ndim, s->dim, e);
		if (!t)
			return e ? e->code : MEA_E_NOMEM;
		memcpy(t->data, s->data, s->nbytes);
	}
	return MEA_OK;
}

static double
tensor_value(const struct mea_tensor *t, size_t i)
{
	switch (t->dtype) {
	case MEA_U8: return ((const uint8_t *)t->data)[i];
	case MEA_I8: return ((const int8_t *)t->data)[i];
	case MEA_F16: return mea_f16_to_f32(((const uint16_t *)t->data)[i]);
	case MEA_F32: return ((const float *)t->data)[i];
	case MEA_I32: return ((const int32_t *)t->data)[i];
	}
	return 0;
}

void
mea_record_print(FILE *f, const struct mea_record *r, uint64_t index, int nvals)
{
	fprintf(f, "record %llu\n", (unsigned long long)index);
	for (int i = 0; i < r->nfields; i++) {
		const struct mea_field *fl = &r->field[i];
		fprintf(f, "  %-12s ", fl->key);
		if (fl->type == MEA_FIELD_INT)
			fprintf(f, "%lld\n", (long long)fl->i);
		else if (fl->type == MEA_FIELD_FLOAT)
			fprintf(f, "%.6g\n", fl->f);
		else
			fprintf(f, "\"%s\"\n", fl->s);
	}
	for (int i = 0; i < r->ntensors; i++) {
		const struct mea_tensor *t = &r->tensor[i];
		size_t n = t->nelem < (size_t)nvals ? t->nelem : (size_t)nvals;
		fprintf(f, "  %-12s %s [", t->name, mea_dtype_name(t->dtype));
		for (int d = 0; d < t->ndim; d++)
			fprintf(f, "%s%u", d ? "," : "", (unsigned)t->dim[d]);
		fputc(']', f);
		for (size_t j = 0; j < n; j++)
			fprintf(f, " %.4g", tensor_value(t, j));
		fputs(n < t->nelem ? " ...\n" : "\n", f);
	}
}

const char *
mea_record_where(const struct mea_reader *rd, const struct mea_record *r, char *buf, size_t n)
{
	const char *id = mea_field_str(r, MEA_F_ID);
	unsigned long long idx = rd->nrec ? (unsigned long long)rd->nrec - 1 : 0;

	if (id)
		snprintf(buf, n, "%s: record %llu (%.200s)", rd->name, idx, id);
	else
		snprintf(buf, n, "%s: record %llu", rd->name, idx);
	return buf;
}
