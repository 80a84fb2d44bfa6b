/*
 * nn_test: checks every kernel of lib/nn.h against plain-loop references
 * written here, in double precision.
 *
 *   nn_test [group...]     groups: gemm conv-shape conv-fwd conv-naive
 *                          conv-bwd bn-fwd bn-bwd bn-fold relu add concat
 *                          maxpool avgpool gap fc softmax xent distill sgd
 *                          fused ir nhwc
 *
 * Forward outputs are compared with the reference within a tolerance
 * relative to the largest reference value.  Backward passes are checked
 * against central differences of the double reference (so the numeric
 * gradient has no float noise; for the linear layers it is exact up to
 * rounding), on every element of small tensors and a random sample of
 * larger ones.  Gradient buffers are pre-filled with random values first,
 * which checks that backward adds into them as nn.h promises.
 *
 * One line per check ("ok ..." or "FAIL ..."); exit status 1 when any
 * check failed, 2 on a usage error.  MEA_THREADS, when set, is passed to
 * mea_set_threads().
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

/* ------------------------------------------------------------- support */

static uint64_t rng = 0x6d65615f6e6e3031ULL;   /* fixed seed: reproducible */

static uint64_t
rnext(void)                                    /* splitmix64 */
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static float
runif(float lo, float hi)
{
	return lo + (hi - lo) * (float)((rnext() >> 40) * (1.0 / (1 << 24)));
}

static size_t
rbelow(size_t n)
{
	return (size_t)(rnext() % n);
}

static int nfail;

static void
check(int ok, const char *group, const char *fmt, ...)
{
	va_list ap;

	printf("%s %s: ", ok ? "ok  " : "FAIL", group);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (!ok)
		nfail++;
}

static void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "nn_test: out of memory\n");
		exit(3);
	}
	return p;
}

static float *
frand(size_t n, float lo, float hi)
{
	float *p = xmalloc(n * sizeof *p);
	for (size_t i = 0; i < n; i++)
		p[i] = runif(lo, hi);
	return p;
}

static double *
todouble(const float *f, size_t n)
{
	double *d = xmalloc(n * sizeof *d);
	for (size_t i = 0; i < n; i++)
		d[i] = f[i];
	return d;
}

static float *
fcopy(const float *f, size_t n)
{
	float *p = xmalloc(n * sizeof *p);
	memcpy(p, f, n * sizeof *p);
	return p;
}

/* Largest |a - ref| over the largest |ref|: one number per tensor that
 * does not blow up on entries near zero. */
static double
relerr(const float *a, const double *ref, size_t n)
{
	double e = 0, m = 1e-30;
	for (size_t i = 0; i < n; i++) {
		double d = fabs(a[i] - ref[i]);
		if (!(d <= e))          /* also catches NaN */
			e = d;
		if (fabs(ref[i]) > m)
			m = fabs(ref[i]);
	}
	return e / m;
}

static double
relerr_ff(const float *a, const float *b, size_t n)
{
	double *d = todouble(b, n);
	double e = relerr(a, d, n);
	free(d);
	return e;
}

/*
 * Gradient check of one parameter tensor.  loss(ctx) evaluates the
 * double reference; param points into the double copy it reads.  ana is
 * the library's gradient, before0 what the buffer held before backward.
 */
typedef double (*lossfn)(void *ctx);

static double
gradcheck(lossfn loss, void *ctx, double *param, size_t n, const float *ana,
		const float *before0, double h, int nsample)
{
	double e = 0, m = 1e-30;
	int all = (size_t)nsample >= n;
	size_t cnt = all ? n : (size_t)nsample;

	for (size_t t = 0; t < cnt; t++) {
		size_t i = all ? t : rbelow(n);
		double v = param[i];
		param[i] = v + h;
		double lp = loss(ctx);
		param[i] = v - h;
		double lm = loss(ctx);
		param[i] = v;
		double num = (lp - lm) / (2 * h);
		double a = (double)ana[i] - before0[i];
		double d = fabs(a - num);
		if (!(d <= e))
			e = d;
		if (fabs(num) > m)
			m = fabs(num);
	}
	return e / m;
}

/* A gradient buffer pre-filled with noise, and a copy of that noise. */
static float *
gradbuf(size_t n, float **before)
{
	float *g = frand(n, -1, 1);
	*before = fcopy(g, n);
	return g;
}

static double
dot(const double *a, const double *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* ---------------------------------------------------------------- gemm */

static void
test_gemm(void)
{
	const char *G = "gemm";
	int M = 37, N = 29, K = 53;

	for (int naive = 0; naive < 2; naive++)
		for (int ta = 0; ta < 2; ta++)
			for (int tb = 0; tb < 2; tb++) {
				/* Leading dimensions wider than the rows, to
				 * catch a kernel that assumes packed storage. */
				int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5;
				int ldc = N + 2;
				size_t na = (size_t)(ta ? K : M) * lda;
				size_t nb = (size_t)(tb ? N : K) * ldb;
				float *A = frand(na, -1, 1), *B = frand(nb, -1, 1);
				float *C = frand((size_t)M * ldc, -1, 1);
				double *ref = todouble(C, (size_t)M * ldc);
				float alpha = 0.75f, beta = 0.5f;
				for (int i = 0; i < M; i++)
					for (int j = 0; j < N; j++) {
						double s = 0;
						for (int k = 0; k < K; k++)
							s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) *
								(tb ? B[j * ldb + k] : B[k * ldb + j]);
						ref[i * ldc + j] = alpha * s + beta * ref[i * ldc + j];
					}
				mea_set_naive_gemm(naive);
				mea_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
				mea_set_naive_gemm(0);
				double e = relerr(C, ref, (size_t)M * ldc);
				check(e < 1e-5, G, "%s ta=%d tb=%d %dx%dx%d: err %.2g",
					naive ? "naive" : "blas", ta, tb, M, N, K, e);
				free(A), free(B), free(C), free(ref);
			}
}

/* --------------------------------------------------------- convolution */

struct convcase {
	int N, C, H, W, K, R, S, stride, pad, groups, bias;
	const char *what;
};

/* Odd sizes everywhere; each row exercises one path or edge. */
static const struct convcase convcases[] = {
	{2, 3, 9, 7, 5, 3, 3, 1, 1, 1, 1, "3x3 pad 1, odd sizes"},
	{3, 4, 11, 10, 6, 3, 3, 2, 1, 2, 0, "3x3 stride 2, 2 groups"},
	{1, 6, 8, 8, 9, 3, 3, 1, 0, 3, 1, "batch 1, no pad, 3 groups"},
	{2, 8, 10, 9, 8, 3, 3, 1, 1, 8, 1, "depthwise 3x3"},
	{3, 6, 11, 13, 6, 3, 3, 2, 1, 6, 0, "depthwise 3x3 stride 2"},
	{2, 5, 9, 8, 5, 5, 5, 2, 2, 5, 1, "depthwise 5x5 stride 2 pad 2"},
	{2, 4, 7, 6, 8, 3, 3, 1, 1, 4, 1, "channel multiplier 2 (groups == C)"},
	{2, 5, 7, 7, 4, 1, 1, 1, 0, 1, 1, "1x1 pointwise"},
	{3, 6, 7, 9, 4, 1, 1, 1, 0, 2, 0, "1x1 pointwise, 2 groups"},
	{2, 4, 9, 9, 6, 1, 1, 2, 0, 1, 0, "1x1 stride 2 shortcut"},
	{2, 3, 5, 6, 3, 1, 1, 1, 1, 1, 1, "1x1 with padding"},
	{2, 3, 23, 21, 8, 7, 7, 2, 3, 1, 0, "7x7 stride 2 pad 3"},
	{1, 5, 6, 8, 4, 3, 5, 1, 2, 1, 1, "3x5 kernel pad 2"},
	{2, 3, 5, 5, 4, 5, 5, 3, 0, 1, 1, "kernel = input, 1x1 output"},
	{3, 2, 39, 39, 3, 3, 3, 1, 1, 1, 1, "large planes, an image per GEMM"},
	{7, 3, 10, 10, 4, 3, 3, 1, 1, 1, 1, "batch of 7 in GEMM chunks, last one short"},
	{6, 4, 8, 8, 6, 3, 3, 1, 1, 2, 0, "batch of 6 in GEMM chunks, 2 groups"},
	{7, 4, 3, 5, 6, 3, 3, 1, 1, 2, 1, "tiny planes, whole batch in one GEMM"},
	{2, 3, 10, 10, 4, 4, 4, 3, 2, 1, 0, "4x4 stride 3 pad 2"},
	{1, 300, 10, 11, 300, 1, 1, 1, 0, 1, 1, "1x1 wide: planes in column blocks, last short"},
	{2, 4, 6, 14, 4, 3, 3, 1, 1, 4, 1, "depthwise 3x3, a small plane as one row"},
	{2, 3, 5, 21, 3, 3, 3, 1, 1, 3, 1, "depthwise 3x3, rows of 8 + 8 + 4 + 1"},
	{2, 4, 7, 26, 4, 3, 3, 2, 1, 4, 0, "depthwise 3x3 stride 2, rows of 8 + 4 + 1"},
	{2, 3, 7, 9, 3, 3, 3, 2, 0, 3, 1, "depthwise 3x3 stride 2, no pad, odd width"},
	{2, 3, 8, 11, 3, 3, 3, 2, 2, 3, 0, "depthwise 3x3 stride 2 pad 2"},
	{1, 2, 6, 10, 2, 3, 3, 2, 3, 2, 1, "depthwise 3x3 stride 2 pad 3"},
	{5, 3, 6, 9, 4, 3, 3, 1, 0, 1, 1, "3x3 no pad, 5 images in a GEMM"},
	{4, 2, 9, 8, 3, 5, 5, 1, 2, 1, 0, "5x5 pad 2, 4 images in a GEMM"},
	{3, 4, 6, 5, 4, 3, 3, 1, 2, 2, 1, "3x3 pad 2, images in a GEMM, 2 groups"},
	{2, 2, 5, 5, 3, 3, 3, 1, 3, 1, 1, "3x3 pad 3, more than the kernel overlaps"},
	{2, 3, 7, 9, 4, 1, 3, 1, 1, 1, 1, "1x3 kernel pad 1"},
	{3, 4, 20, 20, 5, 1, 1, 1, 0, 1, 1, "1x1 small planes: 2 images a GEMM, a lone last one"},
	{10, 3, 4, 3, 3, 3, 3, 1, 1, 3, 1, "depthwise 3x3 small planes, groups of 8 + 8 + 8 + 6"},
	{9, 2, 5, 6, 2, 3, 3, 2, 1, 2, 0, "depthwise 3x3 stride 2 small planes, 8 + 8 + 2"},
	{2, 16, 45, 47, 6, 3, 3, 2, 1, 1, 1, "3x3 stride 2, large plane: inference in row bands of 18 + 5"},
	{1, 3, 61, 58, 4, 7, 7, 2, 3, 1, 0, "7x7 stride 2 pad 3, large plane: row bands of 15 + 15 + 1"},
};
#define NCONV (sizeof convcases / sizeof convcases[0])

