/*
 * dataset.c: the image files that hold many images: IDX (MNIST,
 * Fashion-MNIST) and CIFAR-10/100 binary batches.
 *
 * Everything is read through zlib's gzread, which passes plain files
 * through unchanged, so "t10k-images-idx3-ubyte" and its ".gz" are the
 * same to us.  Images are read one at a time into a buffer the size of
 * one record; nothing is loaded whole.
 *
 * IDX: big-endian header { 0, 0, type 0x08 (u8), ndim } then ndim u32
 * sizes, then the data.  Images are [N][H][W], labels [N].
 * CIFAR-10: records of { label, 1024 R, 1024 G, 1024 B } (32 x 32, rows
 * top to bottom); CIFAR-100 has two label bytes, coarse then fine.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "mea.h"
#include "image.h"

#define CIFAR_PIXELS (3 * 32 * 32)

/* Read n bytes; *got says how many came before EOF. */
static int
gz_get(gzFile g, void *buf, size_t n, size_t *got, struct mea_err *e)
{
	int k, err;
	const char *msg;

	*got = 0;
	k = gzread(g, buf, (unsigned)n);
	if (k < 0) {
		msg = gzerror(g, &err);
		if (err == Z_ERRNO)
			return mea_errf(e, MEA_E_IO, "%s", strerror(errno));
		return mea_errf(e, MEA_E_FORMAT, "bad gzip data (%s)", msg);
	}
	*got = (size_t)k;
	return MEA_OK;
}

static int
gz_open(gzFile *g, const char *path, struct mea_err *e)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return mea_errf(e, MEA_E_IO, "%s", strerror(errno));
	if (S_ISDIR(st.st_mode))
		return mea_errf(e, MEA_E_IO, "is a directory");
	if (!(*g = gzopen(path, "rb")))
		return mea_errf(e, errno == ENOMEM ? MEA_E_NOMEM : MEA_E_IO, "%s",
				errno ? strerror(errno) : "cannot open");
	gzbuffer(*g, 1u << 17);
	return MEA_OK;
}

