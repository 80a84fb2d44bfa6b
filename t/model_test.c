/*
 * model_test: test tool for the model file, the graph engine and
 * mea-main (t/model.bats, t/main.bats).
 *
 *   model_test tiny FILE          write a small hand-built net with random
 *                                 weights and non-trivial bn statistics
 *   model_test forward FILE       load FILE (the tiny net) and compare the
 *                                 graph's logits with a plain-loop reference
 *                                 (unfolded bn) for a batch of random images
 *   model_test ext FILE           the extension from image + feat against a
 *                                 plan that runs everything from the image
 *   model_test roundtrip FILE     decode, encode, decode: same bytes and values
 *   model_test corrupt KIND IN OUT   break a model file in one way
 *   model_test info FILE          print the model's costs
 *   model_test extract FILE OUT   write the main block alone
 *   model_test grad [meanet]      finite-difference check of the training
 *                                 graph's gradients on a tiny ResNet (or the
 *                                 tiny MEANet's adaptive + extension blocks)
 *   model_test plan ARCH CxHxW K BATCH   print a plan's buffer bytes
 *   model_test lowering ARCH CxHxW K BATCH   an inference plan's logits
 *                                 against a plain one's (mea_plan_opts.plain:
 *                                 no row shifts, no fused blocks)
 *   model_test records N CxHxW SEED [f32]   random image records on stdout
 *   model_test cmp TENSOR A B TOL  compare a tensor record by record
 *   model_test same FILE T1 T2    exit 0 when tensors T1 and T2 of FILE hold
 *                                 the same values
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mea.h"
#include "model.h"

static void
fail(const char *fmt, const char *arg)
{
	fprintf(stderr, "model_test: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

static void
check(int rc, const struct mea_err *e)
{
	if (rc)
		fail("%s", e->msg);
}

static void
parse_shape(const char *s, int *c, int *h, int *w)
{
	if (sscanf(s, "%dx%dx%d", c, h, w) != 3)
		fail("bad shape %s", s);
}

/* ------------------------------------------------------------ tiny net */

/*
 * image 2x6x5 -> conv1 3x3 (4) + bn + relu
 *   -> block a: conv 3x3 + bn + relu, conv 3x3 + bn, + identity, relu
 *   -> block b: conv 3x3/2 (6) + bn + relu, conv 3x3 + bn,
 *               + (conv 1x1/2 + bn), relu
 *   -> gap -> fc (3 classes, bias)
 */
static int
nd(struct mea_model *m, const char *name, int op, int a, int b, int K, int R,
		int stride, int act)
{
	struct mea_node n = { .op = op, .ninputs = b >= 0 ? 2 : 1, .input = { a, b },
		.K = K, .R = R, .S = R, .stride = R ? stride : 0, .pad = R / 2,
		.groups = op == MEA_OP_CONV, .act = act, .bias = op == MEA_OP_FC };
	struct mea_err e;
	int idx;

	if (op == MEA_OP_BN) {
		n.eps = 1e-5f;
		n.momentum = 0.1f;
	}
	snprintf(n.name, sizeof n.name, "%s", name);
	check(mea_model_add_node(m, &n, &idx, &e), &e);
	return idx;
}

