/*
 * conv.c: 2-D convolution (any kernel, stride, padding and group count)
 * for libmea, forward and backward.
 *
 * Shape letters (nn.h): input x[N][C][H][W], weights w[K][C/G][R][S],
 * output y[N][K][P][Q].  Below, per group g: Cg = C/G input channels,
 * Kg = K/G output channels, CRS = Cg*R*S (one output cell's receptive
 * field), HW and PQ the input and output plane sizes.
 *
 * Layout and lowering.  Four paths, picked from the shape (and, for the
 * fourth, the inference and row_shift flags):
 *
 *  1. Pointwise (1x1, stride 1, no padding).  An image's group slice
 *     x[n][g] is already a Cg x HW row-major matrix, so
 *     y[n][g] = w[g] (Kg x Cg) * x[n][g] (Cg x HW) is one SGEMM per image
 *     and group with no copy at all (forward, in column blocks that fit
 *     in L2: see pointwise_cols); backward is the two transposed
 *     products, accumulated with beta = 1.  Inference over small planes
 *     instead takes path 3, several images to one wider GEMM (pw_batched).
 *
 *  2. Depthwise (G == C == K).  Each channel is convolved with its own
 *     R x S filter, so the GEMM per channel would be 1 x RS x PQ: all
 *     call overhead.  A direct loop instead.  The 3x3 kernels at stride
 *     1 or 2 (all of MobileNetV2's) copy each plane into a zero-padded
 *     scratch plane and then sum all nine taps of eight outputs at a time
 *     in registers (dw3_plane, dw3_row); planes narrower than DW3_FLAT go
 *     a group at a time, each as one long row (dw3_flat).  Other kernels
 *     run, for each output row and each tap (r, s), an axpy of w[r][s] times a shifted input row
 *     into the output row; the tap's valid output columns [lo, hi) are
 *     found once, so the inner loop is branch-free over contiguous
 *     (stride 1) or evenly strided memory, and the output row stays in
 *     L1 across the R*S taps.  Backward runs those loops with the roles
 *     swapped; the weight gradient collects per-tap products in a row of
 *     Q partial sums (work: R*S*Q floats) so that the inner loop is again
 *     an element-wise multiply-add rather than a serial floating-point
 *     reduction, and reduces each row once per channel.
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
 *  4. Row shift, for inference at stride 1 (ResNet's 3x3 convolutions).
 *     im2col writes R*S copies of the input; for stride 1 the R copies
 *     of one tap column t differ only by whole output rows: the cells
 *     tap (r, t) sees for output row p are the ones tap (0, t) sees for
 *     row p + r.  So a scratch col[Cg*S][rows * Q] holds each image's
 *     input rows, zero-padded above and below and shifted by t - pad,
 *     and y = sum over r of w_r * (col from column r*Q on): R GEMMs with
 *     Cg*S-deep products instead of one Cg*R*S deep, over a scratch R
 *     times smaller (shift_forward).  Several images share a GEMM as in
 *     path 3: they sit H + pad rows apart, sharing their padding rows,
 *     and the R - 1 - pad rows of output between two images are
 *     computed and dropped.  At 28x28 this cut ResNet-20's inference time
 *     by 23% (im2col's copying had been a quarter of it).
 *     The R partial sums are added in another order than path 3's one
 *     product, so the results differ in the last bits.  Training takes
 *     path 4 only when asked (mea_conv_shape.row_shift; mea-train does
 *     by default, and --no-row-shift keeps path 3, which trained the
 *     shipped weights); its backward then splits both products by tap
 *     row the same way (shift_backward), and adds three shifted copies
 *     back onto dx where col2im adds nine.
 *
 * Fusion.  mea_conv2d_forward_act also adds the bias, a residual and the
 * activation, in the epilogue: a pass over each block of output right
 * after the GEMM (or the depthwise loop) wrote it, while it is in cache,
 * and on the im2col path as part of the scatter it needs anyway.  In
 * inference a ResNet block thus ends in one pass over its output where
 * there were four (scatter, bias, add, ReLU).
 *
 * Every path only adds into dx, dw and db (nn.h), so a shared input's
 * gradients sum, and a NULL gradient skips its work; the _set backward
 * instead writes dx (zeroing each slice just before col2im adds into
 * it), for a caller whose dx has no other contribution yet.
 */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nn.h"
#include "simd.h"

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

/*
 * Inference runs a pointwise convolution over small planes (MobileNetV2's
 * 14x14 and 7x7) through im2col (path 3), several images to a GEMM: a
 * 960 x 160 x 49 product per image ran at about half the rate of the
 * same product over 64 images' columns.  For a 1x1 kernel im2col only
 * gathers the images' planes side by side, and the epilogue scatters
 * them back.  Images per GEMM (chunk): PW_BATCH_COLS / HW, at least 2.
 */
#define PW_BATCH_COLS 1024

static int
pw_batched(const struct mea_conv_shape *s)
{
	return s->inference && is_pointwise(s) && s->N > 1 &&
		s->H * s->W <= PW_BATCH_COLS / 2;
}

/* Images per im2col GEMM. */
static int
chunk(const struct mea_conv_shape *s)
{
	int PQ = s->P * s->Q;            /* checked <= INT_MAX */
	int nb = pw_batched(s) ? PW_BATCH_COLS / PQ : (COLS + PQ - 1) / PQ;

	if (nb > s->N)
		nb = s->N;
	if (nb > INT_MAX / PQ)           /* nb*PQ is a GEMM int dimension */
		nb = INT_MAX / PQ;
	return nb < 1 ? 1 : nb;
}

/*
 * Columns (output cells) per pointwise GEMM in the forward pass.  A whole
 * plane at once is one GEMM per image, but MobileNetV2's early planes
 * (96 x 112 x 112 floats: 4.8 MB) do not fit in L2, so the epilogue
 * that follows (bias, residual, ReLU6) re-read every output from memory,
 * and so did the zeroing OpenBLAS does before a beta = 0 product.  In
 * blocks whose input and output stay within PW_BYTES both passes hit the
 * cache.  Every output is still the same dot product over the same Cg
 * inputs, so the split changes no value.
 */
#define PW_BYTES (256 * 1024)

static int
pointwise_cols(const struct mea_conv_shape *s)
{
	int HW = s->H * s->W;
	size_t per_col = ((size_t)(s->C + s->K) / (size_t)s->groups) * sizeof(float);
	size_t nc = PW_BYTES / per_col;

	nc = nc < 64 ? 64 : nc & ~(size_t)15;
	return nc >= (size_t)HW ? HW : (int)nc;
}

/* The depthwise shapes with a fast forward path (see dw3_plane). */
static int
dw3_fast(const struct mea_conv_shape *s)
{
	return s->R == 3 && s->S == 3 && (s->stride == 1 || s->stride == 2);
}

/* Its scratch: the zero-padded input plane, rows of wp + 1 floats (at
 * stride 2 split into even and odd columns), then room for a plane of
 * output rows of as many floats (see dw3_plane). */
static size_t
dw3_work(const struct mea_conv_shape *s)
{
	size_t hp = (size_t)s->H + 2 * (size_t)s->pad, wp = (size_t)s->W + 2 * (size_t)s->pad;
	return (hp + (size_t)s->P) * (wp + 1);
}

/* Stride-1 planes narrower than this run as one long row (dw3_flat):
 * a row call per 7-float row was mostly call and tail; MobileNetV2's
 * 14x14 and 7x7 depthwise layers ran at 5 and 3 GFLOP/s. */
#define DW3_FLAT 16

/* Planes per dw3_flat call (see there). */
#define DW3_GROUP 8

/* The small planes dw3_flat computes; its scratch for one plane (at
 * stride 2: even and odd rows, each split into E and O parts of P + 1
 * rows, then the output), and for DW3_GROUP planes. */
static int
dw3_flat_ok(const struct mea_conv_shape *s)
{
	return dw3_fast(s) && s->Q < DW3_FLAT;
}

static size_t
dw3_flat_one(const struct mea_conv_shape *s)
{
	size_t ld = (size_t)s->Q + 1;

	return s->stride == 1 ? dw3_work(s) : (4 * ((size_t)s->P + 1) + (size_t)s->P) * ld;
}