/* Open an IDX file of u8 with ndim dimensions; dim gets the sizes. */
static int
idx_open(gzFile *g, const char *path, int ndim, uint32_t *dim, struct mea_err *e)
{
	unsigned char h[4 + 4 * 3];
	size_t got;
	int rc;

	if ((rc = gz_open(g, path, e)))
		return rc;
	if ((rc = gz_get(*g, h, 4 + 4 * (size_t)ndim, &got, e)))
		return rc;
	if (got < 4 || h[0] != 0 || h[1] != 0 || h[2] != 0x08)
		return mea_errf(e, MEA_E_FORMAT, "not an IDX file of unsigned bytes");
	if (h[3] != ndim)
		return mea_errf(e, MEA_E_FORMAT, "IDX file of %d dimensions (want %d)", h[3], ndim);
	if (got < 4 + 4 * (size_t)ndim)
		return mea_errf(e, MEA_E_TRUNC, "IDX header is truncated");
	for (int i = 0; i < ndim; i++) {
		const unsigned char *p = h + 4 + 4 * i;
		dim[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	}
	return MEA_OK;
}

static int
ds_alloc(struct mea_imagefile *ds, size_t head, struct mea_err *e)
{
	ds->bufsize = head + (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
	if (!(ds->buf = malloc(ds->bufsize)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	return MEA_OK;
}

int
mea_imagefile_open_idx(struct mea_imagefile *ds, const char *images, const char *labels,
		struct mea_err *e)
{
	uint32_t dim[3], ldim[1];
	gzFile g = NULL;
	int rc;

	memset(ds, 0, sizeof *ds);
	ds->kind = MEA_KIND_IDX;
	rc = idx_open(&g, images, 3, dim, e);
	ds->img = g;
	if (rc)
		goto fail;
	/* dim is N, H, W. */
	if ((rc = mea_image_check_size(dim[2], dim[1], e)))
		goto fail;
	ds->n = dim[0];
	ds->c = 1;
	ds->h = (int)dim[1];
	ds->w = (int)dim[2];
	if (labels) {
		g = NULL;
		rc = idx_open(&g, labels, 1, ldim, e);
		ds->lab = g;
		if (rc) {
			mea_err_prefix(e, "labels %s", labels);
			goto fail;
		}
		if (ldim[0] != ds->n) {
			rc = mea_errf(e, MEA_E_FORMAT, "labels %s: %u labels for %u images",
					labels, (unsigned)ldim[0], (unsigned)ds->n);
			goto fail;
		}
	}
	if ((rc = ds_alloc(ds, 0, e)))
		goto fail;
	return MEA_OK;
fail:
	mea_imagefile_close(ds);
	return rc;
}

int
mea_imagefile_open_cifar(struct mea_imagefile *ds, const char *path, int classes,
		struct mea_err *e)
{
	gzFile g = NULL;
	int rc;

	memset(ds, 0, sizeof *ds);
	if (classes != 10 && classes != 100)
		return mea_errf(e, MEA_E_ARG, "CIFAR-%d does not exist (10 or 100)", classes);
	ds->kind = classes == 10 ? MEA_KIND_CIFAR10 : MEA_KIND_CIFAR100;
	rc = gz_open(&g, path, e);
	ds->img = g;
	if (rc)
		goto fail;
	ds->c = 3;
	ds->h = ds->w = 32;
	if ((rc = ds_alloc(ds, classes == 10 ? 1 : 2, e)))
		goto fail;
	return MEA_OK;
fail:
	mea_imagefile_close(ds);
	return rc;
}

int
mea_imagefile_next(struct mea_imagefile *ds, struct mea_image *im, int *label, int *coarse,
		struct mea_err *e)
{
	unsigned long long idx = ds->next;
	size_t head = ds->bufsize - (size_t)ds->c * (size_t)ds->h * (size_t)ds->w, got;
	unsigned char lb;
	int rc;

	*label = *coarse = -1;
	if (ds->kind == MEA_KIND_IDX && ds->next >= ds->n)
		return MEA_EOF;
	if ((rc = gz_get(ds->img, ds->buf, ds->bufsize, &got, e)))
		return mea_err_prefix(e, "image %llu", idx);
	if (got == 0 && ds->kind != MEA_KIND_IDX)
		return MEA_EOF;
	if (got < ds->bufsize)
		return mea_errf(e, MEA_E_TRUNC, "image %llu: truncated (%zu of %zu bytes)",
				idx, got, ds->bufsize);
	if (ds->kind == MEA_KIND_IDX && ds->lab) {
		if ((rc = gz_get(ds->lab, &lb, 1, &got, e)))
			return mea_err_prefix(e, "label %llu", idx);
		if (got < 1)
			return mea_errf(e, MEA_E_TRUNC, "label %llu: label file is truncated", idx);
		*label = lb;
	} else if (ds->kind == MEA_KIND_CIFAR10) {
		*label = ds->buf[0];
		if (*label >= 10)
			return mea_errf(e, MEA_E_FORMAT, "image %llu: label %d (CIFAR-10 has 10)",
					idx, *label);
	} else if (ds->kind == MEA_KIND_CIFAR100) {
		*coarse = ds->buf[0];
		*label = ds->buf[1];
		if (*coarse >= 20 || *label >= 100)
			return mea_errf(e, MEA_E_FORMAT, "image %llu: labels %d, %d "
					"(CIFAR-100 has 20 coarse and 100 fine)", idx, *coarse, *label);
	}
	if ((rc = mea_image_reserve(im, ds->c, ds->h, ds->w, e)))
		return mea_err_prefix(e, "image %llu", idx);
	/* Both formats are already planar, rows top to bottom. */
	memcpy(im->data, ds->buf + head, ds->bufsize - head);
	ds->next++;
	return MEA_OK;
}

int
mea_imagefile_open(struct mea_imagefile *ds, const char *path, int kind, const char *labels,
		struct mea_err *e)
{
	char beside[4096];

	if (kind == MEA_KIND_CIFAR10 || kind == MEA_KIND_CIFAR100)
		return mea_imagefile_open_cifar(ds, path, kind == MEA_KIND_CIFAR10 ? 10 : 100, e);
	if (!labels && mea_idx_labels_path(path, beside, sizeof beside))
		labels = beside;
	return mea_imagefile_open_idx(ds, path, labels, e);
}

void
mea_imagefile_close(struct mea_imagefile *ds)
{
	if (ds->img)
		gzclose(ds->img);
	if (ds->lab)
		gzclose(ds->lab);
	free(ds->buf);
	memset(ds, 0, sizeof *ds);
}

/* ------------------------------------------------------- recognition */

static int
is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int
mea_idx_labels_path(const char *images, char *out, size_t n)
{
	size_t len = strlen(images), blen;
	char *base, *p;

	if (len + 4 > n)
		return 0;
	memcpy(out, images, len + 1);
	base = strrchr(out, '/');
	base = base ? base + 1 : out;
	if (!(p = strstr(base, "images")))
		return 0;
	memcpy(p, "labels", 6);
	if ((p = strstr(base, "idx3")))
		p[3] = '1';
	if (is_file(out))
		return 1;
	/* The other of "x" and "x.gz". */
	blen = strlen(out);
	if (blen > 3 && strcmp(out + blen - 3, ".gz") == 0)
		out[blen - 3] = '\0';
	else
		strcat(out, ".gz");
	return is_file(out);
}

int
mea_file_kind(const char *path, int cifar, int *kind, struct mea_err *e)
{
	unsigned char h[16];
	struct stat st;
	ssize_t k;
	int fd;

	*kind = MEA_KIND_UNKNOWN;
	if ((fd = open(path, O_RDONLY)) < 0)
		return mea_errf(e, MEA_E_IO, "%s", strerror(errno));
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		return mea_errf(e, MEA_E_IO, "is a directory");
	}
	while ((k = read(fd, h, sizeof h)) < 0 && errno == EINTR)
		;
	close(fd);
	if (k < 0)
		return mea_errf(e, MEA_E_IO, "%s", strerror(errno));
	*kind = mea_image_sniff(h, (size_t)k);
	if (*kind == MEA_KIND_GZIP) {
		gzFile g = gzopen(path, "rb");
		if (g) {
			k = gzread(g, h, 4);
			if (k == 4 && mea_image_sniff(h, 4) == MEA_KIND_IDX)
				*kind = MEA_KIND_IDX;
			gzclose(g);
		}
	}
	if (*kind == MEA_KIND_UNKNOWN && k > 0 && (cifar || (cifar = mea_cifar_guess(path))))
		*kind = cifar == 10 ? MEA_KIND_CIFAR10 : MEA_KIND_CIFAR100;
	return MEA_OK;
}

int
mea_cifar_guess(const char *path)
{
	size_t len = strlen(path);
	struct stat st;
	int ten, hundred;

	if (len < 4 || strcmp(path + len - 4, ".bin") != 0)
		return 0;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
		return 0;
	ten = st.st_size % (1 + CIFAR_PIXELS) == 0;
	hundred = st.st_size % (2 + CIFAR_PIXELS) == 0;
	return ten && !hundred ? 10 : hundred && !ten ? 100 : 0;
}
