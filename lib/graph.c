/*
 * graph.c: the graph engine.  A plan turns the part of a model between the
 * given nodes and the wanted nodes into a list of steps for a fixed
 * largest batch, and allocates everything those steps need once:
 *
 *  - Inference steps fold each batch normalisation into the convolution
 *    that feeds it (a private copy of the weights, so the model itself
 *    stays trainable) and share activation buffers: a buffer returns to a
 *    free list after the last step that reads it, and the next output
 *    takes the smallest free buffer that fits (or grows the largest), so
 *    a ResNet needs about three buffers whatever its depth.  Runs of
 *    steps go over a slice of the batch at a time, slices growing along
 *    the network (plan_slices), so the buffers within a run hold a
 *    slice, not the batch; the values read across runs, and the final
 *    fully connected layers, which run once on the whole batch
 *    (mark_tail), hold it all.
 *    MobileNetV2's large inverted residuals run as one step each
 *    (fuse_blocks), their expanded activations never stored whole.
 *  - Training steps (the blocks in train_mask) keep every activation, run
 *    bn on batch statistics (saving mean and 1/std for backward and
 *    updating the running statistics), and have gradient buffers for each
 *    value downstream of a trained parameter, zeroed lazily (see
 *    mea_plan_zero_grad).  Frozen blocks run as in
 *    inference and are never differentiated: MEANet's extension reads the
 *    main block's features detached.
 *
 * Values are named by node index.  A folded bn has no buffer of its own:
 * owner[bn] is the convolution whose output it rewrites.  In inference a
 * residual add whose one operand is such a convolution's (used nowhere
 * else and not activated) is fused into it too: the convolution's step
 * moves to the add's place in the order, takes the add's other operand as
 * its second input and the add's activation, and writes the add's value
 * (owner[add] is the convolution), so a ResNet block ends in one pass
 * over its output instead of four (bias, add, ReLU, and the copy out of
 * the GEMM's scratch, which the fused write replaces).  In training, the
 * activation of a bn is applied by the bn kernels themselves, forward and
 * backward.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mea.h"
#include "model.h"

struct step {
	int node;
	int train;            /* 1: training mode */
	int in[2];            /* value owners of the inputs, -1 */
	int out;              /* value owner of the output */
	int bn;               /* inference: the bn folded into this conv, or -1 */
	int add;              /* inference: the add fused into this conv, or -1;
	                       * in[1] is then the other operand */
	const float *fw, *fb; /* folded weight and bias, or NULL; a step with
	                       * clw: fw is clw, its weight folded and rearranged */
	struct mea_conv_shape cs;
	struct mea_pool_shape ps;
	int slice;            /* images per pass of its run of steps (plan_slices) */
	size_t save;          /* train bn: offset into p->save; maxpool: into p->argmax */
	double seconds;       /* profiling: summed wall time */
	uint64_t images;
	/* Inference: a whole inverted residual runs in this step, which is
	 * its expansion (see fuse_blocks); then these are its depthwise and
	 * projection steps (folded weights and all), and in[1], out and add
	 * are the projection's. */
	int ir;
	struct step *part;    /* [3], owned: the expansion, depthwise and
	                         projection steps as they were */
	struct mea_ir_shape is;
	/* Inference: the step runs channels-last (mark_channels_last); clw
	 * are the weights of it, or of a fused block, as the channels-last
	 * kernels take them (rearrange_weights). */
	int cl;
	float *clw;
};

struct mea_plan {
	struct mea_model *m;
	int batch, n;         /* largest batch; images in the last forward */
	int tail;             /* steps [tail, nstep) run once on the whole batch */
	int profile;          /* time the forward steps */
	int plain;            /* no inference-only lowering (mea_plan_opts) */
	int row_shift;        /* training by row shifts (mea_plan_opts) */
	int training;         /* any step trains */
	int keep_stats;       /* training bn does not update running statistics */
	float drop;           /* feature dropout at trained concats (mea_plan_set_drop) */
	uint64_t drop_seed;
	int drop_first;       /* the batch index of this plan's image 0 */
	int *owner;           /* node -> node owning the buffer of its value */
	unsigned char *pinned, *needgrad;
	unsigned char *whole; /* values that hold the whole batch, not a slice */
	unsigned char *stale;  /* grad[v] stands for zeros, holds garbage (see zero_grad) */
	unsigned char *cl;    /* values stored channels-last (mark_channels_last) */
	float **val, **grad;  /* per owner */
	struct step *step;
	int nstep;
	float **buf;          /* distinct activation buffers, freed at the end */
	int nbuf;
	float *work, *folded, *pgrad, *save, *scratch;
	float *cl_tmp, *clw;  /* layout changes of a step's inputs; the clw */
	int32_t *argmax;
	size_t bytes;
};

static size_t
per_image(const struct mea_node *n)
{
	return (size_t)n->C * (size_t)n->H * (size_t)n->W;
}

static float
act_cap(int act)
{
	return act == MEA_ACT_RELU6 ? 6.0f : 0.0f;
}

static const float *
tdata(const struct mea_model *m, int t)
{
	return t >= 0 ? m->tensor[t].data : NULL;
}

void
mea_plan_free(struct mea_plan *p)
{
	if (!p)
		return;
	for (int b = 0; b < p->nbuf; b++)
		free(p->buf[b]);
	for (int v = 0; p->grad && v < p->m->nnodes; v++)
		free(p->grad[v]);
	free(p->buf);
	free(p->owner);
	free(p->pinned);
	free(p->whole);
	for (int s = 0; p->step && s < p->nstep; s++)
		free(p->step[s].part);
	free(p->needgrad);
	free(p->stale);
	free(p->cl);
	free(p->cl_tmp);
	free(p->clw);
	free(p->val);
	free(p->grad);
	free(p->step);
	free(p->work);
	free(p->folded);
	free(p->pgrad);
	free(p->save);
	free(p->scratch);
	free(p->argmax);
	free(p);
}

/* malloc of count elements of size, counting the bytes; NULL with e set
 * (MEA_E_LIMIT or MEA_E_NOMEM) on failure. */
static void *
plan_alloc(struct mea_plan *p, size_t count, size_t size, int zero, struct mea_err *e)
{
	size_t n;
	void *q;

	if (mea_mul_size(count ? count : 1, size, &n) || n > SIZE_MAX / 2) {
		mea_errf(e, MEA_E_LIMIT, "a plan buffer of %zu x %zu bytes is too large", count, size);
		return NULL;
	}
	q = zero ? calloc(1, n) : malloc(n);
	if (!q) {
		mea_errf(e, MEA_E_NOMEM, "out of memory for a %zu-byte plan buffer", n);
		return NULL;
	}
	p->bytes += n;
	return q;
}

/* Which nodes the wanted outputs need, stopping at the given inputs. */
static int
mark_needed(struct mea_plan *p, const struct mea_plan_opts *o, unsigned char *need,
		unsigned char *given, struct mea_err *e)
{
	const struct mea_model *m = p->m;

	for (int k = 0; k < o->noutputs; k++)
		need[o->output[k]] = 1;
	for (int k = 0; k < o->ninputs; k++)
		given[o->input[k]] = 1;
	for (int i = m->nnodes - 1; i >= 0; i--) {
		if (!need[i] || given[i])
			continue;
		if (m->node[i].op == MEA_OP_INPUT)
			return mea_errf(e, MEA_E_ARG, "the wanted outputs need node %d (%s), which is "
					"not given", i, m->node[i].name);
		for (int k = 0; k < m->node[i].ninputs; k++)
			need[m->node[i].input[k]] = 1;
	}
	return 0;
}

/* Make the steps, fold bn into convolutions where the plan allows it, and
 * decide which values need gradients. */