static size_t
dw3_flat_work(const struct mea_conv_shape *s)
{
	return DW3_GROUP * dw3_flat_one(s);
}

/*
 * The row-shift lowering (path 4 at the top): inference or row_shift,
 * stride 1, a kernel taller than one row, and no more padding than the
 * kernel overlaps (pad <= R - 1, so that an image's outputs end before
 * the next image's rows begin).  Images sit band = H + pad rows apart in its
 * scratch, after pad leading zero rows; shift_ld() is the row length of
 * that scratch, in floats, for nb images.
 */
static long long
shift_ld(const struct mea_conv_shape *s, int nb)
{
	return ((long long)nb * (s->H + s->pad) + s->pad) * s->Q;
}

/* Output columns of one row-shift GEMM over m images: the last image's P
 * rows, and band rows (P of them answers, the rest ignored) for each
 * image before it. */
static size_t
shift_cols_n(const struct mea_conv_shape *s, int m)
{
	return ((size_t)(m - 1) * (size_t)(s->H + s->pad) + (size_t)s->P) * (size_t)s->Q;
}

/* Floats of scratch the row-shift forward needs, or 0 when it does not
 * apply (or its scratch would not fit a size_t or its GEMMs an int). */
static size_t
shift_work(const struct mea_conv_shape *s)
{
	if (!(s->inference || s->row_shift) || s->stride != 1 || s->R < 2 || s->pad > s->R - 1 ||
			is_depthwise(s) || is_pointwise(s))
		return 0;
	int nb = chunk(s), Kg = s->K / s->groups;
	long long ld = shift_ld(s, nb);
	if (ld > INT_MAX)
		return 0;
	size_t cs = (size_t)(s->C / s->groups) * (size_t)s->S;
	size_t col = cs, wr = (size_t)s->K, tmp = nb > 1 ? (size_t)Kg : 0, total;
	if (mulsz(&col, (size_t)ld) || mulsz(&wr, cs) || mulsz(&wr, (size_t)s->R) ||
			mulsz(&tmp, shift_cols_n(s, nb)))
		return 0;
	total = col + wr;
	if (total < col || total + tmp < total)
		return 0;
	total += tmp;
	size_t bytes = total;
	return mulsz(&bytes, sizeof(float)) ? 0 : total;
}

/* The row-shift backward's scratch: the forward's (gathered weights,
 * shifted input, gathered dy), then the gathered weight gradient and the
 * shifted input gradient, as large again as the weights and the input;
 * 0 when the sum does not fit a size_t (the forward's does). */
static size_t
shift_back_work(const struct mea_conv_shape *s)
{
	size_t fwd = shift_work(s), cs = (size_t)(s->C / s->groups) * (size_t)s->S;
	size_t dwr = (size_t)s->K * cs * (size_t)s->R;
	size_t dcol = cs * (size_t)shift_ld(s, chunk(s));
	size_t total = fwd + dwr;

	if (!fwd || total < fwd || total + dcol < total || (total + dcol) > SIZE_MAX / sizeof(float))
		return 0;
	return total + dcol;
}

/* The row shift's scratch for this shape's use of it (forward only in an
 * inference plan, forward and backward in a training one), or 0 when the
 * shape takes another path. */
static size_t
shift_scratch(const struct mea_conv_shape *s)
{
	return s->row_shift ? shift_back_work(s) : shift_work(s);
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
	size_t npad = 2 * (size_t)hp + 1; /* over the depthwise scratch, (hp + P) * (wp + 1) */
	if (mulsz(&npad, (size_t)wp + 1) || mulsz(&npad, sizeof(float)))
		return -1;
	size_t nwork = (size_t)crs + (size_t)(s->K / s->groups);
	if (mulsz(&nwork, (size_t)chunk(s)) ||
			mulsz(&nwork, (size_t)s->P * s->Q) ||
			mulsz(&nwork, sizeof(float)))
		return -1;
	return 0;
}

/*
 * The im2col path with one image per GEMM runs over bands of output rows
 * (band_forward).  A band is the whole image, except in inference over a
 * large plane (the stem of MobileNetV2 or ResNet-18 at 224x224: 27 or 147
 * col rows of 12544 columns, 1.4 or 7.4 MB), where it is as many rows as
 * keep col within BAND_BYTES: im2col's writes are then still in L2 when
 * SGEMM packs them, and the GEMM's outputs when the epilogue reads them.
 * Each output is the same dot product either way.  Smaller cols (all of
 * a CIFAR ResNet's) stay whole.
 */
#define BAND_BYTES (256 * 1024)

/* Output rows per band. */
static int
band_rows(const struct mea_conv_shape *s)
{
	size_t crs = (size_t)(s->C / s->groups) * s->R * s->S;
	size_t row = crs * (size_t)s->Q * sizeof(float);

	if (!s->inference || row * (size_t)s->P <= BAND_BYTES)
		return s->P;
	return row >= BAND_BYTES ? 1 : (int)(BAND_BYTES / row);
}

