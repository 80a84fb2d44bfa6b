/*
 * nn.c: the small kernels of libmea: BLAS glue, batch normalisation,
 * element-wise layers, pooling, fully connected, softmax, losses and the
 * optimiser.  Convolution lives in conv.c.
 *
 * Shape letters follow nn.h: N batch, C channels, HW = H*W plane size,
 * P x Q pooled size.  Every index into a big array is a size_t, built
 * from int shape letters that the caller (or a *_shape_init) has checked;
 * the product of two ints never happens in int arithmetic.
 *
 * Sums over a batch (BN statistics, bias gradients, losses) run in
 * double: they add up to millions of floats, and a float running sum
 * loses the low digits of each term once it is large against them.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "nn.h"

/* ------------------------------------------------------------------ BLAS */

static int naive_gemm;

void
mea_set_naive_gemm(int on)
{
	naive_gemm = on != 0;
}

void
mea_set_threads(int n)
{
	openblas_set_num_threads(n < 1 ? 1 : n);
}

const char *
mea_blas_info(void)
{
	/* A static buffer: the text never changes within a process, so
	 * the caller may keep the pointer; not for concurrent first calls. */
	static char buf[256];
	const char *cfg = openblas_get_config();
	const char *core = openblas_get_corename();

	snprintf(buf, sizeof buf, "%s; core %s", cfg ? cfg : "OpenBLAS",
			core ? core : "unknown");
	return buf;
}

/*
 * The naive kernel is the textbook triple loop with a double accumulator.
 * It exists for the tests (a GEMM that cannot share a bug with OpenBLAS)
 * and for debugging; it is never fast.
 */
static void
gemm_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A,
		int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	for (int i = 0; i < M; i++)
		for (int j = 0; j < N; j++) {
			double acc = 0;
			for (int k = 0; k < K; k++) {
				float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
				float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
				acc += (double)a * b;
			}
			float *c = &C[(size_t)i * ldc + j];
			/* beta == 0 overwrites, as BLAS does: C may hold garbage. */
			*c = (float)(alpha * acc + (beta == 0 ? 0.0 : (double)beta * *c));
		}
}

void
mea_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
		int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	if (naive_gemm || K <= 0) {
		gemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
			tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
			B, ldb, beta, C, ldc);
}

/*
 * OpenBLAS (0.3.21, SkylakeX kernels) hands a product of at most 10^6
 * multiply-adds to a "small matrix" kernel that reads its operands in
 * place: no packing, and no pass clearing the output first (beta = 0).
 * Over few input channels that is most of the work: cut into such calls,
 * MobileNetV2's 1x1 layers over 16 to 32 channels ran 1.3 to 1.6 times
 * as fast, its projections to 24 channels 1.2 times (a microbenchmark,
 * data in cache), and the whole network 6% faster.  With fewer than
 * about a hundred rows a call, more calls cost more than they save.
 * Where OpenBLAS has no such kernel (other CPUs or versions), the
 * smaller calls only pack the small operand more often.  Only inference
 * splits: training keeps the calls its shipped weights were made with.
 */
#define SMALL_GEMM_MACS 1000000
#define SMALL_GEMM_MIN_LINES 96

int
mea_gemm_split(int n, size_t macs)
{
	size_t lines = macs ? SMALL_GEMM_MACS / macs : (size_t)n;

	return lines < SMALL_GEMM_MIN_LINES || lines >= (size_t)n ? n : (int)lines;
}

/* ------------------------------------------------ batch normalisation */

/*
 * All BN kernels walk a channel's N planes of HW floats; the planes of
 * one channel are C*HW apart.  The normalisation is applied as
 * (x - mean) * scale + beta, not x * scale + (beta - mean * scale): the
 * second form is one operation shorter but cancels catastrophically when
 * the mean is large against the spread (activations far from zero).
 *
 * Speed.  One channel of a training batch (128 planes of 28x28 is 400 KB)
 * fits in L2, so the passes over a channel after the first are cheap; what
 * costs is a pass that does not vectorise.  A double running sum is one
 * dependent add per element (4 cycles each), so the sums below keep four
 * independent double partial sums, lane j taking elements i = j (mod 4),
 * which GCC turns into two-wide SSE2 adds at -O2; the remainder of a plane
 * goes to lane 0.  The partial sums are still double, so the statistics
 * are as accurate as before: only the order of the additions changed.
 * The activation that follows a bn in a network is folded into the
 * element loops (the _act kernels), saving a pass over the output in
 * forward and a scratch buffer plus two passes in backward.
 */

