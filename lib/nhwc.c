/*
 * nhwc.c: inference kernels over channels-last activations, for the
 * small planes of MobileNetV2-like networks (graph.c, mark_channels_last,
 * says which steps run here).
 *
 * In NCHW a 14x14 or 7x7 plane is a row of 196 or 49 floats, too short
 * for vectors: conv.c's 3x3 depthwise kernel copies each plane into a
 * padded scratch and out again, and a 1x1 convolution over several
 * images gathers their planes side by side for one GEMM and scatters the
 * result back.  Channels-last, an image is [H*W][C]: the depthwise taps
 * of a pixel are C contiguous floats, vectorised across channels with no
 * copy, and the 1x1 convolution of a slice of images is one GEMM over all
 * their pixels, y[pixels][K] = x[pixels][C] wt, with nothing to gather.
 * In MobileNetV2 at 224x224 and batch 64 the depthwise layers from 28x28
 * down took 18 to 66% less time this way, the stride-2 ones the most
 * (mea-main --profile, alternated runs).
 *
 * The sums are in the NCHW kernels' order (conv.c): a depthwise output
 * is the bias, then the nine taps row by row, left to right (a tap in the
 * padding adds w * 0, as conv.c's does), then the residual, then the
 * activation.  The 1x1 convolution's dot products are OpenBLAS's; on
 * MobileNetV2 they gave the same bits as the NCHW GEMMs, but nothing
 * promises more than agreement to rounding.
 */
#include <stddef.h>
#include <string.h>

#include "nn.h"
#include "simd.h"

/* Square tiles of the layout changes, so that both the reads and the
 * scattered writes of a tile stay within a few cache lines each. */
#define TILE 16

/* Each of N images, a rows x cols matrix, transposed into y. */
static void
transpose_images(int N, int rows, int cols, const float *x, float *y)
{
	size_t img = (size_t)rows * cols;

	for (int n = 0; n < N; n++) {
		const float *xn = x + (size_t)n * img;
		float *yn = y + (size_t)n * img;
		for (int r0 = 0; r0 < rows; r0 += TILE)
			for (int c0 = 0; c0 < cols; c0 += TILE) {
				int r1 = r0 + TILE < rows ? r0 + TILE : rows;
				int c1 = c0 + TILE < cols ? c0 + TILE : cols;
				for (int r = r0; r < r1; r++)
					for (int c = c0; c < c1; c++)
						yn[(size_t)c * rows + r] = xn[(size_t)r * cols + c];
			}
	}
}

void
mea_to_nhwc(int N, int C, int HW, const float *x, float *y)
{
	transpose_images(N, C, HW, x, y);
}

void
mea_to_nchw(int N, int C, int HW, const float *x, float *y)
{
	transpose_images(N, HW, C, x, y);
}

/* ------------------------------------------------------------ 1x1 */

/* y[k] = act((y[k] + b[k]) + r[k]) over a row of K, b or r NULL for
 * none (adding nothing is adding conv.c's -0.0: the same values).  GCC
 * at -O2 vectorises only loops of a known multiple of the vector width:
 * hence blocks of eight, and a loop for each case (with a test per
 * element it stayed scalar). */
static ALWAYS_INLINE void
act_row(int K, float *restrict y, const float *restrict b, const float *restrict r,
		float lo, float hi)
{
	int K8 = K & ~7, k;

	if (b && r)
		for (k = 0; k < K8; k += 8)
			for (int j = 0; j < 8; j++)
				y[k + j] = clamp((y[k + j] + b[k + j]) + r[k + j], lo, hi);
	else if (b)
		for (k = 0; k < K8; k += 8)
			for (int j = 0; j < 8; j++)
				y[k + j] = clamp(y[k + j] + b[k + j], lo, hi);
	else if (r)
		for (k = 0; k < K8; k += 8)
			for (int j = 0; j < 8; j++)
				y[k + j] = clamp(y[k + j] + r[k + j], lo, hi);
	else
		for (k = 0; k < K8; k += 8)
			for (int j = 0; j < 8; j++)
				y[k + j] = clamp(y[k + j], lo, hi);
	for (k = K8; k < K; k++)
		y[k] = clamp((y[k] + (b ? b[k] : -0.0f)) + (r ? r[k] : -0.0f), lo, hi);
}

/* The epilogue of m rows of K: conv.c's, with the bias along the row;
 * one call of the cloned loop for all rows (a call per row of 96 floats
 * cost as much as the row). */
WIDE_CLONES static void
rows_epilogue(int m, int K, float *y, const float *b, const float *res,
		float lo, float hi)
{
	for (int i = 0; i < m; i++)
		act_row(K, y + (size_t)i * K, b, res ? res + (size_t)i * K : NULL, lo, hi);
}