static struct mea_model *
tiny(int meanet)
{
	struct mea_model *m;
	struct mea_err e;
	struct mea_rng r;
	int x, y, s;

	check(mea_model_create(&m, 2, 6, 5, 3, &e), &e);
	x = nd(m, "conv1", MEA_OP_CONV, 0, -1, 4, 3, 1, 0);
	x = nd(m, "bn1", MEA_OP_BN, x, -1, 0, 0, 0, MEA_ACT_RELU);
	y = nd(m, "a.conv1", MEA_OP_CONV, x, -1, 4, 3, 1, 0);
	y = nd(m, "a.bn1", MEA_OP_BN, y, -1, 0, 0, 0, MEA_ACT_RELU);
	y = nd(m, "a.conv2", MEA_OP_CONV, y, -1, 4, 3, 1, 0);
	y = nd(m, "a.bn2", MEA_OP_BN, y, -1, 0, 0, 0, 0);
	x = nd(m, "a.add", MEA_OP_ADD, y, x, 0, 0, 0, MEA_ACT_RELU);
	y = nd(m, "b.conv1", MEA_OP_CONV, x, -1, 6, 3, 2, 0);
	y = nd(m, "b.bn1", MEA_OP_BN, y, -1, 0, 0, 0, MEA_ACT_RELU);
	y = nd(m, "b.conv2", MEA_OP_CONV, y, -1, 6, 3, 1, 0);
	y = nd(m, "b.bn2", MEA_OP_BN, y, -1, 0, 0, 0, 0);
	s = nd(m, "b.down", MEA_OP_CONV, x, -1, 6, 1, 2, 0);
	s = nd(m, "b.down.bn", MEA_OP_BN, s, -1, 0, 0, 0, 0);
	x = nd(m, "b.add", MEA_OP_ADD, y, s, 0, 0, 0, MEA_ACT_RELU);
	if (meanet) {
		/* A minimal MEANet: adaptive conv on the image, extension on the
		 * concatenation. */
		struct mea_node a = { .op = MEA_OP_CONV, .block = MEA_BLOCK_ADAPTIVE, .ninputs = 1,
			.input = { 0, -1 }, .K = 6, .R = 3, .S = 3, .stride = 2, .pad = 1, .groups = 1,
			.name = "adapt.conv" };
		struct mea_node c = { .op = MEA_OP_CONCAT, .block = MEA_BLOCK_EXT, .ninputs = 2,
			.name = "ext.concat" };
		struct mea_node g = { .op = MEA_OP_GAP, .block = MEA_BLOCK_EXT, .ninputs = 1,
			.input = { 0, -1 }, .name = "ext.pool" };
		struct mea_node f = { .op = MEA_OP_FC, .block = MEA_BLOCK_EXT, .ninputs = 1,
			.input = { 0, -1 }, .K = 2, .bias = 1, .name = "ext.fc" };
		int ia, ic, ig;
		m->node_feat = x;
		check(mea_model_add_node(m, &a, &ia, &e), &e);
		c.input[0] = x;
		c.input[1] = ia;
		check(mea_model_add_node(m, &c, &ic, &e), &e);
		g.input[0] = ic;
		check(mea_model_add_node(m, &g, &ig, &e), &e);
		f.input[0] = ig;
		check(mea_model_add_node(m, &f, &m->node_ext, &e), &e);
		check(mea_model_set_hard(m, 2, (const int32_t[]){ 2, 0 }, &e), &e);
	}
	x = nd(m, "pool", MEA_OP_GAP, x, -1, 0, 0, 0, 0);
	m->node_logits = nd(m, "fc", MEA_OP_FC, x, -1, 3, 0, 0, 0);
	check(mea_model_finish(m, &e), &e);
	mea_model_init(m, 7, MEA_BLOCKS_ALL);
	/* Non-trivial bn statistics, so folding is really exercised. */
	mea_rng_seed(&r, 11);
	for (int t = 0; t < m->ntensors; t++) {
		struct mea_weight *w = &m->tensor[t];
		if (m->node[w->node].op != MEA_OP_BN)
			continue;
		for (size_t k = 0; k < w->nelem; k++) {
			float u = mea_rng_uniform(&r);
			w->data[k] = strstr(w->name, "running_var") ? 0.2f + u :
				strstr(w->name, ".weight") ? 0.5f + u : u - 0.5f;
		}
	}
	m->mean[0] = 0.4f;
	m->mean[1] = 0.5f;
	m->std[0] = 0.3f;
	m->std[1] = 0.2f;
	check(mea_model_set_class_name(m, 0, "cat", &e), &e);
	check(mea_model_set_info(m, "arch", "tiny", &e), &e);
	return m;
}

/* ----------------------------------------------- plain-loop reference */

static const float *
T(const struct mea_model *m, const char *node, const char *what)
{
	char name[128];
	int t;
	snprintf(name, sizeof name, "%s.%s", node, what);
	if ((t = mea_model_find_tensor(m, name)) < 0)
		fail("no tensor %s", name);
	return m->tensor[t].data;
}

/* y[K][P][Q] from x[C][H][W], square kernel R, padding R/2. */
static void
ref_conv(const float *x, int C, int H, int W, const float *w, int K, int R, int stride,
		float *y, int *P, int *Q)
{
	int pad = R / 2;
	*P = (H + 2 * pad - R) / stride + 1;
	*Q = (W + 2 * pad - R) / stride + 1;
	for (int k = 0; k < K; k++)
		for (int p = 0; p < *P; p++)
			for (int q = 0; q < *Q; q++) {
				double s = 0;
				for (int c = 0; c < C; c++)
					for (int r = 0; r < R; r++)
						for (int u = 0; u < R; u++) {
							int h = p * stride - pad + r, v = q * stride - pad + u;
							if (h >= 0 && h < H && v >= 0 && v < W)
								s += (double)x[(c * H + h) * W + v] *
									w[((k * C + c) * R + r) * R + u];
						}
				y[(k * *P + p) * *Q + q] = (float)s;
			}
}

static void
ref_bn(const struct mea_model *m, const char *node, float *x, int C, int HW, int relu)
{
	const float *g = T(m, node, "weight"), *b = T(m, node, "bias");
	const float *mu = T(m, node, "running_mean"), *var = T(m, node, "running_var");
	for (int c = 0; c < C; c++)
		for (int i = 0; i < HW; i++) {
			float *v = &x[c * HW + i];
			*v = (float)(g[c] * (*v - mu[c]) / sqrt(var[c] + 1e-5) + b[c]);
			if (relu && *v < 0)
				*v = 0;
		}
}