/* Elements a plane loop hands to the four-lane body; the rest go to lane 0. */
static size_t
lanes4(size_t n)
{
	return n & ~(size_t)3;
}

/* The sum of x[i] over one plane, added into *s. */
static void
plane_sum(size_t n, const float *restrict x, double *s)
{
	double a[4] = {0, 0, 0, 0};
	size_t n4 = lanes4(n);

	for (size_t i = 0; i < n4; i += 4)
		for (int j = 0; j < 4; j++)
			a[j] += x[i + j];
	for (size_t i = n4; i < n; i++)
		a[0] += x[i];
	*s += (a[0] + a[1]) + (a[2] + a[3]);
}

/* The sum of (x[i] - m)^2 over one plane, added into *ss. */
static void
plane_sqdev(size_t n, const float *restrict x, double m, double *ss)
{
	double a[4] = {0, 0, 0, 0};
	size_t n4 = lanes4(n);

	for (size_t i = 0; i < n4; i += 4)
		for (int j = 0; j < 4; j++) {
			double d = x[i + j] - m;
			a[j] += d * d;
		}
	for (size_t i = n4; i < n; i++) {
		double d = x[i] - m;
		a[0] += d * d;
	}
	*ss += (a[0] + a[1]) + (a[2] + a[3]);
}

/* y = act((x - m) * scale + b) over one plane; relu and cap as in nn.h.
 * y may be x (a bn in place): each block loads before it stores. */
static void
plane_norm(size_t n, const float *x, float m, float scale, float b,
		int relu, float cap, float *y)
{
	size_t n4 = lanes4(n);
	float lo = relu ? 0.0f : -INFINITY, hi = relu && cap > 0 ? cap : INFINITY;

	/* The activation is a clamp to [lo, hi] (+-inf for none), written as
	 * mea_relu_forward's compares so that a NaN passes through. */
	for (size_t i = 0; i < n4; i += 4) {
		float v[4];
		for (int j = 0; j < 4; j++)
			v[j] = (x[i + j] - m) * scale + b;
		for (int j = 0; j < 4; j++)
			v[j] = v[j] < lo ? lo : v[j];
		for (int j = 0; j < 4; j++)
			y[i + j] = v[j] > hi ? hi : v[j];
	}
	for (size_t i = n4; i < n; i++) {
		float v = (x[i] - m) * scale + b;
		v = v < lo ? lo : v;
		y[i] = v > hi ? hi : v;
	}
}

void
mea_bn_forward_infer(int N, int C, int HW, const float *x, const float *gamma,
		const float *beta, const float *mean, const float *var, float eps,
		float *y)
{
	for (int c = 0; c < C; c++) {
		float m = mean[c], b = beta[c];
		float scale = (float)(gamma[c] / sqrt((double)var[c] + eps));
		for (int n = 0; n < N; n++) {
			size_t o = ((size_t)n * C + c) * HW;
			plane_norm((size_t)HW, x + o, m, scale, b, 0, 0, y + o);
		}
	}
}

void
mea_bn_forward_train(int N, int C, int HW, const float *x, const float *gamma,
		const float *beta, float eps, float momentum, float *y,
		float *save_mean, float *save_invstd, float *run_mean,
		float *run_var)
{
	mea_bn_forward_train_act(N, C, HW, x, gamma, beta, eps, momentum, 0, 0, y,
			save_mean, save_invstd, run_mean, run_var);
}

void
mea_bn_forward_train_act(int N, int C, int HW, const float *x, const float *gamma,
		const float *beta, float eps, float momentum, int relu, float cap,
		float *y, float *save_mean, float *save_invstd, float *run_mean,
		float *run_var)
{
	double M = (double)N * HW;

	for (int c = 0; c < C; c++) {
		/* Two passes (mean, then squared deviations) rather than
		 * E[x^2] - E[x]^2, which cancels badly for large means. */
		double s = 0, ss = 0;
		for (int n = 0; n < N; n++)
			plane_sum((size_t)HW, x + ((size_t)n * C + c) * HW, &s);
		double mean = s / M;
		for (int n = 0; n < N; n++)
			plane_sqdev((size_t)HW, x + ((size_t)n * C + c) * HW, mean, &ss);
		double var = ss / M;
		double invstd = 1.0 / sqrt(var + eps);
		float scale = (float)(gamma[c] * invstd);
		float m = (float)mean, b = beta[c];

		for (int n = 0; n < N; n++) {
			size_t o = ((size_t)n * C + c) * HW;
			plane_norm((size_t)HW, x + o, m, scale, b, relu, cap, y + o);
		}
		if (save_mean)
			save_mean[c] = (float)mean;
		if (save_invstd)
			save_invstd[c] = (float)invstd;
		/* PyTorch keeps the unbiased variance; with a single value
		 * per channel it is undefined, and we keep the biased one
		 * (zero) rather than poison the running statistics. */
		double uvar = M > 1 ? ss / (M - 1) : var;
		if (run_mean)
			run_mean[c] = (float)((1.0 - momentum) * run_mean[c] + momentum * mean);
		if (run_var)
			run_var[c] = (float)((1.0 - momentum) * run_var[c] + momentum * uvar);
	}
}