static int
conv_shape(const struct convcase *c, struct mea_conv_shape *s)
{
	memset(s, 0, sizeof *s);
	s->N = c->N, s->C = c->C, s->H = c->H, s->W = c->W;
	s->K = c->K, s->R = c->R, s->S = c->S;
	s->stride = c->stride, s->pad = c->pad, s->groups = c->groups;
	return mea_conv_shape_init(s);
}

static void
conv_ref(const struct mea_conv_shape *s, const double *x, const double *w,
		const double *b, double *y)
{
	int Cg = s->C / s->groups, Kg = s->K / s->groups;

	for (int n = 0; n < s->N; n++)
		for (int k = 0; k < s->K; k++)
			for (int p = 0; p < s->P; p++)
				for (int q = 0; q < s->Q; q++) {
					double acc = b ? b[k] : 0;
					int g = k / Kg;
					for (int c = 0; c < Cg; c++)
						for (int r = 0; r < s->R; r++)
							for (int t = 0; t < s->S; t++) {
								int ih = p * s->stride - s->pad + r;
								int iw = q * s->stride - s->pad + t;
								if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W)
									continue;
								acc += x[(((size_t)n * s->C + g * Cg + c) * s->H + ih) * s->W + iw] *
									w[(((size_t)k * Cg + c) * s->R + r) * s->S + t];
							}
					y[(((size_t)n * s->K + k) * s->P + p) * s->Q + q] = acc;
				}
}

static void
conv_sizes(const struct mea_conv_shape *s, size_t *nx, size_t *nw, size_t *ny)
{
	*nx = (size_t)s->N * s->C * s->H * s->W;
	*nw = (size_t)s->K * (s->C / s->groups) * s->R * s->S;
	*ny = (size_t)s->N * s->K * s->P * s->Q;
}

static void
desc_conv(char *buf, size_t n, const struct convcase *c, const struct mea_conv_shape *s)
{
	snprintf(buf, n, "%s (N%d C%d %dx%d -> K%d %dx%d, %dx%d s%d p%d g%d)",
		c->what, s->N, s->C, s->H, s->W, s->K, s->P, s->Q, s->R, s->S,
		s->stride, s->pad, s->groups);
}

/* Workspace of exactly the advertised size, so ASan sees an overrun. */
static float *
conv_work(const struct mea_conv_shape *s)
{
	size_t n = mea_conv_workspace(s);
	return n ? xmalloc(n * sizeof(float)) : NULL;
}