static int
make_steps(struct mea_plan *p, const struct mea_plan_opts *o, const unsigned char *need,
		const unsigned char *given, struct mea_err *e)
{
	const struct mea_model *m = p->m;
	int *nuse = calloc((size_t)m->nnodes, sizeof *nuse);
	int *fold = malloc((size_t)m->nnodes * sizeof *fold);
	int *fadd = malloc((size_t)m->nnodes * sizeof *fadd);

	if (!nuse || !fold || !fadd) {
		free(nuse);
		free(fold);
		free(fadd);
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	}
	for (int i = 0; i < m->nnodes; i++) {
		p->owner[i] = i;
		fold[i] = -1;
		fadd[i] = -1;
		if (need[i] && !given[i])
			for (int k = 0; k < m->node[i].ninputs; k++)
				nuse[m->node[i].input[k]]++;
	}
	for (int k = 0; k < o->noutputs; k++)
		nuse[o->output[k]]++;   /* a wanted conv keeps its own output */
	for (int i = 0; i < m->nnodes; i++) {
		const struct mea_node *n = &m->node[i];
		int c = n->ninputs ? n->input[0] : -1;
		if (!need[i] || given[i] || n->op != MEA_OP_BN || given[c] ||
				m->node[c].op != MEA_OP_CONV || m->node[c].act || nuse[c] != 1 ||
				(o->train_mask & MEA_BLOCK_BIT(n->block)) ||
				(o->train_mask & MEA_BLOCK_BIT(m->node[c].block)))
			continue;
		p->owner[i] = c;
		fold[c] = i;
	}
	/* Adds into the convolution that computes one operand (see the top). */
	for (int i = 0; i < m->nnodes; i++) {
		const struct mea_node *n = &m->node[i];
		if (!need[i] || given[i] || n->op != MEA_OP_ADD ||
				(o->train_mask & MEA_BLOCK_BIT(n->block)))
			continue;
		for (int k = 0; k < 2; k++) {
			int v = n->input[k], c = p->owner[v];
			const struct mea_node *cn = &m->node[c];
			if (given[v] || given[c] || cn->op != MEA_OP_CONV || fadd[c] >= 0 ||
					nuse[v] != 1 || m->node[v].act || cn->act ||
					p->owner[n->input[1 - k]] == c ||
					(o->train_mask & MEA_BLOCK_BIT(cn->block)))
				continue;
			p->owner[i] = c;
			fadd[c] = i;
			break;
		}
	}
	for (int i = 0; i < m->nnodes; i++) {
		const struct mea_node *n = &m->node[i];
		struct step *s;
		int at = i;     /* the node whose step this is */
		if (!need[i] || given[i] || fadd[i] >= 0)
			continue;         /* a fused conv runs at its add */
		if (p->owner[i] != i) {
			if (n->op != MEA_OP_ADD)
				continue;         /* a folded bn */
			at = p->owner[i];
		}
		s = &p->step[p->nstep++];
		memset(s, 0, sizeof *s);
		s->node = at;
		s->train = (o->train_mask & MEA_BLOCK_BIT(n->block)) != 0;
		if (at == i) {
			s->in[0] = n->ninputs > 0 ? p->owner[n->input[0]] : -1;
			s->in[1] = n->ninputs > 1 ? p->owner[n->input[1]] : -1;
		} else {
			/* The convolution's input, then the add's other operand. */
			s->in[0] = p->owner[m->node[at].input[0]];
			s->in[1] = p->owner[n->input[p->owner[n->input[0]] == at]];
		}
		s->out = at;
		s->bn = fold[at];
		s->add = at != i ? i : -1;
		n = &m->node[at];
		p->training |= s->train;
		/* A value needs a gradient when a trained parameter lies upstream. */
		if (s->train && n->param[0] >= 0)
			p->needgrad[at] = 1;
		for (int k = 0; k < 2; k++)
			if (s->in[k] >= 0 && p->needgrad[s->in[k]]) {
				if (!s->train) {
					free(nuse);
					free(fold);
					free(fadd);
					return mea_errf(e, MEA_E_ARG, "node %d (%s) of the frozen %s block "
							"reads trained node %d", at, n->name,
							mea_block_name(n->block), s->in[k]);
				}
				p->needgrad[at] = 1;
			}
	}
	free(nuse);
	free(fold);
	free(fadd);
	return 0;
}

/* Give every value a buffer.  Inference values share buffers by lifetime;
 * given, wanted and training values each get their own. */
static int
assign_buffers(struct mea_plan *p, const unsigned char *given, struct mea_err *e)
{
	const struct mea_model *m = p->m;
	int nv = m->nnodes, rc = 0;
	int *last = malloc((size_t)nv * sizeof *last);
	int *bufof = malloc((size_t)nv * sizeof *bufof);
	size_t *cap = calloc((size_t)nv + 1, sizeof *cap);
	unsigned char *busy = calloc((size_t)nv + 1, 1);
	unsigned char *full = calloc((size_t)nv + 1, 1);   /* holds the whole batch */
	int nbuf = 0;

	if (!last || !bufof || !cap || !busy || !full) {
		rc = mea_errf(e, MEA_E_NOMEM, "out of memory");
		goto done;
	}
	for (int v = 0; v < nv; v++) {
		last[v] = -1;
		bufof[v] = -1;
	}
	for (int s = 0; s < p->nstep; s++)
		for (int k = 0; k < 2; k++)
			if (p->step[s].in[k] >= 0)
				last[p->step[s].in[k]] = s;
	for (int v = 0; v < nv; v++)
		if (given[v] || p->whole[v]) {
			bufof[v] = nbuf;
			if (mea_mul_size(per_image(&m->node[v]), (size_t)p->batch, &cap[nbuf]))
				cap[nbuf] = SIZE_MAX;
			full[nbuf] = 1;
			busy[nbuf++] = 1;
		}
	for (int s = 0; s < p->nstep; s++) {
		int v = p->step[s].out, best = -1;
		size_t need;
		/* Floats of a slice of the value; SIZE_MAX fails below. */
		if (mea_mul_size(per_image(&m->node[v]), (size_t)p->step[s].slice, &need))
			need = SIZE_MAX;
		if (bufof[v] < 0 && p->training) {
			bufof[v] = nbuf;
			cap[nbuf] = need;
			busy[nbuf++] = 1;
		}
		if (bufof[v] < 0) {
			/* The smallest free buffer that fits, else the largest free
			 * one (grown), else a new one. */
			for (int b = 0; b < nbuf; b++) {
				int fits = cap[b] >= need, best_fits = best >= 0 && cap[best] >= need;
				if (busy[b])
					continue;
				if (best < 0 || (fits && (!best_fits || cap[b] < cap[best])) ||
						(!fits && !best_fits && cap[b] > cap[best]))
					best = b;
			}
			if (best < 0)
				best = nbuf++;
			if (cap[best] < need)
				cap[best] = need;
			busy[best] = 1;
			bufof[v] = best;
		}
		if (p->training)
			continue;
		/* Inputs read for the last time free their buffers only now, so an
		 * output never overwrites its own input. */
		for (int k = 0; k < 2; k++) {
			int u = p->step[s].in[k];
			if (u >= 0 && last[u] == s && !p->whole[u] && !given[u])
				busy[bufof[u]] = 0;
		}
	}
	if (!(p->buf = calloc((size_t)nbuf + 1, sizeof *p->buf))) {
		rc = mea_errf(e, MEA_E_NOMEM, "out of memory");
		goto done;
	}
	for (int b = 0; b < nbuf; b++) {
		size_t n = cap[b];
		if (n > INT_MAX) {
			rc = mea_errf(e, MEA_E_LIMIT, "an activation of %s values is too large for "
					"a batch of %d", full[b] ? "a batch's" : "a slice's", p->batch);
			goto done;
		}
		if (!(p->buf[b] = plan_alloc(p, n, sizeof(float), 1, e))) {
			rc = e ? e->code : MEA_E_NOMEM;
			goto done;
		}
		p->nbuf = b + 1;
	}
	for (int v = 0; v < nv; v++)
		if (bufof[v] >= 0)
			p->val[v] = p->buf[bufof[v]];
done:
	free(last);
	free(bufof);
	free(cap);
	free(busy);
	free(full);
	return rc;
}