/*
 * The gradient reaching the bn's output, g = dy where the activation
 * passed its input (0 < y < cap; y is the output after the activation),
 * else 0; without an activation g = dy.  A select, not dy * mask, so that
 * an infinite dy at a cut-off cell gives 0 rather than NaN, as
 * mea_relu_backward does.
 */
static float
act_grad(int relu, float cap, float y, float dy)
{
	if (!relu)
		return dy;
	dy = y > 0 ? dy : 0.0f;
	return cap > 0 && !(y < cap) ? 0.0f : dy;
}

/* Sums of g and of g * xhat over one plane, added into sg and sgx. */
static void
plane_bn_sums(size_t n, const float *restrict x, const float *restrict y,
		const float *restrict dy, int relu, float cap, double mean,
		double invstd, double *sg, double *sgx)
{
	double a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};
	size_t n4 = lanes4(n);

	/* The masked gradient is formed in floats first: a float compare
	 * selecting into a double does not vectorise. */
	for (size_t i = 0; i < n4; i += 4) {
		float g[4];
		for (int j = 0; j < 4; j++)
			g[j] = dy[i + j];
		if (relu)
			for (int j = 0; j < 4; j++)
				g[j] = y[i + j] > 0 ? g[j] : 0.0f;
		if (relu && cap > 0)
			for (int j = 0; j < 4; j++)
				g[j] = y[i + j] < cap ? g[j] : 0.0f;
		for (int j = 0; j < 4; j++) {
			a[j] += g[j];
			b[j] += g[j] * ((x[i + j] - mean) * invstd);
		}
	}
	for (size_t i = n4; i < n; i++) {
		double g = act_grad(relu, cap, y ? y[i] : 0, dy[i]);
		a[0] += g;
		b[0] += g * ((x[i] - mean) * invstd);
	}
	*sg += (a[0] + a[1]) + (a[2] + a[3]);
	*sgx += (b[0] + b[1]) + (b[2] + b[3]);
}

/*
 * The element loop of plane_bn_dx, for one combination of its switches:
 * with constant arguments each call site compiles to its own branch-free
 * loop, which the vectoriser takes (a switch tested inside one shared
 * loop kept it scalar).  set writes 0 + v, the value an add into a zeroed
 * plane gives (the add turns a -0 into +0), without the pass that zeroes.
 */
#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

static ALWAYS_INLINE void
bn_dx_loop(size_t n4, const float *restrict x, const float *restrict y,
		const float *restrict dy, int relu, int capped, float cap, float m,
		float is, float k, float a, float b, int set, float *restrict dx)
{
	for (size_t i = 0; i < n4; i += 4)
		for (int j = 0; j < 4; j++) {
			float g = dy[i + j];
			if (relu)
				g = y[i + j] > 0 ? g : 0.0f;
			if (capped)
				g = y[i + j] < cap ? g : 0.0f;
			float xhat = (x[i + j] - m) * is;
			float v = k * (g - a - xhat * b);
			if (set)
				dx[i + j] = 0.0f + v;
			else
				dx[i + j] += v;
		}
}