static void
test_conv_shape(void)
{
	const char *G = "conv-shape";
	struct mea_conv_shape s = {.N = 2, .C = 3, .H = 32, .W = 31, .K = 16,
		.R = 3, .S = 3, .stride = 2, .pad = 1, .groups = 1};
	int rc = mea_conv_shape_init(&s);
	check(rc == 0 && s.P == 16 && s.Q == 16, G,
		"32x31 3x3 s2 p1 gives 16x16 (got %dx%d)", s.P, s.Q);

	struct { const char *what; struct mea_conv_shape s; } bad[] = {
		{"C not divisible by groups", {.N = 1, .C = 6, .H = 8, .W = 8,
			.K = 4, .R = 3, .S = 3, .stride = 1, .pad = 1, .groups = 4}},
		{"K not divisible by groups", {.N = 1, .C = 4, .H = 8, .W = 8,
			.K = 6, .R = 3, .S = 3, .stride = 1, .pad = 1, .groups = 4}},
		{"kernel larger than the padded input", {.N = 1, .C = 1, .H = 4,
			.W = 8, .K = 1, .R = 7, .S = 3, .stride = 1, .pad = 1, .groups = 1}},
		{"zero batch", {.N = 0, .C = 1, .H = 4, .W = 4, .K = 1, .R = 3,
			.S = 3, .stride = 1, .pad = 1, .groups = 1}},
		{"zero stride", {.N = 1, .C = 1, .H = 4, .W = 4, .K = 1, .R = 3,
			.S = 3, .stride = 0, .pad = 1, .groups = 1}},
		{"negative pad", {.N = 1, .C = 1, .H = 4, .W = 4, .K = 1, .R = 3,
			.S = 3, .stride = 1, .pad = -1, .groups = 1}},
		{"receptive field beyond int", {.N = 1, .C = 1 << 20, .H = 1 << 10,
			.W = 1 << 10, .K = 1, .R = 1 << 10, .S = 1 << 10, .stride = 1,
			.pad = 0, .groups = 1}},
		{"tensor bytes beyond size_t", {.N = 1 << 30, .C = 1 << 30,
			.H = 1 << 15, .W = 1 << 15, .K = 1, .R = 1, .S = 1, .stride = 1,
			.pad = 0, .groups = 1}},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		check(mea_conv_shape_init(&bad[i].s) == -1, G, "rejects %s", bad[i].what);

	struct mea_pool_shape ps = {.N = 1, .C = 1, .H = 7, .W = 7, .R = 3,
		.S = 3, .stride = 2, .pad = 1};
	rc = mea_pool_shape_init(&ps);
	check(rc == 0 && ps.P == 4 && ps.Q == 4, G,
		"pool 7x7 3x3 s2 p1 gives 4x4 (got %dx%d)", ps.P, ps.Q);
	ps.pad = 3;
	check(mea_pool_shape_init(&ps) == -1, G, "pool rejects pad >= kernel");
}

/* Each case three times: as a training plan computes it, as an inference
 * plan may (the row-shift lowering, for the stride-1 ones), and as a
 * training plan that asks for the row shift. */
static void
conv_fwd_cases(const char *G)
{
	for (size_t cj = 0; cj < 3 * NCONV; cj++) {
		const struct convcase *c = &convcases[cj % NCONV];
		struct mea_conv_shape s;
		char d[160];
		if (conv_shape(c, &s) != 0) {
			check(0, G, "%s: shape rejected", c->what);
			continue;
		}
		s.inference = cj >= NCONV && cj < 2 * NCONV;
		s.row_shift = cj >= 2 * NCONV;
		size_t nx, nw, ny;
		conv_sizes(&s, &nx, &nw, &ny);
		float *x = frand(nx, -1, 1), *w = frand(nw, -1, 1);
		float *b = c->bias ? frand((size_t)s.K, -1, 1) : NULL;
		float *y = frand(ny, -9, 9);  /* garbage: forward overwrites */
		float *work = conv_work(&s);
		double *xd = todouble(x, nx), *wd = todouble(w, nw);
		double *bd = b ? todouble(b, (size_t)s.K) : NULL;
		double *yd = xmalloc(ny * sizeof *yd);

		conv_ref(&s, xd, wd, bd, yd);
		mea_conv2d_forward(&s, x, w, b, y, work);
		double e = relerr(y, yd, ny);
		desc_conv(d, sizeof d, c, &s);
		check(e < 2e-5, G, "%s%s: err %.2g", d, s.inference ? ", inference" :
			s.row_shift ? ", training row shift" : "", e);
		free(x), free(w), free(b), free(y), free(work);
		free(xd), free(wd), free(bd), free(yd);
	}
}

static void
test_conv_fwd(void)
{
	conv_fwd_cases("conv-fwd");
}

static void
test_conv_naive(void)
{
	mea_set_naive_gemm(1);
	conv_fwd_cases("conv-naive");
	mea_set_naive_gemm(0);
}

struct convctx {
	const struct mea_conv_shape *s;
	double *x, *w, *b, *g, *y;
	size_t ny;
};

static double
conv_loss(void *p)
{
	struct convctx *c = p;
	conv_ref(c->s, c->x, c->w, c->b, c->y);
	return dot(c->g, c->y, c->ny);
}

static void
test_conv_bwd(void)
{
	const char *G = "conv-bwd";

	/* Each case as im2col computes it, then with the row shift. */
	for (size_t cj = 0; cj < 2 * NCONV; cj++) {
		const struct convcase *c = &convcases[cj % NCONV];
		struct mea_conv_shape s;
		char d[160];
		if (conv_shape(c, &s) != 0) {
			check(0, G, "%s: shape rejected", c->what);
			continue;
		}
		s.row_shift = cj >= NCONV;
		/* Too large for finite differences (the wide 1x1 case is
		 * there for the forward pass's column blocks). */
		if ((double)s.N * s.K * (s.C / s.groups) * s.R * s.S * s.P * s.Q > 2e6)
			continue;
		size_t nx, nw, ny;
		conv_sizes(&s, &nx, &nw, &ny);
		float *x = frand(nx, -1, 1), *w = frand(nw, -1, 1);
		float *b = c->bias ? frand((size_t)s.K, -1, 1) : NULL;
		float *dy = frand(ny, -1, 1);
		float *dx0, *dw0, *db0;
		float *dx = gradbuf(nx, &dx0), *dw = gradbuf(nw, &dw0);
		float *db = gradbuf((size_t)s.K, &db0);
		float *work = conv_work(&s);
		struct convctx cx = {&s, todouble(x, nx), todouble(w, nw),
			b ? todouble(b, (size_t)s.K) : NULL, todouble(dy, ny),
			xmalloc(ny * sizeof(double)), ny};

		mea_conv2d_backward(&s, x, w, dy, dx, dw, c->bias ? db : NULL, work);
		desc_conv(d, sizeof d, c, &s);
		/* The reference is linear in each argument, so any step
		 * gives the exact derivative up to rounding. */
		double ex = gradcheck(conv_loss, &cx, cx.x, nx, dx, dx0, 0.5, 48);
		double ew = gradcheck(conv_loss, &cx, cx.w, nw, dw, dw0, 0.5, 48);
		double eb = c->bias ? gradcheck(conv_loss, &cx, cx.b, (size_t)s.K,
			db, db0, 0.5, 48) : 0;
		check(ex < 1e-4 && ew < 1e-4 && eb < 1e-4, G,
			"%s%s: dx %.2g dw %.2g db %.2g", d, s.row_shift ? ", row shift" : "",
			ex, ew, eb);

		/* Each gradient alone (NULL for the others) equals its part
		 * of the full call. */
		float *dx2 = fcopy(dx0, nx), *dw2 = fcopy(dw0, nw);
		mea_conv2d_backward(&s, x, w, dy, dx2, NULL, NULL, work);
		mea_conv2d_backward(&s, x, w, dy, NULL, dw2, NULL, work);
		double e1 = relerr_ff(dx2, dx, nx), e2 = relerr_ff(dw2, dw, nw);
		check(e1 == 0 && e2 == 0, G, "%s: NULL gradients skipped "
			"(dx alone %.2g, dw alone %.2g)", c->what, e1, e2);

		free(x), free(w), free(b), free(dy), free(dx0), free(dw0);
		free(db0), free(dx), free(dw), free(db), free(work), free(dx2);
		free(dw2), free(cx.x), free(cx.w), free(cx.b), free(cx.g), free(cx.y);
	}
}

/* ------------------------------------------------- batch normalisation */

static void
bn_ref_train(int N, int C, int HW, const double *x, const double *gamma,
		const double *beta, double eps, double *y, double *mean,
		double *var)
{
	double M = (double)N * HW;
	for (int c = 0; c < C; c++) {
		double s = 0, ss = 0;
		for (int n = 0; n < N; n++)
			for (int i = 0; i < HW; i++)
				s += x[((size_t)n * C + c) * HW + i];
		double m = s / M;
		for (int n = 0; n < N; n++)
			for (int i = 0; i < HW; i++) {
				double d = x[((size_t)n * C + c) * HW + i] - m;
				ss += d * d;
			}
		double v = ss / M;
		for (int n = 0; n < N; n++)
			for (int i = 0; i < HW; i++) {
				size_t o = ((size_t)n * C + c) * HW + i;
				y[o] = gamma[c] * (x[o] - m) / sqrt(v + eps) + beta[c];
			}
		if (mean)
			mean[c] = m;
		if (var)
			var[c] = v;
	}
}

static void
test_bn_fwd(void)
{
	const char *G = "bn-fwd";
	int N = 3, C = 5, HW = 7 * 5;
	size_t n = (size_t)N * C * HW;
	float eps = 1e-5f, mom = 0.1f;
	float *x = frand(n, -2, 3), *gamma = frand(C, 0.5f, 1.5f);
	float *beta = frand(C, -1, 1), *mean = frand(C, -1, 1);
	float *var = frand(C, 0.2f, 2), *y = frand(n, -9, 9);
	double *yd = xmalloc(n * sizeof *yd);

	mea_bn_forward_infer(N, C, HW, x, gamma, beta, mean, var, eps, y);
	for (int c = 0; c < C; c++)
		for (int i = 0; i < N; i++)
			for (int j = 0; j < HW; j++) {
				size_t o = ((size_t)i * C + c) * HW + j;
				yd[o] = (double)gamma[c] * (x[o] - (double)mean[c]) /
					sqrt((double)var[c] + eps) + beta[c];
			}
	double e = relerr(y, yd, n);
	check(e < 1e-6, G, "inference N%d C%d HW%d: err %.2g", N, C, HW, e);

	/* Training: a large offset checks the variance does not cancel. */
	for (size_t i = 0; i < n; i++)
		x[i] += 1000.0f;
	double *xd = todouble(x, n), *gd = todouble(gamma, C), *bd = todouble(beta, C);
	double md[5], vd[5];
	float sm[5], si[5], rm[5], rv[5], rm0[5], rv0[5];
	for (int c = 0; c < C; c++)
		rm0[c] = rm[c] = mean[c], rv0[c] = rv[c] = var[c];
	bn_ref_train(N, C, HW, xd, gd, bd, eps, yd, md, vd);
	mea_bn_forward_train(N, C, HW, x, gamma, beta, eps, mom, y, sm, si, rm, rv);
	e = relerr(y, yd, n);
	check(e < 5e-5, G, "training output, mean 1000: err %.2g", e);
	double es = 0, er = 0, M = (double)N * HW;
	for (int c = 0; c < C; c++) {
		es = fmax(es, fabs(sm[c] - md[c]) / fabs(md[c]));
		es = fmax(es, fabs(si[c] - 1 / sqrt(vd[c] + eps)) * sqrt(vd[c] + eps));
		double wm = (1 - mom) * rm0[c] + mom * md[c];
		double wv = (1 - mom) * rv0[c] + mom * vd[c] * M / (M - 1);
		er = fmax(er, fabs(rm[c] - wm) / fmax(1, fabs(wm)));
		er = fmax(er, fabs(rv[c] - wv) / fmax(1, fabs(wv)));
	}
	check(es < 1e-5, G, "saved mean and 1/std: err %.2g", es);
	check(er < 1e-5, G, "running stats with unbiased variance: err %.2g", er);
	free(x), free(gamma), free(beta), free(mean), free(var), free(y);
	free(yd), free(xd), free(gd), free(bd);
}

struct bnctx {
	int N, C, HW;
	double *x, *gamma, *beta, *g, *y;
};

static double
bn_loss(void *p)
{
	struct bnctx *b = p;
	bn_ref_train(b->N, b->C, b->HW, b->x, b->gamma, b->beta, 1e-5, b->y,
		NULL, NULL);
	return dot(b->g, b->y, (size_t)b->N * b->C * b->HW);
}

static void
test_bn_bwd(void)
{
	const char *G = "bn-bwd";
	static const int shapes[][3] = {{4, 3, 5}, {1, 2, 9}, {7, 4, 1}};

	for (size_t k = 0; k < 3; k++) {
		int N = shapes[k][0], C = shapes[k][1], HW = shapes[k][2];
		size_t n = (size_t)N * C * HW;
		float *x = frand(n, -2, 2), *gamma = frand(C, 0.5f, 1.5f);
		float *beta = frand(C, -1, 1), *dy = frand(n, -1, 1);
		float *y = xmalloc(n * sizeof *y), *sm = xmalloc(C * sizeof *sm);
		float *si = xmalloc(C * sizeof *si);
		float *dx0, *dg0, *db0;
		float *dx = gradbuf(n, &dx0), *dg = gradbuf(C, &dg0), *db = gradbuf(C, &db0);
		struct bnctx b = {N, C, HW, todouble(x, n), todouble(gamma, C),
			todouble(beta, C), todouble(dy, n), xmalloc(n * sizeof(double))};

		mea_bn_forward_train(N, C, HW, x, gamma, beta, 1e-5f, 0.1f, y, sm,
			si, NULL, NULL);
		mea_bn_backward(N, C, HW, x, dy, gamma, sm, si, dx, dg, db);
		double ex = gradcheck(bn_loss, &b, b.x, n, dx, dx0, 1e-4, 200);
		double eg = gradcheck(bn_loss, &b, b.gamma, C, dg, dg0, 1e-4, 200);
		double eb = gradcheck(bn_loss, &b, b.beta, C, db, db0, 1e-4, 200);
		check(ex < 1e-3 && eg < 1e-3 && eb < 1e-3, G,
			"train N%d C%d HW%d: dx %.2g dgamma %.2g dbeta %.2g",
			N, C, HW, ex, eg, eb);
		free(x), free(gamma), free(beta), free(dy), free(y), free(sm);
		free(si), free(dx), free(dg), free(db), free(dx0), free(dg0);
		free(db0), free(b.x), free(b.gamma), free(b.beta), free(b.g), free(b.y);
	}
}

static void
test_bn_fold(void)
{
	const char *G = "bn-fold";

	for (int withbias = 0; withbias < 2; withbias++) {
		struct mea_conv_shape s = {.N = 2, .C = 6, .H = 9, .W = 7, .K = 8,
			.R = 3, .S = 3, .stride = 2, .pad = 1, .groups = 2};
		mea_conv_shape_init(&s);
		size_t nx, nw, ny;
		conv_sizes(&s, &nx, &nw, &ny);
		int K = s.K;
		float *x = frand(nx, -1, 1), *w = frand(nw, -1, 1);
		float *bias = withbias ? frand(K, -1, 1) : calloc(K, sizeof(float));
		float *gamma = frand(K, 0.5f, 1.5f), *beta = frand(K, -1, 1);
		float *mean = frand(K, -1, 1), *var = frand(K, 0.1f, 2);
		float *y = xmalloc(ny * sizeof *y), *y2 = xmalloc(ny * sizeof *y2);
		float *work = conv_work(&s);

		mea_conv2d_forward(&s, x, w, bias, y, work);
		mea_bn_forward_infer(s.N, K, s.P * s.Q, y, gamma, beta, mean, var,
			1e-5f, y);
		mea_bn_fold(K, nw / K, w, bias, gamma, beta, mean, var, 1e-5f);
		mea_conv2d_forward(&s, x, w, bias, y2, work);
		double e = relerr_ff(y2, y, ny);
		check(e < 1e-5, G, "grouped conv %s bias + BN equals the folded "
			"conv: err %.2g", withbias ? "with" : "without", e);
		free(x), free(w), free(bias), free(gamma), free(beta), free(mean);
		free(var), free(y), free(y2), free(work);
	}
}

/* ------------------------------------------------------- element-wise */

struct ewctx {
	size_t n;
	double *x, *x2, *g;
	double cap;
	int kind;   /* 0 relu(x, cap), 1 x + x2 */
};

static double
ew_loss(void *p)
{
	struct ewctx *c = p;
	double s = 0;
	for (size_t i = 0; i < c->n; i++) {
		double v;
		if (c->kind == 0) {
			v = c->x[i] < 0 ? 0 : c->x[i];
			if (c->cap > 0 && v > c->cap)
				v = c->cap;
		} else {
			v = c->x[i] + c->x2[i];
		}
		s += c->g[i] * v;
	}
	return s;
}

static void
test_relu(void)
{
	const char *G = "relu";
	size_t n = 1001;

	for (int six = 0; six < 2; six++) {
		float cap = six ? 6.0f : 0.0f;
		float *x = xmalloc(n * sizeof *x);
		/* Keep every value clear of the kinks at 0 and 6, where the
		 * central difference would straddle two slopes. */
		for (size_t i = 0; i < n; i++) {
			float v;
			do
				v = runif(-8, 9);
			while (fabsf(v) < 0.05f || fabsf(v - 6) < 0.05f);
			x[i] = v;
		}
		float *y = xmalloc(n * sizeof *y);
		double *yd = xmalloc(n * sizeof *yd);
		mea_relu_forward(n, x, y, cap);
		for (size_t i = 0; i < n; i++) {
			double v = x[i] < 0 ? 0 : x[i];
			yd[i] = six && v > 6 ? 6 : v;
		}
		double e = relerr(y, yd, n);
		check(e == 0, G, "%s forward: err %.2g", six ? "relu6" : "relu", e);

		float *xi = fcopy(x, n);
		mea_relu_forward(n, xi, xi, cap);
		check(relerr_ff(xi, y, n) == 0, G, "%s in place",
			six ? "relu6" : "relu");

		float *dy = frand(n, -1, 1), *dx0, *dx = gradbuf(n, &dx0);
		mea_relu_backward(n, y, dy, dx, cap);
		struct ewctx c = {n, todouble(x, n), NULL, todouble(dy, n), cap, 0};
		e = gradcheck(ew_loss, &c, c.x, n, dx, dx0, 1e-3, 2000);
		check(e < 1e-6, G, "%s backward: err %.2g", six ? "relu6" : "relu", e);
		free(x), free(y), free(yd), free(xi), free(dy), free(dx), free(dx0);
		free(c.x), free(c.g);
	}

	float nan3[3] = {NAN, -1, 7}, out[3];
	mea_relu_forward(3, nan3, out, 6);
	check(isnan(out[0]) && out[1] == 0 && out[2] == 6, G,
		"NaN stays NaN, -1 -> 0, 7 -> 6 under relu6");
}

static void
test_add(void)
{
	const char *G = "add";
	size_t n = 777;
	float *a = frand(n, -1, 1), *b = frand(n, -1, 1), *y = xmalloc(n * sizeof *y);
	double *yd = xmalloc(n * sizeof *yd);

	mea_add_forward(n, a, b, y);
	for (size_t i = 0; i < n; i++)
		yd[i] = (double)a[i] + b[i];
	check(relerr(y, yd, n) < 1e-7, G, "add forward");
	float *a2 = fcopy(a, n);
	mea_add_forward(n, a2, b, a2);
	check(relerr_ff(a2, y, n) == 0, G, "add in place (y == a)");

	/* Backward of y = a + b is dy into both: mea_acc, checked by the
	 * finite differences of the sum for each input. */
	float *dy = frand(n, -1, 1), *da0, *db0;
	float *da = gradbuf(n, &da0), *db = gradbuf(n, &db0);
	mea_acc(n, dy, da);
	mea_acc(n, dy, db);
	struct ewctx c = {n, todouble(a, n), todouble(b, n), todouble(dy, n), 0, 1};
	double ea = gradcheck(ew_loss, &c, c.x, n, da, da0, 0.5, 2000);
	double eb = gradcheck(ew_loss, &c, c.x2, n, db, db0, 0.5, 2000);
	check(ea < 1e-6 && eb < 1e-6, G, "acc as add backward: da %.2g db %.2g", ea, eb);
	free(a), free(b), free(y), free(yd), free(a2), free(dy), free(da);
	free(da0), free(db), free(db0), free(c.x), free(c.x2), free(c.g);
}

struct catctx {
	int N, HW, Ca, Cb;
	double *a, *b, *g;
};

static double
cat_loss(void *p)
{
	struct catctx *c = p;
	double s = 0;
	size_t na = (size_t)c->Ca * c->HW, nb = (size_t)c->Cb * c->HW;
	for (int n = 0; n < c->N; n++) {
		const double *g = c->g + (size_t)n * (na + nb);
		for (size_t i = 0; i < na; i++)
			s += g[i] * c->a[n * na + i];
		for (size_t i = 0; i < nb; i++)
			s += g[na + i] * c->b[n * nb + i];
	}
	return s;
}

static void
test_concat(void)
{
	const char *G = "concat";
	int N = 3, HW = 5 * 7, Ca = 4, Cb = 3;
	size_t na = (size_t)N * Ca * HW, nb = (size_t)N * Cb * HW, ny = na + nb;
	float *a = frand(na, -1, 1), *b = frand(nb, -1, 1), *y = xmalloc(ny * sizeof *y);
	double *yd = xmalloc(ny * sizeof *yd);

	mea_concat_forward(N, HW, Ca, a, Cb, b, y);
	for (int n = 0; n < N; n++)
		for (int c = 0; c < Ca + Cb; c++)
			for (int i = 0; i < HW; i++)
				yd[((size_t)n * (Ca + Cb) + c) * HW + i] = c < Ca ?
					a[((size_t)n * Ca + c) * HW + i] :
					b[((size_t)n * Cb + c - Ca) * HW + i];
	check(relerr(y, yd, ny) == 0, G, "forward N%d HW%d %d+%d channels", N, HW, Ca, Cb);

	float *dy = frand(ny, -1, 1), *da0, *db0;
	float *da = gradbuf(na, &da0), *db = gradbuf(nb, &db0);
	mea_concat_backward(N, HW, Ca, Cb, dy, da, db);
	struct catctx c = {N, HW, Ca, Cb, todouble(a, na), todouble(b, nb), todouble(dy, ny)};
	double ea = gradcheck(cat_loss, &c, c.a, na, da, da0, 0.5, 1000);
	double eb = gradcheck(cat_loss, &c, c.b, nb, db, db0, 0.5, 1000);
	mea_concat_backward(N, HW, Ca, Cb, dy, NULL, NULL);
	check(ea < 1e-6 && eb < 1e-6, G, "backward: da %.2g db %.2g", ea, eb);
	free(a), free(b), free(y), free(yd), free(dy), free(da), free(da0);
	free(db), free(db0), free(c.a), free(c.b), free(c.g);
}

/* ------------------------------------------------------------- pooling */

static const struct mea_pool_shape poolcases[] = {
	{.N = 2, .C = 3, .H = 9, .W = 7, .R = 3, .S = 3, .stride = 2, .pad = 1},
	{.N = 1, .C = 2, .H = 8, .W = 10, .R = 2, .S = 2, .stride = 2, .pad = 0},
	{.N = 2, .C = 2, .H = 7, .W = 7, .R = 3, .S = 2, .stride = 1, .pad = 1},
	{.N = 3, .C = 1, .H = 11, .W = 5, .R = 5, .S = 5, .stride = 3, .pad = 2},
};
#define NPOOL (sizeof poolcases / sizeof poolcases[0])

/* kind 0: max, 1: average over the cells inside the input. */
static void
pool_ref(const struct mea_pool_shape *s, int kind, const double *x, double *y)
{
	for (int pl = 0; pl < s->N * s->C; pl++)
		for (int p = 0; p < s->P; p++)
			for (int q = 0; q < s->Q; q++) {
				double acc = kind ? 0 : -INFINITY;
				int cnt = 0;
				for (int r = 0; r < s->R; r++)
					for (int t = 0; t < s->S; t++) {
						int ih = p * s->stride - s->pad + r;
						int iw = q * s->stride - s->pad + t;
						if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W)
							continue;
						double v = x[((size_t)pl * s->H + ih) * s->W + iw];
						if (kind)
							acc += v;
						else if (v > acc)
							acc = v;
						cnt++;
					}
				y[((size_t)pl * s->P + p) * s->Q + q] = kind ? acc / cnt : acc;
			}
}

