/*
 * conv.c: 2-D convolution (any kernel, stride, padding and group count)
 * for libmea, forward and backward.
 *
 * Shape letters (nn.h): input x[N][C][H][W], weights w[K][C/G][R][S],
 * output y[N][K][P][Q].  Below, per group g: Cg = C/G input channels,
 * Kg = K/G output channels, CRS = Cg*R*S (one output cell's receptive
 * field), HW and PQ the input and output plane sizes.
 *
 * Layout and lowering.  Three paths, picked from the shape alone:
 *
 *  1. Pointwise (1x1, stride 1, no padding).  An image's group slice
 *     x[n][g] is already a Cg x HW row-major matrix, so
 *     y[n][g] = w[g] (Kg x Cg) * x[n][g] (Cg x HW) is one SGEMM per image
 *     and group with no copy at all; backward is the two transposed
 *     products, accumulated with beta = 1.
 *
 *  2. Depthwise (G == C == K).  Each channel is convolved with its own
 *     R x S filter, so the GEMM per channel would be 1 x RS x PQ: all
 *     call overhead.  A direct loop instead: for each output row, for
 *     each tap (r, s), add w[r][s] times a shifted input row to the
 *     output row.  The tap's valid output columns [lo, hi) are found
 *     once, so the inner loop is a branch-free axpy over contiguous
 *     (stride 1) or evenly strided memory, and the output row stays in
 *     L1 across the R*S taps.  Backward runs the same loops with the
 *     roles swapped; the weight gradient collects per-tap products in a
 *     row of Q partial sums (work: R*S*Q floats) so that the inner loop
 *     is again an element-wise multiply-add rather than a serial
 *     floating-point reduction, and reduces each row once per channel.
 *
 *  3. Everything else: im2col.  For a chunk of nb images and one group,
 *     col[CRS][nb*PQ] holds, in row (c, r, s) and column (i, p, q), the
 *     input cell that tap (c, r, s) sees for output cell (p, q) of image
 *     i (zero in the padding).  Then y = w[g] (Kg x CRS) * col is a single
 *     SGEMM whose N dimension is nb*PQ.  Chunking several images into one
 *     GEMM matters for the small late-stage planes (8x8 at CIFAR size):
 *     a 64 x 64 x 576 product per image is too small for OpenBLAS to
 *     reach its speed, while nb*PQ ~ COLS columns gets close.  COLS also
 *     bounds the scratch: col is CRS x nb*PQ floats, plus Kg x nb*PQ for
 *     the GEMM result, which is [Kg][i][PQ] and must be scattered to
 *     y[i][g*Kg + k][PQ].  With nb == 1 the GEMM writes y directly.
 *     Backward, per chunk and group: dy is gathered into the same
 *     [Kg][nb*PQ] shape; dw[g] += dy_g * col^T (one SGEMM with a transposed
 *     B); dcol = w[g]^T * dy_g overwrites col (dw is done with it), and
 *     col2im adds each tap's column back onto the input cell it came
 *     from, so overlapping windows sum their gradients.
 *
 * Every path only adds into dx, dw and db (nn.h), so a shared input's
 * gradients sum, and a NULL gradient skips its work.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nn.h"

/*
 * Target columns of one im2col GEMM (see above): 4 images of 8x8, 6 of
 * 7x7, one of 16x16 or more.  Measured on the ResNet-20 layers at batch
 * 64, one thread: one image per GEMM was about 20% slower at 8x8 and
 * 1024+ columns were slower at 8x8 and 16x16 (up to 1.5x at 4096 on
 * 32x32): col, CRS x cols floats, should stay within L2 (~600 KB here)
 * between im2col writing it and SGEMM packing it.
 */
#define COLS 256

/* *acc *= b, or -1 when the product does not fit a size_t. */
static int
mulsz(size_t *acc, size_t b)
{
	if (b != 0 && *acc > SIZE_MAX / b)
		return -1;
	*acc *= b;
	return 0;
}

static int
is_depthwise(const struct mea_conv_shape *s)
{
	return s->groups == s->C && s->K == s->C;
}

static int
is_pointwise(const struct mea_conv_shape *s)
{
	return s->R == 1 && s->S == 1 && s->stride == 1 && s->pad == 0;
}