/* Floats of the folded weight a conv step with a bn needs. */
static size_t
folded_weight_size(const struct mea_model *m, const struct step *st)
{
	return st->bn < 0 ? 0 : m->tensor[m->node[st->node].param[MEA_P_WEIGHT]].nelem;
}

/* Floats of folded bias, and of folded weight unless the step's weights
 * are rearranged (rearrange_weights: they are folded into a temporary
 * then), a conv step with a bn needs. */
static size_t
folded_size(const struct mea_model *m, const struct step *st, int rearranged)
{
	return st->bn < 0 ? 0 : (rearranged ? 0 : folded_weight_size(m, st)) +
		(size_t)m->node[st->node].K;
}

/* A conv step's bn folded into a copy of its weight and bias, at
 * p->folded + *off; the weight at wtmp instead when not NULL (see
 * folded_size). */
static void
fold(struct mea_plan *p, struct step *st, size_t *off, float *wtmp)
{
	const struct mea_model *m = p->m;
	const struct mea_node *n = &m->node[st->node], *bn;
	const struct mea_weight *w;
	float *fw, *fb;

	if (st->bn < 0)
		return;
	bn = &m->node[st->bn];
	w = &m->tensor[n->param[MEA_P_WEIGHT]];
	fw = wtmp ? wtmp : p->folded + *off;
	fb = wtmp ? p->folded + *off : fw + w->nelem;
	*off += (wtmp ? 0 : w->nelem) + (size_t)n->K;
	memcpy(fw, w->data, w->nelem * sizeof *fw);
	if (n->bias)
		memcpy(fb, tdata(m, n->param[MEA_P_BIAS]), (size_t)n->K * sizeof *fb);
	else
		memset(fb, 0, (size_t)n->K * sizeof *fb);
	mea_bn_fold(n->K, w->nelem / (size_t)n->K, fw, fb,
			tdata(m, bn->param[MEA_P_GAMMA]), tdata(m, bn->param[MEA_P_BETA]),
			tdata(m, bn->param[MEA_P_MEAN]), tdata(m, bn->param[MEA_P_VAR]), bn->eps);
	st->fw = fw;
	st->fb = fb;
}

static int needs_relayout(const struct mea_plan *p, const struct step *st, int k);

static const float *
step_weight(const struct mea_model *m, const struct step *st)
{
	return st->fw ? st->fw : tdata(m, m->node[st->node].param[MEA_P_WEIGHT]);
}

static const float *
step_bias(const struct mea_model *m, const struct step *st)
{
	return st->fw ? st->fb : tdata(m, m->node[st->node].param[MEA_P_BIAS]);
}

/* Floats of the weights a channels-last step, or a fused block (its
 * expansion, depthwise and projection weights), takes rearranged. */
static size_t
cl_weights_size(const struct mea_model *m, const struct step *st)
{
	const struct mea_node *n = &m->node[st->node];
	size_t C = (size_t)m->node[st->in[0]].C, K = (size_t)n->K;

	if (st->ir)
		return K * C + 10 * K + K * (size_t)m->node[st->part[2].node].K;
	return n->groups > 1 ? 10 * K : K * C;
}

/* Step st's weights as its kernels take them, at p->clw + *off. */
static void
rearrange_weights(struct mea_plan *p, struct step *st, size_t *off)
{
	const struct mea_model *m = p->m;
	const struct mea_node *n = &m->node[st->node];
	int C = m->node[st->in[0]].C;

	st->clw = p->clw + *off;
	*off += cl_weights_size(m, st);
	if (st->ir) {
		float *w[3] = { st->clw, st->clw + (size_t)n->K * C,
			st->clw + (size_t)n->K * C + 10 * (size_t)n->K };
		mea_pw_nhwc_weights(n->K, C, step_weight(m, &st->part[0]), w[0]);
		mea_dw3_nhwc_weights(n->K, step_weight(m, &st->part[1]), w[1]);
		mea_pw_nhwc_weights(m->node[st->part[2].node].K, n->K, step_weight(m, &st->part[2]),
			w[2]);
		for (int k = 0; k < 3; k++)
			if (st->part[k].fw)
				st->part[k].fw = w[k];
		return;
	}
	if (n->groups > 1)
		mea_dw3_nhwc_weights(n->K, step_weight(m, st), st->clw);
	else
		mea_pw_nhwc_weights(n->K, C, step_weight(m, st), st->clw);
	if (st->fw)
		st->fw = st->clw;
}

/* Shapes for the kernels, the workspace, folded weights and the training
 * buffers. */
static int
prepare_steps(struct mea_plan *p, struct mea_err *e)
{
	struct mea_model *m = p->m;
	size_t work = 0, folded = 0, save = 0, argmax = 0, scratch = 0, off = 0;
	size_t cl_tmp = 0, clw = 0, wtmp_n = 0;

	for (int s = 0; s < p->nstep; s++) {
		struct step *st = &p->step[s];
		const struct mea_node *n = &m->node[st->node];
		const struct mea_node *a = st->in[0] >= 0 ? &m->node[n->input[0]] : NULL;
		size_t tmp = 0;
		for (int k = 0; k < 2; k++)
			if (needs_relayout(p, st, k))
				tmp += (size_t)st->slice * per_image(&m->node[st->in[k]]);
		cl_tmp = tmp > cl_tmp ? tmp : cl_tmp;
		if (st->cl || st->ir) {
			size_t fw = folded_weight_size(m, st);
			for (int k = 0; st->ir && k < 3; k++)
				fw += folded_weight_size(m, &st->part[k]);
			wtmp_n = fw > wtmp_n ? fw : wtmp_n;
			clw += cl_weights_size(m, st);
		}
		if (st->ir) {
			const struct mea_node *dw = &m->node[st->part[1].node];
			st->is = (struct mea_ir_shape){ .N = st->slice, .C = a->C, .H = a->H,
				.W = a->W, .E = n->K, .K = m->node[st->part[2].node].K,
				.stride = dw->stride, .in_cl = p->cl[st->in[0]], .out_cl = st->cl };
			if (mea_ir_shape_init(&st->is) != 0)
				return mea_errf(e, MEA_E_LIMIT, "node %d (%s): block too large for "
						"a batch of %d", st->node, n->name, p->batch);
			if (mea_ir_workspace(&st->is) > work)
				work = mea_ir_workspace(&st->is);
			for (int k = 0; k < 3; k++)
				folded += folded_size(m, &st->part[k], 1);
			continue;
		}
		if (n->op == MEA_OP_CONV) {
			st->cs = (struct mea_conv_shape){ .N = st->slice, .C = a->C, .H = a->H,
				.W = a->W, .K = n->K, .R = n->R, .S = n->S, .stride = n->stride,
				.pad = n->pad, .groups = n->groups,
				/* Training plans keep training's order of sums even
				 * in frozen blocks (im2col, or the row shift when the
				 * plan asks for it), so that a model trains to the
				 * same bits whatever inference lowers. */
				.inference = !p->training && !p->plain,
				.row_shift = p->training && p->row_shift };
			if (mea_conv_shape_init(&st->cs) != 0)
				return mea_errf(e, MEA_E_LIMIT, "node %d (%s): convolution too large "
						"for a batch of %d", st->node, n->name, p->batch);
			size_t w = mea_conv_workspace(&st->cs);
			if (w > work)
				work = w;
			folded += folded_size(m, st, st->cl);
		} else if (n->op == MEA_OP_MAXPOOL || n->op == MEA_OP_AVGPOOL) {
			st->ps = (struct mea_pool_shape){ .N = st->slice, .C = a->C, .H = a->H,
				.W = a->W, .R = n->R, .S = n->S, .stride = n->stride, .pad = n->pad };
			if (mea_pool_shape_init(&st->ps) != 0)
				return mea_errf(e, MEA_E_LIMIT, "node %d (%s): pooling too large for a "
						"batch of %d", st->node, n->name, p->batch);
			if (st->train && n->op == MEA_OP_MAXPOOL) {
				st->save = argmax;
				argmax += (size_t)p->batch * per_image(n);
			}
		} else if (n->op == MEA_OP_BN && st->train) {
			st->save = save;
			save += 2 * (size_t)n->C;
		}
		/* Train steps with an activation need scratch for its gradient,
		 * except a bn and an add, whose backward applies it on the fly. */
		if (st->train && n->act && n->op != MEA_OP_BN && n->op != MEA_OP_ADD &&
				(size_t)p->batch * per_image(n) > scratch)
			scratch = (size_t)p->batch * per_image(n);
	}
	if (!(p->work = plan_alloc(p, work, sizeof(float), 0, e)) ||
			!(p->folded = plan_alloc(p, folded, sizeof(float), 0, e)) ||
			!(p->cl_tmp = plan_alloc(p, cl_tmp, sizeof(float), 0, e)) ||
			!(p->clw = plan_alloc(p, clw, sizeof(float), 0, e)))
		return e ? e->code : MEA_E_NOMEM;
	/* Weights that are rearranged are folded into a temporary first, so
	 * that the plan keeps one copy of them. */
	float *wtmp = wtmp_n ? malloc(wtmp_n * sizeof *wtmp) : NULL;
	if (wtmp_n && !wtmp)
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	clw = 0;
	for (int s = 0; s < p->nstep; s++) {
		struct step *st = &p->step[s];
		int re = st->cl || st->ir;
		size_t t = 0;
		if (!st->ir)
			fold(p, st, &off, re ? wtmp : NULL);
		for (int k = 0; st->ir && k < 3; k++) {
			fold(p, &st->part[k], &off, wtmp ? wtmp + t : NULL);
			t += folded_weight_size(m, &st->part[k]);
		}
		if (re)
			rearrange_weights(p, st, &clw);
	}
	free(wtmp);
	if (!p->training)
		return 0;
	if (!(p->pgrad = plan_alloc(p, m->arena_nelem, sizeof(float), 1, e)) ||
			!(p->save = plan_alloc(p, save, sizeof(float), 1, e)) ||
			!(p->argmax = plan_alloc(p, argmax, sizeof(int32_t), 1, e)) ||
			!(p->scratch = plan_alloc(p, scratch, sizeof(float), 1, e)))
		return e ? e->code : MEA_E_NOMEM;
	for (int v = 0; v < m->nnodes; v++)
		if (p->needgrad[v] && p->owner[v] == v &&
				!(p->grad[v] = plan_alloc(p, (size_t)p->batch * per_image(&m->node[v]),
						sizeof(float), 1, e)))
			return e ? e->code : MEA_E_NOMEM;
	return 0;
}