static void
ref_forward(const struct mea_model *m, const float *img, float *logits)
{
	float x[6 * 6 * 5], y[6 * 6 * 5], z[6 * 6 * 5], s[6 * 6 * 5], g[6];
	int P, Q, P2, Q2;

	ref_conv(img, 2, 6, 5, T(m, "conv1", "weight"), 4, 3, 1, x, &P, &Q);
	ref_bn(m, "bn1", x, 4, P * Q, 1);
	ref_conv(x, 4, 6, 5, T(m, "a.conv1", "weight"), 4, 3, 1, y, &P, &Q);
	ref_bn(m, "a.bn1", y, 4, 30, 1);
	ref_conv(y, 4, 6, 5, T(m, "a.conv2", "weight"), 4, 3, 1, z, &P, &Q);
	ref_bn(m, "a.bn2", z, 4, 30, 0);
	for (int i = 0; i < 4 * 30; i++)
		x[i] = z[i] + x[i] > 0 ? z[i] + x[i] : 0;
	ref_conv(x, 4, 6, 5, T(m, "b.conv1", "weight"), 6, 3, 2, y, &P, &Q);
	ref_bn(m, "b.bn1", y, 6, P * Q, 1);
	ref_conv(y, 6, P, Q, T(m, "b.conv2", "weight"), 6, 3, 1, z, &P2, &Q2);
	ref_bn(m, "b.bn2", z, 6, P * Q, 0);
	ref_conv(x, 4, 6, 5, T(m, "b.down", "weight"), 6, 1, 2, s, &P2, &Q2);
	if (P2 != P || Q2 != Q)
		fail("%s", "reference shapes disagree");
	ref_bn(m, "b.down.bn", s, 6, P * Q, 0);
	for (int c = 0; c < 6; c++) {
		double sum = 0;
		for (int i = 0; i < P * Q; i++) {
			float v = z[c * P * Q + i] + s[c * P * Q + i];
			sum += v > 0 ? v : 0;
		}
		g[c] = (float)(sum / (P * Q));
	}
	for (int k = 0; k < 3; k++) {
		double sum = T(m, "fc", "bias")[k];
		for (int c = 0; c < 6; c++)
			sum += (double)T(m, "fc", "weight")[k * 6 + c] * g[c];
		logits[k] = (float)sum;
	}
}

static int
cmd_forward(const char *path)
{
	enum { N = 5 };
	struct mea_model *m;
	struct mea_plan *p;
	struct mea_err e;
	struct mea_rng r;
	struct mea_plan_opts o = { .batch = 8, .ninputs = 1, .noutputs = 1 };
	uint8_t pix[N][60];
	double worst = 0;

	check(mea_model_load(&m, path, &e), &e);
	o.output[0] = m->node_logits;
	check(mea_plan_new(&p, m, &o, &e), &e);
	mea_rng_seed(&r, 3);
	for (int n = 0; n < N; n++) {
		struct mea_tensor t = { .name = "image", .dtype = MEA_U8, .ndim = 3,
			.dim = { 2, 6, 5 }, .nelem = 60, .nbytes = 60, .data = pix[n] };
		for (int i = 0; i < 60; i++)
			pix[n][i] = (uint8_t)mea_rng_below(&r, 256);
		check(mea_model_input(m, &t, mea_plan_value(p, 0) + n * 60, &e), &e);
	}
	check(mea_plan_forward(p, N, &e), &e);
	for (int n = 0; n < N; n++) {
		float img[60], want[3];
		const float *got = mea_plan_value(p, m->node_logits) + n * 3;
		/* The reference normalises on its own too. */
		for (int c = 0; c < 2; c++)
			for (int i = 0; i < 30; i++)
				img[c * 30 + i] = (pix[n][c * 30 + i] / 255.0f - m->mean[c]) / m->std[c];
		ref_forward(m, img, want);
		for (int k = 0; k < 3; k++) {
			double d = fabs(got[k] - want[k]) / (1 + fabs(want[k]));
			if (d > worst)
				worst = d;
			if (n == 0)
				printf("logit %d: graph %.6f reference %.6f\n", k, got[k], want[k]);
		}
	}
	printf("max relative error %.3g\n", worst);
	mea_plan_free(p);
	mea_model_free(m);
	return worst < 1e-4 ? 0 : 1;
}

/*
 * The extension stage's plan: from the image and the feature map (as
 * mea-main wrote it) to the extension logits, without the main block,
 * must agree with one plan that runs everything from the image.
 */