/*
 * Rows per GEMM: the epilogue should find the GEMM's output still in
 * the cache (L2 is 1 to 2 MB a core on current x86 servers), and the
 * GEMM wants many rows to pack its weights once for.
 */
#define PW_ROW_BYTES (256 * 1024)
#define PW_MIN_ROWS 64

/* In calls OpenBLAS gives its small-matrix kernel (mea_gemm_split). */
void
mea_pw_nhwc_gemm(int ta, int m, int K, int C, const float *x, int ldx, const float *wt,
		float *y)
{
	int rows = mea_gemm_split(m, (size_t)K * (size_t)C);

	for (int i0 = 0; i0 < m; i0 += rows) {
		int n = m - i0 < rows ? m - i0 : rows;
		const float *xi = ta ? x + i0 : x + (size_t)i0 * ldx;
		mea_gemm(ta, 0, n, K, C, 1.0f, xi, ldx, wt, K, 0.0f, y + (size_t)i0 * K, K);
	}
}

void
mea_pw_nhwc_weights(int K, int C, const float *w, float *wt)
{
	for (int k = 0; k < K; k++)
		for (int c = 0; c < C; c++)
			wt[(size_t)c * K + k] = w[(size_t)k * C + c];
}

void
mea_pw_nhwc_forward(int M, int C, int K, const float *x, const float *wt,
		const float *b, const float *res, int relu, float cap, float *y)
{
	size_t per_row = ((size_t)C + (size_t)K) * sizeof(float);
	size_t rows = PW_ROW_BYTES / per_row;
	float lo, hi;

	act_bounds(relu, cap, &lo, &hi);
	rows = rows < PW_MIN_ROWS ? PW_MIN_ROWS : rows;
	for (int i0 = 0; i0 < M; ) {
		int m = (size_t)(M - i0) < rows ? M - i0 : (int)rows;
		mea_pw_nhwc_gemm(0, m, K, C, x + (size_t)i0 * C, C, wt, y + (size_t)i0 * K);
		rows_epilogue(m, K, y + (size_t)i0 * K, b,
			res ? res + (size_t)i0 * K : NULL, lo, hi);
		i0 += m;
	}
}

/*
 * y[k][i] = act((t[i][k] + b[k]) + res[k][i]) for M pixels i and K
 * channels: a channels-last result t ([M][K]) into NCHW rows of ldy
 * floats (res rows of ldr), with conv.c's epilogue on the way (the same
 * operations in the same order).  In square tiles, as the layout
 * changes above.
 */
void
mea_nhwc_to_nchw_act(int M, int K, const float *t, const float *b, const float *res,
		size_t ldr, int relu, float cap, float *y, size_t ldy)
{
	float lo, hi;

	act_bounds(relu, cap, &lo, &hi);
	for (int i0 = 0; i0 < M; i0 += TILE)
		for (int k0 = 0; k0 < K; k0 += TILE) {
			int i1 = i0 + TILE < M ? i0 + TILE : M;
			int k1 = k0 + TILE < K ? k0 + TILE : K;
			for (int k = k0; k < k1; k++) {
				float bk = b ? b[k] : -0.0f;
				for (int i = i0; i < i1; i++) {
					float v = t[(size_t)i * K + k] + bk;
					if (res)
						v += res[(size_t)k * ldr + i];
					y[(size_t)k * ldy + i] = clamp(v, lo, hi);
				}
			}
		}
}

/* ------------------------------------------------------ 3x3 depthwise */

void
mea_dw3_nhwc_weights(int C, const float *w, float *wt)
{
	for (int c = 0; c < C; c++)
		for (int t = 0; t < 9; t++)
			wt[(size_t)t * C + c] = w[(size_t)c * 9 + t];
	for (int c = 0; c < C; c++)
		wt[(size_t)9 * C + c] = 0.0f;
}

/*
 * One output pixel, all channels, a block at a time, from its nine taps'
 * rows of C floats, x[0..8] (a tap in the padding reads C zeros, so it
 * adds w * 0, as conv.c's 3x3 kernel does).  The sum starts as the bias
 * plus the first tap's product, then adds the other taps in order, then
 * the residual; the activation clamps it.  No bias is -0.0, and -0.0 + p
 * == p.  Written out tap by tap, with no test in the loop, so that GCC
 * keeps the sums in registers: starting from a copy of the bias, or with
 * a loop over the taps at the border, it kept them on the stack and
 * reloaded them in halves that stalled on the stores (failed store
 * forwarding), and the layer ran at a third of this speed.
 *
 * Blocks of sixteen channels (one AVX-512 vector, two AVX2 ones), then
 * one of eight: the AVX-512 clone ran the depthwise layers 7% faster
 * than eight at a time.
 */
