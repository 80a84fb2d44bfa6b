/*
 * arch.c: the named architectures, built node by node through the model
 * builder, and their random initialisation.
 *
 *   resnetD (D = 6n+2: 8, 14, 20, ... 110)  CIFAR ResNet: conv3x3 + three
 *       stages of n BasicBlocks at 16/32/64 channels (strides 1/2/2).
 *   resnet18, resnet34   ImageNet ResNet: conv7x7/2 + maxpool/2 + four
 *       stages of BasicBlocks at 64..512 channels.
 *   mobilenetv2          inverted residuals as in Sandler et al., feature
 *       map after the last one (320 channels), then 1x1 conv to 1280.
 *
 * Channel counts scale with the width multiplier.  With meanet set, the
 * adaptive and extension blocks of MEANet are added (MEANET.md): the
 * adaptive block repeats the main block's downsampling on the raw image
 * in a few cheap layers, so its output has the main feature map's size;
 * the extension concatenates the two and classifies the hard classes.
 * Every BasicBlock shortcut that changes shape is a 1x1 convolution + bn.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mea.h"
#include "model.h"

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

/* The builder's state: the first error sticks and later calls do nothing,
 * so the layouts below read as straight-line code. */
struct build {
	struct mea_model *m;
	struct mea_err *e;
	int rc;
	int block;
	const char *prefix;    /* "", "adapt.", "ext." */
};