/* Images per im2col GEMM. */
static int
chunk(const struct mea_conv_shape *s)
{
	int PQ = s->P * s->Q;            /* checked <= INT_MAX */
	int nb = (COLS + PQ - 1) / PQ;

	if (nb > s->N)
		nb = s->N;
	if (nb > INT_MAX / PQ)           /* nb*PQ is a GEMM int dimension */
		nb = INT_MAX / PQ;
	return nb < 1 ? 1 : nb;
}

int
mea_conv_shape_init(struct mea_conv_shape *s)
{
	if (s->N < 1 || s->C < 1 || s->H < 1 || s->W < 1 || s->K < 1 ||
			s->R < 1 || s->S < 1 || s->stride < 1 || s->pad < 0 ||
			s->groups < 1 || s->C % s->groups || s->K % s->groups)
		return -1;
	long long hp = (long long)s->H + 2LL * s->pad;
	long long wp = (long long)s->W + 2LL * s->pad;
	if (hp < s->R || wp < s->S || hp > INT_MAX || wp > INT_MAX)
		return -1;
	s->P = (int)((hp - s->R) / s->stride + 1);
	s->Q = (int)((wp - s->S) / s->stride + 1);

	/* GEMM dimensions and leading dimensions are ints. */
	long long crs = (long long)(s->C / s->groups) * s->R * s->S;
	if (crs > INT_MAX || (long long)s->H * s->W > INT_MAX ||
			(long long)s->P * s->Q > INT_MAX)
		return -1;

	/* Byte counts of x, y and w, then of the workspace, fit a size_t. */
	size_t nx = sizeof(float), ny = sizeof(float), nw = sizeof(float);
	if (mulsz(&nx, (size_t)s->N) || mulsz(&nx, (size_t)s->C) ||
			mulsz(&nx, (size_t)s->H) || mulsz(&nx, (size_t)s->W) ||
			mulsz(&ny, (size_t)s->N) || mulsz(&ny, (size_t)s->K) ||
			mulsz(&ny, (size_t)s->P) || mulsz(&ny, (size_t)s->Q) ||
			mulsz(&nw, (size_t)s->K) || mulsz(&nw, (size_t)crs))
		return -1;
	size_t nwork = (size_t)crs + (size_t)(s->K / s->groups);
	if (mulsz(&nwork, (size_t)chunk(s)) ||
			mulsz(&nwork, (size_t)s->P * s->Q) ||
			mulsz(&nwork, sizeof(float)))
		return -1;
	return 0;
}

size_t
mea_conv_workspace(const struct mea_conv_shape *s)
{
	if (is_depthwise(s))
		return (size_t)s->R * s->S * s->Q;
	if (is_pointwise(s))
		return 0;
	int nb = chunk(s);
	size_t cols = (size_t)nb * s->P * s->Q;
	size_t crs = (size_t)(s->C / s->groups) * s->R * s->S;
	return crs * cols + (nb > 1 ? (size_t)(s->K / s->groups) * cols : 0);
}

/*
 * Output columns q whose tap at kernel column s lands inside the input
 * row: q*stride - pad + s in [0, W).  Gives [lo, hi), possibly empty.
 * The same arithmetic serves rows with (R, H, P).
 */
static void
span(int s, int stride, int pad, int W, int Q, int *lo, int *hi)
{
	/* long long: a + stride cannot overflow even for absurd strides. */
	long long a = (long long)pad - s;        /* need q*stride >= a */
	long long b = (long long)W + pad - s;    /* need q*stride <  b */
	long long l = a <= 0 ? 0 : (a + stride - 1) / stride;
	long long h = b <= 0 ? 0 : (b + stride - 1) / stride;

	if (h > Q)
		h = Q;
	if (l > h)
		l = h;
	*lo = (int)l;
	*hi = (int)h;
}

/* ----------------------------------------------------- inner loops */

/*
 * GCC at -O2 vectorises a loop only when its trip count is known to be a
 * multiple of the vector width, so the unit-stride helpers run the first
 * n & ~3 elements in one loop (four-float SSE vectors) and the rest in a
 * scalar tail.  restrict tells it the rows do not overlap.
 */

