/*
 * nn.h: neural-network kernels of libmea (included by mea.h).
 *
 * Layout: every activation is a dense float array in NCHW order
 * (batch N, channels C, height H, width W).  Convolution weights are
 * [K][C/groups][R][S] (K output channels, R x S kernel).  Fully connected
 * weights are [out][in].  Shape letters mean the same in every kernel:
 * N batch, C input channels, H x W input size, K output channels,
 * R x S kernel, P x Q output size.
 *
 * Forward functions overwrite their output.  Backward functions ADD into
 * every gradient they produce (dx, dw, db, ...), so that a tensor that
 * feeds several layers (a residual shortcut) gets the sum of its
 * gradients; callers zero gradient buffers before a backward pass.  (The
 * _set variants write their dx instead, for the first contribution.)
 * A NULL gradient pointer means "not needed" and is skipped.
 *
 * Threading: the kernels are single-threaded loops around OpenBLAS SGEMM;
 * OpenBLAS's own thread count is set once per process with
 * mea_set_threads().
 */
#ifndef MEA_NN_H
#define MEA_NN_H

#include <stddef.h>
#include <stdint.h>

void mea_set_threads(int n);   /* OpenBLAS threads; n >= 1 */
/* openblas_get_config() and the core in use, e.g. "OpenBLAS 0.3.21
 * DYNAMIC_ARCH ... Haswell MAX_THREADS=64; core Haswell".  Static text. */
const char *mea_blas_info(void);
/* The instruction set of mea's own vector loops (conv.c): "avx512f" or
 * "avx2" where the CPU has it and the build made the clones, else
 * "baseline". */
const char *mea_simd_info(void);
/* on != 0: mea_gemm (and so every kernel built on it) uses a plain
 * triple loop instead of OpenBLAS, for tests and debugging.  Process-wide;
 * set it before any kernel runs. */
void mea_set_naive_gemm(int on);

/* C = alpha * op(A) op(B) + beta * C, row-major, through cblas_sgemm.
 * ta/tb: 0 plain, 1 transposed.  A is M x K (after op), B is K x N. */
void mea_gemm(int ta, int tb, int M, int N, int K, float alpha,
		const float *A, int lda, const float *B, int ldb,
		float beta, float *C, int ldc);
/* Inference: how many of n rows (or columns) of a product, each of
 * macs multiply-adds, to give one mea_gemm call so that OpenBLAS takes
 * it to its small-matrix kernel (nn.c says when); n for a single call. */
int mea_gemm_split(int n, size_t macs);

/* -------------------------------------------------------- convolution */

struct mea_conv_shape {
	int N, C, H, W;      /* input */
	int K, R, S;         /* output channels, kernel height, width */
	int stride, pad, groups;
	int P, Q;            /* output height, width (computed) */
	int inference;       /* 1: forward only, so a stride-1 convolution may
	                        take the row-shift lowering (conv.c), whose sums
	                        run in another order than training's im2col */
	int row_shift;       /* 1: training may take the row shift too, forward
	                        and backward (other bits than im2col's) */
};

/* Fill in P and Q and check the geometry (C and K divisible by groups,
 * kernel no larger than the padded input, all sizes positive).
 * Returns 0 or -1. */
int mea_conv_shape_init(struct mea_conv_shape *s);
/* Number of floats of scratch that forward/backward need (0 for a 1x1
 * stride-1 unpadded convolution, whose work may then be NULL). */
size_t mea_conv_workspace(const struct mea_conv_shape *s);
/* y[N][K][P][Q] = conv(x[N][C][H][W], w) + bias (bias may be NULL). */
void mea_conv2d_forward(const struct mea_conv_shape *s, const float *x,
		const float *w, const float *bias, float *y, float *work);
void mea_conv2d_backward(const struct mea_conv_shape *s, const float *x,
		const float *w, const float *dy, float *dx, float *dw, float *db,
		float *work);
/* mea_conv2d_backward, except that dx is written rather than added to
 * (whatever it held is ignored), so that a caller whose dx has no other
 * contribution yet need not zero it first; dw and db are still added to. */