static int
add(struct build *b, struct mea_node *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
add(struct build *b, struct mea_node *n, const char *fmt, ...)
{
	char name[128];
	va_list ap;
	int idx = -1, len;

	if (b->rc)
		return -1;
	len = snprintf(name, sizeof name, "%s", b->prefix);
	va_start(ap, fmt);
	vsnprintf(name + len, sizeof name - (size_t)len, fmt, ap);
	va_end(ap);
	if (strlen(name) > MEA_MODEL_NODE_NAME) {
		b->rc = mea_errf(b->e, MEA_E_ARG, "node name %s is too long", name);
		return -1;
	}
	strcpy(n->name, name);
	n->block = b->block;
	b->rc = mea_model_add_node(b->m, n, &idx, b->e);
	return b->rc ? -1 : idx;
}

/* conv (no bias) + bn, the activation after the bn. */
static int
conv_bn(struct build *b, const char *name, int in, int K, int R, int stride, int groups,
		int act)
{
	struct mea_node c = { .op = MEA_OP_CONV, .ninputs = 1, .input = { in, -1 }, .K = K,
		.R = R, .S = R, .stride = stride, .pad = R / 2, .groups = groups };
	struct mea_node n = { .op = MEA_OP_BN, .ninputs = 1, .act = act, .eps = BN_EPS,
		.momentum = BN_MOMENTUM };
	int ic = add(b, &c, "%s", name);

	n.input[0] = ic;
	n.input[1] = -1;
	return add(b, &n, "%s.bn", name);
}

static int
op2(struct build *b, int op, const char *name, int x, int y, int act)
{
	struct mea_node n = { .op = op, .ninputs = 2, .input = { x, y }, .act = act };
	return add(b, &n, "%s", name);
}

static int
op1(struct build *b, int op, const char *name, int x, int K, int R, int stride, int pad)
{
	struct mea_node n = { .op = op, .ninputs = 1, .input = { x, -1 }, .K = K, .R = R,
		.S = R, .stride = stride, .pad = pad, .bias = op == MEA_OP_FC };
	return add(b, &n, "%s", name);
}

static int
channels_of(const struct build *b, int node)
{
	return b->rc ? 1 : b->m->node[node].C;
}

/* conv3x3-bn-relu-conv3x3-bn, plus the shortcut, then relu. */
static int
basic_block(struct build *b, const char *name, int x, int cout, int stride)
{
	char s[64];
	int cin = channels_of(b, x), y, sc = x;

	snprintf(s, sizeof s, "%s.conv1", name);
	y = conv_bn(b, s, x, cout, 3, stride, 1, MEA_ACT_RELU);
	snprintf(s, sizeof s, "%s.conv2", name);
	y = conv_bn(b, s, y, cout, 3, 1, 1, MEA_ACT_NONE);
	if (stride != 1 || cin != cout) {
		snprintf(s, sizeof s, "%s.down", name);
		sc = conv_bn(b, s, x, cout, 1, stride, 1, MEA_ACT_NONE);
	}
	snprintf(s, sizeof s, "%s.add", name);
	return op2(b, MEA_OP_ADD, s, y, sc, MEA_ACT_RELU);
}

/* MobileNetV2's inverted residual: 1x1 expand (skipped when t = 1),
 * 3x3 depthwise, linear 1x1 projection, identity shortcut when the shape
 * allows. */
static int
inverted_residual(struct build *b, const char *name, int x, int cout, int stride, int t)
{
	char s[64];
	int cin = channels_of(b, x), hidden = cin * t, y = x;

	if (t != 1) {
		snprintf(s, sizeof s, "%s.expand", name);
		y = conv_bn(b, s, y, hidden, 1, 1, 1, MEA_ACT_RELU6);
	}
	snprintf(s, sizeof s, "%s.dw", name);
	y = conv_bn(b, s, y, hidden, 3, stride, hidden, MEA_ACT_RELU6);
	snprintf(s, sizeof s, "%s.project", name);
	y = conv_bn(b, s, y, cout, 1, 1, 1, MEA_ACT_NONE);
	if (stride == 1 && cin == cout) {
		snprintf(s, sizeof s, "%s.add", name);
		y = op2(b, MEA_OP_ADD, s, x, y, MEA_ACT_NONE);
	}
	return y;
}

static int
head(struct build *b, int x, int nout)
{
	int g = op1(b, MEA_OP_GAP, "pool", x, 0, 0, 0, 0);
	return op1(b, MEA_OP_FC, "fc", g, nout, 0, 0, 0);
}

/* ------------------------------------------------------------ families */

static int
scaled(int c, float width)
{
	int v = (int)lroundf((float)c * width);
	return v < 1 ? 1 : v;
}

/* MobileNetV2's rounding of channel counts to multiples of 8, never more
 * than 10% below the unrounded value. */
static int
divisible8(float v)
{
	int r = (int)(v + 4) / 8 * 8;
	if (r < 8)
		r = 8;
	if (r < 0.9f * v)
		r += 8;
	return r;
}

/* The trunks build the main block's layout with n (or layers[st])
 * BasicBlocks per stage, the adaptive block's with adepth per stage. */
static int
cifar_trunk(struct build *b, int n, float width, int adepth)
{
	static const int ch[3] = { 16, 32, 64 };
	char s[32];
	int x = conv_bn(b, "conv1", 0, scaled(16, width), 3, 1, 1, MEA_ACT_RELU);

	for (int st = 0; st < 3; st++)
		for (int j = 0; j < (adepth ? adepth : n); j++) {
			snprintf(s, sizeof s, "layer%d.%d", st + 1, j);
			x = basic_block(b, s, x, scaled(ch[st], width), st > 0 && j == 0 ? 2 : 1);
		}
	return x;
}

static int
imagenet_trunk(struct build *b, const int *layers, float width, int adepth)
{
	static const int ch[4] = { 64, 128, 256, 512 };
	char s[32];
	int x = conv_bn(b, "conv1", 0, scaled(64, width), 7, 2, 1, MEA_ACT_RELU);

	x = op1(b, MEA_OP_MAXPOOL, "maxpool", x, 0, 3, 2, 1);
	for (int st = 0; st < 4; st++)
		for (int j = 0; j < (adepth && adepth < layers[st] ? adepth : layers[st]); j++) {
			snprintf(s, sizeof s, "layer%d.%d", st + 1, j);
			x = basic_block(b, s, x, scaled(ch[st], width), st > 0 && j == 0 ? 2 : 1);
		}
	return x;
}

static const int mbv2_setting[7][4] = {   /* t, c, n, s */
	{ 1, 16, 1, 1 }, { 6, 24, 2, 2 }, { 6, 32, 3, 2 }, { 6, 64, 4, 2 },
	{ 6, 96, 3, 1 }, { 6, 160, 3, 2 }, { 6, 320, 1, 1 },
};

static int
mobilenet_trunk(struct build *b, float width, int adaptive)
{
	char s[32];
	int x = conv_bn(b, "stem", 0, divisible8(32 * width), 3, 2, 1, MEA_ACT_RELU6), k = 0;

	for (int g = 0; g < 7; g++)
		for (int j = 0; j < mbv2_setting[g][2]; j++) {
			snprintf(s, sizeof s, "ir%d", ++k);
			x = inverted_residual(b, s, x, divisible8(mbv2_setting[g][1] * width),
					j == 0 ? mbv2_setting[g][3] : 1, adaptive ? 1 : mbv2_setting[g][0]);
		}
	return x;
}

static int
mobilenet_last(float width)
{
	return divisible8(1280 * (width > 1 ? width : 1));
}

enum family { CIFAR, IMAGENET, MOBILENET };

static int
parse_arch(const char *name, enum family *f, int *n, const int **layers)
{
	static const int r18[4] = { 2, 2, 2, 2 }, r34[4] = { 3, 4, 6, 3 };
	char *end;
	long d;

	if (strcmp(name, "mobilenetv2") == 0) {
		*f = MOBILENET;
		return 0;
	}
	if (strcmp(name, "resnet18") == 0 || strcmp(name, "resnet34") == 0) {
		*f = IMAGENET;
		*layers = name[6] == '1' ? r18 : r34;
		return 0;
	}
	if (strncmp(name, "resnet", 6) != 0 || !name[6])
		return -1;
	d = strtol(name + 6, &end, 10);
	if (*end || d < 8 || d > 110 || (d - 2) % 6 || name[6] == '0')
		return -1;
	*f = CIFAR;
	*n = (int)(d - 2) / 6;
	return 0;
}

/* The most BasicBlocks a stage of the main block has: the adaptive block's
 * limit (MobileNetV2's adaptive block has its fixed layout). */
static int
deepest_stage(enum family f, int n, const int *layers)
{
	int most = f == CIFAR ? n : 1;

	for (int st = 0; f == IMAGENET && st < 4; st++)
		most = layers[st] > most ? layers[st] : most;
	return most;
}

const char *
mea_arch_list(void)
{
	return "resnet8, resnet14, resnet20, ... resnet110 (6n+2, CIFAR), resnet18, "
		"resnet34 (ImageNet), mobilenetv2";
}

int
mea_arch_build(struct mea_model **mp, const struct mea_arch *a, struct mea_err *e)
{
	struct build b = { .e = e };
	const int *layers = NULL;
	enum family f;
	float width = a->width > 0 ? a->width : 1;
	int n = 0, x, nhard, adepth, feat;
	char buf[32];

	*mp = NULL;
	if (!a->name || parse_arch(a->name, &f, &n, &layers) != 0)
		return mea_errf(e, MEA_E_ARG, "unknown architecture '%s' (known: %s)",
				a->name ? a->name : "", mea_arch_list());
	if (!(width <= 64))
		return mea_errf(e, MEA_E_ARG, "width %g is not in (0, 64]", width);
	nhard = a->nhard > 0 ? a->nhard : a->nclasses / 2;
	adepth = a->adepth > 0 ? a->adepth : 1;
	if (a->meanet && adepth > deepest_stage(f, n, layers))
		return mea_errf(e, MEA_E_ARG, "an adaptive block of %d BasicBlocks a stage: "
				"%s allows %d", adepth, a->name, deepest_stage(f, n, layers));
	if (a->meanet && (nhard < 1 || nhard > a->nclasses))
		return mea_errf(e, MEA_E_ARG, "%d hard classes of %d: MEANet needs 1 to %d",
				nhard, a->nclasses, a->nclasses);
	if ((b.rc = mea_model_create(&b.m, a->in_c, a->in_h, a->in_w, a->nclasses, e)))
		return b.rc;

	b.block = MEA_BLOCK_MAIN;
	b.prefix = "";
	x = f == CIFAR ? cifar_trunk(&b, n, width, 0) :
		f == IMAGENET ? imagenet_trunk(&b, layers, width, 0) :
		mobilenet_trunk(&b, width, 0);
	feat = x;
	if (f == MOBILENET)
		x = conv_bn(&b, "head", x, mobilenet_last(width), 1, 1, 1, MEA_ACT_RELU6);
	b.m->node_logits = head(&b, x, a->nclasses);

	if (a->meanet && !b.rc) {
		b.m->node_feat = feat;
		b.block = MEA_BLOCK_ADAPTIVE;
		b.prefix = "adapt.";
		x = f == CIFAR ? cifar_trunk(&b, n, width, adepth) :
			f == IMAGENET ? imagenet_trunk(&b, layers, width, adepth) :
			mobilenet_trunk(&b, width, 1);
		b.block = MEA_BLOCK_EXT;
		b.prefix = "ext.";
		x = op2(&b, MEA_OP_CONCAT, "concat", feat, x, MEA_ACT_NONE);
		if (f == MOBILENET) {
			int c = channels_of(&b, feat);
			x = inverted_residual(&b, "ir1", x, c, 1, 1);
			x = inverted_residual(&b, "ir2", x, c, 1, 3);
			x = conv_bn(&b, "head", x, mobilenet_last(width), 1, 1, 1, MEA_ACT_RELU6);
		} else {
			int c = channels_of(&b, feat);
			for (int j = 0; j < 4; j++) {
				snprintf(buf, sizeof buf, "layer1.%d", j);
				x = basic_block(&b, buf, x, c, 1);
			}
		}
		b.m->node_ext = head(&b, x, nhard);
		if (!b.rc)
			b.rc = mea_model_set_hard(b.m, nhard, NULL, e);
	}
	if (!b.rc)
		b.rc = mea_model_set_info(b.m, "arch", a->name, e);
	snprintf(buf, sizeof buf, "%g", width);
	if (!b.rc)
		b.rc = mea_model_set_info(b.m, "width", buf, e);
	if (!b.rc)
		b.rc = mea_model_finish(b.m, e);
	if (b.rc) {
		mea_model_free(b.m);
		return b.rc;
	}
	*mp = b.m;
	return 0;
}

/* ------------------------------------------------------- initialisation */

void
mea_model_init(struct mea_model *m, uint64_t seed, int mask)
{
	struct mea_rng rng;

	mea_rng_seed(&rng, seed);
	for (int i = 0; i < m->nnodes; i++) {
		const struct mea_node *n = &m->node[i];
		struct mea_weight *w = n->param[0] >= 0 ? &m->tensor[n->param[0]] : NULL;
		struct mea_weight *bias = n->param[1] >= 0 ? &m->tensor[n->param[1]] : NULL;
		if (!(mask & MEA_BLOCK_BIT(n->block)) || !w)
			continue;
		switch (n->op) {
		case MEA_OP_CONV: {
			/* Kaiming normal, fan_out mode (as torchvision's ResNet and
			 * MobileNetV2): keeps the backward signal's variance. */
			float sd = sqrtf(2.0f / (float)(n->K * n->R * n->S));
			for (size_t k = 0; k < w->nelem; k++)
				w->data[k] = sd * mea_rng_normal(&rng);
			if (bias)
				memset(bias->data, 0, bias->nelem * sizeof(float));
			break;
		}
		case MEA_OP_FC: {
			/* PyTorch's default for Linear: U(-1/sqrt(in), 1/sqrt(in)). */
			float bound = 1.0f / sqrtf((float)w->dim[1]);
			for (size_t k = 0; k < w->nelem; k++)
				w->data[k] = bound * (2 * mea_rng_uniform(&rng) - 1);
			for (size_t k = 0; bias && k < bias->nelem; k++)
				bias->data[k] = bound * (2 * mea_rng_uniform(&rng) - 1);
			break;
		}
		case MEA_OP_BN:
			for (size_t k = 0; k < w->nelem; k++) {
				m->tensor[n->param[MEA_P_GAMMA]].data[k] = 1;
				m->tensor[n->param[MEA_P_BETA]].data[k] = 0;
				m->tensor[n->param[MEA_P_MEAN]].data[k] = 0;
				m->tensor[n->param[MEA_P_VAR]].data[k] = 1;
			}
			break;
		}
	}
}

/*
 * The adaptive block as a copy of the main block's layers: each of its
 * parameters and running statistics, "adapt.NAME", takes the values of
 * the main block's "NAME".  The adaptive block of a CIFAR or ImageNet
 * ResNet is the main block's trunk with adepth BasicBlocks a stage, its
 * tensors named as the trunk's first ones: with adepth equal to the
 * main block's, a copy of the whole trunk.  The extension job uses this
 * to start the adaptive block from features trained on every class
 * rather than from random ones.  Optimiser state is left alone.
 * MEA_E_ARG when a tensor has no counterpart of its size (MobileNetV2's
 * adaptive block, whose layers differ) or the model has no adaptive block.
 */
int
mea_arch_seed_adaptive(struct mea_model *m, struct mea_err *e)
{
	static const char prefix[] = "adapt.";
	int copied = 0;

	for (int t = 0; t < m->ntensors; t++) {
		struct mea_weight *w = &m->tensor[t];
		int from;
		if (w->kind == MEA_TK_STATE || strncmp(w->name, prefix, sizeof prefix - 1) != 0)
			continue;
		from = mea_model_find_tensor(m, w->name + sizeof prefix - 1);
		if (from < 0 || m->tensor[from].nelem != w->nelem)
			return mea_errf(e, MEA_E_ARG, "the adaptive block's %s has no counterpart "
					"of its size in the main block", w->name);
		memcpy(w->data, m->tensor[from].data, w->nelem * sizeof *w->data);
		copied++;
	}
	if (!copied)
		return mea_errf(e, MEA_E_ARG, "the model has no adaptive block");
	return 0;
}