struct poolctx {
	const struct mea_pool_shape *s;
	int kind;
	double *x, *g, *y;
};

static double
pool_loss(void *p)
{
	struct poolctx *c = p;
	pool_ref(c->s, c->kind, c->x, c->y);
	return dot(c->g, c->y, (size_t)c->s->N * c->s->C * c->s->P * c->s->Q);
}

static void
test_pool(int kind)
{
	const char *G = kind ? "avgpool" : "maxpool";

	for (size_t k = 0; k < NPOOL; k++) {
		struct mea_pool_shape s = poolcases[k];
		if (mea_pool_shape_init(&s) != 0) {
			check(0, G, "case %zu: shape rejected", k);
			continue;
		}
		size_t nx = (size_t)s.N * s.C * s.H * s.W, ny = (size_t)s.N * s.C * s.P * s.Q;
		/* Distinct values 0.01 apart in random order, so that a
		 * perturbation of 1e-3 never changes which cell is the max. */
		float *x = xmalloc(nx * sizeof *x);
		for (size_t i = 0; i < nx; i++)
			x[i] = (float)i * 0.01f;
		for (size_t i = nx - 1; i > 0; i--) {
			size_t j = rbelow(i + 1);
			float t = x[i];
			x[i] = x[j], x[j] = t;
		}
		float *y = frand(ny, -9, 9), *dy = frand(ny, -1, 1), *dx0;
		float *dx = gradbuf(nx, &dx0);
		int32_t *am = xmalloc(ny * sizeof *am);
		struct poolctx c = {&s, kind, todouble(x, nx), todouble(dy, ny),
			xmalloc(ny * sizeof(double))};

		pool_ref(&s, kind, c.x, c.y);
		if (kind) {
			mea_avgpool_forward(&s, x, y);
			mea_avgpool_backward(&s, dy, dx);
		} else {
			mea_maxpool_forward(&s, x, y, am);
			mea_maxpool_backward(&s, am, dy, dx);
		}
		double e = relerr(y, c.y, ny);
		char d[96];
		snprintf(d, sizeof d, "N%d C%d %dx%d, %dx%d s%d p%d -> %dx%d", s.N, s.C,
			s.H, s.W, s.R, s.S, s.stride, s.pad, s.P, s.Q);
		check(e < 1e-6, G, "forward %s: err %.2g", d, e);
		if (!kind) {
			float *y2 = frand(ny, -9, 9);
			mea_maxpool_forward(&s, x, y2, NULL);
			check(relerr_ff(y2, y, ny) == 0, G, "forward without argmax");
			free(y2);
		}
		e = gradcheck(pool_loss, &c, c.x, nx, dx, dx0, 1e-3, 3000);
		check(e < 1e-5, G, "backward %s: err %.2g", d, e);
		free(x), free(y), free(dy), free(dx), free(dx0), free(am), free(c.x);
		free(c.g), free(c.y);
	}
}