/*
 * Images per pass of an inference plan.  Images are independent in
 * inference, so mea_plan_forward runs a run of steps on a slice of the
 * batch at a time, and only values that cross from one run to another
 * hold the whole batch; the values in between hold one slice.  That
 * bounds the memory of a large batch (MobileNetV2 at 224x224 and batch 64
 * needed 600 MB, one image's activations 64 times over) and keeps a
 * slice's activations in cache from the step that writes them to the one
 * that reads them.  A slice still holds several images when they are
 * small, for the convolutions' GEMMs (conv.c chunks images for the same
 * reason): each step's output within SLICE_BYTES, half of a typical L2.
 *
 * One slice for the whole network was set by its largest activation, one
 * image of MobileNetV2, whose 7x7 layers then ran their GEMMs an image at
 * a time.  So the steps are cut into runs: a run ends where the rest of
 * the network could take a slice at least twice as large (the least any
 * later step allows), so slices only grow along the plan.  The values a
 * later run reads from an earlier one hold the whole batch.  Training
 * needs batch statistics: a training plan is one run over the batch, as
 * are the trailing fully connected steps (mark_tail).
 */
#define SLICE_BYTES (512 * 1024)

static int
slice_for(const struct mea_plan *p, const struct step *st)
{
	size_t v = per_image(&p->m->node[st->out]) * sizeof(float);
	/* Channels-last steps: see mark_channels_last. */
	size_t k = (st->cl && !st->ir ? 2 * SLICE_BYTES : SLICE_BYTES) / (v ? v : 1);

	return k < 1 ? 1 : k > (size_t)p->batch ? p->batch : (int)k;
}

/* Floats per image of the values written before step c and read from
 * step c on: what a cut before step c makes whole. */
static size_t
crossing(const struct mea_plan *p, const int *prod, const int *last, int c)
{
	size_t sum = 0;

	for (int v = 0; v < p->m->nnodes; v++)
		if (prod[v] >= 0 && prod[v] < c && last[v] >= c)
			sum += per_image(&p->m->node[v]);
	return sum;
}

/* Steps a cut may move later to find a narrower crossing (see below). */
#define CUT_REACH 4

/* Set each step's slice and mark the values read across runs as whole.
 * After mark_tail.  A run starts where the least slice of the steps from
 * there on doubles, or up to CUT_REACH steps later where fewer floats
 * cross the cut (after a block, not in the middle of one: a cut inside
 * MobileNetV2's last 14x14 block made its 576 x 14 x 14 expansion whole,
 * 29 MB at batch 64); the steps it passes keep the smaller slice. */
static int
plan_slices(struct mea_plan *p, struct mea_err *e)
{
	int least = p->batch, cur = 0, nn = p->m->nnodes;
	int *prod = malloc((size_t)nn * sizeof *prod);   /* value -> its step */
	int *last = malloc((size_t)nn * sizeof *last);   /* value -> its last reader */

	if (!prod || !last) {
		free(prod);
		free(last);
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	}
	for (int v = 0; v < nn; v++)
		prod[v] = last[v] = -1;
	for (int s = 0; s < p->nstep; s++) {
		for (int k = 0; k < 2; k++)
			if (p->step[s].in[k] >= 0)
				last[p->step[s].in[k]] = s;
		prod[p->step[s].out] = s;
	}
	for (int s = p->nstep - 1; s >= 0; s--) {
		if (p->training || s >= p->tail) {
			p->step[s].slice = p->batch;
			continue;
		}
		int k = slice_for(p, &p->step[s]);
		least = k < least ? k : least;
		p->step[s].slice = least;     /* the least from here on */
	}
	for (int s = 0; s < p->tail; s++) {
		int k = p->step[s].slice, best = s;
		if (s > 0 && k < 2 * cur) {
			p->step[s].slice = cur;
			continue;
		}
		size_t least_cross = s > 0 ? crossing(p, prod, last, s) : 0;
		for (int c = s + 1; s > 0 && c < p->tail && c <= s + CUT_REACH; c++) {
			size_t x = crossing(p, prod, last, c);
			if (x < least_cross) {
				best = c;
				least_cross = x;
			}
		}
		for (; s < best; s++)
			p->step[s].slice = cur;
		cur = p->step[s].slice;
	}
	for (int s = 0; s < p->nstep; s++)
		for (int k = 0; k < 2; k++) {
			int u = p->step[s].in[k];
			if (u >= 0 && prod[u] >= 0 && p->step[prod[u]].slice != p->step[s].slice)
				p->whole[u] = 1;
		}
	free(prod);
	free(last);
	return 0;
}

/* See fuse_blocks. */
#define FUSE_BYTES (1024 * 1024)

/* A 1x1 convolution's node: stride 1, no padding, one group. */
static int
pointwise_node(const struct mea_node *n)
{
	return n->op == MEA_OP_CONV && n->R == 1 && n->S == 1 && n->stride == 1 &&
		n->pad == 0 && n->groups == 1;
}

