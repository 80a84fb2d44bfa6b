/* err.c: error codes, messages and checked size arithmetic. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mea.h"

/* A message is one line: the names, ids and list items it quotes come
 * from input and may hold newlines or terminal escapes, which become '?'. */
static void
one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

int
mea_errf(struct mea_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	one_line(e->msg);
	return code;
}

int
mea_err_prefix(struct mea_err *e, const char *fmt, ...)
{
	char buf[2 * sizeof e->msg + 4];
	va_list ap;
	int n;

	if (!e)
		return MEA_E_ARG;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof e->msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return e->code;
	n = (int)strlen(buf);
	memcpy(buf + n, ": ", 3);
	memcpy(buf + n + 2, e->msg, sizeof e->msg);
	buf[sizeof buf - 1] = '\0';
	memcpy(e->msg, buf, sizeof e->msg - 1);
	e->msg[sizeof e->msg - 1] = '\0';
	one_line(e->msg);
	return e->code;
}

const char *
mea_strerror(int code)
{
	switch (code) {
	case MEA_OK: return "success";
	case MEA_EOF: return "end of stream";
	case MEA_E_FORMAT: return "malformed data";
	case MEA_E_TRUNC: return "truncated";
	case MEA_E_LIMIT: return "size beyond limit";
	case MEA_E_NOMEM: return "out of memory";
	case MEA_E_IO: return "input/output error";
	case MEA_E_IMAGE: return "bad image";
	case MEA_E_MODEL: return "bad model file";
	case MEA_E_ARG: return "invalid argument";
	case MEA_E_NET: return "network failure";
	}
	return "unknown error";
}

int
mea_mul_size(size_t a, size_t b, size_t *out)
{
	if (b && a > SIZE_MAX / b)
		return MEA_E_LIMIT;
	*out = a * b;
	return MEA_OK;
}

int
mea_add_size(size_t a, size_t b, size_t *out)
{
	if (a > SIZE_MAX - b)
		return MEA_E_LIMIT;
	*out = a + b;
	return MEA_OK;
}