static void
test_maxpool(void)
{
	test_pool(0);
	struct mea_pool_shape s = {.N = 1, .C = 1, .H = 2, .W = 2, .R = 2,
		.S = 2, .stride = 2, .pad = 0};
	mea_pool_shape_init(&s);
	float x[4] = {1, NAN, 3, 2}, y;
	mea_maxpool_forward(&s, x, &y, NULL);
	check(isnan(y), "maxpool", "a NaN in the window gives NaN");
}

static void
test_avgpool(void)
{
	test_pool(1);
}

struct gapctx {
	int NC, HW;
	double *x, *g;
};

static double
gap_loss(void *p)
{
	struct gapctx *c = p;
	double s = 0;
	for (int pl = 0; pl < c->NC; pl++) {
		double m = 0;
		for (int i = 0; i < c->HW; i++)
			m += c->x[(size_t)pl * c->HW + i];
		s += c->g[pl] * m / c->HW;
	}
	return s;
}

static void
test_gap(void)
{
	const char *G = "gap";
	int N = 3, C = 5, HW = 7 * 9;
	size_t nx = (size_t)N * C * HW, ny = (size_t)N * C;
	float *x = frand(nx, -1, 2), *y = xmalloc(ny * sizeof *y);
	double *yd = xmalloc(ny * sizeof *yd);

	mea_gap_forward(N, C, HW, x, y);
	for (size_t pl = 0; pl < ny; pl++) {
		double s = 0;
		for (int i = 0; i < HW; i++)
			s += x[pl * HW + i];
		yd[pl] = s / HW;
	}
	double e = relerr(y, yd, ny);
	check(e < 1e-6, G, "forward N%d C%d HW%d: err %.2g", N, C, HW, e);
	float *dy = frand(ny, -1, 1), *dx0, *dx = gradbuf(nx, &dx0);
	mea_gap_backward(N, C, HW, dy, dx);
	struct gapctx c = {N * C, HW, todouble(x, nx), todouble(dy, ny)};
	e = gradcheck(gap_loss, &c, c.x, nx, dx, dx0, 0.5, 4000);
	check(e < 1e-5, G, "backward: err %.2g", e);
	free(x), free(y), free(yd), free(dy), free(dx), free(dx0), free(c.x), free(c.g);
}

/* ----------------------------------------------------- fully connected */

struct fcctx {
	int N, in, out;
	double *x, *w, *b, *g;
};

static void
fc_ref(const struct fcctx *c, double *y)
{
	for (int n = 0; n < c->N; n++)
		for (int o = 0; o < c->out; o++) {
			double s = c->b ? c->b[o] : 0;
			for (int i = 0; i < c->in; i++)
				s += c->x[(size_t)n * c->in + i] * c->w[(size_t)o * c->in + i];
			y[(size_t)n * c->out + o] = s;
		}
}

static double
fc_loss(void *p)
{
	struct fcctx *c = p;
	size_t ny = (size_t)c->N * c->out;
	double *y = xmalloc(ny * sizeof *y);
	fc_ref(c, y);
	double s = dot(c->g, y, ny);
	free(y);
	return s;
}

static void
test_fc(void)
{
	const char *G = "fc";
	static const int shapes[][3] = {{5, 64, 10}, {1, 37, 13}, {17, 9, 3}};

	for (int k = 0; k < 3; k++) {
		int N = shapes[k][0], in = shapes[k][1], out = shapes[k][2];
		size_t nx = (size_t)N * in, nw = (size_t)out * in, ny = (size_t)N * out;
		float *x = frand(nx, -1, 1), *w = frand(nw, -1, 1), *b = frand(out, -1, 1);
		float *y = frand(ny, -9, 9), *dy = frand(ny, -1, 1);
		float *dx0, *dw0, *db0;
		float *dx = gradbuf(nx, &dx0), *dw = gradbuf(nw, &dw0), *db = gradbuf(out, &db0);
		struct fcctx c = {N, in, out, todouble(x, nx), todouble(w, nw),
			todouble(b, out), todouble(dy, ny)};
		double *yd = xmalloc(ny * sizeof *yd);

		fc_ref(&c, yd);
		mea_fc_forward(N, in, out, x, w, b, y);
		double e = relerr(y, yd, ny);
		check(e < 1e-5, G, "forward N%d %d -> %d: err %.2g", N, in, out, e);
		mea_fc_backward(N, in, out, x, w, dy, dx, dw, db);
		double ex = gradcheck(fc_loss, &c, c.x, nx, dx, dx0, 0.5, 100);
		double ew = gradcheck(fc_loss, &c, c.w, nw, dw, dw0, 0.5, 100);
		double eb = gradcheck(fc_loss, &c, c.b, out, db, db0, 0.5, 100);
		check(ex < 1e-5 && ew < 1e-5 && eb < 1e-5, G,
			"backward N%d %d -> %d: dx %.2g dw %.2g db %.2g", N, in, out,
			ex, ew, eb);
		free(x), free(w), free(b), free(y), free(dy), free(dx), free(dx0);
		free(dw), free(dw0), free(db), free(db0), free(c.x), free(c.w);
		free(c.b), free(c.g), free(yd);
	}
}

/* ------------------------------------------------- softmax and losses */

static void
softmax_ref(int K, const double *x, double *p)
{
	double m = x[0], s = 0;
	for (int k = 1; k < K; k++)
		m = fmax(m, x[k]);
	for (int k = 0; k < K; k++)
		s += p[k] = exp(x[k] - m);
	for (int k = 0; k < K; k++)
		p[k] /= s;
}

static void
test_softmax(void)
{
	const char *G = "softmax";
	int N = 4, K = 10;
	float *x = frand((size_t)N * K, -5, 5), *p = xmalloc((size_t)N * K * sizeof *p);
	/* Row 1 would overflow exp() without the max shift, row 2
	 * underflow to 0/0. */
	for (int k = 0; k < K; k++) {
		x[K + k] += 1000;
		x[2 * K + k] -= 1000;
	}
	double *xd = todouble(x, (size_t)N * K), *pd = xmalloc((size_t)N * K * sizeof *pd);
	for (int n = 0; n < N; n++)
		softmax_ref(K, xd + n * K, pd + n * K);
	mea_softmax(N, K, x, p);
	double e = relerr(p, pd, (size_t)N * K);
	int finite = 1;
	for (int i = 0; i < N * K; i++)
		finite &= isfinite(p[i]);
	check(e < 1e-5 && finite, G, "N%d K%d with logits near +-1000: err %.2g", N, K, e);

	float u[4] = {0.25f, 0.25f, 0.25f, 0.25f}, one[3] = {0, 1, 0};
	float half[3] = {0.5f, 0, 0.5f}, bad[2] = {NAN, 1};
	check(fabs(mea_entropy(4, u) - log(4.0)) < 1e-6, G, "entropy of uniform/4 is log 4");
	check(mea_entropy(3, one) == 0, G, "entropy of one-hot is 0 (0 log 0 = 0)");
	check(fabs(mea_entropy(3, half) - log(2.0)) < 1e-6, G, "entropy of {1/2, 0, 1/2} is log 2");
	check(isnan(mea_entropy(2, bad)), G, "entropy of a NaN vector is NaN");
	double h = 0;
	for (int k = 0; k < K; k++)
		if (pd[k] > 0)
			h -= pd[k] * log(pd[k]);
	check(fabs(mea_entropy(K, p) - h) < 1e-5, G, "entropy of a softmax row: %.6f", h);
	free(x), free(p), free(xd), free(pd);
}

struct xentctx {
	int N, K;
	double *x;
	const int32_t *lab;
	double smooth;
};