static int
cmd_ext(const char *path)
{
	enum { N = 3 };
	struct mea_model *m;
	struct mea_plan *all, *ext;
	struct mea_err e;
	struct mea_rng r;
	struct mea_plan_opts oa = { .batch = N, .ninputs = 1, .noutputs = 3 };
	struct mea_plan_opts oe = { .batch = N, .ninputs = 2, .noutputs = 1 };
	size_t fsz, per;
	double worst = 0;

	check(mea_model_load(&m, path, &e), &e);
	if (m->node_ext < 0)
		fail("%s: no extension", path);
	per = (size_t)m->in_c * m->in_h * m->in_w;
	oa.output[0] = m->node_logits;
	oa.output[1] = m->node_feat;
	oa.output[2] = m->node_ext;
	oe.input[1] = m->node_feat;
	oe.output[0] = m->node_ext;
	check(mea_plan_new(&all, m, &oa, &e), &e);
	check(mea_plan_new(&ext, m, &oe, &e), &e);
	mea_rng_seed(&r, 4);
	for (size_t i = 0; i < N * per; i++)
		mea_plan_value(all, 0)[i] = mea_plan_value(ext, 0)[i] = mea_rng_normal(&r);
	check(mea_plan_forward(all, N, &e), &e);
	fsz = (size_t)m->node[m->node_feat].C * m->node[m->node_feat].H *
		m->node[m->node_feat].W;
	memcpy(mea_plan_value(ext, m->node_feat), mea_plan_value(all, m->node_feat),
			N * fsz * sizeof(float));
	check(mea_plan_forward(ext, N, &e), &e);
	for (int k = 0; k < N * m->nhard; k++) {
		double d = fabs(mea_plan_value(all, m->node_ext)[k] -
				mea_plan_value(ext, m->node_ext)[k]);
		if (d > worst)
			worst = d;
	}
	printf("extension logits from image + feat: max difference %.3g; "
			"plan bytes %zu (all) %zu (extension)\n", worst, mea_plan_bytes(all),
			mea_plan_bytes(ext));
	mea_plan_free(all);
	mea_plan_free(ext);
	mea_model_free(m);
	return worst < 1e-5 ? 0 : 1;
}

/*
 * The inference-only lowerings (row shifts, fused inverted residuals,
 * whole-batch classifiers) against the plain plan, which computes as
 * training does, on a random model and random images.
 */
static int
cmd_lowering(const char *arch, const char *shape, int k, int batch)
{
	struct mea_arch a = { .name = arch, .nclasses = k };
	struct mea_plan_opts o = { .batch = batch, .ninputs = 1, .noutputs = 1 };
	struct mea_plan *fast, *plain;
	struct mea_model *m;
	struct mea_err e;
	struct mea_rng r;
	int bad = 0;

	parse_shape(shape, &a.in_c, &a.in_h, &a.in_w);
	check(mea_arch_build(&m, &a, &e), &e);
	mea_model_init(m, 7, MEA_BLOCK_BIT(MEA_BLOCK_MAIN));
	o.output[0] = m->node_logits;
	/* The logits, and the first residual adds: the random logits of a deep
	 * net hardly depend on its early blocks. */
	for (int i = 0; i < m->nnodes && o.noutputs < 4; i++)
		if (m->node[i].op == MEA_OP_ADD)
			o.output[o.noutputs++] = i;
	check(mea_plan_new(&fast, m, &o, &e), &e);
	o.plain = 1;
	check(mea_plan_new(&plain, m, &o, &e), &e);
	mea_rng_seed(&r, 5);
	for (size_t i = 0; i < (size_t)batch * m->in_c * m->in_h * m->in_w; i++)
		mea_plan_value(fast, 0)[i] = mea_plan_value(plain, 0)[i] = mea_rng_normal(&r);
	check(mea_plan_forward(fast, batch, &e), &e);
	check(mea_plan_forward(plain, batch, &e), &e);
	printf("%s %s: %d steps, %d plain\n", arch, shape, mea_plan_nsteps(fast),
			mea_plan_nsteps(plain));
	for (int j = 0; j < o.noutputs; j++) {
		const struct mea_node *n = &m->node[o.output[j]];
		size_t len = (size_t)batch * n->C * n->H * n->W;
		double worst = 0, big = 0;
		for (size_t i = 0; i < len; i++) {
			double a1 = mea_plan_value(fast, o.output[j])[i];
			double b1 = mea_plan_value(plain, o.output[j])[i];
			worst = fmax(worst, fabs(a1 - b1));
			big = fmax(big, fabs(b1));
		}
		printf("  %-16s differs by %.3g at most (largest %.3g)\n", n->name, worst, big);
		bad |= !(big > 0 && worst <= 1e-5 * big);
	}
	mea_plan_free(fast);
	mea_plan_free(plain);
	mea_model_free(m);
	return bad;
}

/* ------------------------------------------------------- file surgery */

static unsigned char *
slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long len;

	if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
		fail("cannot read %s", path);
	if (!(buf = malloc((size_t)len + 1)) || fread(buf, 1, (size_t)len, f) != (size_t)len)
		fail("cannot read %s", path);
	fclose(f);
	*n = (size_t)len;
	return buf;
}

static void
spit(const char *path, const unsigned char *buf, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, n, f) != n || fclose(f))
		fail("cannot write %s", path);
}

static uint32_t
rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void
wr32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Offsets from mea-model(5), computed here independently of model.c. */
struct offsets { size_t nodes, tensors, data; };

static struct offsets
offsets_of(const unsigned char *p)
{
	struct offsets o;
	size_t C = rd32(p + 24), K = rd32(p + 36), nhard = rd32(p + 40), nnodes = rd32(p + 44);
	size_t ntensors = rd32(p + 48), ninfo = rd32(p + 52);

	o.nodes = 128 + 8 * C + 64 * K + 4 * nhard + 256 * ninfo;
	o.tensors = o.nodes + 128 * nnodes;
	o.data = o.tensors + 96 * ntensors;
	return o;
}