/* dx += k * (g - a - xhat * b) over one plane, or dx = 0 + ... with set. */
static void
plane_bn_dx(size_t n, const float *restrict x, const float *restrict y,
		const float *restrict dy, int relu, float cap, float m, float is,
		float k, float a, float b, int set, float *restrict dx)
{
	size_t n4 = lanes4(n);

	if (!relu && set)
		bn_dx_loop(n4, x, y, dy, 0, 0, cap, m, is, k, a, b, 1, dx);
	else if (!relu)
		bn_dx_loop(n4, x, y, dy, 0, 0, cap, m, is, k, a, b, 0, dx);
	else if (cap > 0 && set)
		bn_dx_loop(n4, x, y, dy, 1, 1, cap, m, is, k, a, b, 1, dx);
	else if (cap > 0)
		bn_dx_loop(n4, x, y, dy, 1, 1, cap, m, is, k, a, b, 0, dx);
	else if (set)
		bn_dx_loop(n4, x, y, dy, 1, 0, cap, m, is, k, a, b, 1, dx);
	else
		bn_dx_loop(n4, x, y, dy, 1, 0, cap, m, is, k, a, b, 0, dx);
	for (size_t i = n4; i < n; i++) {
		float g = act_grad(relu, cap, y ? y[i] : 0, dy[i]);
		float xhat = (x[i] - m) * is;
		float v = k * (g - a - xhat * b);
		dx[i] = set ? 0.0f + v : dx[i] + v;
	}
}

/*
 * With xhat = (x - mean) * invstd and y = gamma * xhat + beta:
 *   dbeta  = sum dy,  dgamma = sum dy * xhat,
 *   dx = gamma * invstd * (dy - dbeta/M - xhat * dgamma/M),
 * the batch statistics' own dependence on x giving the two mean terms.
 */
void
mea_bn_backward(int N, int C, int HW, const float *x, const float *dy,
		const float *gamma, const float *save_mean,
		const float *save_invstd, float *dx, float *dgamma, float *dbeta)
{
	mea_bn_backward_act(N, C, HW, x, NULL, dy, 0, 0, gamma, save_mean, save_invstd,
			dx, 0, dgamma, dbeta);
}

void
mea_bn_backward_act(int N, int C, int HW, const float *x, const float *y,
		const float *dy, int relu, float cap, const float *gamma,
		const float *save_mean, const float *save_invstd, float *dx,
		int set_dx, float *dgamma, float *dbeta)
{
	double M = (double)N * HW;

	for (int c = 0; c < C; c++) {
		double mean = save_mean[c], invstd = save_invstd[c];
		double sdy = 0, sdyx = 0;
		for (int n = 0; n < N; n++) {
			size_t o = ((size_t)n * C + c) * HW;
			plane_bn_sums((size_t)HW, x + o, relu ? y + o : NULL, dy + o, relu, cap,
					mean, invstd, &sdy, &sdyx);
		}
		if (dbeta)
			dbeta[c] += (float)sdy;
		if (dgamma)
			dgamma[c] += (float)sdyx;
		if (!dx)
			continue;
		float k = (float)(gamma[c] * invstd);
		float a = (float)(sdy / M);
		float b = (float)(sdyx / M);
		float m = (float)mean, is = (float)invstd;
		for (int n = 0; n < N; n++) {
			size_t o = ((size_t)n * C + c) * HW;
			plane_bn_dx((size_t)HW, x + o, relu ? y + o : NULL, dy + o, relu, cap,
					m, is, k, a, b, set_dx, dx + o);
		}
	}
}

void
mea_bn_fold(int K, size_t per_k, float *w, float *bias, const float *gamma,
		const float *beta, const float *mean, const float *var, float eps)
{
	for (int k = 0; k < K; k++) {
		double scale = gamma[k] / sqrt((double)var[k] + eps);
		float *wk = w + (size_t)k * per_k;
		for (size_t i = 0; i < per_k; i++)
			wk[i] = (float)(wk[i] * scale);
		bias[k] = (float)((bias[k] - mean[k]) * scale + beta[k]);
	}
}

/* ------------------------------------------------------ element-wise */

/*
 * The element-wise loops are written for GCC's -O2 vectoriser, which
 * takes a loop only when it needs no scalar remainder and no run-time
 * overlap check: the first n & ~3 elements run in the vector loop, the
 * rest in a scalar tail.  The vector loop is written as blocks of four
 * (i += 4, then j = 0..3): GCC vectorises that form reliably even after
 * inlining, where it loses track of n & ~3 being a multiple of 4.  Where
 * the arrays may overlap (in place, y == x, is allowed), a block computes
 * into a local v[4] and stores it after all its loads, so no overlap
 * check is needed.  Conditions are selects on values already
 * loaded, which the vectoriser turns into compares and masks; a branch
 * per element cost a misprediction on every other value of a ReLU.
 */

/* Written so that a NaN input stays NaN: a ReLU that turned NaN into 0
 * would hide a diverged model from the finiteness checks downstream
 * (x < 0 is false for NaN, and so is v > cap). */
