/*
 * image.c: PNG (libpng) and JPEG (libjpeg-turbo) into planar 8-bit
 * images, and 8-bit PNGs out.
 *
 * Both libraries report errors by calling a function that must not
 * return.  Ours copy the library's message into a context on the heap and
 * longjmp back to a *_body function, which returns MEA_E_IMAGE; its caller
 * frees what the context holds.  Everything that lives across the jump is
 * in that context or in the body's unchanged arguments, never in a local
 * changed after setjmp (whose value a jump would leave indeterminate).
 * Nothing is ever printed.
 *
 * Both decoders hand over one interleaved row at a time; put_row()
 * splits it into the planes and composites alpha over white, so no
 * full-size interleaved copy is made (except for interlaced PNGs, whose
 * rows arrive in seven passes).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>
#include <jpeglib.h>

#include "mea.h"
#include "image.h"

/* ------------------------------------------------------------ buffers */

void
mea_image_free(struct mea_image *im)
{
	free(im->data);
	memset(im, 0, sizeof *im);
}

int
mea_image_check_size(uint32_t w, uint32_t h, struct mea_err *e)
{
	if (w == 0 || h == 0)
		return mea_errf(e, MEA_E_FORMAT, "image is %" PRIu32 "x%" PRIu32 " (empty)", w, h);
	if (w > MEA_IMAGE_MAX_SIDE || h > MEA_IMAGE_MAX_SIDE)
		return mea_errf(e, MEA_E_LIMIT, "image is %" PRIu32 "x%" PRIu32
				" (sides of at most %u)", w, h, MEA_IMAGE_MAX_SIDE);
	if ((uint64_t)w * h > MEA_IMAGE_MAX_PIXELS)
		return mea_errf(e, MEA_E_LIMIT, "image is %" PRIu32 "x%" PRIu32
				" (at most %u pixels)", w, h, MEA_IMAGE_MAX_PIXELS);
	return MEA_OK;
}

int
mea_image_reserve(struct mea_image *im, int c, int h, int w, struct mea_err *e)
{
	size_t nbytes;
	int rc;

	if (c != 1 && c != 3)
		return mea_errf(e, MEA_E_ARG, "%d channels", c);
	if (h <= 0 || w <= 0)
		return mea_errf(e, MEA_E_ARG, "image size %dx%d", h, w);
	if ((rc = mea_image_check_size((uint32_t)w, (uint32_t)h, e)))
		return rc;
	/* Within the limits c*h*w cannot overflow a size_t. */
	nbytes = (size_t)c * (size_t)h * (size_t)w;
	if (nbytes > im->cap) {
		unsigned char *p = realloc(im->data, nbytes);
		if (!p)
			return mea_errf(e, MEA_E_NOMEM, "out of memory for a %dx%d image", h, w);
		im->data = p;
		im->cap = nbytes;
	}
	im->c = c;
	im->h = h;
	im->w = w;
	return MEA_OK;
}

int
mea_image_sniff(const unsigned char *p, size_t n)
{
	static const unsigned char png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

	if (n >= 8 && memcmp(p, png_sig, 8) == 0)
		return MEA_KIND_PNG;
	if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
		return MEA_KIND_JPEG;
	if (n >= 4 && memcmp(p, MEA_RECORD_MAGIC, 4) == 0)
		return MEA_KIND_STREAM;
	if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b)
		return MEA_KIND_GZIP;
	if (n >= 4 && p[0] == 0 && p[1] == 0 && p[2] == 0x08 && p[3] >= 1 && p[3] <= 4)
		return MEA_KIND_IDX;
	return MEA_KIND_UNKNOWN;
}

int
mea_file_read(const char *path, unsigned char **buf, size_t *cap, size_t *n,
		struct mea_err *e)
{
	struct stat st;
	size_t len = 0;
	int fd, rc = MEA_OK;