#define DW3_BLOCK(n) \
	for (; c0 + (n) <= C; c0 += (n)) { \
		float a[n]; \
		for (int j = 0; j < (n); j++) \
			a[j] = b[c0 + j] + w[c0 + j] * x[0][c0 + j]; \
		DW3_TAP(n, 1) DW3_TAP(n, 2) DW3_TAP(n, 3) DW3_TAP(n, 4) \
		DW3_TAP(n, 5) DW3_TAP(n, 6) DW3_TAP(n, 7) DW3_TAP(n, 8) \
		for (int j = 0; j < (n); j++) \
			y[c0 + j] = clamp(a[j], lo, hi); \
	}
#define DW3_TAP(n, k) for (int j = 0; j < (n); j++) \
			a[j] += w[(k) * c + c0 + j] * x[k][c0 + j];

static ALWAYS_INLINE void
dw3_pixel(int C, const float *const *x, const float *w, const float *b,
		const float *res, float lo, float hi, float *y)
{
	int c0 = 0;
	size_t c = (size_t)C;

	if (b && !res) {
		DW3_BLOCK(16)
		DW3_BLOCK(8)
	}
	/* Without a bias or with a residual (not in MobileNetV2), and the
	 * channels after the last whole block: one at a time. */
	for (; c0 < C; c0++) {
		float s = b ? b[c0] + w[c0] * x[0][c0] : w[c0] * x[0][c0];
		for (int k = 1; k < 9; k++)
			s += w[k * c + c0] * x[k][c0];
		s = res ? s + res[c0] : s;
		y[c0] = clamp(s, lo, hi);
	}
}
#undef DW3_TAP
#undef DW3_BLOCK

/*
 * One output row from input rows held at rows ([row][W][C]): its windows
 * start at row h of them (relative; may be -1), and rows [rlo, rhi) of
 * them are inside the image (the others are padding).  Pixel by pixel,
 * all channels at a time: a pixel's taps read C contiguous floats each,
 * from three input rows that stay in cache along the row.  (A block of
 * channels at a time along the row, four outputs to a block, was no
 * faster.)
 */
WIDE_CLONES static void
dw3_row(int C, int W, int Q, int st, const float *rows, int h, int rlo, int rhi,
		const float *wt, const float *b, const float *res, float lo, float hi, float *y)
{
	const float *zero = wt + (size_t)9 * C, *x[9];

	for (int q = 0; q < Q; q++) {
		int v = q * st - 1;
		for (int r = 0; r < 3; r++)
			for (int t = 0; t < 3; t++) {
				int ih = h + r, iw = v + t;
				x[r * 3 + t] = ih < rlo || ih >= rhi || iw < 0 || iw >= W ? zero :
					rows + ((size_t)ih * W + (size_t)iw) * C;
			}
		dw3_pixel(C, x, wt, b, res ? res + (size_t)q * C : NULL, lo, hi,
			y + (size_t)q * C);
	}
}

void
mea_dw3_nhwc_forward(int N, int C, int H, int W, int stride, const float *x,
		const float *wt, const float *b, const float *res, int relu, float cap,
		float *y)
{
	int P = (H - 1) / stride + 1, Q = (W - 1) / stride + 1;
	float lo, hi;

	act_bounds(relu, cap, &lo, &hi);
	for (int n = 0; n < N; n++)
		for (int p = 0; p < P; p++) {
			size_t o = ((size_t)n * P + p) * Q * C;
			dw3_row(C, W, Q, stride, x + (size_t)n * H * W * C, p * stride - 1, 0, H,
				wt, b, res ? res + o : NULL, lo, hi, y + o);
		}
}

void
mea_dw3_nhwc_rows(int C, int H, int W, int stride, const float *rows, int h0, int p0,
		int p1, const float *wt, const float *b, int relu, float cap, float *y)
{
	int Q = (W - 1) / stride + 1;
	float lo, hi;

	act_bounds(relu, cap, &lo, &hi);
	for (int p = p0; p < p1; p++)
		dw3_row(C, W, Q, stride, rows, p * stride - 1 - h0, -h0, H - h0, wt, b, NULL,
			lo, hi, y + (size_t)(p - p0) * Q * C);
}

void
mea_nhwc_epilogue(int M, int K, float *y, const float *b, const float *res, int relu,
		float cap)
{
	float lo, hi;

	act_bounds(relu, cap, &lo, &hi);
	rows_epilogue(M, K, y, b, res, lo, hi);
}

/* Each mean summed in double over the pixels in order, as
 * mea_gap_forward sums a plane: the same values. */
void
mea_gap_nhwc_forward(int N, int C, int HW, const float *x, float *y)
{
	for (int n = 0; n < N; n++) {
		const float *xn = x + (size_t)n * HW * C;
		for (int c = 0; c < C; c++) {
			double s = 0;
			for (int i = 0; i < HW; i++)
				s += xn[(size_t)i * C + c];
			y[(size_t)n * C + c] = (float)(s / HW);
		}
	}
}