void
mea_relu_forward(size_t n, const float *x, float *y, float cap)
{
	size_t n4 = lanes4(n);

	for (size_t i = 0; i < n4; i += 4) {
		float v[4];
		for (int j = 0; j < 4; j++)
			v[j] = x[i + j] < 0 ? 0 : x[i + j];
		if (cap > 0)
			for (int j = 0; j < 4; j++)
				v[j] = v[j] > cap ? cap : v[j];
		for (int j = 0; j < 4; j++)
			y[i + j] = v[j];
	}
	for (size_t i = n4; i < n; i++) {
		float v = x[i] < 0 ? 0 : x[i];
		y[i] = cap > 0 && v > cap ? cap : v;
	}
}

void
mea_relu_backward(size_t n, const float *y, const float *dy, float *dx,
		float cap)
{
	size_t n4 = lanes4(n);

	/* A cut-off cell adds -0, which leaves every dx as it was (+0 would
	 * turn a -0 into +0), as the skipped add of a branch did. */
	for (size_t i = 0; i < n4; i += 4) {
		float g[4];
		for (int j = 0; j < 4; j++)
			g[j] = dy[i + j];     /* loaded whatever y: a select, not a branch */
		for (int j = 0; j < 4; j++)
			g[j] = y[i + j] > 0 ? g[j] : -0.0f;
		if (cap > 0)
			for (int j = 0; j < 4; j++)
				g[j] = y[i + j] < cap ? g[j] : -0.0f;
		for (int j = 0; j < 4; j++)
			g[j] += dx[i + j];
		for (int j = 0; j < 4; j++)
			dx[i + j] = g[j];
	}
	for (size_t i = n4; i < n; i++)
		dx[i] += y[i] > 0 && (cap <= 0 || y[i] < cap) ? dy[i] : -0.0f;
}

void
mea_relu_backward_set(size_t n, const float *y, const float *dy, float *dx,
		float cap)
{
	size_t n4 = lanes4(n);

	for (size_t i = 0; i < n4; i += 4) {
		float g[4];
		for (int j = 0; j < 4; j++)
			g[j] = dy[i + j];
		for (int j = 0; j < 4; j++)
			g[j] = y[i + j] > 0 ? g[j] : 0.0f;
		if (cap > 0)
			for (int j = 0; j < 4; j++)
				g[j] = y[i + j] < cap ? g[j] : 0.0f;
		for (int j = 0; j < 4; j++)
			dx[i + j] = g[j];
	}
	for (size_t i = n4; i < n; i++)
		dx[i] = act_grad(1, cap, y[i], dy[i]);
}

void
mea_add_forward(size_t n, const float *a, const float *b, float *y)
{
	size_t n4 = lanes4(n);

	for (size_t i = 0; i < n4; i += 4) {
		float v[4];
		for (int j = 0; j < 4; j++)
			v[j] = a[i + j] + b[i + j];
		for (int j = 0; j < 4; j++)
			y[i + j] = v[j];
	}
	for (size_t i = n4; i < n; i++)
		y[i] = a[i] + b[i];
}

void
mea_acc(size_t n, const float *src, float *dst)
{
	size_t n4 = lanes4(n);

	for (size_t i = 0; i < n4; i += 4) {
		float v[4];
		for (int j = 0; j < 4; j++)
			v[j] = dst[i + j] + src[i + j];
		for (int j = 0; j < 4; j++)
			dst[i + j] = v[j];
	}
	for (size_t i = n4; i < n; i++)
		dst[i] += src[i];
}

/* In NCHW one image's channels are contiguous, so concatenation along C
 * is two block copies per image. */
void
mea_concat_forward(int N, int HW, int Ca, const float *a, int Cb,
		const float *b, float *y)
{
	size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;

	for (int n = 0; n < N; n++) {
		memcpy(y + (size_t)n * (na + nb), a + (size_t)n * na, na * sizeof *a);
		memcpy(y + (size_t)n * (na + nb) + na, b + (size_t)n * nb, nb * sizeof *b);
	}
}

void
mea_concat_backward(int N, int HW, int Ca, int Cb, const float *dy, float *da,
		float *db)
{
	size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;

	for (int n = 0; n < N; n++) {
		const float *d = dy + (size_t)n * (na + nb);
		if (da)
			mea_acc(na, d, da + (size_t)n * na);
		if (db)
			mea_acc(nb, d + na, db + (size_t)n * nb);
	}
}

/* ------------------------------------------------------------ pooling */

