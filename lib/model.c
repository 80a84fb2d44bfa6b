/*
 * model.c: the model in memory, its file format (mea-model(5)) and the one
 * function that decides whether a model is sound (mea_model_check).
 *
 * Loading is two passes over a file read whole into memory.  The header
 * pass (check_header) looks only at the fixed 128 bytes: magic, version,
 * every count against its limit, and the section sizes those counts imply
 * against the file's real size; after it every later read is in bounds.
 * The second pass parses the tables into a struct mea_model and hands it
 * to mea_model_check, the same check a model built in memory goes
 * through, so a file can never describe something the builder could not.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mea.h"
#include "model.h"

/* Byte offsets of the header fields (mea-model(5) has the table). */
enum {
	H_MAGIC = 0, H_VERSION = 8, H_FLAGS = 12, H_FILESIZE = 16,
	H_IN_C = 24, H_IN_H = 28, H_IN_W = 32, H_NCLASSES = 36, H_NHARD = 40,
	H_NNODES = 44, H_NTENSORS = 48, H_NINFO = 52, H_THRESHOLD = 56,
	H_LOGITS = 60, H_FEAT = 64, H_EXT = 68, H_MACS = 72, H_PARAMS = 96,
	H_DATABYTES = 120
};

/* Node record fields. */
enum {
	N_NAME = 0, N_OP = 48, N_BLOCK = 49, N_ACT = 50, N_NINPUTS = 51,
	N_INPUT = 52, N_K = 60, N_R = 64, N_S = 68, N_STRIDE = 72, N_PAD = 76,
	N_GROUPS = 80, N_BIAS = 84, N_EPS = 88, N_MOMENTUM = 92, N_PARAM = 96,
	N_RESERVED = 112
};

/* Tensor table fields. */
enum { T_NAME = 0, T_KIND = 64, T_NDIM = 68, T_DIM = 72, T_OF = 88, T_RESERVED = 92 };

/* ------------------------------------------------------- little-endian I/O */

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		(uint32_t)p[3] << 24;
}

static uint64_t
get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static float
getf(const unsigned char *p)
{
	uint32_t u = get32(p);
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static void
put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static void
putf(unsigned char *p, float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	put32(p, u);
}

/* An index field: NONE is -1; anything beyond int range stays out of
 * range (INT_MAX) so the check names it instead of wrapping. */
static int
get_index(const unsigned char *p)
{
	uint32_t v = get32(p);
	return v == MEA_MODEL_NONE ? -1 : v > INT_MAX ? INT_MAX : (int)v;
}

static int
get_int(const unsigned char *p)
{
	uint32_t v = get32(p);
	return v > INT_MAX ? INT_MAX : (int)v;
}

static uint32_t
put_index(int i)
{
	return i < 0 ? MEA_MODEL_NONE : (uint32_t)i;
}

/* A fixed slot holding a NUL-terminated string followed by NULs only.
 * Returns the length, or -1 when there is no NUL or junk follows it. */
static int
slot_string(const unsigned char *p, size_t n)
{
	const unsigned char *z = memchr(p, '\0', n);
	if (!z)
		return -1;
	for (const unsigned char *q = z; q < p + n; q++)
		if (*q)
			return -1;
	return (int)(z - p);
}

/* ------------------------------------------------------------- names */

const char *
mea_op_name(int op)
{
	static const char *const name[] = {
		NULL, "input", "conv", "bn", "add", "concat", "maxpool", "avgpool",
		"gap", "fc"
	};
	return op >= 1 && op <= MEA_OP_LAST ? name[op] : NULL;
}

const char *
mea_block_name(int block)
{
	static const char *const name[] = { "main", "adaptive", "extension" };
	return block >= 0 && block < MEA_NBLOCKS ? name[block] : NULL;
}

static const char *
act_name(int act)
{
	return act == MEA_ACT_RELU ? "relu" : act == MEA_ACT_RELU6 ? "relu6" : "none";
}

/* Node, tensor and info-key names are [A-Za-z0-9_.-]+ so they print
 * unquoted in messages and in TSV. */
static int
name_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
				(*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == '-'))
			return 0;
	return 1;
}

