/*
 * resize.c: channel conversion, scaling and centre crops of planar
 * 8-bit images.
 *
 * Scaling is separable: one table of weights per axis, one pass along
 * each axis through a float buffer, rounding once at the end.  The rows
 * go first when they shrink, so the slower horizontal gathers see fewer
 * of them.
 *
 * A shrinking axis uses area averaging.  Destination pixel j covers the
 * source interval [j in/out, (j+1) in/out); every source pixel it
 * overlaps gets a weight equal to the overlap divided by the interval's
 * length.  Working in units of 1/out keeps the overlaps exact integers,
 * so the weights of each pixel sum to one up to float rounding, and a
 * shrink by a whole factor is the plain mean of each block.
 *
 * A growing axis is bilinear: destination centre j + 0.5 maps to source
 * position (j + 0.5) in/out - 0.5, clamped to the edge pixels.
 */
#include <stdlib.h>
#include <string.h>

#include "mea.h"
#include "image.h"

struct axis {
	int taps;       /* weights stored per destination pixel */
	int *first;     /* first source pixel of each destination pixel */
	int *cnt;       /* how many source pixels it uses */
	float *wt;      /* out * taps weights */
};

static void
axis_free(struct axis *a)
{
	free(a->first);
	free(a->cnt);
	free(a->wt);
}

static int
axis_make(struct axis *a, int in, int out)
{
	a->taps = out < in ? in / out + 2 : 2;
	a->first = malloc((size_t)out * sizeof *a->first);
	a->cnt = malloc((size_t)out * sizeof *a->cnt);
	a->wt = calloc((size_t)out * (size_t)a->taps, sizeof *a->wt);
	if (!a->first || !a->cnt || !a->wt)
		return MEA_E_NOMEM;
	for (int j = 0; j < out; j++) {
		float *w = a->wt + (size_t)j * (size_t)a->taps;
		if (out < in) {
			long long x0 = (long long)j * in, x1 = x0 + in;
			int i0 = (int)(x0 / out), i1 = (int)((x1 + out - 1) / out);
			a->first[j] = i0;
			a->cnt[j] = i1 - i0;
			for (int i = i0; i < i1; i++) {
				long long lo = (long long)i * out, hi = lo + out;
				if (lo < x0)
					lo = x0;
				if (hi > x1)
					hi = x1;
				w[i - i0] = (float)(hi - lo) / (float)in;
			}
		} else if (out == in) {
			a->first[j] = j;
			a->cnt[j] = 1;
			w[0] = 1;
		} else {
			double x = ((double)j + 0.5) * in / out - 0.5;
			int i0;
			if (x < 0)
				x = 0;
			i0 = (int)x;
			if (i0 >= in - 1) {
				a->first[j] = in - 1;
				a->cnt[j] = 1;
				w[0] = 1;
			} else {
				a->first[j] = i0;
				a->cnt[j] = 2;
				w[0] = (float)(1 - (x - i0));
				w[1] = (float)(x - i0);
			}
		}
	}
	return MEA_OK;
}

/* The four passes: horizontal or vertical, from the 8-bit source into
 * floats or from floats into the 8-bit destination, rounding once. */
/* Weights are never negative and sum to one, so v is within [0, 255]
 * but for float rounding; the clamp is insurance.  In integers, so that
 * rows of it vectorise. */
static unsigned char
to_u8(float v)
{
	int q = (int)(v + 0.5f);
	q = q < 0 ? 0 : q;
	return (unsigned char)(q > 255 ? 255 : q);
}

static void
round_row(unsigned char *restrict dst, const float *restrict v, int w)
{
	int x = 0;

	for (; x + 16 <= w; x += 16)
		for (int i = 0; i < 16; i++)
			dst[x + i] = to_u8(v[x + i]);
	for (; x < w; x++)
		dst[x] = to_u8(v[x]);
}

static void
hpass_u8(const unsigned char *src, size_t rows, int wi, float *dst, int w, const struct axis *a)
{
	for (size_t r = 0; r < rows; r++, src += wi, dst += w)
		for (int x = 0; x < w; x++) {
			const float *wt = a->wt + (size_t)x * (size_t)a->taps;
			const unsigned char *s = src + a->first[x];
			float v = 0;
			for (int k = 0; k < a->cnt[x]; k++)
				v += wt[k] * s[k];
			dst[x] = v;
		}
}