static int
node_by_name(const unsigned char *p, const char *name)
{
	struct offsets o = offsets_of(p);
	for (uint32_t i = 0; i < rd32(p + 44); i++)
		if (strcmp((const char *)p + o.nodes + 128 * i, name) == 0)
			return (int)i;
	fail("no node %s", name);
	return -1;
}

static int
cmd_corrupt(const char *kind, const char *in, const char *out)
{
	size_t n;
	unsigned char *p = slurp(in, &n);
	struct offsets o = offsets_of(p);
	int a = node_by_name(p, "a.conv1"), b = node_by_name(p, "a.bn1");
	unsigned char *na = p + o.nodes + 128 * (size_t)a;
	unsigned char *nb = p + o.nodes + 128 * (size_t)b;

	if (strcmp(kind, "magic") == 0) {
		p[0] = 'X';
	} else if (strcmp(kind, "version") == 0) {
		wr32(p + 8, 2);
	} else if (strcmp(kind, "shape") == 0) {
		/* conv1's weight is 4x2x3x3: swap the first two dims, keeping
		 * the size, so only the shape check can notice. */
		unsigned char *t = p + o.tensors + 96 * (size_t)rd32(p + o.nodes + 128 + 96);
		uint32_t d0 = rd32(t + 72), d1 = rd32(t + 76);
		wr32(t + 72, d1);
		wr32(t + 76, d0);
	} else if (strcmp(kind, "nan") == 0) {
		/* a.conv1's weight, its fifth value. */
		uint32_t t = rd32(na + 96);
		size_t off = 0;
		for (uint32_t u = 0; u < t; u++) {
			const unsigned char *q = p + o.tensors + 96 * (size_t)u;
			size_t ne = 1;
			for (uint32_t d = 0; d < rd32(q + 68); d++)
				ne *= rd32(q + 72 + 4 * d);
			off += ne;
		}
		wr32(p + o.data + 4 * (off + 4), 0x7fc00000u);
	} else if (strcmp(kind, "dangling") == 0) {
		wr32(nb + 52, 9999);
	} else if (strcmp(kind, "cycle") == 0) {
		wr32(na + 52, (uint32_t)b);   /* a.conv1 reads a.bn1, which reads a.conv1 */
	} else if (strcmp(kind, "count") == 0) {
		wr32(p + 44, 0x7fffffffu);
	} else if (strcmp(kind, "macs") == 0) {
		p[72] ^= 1;
	} else if (strcmp(kind, "block") == 0) {
		na[49] = MEA_BLOCK_EXT;
	} else {
		fail("unknown corruption %s", kind);
	}
	spit(out, p, n);
	free(p);
	return 0;
}

static int
cmd_roundtrip(const char *path)
{
	size_t n, n2;
	unsigned char *p = slurp(path, &n), *q;
	struct mea_model *m;
	struct mea_err e;

	check(mea_model_decode(&m, p, n, path, &e), &e);
	check(mea_model_encode(m, &q, &n2, &e), &e);
	if (n != n2 || memcmp(p, q, n) != 0)
		fail("%s: re-encoding differs", path);
	printf("%zu bytes, %d nodes, %d tensors: identical\n", n, m->nnodes, m->ntensors);
	mea_model_free(m);
	free(p);
	free(q);
	return 0;
}

/* ------------------------------------------------------- gradients */

/*
 * The training graph's gradients against central differences of its own
 * loss, for every parameter value of a tiny ResNet (bn on batch
 * statistics, so every value of the batch moves the loss).  Doubles are
 * not available in the kernels, so the step is large (1e-2) and the
 * tolerance loose; relu kinks make a few values disagree, which are
 * counted rather than failed.
 */
static float
loss_of(struct mea_plan *p, int out, const float *x, int N, const int32_t *y)
{
	struct mea_err e;
	memcpy(mea_plan_value(p, 0), x, (size_t)N * 60 * sizeof *x);
	check(mea_plan_forward(p, N, &e), &e);
	mea_plan_zero_grad(p);
	return mea_plan_xent(p, out, y, 0);
}

/* meanet: train the adaptive and extension blocks of the tiny MEANet with
 * the main block frozen, as MEANet's second phase does. */