/* Steps a, b, c form an inverted residual fuse_blocks can fuse. */
static int
ir_steps(const struct mea_plan *p, const int *readers, const struct step *a,
		const struct step *b, const struct step *c)
{
	const struct mea_model *m = p->m;
	const struct mea_node *na = &m->node[a->node], *nb = &m->node[b->node];

	return pointwise_node(na) && pointwise_node(&m->node[c->node]) &&
		nb->op == MEA_OP_CONV && nb->R == 3 && nb->S == 3 && nb->pad == 1 &&
		(nb->stride == 1 || nb->stride == 2) && nb->groups == na->K &&
		nb->K == na->K && a->in[0] >= 0 && a->add < 0 && b->add < 0 &&
		b->in[0] == a->out && c->in[0] == b->out &&
		readers[a->out] == 1 && readers[b->out] == 1 &&
		!p->pinned[a->out] && !p->pinned[b->out] &&
		per_image(na) * sizeof(float) > FUSE_BYTES;
}

/*
 * Each inverted residual of an inference plan into one step (conv.c,
 * mea_ir_forward): three steps in a row, a 1x1 convolution, a 3x3
 * depthwise one reading only it, and a 1x1 one reading only that, whose
 * two intermediate values nobody else reads or wants.  They then need no
 * buffers.  The first step becomes the block's, with the last one's
 * inputs and output, and keeps the three as they were in st->part.
 *
 * Only blocks whose expanded activation of one image exceeds FUSE_BYTES:
 * smaller ones stay in cache from layer to layer anyway, and cut into
 * bands their GEMMs packed the weights (up to 960 x 160 floats) once a
 * band instead of once an image.  In MobileNetV2 at 224x224 this fuses
 * the blocks at 112x112 and 56x56, which fused ran about 30% and 10 to
 * 15% faster (mea-main --profile); the blocks at 28x28 and below were
 * as fast or slower fused.
 */