/* y[i] += a * x[i*stride] */
static void
axpy(int n, float a, const float *restrict x, int stride, float *restrict y)
{
	int n4 = n & ~3;

	if (stride != 1) {
		for (int i = 0; i < n; i++)
			y[i] += a * x[(size_t)i * stride];
		return;
	}
	for (int i = 0; i < n4; i++)
		y[i] += a * x[i];
	for (int i = n4; i < n; i++)
		y[i] += a * x[i];
}

/* y[i*stride] += a * x[i] */
static void
axpy_scatter(int n, float a, const float *restrict x, float *restrict y,
		int stride)
{
	int n4 = n & ~3;

	if (stride != 1) {
		for (int i = 0; i < n; i++)
			y[(size_t)i * stride] += a * x[i];
		return;
	}
	for (int i = 0; i < n4; i++)
		y[i] += a * x[i];
	for (int i = n4; i < n; i++)
		y[i] += a * x[i];
}

/* acc[i] += x[i] * y[i*stride] */
static void
mul_acc(int n, const float *restrict x, const float *restrict y, int stride,
		float *restrict acc)
{
	int n4 = n & ~3;

	if (stride != 1) {
		for (int i = 0; i < n; i++)
			acc[i] += x[i] * y[(size_t)i * stride];
		return;
	}
	for (int i = 0; i < n4; i++)
		acc[i] += x[i] * y[i];
	for (int i = n4; i < n; i++)
		acc[i] += x[i] * y[i];
}

/* y[i] += x[i] over n floats (n may be large: a whole plane) */
static void
add_to(size_t n, const float *restrict x, float *restrict y)
{
	size_t n4 = n & ~(size_t)3;

	for (size_t i = 0; i < n4; i++)
		y[i] += x[i];
	for (size_t i = n4; i < n; i++)
		y[i] += x[i];
}

/* Most calls from im2col have n == 0 (no padding rows): skip the call. */
static void
zero(float *p, size_t n)
{
	if (n)
		memset(p, 0, n * sizeof *p);
}

/*
 * Zero columns [0, lo) and [hi, Q) of rows [plo, phi) of a P x Q block:
 * the padding cells of an im2col row.  Column-major on purpose: GCC
 * turns a row-wise zeroing loop into a memset call, and a memset call
 * per 32-float row for one or two floats cost more than the copy itself.
 */
static void
zero_cols(float *a, int Q, int plo, int phi, int lo, int hi)
{
	for (int q = 0; q < lo; q++)
		for (int p = plo; p < phi; p++)
			a[(size_t)p * Q + q] = 0;
	for (int q = hi; q < Q; q++)
		for (int p = plo; p < phi; p++)
			a[(size_t)p * Q + q] = 0;
}

/* ------------------------------------------------------------ im2col */

/*
 * col row (c, r, k) for one group's Cg channels; this image's P*Q columns
 * start at col and rows are ld floats apart.  Only the rows [plo, phi)
 * and columns [lo, hi) of the P x Q block see the input; the rest is
 * padding.
 *
 * The common "same" convolution (stride 1, Q == W) gets a faster copy:
 * then col[p][q] = x[p + r - pad][q + k - pad] is the input plane
 * shifted by a constant offset, so the whole valid block is one memcpy,
 * after which the few cells that wrapped around from a neighbouring input
 * row (columns outside [lo, hi)) are zeroed.  Otherwise each output row
 * is copied on its own, with a plain loop: a memcpy call per 16- or
 * 32-float row costs more in calls than in copying.
 */