static double
xent_loss(void *p)
{
	struct xentctx *c = p;
	double s = 0;
	for (int n = 0; n < c->N; n++) {
		const double *r = c->x + (size_t)n * c->K;
		double m = r[0], z = 0;
		for (int k = 1; k < c->K; k++)
			m = fmax(m, r[k]);
		for (int k = 0; k < c->K; k++)
			z += exp(r[k] - m);
		/* - sum_k q_k log p_k with q = (1 - smooth) onehot + smooth / K */
		for (int k = 0; k < c->K; k++) {
			double q = (k == c->lab[n]) * (1 - c->smooth) + c->smooth / c->K;
			s -= q * (r[k] - m - log(z));
		}
	}
	return s / c->N;
}

static void
test_xent(void)
{
	const char *G = "xent";
	int N = 6, K = 7;
	size_t n = (size_t)N * K;
	float *x = frand(n, -4, 4), *dx0, *dx = gradbuf(n, &dx0);
	int32_t lab[6];
	for (int i = 0; i < N; i++)
		lab[i] = (int32_t)rbelow((size_t)K);
	for (int k = 0; k < K; k++)
		x[k] += 500;   /* stability */
	struct xentctx c = {N, K, todouble(x, n), lab, 0};

	float l = mea_xent(N, K, x, lab, 0, dx);
	double lr = xent_loss(&c);
	check(fabs(l - lr) < 1e-5 * fmax(1, fabs(lr)), G, "loss %.6f vs %.6f", l, lr);
	double e = gradcheck(xent_loss, &c, c.x, n, dx, dx0, 1e-4, 1000);
	check(e < 1e-4, G, "gradient (softmax - onehot) / N: err %.2g", e);
	float l2 = mea_xent(N, K, x, lab, 0, NULL);
	check(l2 == l, G, "loss without gradient");
	int32_t badlab[6];
	memcpy(badlab, lab, sizeof lab);
	badlab[3] = K;
	check(isnan(mea_xent(N, K, x, badlab, 0, NULL)), G, "out-of-range label gives NaN");

	/* Label smoothing: the loss against the smoothed target, and its
	 * gradient (softmax - target) / N. */
	c.smooth = 0.1;
	memcpy(dx, dx0, n * sizeof *dx);
	l = mea_xent(N, K, x, lab, 0.1f, dx);
	lr = xent_loss(&c);
	check(fabs(l - lr) < 1e-5 * fmax(1, fabs(lr)), G, "smoothed loss %.6f vs %.6f", l, lr);
	e = gradcheck(xent_loss, &c, c.x, n, dx, dx0, 1e-4, 1000);
	check(e < 1e-4, G, "smoothed gradient: err %.2g", e);
	free(x), free(dx), free(dx0), free(c.x);
}

/* Distillation against a double reference of its definition. */
struct kdctx {
	struct xentctx h;
	const double *t;
	double alpha, tau;
};

static double
kd_loss(void *p)
{
	struct kdctx *c = p;
	double soft = 0;
	for (int n = 0; n < c->h.N; n++) {
		const double *x = c->h.x + (size_t)n * c->h.K, *t = c->t + (size_t)n * c->h.K;
		double zs = 0, zt = 0, ms = x[0], mt = t[0];
		for (int k = 1; k < c->h.K; k++)
			ms = fmax(ms, x[k]), mt = fmax(mt, t[k]);
		for (int k = 0; k < c->h.K; k++)
			zs += exp((x[k] - ms) / c->tau), zt += exp((t[k] - mt) / c->tau);
		for (int k = 0; k < c->h.K; k++) {
			double lpt = (t[k] - mt) / c->tau - log(zt);
			double lps = (x[k] - ms) / c->tau - log(zs);
			soft += exp(lpt) * (lpt - lps);
		}
	}
	return (1 - c->alpha) * xent_loss(&c->h) +
		c->alpha * c->tau * c->tau * soft / c->h.N;
}

static void
test_distill(void)
{
	const char *G = "distill";
	int N = 5, K = 6;
	size_t n = (size_t)N * K;
	float *x = frand(n, -3, 3), *t = frand(n, -6, 6), *dx0, *dx = gradbuf(n, &dx0);
	int32_t lab[5];
	for (int i = 0; i < N; i++)
		lab[i] = (int32_t)rbelow((size_t)K);
	struct kdctx c = {{N, K, todouble(x, n), lab, 0.1}, todouble(t, n), 0.7, 4};

	float l = mea_distill(N, K, x, lab, 0.1f, t, 0.7f, 4, dx);
	double lr = kd_loss(&c);
	check(fabs(l - lr) < 1e-5 * fmax(1, fabs(lr)), G, "loss %.6f vs %.6f", l, lr);
	double e = gradcheck(kd_loss, &c, c.h.x, n, dx, dx0, 1e-4, 1000);
	check(e < 1e-4, G, "gradient (1 - a)(p - q)/N + a tau (ps - pt)/N: err %.2g", e);
	float l0 = mea_distill(N, K, x, lab, 0.1f, t, 0, 4, NULL);
	check(fabs(l0 - mea_xent(N, K, x, lab, 0.1f, NULL)) < 1e-6, G,
		"weight 0 is the cross-entropy");
	float self = mea_distill(N, K, x, lab, 0, x, 1, 2, NULL);
	check(fabs(self) < 1e-6, G, "weight 1 against itself as teacher is 0 (%.2g)", self);
	free(x), free(t), free(dx), free(dx0), free(c.h.x), free((void *)c.t);
}

/* ----------------------------------------------------------- optimiser */

static void
test_sgd(void)
{
	const char *G = "sgd";
	/* By hand, lr 0.1, momentum 0.9, weight decay 0.01:
	 *   w=1, g=0.5, v=0.2:  g' = 0.51, v = 0.18 + 0.51 = 0.69,
	 *     plain w = 1 - 0.069 = 0.931,
	 *     nesterov w = 1 - 0.1 * (0.51 + 0.621) = 0.8869;
	 *   w=-2, g=0, v=0: g' = -0.02, v = -0.02,
	 *     plain w = -2 + 0.002 = -1.998,
	 *     nesterov w = -2 + 0.1 * (0.02 + 0.018) = -1.9962. */
	float w[2] = {1, -2}, g[2] = {0.5f, 0}, v[2] = {0.2f, 0};
	mea_sgd_step(2, w, g, v, 0.1f, 0.9f, 0.01f, 0);
	check(fabsf(w[0] - 0.931f) < 1e-6 && fabsf(w[1] + 1.998f) < 1e-6 &&
		fabsf(v[0] - 0.69f) < 1e-6 && fabsf(v[1] + 0.02f) < 1e-6, G,
		"momentum step: w = {%.6f, %.6f}, v = {%.6f, %.6f}", w[0], w[1], v[0], v[1]);
	float wn[2] = {1, -2}, vn[2] = {0.2f, 0};
	mea_sgd_step(2, wn, g, vn, 0.1f, 0.9f, 0.01f, 1);
	check(fabsf(wn[0] - 0.8869f) < 1e-6 && fabsf(wn[1] + 1.9962f) < 1e-6, G,
		"nesterov step: w = {%.6f, %.6f}", wn[0], wn[1]);
	/* A second plain step from the first: g' = 0.5 + 0.00931 = 0.50931,
	 * v = 0.621 + 0.50931 = 1.13031, w = 0.931 - 0.113031 = 0.817969. */
	mea_sgd_step(1, w, g, v, 0.1f, 0.9f, 0.01f, 0);
	check(fabsf(w[0] - 0.817969f) < 1e-6, G, "second momentum step: w = %.6f", w[0]);
	float w0[1] = {1};
	mea_sgd_step(1, w0, g, NULL, 0.1f, 0, 0.01f, 0);
	check(fabsf(w0[0] - 0.949f) < 1e-6, G, "no velocity buffer: w = %.6f", w0[0]);
}

/* ----------------------------------------------- inverted residual */

/* One 1x1, 3x3 depthwise or 1x1 layer of a block, as a shape. */
static struct mea_conv_shape
ir_layer(int N, int C, int H, int W, int K, int R, int stride, int groups)
{
	struct mea_conv_shape s = {.N = N, .C = C, .H = H, .W = W, .K = K, .R = R,
		.S = R, .stride = stride, .pad = R / 2, .groups = groups, .inference = 1};
	mea_conv_shape_init(&s);
	return s;
}

/*
 * mea_ir_forward against the three convolutions it fuses, run one after
 * the other (each checked above): one band or several, stride 1 and 2,
 * odd sizes, with and without a shortcut and biases.
 */