static int
cmd_grad(int meanet)
{
	enum { N = 4 };
	struct mea_model *m = tiny(meanet);
	struct mea_plan *p;
	struct mea_plan_opts o = { .batch = N, .ninputs = 1, .noutputs = 1,
		.train_mask = meanet ? MEA_BLOCK_BIT(MEA_BLOCK_ADAPTIVE) |
			MEA_BLOCK_BIT(MEA_BLOCK_EXT) : MEA_BLOCKS_ALL };
	struct mea_err e;
	struct mea_rng r;
	float x[N * 60];
	int32_t y[N] = { 0, 1, meanet ? 0 : 2, 1 };
	float *all;
	int checked = 0, bad = 0, out = meanet ? m->node_ext : m->node_logits;
	double worst = 0;

	o.output[0] = out;
	check(mea_plan_new(&p, m, &o, &e), &e);
	mea_rng_seed(&r, 5);
	for (int i = 0; i < N * 60; i++)
		x[i] = mea_rng_normal(&r);
	loss_of(p, out, x, N, y);
	check(mea_plan_backward(p, &e), &e);
	/* Keep the analytic gradients: every later forward zeroes them. */
	if (!(all = malloc(m->arena_nelem * sizeof *all)))
		fail("%s", "out of memory");
	for (int t = 0; t < m->ntensors; t++) {
		struct mea_weight *w = &m->tensor[t];
		float *g = mea_plan_param_grad(p, t);
		int trained = (o.train_mask & MEA_BLOCK_BIT(m->node[w->node].block)) != 0;
		if (w->kind != MEA_TK_PARAM)
			continue;
		if (!g != !trained)
			fail(trained ? "no gradient for %s" : "a gradient for frozen %s", w->name);
		if (!trained)
			continue;
		memcpy(all + (w->data - m->arena), g, w->nelem * sizeof *all);
	}
	for (int t = 0; t < m->ntensors; t++) {
		struct mea_weight *w = &m->tensor[t];
		const float *saved = all + (w->data - m->arena);
		int tbad = 0;
		if (w->kind != MEA_TK_PARAM ||
				!(o.train_mask & MEA_BLOCK_BIT(m->node[w->node].block)))
			continue;
		for (size_t k = 0; k < w->nelem; k++) {
			float v = w->data[k], h = getenv("GRAD_H") ? (float)atof(getenv("GRAD_H")) : 1e-3f, lp, lm;
			double num, d;
			w->data[k] = v + h;
			lp = loss_of(p, out, x, N, y);
			w->data[k] = v - h;
			lm = loss_of(p, out, x, N, y);
			w->data[k] = v;
			num = ((double)lp - lm) / (2 * h);
			/* Relative, with a floor for float noise in the loss. */
			d = fabs(num - saved[k]) / (2e-2 + fabs(num) + fabs(saved[k]));
			checked++;
			if (d > 5e-2 && getenv("GRAD_DEBUG") && tbad < 3)
				fprintf(stderr, "  %s[%zu]: numeric %g analytic %g\n", w->name, k, num,
						saved[k]);
			if (d > 5e-2)
				bad++, tbad++;
			else if (d > worst)
				worst = d;
		}
		if (getenv("GRAD_DEBUG"))
			fprintf(stderr, "%s: %d of %zu disagree\n", w->name, tbad, w->nelem);
	}
	free(all);
	printf("%d parameter values checked, %d disagree, worst agreeing relative "
			"error %.3g\n", checked, bad, worst);
	mea_plan_free(p);
	mea_model_free(m);
	return bad * 33 <= checked ? 0 : 1;   /* at most 3%, at relu kinks */
}

/* ------------------------------------------------------------ records */

static int
cmd_records(int n, const char *shape, unsigned seed, int f32)
{
	struct mea_writer w;
	struct mea_record rec;
	struct mea_err e;
	struct mea_rng r;
	int C, H, W;

	parse_shape(shape, &C, &H, &W);
	mea_rng_seed(&r, seed);
	mea_writer_init(&w, 1, "stdout");
	mea_record_init(&rec);
	for (int i = 0; i < n; i++) {
		uint32_t dim[3] = { (uint32_t)C, (uint32_t)H, (uint32_t)W }, two = 2;
		char id[32];
		struct mea_tensor *t;
		snprintf(id, sizeof id, "img%03d", i);
		mea_field_set_str(&rec, "id", id);
		mea_field_set_int(&rec, "seq", i);
		mea_field_set_int(&rec, "label", i % 10);
		mea_field_set_str(&rec, "note", "keep me");
		/* A tensor before the image, to see that order is kept. */
		if (!(t = mea_tensor_add(&rec, "extra", MEA_I32, 1, &two, &e)))
			fail("%s", e.msg);
		((int32_t *)t->data)[0] = i;
		((int32_t *)t->data)[1] = -i;
		/* Every fourth record carries no image. */
		if (i % 4 != 3) {
			if (!(t = mea_tensor_add(&rec, "image", f32 ? MEA_F32 : MEA_U8, 3, dim, &e)))
				fail("%s", e.msg);
			for (size_t k = 0; k < t->nelem; k++) {
				uint32_t v = mea_rng_below(&r, 256);
				if (f32)
					((float *)t->data)[k] = (float)v / 255.0f;
				else
					((uint8_t *)t->data)[k] = (uint8_t)v;
			}
		}
		mea_field_set_float(&rec, "after", 0.25 * i);
		if (mea_write(&w, &rec, &e))
			fail("%s", e.msg);
		mea_record_clear(&rec);
	}
	mea_writer_free(&w);
	return 0;
}