static void
hpass_f(const float *src, size_t rows, int wi, unsigned char *dst, int w, const struct axis *a)
{
	for (size_t r = 0; r < rows; r++, src += wi, dst += w)
		for (int x = 0; x < w; x++) {
			const float *wt = a->wt + (size_t)x * (size_t)a->taps;
			const float *s = src + a->first[x];
			float v = 0;
			for (int k = 0; k < a->cnt[x]; k++)
				v += wt[k] * s[k];
			dst[x] = to_u8(v);
		}
}

/* acc += wk * row.  The fixed inner count of 16 lets the compiler turn
 * each block into vector instructions even at -O2, where GCC will not
 * vectorise a loop that needs a scalar remainder. */
static void
axpy_u8(float *restrict acc, const unsigned char *restrict row, float wk, int w)
{
	int x = 0;

	for (; x + 16 <= w; x += 16)
		for (int i = 0; i < 16; i++)
			acc[x + i] += wk * (float)row[x + i];
	for (; x < w; x++)
		acc[x] += wk * (float)row[x];
}

static void
axpy_f(float *restrict acc, const float *restrict row, float wk, int w)
{
	int x = 0;

	for (; x + 16 <= w; x += 16)
		for (int i = 0; i < 16; i++)
			acc[x + i] += wk * row[x + i];
	for (; x < w; x++)
		acc[x] += wk * row[x];
}

/* One plane of rows of w values into h rows: each destination row is a
 * weighted sum of whole source rows. */
static void
vpass_u8(const unsigned char *src, int w, float *dst, int h, const struct axis *a)
{
	for (int y = 0; y < h; y++, dst += w) {
		const float *wt = a->wt + (size_t)y * (size_t)a->taps;
		memset(dst, 0, (size_t)w * sizeof *dst);
		for (int k = 0; k < a->cnt[y]; k++)
			axpy_u8(dst, src + (size_t)(a->first[y] + k) * (size_t)w, wt[k], w);
	}
}

static void
vpass_f(const float *src, int w, unsigned char *dst, int h, const struct axis *a, float *acc)
{
	for (int y = 0; y < h; y++, dst += w) {
		const float *wt = a->wt + (size_t)y * (size_t)a->taps;
		memset(acc, 0, (size_t)w * sizeof *acc);
		for (int k = 0; k < a->cnt[y]; k++)
			axpy_f(acc, src + (size_t)(a->first[y] + k) * (size_t)w, wt[k], w);
		round_row(dst, acc, w);
	}
}

int
mea_image_resize(struct mea_image *dst, const struct mea_image *src, int h, int w,
		struct mea_err *e)
{
	struct axis ax = { 0 }, ay = { 0 };
	float *tmp = NULL, *acc = NULL;
	int rc, c = src->c, hi = src->h, wi = src->w;
	/* Shrinking rows first leaves fewer rows for the slower gathers. */
	int vfirst = h < hi;
	size_t tplane = vfirst ? (size_t)h * (size_t)wi : (size_t)hi * (size_t)w;

	if ((rc = mea_image_reserve(dst, c, h, w, e)))
		return rc;
	if (h == hi && w == wi) {
		memcpy(dst->data, src->data, (size_t)c * (size_t)h * (size_t)w);
		return MEA_OK;
	}
	if (axis_make(&ax, wi, w) || axis_make(&ay, hi, h) ||
			!(tmp = malloc((size_t)c * tplane * sizeof *tmp)) ||
			!(acc = malloc((size_t)w * sizeof *acc))) {
		rc = mea_errf(e, MEA_E_NOMEM, "out of memory resizing %dx%d to %dx%d", hi, wi, h, w);
		goto out;
	}
	for (int ch = 0; ch < c; ch++) {
		const unsigned char *s = src->data + (size_t)ch * (size_t)hi * (size_t)wi;
		unsigned char *d = dst->data + (size_t)ch * (size_t)h * (size_t)w;
		float *t = tmp + (size_t)ch * tplane;
		if (vfirst) {
			vpass_u8(s, wi, t, h, &ay);
			hpass_f(t, (size_t)h, wi, d, w, &ax);
		} else {
			hpass_u8(s, (size_t)hi, wi, t, w, &ax);
			vpass_f(t, w, d, h, &ay, acc);
		}
	}
out:
	axis_free(&ax);
	axis_free(&ay);
	free(tmp);
	free(acc);
	return rc;
}