static void
im2col(const struct mea_conv_shape *s, int Cg, const float *x, float *col,
		size_t ld)
{
	int H = s->H, W = s->W, P = s->P, Q = s->Q, st = s->stride, pad = s->pad;
	size_t HW = (size_t)H * W;

	for (int c = 0; c < Cg; c++)
		for (int r = 0; r < s->R; r++)
			for (int k = 0; k < s->S; k++) {
				float *row = col + (((size_t)c * s->R + r) * s->S + k) * ld;
				const float *xc = x + c * HW;
				int lo, hi, plo, phi;
				span(k, st, pad, W, Q, &lo, &hi);
				span(r, st, pad, H, P, &plo, &phi);
				if (lo == hi)
					phi = plo;
				zero(row, (size_t)plo * Q);
				zero(row + (size_t)phi * Q, (size_t)(P - phi) * Q);
				if (plo == phi)
					continue;
				if (st == 1 && Q == W) {
					size_t d0 = (size_t)plo * Q + lo;
					size_t d1 = (size_t)(phi - 1) * Q + hi;
					ptrdiff_t sh = (ptrdiff_t)(r - pad) * W + (k - pad);
					memcpy(row + d0, xc + (ptrdiff_t)d0 + sh,
						(d1 - d0) * sizeof *row);
					zero_cols(row, Q, plo, phi, lo, hi);
					continue;
				}
				zero_cols(row, Q, plo, phi, lo, hi);
				for (int p = plo; p < phi; p++) {
					float *d = row + (size_t)p * Q;
					const float *src = xc + (size_t)(p * st - pad + r) * W +
						(lo * st - pad + k);
					for (int q = lo; q < hi; q++)
						d[q] = src[(size_t)(q - lo) * st];
				}
			}
}

/*
 * The adjoint of im2col: every column entry is added back onto the input
 * cell it was copied from; padding entries are dropped.  The "same"
 * case mirrors im2col: zero the padding columns of col (the caller's
 * scratch, no longer needed) and add the block with one long loop.
 */
static void
col2im(const struct mea_conv_shape *s, int Cg, float *col, size_t ld,
		float *dx)
{
	int H = s->H, W = s->W, P = s->P, Q = s->Q, st = s->stride, pad = s->pad;
	size_t HW = (size_t)H * W;

	for (int c = 0; c < Cg; c++)
		for (int r = 0; r < s->R; r++)
			for (int k = 0; k < s->S; k++) {
				float *row = col + (((size_t)c * s->R + r) * s->S + k) * ld;
				float *dc = dx + c * HW;
				int lo, hi, plo, phi;
				span(k, st, pad, W, Q, &lo, &hi);
				span(r, st, pad, H, P, &plo, &phi);
				if (lo == hi || plo == phi)
					continue;
				if (st == 1 && Q == W) {
					size_t d0 = (size_t)plo * Q + lo;
					size_t d1 = (size_t)(phi - 1) * Q + hi;
					ptrdiff_t sh = (ptrdiff_t)(r - pad) * W + (k - pad);
					zero_cols(row, Q, plo, phi, lo, hi);
					add_to(d1 - d0, row + d0, dc + (ptrdiff_t)d0 + sh);
					continue;
				}
				for (int p = plo; p < phi; p++)
					axpy_scatter(hi - lo, 1.0f, row + (size_t)p * Q + lo,
						dc + (size_t)(p * st - pad + r) * W +
						(lo * st - pad + k), st);
			}
}

static void
add_bias(const struct mea_conv_shape *s, const float *bias, float *y)
{
	size_t PQ = (size_t)s->P * s->Q;

	for (int n = 0; n < s->N; n++)
		for (int k = 0; k < s->K; k++) {
			float *p = y + ((size_t)n * s->K + k) * PQ;
			float b = bias[k];
			for (size_t i = 0; i < PQ; i++)
				p[i] += b;
		}
}

/* --------------------------------------------------------- depthwise */

static void
depthwise_forward(const struct mea_conv_shape *s, const float *x,
		const float *w, const float *bias, float *y)
{
	int C = s->C, H = s->H, W = s->W, R = s->R, S = s->S;
	int P = s->P, Q = s->Q, st = s->stride, pad = s->pad;
	size_t HW = (size_t)H * W, PQ = (size_t)P * Q;

	for (int n = 0; n < s->N; n++)
		for (int c = 0; c < C; c++) {
			const float *xp = x + ((size_t)n * C + c) * HW;
			const float *wc = w + (size_t)c * R * S;
			float *yp = y + ((size_t)n * C + c) * PQ;
			float b = bias ? bias[c] : 0.0f;
			for (int p = 0; p < P; p++) {
				float *yr = yp + (size_t)p * Q;
				for (int q = 0; q < Q; q++)
					yr[q] = b;
				for (int r = 0; r < R; r++) {
					int ih = p * st - pad + r;
					if (ih < 0 || ih >= H)
						continue;
					const float *xr = xp + (size_t)ih * W;
					for (int k = 0; k < S; k++) {
						int lo, hi;
						span(k, st, pad, W, Q, &lo, &hi);
						if (lo < hi)
							axpy(hi - lo, wc[r * S + k],
								xr + (lo * st - pad + k), st, yr + lo);
					}
				}
			}
		}
}