void mea_conv2d_backward_set(const struct mea_conv_shape *s, const float *x,
		const float *w, const float *dy, float *dx, float *dw, float *db,
		float *work);
/* y = act(conv(x, w) + bias + res) in one pass over y: res (may be NULL)
 * is a tensor of y's shape that must not overlap y (a residual shortcut),
 * and relu != 0 applies min(max(v, 0), cap), cap <= 0 meaning no cap.
 * The same values as mea_conv2d_forward, mea_add_forward and
 * mea_relu_forward in turn. */
void mea_conv2d_forward_act(const struct mea_conv_shape *s, const float *x,
		const float *w, const float *bias, const float *res, int relu,
		float cap, float *y, float *work);

/*
 * MobileNetV2's inverted residual in inference, in one pass over bands of
 * output rows so that the expanded activations never leave the cache:
 * y = act3(project(act2(dw3x3(act1(expand(x) + b1)) + b2)) + b3 + res),
 * expand a 1x1 convolution C -> E, dw a 3x3 depthwise one (pad 1, stride
 * 1 or 2), project a 1x1 convolution E -> K.  The same values as the
 * three mea_conv2d_forward_act calls, up to rounding.
 */
struct mea_ir_shape {
	int N, C, H, W;      /* input */
	int E, K, stride;    /* expanded and output channels, dw stride */
	int in_cl, out_cl;   /* 1: x, or y and res, are channels-last
	                        ([pixel][channel], as in nhwc.c); 0: NCHW */
	int P, Q;            /* output height, width (computed) */
	int band;            /* output rows per pass (computed) */
};
struct mea_ir_weights {
	/* expand [C][E], depthwise [10][E] and project [E][K], as
	 * mea_pw_nhwc_weights and mea_dw3_nhwc_weights make them from
	 * [E][C], [E][3][3] and [K][E] (they run channels-last) */
	const float *w[3];
	const float *b[3];   /* their biases: E, E and K floats */
	int relu[3];         /* activations, as in mea_conv2d_forward_act */
	float cap[3];
};
/* Fill in P, Q and band and check the shape; 0 or -1. */
int mea_ir_shape_init(struct mea_ir_shape *s);
size_t mea_ir_workspace(const struct mea_ir_shape *s);   /* floats */
/* res: NULL or a tensor of y's shape (the block's shortcut). */
void mea_ir_forward(const struct mea_ir_shape *s, const struct mea_ir_weights *wt,
		const float *x, const float *res, float *y, float *work);


/*
 * Channels-last (NHWC) inference kernels (nhwc.c): an image is [H*W][C]
 * instead of [C][H*W].  For small planes, where NCHW rows are too short
 * for vectors; the same values as the NCHW kernels up to rounding.
 */
/* N images of C x HW floats from NCHW to NHWC and back; x != y. */
void mea_to_nhwc(int N, int C, int HW, const float *x, float *y);
void mea_to_nchw(int N, int C, int HW, const float *x, float *y);
/* A 1x1 convolution (stride 1, no padding, one group) over M pixels:
 * y[M][K] = act(x[M][C] w^T + b + res), its weights [K][C] transposed
 * to wt [C][K] by mea_pw_nhwc_weights first (the untransposed product
 * ran slower in OpenBLAS); b and res may be NULL, relu and cap as in
 * mea_conv2d_forward_act. */
void mea_pw_nhwc_weights(int K, int C, const float *w, float *wt);
/* Its GEMM alone over m pixels, y[m][K] = x wt: x is [m][C] with rows
 * ldx floats apart, or, when ta, [C][m] (NCHW, rows ldx apart). */
void mea_pw_nhwc_gemm(int ta, int m, int K, int C, const float *x, int ldx, const float *wt,
		float *y);
void mea_pw_nhwc_forward(int M, int C, int K, const float *x, const float *wt,
		const float *b, const float *res, int relu, float cap, float *y);