static int
cmd_cmp(const char *name, const char *a, const char *b, double tol)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	struct mea_reader ra, rb;
	struct mea_record x, y;
	struct mea_err e;
	double worst = 0;
	int n = 0, rc;

	if (!fa || !fb)
		fail("cannot open %s", a);
	mea_reader_init(&ra, fileno(fa), a);
	mea_reader_init(&rb, fileno(fb), b);
	mea_record_init(&x);
	mea_record_init(&y);
	while ((rc = mea_read(&ra, &x, &e)) == 0) {
		const struct mea_tensor *s, *t;
		if (mea_read(&rb, &y, &e) != 0)
			fail("%s: fewer records", b);
		s = mea_tensor_get(&x, name);
		t = mea_tensor_get(&y, name);
		if (!s != !t || (s && (s->nelem != t->nelem || s->dtype != MEA_F32)))
			fail("record shapes differ for %s", name);
		for (size_t k = 0; s && k < s->nelem; k++) {
			double d = fabs(((float *)s->data)[k] - ((float *)t->data)[k]);
			if (d > worst)
				worst = d;
		}
		n += s != NULL;
	}
	if (rc != MEA_EOF)
		fail("%s", e.msg);
	if (mea_read(&rb, &y, &e) != MEA_EOF)
		fail("%s: more records", b);
	printf("%d records with %s, max difference %.3g\n", n, name, worst);
	mea_record_clear(&x);
	mea_record_clear(&y);
	mea_reader_free(&ra);
	mea_reader_free(&rb);
	fclose(fa);
	fclose(fb);
	return worst <= tol ? 0 : 1;
}

/* Feature dropout (mea_plan_set_drop) in the extension's training plan of
 * the tiny MEANet: at the concatenation, the main block's channels are
 * each zeroed or doubled (prob 0.5) and the adaptive block's left alone;
 * an image's mask does not depend on which plan (worker) holds it; prob 0
 * changes nothing.  (All-zero channels, after a ReLU, count as neither.) */
static int
cmd_drop(void)
{
	enum { N = 8 };
	struct mea_model *m = tiny(1);
	struct mea_plan *whole, *half;
	struct mea_plan_opts o = { .batch = N, .ninputs = 1, .noutputs = 1,
		.train_mask = MEA_BLOCK_BIT(MEA_BLOCK_ADAPTIVE) | MEA_BLOCK_BIT(MEA_BLOCK_EXT) };
	struct mea_err e;
	struct mea_rng r;
	const struct mea_node *cn = NULL;
	int cat = -1, Cm, zeroed = 0, doubled = 0, bad = 0;
	size_t per = (size_t)m->in_c * m->in_h * m->in_w, hw, len;
	float *x = malloc(N * per * sizeof *x), *ref, *got;

	for (int i = 0; i < m->nnodes; i++)
		if (m->node[i].op == MEA_OP_CONCAT)
			cat = i;
	cn = &m->node[cat];
	Cm = m->node[cn->input[0]].C;
	hw = (size_t)cn->H * cn->W;
	len = (size_t)cn->C * hw;
	o.output[0] = m->node_ext;
	check(mea_plan_new(&whole, m, &o, &e), &e);
	o.batch = N / 2;
	check(mea_plan_new(&half, m, &o, &e), &e);
	mea_rng_seed(&r, 5);
	for (size_t i = 0; i < N * per; i++)
		x[i] = mea_rng_normal(&r);
	ref = malloc(N * len * sizeof *ref);
	got = malloc(N * len * sizeof *got);
	if (!x || !ref || !got)
		fail("%s", "out of memory");
	/* Without dropout: the reference values. */
	memcpy(mea_plan_value(whole, 0), x, N * per * sizeof *x);
	check(mea_plan_forward(whole, N, &e), &e);
	memcpy(ref, mea_plan_value(whole, cat), N * len * sizeof *ref);
	mea_plan_set_drop(whole, 0, 100, 0);
	check(mea_plan_forward(whole, N, &e), &e);
	bad += memcmp(ref, mea_plan_value(whole, cat), N * len * sizeof *ref) != 0;
	/* With it, on the whole batch, then in two halves. */
	mea_plan_set_drop(whole, 0.5f, 100, 0);
	check(mea_plan_forward(whole, N, &e), &e);
	memcpy(got, mea_plan_value(whole, cat), N * len * sizeof *got);
	for (int h = 0; h < 2; h++) {
		memcpy(mea_plan_value(half, 0), x + h * (N / 2) * per, N / 2 * per * sizeof *x);
		mea_plan_set_drop(half, 0.5f, 100, h * (N / 2));
		check(mea_plan_forward(half, N / 2, &e), &e);
		/* The main block's channels only (the adaptive block's bn uses
		 * the statistics of the images of its plan), and up to rounding:
		 * a GEMM over fewer images may round differently. */
		for (int i = 0; i < N / 2; i++)
			for (int c = 0; c < Cm; c++) {
				const float *a = got + (h * (N / 2) + i) * len + c * hw;
				const float *b = mea_plan_value(half, cat) + i * len + c * hw;
				for (size_t j = 0; j < hw; j++)
					bad += (a[j] == 0) != (b[j] == 0) || fabsf(a[j] - b[j]) > 1e-4f;
			}
	}
	for (int i = 0; i < N; i++)
		for (int c = 0; c < cn->C; c++) {
			const float *a = ref + i * len + c * hw, *b = got + i * len + c * hw;
			int z = 1, d = 1, same = 1;
			for (size_t j = 0; j < hw; j++) {
				z &= b[j] == 0;
				d &= b[j] == 2 * a[j];
				same &= b[j] == a[j];
			}
			if (c >= Cm)
				bad += !same;
			else {
				zeroed += z && !d;
				doubled += d && !z;
				bad += !z && !d;
			}
		}
	printf("main channels zeroed %d, doubled %d of %d; %d faults\n", zeroed, doubled,
			N * Cm, bad);
	mea_plan_free(whole);
	mea_plan_free(half);
	mea_model_free(m);
	free(x);
	free(ref);
	free(got);
	/* About half of the 48 dropped: 16..32 is 3 sigma. */
	return bad || zeroed < 16 || zeroed > 32;
}