/* Class names and info values: any bytes but control characters. */
static int
text_ok(const char *s, int empty_ok)
{
	if (!*s && !empty_ok)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static void
format_shape(char *buf, size_t n, int ndim, const uint32_t *dim)
{
	size_t off = 0;
	buf[0] = '\0';
	for (int i = 0; i < ndim && off < n; i++)
		off += (size_t)snprintf(buf + off, n - off, i ? "x%u" : "%u", dim[i]);
}

/* ------------------------------------------------------ model lifetime */

void
mea_model_free(struct mea_model *m)
{
	if (!m)
		return;
	free(m->mean);
	free(m->std);
	free(m->class_name);
	free(m->hard);
	free(m->node);
	free(m->tensor);
	free(m->arena);
	free(m->info);
	free(m);
}

/* Allocate the metadata arrays of a model with these counts; nodes and
 * tensors get exactly the room asked for. */
static int
model_alloc(struct mea_model **mp, int C, int nclasses, int nhard, int ninfo,
		int nnodes, int ntensors, struct mea_err *e)
{
	struct mea_model *m = calloc(1, sizeof *m);

	*mp = m;
	if (!m)
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	m->in_c = C;
	m->nclasses = nclasses;
	m->nhard = nhard;
	m->ninfo = ninfo;
	m->node_logits = m->node_feat = m->node_ext = -1;
	m->mean = calloc((size_t)C, sizeof *m->mean);
	m->std = calloc((size_t)C, sizeof *m->std);
	m->class_name = calloc((size_t)nclasses, sizeof *m->class_name);
	m->hard = calloc((size_t)nhard + 1, sizeof *m->hard);
	m->info = calloc((size_t)ninfo + 1, sizeof *m->info);
	m->node = calloc((size_t)nnodes + 1, sizeof *m->node);
	m->tensor = calloc((size_t)ntensors + 1, sizeof *m->tensor);
	m->cap_nodes = nnodes + 1;
	m->cap_tensors = ntensors + 1;
	if (!m->mean || !m->std || !m->class_name || !m->hard || !m->info || !m->node ||
			!m->tensor) {
		mea_model_free(m);
		*mp = NULL;
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	}
	return 0;
}

/* ------------------------------------------------------- the node check */

/* What a node's parameter slot must hold: ndim 0 means "nothing". */
struct slot {
	int ndim;
	uint32_t dim[MEA_MAX_DIMS];
	int kind;
	const char *what;
};

static int
node_err(struct mea_err *e, const struct mea_model *m, int i, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
node_err(struct mea_err *e, const struct mea_model *m, int i, const char *fmt, ...)
{
	char buf[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return mea_errf(e, MEA_E_MODEL, "node %d (%s): %s", i, m->node[i].name, buf);
}

static void
slot_set(struct slot *s, int kind, const char *what, int ndim, uint32_t d0,
		uint32_t d1, uint32_t d2, uint32_t d3)
{
	s->ndim = ndim;
	s->kind = kind;
	s->what = what;
	s->dim[0] = d0;
	s->dim[1] = d1;
	s->dim[2] = d2;
	s->dim[3] = d3;
}

static int
in_range(long v, long lo, long hi)
{
	return v >= lo && v <= hi;
}

/*
 * Check node i against the nodes before it (already checked), compute its
 * output shape and MACs, and say what its parameter slots must hold.
 * Fields an op does not use must be zero, so a file has one spelling.
 */
static int
node_infer(struct mea_model *m, int i, struct slot sl[4], struct mea_err *e)
{
	struct mea_node *n = &m->node[i];
	const struct mea_node *a = NULL, *b = NULL;
	int want_inputs, uses_kernel = 0, uses_conv = 0, uses_k = 0, uses_bn = 0;
	uint64_t out;

	memset(sl, 0, 4 * sizeof *sl);
	if (!mea_op_name(n->op))
		return node_err(e, m, i, "unknown op %d", n->op);
	if (!mea_block_name(n->block))
		return node_err(e, m, i, "unknown block %d", n->block);
	if (n->act < MEA_ACT_NONE || n->act > MEA_ACT_RELU6)
		return node_err(e, m, i, "unknown activation %d", n->act);
	if (n->act && n->op != MEA_OP_CONV && n->op != MEA_OP_BN && n->op != MEA_OP_ADD &&
			n->op != MEA_OP_FC)
		return node_err(e, m, i, "a %s node cannot have an activation", mea_op_name(n->op));
	if ((i == 0) != (n->op == MEA_OP_INPUT))
		return node_err(e, m, i, i == 0 ? "node 0 must be the input" :
				"only node 0 can be the input");
	want_inputs = n->op == MEA_OP_INPUT ? 0 :
		n->op == MEA_OP_ADD || n->op == MEA_OP_CONCAT ? 2 : 1;
	if (n->ninputs != want_inputs)
		return node_err(e, m, i, "%d inputs, a %s node takes %d", n->ninputs,
				mea_op_name(n->op), want_inputs);
	for (int k = 0; k < 2; k++) {
		int j = n->input[k];
		if (k >= n->ninputs) {
			if (j != -1)
				return node_err(e, m, i, "unused input %d is set", k);
			continue;
		}
		if (j < 0 || j >= m->nnodes)
			return node_err(e, m, i, "input %d is node %d, which does not exist "
					"(the model has %d nodes)", k, j, m->nnodes);
		if (j >= i)
			return node_err(e, m, i, "input %d is node %d, not an earlier node "
					"(a cycle, or nodes out of order)", k, j);
		/* Blocks: main is self-contained; adaptive reads the image; the
		 * extension reads the feature map and the adaptive block. */
		int jb = m->node[j].block;
		int ok = n->block == MEA_BLOCK_MAIN ? jb == MEA_BLOCK_MAIN :
			n->block == MEA_BLOCK_ADAPTIVE ? jb == MEA_BLOCK_ADAPTIVE || j == 0 :
			jb != MEA_BLOCK_MAIN || j == m->node_feat;
		if (!ok)
			return node_err(e, m, i, "a node of the %s block cannot read node %d (%s) "
					"of the %s block", mea_block_name(n->block), j, m->node[j].name,
					mea_block_name(jb));
	}
	if (n->ninputs >= 1)
		a = &m->node[n->input[0]];
	if (n->ninputs == 2)
		b = &m->node[n->input[1]];

	n->macs = 0;
	switch (n->op) {
	case MEA_OP_INPUT:
		if (n->block != MEA_BLOCK_MAIN)
			return node_err(e, m, i, "the input belongs to the main block");
		n->C = m->in_c;
		n->H = m->in_h;
		n->W = m->in_w;
		break;
	case MEA_OP_CONV: {
		uses_conv = uses_kernel = uses_k = 1;
		if (!in_range(n->K, 1, MEA_MODEL_MAX_CHANNELS))
			return node_err(e, m, i, "%d output channels, limit %d", n->K,
					MEA_MODEL_MAX_CHANNELS);
		if (!in_range(n->groups, 1, a->C) || a->C % n->groups || n->K % n->groups)
			return node_err(e, m, i, "%d groups do not divide %d input and %d "
					"output channels", n->groups, a->C, n->K);
		if (!in_range(n->bias, 0, 1))
			return node_err(e, m, i, "bias flag %d is not 0 or 1", n->bias);
		break;
	}
	case MEA_OP_BN:
		uses_bn = 1;
		if (!(n->eps > 0 && n->eps <= 1))
			return node_err(e, m, i, "eps %g is not in (0, 1]", n->eps);
		if (!(n->momentum >= 0 && n->momentum <= 1))
			return node_err(e, m, i, "momentum %g is not in [0, 1]", n->momentum);
		n->C = a->C;
		n->H = a->H;
		n->W = a->W;
		slot_set(&sl[MEA_P_GAMMA], MEA_TK_PARAM, "gamma", 1, (uint32_t)n->C, 0, 0, 0);
		slot_set(&sl[MEA_P_BETA], MEA_TK_PARAM, "beta", 1, (uint32_t)n->C, 0, 0, 0);
		slot_set(&sl[MEA_P_MEAN], MEA_TK_BUFFER, "running mean", 1, (uint32_t)n->C, 0, 0, 0);
		slot_set(&sl[MEA_P_VAR], MEA_TK_BUFFER, "running var", 1, (uint32_t)n->C, 0, 0, 0);
		break;
	case MEA_OP_ADD:
		if (a->C != b->C || a->H != b->H || a->W != b->W)
			return node_err(e, m, i, "adds %dx%dx%d (node %d) to %dx%dx%d (node %d)",
					a->C, a->H, a->W, n->input[0], b->C, b->H, b->W, n->input[1]);
		n->C = a->C;
		n->H = a->H;
		n->W = a->W;
		break;
	case MEA_OP_CONCAT:
		if (a->H != b->H || a->W != b->W)
			return node_err(e, m, i, "concatenates %dx%dx%d (node %d) with %dx%dx%d "
					"(node %d): sizes differ", a->C, a->H, a->W, n->input[0],
					b->C, b->H, b->W, n->input[1]);
		if (a->C + b->C > MEA_MODEL_MAX_CHANNELS)
			return node_err(e, m, i, "%d channels, limit %d", a->C + b->C,
					MEA_MODEL_MAX_CHANNELS);
		n->C = a->C + b->C;
		n->H = a->H;
		n->W = a->W;
		break;
	case MEA_OP_MAXPOOL:
	case MEA_OP_AVGPOOL:
		uses_kernel = 1;
		break;
	case MEA_OP_GAP:
		n->C = a->C;
		n->H = n->W = 1;
		break;
	case MEA_OP_FC: {
		uses_k = 1;
		uint64_t in = (uint64_t)a->C * (uint64_t)a->H * (uint64_t)a->W;
		if (!in_range(n->K, 1, MEA_MODEL_MAX_CHANNELS))
			return node_err(e, m, i, "%d outputs, limit %d", n->K, MEA_MODEL_MAX_CHANNELS);
		if (!in_range(n->bias, 0, 1))
			return node_err(e, m, i, "bias flag %d is not 0 or 1", n->bias);
		if (in * (uint64_t)n->K > MEA_MAX_TENSOR_BYTES / sizeof(float))
			return node_err(e, m, i, "weight %dx%llu is beyond the tensor size limit",
					n->K, (unsigned long long)in);
		n->C = n->K;
		n->H = n->W = 1;
		n->macs = in * (uint64_t)n->K;
		slot_set(&sl[MEA_P_WEIGHT], MEA_TK_PARAM, "weight", 2, (uint32_t)n->K,
				(uint32_t)in, 0, 0);
		if (n->bias)
			slot_set(&sl[MEA_P_BIAS], MEA_TK_PARAM, "bias", 1, (uint32_t)n->K, 0, 0, 0);
		break;
	}
	}

	if (uses_kernel) {
		int pool = n->op != MEA_OP_CONV;
		if (!in_range(n->R, 1, MEA_MODEL_MAX_KERNEL) || !in_range(n->S, 1, MEA_MODEL_MAX_KERNEL))
			return node_err(e, m, i, "kernel %dx%d, limit %d", n->R, n->S,
					MEA_MODEL_MAX_KERNEL);
		if (!in_range(n->stride, 1, MEA_MODEL_MAX_STRIDE))
			return node_err(e, m, i, "stride %d, limit %d", n->stride, MEA_MODEL_MAX_STRIDE);
		/* A pooling window must always cover a real input cell. */
		if (n->pad < 0 || n->pad >= (n->R > n->S ? n->R : n->S) ||
				(pool && (2 * n->pad > n->R || 2 * n->pad > n->S)))
			return node_err(e, m, i, "padding %d does not fit a %dx%d kernel", n->pad,
					n->R, n->S);
		if (a->H + 2 * n->pad < n->R || a->W + 2 * n->pad < n->S)
			return node_err(e, m, i, "kernel %dx%d is larger than the padded input "
					"%dx%d", n->R, n->S, a->H + 2 * n->pad, a->W + 2 * n->pad);
		n->C = n->op == MEA_OP_CONV ? n->K : a->C;
		n->H = (a->H + 2 * n->pad - n->R) / n->stride + 1;
		n->W = (a->W + 2 * n->pad - n->S) / n->stride + 1;
	}
	/* Before any cost arithmetic, so that cannot overflow either. */
	out = (uint64_t)n->C * (uint64_t)n->H * (uint64_t)n->W;
	if (out > MEA_MODEL_MAX_ACT)
		return node_err(e, m, i, "output %dx%dx%d is beyond the limit of %u values",
				n->C, n->H, n->W, MEA_MODEL_MAX_ACT);
	if (uses_conv) {
		uint64_t per_k = (uint64_t)(a->C / n->groups) * (uint64_t)n->R * (uint64_t)n->S;
		if (per_k * (uint64_t)n->K > MEA_MAX_TENSOR_BYTES / sizeof(float))
			return node_err(e, m, i, "weight %dx%dx%dx%d is beyond the tensor size limit",
					n->K, a->C / n->groups, n->R, n->S);
		n->macs = (uint64_t)n->K * (uint64_t)n->H * (uint64_t)n->W * per_k;
		slot_set(&sl[MEA_P_WEIGHT], MEA_TK_PARAM, "weight", 4, (uint32_t)n->K,
				(uint32_t)(a->C / n->groups), (uint32_t)n->R, (uint32_t)n->S);
		if (n->bias)
			slot_set(&sl[MEA_P_BIAS], MEA_TK_PARAM, "bias", 1, (uint32_t)n->K, 0, 0, 0);
	}
	if ((!uses_kernel && (n->R || n->S || n->stride || n->pad)) ||
			(!uses_conv && n->groups) || (!uses_k && (n->K || n->bias)) ||
			(!uses_bn && (n->eps != 0 || n->momentum != 0)))
		return node_err(e, m, i, "a field a %s node does not use is not zero",
				mea_op_name(n->op));
	return 0;
}

/* Sort-based duplicate check: 0, or the indices of one duplicate pair. */
struct named { const char *name; int idx; };

static int
cmp_named(const void *x, const void *y)
{
	const struct named *a = x, *b = y;
	int c = strcmp(a->name, b->name);
	return c ? c : (a->idx > b->idx) - (a->idx < b->idx);
}

static int
find_duplicate(struct named *v, int n, int *first, int *second)
{
	qsort(v, (size_t)n, sizeof *v, cmp_named);
	for (int i = 1; i < n; i++)
		if (strcmp(v[i - 1].name, v[i].name) == 0) {
			*first = v[i - 1].idx;
			*second = v[i].idx;
			return 1;
		}
	return 0;
}

static int
check_names(const struct mea_model *m, struct mea_err *e)
{
	int n = m->nnodes > m->ntensors ? m->nnodes : m->ntensors;
	struct named *v = malloc(((size_t)n + 1) * sizeof *v);
	int i, j, rc = 0;

	if (!v)
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	for (i = 0; i < m->nnodes; i++)
		v[i] = (struct named){ m->node[i].name, i };
	if (find_duplicate(v, m->nnodes, &i, &j))
		rc = mea_errf(e, MEA_E_MODEL, "node %d and node %d are both named %s", i, j,
				m->node[i].name);
	for (i = 0; !rc && i < m->ntensors; i++)
		v[i] = (struct named){ m->tensor[i].name, i };
	if (!rc && find_duplicate(v, m->ntensors, &i, &j))
		rc = mea_errf(e, MEA_E_MODEL, "tensor %d and tensor %d are both named %s", i, j,
				m->tensor[i].name);
	free(v);
	return rc;
}

static int
check_metadata(const struct mea_model *m, struct mea_err *e)
{
	if (!in_range(m->in_c, 1, MEA_MODEL_MAX_IN_C) ||
			!in_range(m->in_h, 1, MEA_MODEL_MAX_IN_SIDE) ||
			!in_range(m->in_w, 1, MEA_MODEL_MAX_IN_SIDE))
		return mea_errf(e, MEA_E_MODEL, "input %dx%dx%d is beyond the limits "
				"(%d channels, side %d)", m->in_c, m->in_h, m->in_w,
				MEA_MODEL_MAX_IN_C, MEA_MODEL_MAX_IN_SIDE);
	for (int c = 0; c < m->in_c; c++)
		if (!isfinite(m->mean[c]) || !isfinite(m->std[c]) || !(m->std[c] > 0))
			return mea_errf(e, MEA_E_MODEL, "channel %d: mean %g, std %g: need finite "
					"values and std > 0", c, m->mean[c], m->std[c]);
	if (!in_range(m->nclasses, 1, MEA_MODEL_MAX_CLASSES))
		return mea_errf(e, MEA_E_MODEL, "%d classes, limit %d", m->nclasses,
				MEA_MODEL_MAX_CLASSES);
	for (int k = 0; k < m->nclasses; k++)
		if (!memchr(m->class_name[k], '\0', MEA_MODEL_CLASS_BYTES) ||
				!text_ok(m->class_name[k], 0))
			return mea_errf(e, MEA_E_MODEL, "class %d: name is empty, too long or has "
					"control characters", k);
	if (!in_range(m->nhard, 0, m->nclasses))
		return mea_errf(e, MEA_E_MODEL, "%d hard classes of %d", m->nhard, m->nclasses);
	for (int k = 0; k < m->nhard; k++) {
		if (!in_range(m->hard[k], 0, m->nclasses - 1))
			return mea_errf(e, MEA_E_MODEL, "hard class %d is class %d, which does not "
					"exist", k, (int)m->hard[k]);
		for (int j = 0; j < k; j++)
			if (m->hard[j] == m->hard[k])
				return mea_errf(e, MEA_E_MODEL, "class %d is listed twice as hard",
						(int)m->hard[k]);
	}
	if (!isfinite(m->threshold) || m->threshold < 0)
		return mea_errf(e, MEA_E_MODEL, "threshold %g is not a finite value >= 0",
				m->threshold);
	if (!in_range(m->ninfo, 0, MEA_MODEL_MAX_INFO))
		return mea_errf(e, MEA_E_MODEL, "%d info entries, limit %d", m->ninfo,
				MEA_MODEL_MAX_INFO);
	for (int k = 0; k < m->ninfo; k++) {
		if (!memchr(m->info[k].key, '\0', sizeof m->info[k].key) ||
				!memchr(m->info[k].value, '\0', sizeof m->info[k].value) ||
				!name_ok(m->info[k].key) || !text_ok(m->info[k].value, 1))
			return mea_errf(e, MEA_E_MODEL, "info entry %d: bad key or value", k);
		for (int j = 0; j < k; j++)
			if (strcmp(m->info[j].key, m->info[k].key) == 0)
				return mea_errf(e, MEA_E_MODEL, "info key %s appears twice",
						m->info[k].key);
	}
	return 0;
}

/* The model's outputs: where logits, the feature map and the extension
 * logits are, and that a file without an extension has no MEANet parts. */
static int
check_outputs(const struct mea_model *m, struct mea_err *e)
{
	const struct mea_node *n;
	int nb[MEA_NBLOCKS] = { 0 };

	for (int i = 0; i < m->nnodes; i++)
		nb[m->node[i].block]++;
	if (!in_range(m->node_logits, 0, m->nnodes - 1))
		return mea_errf(e, MEA_E_MODEL, "logits node %d does not exist", m->node_logits);
	n = &m->node[m->node_logits];
	if (n->block != MEA_BLOCK_MAIN || n->C != m->nclasses || n->H != 1 || n->W != 1)
		return mea_errf(e, MEA_E_MODEL, "logits node %d (%s): output %dx%dx%d of the %s "
				"block, expected %dx1x1 of the main block", m->node_logits, n->name,
				n->C, n->H, n->W, mea_block_name(n->block), m->nclasses);
	if (m->node_ext < 0) {
		if (m->node_feat != -1 || nb[MEA_BLOCK_ADAPTIVE] || nb[MEA_BLOCK_EXT])
			return mea_errf(e, MEA_E_MODEL, "a feature map node or adaptive or "
					"extension nodes, but no extension output");
		return 0;
	}
	if (m->node_ext >= m->nnodes)
		return mea_errf(e, MEA_E_MODEL, "extension node %d does not exist", m->node_ext);
	n = &m->node[m->node_ext];
	if (m->nhard < 1 || n->block != MEA_BLOCK_EXT || n->C != m->nhard || n->H != 1 ||
			n->W != 1)
		return mea_errf(e, MEA_E_MODEL, "extension node %d (%s): output %dx%dx%d of the "
				"%s block, expected %dx1x1 (one per hard class) of the extension",
				m->node_ext, n->name, n->C, n->H, n->W, mea_block_name(n->block),
				m->nhard);
	if (!in_range(m->node_feat, 1, m->nnodes - 1) ||
			m->node[m->node_feat].block != MEA_BLOCK_MAIN)
		return mea_errf(e, MEA_E_MODEL, "feature map node %d is not a node of the main "
				"block", m->node_feat);
	return 0;
}

/* Parameters: each slot holds a tensor of the right kind and shape; every
 * parameter and buffer belongs to exactly one node; state tensors shadow a
 * parameter; every value is finite. */
static int
check_tensors(struct mea_model *m, const struct slot (*sl)[4], struct mea_err *e)
{
	char got[64], want[64];

	for (int t = 0; t < m->ntensors; t++)
		m->tensor[t].node = -1;
	for (int i = 0; i < m->nnodes; i++) {
		struct mea_node *n = &m->node[i];
		for (int s = 0; s < 4; s++) {
			const struct slot *q = &sl[i][s];
			int t = n->param[s];
			struct mea_weight *w;
			if (!q->ndim) {
				if (t != -1)
					return node_err(e, m, i, "parameter slot %d is set but unused", s);
				continue;
			}
			if (t < 0 || t >= m->ntensors)
				return node_err(e, m, i, "%s is tensor %d, which does not exist "
						"(the model has %d tensors)", q->what, t, m->ntensors);
			w = &m->tensor[t];
			format_shape(got, sizeof got, w->ndim, w->dim);
			format_shape(want, sizeof want, q->ndim, q->dim);
			if (strcmp(got, want) != 0)
				return node_err(e, m, i, "%s shape %s, expected %s", q->what, got, want);
			if (w->kind != q->kind)
				return node_err(e, m, i, "%s: tensor %d (%s) is of kind %d, expected %d",
						q->what, t, w->name, w->kind, q->kind);
			if (w->node != -1)
				return mea_errf(e, MEA_E_MODEL, "tensor %d (%s) is used by node %d and "
						"node %d", t, w->name, w->node, i);
			w->node = i;
		}
	}
	for (int t = 0; t < m->ntensors; t++) {
		struct mea_weight *w = &m->tensor[t];
		if (w->kind == MEA_TK_STATE) {
			const struct mea_weight *p;
			if (w->of < 0 || w->of >= m->ntensors || m->tensor[w->of].kind != MEA_TK_PARAM)
				return mea_errf(e, MEA_E_MODEL, "tensor %d (%s): state of tensor %d, "
						"which is not a parameter", t, w->name, w->of);
			p = &m->tensor[w->of];
			if (w->nelem != p->nelem || w->ndim != p->ndim ||
					memcmp(w->dim, p->dim, sizeof w->dim) != 0)
				return mea_errf(e, MEA_E_MODEL, "tensor %d (%s): shape differs from its "
						"parameter %s", t, w->name, p->name);
			for (int u = 0; u < t; u++)
				if (m->tensor[u].kind == MEA_TK_STATE && m->tensor[u].of == w->of)
					return mea_errf(e, MEA_E_MODEL, "tensor %d (%s): a second state "
							"tensor of %s", t, w->name, p->name);
		} else if (w->node == -1) {
			return mea_errf(e, MEA_E_MODEL, "tensor %d (%s) is used by no node", t, w->name);
		} else if (w->of != -1) {
			return mea_errf(e, MEA_E_MODEL, "tensor %d (%s): only state tensors belong "
					"to another tensor", t, w->name);
		}
		if (!w->data)
			return mea_errf(e, MEA_E_MODEL, "tensor %d (%s) has no data", t, w->name);
		for (size_t k = 0; k < w->nelem; k++)
			if (!isfinite(w->data[k]))
				return mea_errf(e, MEA_E_MODEL, "tensor %d (%s): value %zu is %g, not "
						"finite", t, w->name, k, w->data[k]);
		if (w->node >= 0 && m->node[w->node].op == MEA_OP_BN &&
				m->node[w->node].param[MEA_P_VAR] == t)
			for (size_t k = 0; k < w->nelem; k++)
				if (w->data[k] < 0)
					return mea_errf(e, MEA_E_MODEL, "tensor %d (%s): variance %zu is "
							"negative", t, w->name, k);
	}
	return 0;
}

int
mea_model_check(struct mea_model *m, struct mea_err *e)
{
	struct slot (*sl)[4];
	int rc;

	if (!in_range(m->nnodes, 2, MEA_MODEL_MAX_NODES))
		return mea_errf(e, MEA_E_MODEL, "%d nodes, need 2 to %d", m->nnodes,
				MEA_MODEL_MAX_NODES);
	if (!in_range(m->ntensors, 0, MEA_MODEL_MAX_TENSORS))
		return mea_errf(e, MEA_E_MODEL, "%d tensors, limit %d", m->ntensors,
				MEA_MODEL_MAX_TENSORS);
	if ((rc = check_metadata(m, e)))
		return rc;
	for (int i = 0; i < m->nnodes; i++)
		if (!memchr(m->node[i].name, '\0', sizeof m->node[i].name) ||
				!name_ok(m->node[i].name))
			return mea_errf(e, MEA_E_MODEL, "node %d: name is empty, too long or not "
					"made of A-Z a-z 0-9 _ . -", i);
	for (int t = 0; t < m->ntensors; t++)
		if (!memchr(m->tensor[t].name, '\0', sizeof m->tensor[t].name) ||
				!name_ok(m->tensor[t].name))
			return mea_errf(e, MEA_E_MODEL, "tensor %d: name is empty, too long or not "
					"made of A-Z a-z 0-9 _ . -", t);
	if ((rc = check_names(m, e)))
		return rc;
	if (!(sl = calloc((size_t)m->nnodes, sizeof *sl)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	for (int i = 0; i < m->nnodes && !rc; i++)
		rc = node_infer(m, i, sl[i], e);
	if (!rc)
		rc = check_outputs(m, e);
	if (!rc)
		rc = check_tensors(m, (const struct slot (*)[4])sl, e);
	free(sl);
	if (rc)
		return rc;
	memset(m->macs, 0, sizeof m->macs);
	memset(m->params, 0, sizeof m->params);
	for (int i = 0; i < m->nnodes; i++)
		m->macs[m->node[i].block] += m->node[i].macs;
	for (int t = 0; t < m->ntensors; t++)
		if (m->tensor[t].kind == MEA_TK_PARAM)
			m->params[m->node[m->tensor[t].node].block] += m->tensor[t].nelem;
	return 0;
}

/* ---------------------------------------------------------- the builder */

int
mea_model_create(struct mea_model **mp, int C, int H, int W, int nclasses,
		struct mea_err *e)
{
	struct mea_model *m;
	int rc;

	*mp = NULL;
	if (!in_range(C, 1, MEA_MODEL_MAX_IN_C) || !in_range(H, 1, MEA_MODEL_MAX_IN_SIDE) ||
			!in_range(W, 1, MEA_MODEL_MAX_IN_SIDE))
		return mea_errf(e, MEA_E_ARG, "input %dx%dx%d is beyond the limits (%d channels, "
				"side %d)", C, H, W, MEA_MODEL_MAX_IN_C, MEA_MODEL_MAX_IN_SIDE);
	if (!in_range(nclasses, 1, MEA_MODEL_MAX_CLASSES))
		return mea_errf(e, MEA_E_ARG, "%d classes, limit %d", nclasses,
				MEA_MODEL_MAX_CLASSES);
	if ((rc = model_alloc(&m, C, nclasses, 0, 0, 64, 128, e)))
		return rc;
	m->in_h = H;
	m->in_w = W;
	m->threshold = 0.8f;
	for (int c = 0; c < C; c++)
		m->std[c] = 1;
	for (int k = 0; k < nclasses; k++)
		snprintf(m->class_name[k], sizeof m->class_name[k], "%d", k);
	m->nnodes = 1;
	strcpy(m->node[0].name, "image");
	m->node[0].op = MEA_OP_INPUT;
	m->node[0].input[0] = m->node[0].input[1] = -1;
	for (int s = 0; s < 4; s++)
		m->node[0].param[s] = -1;
	m->node[0].C = C;
	m->node[0].H = H;
	m->node[0].W = W;
	*mp = m;
	return 0;
}

static int
grow(void **p, int *cap, int need, size_t elem)
{
	void *q;
	int n;

	if (need <= *cap)
		return 0;
	n = *cap * 2 > need ? *cap * 2 : need;
	if (!(q = realloc(*p, (size_t)n * elem)))
		return -1;
	memset((char *)q + (size_t)*cap * elem, 0, (size_t)(n - *cap) * elem);
	*p = q;
	*cap = n;
	return 0;
}

int
mea_model_add_node(struct mea_model *m, const struct mea_node *spec, int *idx,
		struct mea_err *e)
{
	static const char *const suffix[2][4] = {
		{ "weight", "bias", NULL, NULL },
		{ "weight", "bias", "running_mean", "running_var" },
	};
	struct slot sl[4];
	struct mea_node *n;
	int i = m->nnodes, rc;

	if (m->arena)
		return mea_errf(e, MEA_E_ARG, "node %s: the model is already finished", spec->name);
	if (i >= MEA_MODEL_MAX_NODES)
		return mea_errf(e, MEA_E_LIMIT, "node %s: more than %d nodes", spec->name,
				MEA_MODEL_MAX_NODES);
	if (!memchr(spec->name, '\0', sizeof spec->name) || !name_ok(spec->name))
		return mea_errf(e, MEA_E_ARG, "node name '%.*s' is empty, too long or not made "
				"of A-Z a-z 0-9 _ . -", MEA_MODEL_NODE_NAME, spec->name);
	if (mea_model_find_node(m, spec->name) >= 0)
		return mea_errf(e, MEA_E_ARG, "node name %s is used twice", spec->name);
	if (grow((void **)&m->node, &m->cap_nodes, i + 1, sizeof *m->node) ||
			grow((void **)&m->tensor, &m->cap_tensors, m->ntensors + 4, sizeof *m->tensor))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	n = &m->node[i];
	*n = *spec;
	for (int s = 0; s < 4; s++)
		n->param[s] = -1;
	for (int k = n->ninputs; k < 2; k++)
		n->input[k] = -1;
	m->nnodes++;
	if ((rc = node_infer(m, i, sl, e))) {
		m->nnodes--;
		if (e)
			e->code = MEA_E_ARG;
		return MEA_E_ARG;
	}
	for (int s = 0; s < 4; s++) {
		struct mea_weight *w;
		size_t nelem = 1;
		if (!sl[s].ndim)
			continue;
		if (m->ntensors >= MEA_MODEL_MAX_TENSORS) {
			m->nnodes--;
			return mea_errf(e, MEA_E_LIMIT, "node %s: more than %d tensors", spec->name,
					MEA_MODEL_MAX_TENSORS);
		}
		w = &m->tensor[m->ntensors];
		memset(w, 0, sizeof *w);
		snprintf(w->name, sizeof w->name, "%s.%s", n->name,
				suffix[n->op == MEA_OP_BN][s]);
		w->kind = sl[s].kind;
		w->ndim = sl[s].ndim;
		memcpy(w->dim, sl[s].dim, sizeof w->dim);
		for (int d = 0; d < w->ndim; d++)
			nelem *= w->dim[d];
		w->nelem = nelem;
		w->of = -1;
		w->node = i;
		n->param[s] = m->ntensors++;
	}
	if (idx)
		*idx = i;
	return 0;
}

/* Total elements of the tensors, within the file limit. */
static int
count_weights(const struct mea_model *m, size_t *total, struct mea_err *e)
{
	size_t n = 0;
	for (int t = 0; t < m->ntensors; t++) {
		n += m->tensor[t].nelem;
		if (n > MEA_MODEL_MAX_WEIGHTS)
			return mea_errf(e, MEA_E_LIMIT, "more than %u weight values",
					MEA_MODEL_MAX_WEIGHTS);
	}
	*total = n;
	return 0;
}

/* Point every tensor at its place in a fresh arena of total floats. */
static int
place_tensors(struct mea_model *m, size_t total, struct mea_err *e)
{
	float *arena = malloc((total ? total : 1) * sizeof *arena);
	size_t off = 0;

	if (!arena)
		return mea_errf(e, MEA_E_NOMEM, "out of memory for %zu weights", total);
	for (int t = 0; t < m->ntensors; t++) {
		if (m->tensor[t].data)
			memcpy(arena + off, m->tensor[t].data, m->tensor[t].nelem * sizeof *arena);
		m->tensor[t].data = arena + off;
		off += m->tensor[t].nelem;
	}
	free(m->arena);
	m->arena = arena;
	m->arena_nelem = total;
	return 0;
}

int
mea_model_finish(struct mea_model *m, struct mea_err *e)
{
	size_t total = 0;
	int rc;

	if (m->arena)
		return mea_errf(e, MEA_E_ARG, "the model is already finished");
	if ((rc = count_weights(m, &total, e)) || (rc = place_tensors(m, total, e)))
		return rc;
	memset(m->arena, 0, (total ? total : 1) * sizeof *m->arena);
	/* Neutral batch normalisation: identity on a unit-variance input. */
	for (int i = 0; i < m->nnodes; i++)
		if (m->node[i].op == MEA_OP_BN) {
			struct mea_weight *g = &m->tensor[m->node[i].param[MEA_P_GAMMA]];
			struct mea_weight *v = &m->tensor[m->node[i].param[MEA_P_VAR]];
			for (size_t k = 0; k < g->nelem; k++)
				g->data[k] = v->data[k] = 1;
		}
	if ((rc = mea_model_check(m, e)) && e)
		e->code = rc = rc == MEA_E_MODEL ? MEA_E_ARG : rc;
	return rc;
}

int
mea_model_set_hard(struct mea_model *m, int nhard, const int32_t *hard, struct mea_err *e)
{
	int32_t *h;

	if (!in_range(nhard, 0, m->nclasses))
		return mea_errf(e, MEA_E_ARG, "%d hard classes of %d", nhard, m->nclasses);
	for (int k = 0; hard && k < nhard; k++) {
		if (!in_range(hard[k], 0, m->nclasses - 1))
			return mea_errf(e, MEA_E_ARG, "hard class %d does not exist", (int)hard[k]);
		for (int j = 0; j < k; j++)
			if (hard[j] == hard[k])
				return mea_errf(e, MEA_E_ARG, "class %d is listed twice as hard",
						(int)hard[k]);
	}
	if (!(h = realloc(m->hard, ((size_t)nhard + 1) * sizeof *h)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	for (int k = 0; k < nhard; k++)
		h[k] = hard ? hard[k] : k;
	m->hard = h;
	m->nhard = nhard;
	return 0;
}

int
mea_model_set_class_name(struct mea_model *m, int k, const char *name, struct mea_err *e)
{
	if (!in_range(k, 0, m->nclasses - 1))
		return mea_errf(e, MEA_E_ARG, "class %d does not exist", k);
	if (strlen(name) >= MEA_MODEL_CLASS_BYTES || !text_ok(name, 0))
		return mea_errf(e, MEA_E_ARG, "class %d: name is empty, longer than %d bytes or "
				"has control characters", k, MEA_MODEL_CLASS_BYTES - 1);
	memset(m->class_name[k], 0, sizeof m->class_name[k]);
	strcpy(m->class_name[k], name);
	return 0;
}

int
mea_model_set_info(struct mea_model *m, const char *key, const char *value,
		struct mea_err *e)
{
	int k;

	if (strlen(key) > MEA_MODEL_KEY_LEN || !name_ok(key))
		return mea_errf(e, MEA_E_ARG, "info key '%s' is empty, too long or not made of "
				"A-Z a-z 0-9 _ . -", key);
	if (strlen(value) > MEA_MODEL_VALUE_LEN || !text_ok(value, 1))
		return mea_errf(e, MEA_E_ARG, "info %s: value longer than %d characters or with "
				"control characters", key, MEA_MODEL_VALUE_LEN);
	for (k = 0; k < m->ninfo; k++)
		if (strcmp(m->info[k].key, key) == 0)
			break;
	if (k == m->ninfo) {
		struct mea_model_info *v;
		if (m->ninfo >= MEA_MODEL_MAX_INFO)
			return mea_errf(e, MEA_E_LIMIT, "more than %d info entries", MEA_MODEL_MAX_INFO);
		if (!(v = realloc(m->info, ((size_t)m->ninfo + 1) * sizeof *v)))
			return mea_errf(e, MEA_E_NOMEM, "out of memory");
		m->info = v;
		memset(&v[k], 0, sizeof v[k]);
		strcpy(v[k].key, key);
		m->ninfo++;
	}
	memset(m->info[k].value, 0, sizeof m->info[k].value);
	strcpy(m->info[k].value, value);
	return 0;
}

const char *
mea_model_get_info(const struct mea_model *m, const char *key)
{
	for (int k = 0; k < m->ninfo; k++)
		if (strcmp(m->info[k].key, key) == 0)
			return m->info[k].value;
	return NULL;
}

int
mea_model_test_flip(const struct mea_model *m)
{
	const char *v = mea_model_get_info(m, "test-flip");

	return v && strcmp(v, "1") == 0;
}

int
mea_model_find_node(const struct mea_model *m, const char *name)
{
	for (int i = 0; i < m->nnodes; i++)
		if (strcmp(m->node[i].name, name) == 0)
			return i;
	return -1;
}

int
mea_model_find_tensor(const struct mea_model *m, const char *name)
{
	for (int t = 0; t < m->ntensors; t++)
		if (strcmp(m->tensor[t].name, name) == 0)
			return t;
	return -1;
}

int
mea_model_state_of(const struct mea_model *m, int t)
{
	for (int u = 0; u < m->ntensors; u++)
		if (m->tensor[u].kind == MEA_TK_STATE && m->tensor[u].of == t)
			return u;
	return -1;
}

int
mea_model_add_state(struct mea_model *m, int mask, struct mea_err *e)
{
	int nt = m->ntensors, add = 0, rc;
	size_t total = 0;

	for (int t = 0; t < nt; t++) {
		struct mea_weight *p = &m->tensor[t], *w;
		if (p->kind != MEA_TK_PARAM || !(mask & MEA_BLOCK_BIT(m->node[p->node].block)) ||
				mea_model_state_of(m, t) >= 0)
			continue;
		if (m->ntensors >= MEA_MODEL_MAX_TENSORS)
			return mea_errf(e, MEA_E_LIMIT, "more than %d tensors", MEA_MODEL_MAX_TENSORS);
		if (grow((void **)&m->tensor, &m->cap_tensors, m->ntensors + 1, sizeof *m->tensor))
			return mea_errf(e, MEA_E_NOMEM, "out of memory");
		char name[sizeof p->name];
		p = &m->tensor[t];
		if (snprintf(name, sizeof name, "%s.velocity", p->name) >= (int)sizeof name)
			return mea_errf(e, MEA_E_LIMIT, "tensor %s: name too long for its state",
					p->name);
		w = &m->tensor[m->ntensors++];
		*w = *p;
		memcpy(w->name, name, sizeof name);
		w->kind = MEA_TK_STATE;
		w->of = t;
		w->node = -1;
		w->data = NULL;
		add = 1;
	}
	if (!add)
		return 0;
	if ((rc = count_weights(m, &total, e)) || (rc = place_tensors(m, total, e)))
		return rc;
	for (int t = nt; t < m->ntensors; t++)
		memset(m->tensor[t].data, 0, m->tensor[t].nelem * sizeof(float));
	return 0;
}

/* Tensor t of src goes to place map[t] of dst (none when -1), with the
 * parameter a state tensor belongs to renumbered the same way; dst may be
 * src when map never moves a tensor up.  Returns the floats moved. */
static size_t
move_tensors(struct mea_model *dst, const struct mea_model *src, const int *map)
{
	size_t total = 0;

	for (int t = 0; t < src->ntensors; t++)
		if (map[t] >= 0) {
			struct mea_weight w = src->tensor[t];
			if (w.of >= 0)
				w.of = map[w.of];
			dst->tensor[map[t]] = w;
			total += w.nelem;
		}
	return total;
}

/* A node's parameter slots renumbered by map (no slot is dropped). */
static void
remap_params(struct mea_node *n, const int *map)
{
	for (int k = 0; k < 4; k++)
		if (n->param[k] >= 0)
			n->param[k] = map[n->param[k]];
}

int
mea_model_drop_state(struct mea_model *m, int mask, struct mea_err *e)
{
	int *map, nt = 0;
	size_t total = 0;

	map = malloc(((size_t)m->ntensors + 1) * sizeof *map);
	if (!map)
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	for (int t = 0; t < m->ntensors; t++) {
		const struct mea_weight *w = &m->tensor[t];
		int drop = w->kind == MEA_TK_STATE &&
			(mask & MEA_BLOCK_BIT(m->node[m->tensor[w->of].node].block));
		map[t] = drop ? -1 : nt++;
	}
	if (nt == m->ntensors) {
		free(map);
		return 0;
	}
	/* Parameters are never dropped, so every index a node or a state
	 * holds has a place in the new order. */
	for (int i = 0; i < m->nnodes; i++)
		remap_params(&m->node[i], map);
	total = move_tensors(m, m, map);
	m->ntensors = nt;
	free(map);
	/* A fresh arena of the kept tensors, copied from the old one. */
	return place_tensors(m, total, e);
}

/* ------------------------------------------------------------ the file */

struct layout {
	size_t mean, std, classes, hard, info, nodes, tensors, data, end;
};

/* Section offsets implied by the counts; the counts are within their
 * limits, so nothing here can overflow a 64-bit size. */
static void
layout_of(struct layout *l, uint64_t C, uint64_t nclasses, uint64_t nhard, uint64_t ninfo,
		uint64_t nnodes, uint64_t ntensors, uint64_t data_bytes)
{
	l->mean = MEA_MODEL_HEADER;
	l->std = l->mean + 4 * C;
	l->classes = l->std + 4 * C;
	l->hard = l->classes + MEA_MODEL_CLASS_BYTES * nclasses;
	l->info = l->hard + 4 * nhard;
	l->nodes = l->info + MEA_MODEL_INFO_BYTES * ninfo;
	l->tensors = l->nodes + MEA_MODEL_NODE_BYTES * nnodes;
	l->data = l->tensors + MEA_MODEL_TENSOR_BYTES * ntensors;
	l->end = l->data + data_bytes;
}

/*
 * The header pass: after this returns 0 every count is within its limit
 * and the file is exactly as long as the sections it declares.
 */
static int
check_header(const unsigned char *p, size_t n, struct layout *l, struct mea_err *e)
{
	static const struct { int off; uint32_t max; const char *what; } count[] = {
		{ H_IN_C, MEA_MODEL_MAX_IN_C, "input channels" },
		{ H_IN_H, MEA_MODEL_MAX_IN_SIDE, "input height" },
		{ H_IN_W, MEA_MODEL_MAX_IN_SIDE, "input width" },
		{ H_NCLASSES, MEA_MODEL_MAX_CLASSES, "classes" },
		{ H_NHARD, MEA_MODEL_MAX_CLASSES, "hard classes" },
		{ H_NNODES, MEA_MODEL_MAX_NODES, "nodes" },
		{ H_NTENSORS, MEA_MODEL_MAX_TENSORS, "tensors" },
		{ H_NINFO, MEA_MODEL_MAX_INFO, "info entries" },
	};
	uint64_t fsize, dbytes;

	if (n < 8)
		return mea_errf(e, MEA_E_MODEL, "truncated: %zu bytes, not even a magic number", n);
	if (memcmp(p, MEA_MODEL_MAGIC, 8) != 0)
		return mea_errf(e, MEA_E_MODEL, "not a mea model file (bad magic)");
	if (n < MEA_MODEL_HEADER)
		return mea_errf(e, MEA_E_MODEL, "truncated: %zu bytes, the header alone is %d", n,
				MEA_MODEL_HEADER);
	if (get32(p + H_VERSION) != MEA_MODEL_VERSION)
		return mea_errf(e, MEA_E_MODEL, "version %u, this program reads version %d",
				get32(p + H_VERSION), MEA_MODEL_VERSION);
	if (get32(p + H_FLAGS) != 0)
		return mea_errf(e, MEA_E_MODEL, "flags 0x%x, expected 0", get32(p + H_FLAGS));
	for (size_t k = 0; k < sizeof count / sizeof count[0]; k++) {
		uint32_t v = get32(p + count[k].off);
		if (v > count[k].max)
			return mea_errf(e, MEA_E_MODEL, "%u %s, limit %u", v, count[k].what,
					count[k].max);
	}
	dbytes = get64(p + H_DATABYTES);
	if (dbytes % 4 || dbytes > 4ull * MEA_MODEL_MAX_WEIGHTS)
		return mea_errf(e, MEA_E_MODEL, "%llu bytes of weights: not a whole number of "
				"floats or beyond the limit of %u floats", (unsigned long long)dbytes,
				MEA_MODEL_MAX_WEIGHTS);
	layout_of(l, get32(p + H_IN_C), get32(p + H_NCLASSES), get32(p + H_NHARD),
			get32(p + H_NINFO), get32(p + H_NNODES), get32(p + H_NTENSORS), dbytes);
	fsize = get64(p + H_FILESIZE);
	if (fsize != l->end)
		return mea_errf(e, MEA_E_MODEL, "header: file size %llu, but its sections add up "
				"to %llu bytes", (unsigned long long)fsize, (unsigned long long)l->end);
	if (n < fsize)
		return mea_errf(e, MEA_E_MODEL, "truncated: %zu bytes, the header says %llu", n,
				(unsigned long long)fsize);
	if (n > fsize)
		return mea_errf(e, MEA_E_MODEL, "%zu bytes, the header says %llu (junk at the end)",
				n, (unsigned long long)fsize);
	return 0;
}

static void
parse_node(struct mea_node *n, const unsigned char *q)
{
	memcpy(n->name, q + N_NAME, sizeof n->name);
	n->op = q[N_OP];
	n->block = q[N_BLOCK];
	n->act = q[N_ACT];
	n->ninputs = q[N_NINPUTS];
	n->input[0] = get_index(q + N_INPUT);
	n->input[1] = get_index(q + N_INPUT + 4);
	n->K = get_int(q + N_K);
	n->R = get_int(q + N_R);
	n->S = get_int(q + N_S);
	n->stride = get_int(q + N_STRIDE);
	n->pad = get_int(q + N_PAD);
	n->groups = get_int(q + N_GROUPS);
	n->bias = get_int(q + N_BIAS);
	n->eps = getf(q + N_EPS);
	n->momentum = getf(q + N_MOMENTUM);
	for (int s = 0; s < 4; s++)
		n->param[s] = get_index(q + N_PARAM + 4 * s);
}

static int
parse_tensor(struct mea_weight *w, int t, const unsigned char *q, struct mea_err *e)
{
	size_t nelem = 1;

	if (slot_string(q + T_NAME, sizeof w->name) < 0)
		return mea_errf(e, MEA_E_MODEL, "tensor %d: name not NUL-terminated and padded",
				t);
	memcpy(w->name, q + T_NAME, sizeof w->name);
	w->kind = get_int(q + T_KIND);
	w->ndim = get_int(q + T_NDIM);
	w->of = get_index(q + T_OF);
	w->node = -1;
	if (w->kind < MEA_TK_PARAM || w->kind > MEA_TK_STATE)
		return mea_errf(e, MEA_E_MODEL, "tensor %d (%s): unknown kind %d", t, w->name,
				w->kind);
	if (w->ndim < 1 || w->ndim > MEA_MAX_DIMS)
		return mea_errf(e, MEA_E_MODEL, "tensor %d (%s): %d dimensions, need 1 to %d", t,
				w->name, w->ndim, MEA_MAX_DIMS);
	if (get32(q + T_RESERVED))
		return mea_errf(e, MEA_E_MODEL, "tensor %d (%s): reserved field not zero", t,
				w->name);
	for (int d = 0; d < MEA_MAX_DIMS; d++) {
		w->dim[d] = get32(q + T_DIM + 4 * d);
		if (d >= w->ndim ? w->dim[d] != 0 : w->dim[d] < 1 || w->dim[d] > MEA_MAX_DIM)
			return mea_errf(e, MEA_E_MODEL, "tensor %d (%s): dimension %d is %u", t,
					w->name, d, w->dim[d]);
		if (d < w->ndim)
			nelem *= w->dim[d];   /* at most 2^26 so far: no overflow */
		if (nelem > MEA_MAX_TENSOR_BYTES / sizeof(float))
			return mea_errf(e, MEA_E_MODEL, "tensor %d (%s): beyond the limit of %u "
					"values", t, w->name, (unsigned)(MEA_MAX_TENSOR_BYTES / sizeof(float)));
	}
	w->nelem = nelem;
	return 0;
}

/* The second pass, into m; the layout is known to fit. */
static int
parse_body(struct mea_model *m, const unsigned char *p, const struct layout *l,
		uint64_t data_bytes, struct mea_err *e)
{
	size_t total = 0;
	int rc;

	for (int c = 0; c < m->in_c; c++) {
		m->mean[c] = getf(p + l->mean + 4 * (size_t)c);
		m->std[c] = getf(p + l->std + 4 * (size_t)c);
	}
	for (int k = 0; k < m->nclasses; k++) {
		const unsigned char *q = p + l->classes + (size_t)k * MEA_MODEL_CLASS_BYTES;
		if (slot_string(q, MEA_MODEL_CLASS_BYTES) < 0)
			return mea_errf(e, MEA_E_MODEL, "class %d: name not NUL-terminated and padded", k);
		memcpy(m->class_name[k], q, MEA_MODEL_CLASS_BYTES);
	}
	for (int k = 0; k < m->nhard; k++)
		m->hard[k] = get_int(p + l->hard + 4 * (size_t)k);
	for (int k = 0; k < m->ninfo; k++) {
		const unsigned char *q = p + l->info + (size_t)k * MEA_MODEL_INFO_BYTES;
		if (slot_string(q, sizeof m->info[k].key) < 0 ||
				slot_string(q + sizeof m->info[k].key, sizeof m->info[k].value) < 0)
			return mea_errf(e, MEA_E_MODEL, "info entry %d: key or value not "
					"NUL-terminated and padded", k);
		memcpy(m->info[k].key, q, sizeof m->info[k].key);
		memcpy(m->info[k].value, q + sizeof m->info[k].key, sizeof m->info[k].value);
	}
	for (int i = 0; i < m->nnodes; i++) {
		const unsigned char *q = p + l->nodes + (size_t)i * MEA_MODEL_NODE_BYTES;
		if (slot_string(q + N_NAME, sizeof m->node[i].name) < 0)
			return mea_errf(e, MEA_E_MODEL, "node %d: name not NUL-terminated and padded", i);
		parse_node(&m->node[i], q);
		for (int k = N_RESERVED; k < MEA_MODEL_NODE_BYTES; k++)
			if (q[k])
				return mea_errf(e, MEA_E_MODEL, "node %d (%s): reserved bytes not zero",
						i, m->node[i].name);
	}
	for (int t = 0; t < m->ntensors; t++) {
		const unsigned char *q = p + l->tensors + (size_t)t * MEA_MODEL_TENSOR_BYTES;
		if ((rc = parse_tensor(&m->tensor[t], t, q, e)))
			return rc;
		total += m->tensor[t].nelem;   /* <= 2^14 tensors of <= 2^26: fits */
	}
	if ((uint64_t)total * 4 != data_bytes)
		return mea_errf(e, MEA_E_MODEL, "the tensors hold %zu bytes, the header says %llu",
				total * 4, (unsigned long long)data_bytes);
	if ((rc = place_tensors(m, total, e)))
		return rc;
	for (size_t k = 0; k < total; k++)
		m->arena[k] = getf(p + l->data + 4 * k);
	return 0;
}

int
mea_model_decode(struct mea_model **mp, const void *buf, size_t n, const char *name,
		struct mea_err *e)
{
	const unsigned char *p = buf;
	struct mea_model *m = NULL;
	struct layout l = { 0 };
	uint64_t dbytes;
	int rc;

	*mp = NULL;
	if ((rc = check_header(p, n, &l, e)))
		goto fail;
	dbytes = get64(p + H_DATABYTES);
	if ((rc = model_alloc(&m, get_int(p + H_IN_C), get_int(p + H_NCLASSES),
			get_int(p + H_NHARD), get_int(p + H_NINFO), get_int(p + H_NNODES),
			get_int(p + H_NTENSORS), e)))
		goto fail;
	m->in_h = get_int(p + H_IN_H);
	m->in_w = get_int(p + H_IN_W);
	m->nnodes = get_int(p + H_NNODES);
	m->ntensors = get_int(p + H_NTENSORS);
	m->threshold = getf(p + H_THRESHOLD);
	m->node_logits = get_index(p + H_LOGITS);
	m->node_feat = get_index(p + H_FEAT);
	m->node_ext = get_index(p + H_EXT);
	if ((rc = parse_body(m, p, &l, dbytes, e)) || (rc = mea_model_check(m, e)))
		goto fail;
	/* The stored costs are for readers that do not build the graph; they
	 * must agree with what the graph says. */
	for (int b = 0; b < MEA_NBLOCKS; b++) {
		uint64_t macs = get64(p + H_MACS + 8 * b), params = get64(p + H_PARAMS + 8 * b);
		if (macs != m->macs[b] || params != m->params[b]) {
			rc = mea_errf(e, MEA_E_MODEL, "header: %s block %llu MACs and %llu parameters, "
					"the graph has %llu and %llu", mea_block_name(b),
					(unsigned long long)macs, (unsigned long long)params,
					(unsigned long long)m->macs[b], (unsigned long long)m->params[b]);
			goto fail;
		}
	}
	*mp = m;
	return 0;
fail:
	mea_model_free(m);
	if (name)
		mea_err_prefix(e, "%s", name);
	return rc;
}

int
mea_model_load(struct mea_model **mp, const char *path, struct mea_err *e)
{
	unsigned char *buf = NULL;
	struct stat st;
	size_t n = 0;
	FILE *f;
	int rc;

	*mp = NULL;
	if (!(f = fopen(path, "rb")))
		return mea_errf(e, MEA_E_MODEL, "%s: %s", path, strerror(errno));
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		return mea_errf(e, MEA_E_MODEL, "%s: not a regular file", path);
	}
	/* The largest file the limits allow is a little over 1 GiB of weights. */
	if ((uint64_t)st.st_size > 4ull * MEA_MODEL_MAX_WEIGHTS + (64u << 20)) {
		fclose(f);
		return mea_errf(e, MEA_E_MODEL, "%s: %lld bytes is beyond any model's size", path,
				(long long)st.st_size);
	}
	if (!(buf = malloc((size_t)st.st_size + 1))) {
		fclose(f);
		return mea_errf(e, MEA_E_NOMEM, "%s: out of memory", path);
	}
	/* Read one byte past the size fstat gave, to see a file that grew. */
	n = fread(buf, 1, (size_t)st.st_size + 1, f);
	if (ferror(f)) {
		rc = mea_errf(e, MEA_E_MODEL, "%s: %s", path, strerror(errno));
	} else {
		rc = mea_model_decode(mp, buf, n, path, e);
	}
	fclose(f);
	free(buf);
	return rc;
}

static void
encode_node(unsigned char *q, const struct mea_node *n)
{
	memcpy(q + N_NAME, n->name, strnlen(n->name, sizeof n->name - 1));
	q[N_OP] = (unsigned char)n->op;
	q[N_BLOCK] = (unsigned char)n->block;
	q[N_ACT] = (unsigned char)n->act;
	q[N_NINPUTS] = (unsigned char)n->ninputs;
	put32(q + N_INPUT, put_index(n->input[0]));
	put32(q + N_INPUT + 4, put_index(n->input[1]));
	put32(q + N_K, (uint32_t)n->K);
	put32(q + N_R, (uint32_t)n->R);
	put32(q + N_S, (uint32_t)n->S);
	put32(q + N_STRIDE, (uint32_t)n->stride);
	put32(q + N_PAD, (uint32_t)n->pad);
	put32(q + N_GROUPS, (uint32_t)n->groups);
	put32(q + N_BIAS, (uint32_t)n->bias);
	putf(q + N_EPS, n->eps);
	putf(q + N_MOMENTUM, n->momentum);
	for (int s = 0; s < 4; s++)
		put32(q + N_PARAM + 4 * s, put_index(n->param[s]));
}

int
mea_model_encode(const struct mea_model *m, unsigned char **out, size_t *len,
		struct mea_err *e)
{
	struct layout l;
	unsigned char *p;
	size_t total = 0;

	*out = NULL;
	*len = 0;
	for (int t = 0; t < m->ntensors; t++)
		total += m->tensor[t].nelem;
	if (total > MEA_MODEL_MAX_WEIGHTS)
		return mea_errf(e, MEA_E_LIMIT, "more than %u weight values", MEA_MODEL_MAX_WEIGHTS);
	layout_of(&l, (uint64_t)m->in_c, (uint64_t)m->nclasses, (uint64_t)m->nhard,
			(uint64_t)m->ninfo, (uint64_t)m->nnodes, (uint64_t)m->ntensors,
			4 * (uint64_t)total);
	if (!(p = calloc(1, l.end)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory for a %zu-byte model", l.end);
	memcpy(p + H_MAGIC, MEA_MODEL_MAGIC, 8);
	put32(p + H_VERSION, MEA_MODEL_VERSION);
	put64(p + H_FILESIZE, l.end);
	put32(p + H_IN_C, (uint32_t)m->in_c);
	put32(p + H_IN_H, (uint32_t)m->in_h);
	put32(p + H_IN_W, (uint32_t)m->in_w);
	put32(p + H_NCLASSES, (uint32_t)m->nclasses);
	put32(p + H_NHARD, (uint32_t)m->nhard);
	put32(p + H_NNODES, (uint32_t)m->nnodes);
	put32(p + H_NTENSORS, (uint32_t)m->ntensors);
	put32(p + H_NINFO, (uint32_t)m->ninfo);
	putf(p + H_THRESHOLD, m->threshold);
	put32(p + H_LOGITS, put_index(m->node_logits));
	put32(p + H_FEAT, put_index(m->node_feat));
	put32(p + H_EXT, put_index(m->node_ext));
	for (int b = 0; b < MEA_NBLOCKS; b++) {
		put64(p + H_MACS + 8 * b, m->macs[b]);
		put64(p + H_PARAMS + 8 * b, m->params[b]);
	}
	put64(p + H_DATABYTES, 4 * (uint64_t)total);
	for (int c = 0; c < m->in_c; c++) {
		putf(p + l.mean + 4 * (size_t)c, m->mean[c]);
		putf(p + l.std + 4 * (size_t)c, m->std[c]);
	}
	for (int k = 0; k < m->nclasses; k++)
		memcpy(p + l.classes + (size_t)k * MEA_MODEL_CLASS_BYTES, m->class_name[k],
				strnlen(m->class_name[k], MEA_MODEL_CLASS_BYTES - 1));
	for (int k = 0; k < m->nhard; k++)
		put32(p + l.hard + 4 * (size_t)k, (uint32_t)m->hard[k]);
	for (int k = 0; k < m->ninfo; k++) {
		unsigned char *q = p + l.info + (size_t)k * MEA_MODEL_INFO_BYTES;
		memcpy(q, m->info[k].key, strnlen(m->info[k].key, MEA_MODEL_KEY_LEN));
		memcpy(q + MEA_MODEL_KEY_LEN + 1, m->info[k].value,
				strnlen(m->info[k].value, MEA_MODEL_VALUE_LEN));
	}
	for (int i = 0; i < m->nnodes; i++)
		encode_node(p + l.nodes + (size_t)i * MEA_MODEL_NODE_BYTES, &m->node[i]);
	for (int t = 0; t < m->ntensors; t++) {
		unsigned char *q = p + l.tensors + (size_t)t * MEA_MODEL_TENSOR_BYTES;
		const struct mea_weight *w = &m->tensor[t];
		memcpy(q + T_NAME, w->name, strnlen(w->name, sizeof w->name - 1));
		put32(q + T_KIND, (uint32_t)w->kind);
		put32(q + T_NDIM, (uint32_t)w->ndim);
		for (int d = 0; d < w->ndim && d < MEA_MAX_DIMS; d++)
			put32(q + T_DIM + 4 * d, w->dim[d]);
		put32(q + T_OF, put_index(w->of));
	}
	{
		unsigned char *q = p + l.data;
		for (int t = 0; t < m->ntensors; t++)
			for (size_t k = 0; k < m->tensor[t].nelem; k++, q += 4)
				putf(q, m->tensor[t].data[k]);
	}
	*out = p;
	*len = l.end;
	return 0;
}

int
mea_model_save(const struct mea_model *m, const char *path, struct mea_err *e)
{
	struct stat st;
	unsigned char *buf;
	size_t len;
	char *tmp;
	int fd, rc;

	/* The rename below would replace whatever path names: a device such
	 * as /dev/null, a FIFO, a symbolic link.  Only regular files are
	 * replaced. */
	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
		return mea_errf(e, MEA_E_IO, "%s: not a regular file; a model is written only "
				"to a new or regular file", path);
	if ((rc = mea_model_encode(m, &buf, &len, e)))
		return mea_err_prefix(e, "%s", path);
	if (!(tmp = malloc(strlen(path) + 16))) {
		free(buf);
		return mea_errf(e, MEA_E_NOMEM, "%s: out of memory", path);
	}
	/* A reader never sees half a model: write beside it, then rename. */
	sprintf(tmp, "%s.tmpXXXXXX", path);
	if ((fd = mkstemp(tmp)) < 0) {
		rc = mea_errf(e, MEA_E_IO, "%s: %s", path, strerror(errno));
	} else if (mea_write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
		rc = mea_errf(e, MEA_E_IO, "%s: %s", path, strerror(errno));
		close(fd);
		unlink(tmp);
	} else if (fchmod(fd, 0644) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
		rc = mea_errf(e, MEA_E_IO, "%s: %s", path, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	free(buf);
	return rc;
}

/* ------------------------------------------------------- extraction */

int
mea_model_extract(struct mea_model **out, const struct mea_model *m, int mask,
		struct mea_err *e)
{
	int *nmap = NULL, *tmap = NULL, nn = 0, nt = 0, rc;
	struct mea_model *x = NULL;
	size_t off = 0;

	*out = NULL;
	if (!(mask & MEA_BLOCK_BIT(MEA_BLOCK_MAIN)))
		return mea_errf(e, MEA_E_ARG, "a model needs its main block");
	if ((mask & MEA_BLOCK_BIT(MEA_BLOCK_EXT)) && !(mask & MEA_BLOCK_BIT(MEA_BLOCK_ADAPTIVE)) &&
			m->node_ext >= 0)
		return mea_errf(e, MEA_E_ARG, "the extension block needs the adaptive block");
	if (!(mask & MEA_BLOCK_BIT(MEA_BLOCK_EXT)))
		mask &= ~MEA_BLOCK_BIT(MEA_BLOCK_ADAPTIVE);  /* useless without it */
	nmap = malloc((size_t)m->nnodes * sizeof *nmap);
	tmap = malloc(((size_t)m->ntensors + 1) * sizeof *tmap);
	if (!nmap || !tmap) {
		rc = mea_errf(e, MEA_E_NOMEM, "out of memory");
		goto done;
	}
	for (int i = 0; i < m->nnodes; i++)
		nmap[i] = mask & MEA_BLOCK_BIT(m->node[i].block) ? nn++ : -1;
	for (int t = 0; t < m->ntensors; t++) {
		const struct mea_weight *w = &m->tensor[t];
		int node = w->kind == MEA_TK_STATE ? m->tensor[w->of].node : w->node;
		tmap[t] = nmap[node] >= 0 ? nt++ : -1;
	}
	if ((rc = model_alloc(&x, m->in_c, m->nclasses, m->nhard, m->ninfo, nn, nt, e)))
		goto done;
	x->in_h = m->in_h;
	x->in_w = m->in_w;
	memcpy(x->mean, m->mean, (size_t)m->in_c * sizeof *x->mean);
	memcpy(x->std, m->std, (size_t)m->in_c * sizeof *x->std);
	memcpy(x->class_name, m->class_name, (size_t)m->nclasses * sizeof *x->class_name);
	memcpy(x->hard, m->hard, (size_t)m->nhard * sizeof *x->hard);
	memcpy(x->info, m->info, (size_t)m->ninfo * sizeof *x->info);
	x->threshold = m->threshold;
	x->node_logits = nmap[m->node_logits];
	x->node_feat = m->node_ext >= 0 && (mask & MEA_BLOCK_BIT(MEA_BLOCK_EXT)) ?
		nmap[m->node_feat] : -1;
	x->node_ext = m->node_ext >= 0 ? nmap[m->node_ext] : -1;
	for (int i = 0; i < m->nnodes; i++) {
		struct mea_node *n;
		if (nmap[i] < 0)
			continue;
		n = &x->node[nmap[i]];
		*n = m->node[i];
		for (int k = 0; k < n->ninputs; k++)
			n->input[k] = nmap[n->input[k]];
		remap_params(n, tmap);
	}
	off = move_tensors(x, m, tmap);
	x->nnodes = nn;
	x->ntensors = nt;
	/* place_tensors copies the data from m's arena into x's own. */
	if ((rc = place_tensors(x, off, e)) || (rc = mea_model_check(x, e)))
		goto done;
	*out = x;
	x = NULL;
done:
	mea_model_free(x);
	free(nmap);
	free(tmap);
	return rc;
}

/* ------------------------------------------------------------ printing */

void
mea_model_print(FILE *f, const struct mea_model *m, int verbose)
{
	const char *arch = mea_model_get_info(m, "arch");

	fprintf(f, "model %s: input %dx%dx%d, %d classes, %d hard, T %g\n",
			arch ? arch : "?", m->in_c, m->in_h, m->in_w, m->nclasses, m->nhard,
			m->threshold);
	for (int b = 0; b < MEA_NBLOCKS; b++)
		if (m->macs[b] || m->params[b])
			fprintf(f, "block %-9s %12llu MACs %10llu params (%.1f M MACs, %.3f M params)\n",
					mea_block_name(b), (unsigned long long)m->macs[b],
					(unsigned long long)m->params[b], m->macs[b] / 1e6,
					m->params[b] / 1e6);
	if (!verbose)
		return;
	for (int i = 0; i < m->nnodes; i++) {
		const struct mea_node *n = &m->node[i];
		fprintf(f, "%4d %-24s %-9s %-7s %dx%dx%d", i, n->name, mea_block_name(n->block),
				mea_op_name(n->op), n->C, n->H, n->W);
		for (int k = 0; k < n->ninputs; k++)
			fprintf(f, " <%d", n->input[k]);
		if (n->act)
			fprintf(f, " %s", act_name(n->act));
		fputc('\n', f);
	}
}