int
mea_image_crop(struct mea_image *dst, const struct mea_image *src, int h, int w,
		struct mea_err *e)
{
	int rc, y0, x0;

	if (h > src->h || w > src->w)
		return mea_errf(e, MEA_E_IMAGE, "image of %dx%d is smaller than the %dx%d crop",
				src->h, src->w, h, w);
	if ((rc = mea_image_reserve(dst, src->c, h, w, e)))
		return rc;
	y0 = (src->h - h) / 2;
	x0 = (src->w - w) / 2;
	for (int ch = 0; ch < src->c; ch++)
		for (int y = 0; y < h; y++)
			memcpy(dst->data + ((size_t)ch * (size_t)h + (size_t)y) * (size_t)w,
					src->data + ((size_t)ch * (size_t)src->h + (size_t)(y0 + y)) *
					(size_t)src->w + (size_t)x0, (size_t)w);
	return MEA_OK;
}

int
mea_image_channels(struct mea_image *im, int c, struct mea_err *e)
{
	size_t plane = (size_t)im->h * (size_t)im->w;
	int rc;

	if (c != 1 && c != 3)
		return mea_errf(e, MEA_E_ARG, "%d channels", c);
	if (c == im->c)
		return MEA_OK;
	if (c == 1) {
		/* ITU-R BT.601 luma in integer arithmetic, rounded.  Writing
		 * plane 0 in place is safe: index i is read before it is
		 * written. */
		unsigned char *r = im->data, *g = r + plane, *b = g + plane;
		for (size_t i = 0; i < plane; i++)
			r[i] = (unsigned char)((299u * r[i] + 587u * g[i] + 114u * b[i] + 500) / 1000);
		im->c = 1;
		return MEA_OK;
	}
	if ((rc = mea_image_reserve(im, 3, im->h, im->w, e)))
		return rc;
	memcpy(im->data + plane, im->data, plane);
	memcpy(im->data + 2 * plane, im->data, plane);
	return MEA_OK;
}

void
mea_image_fit_short(int h, int w, int side, int *oh, int *ow)
{
	/* The longer side is rounded down, as torchvision's Resize does. */
	if (h <= w) {
		*oh = side;
		*ow = (int)((long long)side * w / h);
	} else {
		*ow = side;
		*oh = (int)((long long)side * h / w);
	}
	if (*oh < 1)
		*oh = 1;
	if (*ow < 1)
		*ow = 1;
}

static void
swap(struct mea_image *a, struct mea_image *b)
{
	struct mea_image t = *a;
	*a = *b;
	*b = t;
}

int
mea_image_prepare(struct mea_image *im, struct mea_image *tmp, const struct mea_prep *p,
		struct mea_err *e)
{
	int rc, h = 0, w = 0;

	/* Going to grey first and to colour last keeps the work on one plane. */
	if (p->c == 1 && (rc = mea_image_channels(im, 1, e)))
		return rc;
	if (p->h > 0) {
		h = p->h;
		w = p->w;
	} else if (p->side > 0) {
		mea_image_fit_short(im->h, im->w, p->side, &h, &w);
	}
	if (h > 0 && (h != im->h || w != im->w)) {
		if ((rc = mea_image_resize(tmp, im, h, w, e)))
			return rc;
		swap(im, tmp);
	}
	if (p->crop_h > 0 && (p->crop_h != im->h || p->crop_w != im->w)) {
		if ((rc = mea_image_crop(tmp, im, p->crop_h, p->crop_w, e)))
			return rc;
		swap(im, tmp);
	}
	if (p->c == 3 && (rc = mea_image_channels(im, 3, e)))
		return rc;
	return MEA_OK;
}

int
mea_image_prepare_record(struct mea_record *r, struct mea_image *im, struct mea_image *tmp,
		const struct mea_prep *p, int store, struct mea_err *e)
{
	int rc;

	if ((rc = mea_image_from_record(im, r, e)) || (rc = mea_image_prepare(im, tmp, p, e)))
		return rc;
	return store ? mea_image_to_record(r, im, e) : MEA_OK;
}

void
mea_prep_min(const struct mea_prep *p, int *min_h, int *min_w)
{
	*min_h = *min_w = 0;
	if (p->h > 0) {
		*min_h = p->h;
		*min_w = p->w;
	} else if (p->side > 0) {
		/* Both sides at least `side` is the shorter side at least `side`. */
		*min_h = *min_w = p->side;
	}
}