/* --------------------------------------------------------------- main */

int
main(int argc, char **argv)
{
	struct mea_model *m;
	struct mea_err e;
	const char *cmd = argc > 1 ? argv[1] : "";

	if (strcmp(cmd, "tiny") == 0 && argc >= 3) {
		m = tiny(argc > 3 && strcmp(argv[3], "meanet") == 0);
		check(mea_model_save(m, argv[2], &e), &e);
		mea_model_free(m);
		return 0;
	}
	if (strcmp(cmd, "forward") == 0 && argc == 3)
		return cmd_forward(argv[2]);
	if (strcmp(cmd, "ext") == 0 && argc == 3)
		return cmd_ext(argv[2]);
	if (strcmp(cmd, "roundtrip") == 0 && argc == 3)
		return cmd_roundtrip(argv[2]);
	if (strcmp(cmd, "corrupt") == 0 && argc == 5)
		return cmd_corrupt(argv[2], argv[3], argv[4]);
	if (strcmp(cmd, "info") == 0 && argc == 3) {
		check(mea_model_load(&m, argv[2], &e), &e);
		mea_model_print(stdout, m, 0);
		mea_model_free(m);
		return 0;
	}
	if (strcmp(cmd, "extract") == 0 && argc == 4) {
		struct mea_model *x;
		check(mea_model_load(&m, argv[2], &e), &e);
		check(mea_model_extract(&x, m, MEA_BLOCK_BIT(MEA_BLOCK_MAIN), &e), &e);
		check(mea_model_save(x, argv[3], &e), &e);
		mea_model_free(x);
		mea_model_free(m);
		return 0;
	}
	if (strcmp(cmd, "drop") == 0)
		return cmd_drop();
	if (strcmp(cmd, "grad") == 0)
		return cmd_grad(argc > 2 && strcmp(argv[2], "meanet") == 0);
	if (strcmp(cmd, "plan") == 0 && argc == 6) {
		struct mea_arch a = { .name = argv[2], .nclasses = atoi(argv[4]) };
		struct mea_plan_opts o = { .batch = atoi(argv[5]), .ninputs = 1, .noutputs = 1 };
		struct mea_plan *p;
		parse_shape(argv[3], &a.in_c, &a.in_h, &a.in_w);
		check(mea_arch_build(&m, &a, &e), &e);
		o.output[0] = m->node_logits;
		check(mea_plan_new(&p, m, &o, &e), &e);
		printf("%zu\n", mea_plan_bytes(p));
		mea_plan_free(p);
		mea_model_free(m);
		return 0;
	}
	if (strcmp(cmd, "lowering") == 0 && argc == 6)
		return cmd_lowering(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	if (strcmp(cmd, "records") == 0 && argc >= 5)
		return cmd_records(atoi(argv[2]), argv[3], (unsigned)atoi(argv[4]),
				argc > 5 && strcmp(argv[5], "f32") == 0);
	if (strcmp(cmd, "cmp") == 0 && argc == 6)
		return cmd_cmp(argv[2], argv[3], argv[4], atof(argv[5]));
	if (strcmp(cmd, "same") == 0 && argc == 5) {
		check(mea_model_load(&m, argv[2], &e), &e);
		int a = mea_model_find_tensor(m, argv[3]), b = mea_model_find_tensor(m, argv[4]);
		if (a < 0 || b < 0)
			fail("no tensor %s", a < 0 ? argv[3] : argv[4]);
		int same = m->tensor[a].nelem == m->tensor[b].nelem &&
			memcmp(m->tensor[a].data, m->tensor[b].data,
				m->tensor[a].nelem * sizeof(float)) == 0;
		printf("%s and %s: %s\n", argv[3], argv[4], same ? "the same" : "differ");
		mea_model_free(m);
		return !same;
	}
	fprintf(stderr, "usage: model_test tiny|forward|ext|roundtrip|corrupt|info|extract|grad|"
			"plan|lowering|records|cmp|same|drop ...\n");
	return 2;
}