static void
depthwise_backward(const struct mea_conv_shape *s, const float *x,
		const float *w, const float *dy, float *dx, float *dw,
		float *work)
{
	int C = s->C, H = s->H, W = s->W, R = s->R, S = s->S;
	int P = s->P, Q = s->Q, st = s->stride, pad = s->pad;
	size_t HW = (size_t)H * W, PQ = (size_t)P * Q;
	float *acc = work;               /* [R*S][Q] partial sums for dw */

	/* Channel outermost, so that one channel's dw partial sums cover
	 * the whole batch before they are reduced. */
	for (int c = 0; c < C; c++) {
		const float *wc = w + (size_t)c * R * S;
		if (dw)
			memset(acc, 0, (size_t)R * S * Q * sizeof *acc);
		for (int n = 0; n < s->N; n++) {
			const float *xp = x + ((size_t)n * C + c) * HW;
			const float *dyp = dy + ((size_t)n * C + c) * PQ;
			float *dxp = dx ? dx + ((size_t)n * C + c) * HW : NULL;
			for (int p = 0; p < P; p++) {
				const float *dyr = dyp + (size_t)p * Q;
				for (int r = 0; r < R; r++) {
					int ih = p * st - pad + r;
					if (ih < 0 || ih >= H)
						continue;
					for (int k = 0; k < S; k++) {
						int lo, hi;
						span(k, st, pad, W, Q, &lo, &hi);
						if (lo == hi)
							continue;
						size_t off = (size_t)ih * W + (lo * st - pad + k);
						if (dw)
							mul_acc(hi - lo, dyr + lo, xp + off, st,
								acc + ((size_t)r * S + k) * Q + lo);
						if (dxp)
							axpy_scatter(hi - lo, wc[r * S + k],
								dyr + lo, dxp + off, st);
					}
				}
			}
		}
		if (dw)
			for (int rs = 0; rs < R * S; rs++) {
				double sum = 0;
				for (int q = 0; q < Q; q++)
					sum += acc[(size_t)rs * Q + q];
				dw[(size_t)c * R * S + rs] += (float)sum;
			}
	}
}

/* ----------------------------------------------------------- forward */

void
mea_conv2d_forward(const struct mea_conv_shape *s, const float *x,
		const float *w, const float *bias, float *y, float *work)
{
	int G = s->groups, Cg = s->C / G, Kg = s->K / G;
	int HW = s->H * s->W, PQ = s->P * s->Q;
	int CRS = Cg * s->R * s->S;

	if (is_depthwise(s)) {
		depthwise_forward(s, x, w, bias, y);
		return;
	}
	if (is_pointwise(s)) {
		for (int n = 0; n < s->N; n++)
			for (int g = 0; g < G; g++)
				mea_gemm(0, 0, Kg, HW, Cg, 1.0f,
					w + (size_t)g * Kg * Cg, Cg,
					x + ((size_t)n * s->C + (size_t)g * Cg) * HW, HW,
					0.0f, y + ((size_t)n * s->K + (size_t)g * Kg) * PQ, PQ);
	} else {
		int nb = chunk(s);
		float *col = work;
		float *tmp = work + (size_t)CRS * nb * PQ;
		for (int n0 = 0; n0 < s->N; n0 += nb) {
			int m = s->N - n0 < nb ? s->N - n0 : nb;
			int cols = m * PQ;
			for (int g = 0; g < G; g++) {
				for (int i = 0; i < m; i++)
					im2col(s, Cg, x + ((size_t)(n0 + i) * s->C +
						(size_t)g * Cg) * HW, col + (size_t)i * PQ,
						(size_t)cols);
				const float *wg = w + (size_t)g * Kg * CRS;
				float *yg = y + ((size_t)n0 * s->K + (size_t)g * Kg) * PQ;
				if (m == 1) {
					mea_gemm(0, 0, Kg, cols, CRS, 1.0f, wg, CRS,
						col, cols, 0.0f, yg, PQ);
					continue;
				}
				mea_gemm(0, 0, Kg, cols, CRS, 1.0f, wg, CRS, col,
					cols, 0.0f, tmp, cols);
				for (int i = 0; i < m; i++)
					for (int k = 0; k < Kg; k++)
						memcpy(yg + ((size_t)i * s->K + k) * PQ,
							tmp + (size_t)k * cols + (size_t)i * PQ,
							(size_t)PQ * sizeof *y);
			}
		}
	}
	if (bias)
		add_bias(s, bias, y);
}