/* A 3x3 depthwise convolution, padding 1, stride 1 or 2, of N images
 * [H][W][C] into [P][Q][C]: its weights [C][3][3] made into wt, 10 * C
 * floats ([9][C] and C zeros), by mea_dw3_nhwc_weights first. */
void mea_dw3_nhwc_weights(int C, const float *w, float *wt);
void mea_dw3_nhwc_forward(int N, int C, int H, int W, int stride, const float *x,
		const float *wt, const float *b, const float *res, int relu, float cap,
		float *y);
/* The same for output rows [p0, p1) of one image, from its input rows
 * held at rows from row h0 on (every input row those outputs read that
 * is inside the image), into y as [p1 - p0][Q][C]; no residual. */
void mea_dw3_nhwc_rows(int C, int H, int W, int stride, const float *rows, int h0, int p0,
		int p1, const float *wt, const float *b, int relu, float cap, float *y);
/* y[m][k] = act(y[m][k] + b[k] + res[m][k]) over M rows of K (b and
 * res may be NULL), as conv.c's epilogue computes it. */
void mea_nhwc_epilogue(int M, int K, float *y, const float *b, const float *res, int relu,
		float cap);
/* y[k][i] = act(t[i][k] + b[k] + res[k][i]): M pixels' channels-last
 * results t [M][K] into NCHW rows of ldy floats (res: rows of ldr, or
 * NULL; b may be NULL), as conv.c's epilogue computes them. */
void mea_nhwc_to_nchw_act(int M, int K, const float *t, const float *b, const float *res,
		size_t ldr, int relu, float cap, float *y, size_t ldy);
/* Global average pooling of N images [HW][C] into [N][C]: the same
 * values as mea_gap_forward on their NCHW layout. */
void mea_gap_nhwc_forward(int N, int C, int HW, const float *x, float *y);
/* -------------------------------------------------- batch normalisation */

/* Inference: y = gamma * (x - mean) / sqrt(var + eps) + beta per channel. */
void mea_bn_forward_infer(int N, int C, int HW, const float *x,
		const float *gamma, const float *beta, const float *mean,
		const float *var, float eps, float *y);
/* Training: normalise with the batch statistics (biased variance), save
 * mean and 1/sqrt(var+eps) for backward, and update the running
 * statistics: run = (1-momentum)*run + momentum*batch (unbiased var). */
void mea_bn_forward_train(int N, int C, int HW, const float *x,
		const float *gamma, const float *beta, float eps, float momentum,
		float *y, float *save_mean, float *save_invstd,
		float *run_mean, float *run_var);
void mea_bn_backward(int N, int C, int HW, const float *x, const float *dy,
		const float *gamma, const float *save_mean,
		const float *save_invstd, float *dx, float *dgamma, float *dbeta);
/* The same followed by the activation: relu != 0 gives
 * y = min(max(bn(x), 0), cap), cap <= 0 meaning no cap, exactly as
 * mea_relu_forward on y would.  One pass over y less. */
void mea_bn_forward_train_act(int N, int C, int HW, const float *x,
		const float *gamma, const float *beta, float eps, float momentum,
		int relu, float cap, float *y, float *save_mean, float *save_invstd,
		float *run_mean, float *run_var);
/* Backward of mea_bn_forward_train_act: y is its output (after the
 * activation), dy the gradient there; the same as mea_relu_backward into
 * a zeroed buffer followed by mea_bn_backward from it, without the
 * buffer.  With relu == 0, y is not read (may be NULL).  set_dx != 0
 * writes dx instead of adding to it (as mea_conv2d_backward_set). */
void mea_bn_backward_act(int N, int C, int HW, const float *x, const float *y,
		const float *dy, int relu, float cap, const float *gamma,
		const float *save_mean, const float *save_invstd, float *dx,
		int set_dx, float *dgamma, float *dbeta);
/* Fold an inference BN into the preceding convolution: w is [K][per_k],
 * bias[K] is read and rewritten (pass zeros for a bias-free conv). */
void mea_bn_fold(int K, size_t per_k, float *w, float *bias,
		const float *gamma, const float *beta, const float *mean,
		const float *var, float eps);

/* ------------------------------------------------------ element-wise */