/*
 * The pooling kernels work plane by plane (N*C planes of H x W).  For an
 * output cell (p, q) the window covers input rows p*stride - pad + [0, R)
 * and columns q*stride - pad + [0, S); win() clips that to the input, so
 * the inner loops never test for padding.
 */
/* *acc *= b, or -1 when the product does not fit a size_t. */
static int
mulsz(size_t *acc, size_t b)
{
	if (b != 0 && *acc > SIZE_MAX / b)
		return -1;
	*acc *= b;
	return 0;
}

int
mea_pool_shape_init(struct mea_pool_shape *s)
{
	if (s->N < 1 || s->C < 1 || s->H < 1 || s->W < 1 || s->R < 1 ||
			s->S < 1 || s->stride < 1 || s->pad < 0)
		return -1;
	/* pad < kernel: every window then holds at least one input cell,
	 * so a max is always defined and an average never divides by 0. */
	if (s->pad >= s->R || s->pad >= s->S)
		return -1;
	long long hp = (long long)s->H + 2LL * s->pad;
	long long wp = (long long)s->W + 2LL * s->pad;
	if (hp < s->R || wp < s->S)
		return -1;
	s->P = (int)((hp - s->R) / s->stride + 1);
	s->Q = (int)((wp - s->S) / s->stride + 1);
	/* argmax is an int32 index within a plane; whole tensors are
	 * indexed with size_t, so their byte counts must fit one. */
	size_t nx = sizeof(float), ny = sizeof(float);
	if ((long long)s->H * s->W > INT32_MAX ||
			mulsz(&nx, (size_t)s->N) || mulsz(&nx, (size_t)s->C) ||
			mulsz(&nx, (size_t)s->H) || mulsz(&nx, (size_t)s->W) ||
			mulsz(&ny, (size_t)s->N) || mulsz(&ny, (size_t)s->C) ||
			mulsz(&ny, (size_t)s->P) || mulsz(&ny, (size_t)s->Q))
		return -1;
	return 0;
}

static void
win(int o, int stride, int pad, int R, int H, int *lo, int *hi)
{
	int a = o * stride - pad;
	*lo = a < 0 ? 0 : a;
	*hi = a + R > H ? H : a + R;
}

void
mea_maxpool_forward(const struct mea_pool_shape *s, const float *x, float *y,
		int32_t *argmax)
{
	size_t HW = (size_t)s->H * s->W, PQ = (size_t)s->P * s->Q;
	size_t planes = (size_t)s->N * s->C;

	for (size_t pl = 0; pl < planes; pl++) {
		const float *xp = x + pl * HW;
		for (int p = 0; p < s->P; p++) {
			int h0, h1;
			win(p, s->stride, s->pad, s->R, s->H, &h0, &h1);
			for (int q = 0; q < s->Q; q++) {
				int w0, w1;
				win(q, s->stride, s->pad, s->S, s->W, &w0, &w1);
				int bi = h0 * s->W + w0;
				float best = xp[bi];
				for (int h = h0; h < h1; h++)
					for (int w = w0; w < w1; w++) {
						float v = xp[h * s->W + w];
						/* NaN wins, as in PyTorch: it must
						 * not vanish into a max. */
						if (v > best || (v != v && best == best)) {
							best = v;
							bi = h * s->W + w;
						}
					}
				size_t o = pl * PQ + (size_t)p * s->Q + q;
				y[o] = best;
				if (argmax)
					argmax[o] = bi;
			}
		}
	}
}

void
mea_maxpool_backward(const struct mea_pool_shape *s, const int32_t *argmax,
		const float *dy, float *dx)
{
	size_t HW = (size_t)s->H * s->W, PQ = (size_t)s->P * s->Q;
	size_t planes = (size_t)s->N * s->C;

	for (size_t pl = 0; pl < planes; pl++)
		for (size_t i = 0; i < PQ; i++)
			dx[pl * HW + argmax[pl * PQ + i]] += dy[pl * PQ + i];
}

void
mea_avgpool_forward(const struct mea_pool_shape *s, const float *x, float *y)
{
	size_t HW = (size_t)s->H * s->W, PQ = (size_t)s->P * s->Q;
	size_t planes = (size_t)s->N * s->C;

	for (size_t pl = 0; pl < planes; pl++) {
		const float *xp = x + pl * HW;
		for (int p = 0; p < s->P; p++) {
			int h0, h1;
			win(p, s->stride, s->pad, s->R, s->H, &h0, &h1);
			for (int q = 0; q < s->Q; q++) {
				int w0, w1;
				win(q, s->stride, s->pad, s->S, s->W, &w0, &w1);
				float sum = 0;
				for (int h = h0; h < h1; h++)
					for (int w = w0; w < w1; w++)
						sum += xp[h * s->W + w];
				y[pl * PQ + (size_t)p * s->Q + q] =
					sum / (float)((h1 - h0) * (w1 - w0));
			}
		}
	}
}