size_t
mea_conv_workspace(const struct mea_conv_shape *s)
{
	if (is_depthwise(s)) {
		size_t bwd = (size_t)s->R * s->S * s->Q;
		size_t fwd = dw3_flat_ok(s) ? dw3_flat_work(s) : dw3_fast(s) ? dw3_work(s) : 0;
		return bwd > fwd ? bwd : fwd;
	}
	if (is_pointwise(s) && !pw_batched(s))
		return 0;
	size_t shift = shift_scratch(s);
	if (shift)
		return shift;
	int nb = chunk(s);
	size_t cols = (nb == 1 ? (size_t)band_rows(s) : (size_t)nb * s->P) * (size_t)s->Q;
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
	/* long long: a + stride cannot overflow even for absurd strides.
	 * Stride 1 skips the divisions, which the depthwise loops would
	 * otherwise pay for on every output row. */
	long long a = (long long)pad - s;        /* need q*stride >= a */
	long long b = (long long)W + pad - s;    /* need q*stride <  b */
	long long l = a <= 0 ? 0 : stride == 1 ? a : (a + stride - 1) / stride;
	long long h = b <= 0 ? 0 : stride == 1 ? b : (b + stride - 1) / stride;

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
 * n & ~3 elements in blocks of four (one SSE vector: i += 4, then
 * j = 0..3) and the rest in a scalar tail.  The block form matters: a
 * plain i++ loop to n & ~3 vectorised on its own but not once inlined
 * into the loops below, where GCC no longer saw that n & ~3 is a
 * multiple of 4.  restrict tells it the rows do not overlap.
 *
 * The two loops that inference spends most of its non-GEMM time in, the
 * forward epilogue and the 3x3 depthwise plane, work in blocks of eight
 * instead and are compiled three times (GCC's target_clones): for the
 * baseline x86-64 (two SSE vectors a block), for AVX2 (one) and for
 * AVX-512 (nhwc.c's depthwise blocks of sixteen are one vector there),
 * picked once at load time by the CPU.  All clones do the same
 * single-precision operations in the same order: -std=c11 keeps GCC
 * from contracting a multiply and an add into an FMA, so the answers are
 * identical on any CPU; the wider clones only do more at a time.  The clones need
 * glibc's ifunc to pick one; elsewhere the baseline loops are all there is.
 */
/* WIDE_CLONES: see simd.h. */

const char *
mea_simd_info(void)
{
#ifdef HAVE_WIDE_CLONES
	if (__builtin_cpu_supports("avx512f"))
		return "avx512f";
	if (__builtin_cpu_supports("avx2"))
		return "avx2";
#endif
	return "baseline";
}

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
	for (int i = 0; i < n4; i += 4)
		for (int j = 0; j < 4; j++)
			y[i + j] += a * x[i + j];
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
	for (int i = 0; i < n4; i += 4)
		for (int j = 0; j < 4; j++)
			y[i + j] += a * x[i + j];
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
	for (int i = 0; i < n4; i += 4)
		for (int j = 0; j < 4; j++)
			acc[i + j] += x[i + j] * y[i + j];
	for (int i = n4; i < n; i++)
		acc[i] += x[i] * y[i];
}

/* y[i] += x[i] over n floats (n may be large: a whole plane) */
static void
add_to(size_t n, const float *restrict x, float *restrict y)
{
	size_t n4 = n & ~(size_t)3;

	for (size_t i = 0; i < n4; i += 4)
		for (int j = 0; j < 4; j++)
			y[i + j] += x[i + j];
	for (size_t i = n4; i < n; i++)
		y[i] += x[i];
}

/* The sum of n floats in double, as four independent partial sums (one
 * double add chain per element would take 4 cycles an element). */
static double
plane_sum(size_t n, const float *restrict x)
{
	double a[4] = {0, 0, 0, 0};
	size_t n4 = n & ~(size_t)3;

	for (size_t i = 0; i < n4; i += 4)
		for (int j = 0; j < 4; j++)
			a[j] += x[i + j];
	for (size_t i = n4; i < n; i++)
		a[0] += x[i];
	return (a[0] + a[1]) + (a[2] + a[3]);
}

/*
 * Copy and zero n floats of a short row (a depthwise plane's 7 to 28)
 * without a call: a libc memcpy or memset per row of a 14x14 plane took
 * most of the depthwise layer's time.  Fixed-size memcpy compiles to
 * plain vector moves; a loop GCC would turn back into the call.
 */
static inline void
copy_short(float *restrict d, const float *restrict s, int n)
{
	int i = 0;

	for (; i + 8 <= n; i += 8)
		memcpy(d + i, s + i, 8 * sizeof *d);
	if (i + 4 <= n) {
		memcpy(d + i, s + i, 4 * sizeof *d);
		i += 4;
	}
	if (i + 2 <= n) {
		memcpy(d + i, s + i, 2 * sizeof *d);
		i += 2;
	}
	if (i < n)
		d[i] = s[i];
}

static inline void
zero_short(float *d, int n)
{
	static const float z[8];
	int i = 0;

	for (; i + 8 <= n; i += 8)
		memcpy(d + i, z, sizeof z);
	for (; i < n; i++)
		d[i] = 0;
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
 * col row (c, r, k) for one group's Cg channels, output rows [p0, p1) of
 * one image: (p1 - p0) * Q columns starting at col, rows ld floats apart.
 * Only the rows [plo, phi) and columns [lo, hi) of that block see the
 * input; the rest is padding.
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
im2col_rows(const struct mea_conv_shape *s, int Cg, const float *x, int p0, int p1,
		float *col, size_t ld)
{
	int H = s->H, W = s->W, Q = s->Q, st = s->stride, pad = s->pad, np = p1 - p0;
	size_t HW = (size_t)H * W;

	/* Channels innermost: a tap's spans are the same for every channel,
	 * and span() divides (a 64-bit division per call cost a sixth of the
	 * copy at 7x7, with two calls per row).  Rows count from p0. */
	for (int r = 0; r < s->R; r++) {
		int plo0, phi0;
		span(r, st, pad, H, s->P, &plo0, &phi0);
		plo0 = plo0 < p0 ? 0 : plo0 > p1 ? np : plo0 - p0;
		phi0 = phi0 > p1 ? np : phi0 < p0 + plo0 ? plo0 : phi0 - p0;
		for (int k = 0; k < s->S; k++) {
			int lo, hi, plo = plo0, phi = phi0;
			span(k, st, pad, W, Q, &lo, &hi);
			if (lo == hi)
				phi = plo;
			for (int c = 0; c < Cg; c++) {
				float *row = col + (((size_t)c * s->R + r) * s->S + k) * ld;
				const float *xc = x + c * HW;
				zero(row, (size_t)plo * Q);
				zero(row + (size_t)phi * Q, (size_t)(np - phi) * Q);
				if (plo == phi)
					continue;
				if (st == 1 && Q == W) {
					size_t d0 = (size_t)plo * Q + lo;
					size_t d1 = (size_t)(phi - 1) * Q + hi;
					ptrdiff_t sh = (ptrdiff_t)(r - pad) * W + (k - pad);
					memcpy(row + d0, xc + (ptrdiff_t)(d0 + (size_t)p0 * Q) + sh,
						(d1 - d0) * sizeof *row);
					zero_cols(row, Q, plo, phi, lo, hi);
					continue;
				}
				zero_cols(row, Q, plo, phi, lo, hi);
				for (int p = plo; p < phi; p++) {
					float *d = row + (size_t)p * Q;
					const float *src = xc + (ptrdiff_t)((p0 + p) * st - pad + r) * W +
						(lo * st - pad + k);
					for (int q = lo; q < hi; q++)
						d[q] = src[(size_t)(q - lo) * st];
				}
			}
		}
	}
}

/* The whole image's P*Q columns. */
static void
im2col(const struct mea_conv_shape *s, int Cg, const float *x, float *col, size_t ld)
{
	im2col_rows(s, Cg, x, 0, s->P, col, ld);
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

	for (int r = 0; r < s->R; r++) {
		int plo, phi;
		span(r, st, pad, H, P, &plo, &phi);
		for (int k = 0; k < s->S; k++) {
			int lo, hi;
			span(k, st, pad, W, Q, &lo, &hi);
			if (lo == hi || plo == phi)
				continue;
			for (int c = 0; c < Cg; c++) {
				float *row = col + (((size_t)c * s->R + r) * s->S + k) * ld;
				float *dc = dx + c * HW;
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
	}
}

/*
 * The forward epilogue: dst = act(src + b + res) over n values, where the
 * bias b is added only when have_b, res may be NULL, and relu/cap are as
 * in mea_relu_forward.  The order of the operations is that of the
 * separate kernels (bias, then the residual add, then the activation), so
 * fusing changes no value.  src may be dst (in place); res never overlaps
 * dst.
 *
 * The loop has no tests: a missing bias is an added -0.0 (x + -0 == x for
 * every x, -0 included, where adding +0 would turn -0 into +0), and the
 * activation is a clamp to [lo, hi], with lo = -inf and hi = +inf for
 * none and hi = +inf for an uncapped ReLU; the compares are written as in
 * mea_relu_forward, so a NaN passes through.  A version of the loop with
 * a test per block of four for each option spent as long as the GEMM on
 * MobileNetV2's wide 1x1 layers.  Blocks of four that load before they
 * store vectorise without an overlap check (see nn.c).
 */
WIDE_CLONES static void
epilogue(size_t n, const float *src, int have_b, float b, const float *res,
		int relu, float cap, float *dst)
{
	size_t n8 = n & ~(size_t)7;
	float lo, hi;

	act_bounds(relu, cap, &lo, &hi);
	if (!have_b)
		b = -0.0f;
	if (res)
		for (size_t i = 0; i < n8; i += 8) {
			float v[8];
			for (int j = 0; j < 8; j++)
				v[j] = (src[i + j] + b) + res[i + j];
			for (int j = 0; j < 8; j++)
				dst[i + j] = clamp(v[j], lo, hi);
		}
	else
		for (size_t i = 0; i < n8; i += 8) {
			float v[8];
			for (int j = 0; j < 8; j++)
				v[j] = src[i + j] + b;
			for (int j = 0; j < 8; j++)
				dst[i + j] = clamp(v[j], lo, hi);
		}
	for (size_t i = n8; i < n; i++) {
		float v = src[i] + b;
		if (res)
			v += res[i];
		dst[i] = clamp(v, lo, hi);
	}
}

/* --------------------------------------------------------- depthwise */

/* e[t] = x[2t], o[t] = x[2t + 1] for t < n: a pair at a time, which
 * GCC vectorises with shuffles (a loop over one phase alone it does not). */
static void
deinterleave(int n, const float *restrict x, float *restrict e, float *restrict o)
{
	int n4 = n & ~3;

	for (int t = 0; t < n4; t += 4)
		for (int j = 0; j < 4; j++) {
			e[t + j] = x[2 * (t + j)];
			o[t + j] = x[2 * (t + j) + 1];
		}
	for (int t = n4; t < n; t++) {
		e[t] = x[2 * t];
		o[t] = x[2 * t + 1];
	}
}

/* Output q of a dw3_plane row: the bias and the nine taps, in order. */
static inline float
dw3_sum(int q, const float *restrict r0, const float *restrict r1,
		const float *restrict r2, int o1, int o2, const float *restrict w, float b)
{
	float acc = b;

	acc += w[0] * r0[q];
	acc += w[1] * r0[q + o1];
	acc += w[2] * r0[q + o2];
	acc += w[3] * r1[q];
	acc += w[4] * r1[q + o1];
	acc += w[5] * r1[q + o2];
	acc += w[6] * r2[q];
	acc += w[7] * r2[q + o1];
	acc += w[8] * r2[q + o2];
	return acc;
}

/* One output row from three padded input rows, activation included: in
 * blocks of eight, then four, then one at a time.  restrict lets each
 * block be one vector expression stored straight to y (without it GCC
 * kept the block on the stack and stored it eight bytes at a time). */
WIDE_CLONES static void
dw3_row(int Q, const float *restrict r0, const float *restrict r1,
		const float *restrict r2, int o1, int o2, const float *restrict w, float b,
		float lo, float hi, float *restrict y)
{
	int q = 0;

	for (; q < (Q & ~7); q += 8)
		for (int j = 0; j < 8; j++)
			y[q + j] = clamp(dw3_sum(q + j, r0, r1, r2, o1, o2, w, b), lo, hi);
	for (; q < (Q & ~3); q += 4)
		for (int j = 0; j < 4; j++)
			y[q + j] = clamp(dw3_sum(q + j, r0, r1, r2, o1, o2, w, b), lo, hi);
	for (; q < Q; q++)
		y[q] = clamp(dw3_sum(q, r0, r1, r2, o1, o2, w, b), lo, hi);
}

/*
 * A stride-2 padded row, even columns first: padded column j (input
 * column j - pd, or zero) goes to row[j / 2] when j is even and to
 * row[ne + j / 2] when odd (the zeros only when pads is set).  The input's even and odd columns go
 * straight to their places (a copy into a padded row first and a split
 * after cost twice the traffic, and the split's loads stalled on the
 * copy's fresh stores).
 */
static inline void
split_row(const float *x, int W, int pd, int ne, int pads, float *row)
{
	int wp = W + 2 * pd;
	int ev = pd & 1 ? ne + pd / 2 : pd / 2;        /* x[0], x[2], ... */
	int od = pd & 1 ? (pd + 1) / 2 : ne + pd / 2;  /* x[1], x[3], ... */

	deinterleave(W / 2, x, row + ev, row + od);
	if (W & 1)
		row[ev + W / 2] = x[W - 1];
	if (!pads)
		return;
	for (int j = 0; j < pd; j++)
		row[j & 1 ? ne + j / 2 : j / 2] = 0;
	for (int j = W + pd; j < wp; j++)
		row[j & 1 ? ne + j / 2 : j / 2] = 0;
}

/*
 * The 3x3 depthwise forward at stride 1 or 2, which is all MobileNetV2
 * uses: output rows [p0, p1) of one plane, from its input rows h0 on at
 * xp (dw3_rows; dw3_plane for all of them).  The general loop below
 * spends its time on short rows (7 to 112 floats) and on re-reading and
 * re-writing the output row once per tap.  Here the input rows are first
 * copied into a zero-padded scratch plane, so that no tap needs a bounds
 * test, and each output row is then
 * one pass over q with all nine taps summed in registers: nine loads,
 * multiplies and adds per output and a single store.  At stride 2 the
 * padded rows are stored with their even columns first and their odd
 * columns after (ld = wp + 1 floats a row), which makes the three taps of
 * a row contiguous loads at q, q and q + 1.  The nine terms are added in
 * the general loop's order (row by row, left to right, onto the bias);
 * taps that fall into the padding now add w * 0 instead of nothing, which
 * changes no value for finite weights except possibly the sign of a zero.
 */
static void
dw3_rows(const struct mea_conv_shape *s, const float *xp, int h0, int p0, int p1,
		const float *wc, float b, float lo, float hi, float *yp, float *pad)
{
	int H = s->H, W = s->W, Q = s->Q, st = s->stride, pd = s->pad;
	int wp = W + 2 * pd, ld = wp + 1;
	int nrows = (p1 - p0 - 1) * st + 3;   /* padded rows p0 * st .. */
	int ne = (wp + 1) / 2;     /* even columns of a padded row (stride 2) */
	/* The weights, copied once: read through wc in the loop, they were
	 * loaded and broadcast again for every block of outputs. */
	float wt[9];

	memcpy(wt, wc, sizeof wt);
	for (int j = 0; j < nrows; j++) {
		float *row = pad + (size_t)j * ld;
		int h = p0 * st + j - pd;          /* the input row it holds */
		if (h < 0 || h >= H) {
			zero_short(row, ld);
			continue;
		}
		const float *xr = xp + (size_t)(h - h0) * W;
		if (st == 2) {
			split_row(xr, W, pd, ne, 1, row);
			continue;
		}
		for (int i = 0; i < pd; i++)
			row[i] = row[W + pd + i] = 0;
		copy_short(row + pd, xr, W);
	}
	/* Column offsets of taps 1 and 2 within a row (tap 0 is at 0). */
	int o1 = st == 1 ? 1 : ne, o2 = st == 1 ? 2 : 1;
	for (int p = 0; p < p1 - p0; p++) {
		const float *r0 = pad + (size_t)p * st * ld;
		dw3_row(Q, r0, r0 + ld, r0 + 2 * ld, o1, o2, wt, b, lo, hi, yp + (size_t)p * Q);
	}
}

/*
 * Small planes (Q < DW3_FLAT) as one long row each.  At stride 1, output
 * (p, q) of a padded plane taken as a single row of ld-float rows is
 * flat[p * ld + q], whose taps are flat[p * ld + q + r * ld + t], so one
 * dw3_row call over (P - 1) * ld + Q outputs gives every row, plus ld - Q
 * throwaway outputs between rows, which read only inside the padded
 * plane.  At stride 2, output row p reads padded rows 2p, 2p + 1 and
 * 2p + 2, and columns 2q, 2q + 1 and 2q + 2: so the even padded rows are
 * stored one after another, split into even columns (E) and odd ones
 * (O, off floats after E), and the odd rows likewise; rows of ld = Q + 1
 * floats.  Taps (r, t) of output (p, q) are then E_even[p*ld + q],
 * O_even[p*ld + q] and E_even[p*ld + q + 1] for r = 0, the same in the
 * odd rows for r = 1, and in the even rows one row on for r = 2: again
 * one flat run, with one throwaway output a row.  Both sum the nine taps
 * in dw3_rows' order, so the values are the same.
 *
 * Planes i0 .. i0 + n - 1 of x (n <= DW3_GROUP; plane i is channel i % C)
 * go through in three passes: all copied into their padded scratch, all
 * computed, all copied out.  Plane by plane, each pass's loads followed
 * the previous pass's stores of other widths and offsets so closely that
 * they waited on them (failed store forwarding: a quarter of a 7x7
 * layer's time, per perf).  The scratch comes with its padding zero:
 * depthwise_forward zeroes it once a call, and only cells that hold
 * input are written here.  With short copies that make no libc call, a
 * 14x14 plane at stride 1 went from 300 ns to 183 ns, a 7x7 one from 139
 * to 66 ns.
 */
static void
dw3_flat(const struct mea_conv_shape *s, const float *x, size_t i0, int n,
		const float *w, const float *bias, float lo, float hi, float *y, float *work)
{
	int H = s->H, W = s->W, P = s->P, Q = s->Q, pd = s->pad, st = s->stride;
	size_t HW = (size_t)H * W, PQ = (size_t)P * Q, one = dw3_flat_one(s);
	int ld = st == 1 ? W + 2 * pd : Q + 1;
	size_t off = (size_t)(P + 1) * ld;       /* stride 2: E to O */
	/* Where the rows of taps r = 0, 1, 2 start, the tap offsets within a
	 * row, and the flat output, in the plane's scratch. */
	size_t r0 = 0, r1 = st == 1 ? (size_t)ld : 2 * off, r2 = (size_t)(st == 1 ? 2 : 1) * ld;
	int o1 = st == 1 ? 1 : (int)off, o2 = st == 1 ? 2 : 1;
	size_t out = st == 1 ? ((size_t)H + 2 * (size_t)pd) * ld : 4 * off;

	for (int k = 0; k < n; k++) {
		const float *xp = x + (i0 + (size_t)k) * HW;
		float *pad = work + (size_t)k * one;
		for (int h = 0; h < H; h++) {
			int j = h + pd;                /* its padded row */
			if (st == 1)
				copy_short(pad + (size_t)j * ld + pd, xp + (size_t)h * W, W);
			else if (j <= 2 * P)
				split_row(xp + (size_t)h * W, W, pd, (int)off, 0,
					pad + (j & 1 ? r1 : r0) + (size_t)(j / 2) * ld);
		}
	}
	for (int k = 0; k < n; k++) {
		size_t c = (i0 + (size_t)k) % (size_t)s->C;
		float *pad = work + (size_t)k * one, wt[9];
		/* The weights, copied once: read through w in the loop, they
		 * were loaded and broadcast again for every block of outputs. */
		memcpy(wt, w + 9 * c, sizeof wt);
		dw3_row((P - 1) * ld + Q, pad + r0, pad + r1, pad + r2, o1, o2, wt,
			bias ? bias[c] : 0.0f, lo, hi, pad + out);
	}
	for (int k = 0; k < n; k++) {
		const float *flat = work + (size_t)k * one + out;
		float *yp = y + (i0 + (size_t)k) * PQ;
		for (int p = 0; p < P; p++)
			copy_short(yp + (size_t)p * Q, flat + (size_t)p * ld, Q);
	}
}

/* A whole plane (pad: dw3_work floats). */
static void
dw3_plane(const struct mea_conv_shape *s, const float *xp, const float *wc, float b,
		float lo, float hi, float *yp, float *pad)
{
	dw3_rows(s, xp, 0, 0, s->P, wc, b, lo, hi, yp, pad);
}

static void
depthwise_forward(const struct mea_conv_shape *s, const float *x,
		const float *w, const float *bias, const float *res, int relu,
		float cap, float *y, float *work)
{
	int C = s->C, H = s->H, W = s->W, R = s->R, S = s->S;
	int P = s->P, Q = s->Q, st = s->stride, pad = s->pad;
	size_t HW = (size_t)H * W, PQ = (size_t)P * Q;
	/* Without a residual the 3x3 rows apply the activation themselves
	 * (the epilogue's clamp, the same values). */
	int fused = dw3_fast(s) && !res;
	float lo, hi;

	act_bounds(fused && relu, cap, &lo, &hi);
	if (dw3_flat_ok(s)) {
		size_t planes = (size_t)s->N * C;
		memset(work, 0, dw3_flat_work(s) * sizeof *work);
		for (size_t i0 = 0; i0 < planes; i0 += DW3_GROUP) {
			int n = planes - i0 < DW3_GROUP ? (int)(planes - i0) : DW3_GROUP;
			dw3_flat(s, x, i0, n, w, bias, lo, hi, y, work);
			for (int k = 0; res && k < n; k++) {
				float *yp = y + (i0 + (size_t)k) * PQ;
				epilogue(PQ, yp, 0, 0, res + (yp - y), relu, cap, yp);
			}
		}
		return;
	}
	for (int n = 0; n < s->N; n++)
		for (int c = 0; c < C; c++) {
			const float *xp = x + ((size_t)n * C + c) * HW;
			const float *wc = w + (size_t)c * R * S;
			float *yp = y + ((size_t)n * C + c) * PQ;
			float b = bias ? bias[c] : 0.0f;
			if (dw3_fast(s))
				dw3_plane(s, xp, wc, b, lo, hi, yp, work);
			for (int p = 0; !dw3_fast(s) && p < P; p++) {
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
			/* The bias is in already; the rest while the plane is
			 * still in cache. */
			if ((res || relu) && !fused)
				epilogue(PQ, yp, 0, 0, res ? res + (yp - y) : NULL, relu, cap, yp);
		}
}

static void
depthwise_backward(const struct mea_conv_shape *s, const float *x,
		const float *w, const float *dy, float *dx, int set_dx, float *dw,
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
			if (dxp && set_dx)
				memset(dxp, 0, HW * sizeof *dxp);
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

/*
 * The epilogue of one GEMM over m images of group g (paths 3 and 4):
 * output channel k of image i is at out + k * ld + i * istride and goes,
 * with bias, residual and activation, to y[n0 + i][g * Kg + k].  A GEMM
 * over one image wrote y itself and, with nothing to add, is done.
 */
static void
chunk_epilogue(const struct mea_conv_shape *s, int n0, int m, int g, const float *out,
		size_t ld, size_t istride, const float *bias, const float *res, int relu,
		float cap, float *y)
{
	int Kg = s->K / s->groups;
	size_t PQ = (size_t)s->P * s->Q;

	if (m == 1 && !bias && !res && !relu)
		return;
	for (int i = 0; i < m; i++)
		for (int k = 0; k < Kg; k++) {
			size_t o = ((size_t)(n0 + i) * s->K + (size_t)g * Kg + k) * PQ;
			epilogue(PQ, out + (size_t)k * ld + (size_t)i * istride, bias != NULL,
				bias ? bias[g * Kg + k] : 0, res ? res + o : NULL, relu, cap, y + o);
		}
}

/* --------------------------------------------------------- row shift */

/*
 * Fill the row-shift scratch for one group's Cg channels of m images (x
 * is the first image's group slice): row (c, t), of ld floats, holds the
 * input rows of channel c shifted by tap column t - pad, Q cells each,
 * image i's H rows starting at row pad + i * band, with pad zero rows
 * before the first image and after every image.  The "same" case (Q ==
 * W) copies an image's whole shifted plane at once, as im2col does.
 */
static void
shift_fill(const struct mea_conv_shape *s, int Cg, int m, const float *x,
		float *col, size_t ld)
{
	int H = s->H, W = s->W, Q = s->Q, pad = s->pad, band = H + pad;
	size_t HW = (size_t)H * W, CHW = (size_t)s->C * HW;

	for (int t = 0; t < s->S; t++) {
		int lo, hi;
		span(t, 1, pad, W, Q, &lo, &hi);
		for (int c = 0; c < Cg; c++) {
			float *row = col + ((size_t)c * s->S + t) * ld;
			zero(row, (size_t)pad * Q);
			for (int i = 0; i < m; i++) {
				const float *xc = x + (size_t)i * CHW + (size_t)c * HW;
				float *blk = row + ((size_t)i * band + pad) * Q;
				zero(blk + (size_t)H * Q, (size_t)pad * Q);
				if (lo == hi) {
					zero(blk, (size_t)H * Q);
					continue;
				}
				if (Q == W) {
					size_t d0 = (size_t)lo, d1 = (size_t)(H - 1) * Q + hi;
					memcpy(blk + d0, xc + (ptrdiff_t)d0 + (t - pad),
						(d1 - d0) * sizeof *blk);
					zero_cols(blk, Q, 0, H, lo, hi);
					continue;
				}
				zero_cols(blk, Q, 0, H, lo, hi);
				for (int h = 0; h < H; h++) {
					float *d = blk + (size_t)h * Q;
					const float *src = xc + (size_t)h * W + (lo - pad + t);
					for (int q = lo; q < hi; q++)
						d[q] = src[q - lo];
				}
			}
		}
	}
}

/* w[g][k][c][r][t] -> wr[g][r][k][c][t]: tap row r of group g's weights,
 * a Kg x Cg*S matrix, for each r (the row shift's GEMM operands). */
static void
gather_rows(const struct mea_conv_shape *s, const float *w, float *wr)
{
	int G = s->groups, Cg = s->C / G, Kg = s->K / G, R = s->R, S = s->S, CS = Cg * S;

	for (int g = 0; g < G; g++)
		for (int k = 0; k < Kg; k++)
			for (int c = 0; c < Cg; c++)
				for (int r = 0; r < R; r++)
					memcpy(wr + (((size_t)g * R + r) * Kg + k) * CS + (size_t)c * S,
						w + ((((size_t)g * Kg + k) * Cg + c) * R + r) * S,
						(size_t)S * sizeof *wr);
}

/* The adjoint of gather_rows: dw[g][k][c][r][t] += dwr[g][r][k][c][t]. */
static void
scatter_rows_add(const struct mea_conv_shape *s, const float *dwr, float *dw)
{
	int G = s->groups, Cg = s->C / G, Kg = s->K / G, R = s->R, S = s->S, CS = Cg * S;

	for (int g = 0; g < G; g++)
		for (int r = 0; r < R; r++)
			for (int k = 0; k < Kg; k++)
				for (int c = 0; c < Cg; c++) {
					const float *src = dwr + (((size_t)g * R + r) * Kg + k) * CS +
						(size_t)c * S;
					float *dst = dw + ((((size_t)g * Kg + k) * Cg + c) * R + r) * S;
					for (int t = 0; t < S; t++)
						dst[t] += src[t];
				}
}

/*
 * y[Kg][cols] (rows ldy apart) = w[Kg][k] x[k][cols] (rows ldx apart):
 * in inference over at most SPLIT_DEPTH sums a dot product, in calls of
 * as many columns as OpenBLAS gives its small-matrix kernel
 * (mea_gemm_split).  MobileNetV2's stem (27) ran 20% faster so; ResNet-18's
 * (147, 106 columns a call) 25% slower.
 */
#define SPLIT_DEPTH 64

static void
gemm_cols(const struct mea_conv_shape *s, int Kg, int cols, int k, const float *w,
		const float *x, int ldx, float *y, int ldy)
{
	int n = s->inference && k <= SPLIT_DEPTH ?
		mea_gemm_split(cols, (size_t)Kg * (size_t)k) : cols;

	for (int j = 0; j < cols; j += n)
		mea_gemm(0, 0, Kg, cols - j < n ? cols - j : n, k, 1.0f, w, k, x + j, ldx,
			0.0f, y + j, ldy);
}

/* The im2col forward with one image per GEMM, in bands of output rows
 * (band_rows): the GEMM writes each band straight into y, whose rows are
 * PQ apart. */
static void
band_forward(const struct mea_conv_shape *s, const float *x, const float *w,
		const float *bias, const float *res, int relu, float cap, float *y,
		float *col)
{
	int G = s->groups, Cg = s->C / G, Kg = s->K / G, CRS = Cg * s->R * s->S;
	int rows = band_rows(s), fix = bias || res || relu;
	size_t HW = (size_t)s->H * s->W, PQ = (size_t)s->P * s->Q;

	for (int n = 0; n < s->N; n++)
		for (int g = 0; g < G; g++)
			for (int p0 = 0; p0 < s->P; p0 += rows) {
				int p1 = s->P - p0 < rows ? s->P : p0 + rows, cols = (p1 - p0) * s->Q;
				size_t o = ((size_t)n * s->K + (size_t)g * Kg) * PQ + (size_t)p0 * s->Q;
				im2col_rows(s, Cg, x + ((size_t)n * s->C + (size_t)g * Cg) * HW, p0, p1,
					col, (size_t)cols);
				gemm_cols(s, Kg, cols, CRS, w + (size_t)g * Kg * CRS, col, cols,
					y + o, (int)PQ);
				for (int k = 0; fix && k < Kg; k++)
					epilogue((size_t)cols, y + o + (size_t)k * PQ, bias != NULL,
						bias ? bias[g * Kg + k] : 0,
						res ? res + o + (size_t)k * PQ : NULL, relu, cap,
						y + o + (size_t)k * PQ);
			}
}

/*
 * Forward by row shifts (path 4).  For tap row r, the cells the outputs
 * of row p need are scratch row p + r: the same matrix as for r = 0,
 * starting r * Q columns later.  So y = sum over r of w_r (Kg x Cg*S) *
 * col[:, r*Q ...], R GEMMs over one scratch S*Cg rows tall, where
 * im2col would write R*S*Cg rows; w_r is w's tap row r, gathered into
 * wr.  The GEMM output has band rows per image, of which the first P are
 * the image's output.
 */
static void
shift_forward(const struct mea_conv_shape *s, const float *x, const float *w,
		const float *bias, const float *res, int relu, float cap, float *y,
		float *work)
{
	int G = s->groups, Cg = s->C / G, Kg = s->K / G, R = s->R, S = s->S;
	int CS = Cg * S, HW = s->H * s->W, PQ = s->P * s->Q, band = s->H + s->pad;
	int nb = chunk(s);
	size_t ld = (size_t)shift_ld(s, nb);
	float *wr = work, *col = wr + (size_t)s->K * CS * R;
	float *tmp = col + (size_t)CS * ld;

	gather_rows(s, w, wr);
	for (int n0 = 0; n0 < s->N; n0 += nb) {
		int m = s->N - n0 < nb ? s->N - n0 : nb;
		int ncols = (int)shift_cols_n(s, m);
		for (int g = 0; g < G; g++) {
			shift_fill(s, Cg, m, x + ((size_t)n0 * s->C + (size_t)g * Cg) * HW, col, ld);
			/* With one image the GEMM writes y itself. */
			float *out = m == 1 ? y + ((size_t)n0 * s->K + (size_t)g * Kg) * PQ : tmp;
			for (int r = 0; r < R; r++)
				mea_gemm(0, 0, Kg, ncols, CS, 1.0f,
					wr + ((size_t)g * R + r) * Kg * CS, CS,
					col + (size_t)r * s->Q, (int)ld, r ? 1.0f : 0.0f,
					out, ncols);
			chunk_epilogue(s, n0, m, g, out, (size_t)ncols, (size_t)band * s->Q,
				bias, res, relu, cap, y);
		}
	}
}

/*
 * The adjoint of shift_fill: every cell of a shifted row that came from
 * an input cell is added back onto it (dx is the first image's group
 * slice).  The padding rows and the columns that wrapped around from a
 * neighbouring row are dropped; in the "same" case the wrapped columns
 * are zeroed in dcol, the caller's scratch, so that each image's block
 * goes back with one long add, as col2im does.
 */
static void
shift_unfill(const struct mea_conv_shape *s, int Cg, int m, float *dcol, size_t ld,
		float *dx)
{
	int H = s->H, W = s->W, Q = s->Q, pad = s->pad, band = H + pad;
	size_t HW = (size_t)H * W, CHW = (size_t)s->C * HW;

	for (int t = 0; t < s->S; t++) {
		int lo, hi;
		span(t, 1, pad, W, Q, &lo, &hi);
		if (lo == hi)
			continue;
		for (int c = 0; c < Cg; c++) {
			float *row = dcol + ((size_t)c * s->S + t) * ld;
			for (int i = 0; i < m; i++) {
				float *dc = dx + (size_t)i * CHW + (size_t)c * HW;
				float *blk = row + ((size_t)i * band + pad) * Q;
				if (Q == W) {
					size_t d0 = (size_t)lo, d1 = (size_t)(H - 1) * Q + hi;
					zero_cols(blk, Q, 0, H, lo, hi);
					add_to(d1 - d0, blk + d0, dc + (ptrdiff_t)d0 + (t - pad));
					continue;
				}
				for (int h = 0; h < H; h++) {
					const float *d = blk + (size_t)h * Q;
					float *dst = dc + (size_t)h * W + (lo - pad + t);
					for (int q = lo; q < hi; q++)
						dst[q - lo] += d[q];
				}
			}
		}
	}
}

/*
 * Backward by row shifts, for training plans that ask for it
 * (mea_conv_shape.row_shift): the two products of path 3 split by tap
 * row as the forward is.  With dy gathered into the forward's output
 * layout (band rows per image, zero in the rows between images):
 *   dw_r += dy * (col from column r*Q on)^T    (Kg x Cg*S, per tap row r)
 *   dcol[:, r*Q ...] += w_r^T * dy             (Cg*S x the GEMM's columns)
 * and shift_unfill adds dcol back onto the input cells, three shifted
 * copies where col2im adds nine.  dw_r is gathered like w_r and added
 * into dw once at the end.
 */
static void
shift_backward(const struct mea_conv_shape *s, const float *x, const float *w,
		const float *dy, float *dx, int set_dx, float *dw, float *work)
{
	int G = s->groups, Cg = s->C / G, Kg = s->K / G, R = s->R, S = s->S, Q = s->Q;
	int CS = Cg * S, HW = s->H * s->W, PQ = s->P * s->Q, band = s->H + s->pad;
	int nb = chunk(s);
	size_t ld = (size_t)shift_ld(s, nb), nwr = (size_t)s->K * CS * R;
	float *wr = work, *col = wr + nwr, *tmp = col + (size_t)CS * ld;
	float *dwr = tmp + (nb > 1 ? (size_t)Kg * shift_cols_n(s, nb) : 0);
	float *dcol = dwr + nwr;

	if (dx)
		gather_rows(s, w, wr);
	if (dw)
		zero(dwr, nwr);
	for (int n0 = 0; n0 < s->N; n0 += nb) {
		int m = s->N - n0 < nb ? s->N - n0 : nb;
		int ncols = (int)shift_cols_n(s, m);
		for (int g = 0; g < G; g++) {
			const float *dyg = dy + ((size_t)n0 * s->K + (size_t)g * Kg) * PQ;
			if (m > 1) {
				for (int k = 0; k < Kg; k++)
					for (int i = 0; i < m; i++) {
						float *d = tmp + (size_t)k * ncols + (size_t)i * band * Q;
						memcpy(d, dyg + ((size_t)i * s->K + k) * PQ,
							(size_t)PQ * sizeof *d);
						if (i < m - 1)
							zero(d + PQ, (size_t)band * Q - (size_t)PQ);
					}
				dyg = tmp;
			}
			if (dw) {
				shift_fill(s, Cg, m, x + ((size_t)n0 * s->C + (size_t)g * Cg) * HW,
					col, ld);
				for (int r = 0; r < R; r++)
					mea_gemm(0, 1, Kg, CS, ncols, 1.0f, dyg, ncols,
						col + (size_t)r * Q, (int)ld, 1.0f,
						dwr + ((size_t)g * R + r) * Kg * CS, CS);
			}
			if (!dx)
				continue;
			/* Tap row 0 writes columns [0, ncols); the others add
			 * R - 1 rows further on, into columns zeroed here. */
			for (int c = 0; c < CS; c++)
				zero(dcol + (size_t)c * ld + ncols, (size_t)(R - 1) * Q);
			for (int r = 0; r < R; r++)
				mea_gemm(1, 0, CS, ncols, Kg, 1.0f,
					wr + ((size_t)g * R + r) * Kg * CS, CS, dyg, ncols,
					r ? 1.0f : 0.0f, dcol + (size_t)r * Q, (int)ld);
			float *dxg = dx + ((size_t)n0 * s->C + (size_t)g * Cg) * HW;
			for (int i = 0; set_dx && i < m; i++)
				memset(dxg + (size_t)i * s->C * HW, 0, (size_t)Cg * HW * sizeof *dxg);
			shift_unfill(s, Cg, m, dcol, ld, dxg);
		}
	}
	if (dw)
		scatter_rows_add(s, dwr, dw);
}

/* ----------------------------------------------------------- forward */

void
mea_conv2d_forward(const struct mea_conv_shape *s, const float *x,
		const float *w, const float *bias, float *y, float *work)
{
	mea_conv2d_forward_act(s, x, w, bias, NULL, 0, 0, y, work);
}

/*
 * The bias, a residual and the activation are applied by epilogue() to
 * each block of output right after its GEMM wrote it, while it is still
 * in cache: in place over one image's group of channels on the pointwise
 * path and when an im2col chunk is one image, and on the way from the
 * GEMM's [Kg][i][PQ] scratch to y[i][k][PQ] otherwise (a copy the chunk
 * needs anyway).  Separate bias, add and ReLU passes each cost a trip
 * through memory for activations larger than the cache.
 */
void
mea_conv2d_forward_act(const struct mea_conv_shape *s, const float *x,
		const float *w, const float *bias, const float *res, int relu,
		float cap, float *y, float *work)
{
	int G = s->groups, Cg = s->C / G, Kg = s->K / G;
	int HW = s->H * s->W, PQ = s->P * s->Q;
	int CRS = Cg * s->R * s->S;
	int fix = bias || res || relu;    /* an epilogue has work to do */

	if (is_depthwise(s)) {
		depthwise_forward(s, x, w, bias, res, relu, cap, y, work);
		return;
	}
	if (shift_scratch(s)) {
		shift_forward(s, x, w, bias, res, relu, cap, y, work);
		return;
	}
	if (is_pointwise(s) && !pw_batched(s)) {
		int nc = pointwise_cols(s);
		for (int n = 0; n < s->N; n++)
			for (int g = 0; g < G; g++)
				for (int c0 = 0; c0 < HW; c0 += nc) {
					int cols = HW - c0 < nc ? HW - c0 : nc;
					size_t o = ((size_t)n * s->K + (size_t)g * Kg) * PQ + (size_t)c0;
					gemm_cols(s, Kg, cols, Cg, w + (size_t)g * Kg * Cg,
						x + ((size_t)n * s->C + (size_t)g * Cg) * HW + c0, HW,
						y + o, PQ);
					for (int k = 0; fix && k < Kg; k++)
						epilogue((size_t)cols, y + o + (size_t)k * PQ,
							bias != NULL, bias ? bias[g * Kg + k] : 0,
							res ? res + o + (size_t)k * PQ : NULL, relu,
							cap, y + o + (size_t)k * PQ);
				}
		return;
	}

	int nb = chunk(s);
	if (nb == 1) {
		band_forward(s, x, w, bias, res, relu, cap, y, work);
		return;
	}
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
			/* With one image the GEMM writes y itself. */
			float *out = m == 1 ? y + ((size_t)n0 * s->K + (size_t)g * Kg) * PQ : tmp;
			mea_gemm(0, 0, Kg, cols, CRS, 1.0f, wg, CRS, col,
				cols, 0.0f, out, m == 1 ? PQ : cols);
			chunk_epilogue(s, n0, m, g, out, (size_t)(m == 1 ? PQ : cols),
				(size_t)PQ, bias, res, relu, cap, y);
		}
	}
}

/* ---------------------------------------------------------- backward */

/*
 * set_dx: dx is written, not added to (mea_conv2d_backward_set).  Each
 * image's slice of dx is zeroed just before col2im adds into it, while the
 * slice is about to be in cache anyway, rather than by the caller in a
 * separate pass over all of dx; the 1x1 path has the GEMM overwrite it.
 */
static void
conv_backward(const struct mea_conv_shape *s, const float *x, const float *w,
		const float *dy, float *dx, int set_dx, float *dw, float *db,
		float *work)
{
	int G = s->groups, Cg = s->C / G, Kg = s->K / G;
	int HW = s->H * s->W, PQ = s->P * s->Q;
	int CRS = Cg * s->R * s->S;

	if (db)
		for (int k = 0; k < s->K; k++) {
			double sum = 0;
			for (int n = 0; n < s->N; n++)
				sum += plane_sum((size_t)PQ, dy + ((size_t)n * s->K + k) * PQ);
			db[k] += (float)sum;
		}
	if (!dx && !dw)
		return;

	if (is_depthwise(s)) {
		depthwise_backward(s, x, w, dy, dx, set_dx, dw, work);
		return;
	}
	if (s->row_shift && shift_scratch(s)) {
		shift_backward(s, x, w, dy, dx, set_dx, dw, work);
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
						w + (size_t)g * Kg * Cg, Cg, dyg, PQ,
						set_dx ? 0.0f : 1.0f,
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
				for (int i = 0; i < m; i++) {
					float *dxi = dx + ((size_t)(n0 + i) * s->C +
						(size_t)g * Cg) * HW;
					if (set_dx)
						memset(dxi, 0, (size_t)Cg * HW * sizeof *dxi);
					col2im(s, Cg, col + (size_t)i * PQ, (size_t)cols, dxi);
				}
			}
		}
	}
}

void
mea_conv2d_backward(const struct mea_conv_shape *s, const float *x,
		const float *w, const float *dy, float *dx, float *dw, float *db,
		float *work)
{
	conv_backward(s, x, w, dy, dx, 0, dw, db, work);
}

void
mea_conv2d_backward_set(const struct mea_conv_shape *s, const float *x,
		const float *w, const float *dy, float *dx, float *dw, float *db,
		float *work)
{
	conv_backward(s, x, w, dy, dx, 1, dw, db, work);
}

/* ------------------------------------------- fused inverted residual */

/*
 * MobileNetV2's inverted residual (mea_ir_forward) is a 1x1 expansion to
 * E channels, a 3x3 depthwise convolution and a 1x1 projection.  Run as
 * three layers, each writes and the next reads an E-channel activation
 * (96 x 112 x 112 floats, 4.8 MB, in the second block); the depthwise
 * layers, a few percent of the network's multiply-adds, took 30% of
 * MobileNetV2's time, mostly moving them.  Fused, the block runs over bands of
 * `band` output rows of one image: the expansion GEMM makes the input
 * rows the band needs (all E channels), the depthwise rows read them,
 * and the projection GEMM writes the band's output rows, so the expanded
 * rows stay in cache.  The rows two bands share (the 3x3 window's
 * overlap) are kept and moved to the front of the scratch, not expanded
 * again.  Band sizes keep the expanded rows and the depthwise output
 * within IR_BYTES.
 *
 * Inside, the expanded rows and the depthwise output are channels-last
 * ([pixel][channel], nhwc.c); the block's input and output may be
 * either (in_cl, out_cl: graph.c makes them channels-last unless the
 * caller reads them).  The expansion GEMM reads an NCHW input
 * transposed and writes pixels' rows of E; the depthwise kernel
 * vectorises across channels with no padding copy and no even/odd split
 * at stride 2; the projection GEMM writes pixels' rows of K, which an
 * NCHW output gets back as rows by its epilogue (a GEMM reading the
 * depthwise output transposed and writing NCHW itself ran 1.5x slower).
 * With NCHW rows inside (session 7), the depthwise part ran at 7
 * GFLOP/s and took a third of the blocks' time.
 */
#define IR_BYTES (512 * 1024)

/* Expanded input rows held for a band of b output rows. */
static int
ir_rows(int b, int stride)
{
	return (b - 1) * stride + 3;
}

int
mea_ir_shape_init(struct mea_ir_shape *s)
{
	if (s->N < 1 || s->C < 1 || s->H < 1 || s->W < 1 || s->E < 1 || s->K < 1 ||
			(s->stride != 1 && s->stride != 2))
		return -1;
	/* GEMM sizes and leading dimensions are ints: a plane, a weight
	 * matrix and three expanded rows (the least a band holds) fit one
	 * with room to spare. */
	long long hw = (long long)s->H * s->W;
	if (hw > INT_MAX / 4 || (long long)s->C * s->E > INT_MAX ||
			(long long)s->K * s->E > INT_MAX ||
			(long long)s->E * 4 * (s->W + 3) > INT_MAX / 4)
		return -1;
	s->P = (s->H - 1) / s->stride + 1;    /* 3x3, pad 1 */
	s->Q = (s->W - 1) / s->stride + 1;
	/* Bytes of x and y fit a size_t. */
	size_t nx = sizeof(float), ny = sizeof(float);
	if (mulsz(&nx, (size_t)s->N) || mulsz(&nx, (size_t)s->C) || mulsz(&nx, (size_t)hw) ||
			mulsz(&ny, (size_t)s->N) || mulsz(&ny, (size_t)s->K) ||
			mulsz(&ny, (size_t)s->P * (size_t)s->Q))
		return -1;
	size_t row = (size_t)s->E * (size_t)s->W;      /* one expanded row */
	size_t drow = (size_t)s->E * (size_t)s->Q;     /* one depthwise output row */
	size_t budget = IR_BYTES / sizeof(float);
	s->band = 1;
	while (s->band < s->P && row * (size_t)ir_rows(s->band + 1, s->stride) +
			drow * (size_t)(s->band + 1) <= budget)
		s->band++;
	return 0;
}

size_t
mea_ir_workspace(const struct mea_ir_shape *s)
{
	size_t rows = (size_t)ir_rows(s->band, s->stride);
	return (size_t)s->E * rows * (size_t)s->W +          /* expanded rows */
		(size_t)s->E * (size_t)s->band * (size_t)s->Q +  /* depthwise output */
		(size_t)s->K * (size_t)s->band * (size_t)s->Q;   /* projection */
}

/* Expanded rows [h0, h1) of image xn into e, [row][W][E] (rows
 * [r_lo, r_hi) already there): keep the ones still needed, make the
 * rest. */
static void
ir_expand(const struct mea_ir_shape *s, const struct mea_ir_weights *wt,
		const float *xn, float *e, int h0, int h1, int *r_lo, int *r_hi)
{
	int W = s->W, E = s->E;
	size_t row = (size_t)W * E;

	if (*r_hi <= h0) {
		*r_lo = *r_hi = h0;
	} else if (h0 > *r_lo) {
		memmove(e, e + (size_t)(h0 - *r_lo) * row, (size_t)(*r_hi - h0) * row * sizeof *e);
		*r_lo = h0;
	}
	if (h1 <= *r_hi)
		return;
	int n = (h1 - *r_hi) * W;
	float *dst = e + (size_t)(*r_hi - *r_lo) * row;
	if (s->in_cl)
		mea_pw_nhwc_gemm(0, n, E, s->C, xn + (size_t)*r_hi * W * s->C, s->C, wt->w[0], dst);
	else
		mea_pw_nhwc_gemm(1, n, E, s->C, xn + (size_t)*r_hi * W, s->H * W, wt->w[0], dst);
	mea_nhwc_epilogue(n, E, dst, wt->b[0], NULL, wt->relu[0], wt->cap[0]);
	*r_hi = h1;
}

void
mea_ir_forward(const struct mea_ir_shape *s, const struct mea_ir_weights *wt,
		const float *x, const float *res, float *y, float *work)
{
	int E = s->E, K = s->K, st = s->stride, P = s->P, Q = s->Q, B = s->band;
	size_t HW = (size_t)s->H * s->W, PQ = (size_t)P * Q;
	float *e = work, *d = e + (size_t)E * ir_rows(B, st) * s->W;
	float *t = d + (size_t)E * B * Q;    /* the projection, channels-last */

	for (int n = 0; n < s->N; n++) {
		const float *xn = x + (size_t)n * s->C * HW;
		float *yn = y + (size_t)n * K * PQ;
		const float *rn = res ? res + (size_t)n * K * PQ : NULL;
		int r_lo = 0, r_hi = 0;
		for (int p0 = 0; p0 < P; p0 += B) {
			int p1 = p0 + B < P ? p0 + B : P;
			int h0 = p0 * st - 1 > 0 ? p0 * st - 1 : 0;
			int h1 = (p1 - 1) * st + 2 < s->H ? (p1 - 1) * st + 2 : s->H;
			int nq = (p1 - p0) * Q;
			ir_expand(s, wt, xn, e, h0, h1, &r_lo, &r_hi);
			mea_dw3_nhwc_rows(E, s->H, s->W, st, e, h0, p0, p1, wt->w[1], wt->b[1],
				wt->relu[1], wt->cap[1], d);
			if (s->out_cl) {
				size_t o = (size_t)p0 * Q * K;
				mea_pw_nhwc_gemm(0, nq, K, E, d, E, wt->w[2], yn + o);
				mea_nhwc_epilogue(nq, K, yn + o, wt->b[2], rn ? rn + o : NULL,
					wt->relu[2], wt->cap[2]);
				continue;
			}
			mea_pw_nhwc_gemm(0, nq, K, E, d, E, wt->w[2], t);
			mea_nhwc_to_nchw_act(nq, K, t, wt->b[2], rn ? rn + (size_t)p0 * Q : NULL,
				PQ, wt->relu[2], wt->cap[2], yn + (size_t)p0 * Q, PQ);
		}
	}
}