static void
test_ir(void)
{
	const char *G = "ir";
	static const struct {
		int N, C, H, W, E, K, stride, res, bias;
		const char *what;
	} cases[] = {
		{2, 5, 9, 7, 12, 5, 1, 1, 1, "one band, shortcut"},
		{3, 4, 11, 13, 8, 6, 2, 0, 1, "stride 2, odd sizes"},
		{2, 16, 40, 40, 96, 16, 1, 1, 1, "several bands, shortcut"},
		{1, 8, 41, 37, 96, 24, 2, 0, 0, "several bands, stride 2, no biases"},
		{2, 3, 1, 1, 6, 3, 1, 1, 1, "a 1x1 image"},
		{1, 3, 2, 3, 6, 4, 2, 0, 1, "a 2x3 image at stride 2"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int N = cases[i].N, C = cases[i].C, H = cases[i].H, W = cases[i].W;
		int E = cases[i].E, K = cases[i].K, st = cases[i].stride;
		struct mea_ir_shape s = {.N = N, .C = C, .H = H, .W = W, .E = E, .K = K,
			.stride = st};
		if (mea_ir_shape_init(&s) != 0) {
			check(0, G, "%s: shape rejected", cases[i].what);
			continue;
		}
		struct mea_conv_shape s1 = ir_layer(N, C, H, W, E, 1, 1, 1);
		struct mea_conv_shape s2 = ir_layer(N, E, H, W, E, 3, st, E);
		struct mea_conv_shape s3 = ir_layer(N, E, s2.P, s2.Q, K, 1, 1, 1);
		size_t nx = (size_t)N * C * H * W, ne = (size_t)N * E * H * W;
		size_t nd = (size_t)N * E * s2.P * s2.Q, ny = (size_t)N * K * s.P * s.Q;
		float *x = frand(nx, -1, 1), *res = cases[i].res ? frand(ny, -1, 1) : NULL;
		struct mea_ir_weights wt = {
			.w = {frand((size_t)E * C, -0.5f, 0.5f), frand((size_t)E * 9, -0.5f, 0.5f),
				frand((size_t)K * E, -0.3f, 0.3f)},
			.b = {cases[i].bias ? frand(E, -0.5f, 0.5f) : NULL,
				cases[i].bias ? frand(E, -0.5f, 0.5f) : NULL,
				cases[i].bias ? frand(K, -0.5f, 0.5f) : NULL},
			.relu = {1, 1, 0}, .cap = {6, 6, 0},
		};
		float *e = xmalloc(ne * sizeof *e), *d = xmalloc(nd * sizeof *d);
		float *want = xmalloc(ny * sizeof *want), *got = frand(ny, -9, 9);
		size_t nw = mea_conv_workspace(&s1);
		if (mea_conv_workspace(&s2) > nw)
			nw = mea_conv_workspace(&s2);
		if (mea_conv_workspace(&s3) > nw)
			nw = mea_conv_workspace(&s3);
		float *w1 = xmalloc((nw ? nw : 1) * sizeof *w1);
		float *work = xmalloc(mea_ir_workspace(&s) * sizeof *work);

		check(s.P == s2.P && s.Q == s2.Q, G, "%s: output %dx%d", cases[i].what, s.P, s.Q);
		mea_conv2d_forward_act(&s1, x, wt.w[0], wt.b[0], NULL, 1, 6, e, w1);
		mea_conv2d_forward_act(&s2, e, wt.w[1], wt.b[1], NULL, 1, 6, d, w1);
		mea_conv2d_forward_act(&s3, d, wt.w[2], wt.b[2], res, 0, 0, want, w1);
		/* The fused block takes its expansion and depthwise weights
		 * rearranged for its channels-last inside. */
		struct mea_ir_weights cl = wt;
		float *we = xmalloc((size_t)C * E * sizeof *we), *wd = xmalloc((size_t)10 * E * sizeof *wd);
		float *wp = xmalloc((size_t)E * K * sizeof *wp);
		mea_pw_nhwc_weights(E, C, wt.w[0], we);
		mea_dw3_nhwc_weights(E, wt.w[1], wd);
		mea_pw_nhwc_weights(K, E, wt.w[2], wp);
		cl.w[0] = we;
		cl.w[1] = wd;
		cl.w[2] = wp;
		/* Input and output NCHW, or either channels-last. */
		float *xl = xmalloc(nx * sizeof *xl), *rl = res ? xmalloc(ny * sizeof *rl) : NULL;
		float *yl = xmalloc(ny * sizeof *yl);
		mea_to_nhwc(N, C, H * W, x, xl);
		if (res)
			mea_to_nhwc(N, K, s.P * s.Q, res, rl);
		for (int io = 0; io < 4; io++) {
			s.in_cl = io & 1;
			s.out_cl = io >> 1;
			mea_ir_forward(&s, &cl, s.in_cl ? xl : x, s.out_cl ? rl : res,
				s.out_cl ? yl : got, work);
			if (s.out_cl)
				mea_to_nchw(N, K, s.P * s.Q, yl, got);
			double err = relerr_ff(got, want, ny);
			check(err < 1e-6, G, "%s (N%d C%d %dx%d E%d K%d s%d, bands of %d, in %s, "
				"out %s): err %.2g", cases[i].what, N, C, H, W, E, K, st, s.band,
				s.in_cl ? "nhwc" : "nchw", s.out_cl ? "nhwc" : "nchw", err);
		}
		free(we), free(wd), free(wp), free(xl), free(rl), free(yl);
		for (int k = 0; k < 3; k++)
			free((void *)wt.w[k]), free((void *)wt.b[k]);
		free(x), free(res), free(e), free(d), free(want), free(got), free(w1), free(work);
	}
	struct mea_ir_shape bad = {.N = 1, .C = 4, .H = 8, .W = 8, .E = 8, .K = 4, .stride = 3};
	check(mea_ir_shape_init(&bad) == -1, G, "rejects stride 3");
	bad.stride = 1, bad.E = 0;
	check(mea_ir_shape_init(&bad) == -1, G, "rejects no expanded channels");
}

/* -------------------------------------------------------------- nhwc */

/* A layer of conv_fwd's kind on NCHW x, as mea_conv2d_forward_act runs
 * it in inference (checked above), into want. */
static void
nchw_layer(struct mea_conv_shape *s, const float *x, const float *w, const float *b,
		const float *res, int relu, float cap, float *want)
{
	size_t nw = mea_conv_workspace(s);
	float *work = xmalloc((nw ? nw : 1) * sizeof *work);

	mea_conv2d_forward_act(s, x, w, b, res, relu, cap, want, work);
	free(work);
}

/*
 * The channels-last kernels against the NCHW ones, through the layout
 * changes: 1x1 and 3x3 depthwise convolutions on odd sizes, channel
 * counts inside and outside the depthwise register blocks, stride 2, a
 * 1x1 image, with and without bias and shortcut; global average pooling
 * exactly; and the layout changes as exact inverses.
 */
static void
test_nhwc(void)
{
	const char *G = "nhwc";
	static const struct {
		int N, C, H, W, K, R, stride, res, bias;
		const char *what;
	} cases[] = {
		{3, 7, 5, 9, 11, 1, 1, 1, 1, "1x1, odd sizes, shortcut"},
		{2, 96, 14, 14, 576, 1, 1, 0, 1, "1x1, MobileNetV2's 14x14 expansion"},
		{5, 64, 7, 7, 48, 1, 1, 1, 0, "1x1, rows over several GEMMs, no bias"},
		{2, 37, 9, 11, 37, 3, 1, 1, 1, "3x3 depthwise, 37 channels, shortcut"},
		{3, 48, 14, 14, 48, 3, 1, 0, 1, "3x3 depthwise, six vector blocks"},
		{2, 40, 13, 8, 40, 3, 2, 0, 1, "3x3 depthwise, stride 2, odd height"},
		{1, 16, 1, 1, 16, 3, 1, 1, 0, "3x3 depthwise, a 1x1 image, no bias"},
		{2, 20, 2, 3, 20, 3, 2, 0, 1, "3x3 depthwise, a 2x3 image at stride 2"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int N = cases[i].N, C = cases[i].C, H = cases[i].H, W = cases[i].W;
		int K = cases[i].K, R = cases[i].R, st = cases[i].stride;
		struct mea_conv_shape s = ir_layer(N, C, H, W, K, R, st, R == 3 ? C : 1);
		size_t nx = (size_t)N * C * H * W, ny = (size_t)N * K * s.P * s.Q;
		size_t nw = (size_t)K * (R == 3 ? 9 : C);
		float *x = frand(nx, -1, 1), *w = frand(nw, -0.5f, 0.5f);
		float *b = cases[i].bias ? frand(K, -0.5f, 0.5f) : NULL;
		float *res = cases[i].res ? frand(ny, -1, 1) : NULL;
		float *want = xmalloc(ny * sizeof *want), *got = xmalloc(ny * sizeof *got);
		float *xl = xmalloc(nx * sizeof *xl), *rl = res ? xmalloc(ny * sizeof *rl) : NULL;
		float *yl = frand(ny, -9, 9), *wt = xmalloc(10 * (size_t)C * sizeof *wt);
		int PQ = s.P * s.Q;

		nchw_layer(&s, x, w, b, res, 1, 6, want);
		mea_to_nhwc(N, C, H * W, x, xl);
		if (res)
			mea_to_nhwc(N, K, PQ, res, rl);
		if (R == 1) {
			float *wp = xmalloc(nw * sizeof *wp);
			mea_pw_nhwc_weights(K, C, w, wp);
			mea_pw_nhwc_forward(N * H * W, C, K, xl, wp, b, rl, 1, 6, yl);
			free(wp);
		} else {
			mea_dw3_nhwc_weights(C, w, wt);
			mea_dw3_nhwc_forward(N, C, H, W, st, xl, wt, b, rl, 1, 6, yl);
		}
		mea_to_nchw(N, K, PQ, yl, got);
		double err = relerr_ff(got, want, ny);
		check(err < 1e-6, G, "%s (N%d C%d %dx%d K%d s%d): err %.2g", cases[i].what,
			N, C, H, W, K, st, err);
		free(x), free(w), free(b), free(res), free(want), free(got), free(xl), free(rl);
		free(yl), free(wt);
	}

	int N = 3, C = 37, HW = 45;
	size_t n = (size_t)N * C * HW;
	float *x = frand(n, -3, 3), *xl = xmalloc(n * sizeof *xl), *back = xmalloc(n * sizeof *back);
	float *want = xmalloc((size_t)N * C * sizeof *want), *got = xmalloc((size_t)N * C * sizeof *got);
	mea_to_nhwc(N, C, HW, x, xl);
	mea_to_nchw(N, C, HW, xl, back);
	check(memcmp(back, x, n * sizeof *x) == 0 && xl[1] == x[HW] && xl[C] == x[1], G,
		"layout changes: pixel-major, and back to the same bytes");
	mea_gap_forward(N, C, HW, x, want);
	mea_gap_nhwc_forward(N, C, HW, xl, got);
	check(memcmp(want, got, (size_t)N * C * sizeof *got) == 0, G,
		"global average pooling: the same bytes as on NCHW");
	free(x), free(xl), free(back), free(want), free(got);
}

/* ------------------------------------------------------------- fused */

/* NaN in every element: a _set kernel must not read what it overwrites. */
static float *
fnan(size_t n)
{
	float *p = xmalloc(n * sizeof *p);
	for (size_t i = 0; i < n; i++)
		p[i] = NAN;
	return p;
}

/* Largest |a - b| over the largest |b|, for two float results. */
static double
relerr_f(const float *a, const float *b, size_t n)
{
	double *d = todouble(b, n), e = relerr(a, d, n);
	free(d);
	return e;
}

/*
 * The fused kernels against the separate ones they replace (which the
 * groups above check against plain loops): conv + bias + residual add +
 * relu/relu6; conv backward writing dx; bn training + relu and its
 * backward; relu backward writing dx.
 */
static void
test_fused(void)
{
	const char *G = "fused";
	static const float caps[] = {-1, 0, 6};    /* none, relu, relu6 */

	for (size_t i = 0; i < NCONV; i++) {
		const struct convcase *c = &convcases[i];
		struct mea_conv_shape s;
		size_t nx, nw, ny;
		char d[160];
		if (conv_shape(c, &s) != 0)
			continue;
		conv_sizes(&s, &nx, &nw, &ny);
		desc_conv(d, sizeof d, c, &s);
		float *x = frand(nx, -1, 1), *w = frand(nw, -1, 1), *b = frand(s.K, -1, 1);
		float *res = frand(ny, -1, 1), *want = xmalloc(ny * sizeof *want);
		float *got = frand(ny, -9, 9), *work = conv_work(&s);
		for (int inf = 0; inf < 2; inf++) {
			struct mea_conv_shape si = s;
			si.inference = inf;
			float *wk = conv_work(&si);
			double worst = 0;
			for (int k = 0; k < 3; k++)
				for (int withres = 0; withres < 2; withres++) {
					const float *bias = c->bias ? b : NULL, *r = withres ? res : NULL;
					mea_conv2d_forward(&si, x, w, bias, want, wk);
					if (r)
						mea_add_forward(ny, want, r, want);
					if (caps[k] >= 0)
						mea_relu_forward(ny, want, want, caps[k]);
					mea_conv2d_forward_act(&si, x, w, bias, r, caps[k] >= 0,
						caps[k], got, wk);
					worst = fmax(worst, relerr_f(got, want, ny));
				}
			check(worst < 1e-6, G, "conv + bias + residual + relu/relu6, %s%s: "
				"err %.2g", d, inf ? ", inference" : "", worst);
			free(wk);
		}

		float *dy = frand(ny, -1, 1), *dx = xmalloc(nx * sizeof *dx);
		float *dxr = xmalloc(nx * sizeof *dxr);
		float *dw = xmalloc(nw * sizeof *dw), *dwr = xmalloc(nw * sizeof *dwr);
		for (int rs = 0; rs < 2; rs++) {
			struct mea_conv_shape sr = s;
			sr.row_shift = rs;
			float *wk = conv_work(&sr);
			for (size_t k = 0; k < nx; k++)
				dx[k] = NAN;
			memset(dxr, 0, nx * sizeof *dxr);
			memset(dw, 0, nw * sizeof *dw);
			memset(dwr, 0, nw * sizeof *dwr);
			mea_conv2d_backward(&sr, x, w, dy, dxr, dwr, NULL, wk);
			mea_conv2d_backward_set(&sr, x, w, dy, dx, dw, NULL, wk);
			double ex = relerr_f(dx, dxr, nx), ew = relerr_f(dw, dwr, nw);
			check(ex < 1e-6 && ew < 1e-6, G, "conv backward writing dx over NaN, "
				"%s%s: dx %.2g dw %.2g", d, rs ? ", row shift" : "", ex, ew);
			free(wk);
		}
		free(x), free(w), free(b), free(res), free(want), free(got), free(work);
		free(dy), free(dx), free(dxr), free(dw), free(dwr);
	}

	int N = 4, C = 3, HW = 7 * 5;
	size_t n = (size_t)N * C * HW;
	float *x = frand(n, -2, 3), *gamma = frand(C, 0.5f, 1.5f), *beta = frand(C, -1, 1);
	float *dy = frand(n, -1, 1), *y = xmalloc(n * sizeof *y), *yr = xmalloc(n * sizeof *yr);
	float *g = xmalloc(n * sizeof *g), *dx0 = frand(n, -1, 1);
	for (int k = 0; k < 3; k++) {
		int relu = caps[k] >= 0;
		float cap = caps[k], sm[3], si[3], rm[3] = {0}, rv[3] = {1, 1, 1};
		float smr[3], sir[3], rmr[3] = {0}, rvr[3] = {1, 1, 1};
		mea_bn_forward_train(N, C, HW, x, gamma, beta, 1e-5f, 0.1f, yr, smr, sir, rmr, rvr);
		if (relu)
			mea_relu_forward(n, yr, yr, cap);
		mea_bn_forward_train_act(N, C, HW, x, gamma, beta, 1e-5f, 0.1f, relu, cap, y,
			sm, si, rm, rv);
		double e = fmax(relerr_f(y, yr, n), fmax(relerr_f(sm, smr, C), relerr_f(rv, rvr, C)));
		check(e < 1e-6, G, "bn training + %s: err %.2g", k == 0 ? "nothing" :
			k == 1 ? "relu" : "relu6", e);

		/* Backward, adding into dx and overwriting a NaN dx. */
		float *dxr = fcopy(dx0, n), *dxa = fcopy(dx0, n), *dxs = fnan(n);
		float *dxz = xmalloc(n * sizeof *dxz);
		float dgr[3] = {0}, dbr[3] = {0}, dga[3] = {0}, dba[3] = {0}, dgs[3] = {0}, dbs[3] = {0};
		memset(g, 0, n * sizeof *g);
		memset(dxz, 0, n * sizeof *dxz);
		if (relu)
			mea_relu_backward(n, y, dy, g, cap);
		else
			memcpy(g, dy, n * sizeof *g);
		mea_bn_backward(N, C, HW, x, g, gamma, sm, si, dxr, dgr, dbr);
		mea_bn_backward(N, C, HW, x, g, gamma, sm, si, dxz, NULL, NULL);
		mea_bn_backward_act(N, C, HW, x, y, dy, relu, cap, gamma, sm, si, dxa, 0, dga, dba);
		mea_bn_backward_act(N, C, HW, x, y, dy, relu, cap, gamma, sm, si, dxs, 1, dgs, dbs);
		double ea = fmax(relerr_f(dxa, dxr, n), fmax(relerr_f(dga, dgr, C),
			relerr_f(dba, dbr, C)));
		double es = fmax(relerr_f(dxs, dxz, n), fmax(relerr_f(dgs, dgr, C),
			relerr_f(dbs, dbr, C)));
		check(ea < 1e-6 && es < 1e-6, G, "bn backward through %s: adding %.2g, "
			"writing over NaN %.2g", k == 0 ? "nothing" : k == 1 ? "relu" : "relu6", ea, es);
		free(dxr), free(dxa), free(dxs), free(dxz);
	}
	for (int k = 1; k < 3; k++) {
		float *dxs = fnan(n);
		memset(g, 0, n * sizeof *g);
		mea_relu_backward(n, y, dy, g, caps[k]);
		mea_relu_backward_set(n, y, dy, dxs, caps[k]);
		double e = relerr_f(dxs, g, n);
		check(e == 0, G, "%s backward writing dx over NaN: err %.2g",
			k == 1 ? "relu" : "relu6", e);
		free(dxs);
	}
	free(x), free(gamma), free(beta), free(dy), free(y), free(yr), free(g), free(dx0);
}

/* ---------------------------------------------------------------- main */

static const struct {
	const char *name;
	void (*fn)(void);
} groups[] = {
	{"gemm", test_gemm},
	{"conv-shape", test_conv_shape},
	{"conv-fwd", test_conv_fwd},
	{"conv-naive", test_conv_naive},
	{"conv-bwd", test_conv_bwd},
	{"bn-fwd", test_bn_fwd},
	{"bn-bwd", test_bn_bwd},
	{"bn-fold", test_bn_fold},
	{"relu", test_relu},
	{"add", test_add},
	{"concat", test_concat},
	{"maxpool", test_maxpool},
	{"avgpool", test_avgpool},
	{"gap", test_gap},
	{"fc", test_fc},
	{"softmax", test_softmax},
	{"xent", test_xent},
	{"distill", test_distill},
	{"sgd", test_sgd},
	{"fused", test_fused},
	{"ir", test_ir},
	{"nhwc", test_nhwc},
};
#define NGROUPS (sizeof groups / sizeof groups[0])

int
main(int argc, char **argv)
{
	const char *t = getenv("MEA_THREADS");
	if (t && atoi(t) > 0)
		mea_set_threads(atoi(t));

	for (int a = 1; a < argc; a++) {
		size_t i;
		for (i = 0; i < NGROUPS; i++)
			if (strcmp(argv[a], groups[i].name) == 0)
				break;
		if (i == NGROUPS) {
			fprintf(stderr, "nn_test: unknown group '%s'; groups:", argv[a]);
			for (i = 0; i < NGROUPS; i++)
				fprintf(stderr, " %s", groups[i].name);
			fputc('\n', stderr);
			return 2;
		}
	}
	for (size_t i = 0; i < NGROUPS; i++) {
		int want = argc == 1;
		for (int a = 1; a < argc; a++)
			want |= strcmp(argv[a], groups[i].name) == 0;
		if (want)
			groups[i].fn();
	}
	if (nfail)
		printf("%d check%s failed\n", nfail, nfail == 1 ? "" : "s");
	return nfail ? 1 : 0;
}