void
mea_avgpool_backward(const struct mea_pool_shape *s, const float *dy, float *dx)
{
	size_t HW = (size_t)s->H * s->W, PQ = (size_t)s->P * s->Q;
	size_t planes = (size_t)s->N * s->C;

	for (size_t pl = 0; pl < planes; pl++) {
		float *dxp = dx + pl * HW;
		for (int p = 0; p < s->P; p++) {
			int h0, h1;
			win(p, s->stride, s->pad, s->R, s->H, &h0, &h1);
			for (int q = 0; q < s->Q; q++) {
				int w0, w1;
				win(q, s->stride, s->pad, s->S, s->W, &w0, &w1);
				float g = dy[pl * PQ + (size_t)p * s->Q + q] /
					(float)((h1 - h0) * (w1 - w0));
				for (int h = h0; h < h1; h++)
					for (int w = w0; w < w1; w++)
						dxp[h * s->W + w] += g;
			}
		}
	}
}

void
mea_gap_forward(int N, int C, int HW, const float *x, float *y)
{
	size_t planes = (size_t)N * C;

	for (size_t pl = 0; pl < planes; pl++) {
		const float *p = x + pl * HW;
		double s = 0;
		for (int i = 0; i < HW; i++)
			s += p[i];
		y[pl] = (float)(s / HW);
	}
}

void
mea_gap_backward(int N, int C, int HW, const float *dy, float *dx)
{
	size_t planes = (size_t)N * C;

	for (size_t pl = 0; pl < planes; pl++) {
		float g = dy[pl] / (float)HW;
		float *p = dx + pl * HW;
		for (int i = 0; i < HW; i++)
			p[i] += g;
	}
}

/* ---------------------------------------------------- fully connected */

/* x is [N][in] and w is [out][in], so y = x w^T is one GEMM with B
 * transposed; the backward pass is the other two products of the same
 * three matrices, accumulated with beta = 1. */