static int
fuse_blocks(struct mea_plan *p, struct mea_err *e)
{
	int *readers, out = 0;

	if (p->training || p->plain)
		return 0;
	if (!(readers = calloc((size_t)p->m->nnodes, sizeof *readers)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	for (int s = 0; s < p->nstep; s++)
		for (int k = 0; k < 2; k++)
			if (p->step[s].in[k] >= 0)
				readers[p->step[s].in[k]]++;
	for (int s = 0; s < p->nstep; s++) {
		struct step *a = &p->step[s], lead;
		if (s + 2 >= p->nstep || !ir_steps(p, readers, a, a + 1, a + 2)) {
			p->step[out++] = *a;
			continue;
		}
		lead = *a;
		if (!(lead.part = malloc(3 * sizeof *lead.part))) {
			free(readers);
			return mea_errf(e, MEA_E_NOMEM, "out of memory");
		}
		memcpy(lead.part, a, 3 * sizeof *lead.part);
		lead.ir = 1;
		lead.bn = -1;
		lead.in[1] = a[2].in[1];
		lead.out = a[2].out;
		lead.add = a[2].add;
		p->step[out++] = lead;
		s += 2;
	}
	p->nstep = out;
	free(readers);
	return 0;
}

/*
 * Inference steps that run channels-last (nhwc.c): 1x1 convolutions and
 * 3x3 depthwise ones (padding 1, stride 1 or 2) whose input plane has at
 * most CL_PLANE pixels, MobileNetV2's from 28x28 down, and fused blocks
 * (whose insides are channels-last anyway), unless they write a value
 * the caller reads (those stay NCHW).  A value is stored in the layout
 * of the step that writes it; a step that reads a value in the other
 * layout changes a copy first (step_input), except a fused block and the
 * pooling, which read either.  In MobileNetV2 that leaves no layout
 * change between its 112x112 block and its pooling, unless the caller
 * reads the feature map (MEANet's main block).  Their slices are twice
 * as large as others' (slice_for): a GEMM over several images' pixels
 * needs no gather, and reads its weights once for all of them.
 */
#define CL_PLANE (28 * 28)

static int
channels_last_ok(const struct mea_plan *p, const struct step *st)
{
	const struct mea_node *n = &p->m->node[st->node], *a;

	if (p->training || p->plain || n->op != MEA_OP_CONV || st->in[0] < 0 ||
			p->pinned[st->out])
		return 0;
	if (st->ir)
		return 1;          /* a fused block: its output, whatever its size */
	a = &p->m->node[st->in[0]];
	if (a->H * a->W > CL_PLANE)
		return 0;
	return pointwise_node(n) || (n->R == 3 && n->S == 3 && n->pad == 1 &&
		(n->stride == 1 || n->stride == 2) && n->groups == a->C && n->K == a->C);
}

static void
mark_channels_last(struct mea_plan *p)
{
	for (int s = 0; s < p->nstep; s++) {
		struct step *st = &p->step[s];
		st->cl = channels_last_ok(p, st);
		p->cl[st->out] = (unsigned char)st->cl;
	}
}

/* Input k of a step is in the other layout and needs a changed copy
 * (the pooling, and a fused block, read either). */
static int
needs_relayout(const struct mea_plan *p, const struct step *st, int k)
{
	int v = st->in[k];

	return v >= 0 && p->cl[v] != st->cl &&
		!(k == 0 && (st->ir || p->m->node[st->node].op == MEA_OP_GAP));
}

/*
 * The whole-batch tail of an inference plan: its trailing fully connected
 * steps.  A slice is often a single image (MobileNetV2), and a fully
 * connected layer run per image reads all its weights per image: 1280 x
 * 1000 floats, 5 MB, to compute 1000 outputs, which took a twentieth of
 * MobileNetV2's time.  Run once over the batch it is one GEMM that reads
 * them once.  Their inputs and outputs hold the whole batch.
 */
static void
mark_tail(struct mea_plan *p)
{
	p->tail = p->nstep;
	for (int v = 0; v < p->m->nnodes; v++)
		p->whole[v] = p->pinned[v];
	if (p->training)
		return;
	while (p->tail > 0 && p->m->node[p->step[p->tail - 1].node].op == MEA_OP_FC)
		p->tail--;
	for (int s = p->tail; s < p->nstep; s++) {
		p->whole[p->step[s].out] = 1;
		for (int k = 0; k < 2; k++)
			if (p->step[s].in[k] >= 0)
				p->whole[p->step[s].in[k]] = 1;
	}
}

int
mea_plan_new(struct mea_plan **pp, struct mea_model *m, const struct mea_plan_opts *o,
		struct mea_err *e)
{
	struct mea_plan *p;
	unsigned char *need = NULL, *given = NULL;
	size_t nn = (size_t)m->nnodes;
	int rc;

	*pp = NULL;
	if (o->batch < 1 || o->batch > MEA_MODEL_MAX_BATCH)
		return mea_errf(e, MEA_E_ARG, "batch %d is not in 1..%d", o->batch,
				MEA_MODEL_MAX_BATCH);
	if (o->ninputs < 0 || o->ninputs > 4 || o->noutputs < 1 || o->noutputs > 4)
		return mea_errf(e, MEA_E_ARG, "%d inputs and %d outputs: need 0..4 and 1..4",
				o->ninputs, o->noutputs);
	for (int k = 0; k < o->ninputs + o->noutputs; k++) {
		int v = k < o->ninputs ? o->input[k] : o->output[k - o->ninputs];
		if (v < 0 || v >= m->nnodes)
			return mea_errf(e, MEA_E_ARG, "node %d does not exist", v);
	}
	if (!(p = calloc(1, sizeof *p)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	p->m = m;
	p->batch = o->batch;
	p->keep_stats = o->keep_stats;
	p->plain = o->plain;
	p->row_shift = o->row_shift;
	p->owner = malloc(nn * sizeof *p->owner);
	p->pinned = calloc(nn, 1);
	p->whole = calloc(nn, 1);
	p->needgrad = calloc(nn, 1);
	p->stale = calloc(nn, 1);
	p->cl = calloc(nn, 1);
	p->val = calloc(nn, sizeof *p->val);
	p->grad = calloc(nn, sizeof *p->grad);
	p->step = calloc(nn, sizeof *p->step);
	need = calloc(nn, 1);
	given = calloc(nn, 1);
	if (!p->owner || !p->pinned || !p->whole || !p->needgrad || !p->stale || !p->cl || !p->val || !p->grad || !p->step ||
			!need || !given) {
		rc = mea_errf(e, MEA_E_NOMEM, "out of memory");
		goto fail;
	}
	if ((rc = mark_needed(p, o, need, given, e)) ||
			(rc = make_steps(p, o, need, given, e)))
		goto fail;
	for (int k = 0; k < o->noutputs; k++)
		p->pinned[p->owner[o->output[k]]] = 1;
	for (int k = 0; k < o->ninputs; k++)
		p->pinned[o->input[k]] = 1;
	if ((rc = fuse_blocks(p, e)))
		goto fail;
	mark_channels_last(p);
	mark_tail(p);
	if ((rc = plan_slices(p, e)) || (rc = assign_buffers(p, given, e)) || (rc = prepare_steps(p, e)))
		goto fail;
	free(need);
	free(given);
	*pp = p;
	return 0;
fail:
	free(need);
	free(given);
	mea_plan_free(p);
	return rc;
}

float *
mea_plan_value(struct mea_plan *p, int node)
{
	if (node < 0 || node >= p->m->nnodes)
		return NULL;
	node = p->owner[node];
	return p->pinned[node] || p->training ? p->val[node] : NULL;
}

size_t
mea_plan_bytes(const struct mea_plan *p)
{
	return p->bytes;
}

/* ------------------------------------------------------------- forward */

/* Value v's buffer at image i0: the plan's inputs and outputs hold the
 * whole batch, the other values of an inference plan only the current
 * slice (a training plan is one slice, with i0 always 0). */
static float *
at_image(const struct mea_plan *p, int v, int i0)
{
	float *b = p->val[v];
	return p->whole[v] ? b + (size_t)i0 * per_image(&p->m->node[v]) : b;
}

/* The activation a step applies: its fused add's, its folded bn's, or
 * its own node's. */
static int
step_act(const struct mea_model *m, const struct step *st)
{
	return st->add >= 0 ? m->node[st->add].act : st->bn >= 0 ? m->node[st->bn].act :
		m->node[st->node].act;
}

static void
ir_forward(struct mea_plan *p, struct step *st, const float *x, const float *res,
		float *y, int N)
{
	const struct mea_model *m = p->m;
	const struct step *part[3] = { &st->part[0], &st->part[1], &st->part[2] };
	struct mea_ir_weights wt;

	for (int k = 0; k < 3; k++) {
		int act = step_act(m, part[k]);
		size_t E = (size_t)st->is.E, C = (size_t)st->is.C;
		wt.w[k] = st->clw + (k == 0 ? 0 : k == 1 ? E * C : E * C + 10 * E);
		wt.b[k] = step_bias(m, part[k]);
		wt.relu[k] = act != 0;
		wt.cap[k] = act_cap(act);
	}
	st->is.N = N;
	mea_ir_forward(&st->is, &wt, x, res, y, p->work);
}

/* splitmix64's finaliser: a well-mixed 64-bit hash of x. */
static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9u;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebu;
	return x ^ (x >> 31);
}

/* Feature dropout of a trained concatenation's frozen inputs (MEANet's
 * main-block features): each of their channels, for each image, is zeroed
 * with probability p->drop, the others scaled by 1/(1 - p->drop).  Drawn
 * from a hash of (seed, image of the batch, channel), not from a stream,
 * so that a data-parallel step masks an image the same way whichever
 * worker holds it.  The frozen side needs no gradient, and the trained
 * side's gradient does not pass through the mask. */
static void
drop_frozen_channels(const struct mea_plan *p, const struct step *st, int N, int i0, float *y)
{
	const struct mea_model *m = p->m;
	const struct mea_node *n = &m->node[st->node];
	size_t hw = (size_t)n->H * n->W;
	float keep = 1.0f - p->drop, scale = 1.0f / keep;
	int c0 = 0;

	for (int k = 0; k < 2; k++) {
		int C = m->node[n->input[k]].C;
		if (p->needgrad[st->in[k]]) {
			c0 += C;
			continue;
		}
		for (int i = 0; i < N; i++) {
			uint64_t img = (uint64_t)(p->drop_first + i0 + i);
			float *yi = y + (size_t)i * n->C * hw;
			for (int c = c0; c < c0 + C; c++) {
				uint64_t h = mix64(p->drop_seed ^ mix64(img << 20 | (uint64_t)c));
				float f = (float)(h >> 40) * 0x1p-24f < keep ? scale : 0.0f;
				for (size_t j = 0; j < hw; j++)
					yi[(size_t)c * hw + j] *= f;
			}
		}
		c0 += C;
	}
}

void
mea_plan_set_drop(struct mea_plan *p, float prob, uint64_t seed, int first)
{
	p->drop = prob;
	p->drop_seed = seed;
	p->drop_first = first;
}

/* A channels-last step's convolution (see mark_channels_last). */
static void
cl_conv_forward(struct mea_plan *p, const struct step *st, int N, const float *x,
		const float *res, int act, float *y)
{
	const struct mea_model *m = p->m;
	const struct mea_node *n = &m->node[st->node], *a = &m->node[st->in[0]];

	if (n->groups == 1)
		mea_pw_nhwc_forward(N * a->H * a->W, a->C, n->K, x, st->clw,
			step_bias(m, st), res, act != 0, act_cap(act), y);
	else
		mea_dw3_nhwc_forward(N, a->C, a->H, a->W, n->stride, x, st->clw,
			step_bias(m, st), res, act != 0, act_cap(act), y);
}

/* Input k of a step, in the step's layout: the value itself, or a copy
 * changed into it at *tmp (which then moves past the copy). */
static const float *
step_input(struct mea_plan *p, const struct step *st, int k, int N, int i0, float **tmp)
{
	const struct mea_node *v;
	float *x;

	if (st->in[k] < 0)
		return NULL;
	x = at_image(p, st->in[k], i0);
	if (!needs_relayout(p, st, k))
		return x;
	v = &p->m->node[st->in[k]];
	if (st->cl)
		mea_to_nhwc(N, v->C, v->H * v->W, x, *tmp);
	else
		mea_to_nchw(N, v->C, v->H * v->W, x, *tmp);
	x = *tmp;
	*tmp += (size_t)N * per_image(v);
	return x;
}

static void
step_forward(struct mea_plan *p, struct step *st, int N, int i0)
{
	const struct mea_model *m = p->m;
	const struct mea_node *n = &m->node[st->node];
	const struct mea_node *a = st->in[0] >= 0 ? &m->node[n->input[0]] : NULL;
	const struct mea_node *b = n->ninputs > 1 ? &m->node[n->input[1]] : NULL;
	float *tmp = p->cl_tmp;
	const float *x = step_input(p, st, 0, N, i0, &tmp);
	const float *x2 = step_input(p, st, 1, N, i0, &tmp);  /* or a fused add's */
	float *y = at_image(p, st->out, i0);
	size_t len = (size_t)N * per_image(n);
	int act = step_act(m, st);

	if (st->ir) {
		ir_forward(p, st, x, st->add >= 0 ? x2 : NULL, y, N);
		return;
	}
	switch (n->op) {
	case MEA_OP_CONV:
		if (st->cl) {
			cl_conv_forward(p, st, N, x, st->add >= 0 ? x2 : NULL, act, y);
			act = 0;
			break;
		}
		st->cs.N = N;
		mea_conv2d_forward_act(&st->cs, x,
				st->fw ? st->fw : tdata(m, n->param[MEA_P_WEIGHT]),
				st->fw ? st->fb : tdata(m, n->param[MEA_P_BIAS]),
				st->add >= 0 ? x2 : NULL, act != 0, act_cap(act), y, p->work);
		act = 0;
		break;
	case MEA_OP_BN: {
		const float *g = tdata(m, n->param[MEA_P_GAMMA]), *be = tdata(m, n->param[MEA_P_BETA]);
		float *rm = m->tensor[n->param[MEA_P_MEAN]].data;
		float *rv = m->tensor[n->param[MEA_P_VAR]].data;
		if (st->train) {
			mea_bn_forward_train_act(N, n->C, n->H * n->W, x, g, be, n->eps,
					n->momentum, act != 0, act_cap(act), y, p->save + st->save,
					p->save + st->save + n->C, p->keep_stats ? NULL : rm,
					p->keep_stats ? NULL : rv);
			act = 0;
		} else
			mea_bn_forward_infer(N, n->C, n->H * n->W, x, g, be, rm, rv, n->eps, y);
		break;
	}
	case MEA_OP_ADD:
		mea_add_forward(len, x, x2, y);
		break;
	case MEA_OP_CONCAT:
		mea_concat_forward(N, n->H * n->W, a->C, x, b->C, x2, y);
		if (st->train && p->drop > 0)
			drop_frozen_channels(p, st, N, i0, y);
		break;
	case MEA_OP_MAXPOOL:
		st->ps.N = N;
		mea_maxpool_forward(&st->ps, x, y, st->train ? p->argmax + st->save : NULL);
		break;
	case MEA_OP_AVGPOOL:
		st->ps.N = N;
		mea_avgpool_forward(&st->ps, x, y);
		break;
	case MEA_OP_GAP:
		if (p->cl[st->in[0]])
			mea_gap_nhwc_forward(N, a->C, a->H * a->W, x, y);
		else
			mea_gap_forward(N, a->C, a->H * a->W, x, y);
		break;
	case MEA_OP_FC:
		mea_fc_forward(N, (int)per_image(a), n->K, x, tdata(m, n->param[MEA_P_WEIGHT]),
				tdata(m, n->param[MEA_P_BIAS]), y);
		break;
	}
	if (act)
		mea_relu_forward(len, y, y, act_cap(act));
}

static double
seconds_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void
timed_step(struct mea_plan *p, struct step *st, int N, int i0)
{
	double t0 = p->profile ? seconds_now() : 0;

	step_forward(p, st, N, i0);
	if (p->profile) {
		st->seconds += seconds_now() - t0;
		st->images += (uint64_t)N;
	}
}

int
mea_plan_forward(struct mea_plan *p, int n, struct mea_err *e)
{
	if (n < 1 || n > p->batch)
		return mea_errf(e, MEA_E_ARG, "%d images for a plan of batch %d", n, p->batch);
	p->n = n;
	/* A run of steps of one slice size (plan_slices) at a time. */
	for (int s0 = 0, s1; s0 < p->nstep; s0 = s1) {
		int k = p->step[s0].slice;
		for (s1 = s0 + 1; s1 < p->nstep && p->step[s1].slice == k && s1 != p->tail; s1++)
			;
		for (int i0 = 0; i0 < n; i0 += k)
			for (int s = s0; s < s1; s++)
				timed_step(p, &p->step[s], n - i0 < k ? n - i0 : k, i0);
	}
	return 0;
}

void
mea_plan_profile(struct mea_plan *p, int on)
{
	p->profile = on;
}

int
mea_plan_nsteps(const struct mea_plan *p)
{
	return p->nstep;
}

void
mea_plan_step_time(const struct mea_plan *p, int s, struct mea_step_time *t)
{
	const struct step *st = &p->step[s];

	t->node = st->node;
	t->last = st->ir ? st->part[2].node : st->node;
	t->block = st->ir;
	t->fused_add = st->add >= 0;
	t->channels_last = st->cl;
	t->macs = p->m->node[st->node].macs;
	for (int k = 1; st->ir && k < 3; k++)
		t->macs += p->m->node[st->part[k].node].macs;
	t->seconds = st->seconds;
	t->images = st->images;
}

/* Mirror every row of the first n images of the plan's input (node 0). */
static void
mirror_input(struct mea_plan *p, int n)
{
	const struct mea_node *in = &p->m->node[0];
	float *x = p->val[p->owner[0]];
	size_t rows = (size_t)n * (size_t)in->C * (size_t)in->H;

	for (size_t r = 0; r < rows; r++)
		for (float *a = x + r * (size_t)in->W, *b = a + in->W - 1; a < b; a++, b--) {
			float t = *a;
			*a = *b;
			*b = t;
		}
}

/* The mirrored pass runs first so that every other output the caller
 * reads (the feature map mea-ext needs, say) is that of the image as
 * given; mirroring twice restores the input exactly. */
int
mea_plan_forward_tta(struct mea_plan *p, int n, int out, struct mea_err *e)
{
	size_t len;
	float *y, *keep;
	int rc;

	if (!mea_model_test_flip(p->m))
		return mea_plan_forward(p, n, e);
	if (!(y = mea_plan_value(p, out)))
		return mea_errf(e, MEA_E_ARG, "node %d is not an output of the plan", out);
	len = (size_t)n * per_image(&p->m->node[out]);
	if (!(keep = malloc(len * sizeof *keep)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	mirror_input(p, n);
	rc = mea_plan_forward(p, n, e);
	memcpy(keep, y, len * sizeof *keep);
	mirror_input(p, n);
	if (!rc && !(rc = mea_plan_forward(p, n, e)))
		for (size_t i = 0; i < len; i++)
			y[i] = 0.5f * (y[i] + keep[i]);
	free(keep);
	return rc;
}

/* ------------------------------------------------------------ backward */

/*
 * Gradients of values are zeroed lazily.  Zeroing them all here, then
 * adding every contribution during backward, wrote each buffer once more
 * and read it once more than needed (180 MB of each per ResNet-20 step
 * at batch 128).  Instead each is marked stale, meaning "zero, in
 * garbage": the first kernel of the backward pass to write one
 * overwrites it (the _set kernels; others get it zeroed first), later
 * ones add, and a caller asking for one with mea_plan_grad gets it
 * zeroed.  Parameter gradients are small and zeroed here.
 */
void
mea_plan_zero_grad(struct mea_plan *p)
{
	const struct mea_model *m = p->m;

	if (!p->training)
		return;
	for (int v = 0; v < m->nnodes; v++)
		p->stale[v] = p->grad[v] != NULL;
	memset(p->pgrad, 0, (m->arena_nelem ? m->arena_nelem : 1) * sizeof(float));
}

/* Rows n0.. of value v's gradient set to zero. */
static void
zero_rows(struct mea_plan *p, int v, int n0)
{
	size_t per = per_image(&p->m->node[v]);
	memset(p->grad[v] + (size_t)n0 * per, 0, (size_t)(p->batch - n0) * per * sizeof(float));
}

/* Value v's gradient for a backward kernel to write into, NULL if it has
 * none.  *set says the kernel must overwrite its first N images, not add
 * (the rows past them are zeroed here: they read as zero afterwards). */
static float *
take(struct mea_plan *p, int v, int N, int *set)
{
	*set = 0;
	if (v < 0 || !p->grad[v])
		return NULL;
	if (p->stale[v]) {
		*set = 1;
		p->stale[v] = 0;
		if (N < p->batch)
			zero_rows(p, v, N);
	}
	return p->grad[v];
}

/* The same for a kernel that can only add. */
static float *
take_add(struct mea_plan *p, int v)
{
	if (v < 0 || !p->grad[v])
		return NULL;
	if (p->stale[v]) {
		p->stale[v] = 0;
		zero_rows(p, v, 0);
	}
	return p->grad[v];
}

float *
mea_plan_grad(struct mea_plan *p, int node)
{
	if (!p->training || node < 0 || node >= p->m->nnodes)
		return NULL;
	return take_add(p, p->owner[node]);
}

float *
mea_plan_param_grad(struct mea_plan *p, int t)
{
	const struct mea_model *m = p->m;
	const struct mea_weight *w;

	if (!p->training || t < 0 || t >= m->ntensors)
		return NULL;
	w = &m->tensor[t];
	if (w->kind != MEA_TK_PARAM || !p->needgrad[w->node] || p->owner[w->node] != w->node)
		return NULL;
	return p->pgrad + (w->data - m->arena);
}

float
mea_plan_xent(struct mea_plan *p, int node, const int32_t *labels, float smooth)
{
	const struct mea_node *n = &p->m->node[node];
	float *g = mea_plan_grad(p, node);

	return mea_xent(p->n, (int)per_image(n), p->val[p->owner[node]], labels, smooth, g);
}

float
mea_plan_distill(struct mea_plan *p, int node, const int32_t *labels, float smooth,
		const float *t, float alpha, float tau)
{
	const struct mea_node *n = &p->m->node[node];
	float *g = mea_plan_grad(p, node);

	return mea_distill(p->n, (int)per_image(n), p->val[p->owner[node]], labels, smooth,
			t, alpha, tau, g);
}

/* The gradient of a parameter slot, NULL when the node has no such slot. */
static float *
slot_grad(struct mea_plan *p, const struct mea_node *n, int slot)
{
	return n->param[slot] >= 0 ? mea_plan_param_grad(p, n->param[slot]) : NULL;
}

static void
step_backward(struct mea_plan *p, const struct step *st, int N)
{
	const struct mea_model *m = p->m;
	const struct mea_node *n = &m->node[st->node];
	const struct mea_node *a = st->in[0] >= 0 ? &m->node[n->input[0]] : NULL;
	const struct mea_node *b = st->in[1] >= 0 ? &m->node[n->input[1]] : NULL;
	const float *x = st->in[0] >= 0 ? p->val[st->in[0]] : NULL;
	const float *y = p->val[st->out];
	const float *dy = take_add(p, st->out);   /* stale only if nothing reached it */
	size_t len = (size_t)N * per_image(n);
	float cap = act_cap(n->act);
	float *dx, *dx2;
	int set, set2;

	/* The stored output is after the activation, which is all relu's
	 * backward needs; the op's own backward reads its input.  A bn and an
	 * add take the activation's backward into their own loops. */
	if (n->act && n->op != MEA_OP_BN && n->op != MEA_OP_ADD) {
		mea_relu_backward_set(len, y, dy, p->scratch, cap);
		dy = p->scratch;
	}
	switch (n->op) {
	case MEA_OP_CONV: {
		struct mea_conv_shape cs = st->cs;
		cs.N = N;
		dx = take(p, st->in[0], N, &set);
		(set ? mea_conv2d_backward_set : mea_conv2d_backward)(&cs, x,
				tdata(m, n->param[MEA_P_WEIGHT]), dy, dx, slot_grad(p, n, MEA_P_WEIGHT),
				slot_grad(p, n, MEA_P_BIAS), p->work);
		break;
	}
	case MEA_OP_BN:
		dx = take(p, st->in[0], N, &set);
		mea_bn_backward_act(N, n->C, n->H * n->W, x, y, dy, n->act != 0, cap,
				tdata(m, n->param[MEA_P_GAMMA]), p->save + st->save,
				p->save + st->save + n->C, dx, set, slot_grad(p, n, MEA_P_GAMMA),
				slot_grad(p, n, MEA_P_BETA));
		break;
	case MEA_OP_ADD:
		/* One operand at a time: both may be the same value. */
		if ((dx = take(p, st->in[0], N, &set))) {
			if (n->act)
				(set ? mea_relu_backward_set : mea_relu_backward)(len, y, dy, dx, cap);
			else if (set)
				memcpy(dx, dy, len * sizeof *dx);
			else
				mea_acc(len, dy, dx);
		}
		if ((dx2 = take(p, st->in[1], N, &set2))) {
			/* A BasicBlock's add starts both its operands' gradients
			 * with the same values: copy them, not masked again. */
			if (n->act && dx && set && set2 && dx2 != dx)
				memcpy(dx2, dx, len * sizeof *dx2);
			else if (n->act)
				(set2 ? mea_relu_backward_set : mea_relu_backward)(len, y, dy, dx2, cap);
			else if (set2)
				memcpy(dx2, dy, len * sizeof *dx2);
			else
				mea_acc(len, dy, dx2);
		}
		break;
	case MEA_OP_CONCAT:
		dx = take_add(p, st->in[0]);
		dx2 = take_add(p, st->in[1]);
		mea_concat_backward(N, n->H * n->W, a->C, b->C, dy, dx, dx2);
		break;
	case MEA_OP_MAXPOOL:
		if ((dx = take_add(p, st->in[0]))) {
			struct mea_pool_shape ps = st->ps;
			ps.N = N;
			mea_maxpool_backward(&ps, p->argmax + st->save, dy, dx);
		}
		break;
	case MEA_OP_AVGPOOL:
		if ((dx = take_add(p, st->in[0]))) {
			struct mea_pool_shape ps = st->ps;
			ps.N = N;
			mea_avgpool_backward(&ps, dy, dx);
		}
		break;
	case MEA_OP_GAP:
		if ((dx = take_add(p, st->in[0])))
			mea_gap_backward(N, a->C, a->H * a->W, dy, dx);
		break;
	case MEA_OP_FC:
		mea_fc_backward(N, (int)per_image(a), n->K, x, tdata(m, n->param[MEA_P_WEIGHT]),
				dy, take_add(p, st->in[0]), slot_grad(p, n, MEA_P_WEIGHT),
				slot_grad(p, n, MEA_P_BIAS));
		break;
	}
}

int
mea_plan_backward(struct mea_plan *p, struct mea_err *e)
{
	if (!p->training)
		return mea_errf(e, MEA_E_ARG, "backward on a plan that trains nothing");
	if (p->n < 1)
		return mea_errf(e, MEA_E_ARG, "backward before forward");
	for (int s = p->nstep - 1; s >= 0; s--)
		if (p->step[s].train && p->needgrad[p->step[s].out])
			step_backward(p, &p->step[s], p->n);
	return 0;
}

/* -------------------------------------------------------------- input */

int
mea_model_input(const struct mea_model *m, const struct mea_tensor *img, float *x,
		struct mea_err *e)
{
	size_t hw = (size_t)m->in_h * (size_t)m->in_w;

	if ((img->dtype != MEA_U8 && img->dtype != MEA_F32) || img->ndim != 3 ||
			img->dim[0] != (uint32_t)m->in_c || img->dim[1] != (uint32_t)m->in_h ||
			img->dim[2] != (uint32_t)m->in_w) {
		char got[64] = "";
		size_t off = 0;
		for (int d = 0; d < img->ndim && off < sizeof got; d++)
			off += (size_t)snprintf(got + off, sizeof got - off, d ? "x%u" : "%u",
					img->dim[d]);
		return mea_errf(e, MEA_E_FORMAT, "%s %s %s, expected u8 or f32 %dx%dx%d",
				img->name, mea_dtype_name(img->dtype) ? mea_dtype_name(img->dtype) : "?",
				img->ndim ? got : "scalar", m->in_c, m->in_h, m->in_w);
	}
	for (int c = 0; c < m->in_c; c++) {
		/* (v/255 - mean)/std as one multiply-add per pixel. */
		float scale = 1.0f / m->std[c], shift = -m->mean[c] / m->std[c];
		float *o = x + (size_t)c * hw;
		if (img->dtype == MEA_U8) {
			const uint8_t *v = (const uint8_t *)img->data + (size_t)c * hw;
			float s255 = scale / 255.0f;
			for (size_t k = 0; k < hw; k++)
				o[k] = (float)v[k] * s255 + shift;
		} else {
			const float *v = (const float *)img->data + (size_t)c * hw;
			for (size_t k = 0; k < hw; k++) {
				if (!isfinite(v[k]))
					return mea_errf(e, MEA_E_FORMAT, "%s: pixel %zu of channel %d is not "
							"finite", img->name, k, c);
				o[k] = v[k] * scale + shift;
			}
		}
	}
	return 0;
}