/* ---------------------------------------------------------- backward */

void
mea_conv2d_backward(const struct mea_conv_shape *s, const float *x,
		const float *w, const float *dy, float *dx, float *dw, float *db,
		float *work)
{
	int G = s->groups, Cg = s->C / G, Kg = s->K / G;
	int HW = s->H * s->W, PQ = s->P * s->Q;
	int CRS = Cg * s->R * s->S;

	if (db)
		for (int k = 0; k < s->K; k++) {
			double sum = 0;
			for (int n = 0; n < s->N; n++) {
				const float *p = dy + ((size_t)n * s->K + k) * PQ;
				for (int i = 0; i < PQ; i++)
					sum += p[i];
			}
			db[k] += (float)sum;
		}
	if (!dx && !dw)
		return;

	if (is_depthwise(s)) {
		depthwise_backward(s, x, w, dy, dx, dw, work);
		return;
	}
	if (is_pointwise(s)) {
		for (int n = 0; n < s->N; n++)
			for (int g = 0; g < G; g++) {
				const float *xg = x + ((size_t)n * s->C + (size_t)g * Cg) * HW;
				const float *dyg = dy + ((size_t)n * s->K + (size_t)g * Kg) * PQ;
				if (dw)
					mea_gemm(0, 1, Kg, Cg, HW, 1.0f, dyg, PQ, xg,
						HW, 1.0f, dw + (size_t)g * Kg * Cg, Cg);
				if (dx)
					mea_gemm(1, 0, Cg, HW, Kg, 1.0f,
						w + (size_t)g * Kg * Cg, Cg, dyg, PQ, 1.0f,
						dx + ((size_t)n * s->C + (size_t)g * Cg) * HW, HW);
			}
		return;
	}

	int nb = chunk(s);
	float *col = work;
	float *tmp = work + (size_t)CRS * nb * PQ;
	for (int n0 = 0; n0 < s->N; n0 += nb) {
		int m = s->N - n0 < nb ? s->N - n0 : nb;
		int cols = m * PQ;
		for (int g = 0; g < G; g++) {
			const float *dyg = dy + ((size_t)n0 * s->K + (size_t)g * Kg) * PQ;
			if (m > 1) {
				for (int i = 0; i < m; i++)
					for (int k = 0; k < Kg; k++)
						memcpy(tmp + (size_t)k * cols + (size_t)i * PQ,
							dyg + ((size_t)i * s->K + k) * PQ,
							(size_t)PQ * sizeof *tmp);
				dyg = tmp;
			}
			if (dw) {
				for (int i = 0; i < m; i++)
					im2col(s, Cg, x + ((size_t)(n0 + i) * s->C +
						(size_t)g * Cg) * HW, col + (size_t)i * PQ,
						(size_t)cols);
				mea_gemm(0, 1, Kg, CRS, cols, 1.0f, dyg, cols, col,
					cols, 1.0f, dw + (size_t)g * Kg * CRS, CRS);
			}
			if (dx) {
				mea_gemm(1, 0, CRS, cols, Kg, 1.0f,
					w + (size_t)g * Kg * CRS, CRS, dyg, cols, 0.0f,
					col, cols);
				for (int i = 0; i < m; i++)
					col2im(s, Cg, col + (size_t)i * PQ, (size_t)cols,
						dx + ((size_t)(n0 + i) * s->C +
						(size_t)g * Cg) * HW);
			}
		}
	}
}