	if ((fd = open(path, O_RDONLY)) < 0)
		return mea_errf(e, MEA_E_IO, "%s", strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = mea_errf(e, MEA_E_IO, "%s", strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = mea_errf(e, MEA_E_IO, "is a directory");
		goto out;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > MEA_IMAGE_MAX_FILE) {
		rc = mea_errf(e, MEA_E_LIMIT, "file of %lld bytes (at most %u)",
				(long long)st.st_size, MEA_IMAGE_MAX_FILE);
		goto out;
	}
	for (;;) {
		ssize_t k;
		if (len == *cap) {
			size_t ncap = *cap ? 2 * *cap : 65536;
			unsigned char *p;
			if (S_ISREG(st.st_mode) && (size_t)st.st_size + 1 > ncap)
				ncap = (size_t)st.st_size + 1;   /* +1 sees EOF in one read */
			if (len >= MEA_IMAGE_MAX_FILE) {
				rc = mea_errf(e, MEA_E_LIMIT, "file larger than %u bytes",
						MEA_IMAGE_MAX_FILE);
				goto out;
			}
			if (!(p = realloc(*buf, ncap))) {
				rc = mea_errf(e, MEA_E_NOMEM, "out of memory");
				goto out;
			}
			*buf = p;
			*cap = ncap;
		}
		k = read(fd, *buf + len, *cap - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = mea_errf(e, MEA_E_IO, "%s", strerror(errno));
			goto out;
		}
		if (k == 0)
			break;
		len += (size_t)k;
	}
	if (len == 0)
		rc = mea_errf(e, MEA_E_FORMAT, "empty file");
	*n = len;
out:
	close(fd);
	return rc;
}

/* ------------------------------------------------------------- rows */

/* Split one interleaved row of nc samples per pixel (1 grey, 2 grey +
 * alpha, 3 RGB, 4 RGBA) into row y of im's planes.  Alpha is composited
 * over white: v' = round((v a + 255 (255 - a)) / 255). */
static void
put_row(struct mea_image *im, int y, const unsigned char *row, int nc)
{
	size_t plane = (size_t)im->h * (size_t)im->w;
	unsigned char *o = im->data + (size_t)y * (size_t)im->w;
	int w = im->w;

	switch (nc) {
	case 1:
		memcpy(o, row, (size_t)w);
		break;
	case 2:
		for (int x = 0; x < w; x++) {
			unsigned a = row[2 * x + 1];
			o[x] = (unsigned char)((row[2 * x] * a + 255 * (255 - a) + 127) / 255);
		}
		break;
	case 3:
		for (int x = 0; x < w; x++) {
			o[x] = row[3 * x];
			o[plane + x] = row[3 * x + 1];
			o[2 * plane + x] = row[3 * x + 2];
		}
		break;
	case 4:
		for (int x = 0; x < w; x++) {
			unsigned a = row[4 * x + 3], bg = 255 * (255 - a) + 127;
			o[x] = (unsigned char)((row[4 * x] * a + bg) / 255);
			o[plane + x] = (unsigned char)((row[4 * x + 1] * a + bg) / 255);
			o[2 * plane + x] = (unsigned char)((row[4 * x + 2] * a + bg) / 255);
		}
		break;
	}
}

/* -------------------------------------------------------------- PNG */

struct pngctx {
	jmp_buf jb;
	char msg[256];
	const unsigned char *p;
	size_t n, off;
	unsigned char *pix;        /* a row, or the whole interlaced image */
	png_bytep *rows;
	FILE *f;                   /* writing */
};

static void
png_fail(png_structp png, png_const_charp msg)
{
	struct pngctx *c = png_get_error_ptr(png);
	snprintf(c->msg, sizeof c->msg, "%s", msg);
	longjmp(c->jb, 1);
}

static void
png_quiet(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static void
png_read_mem(png_structp png, png_bytep out, size_t n)
{
	struct pngctx *c = png_get_io_ptr(png);
	if (n > c->n - c->off)
		png_error(png, "file is truncated");
	memcpy(out, c->p + c->off, n);
	c->off += n;
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The part of a decode that libpng can jump out of.  After a jump it
 * reads only c and e, which it never changes, and returns. */
static int
png_body(struct pngctx *c, png_structp png, png_infop info, struct mea_image *im,
		struct mea_err *e)
{
	png_uint_32 w, h;
	int depth, ctype, ilace, nc, rc;

	if (setjmp(c->jb))
		return mea_errf(e, MEA_E_IMAGE, "PNG: %s", c->msg);
	png_set_read_fn(png, c, png_read_mem);
	png_set_user_limits(png, MEA_IMAGE_MAX_SIDE, MEA_IMAGE_MAX_SIDE);
	png_set_chunk_malloc_max(png, 8u << 20);
	png_read_info(png, info);
	png_get_IHDR(png, info, &w, &h, &depth, &ctype, &ilace, NULL, NULL);
	if ((rc = mea_image_check_size(w, h, e)))
		return rc;

	/* Everything to 8-bit grey, grey + alpha, RGB or RGBA. */
	png_set_expand(png);
	if (depth == 16)
		png_set_scale_16(png);
	ilace = png_set_interlace_handling(png) > 1;
	png_read_update_info(png, info);
	nc = png_get_channels(png, info);
	if (nc < 1 || nc > 4 || png_get_rowbytes(png, info) != (size_t)w * (size_t)nc)
		return mea_errf(e, MEA_E_IMAGE, "PNG: unexpected row layout");
	if ((rc = mea_image_reserve(im, nc >= 3 ? 3 : 1, (int)h, (int)w, e)))
		return rc;

	if (ilace) {
		size_t rowbytes = (size_t)w * (size_t)nc;
		if (!(c->pix = malloc(rowbytes * h)) || !(c->rows = malloc(h * sizeof *c->rows)))
			return mea_errf(e, MEA_E_NOMEM, "out of memory for a %ux%u image",
					(unsigned)w, (unsigned)h);
		for (png_uint_32 y = 0; y < h; y++)
			c->rows[y] = c->pix + y * rowbytes;
		png_read_image(png, c->rows);
		for (png_uint_32 y = 0; y < h; y++)
			put_row(im, (int)y, c->rows[y], nc);
	} else {
		if (!(c->pix = malloc((size_t)w * (size_t)nc)))
			return mea_errf(e, MEA_E_NOMEM, "out of memory");
		for (png_uint_32 y = 0; y < h; y++) {
			png_read_row(png, c->pix, NULL);
			put_row(im, (int)y, c->pix, nc);
		}
	}
	/* Reading up to IEND catches a file cut short after the pixels. */
	png_read_end(png, NULL);
	return MEA_OK;
}

static int
decode_png(struct mea_image *im, const unsigned char *p, size_t n, struct mea_err *e)
{
	struct pngctx *c;
	png_structp png;
	png_infop info;
	int rc;

	/* The IHDR must be the first chunk: check its size before libpng
	 * sees the file, so even a file cut right after it is refused for
	 * what it claims. */
	if (n >= 24 && memcmp(p + 12, "IHDR", 4) == 0 &&
			(rc = mea_image_check_size(be32(p + 16), be32(p + 20), e)))
		return rc;
	if (!(c = calloc(1, sizeof *c)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	c->p = p;
	c->n = n;
	png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_fail, png_quiet);
	info = png ? png_create_info_struct(png) : NULL;
	rc = info ? png_body(c, png, info, im, e) : mea_errf(e, MEA_E_NOMEM, "out of memory");
	png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, NULL);
	free(c->pix);
	free(c->rows);
	free(c);
	return rc;
}

/* ------------------------------------------------------------- JPEG */

struct jpgctx {
	struct jpeg_error_mgr pub;  /* first: cinfo->err points at the whole */
	struct jpeg_decompress_struct cinfo;
	jmp_buf jb;
	char msg[JMSG_LENGTH_MAX];
	unsigned char *row;
	int cmyk, inverted;        /* here, not in locals a longjmp may clobber */
};

static void
jpg_fail(j_common_ptr cinfo)
{
	struct jpgctx *c = (struct jpgctx *)cinfo->err;
	cinfo->err->format_message(cinfo, c->msg);
	longjmp(c->jb, 1);
}

/* Warnings (level -1) mean corrupt or truncated data that libjpeg would
 * paper over with grey; we refuse the image instead.  Trace messages
 * (level >= 0) are dropped. */
static void
jpg_emit(j_common_ptr cinfo, int level)
{
	if (level < 0)
		jpg_fail(cinfo);
}

static void
jpg_quiet(j_common_ptr cinfo)
{
	(void)cinfo;
}

/* CMYK to RGB.  Adobe's files store the inks inverted (255 = no ink), so
 * R = C' K' / 255; plain CMYK is R = (255 - C)(255 - K) / 255. */
static void
cmyk_row(unsigned char *row, int w, int inverted)
{
	for (int x = 0; x < w; x++) {
		unsigned char *s = row + 4 * x, *d = row + 3 * x;
		unsigned k = inverted ? s[3] : 255u - s[3];
		unsigned cc = inverted ? s[0] : 255u - s[0];
		unsigned m = inverted ? s[1] : 255u - s[1];
		unsigned y = inverted ? s[2] : 255u - s[2];
		d[0] = (unsigned char)((cc * k + 127) / 255);
		d[1] = (unsigned char)((m * k + 127) / 255);
		d[2] = (unsigned char)((y * k + 127) / 255);
	}
}

/* The part of a decode that libjpeg can jump out of (see png_body). */
static int
jpeg_body(struct jpgctx *c, struct mea_image *im, const unsigned char *p, size_t n,
		int min_h, int min_w, struct mea_err *e)
{
	struct jpeg_decompress_struct *cinfo = &c->cinfo;
	int rc;

	if (setjmp(c->jb))
		return mea_errf(e, MEA_E_IMAGE, "JPEG: %s", c->msg);
	jpeg_create_decompress(cinfo);
	jpeg_mem_src(cinfo, p, (unsigned long)n);
	jpeg_read_header(cinfo, TRUE);
	if ((rc = mea_image_check_size(cinfo->image_width, cinfo->image_height, e)))
		return rc;
	switch (cinfo->jpeg_color_space) {
	case JCS_GRAYSCALE:
		cinfo->out_color_space = JCS_GRAYSCALE;
		break;
	case JCS_CMYK: case JCS_YCCK:
		cinfo->out_color_space = JCS_CMYK;
		c->cmyk = 1;
		c->inverted = cinfo->saw_Adobe_marker;
		break;
	default:
		cinfo->out_color_space = JCS_RGB;
		break;
	}
	/* Scale in the DCT by the largest power of two that keeps the image
	 * at least min_h x min_w. */
	if (min_h > 0 || min_w > 0)
		for (unsigned d = 8; d > 1; d /= 2)
			if ((cinfo->image_height + d - 1) / d >= (unsigned)min_h &&
					(cinfo->image_width + d - 1) / d >= (unsigned)min_w) {
				cinfo->scale_num = 1;
				cinfo->scale_denom = d;
				break;
			}
	jpeg_start_decompress(cinfo);
	if ((rc = mea_image_reserve(im, cinfo->output_components == 1 ? 1 : 3,
			(int)cinfo->output_height, (int)cinfo->output_width, e)))
		return rc;
	if (!(c->row = malloc((size_t)cinfo->output_width * (size_t)cinfo->output_components)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	while (cinfo->output_scanline < cinfo->output_height) {
		int y = (int)cinfo->output_scanline;
		JSAMPROW rows[1] = { c->row };
		if (jpeg_read_scanlines(cinfo, rows, 1) != 1)
			return mea_errf(e, MEA_E_IMAGE, "JPEG: no data for row %d", y);
		if (c->cmyk)
			cmyk_row(c->row, im->w, c->inverted);
		put_row(im, y, c->row, c->cmyk ? 3 : cinfo->output_components);
	}
	jpeg_finish_decompress(cinfo);
	return MEA_OK;
}

static int
decode_jpeg(struct mea_image *im, const unsigned char *p, size_t n, int min_h, int min_w,
		struct mea_err *e)
{
	struct jpgctx *c;
	int rc;

	if (!(c = calloc(1, sizeof *c)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	c->cinfo.err = jpeg_std_error(&c->pub);
	c->pub.error_exit = jpg_fail;
	c->pub.emit_message = jpg_emit;
	c->pub.output_message = jpg_quiet;
	rc = jpeg_body(c, im, p, n, min_h, min_w, e);
	jpeg_destroy_decompress(&c->cinfo);
	free(c->row);
	free(c);
	return rc;
}

int
mea_image_load(struct mea_image *im, const char *path, unsigned char **buf, size_t *cap,
		int min_h, int min_w, struct mea_err *e)
{
	size_t n;
	int rc;

	if ((rc = mea_file_read(path, buf, cap, &n, e)))
		return rc;
	return mea_image_decode(im, *buf, n, min_h, min_w, e);
}

int
mea_image_decode(struct mea_image *im, const unsigned char *p, size_t n,
		int min_h, int min_w, struct mea_err *e)
{
	switch (mea_image_sniff(p, n)) {
	case MEA_KIND_PNG:
		return decode_png(im, p, n, e);
	case MEA_KIND_JPEG:
		return decode_jpeg(im, p, n, min_h, min_w, e);
	}
	if (n == 0)
		return mea_errf(e, MEA_E_FORMAT, "empty file");
	return mea_errf(e, MEA_E_FORMAT, "not a PNG or JPEG image");
}

/* ------------------------------------------------------- PNG writing */

/* The part of a write that libpng can jump out of (see png_body). */
static int
png_write_body(struct pngctx *c, png_structp png, png_infop info, const struct mea_image *im,
		struct mea_err *e)
{
	size_t plane = (size_t)im->h * (size_t)im->w;

	if (setjmp(c->jb))
		return mea_errf(e, MEA_E_IO, "PNG: %s", c->msg);
	png_init_io(png, c->f);
	png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8,
			im->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
			PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (int y = 0; y < im->h; y++) {
		const unsigned char *s = im->data + (size_t)y * (size_t)im->w;
		for (int x = 0; x < im->w; x++)
			for (int ch = 0; ch < im->c; ch++)
				c->pix[(size_t)x * (size_t)im->c + (size_t)ch] = s[(size_t)ch * plane + (size_t)x];
		png_write_row(png, c->pix);
	}
	png_write_end(png, NULL);
	return MEA_OK;
}

/* A new file beside path, for the PNG to be renamed over path when it
 * is complete, with the mode fopen would give (0666 less the umask). */
static FILE *
png_tmpfile(const char *path, char *tmp)
{
	mode_t mask = umask(0);
	FILE *f;
	int fd;

	umask(mask);
	sprintf(tmp, "%s.tmpXXXXXX", path);
	if ((fd = mkstemp(tmp)) < 0)
		return NULL;
	if (fchmod(fd, 0666 & ~mask) != 0 || !(f = fdopen(fd, "wb"))) {
		int err = errno;
		close(fd);
		unlink(tmp);
		errno = err;
		return NULL;
	}
	return f;
}

int
mea_image_write_png(const struct mea_image *im, const char *path, struct mea_err *e)
{
	struct pngctx *c;
	png_structp png;
	png_infop info;
	char *tmp;
	int rc;

	if (im->c != 1 && im->c != 3)
		return mea_errf(e, MEA_E_ARG, "cannot write %d channels as PNG", im->c);
	if (!(c = calloc(1, sizeof *c)) || !(c->pix = malloc((size_t)im->w * (size_t)im->c)) ||
			!(tmp = malloc(strlen(path) + 16))) {
		if (c)
			free(c->pix);
		free(c);
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	}
	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, c, png_fail, png_quiet);
	info = png ? png_create_info_struct(png) : NULL;
	/* Written beside path and renamed over it when complete, so an
	 * interrupted export never leaves half a PNG under its real name. */
	if (!info)
		rc = mea_errf(e, MEA_E_NOMEM, "out of memory");
	else if (!(c->f = png_tmpfile(path, tmp)))
		rc = mea_errf(e, MEA_E_IO, "%s", strerror(errno));
	else
		rc = png_write_body(c, png, info, im, e);
	png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
	if (c->f) {
		if (fclose(c->f) != 0 && rc == MEA_OK)
			rc = mea_errf(e, MEA_E_IO, "%s", strerror(errno));
		if (rc == MEA_OK && rename(tmp, path) != 0)
			rc = mea_errf(e, MEA_E_IO, "%s", strerror(errno));
		if (rc)
			unlink(tmp);
	}
	free(tmp);
	free(c->pix);
	free(c);
	return rc;
}

/* ------------------------------------------------- images in records */

int
mea_image_to_record(struct mea_record *r, const struct mea_image *im, struct mea_err *e)
{
	uint32_t dim[3] = { (uint32_t)im->c, (uint32_t)im->h, (uint32_t)im->w };
	struct mea_tensor *t = mea_tensor_add(r, MEA_T_IMAGE, MEA_U8, 3, dim, e);

	if (!t)
		return e ? e->code : MEA_E_NOMEM;
	memcpy(t->data, im->data, t->nbytes);
	return MEA_OK;
}

int
mea_image_from_record(struct mea_image *im, const struct mea_record *r, struct mea_err *e)
{
	const struct mea_tensor *t = mea_tensor_get(r, MEA_T_IMAGE);
	int rc;

	if (!t)
		return mea_errf(e, MEA_E_FORMAT, "no '%s' tensor", MEA_T_IMAGE);
	if (t->dtype != MEA_U8 || t->ndim != 3 || (t->dim[0] != 1 && t->dim[0] != 3))
		return mea_errf(e, MEA_E_FORMAT, "'%s' is not a u8 [C,H,W] tensor with C 1 or 3",
				MEA_T_IMAGE);
	if ((rc = mea_image_reserve(im, (int)t->dim[0], (int)t->dim[1], (int)t->dim[2], e)))
		return rc;
	memcpy(im->data, t->data, t->nbytes);
	return MEA_OK;
}

int
mea_image_record(struct mea_record *r, const struct mea_image *im, const char *id,
		uint64_t seq, int label, int coarse, struct mea_err *e)
{
	int rc;

	mea_record_clear(r);
	if ((rc = mea_field_set_str(r, MEA_F_ID, id)) ||
			(rc = mea_field_set_int(r, MEA_F_SEQ, (int64_t)seq)) ||
			(label >= 0 && (rc = mea_field_set_int(r, MEA_F_LABEL, label))) ||
			(coarse >= 0 && (rc = mea_field_set_int(r, "coarse", coarse))))
		return mea_errf(e, rc, "setting the fields: %s", mea_strerror(rc));
	return mea_image_to_record(r, im, e);
}

static int
make_dir(char *path, struct mea_err *e)
{
	if (mkdir(path, 0777) < 0 && errno != EEXIST)
		return mea_errf(e, MEA_E_IO, "%s: %s", path, strerror(errno));
	return MEA_OK;
}

int
mea_image_export(const struct mea_image *im, const char *dir,
		const struct mea_classes *cl, int64_t label, uint64_t n, struct mea_err *e)
{
	char num[24];
	const char *sub = NULL;
	size_t len;
	char *path;
	int rc;

	if (label >= 0) {
		snprintf(num, sizeof num, "%" PRId64, label);
		sub = cl && label < cl->n ? cl->name[label] : num;
	}
	len = strlen(dir) + (sub ? strlen(sub) + 1 : 0);
	if (!(path = malloc(len + 32)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	strcpy(path, dir);
	if (!(rc = make_dir(path, e)) && sub) {
		snprintf(path + strlen(dir), len + 32 - strlen(dir), "/%s", sub);
		rc = make_dir(path, e);
	}
	if (!rc) {
		snprintf(path + len, 32, "/%05" PRIu64 ".png", n);
		if ((rc = mea_image_write_png(im, path, e)))
			mea_err_prefix(e, "%s", path);
	}
	free(path);
	return rc;
}