/* y = min(max(x, 0), cap); cap <= 0 means no cap (ReLU), 6 is ReLU6.
 * In-place (y == x) is allowed. */
void mea_relu_forward(size_t n, const float *x, float *y, float cap);
/* dx += dy where 0 < y < cap (y is the forward output). */
void mea_relu_backward(size_t n, const float *y, const float *dy, float *dx,
		float cap);
/* dx = dy where 0 < y < cap, else 0: mea_relu_backward into a buffer
 * whose old contents are ignored (see mea_conv2d_backward_set). */
void mea_relu_backward_set(size_t n, const float *y, const float *dy, float *dx,
		float cap);
void mea_add_forward(size_t n, const float *a, const float *b, float *y);
void mea_acc(size_t n, const float *src, float *dst); /* dst += src */

/* Channel concatenation: y[N][Ca+Cb][HW] from a[N][Ca][HW], b[N][Cb][HW]. */
void mea_concat_forward(int N, int HW, int Ca, const float *a, int Cb,
		const float *b, float *y);
void mea_concat_backward(int N, int HW, int Ca, int Cb, const float *dy,
		float *da, float *db);

/* ------------------------------------------------------------ pooling */

struct mea_pool_shape {
	int N, C, H, W;
	int R, S, stride, pad;
	int P, Q;            /* computed */
};
int mea_pool_shape_init(struct mea_pool_shape *s);
/* Max pooling; padding never wins.  argmax[N][C][P][Q] (may be NULL in
 * inference) records the input index within the plane for backward. */
void mea_maxpool_forward(const struct mea_pool_shape *s, const float *x,
		float *y, int32_t *argmax);
void mea_maxpool_backward(const struct mea_pool_shape *s, const int32_t *argmax,
		const float *dy, float *dx);
/* Average pooling over the window cells inside the input (padding not
 * counted). */
void mea_avgpool_forward(const struct mea_pool_shape *s, const float *x, float *y);
void mea_avgpool_backward(const struct mea_pool_shape *s, const float *dy, float *dx);
/* Global average pooling: y[N][C] = mean over HW. */
void mea_gap_forward(int N, int C, int HW, const float *x, float *y);
void mea_gap_backward(int N, int C, int HW, const float *dy, float *dx);

/* ---------------------------------------------------- fully connected */

/* y[N][out] = x[N][in] w^T + b (b may be NULL). */
void mea_fc_forward(int N, int in, int out, const float *x, const float *w,
		const float *b, float *y);
void mea_fc_backward(int N, int in, int out, const float *x, const float *w,
		const float *dy, float *dx, float *dw, float *db);

/* ------------------------------------------------ softmax and losses */

/* p[N][K] = softmax(x[N][K]), computed stably. */
void mea_softmax(int N, int K, const float *x, float *p);
/* Entropy in nats of one probability vector (0 log 0 = 0). */
float mea_entropy(int K, const float *p);
/* Mean cross-entropy of logits x[N][K] against labels[N] (0..K-1), the
 * one-hot target smoothed to (1 - smooth) onehot + smooth / K; when dx is
 * not NULL, dx += (softmax(x) - target) / N. */
float mea_xent(int N, int K, const float *x, const int32_t *labels, float smooth,
		float *dx);
/* Distillation (Hinton et al.): (1 - alpha) * mea_xent(...) + alpha * tau^2
 * * KL(softmax(t / tau) || softmax(x / tau)), t[N][K] a teacher's logits;
 * its gradient added into dx (may be NULL) as mea_xent does. */
float mea_distill(int N, int K, const float *x, const int32_t *labels, float smooth,
		const float *t, float alpha, float tau, float *dx);

/* ---------------------------------------------------------- optimiser */

/* SGD with momentum and L2 weight decay (PyTorch convention):
 *   g' = g + wd*w;  v = mom*v + g';  w -= lr * (nesterov ? g' + mom*v : v) */
void mea_sgd_step(size_t n, float *w, const float *g, float *v, float lr,
		float mom, float wd, int nesterov);

#endif