void
mea_fc_forward(int N, int in, int out, const float *x, const float *w,
		const float *b, float *y)
{
	mea_gemm(0, 1, N, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
	if (b)
		for (int n = 0; n < N; n++)
			mea_acc((size_t)out, b, y + (size_t)n * out);
}

void
mea_fc_backward(int N, int in, int out, const float *x, const float *w,
		const float *dy, float *dx, float *dw, float *db)
{
	if (dx)
		mea_gemm(0, 0, N, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
	if (dw)
		mea_gemm(1, 0, out, in, N, 1.0f, dy, out, x, in, 1.0f, dw, in);
	if (db)
		for (int j = 0; j < out; j++) {
			double s = 0;
			for (int n = 0; n < N; n++)
				s += dy[(size_t)n * out + j];
			db[j] += (float)s;
		}
}

/* ------------------------------------------------ softmax and losses */

/* Subtracting the row maximum keeps every exp() in (0, 1]: no overflow
 * for large logits, and at least one term equal to 1 so the sum is never
 * zero.  A NaN logit makes the row NaN, which the caller can see. */
void
mea_softmax(int N, int K, const float *x, float *p)
{
	for (int n = 0; n < N; n++) {
		const float *xr = x + (size_t)n * K;
		float *pr = p + (size_t)n * K;
		float mx = xr[0];
		for (int k = 1; k < K; k++)
			if (xr[k] > mx)
				mx = xr[k];
		double s = 0;
		for (int k = 0; k < K; k++) {
			pr[k] = expf(xr[k] - mx);
			s += pr[k];
		}
		float inv = (float)(1.0 / s);
		for (int k = 0; k < K; k++)
			pr[k] *= inv;
	}
}

float
mea_entropy(int K, const float *p)
{
	double h = 0;

	/* Only an exact zero is skipped: a negative or NaN probability
	 * gives NaN, which is the honest answer. */
	for (int k = 0; k < K; k++)
		if (p[k] != 0)
			h -= (double)p[k] * log((double)p[k]);
	return (float)h;
}

/* loss_n = logsumexp(x_n) - sum_k q_k x_n[k], with the target q the
 * one-hot label smoothed towards uniform: q_k = (1 - smooth) [k == label]
 * + smooth / K (Szegedy et al. 2016).  The gradient of the mean is
 * (softmax - q) / N.  smooth = 0 is plain cross-entropy, computed the
 * same way as before smoothing existed so old runs repeat bit for bit.
 * An out-of-range label makes the loss NaN and contributes no gradient,
 * rather than reading outside the row. */
float
mea_xent(int N, int K, const float *x, const int32_t *labels, float smooth, float *dx)
{
	double loss = 0, off = (double)smooth / K, on = 1.0 - smooth + off;

	for (int n = 0; n < N; n++) {
		const float *xr = x + (size_t)n * K;
		int32_t y = labels[n];
		if (y < 0 || y >= K) {
			loss = NAN;
			continue;
		}
		float mx = xr[0];
		for (int k = 1; k < K; k++)
			if (xr[k] > mx)
				mx = xr[k];
		double s = 0, qx = 0;
		for (int k = 0; k < K; k++)
			s += exp((double)xr[k] - mx);
		double lse = mx + log(s);
		if (smooth == 0)
			qx = xr[y];
		else
			for (int k = 0; k < K; k++)
				qx += (k == y ? on : off) * xr[k];
		loss += lse - qx;
		if (dx) {
			float *dr = dx + (size_t)n * K;
			for (int k = 0; k < K; k++) {
				double pk = exp((double)xr[k] - lse);
				double qk = smooth == 0 ? (k == y) : (k == y ? on : off);
				dr[k] += (float)((pk - qk) / N);
			}
		}
	}
	return N > 0 ? (float)(loss / N) : 0.0f;
}

/* softmax(x / tau) of one row into p (double), and its log-sum-exp. */
static double
soft_row(int K, const float *x, double tau, double *p)
{
	double mx = x[0] / tau, s = 0;

	for (int k = 1; k < K; k++)
		if (x[k] / tau > mx)
			mx = x[k] / tau;
	for (int k = 0; k < K; k++)
		s += (p[k] = exp(x[k] / tau - mx));
	for (int k = 0; k < K; k++)
		p[k] /= s;
	return mx + log(s);
}

/*
 * The soft term per image: tau^2 * sum_k pt_k (log pt_k - log ps_k), pt
 * and ps the teacher's and the student's softmax at temperature tau; its
 * gradient in x is tau * (ps - pt) (the tau^2 keeps the soft term's
 * gradient on the scale of the hard one's as tau changes).
 */
float
mea_distill(int N, int K, const float *x, const int32_t *labels, float smooth,
		const float *t, float alpha, float tau, float *dx)
{
	double hard = 0, soft = 0, *ps = malloc(2 * (size_t)K * sizeof *ps), *pt = ps + K;
	float *g = malloc((size_t)K * sizeof *g);

	if (!ps || !g) {
		free(ps);
		free(g);
		return NAN;
	}
	for (int n = 0; n < N; n++) {
		const float *xr = x + (size_t)n * K, *tr = t + (size_t)n * K;
		double ls = soft_row(K, xr, tau, ps), lt = soft_row(K, tr, tau, pt);
		for (int k = 0; k < K; k++)
			if (pt[k] > 0)
				soft += pt[k] * ((tr[k] / tau - lt) - (xr[k] / tau - ls));
		/* The hard term, and its gradient: (1 - alpha) of mea_xent's,
		 * then the soft one's. */
		for (int k = 0; dx && k < K; k++)
			g[k] = 0;
		hard += mea_xent(1, K, xr, labels + n, smooth, dx ? g : NULL);
		if (!dx)
			continue;
		float *dr = dx + (size_t)n * K;
		for (int k = 0; k < K; k++)
			dr[k] += (float)(((1 - alpha) * g[k] + alpha * tau * (ps[k] - pt[k])) / N);
	}
	free(ps);
	free(g);
	return (float)(((1 - alpha) * hard + alpha * (double)tau * tau * soft) / (N > 0 ? N : 1));
}

/* ---------------------------------------------------------- optimiser */

void
mea_sgd_step(size_t n, float *w, const float *g, float *v, float lr, float mom,
		float wd, int nesterov)
{
	for (size_t i = 0; i < n; i++) {
		float gi = g[i] + wd * w[i];
		if (!v) {        /* plain SGD needs no velocity buffer */
			w[i] -= lr * gi;
			continue;
		}
		v[i] = mom * v[i] + gi;
		w[i] -= lr * (nesterov ? gi + mom * v[i] : v[i]);
	}
}
