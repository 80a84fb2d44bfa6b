/*
 * trainer.c: the training loop around a training plan: shuffled,
 * augmented batches, cross-entropy, backward, SGD with momentum; and
 * evaluation of a trained block on held-out images.
 *
 * Reproducibility: epoch k shuffles and augments from a generator seeded
 * with (seed, k) only, so resuming at an epoch boundary from a saved
 * model (weights, bn statistics and momentum buffers) continues the run
 * bit for bit, for the same thread count.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mea.h"
#include "model.h"

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double
mea_train_lr(const struct mea_train_cfg *c, size_t step, size_t per_epoch)
{
	double epoch = (double)step / (double)(per_epoch ? per_epoch : 1), lr = c->lr;

	if (c->warmup > 0 && epoch < c->warmup)
		return c->lr * (0.1 + 0.9 * epoch / c->warmup);
	if (c->cosine) {
		double span = c->epochs - c->warmup, t = (epoch - c->warmup) / (span > 0 ? span : 1);
		return 0.5 * c->lr * (1 + cos(M_PI * (t < 1 ? t : 1)));
	}
	for (int i = 0; i < c->nmilestones; i++)
		if (epoch >= c->milestones[i] * c->epochs)
			lr *= c->gamma;
	return lr;
}

/* The images of idx that remap keeps, with their target labels. */
static int
select_samples(const struct mea_dataset *ds, const int32_t *idx, size_t n,
		const int32_t *remap, int32_t **sel, size_t *nsel)
{
	size_t k = 0;

	if (!(*sel = malloc((n ? n : 1) * sizeof **sel)))
		return MEA_E_NOMEM;
	for (size_t i = 0; i < n; i++)
		if (!remap || remap[ds->label[idx[i]]] >= 0)
			(*sel)[k++] = idx[i];
	*nsel = k;
	return MEA_OK;
}

/* One SGD step over every trained parameter of the plan. */
static void
sgd_step(struct mea_model *m, struct mea_plan *p, const struct mea_train_cfg *c, float lr)
{
	for (int t = 0; t < m->ntensors; t++) {
		struct mea_weight *w = &m->tensor[t];
		float *g = mea_plan_param_grad(p, t);
		int s;
		if (w->kind != MEA_TK_PARAM || !g || (s = mea_model_state_of(m, t)) < 0)
			continue;
		mea_sgd_step(w->nelem, w->data, g, m->tensor[s].data, lr, c->momentum, c->wd,
				c->nesterov);
	}
}

static int
argmax(const float *x, int K)
{
	int best = 0;
	for (int k = 1; k < K; k++)
		if (x[k] > x[best])
			best = k;
	return best;
}

/* The head of every piece of work given to fork_join. */
struct job {
	int rc;
	struct mea_err err;
	pthread_t tid;
	int started;           /* tid is a running thread to join */
};

/* Run fn on the n items at items (each `size` bytes, starting with a
 * struct job): items 1.. in threads of their own, item 0 in this one.
 * The first failure, in item order, is returned and copied to *e. */
static int
fork_join(void *items, size_t size, int n, void *(*fn)(void *), struct mea_err *e)
{
	char *base = items;

	for (int k = 1; k < n; k++) {
		struct job *j = (struct job *)(base + (size_t)k * size);
		j->started = pthread_create(&j->tid, NULL, fn, j) == 0;
		if (!j->started)
			j->rc = mea_errf(&j->err, MEA_E_NOMEM, "cannot start a thread");
	}
	fn(base);
	for (int k = 1; k < n; k++) {
		struct job *j = (struct job *)(base + (size_t)k * size);
		if (j->started)
			pthread_join(j->tid, NULL);
	}
	for (int k = 0; k < n; k++) {
		struct job *j = (struct job *)(base + (size_t)k * size);
		if (j->rc) {
			*e = j->err;
			return j->rc;
		}
	}
	return MEA_OK;
}

/*
 * Data parallelism.  With W workers a batch is cut into W contiguous
 * parts; worker k runs forward and backward of its part on a plan of its
 * own, in a thread of its own (every OpenBLAS call single-threaded), and
 * the parameter gradients are combined, weighted by the parts' sizes,
 * into worker 0's before one SGD step.  For the small convolutions of
 * these models this is what a second core is good for: OpenBLAS's own
 * threads barely help them.  Two things differ from one worker, so a
 * result depends on W (and repeats for the same W): batch normalisation
 * uses each part's statistics, as data-parallel training on several GPUs
 * does, and only worker 0's part updates the running statistics.  With
 * one worker the step is exactly the plain one.  Concurrent calls into
 * OpenBLAS are safe in its threaded builds (Debian's pthread variant);
 * one built with USE_THREAD=0 needs USE_LOCKING=1 for them (0.3.7 on).
 */
struct worker {
	struct job job;        /* first: see fork_join */
	struct mea_plan *plan;
	const struct mea_train_cfg *c;
	const float *x;        /* its part of the batch, and its labels */
	const int32_t *y;
	const float *t;        /* and its teacher logits, when distilling */
	size_t plane;          /* floats per image */
	int n;
	float loss;
};

struct run {
	struct mea_model *m;
	const struct mea_dataset *ds;
	const struct mea_train_cfg *c;
	const int32_t *remap;
	struct worker *w;
	int nw;
	float *x;
	int32_t *y;
	float *t;              /* [batch][K] teacher logits, distilling only */
	int K;
	uint64_t drop_seed;    /* this step's feature dropout (cfg->feature_drop) */
};

static void *
worker_step(void *arg)
{
	struct worker *w = arg;

	if (w->n == 0)         /* a batch smaller than the thread count */
		return NULL;
	memcpy(mea_plan_value(w->plan, 0), w->x, (size_t)w->n * w->plane * sizeof(float));
	if ((w->job.rc = mea_plan_forward(w->plan, w->n, &w->job.err)))
		return NULL;
	mea_plan_zero_grad(w->plan);
	w->loss = w->c->distill > 0 ?
		mea_plan_distill(w->plan, w->c->out_node, w->y, w->c->smooth, w->t,
			w->c->distill, w->c->tau) :
		mea_plan_xent(w->plan, w->c->out_node, w->y, w->c->smooth);
	if (isfinite(w->loss))
		w->job.rc = mea_plan_backward(w->plan, &w->job.err);
	return NULL;
}

/* Worker 0's parameter gradients become the batch's: the parts' mean
 * gradients weighted by their shares of the batch. */
static void
combine_grads(struct run *r, int nb)
{
	struct mea_model *m = r->m;

	for (int t = 0; t < m->ntensors; t++) {
		float *g0 = mea_plan_param_grad(r->w[0].plan, t);
		float f0 = (float)r->w[0].n / (float)nb;
		if (m->tensor[t].kind != MEA_TK_PARAM || !g0)
			continue;
		for (size_t i = 0; i < m->tensor[t].nelem; i++)
			g0[i] *= f0;
		for (int k = 1; k < r->nw; k++) {
			const float *g = mea_plan_param_grad(r->w[k].plan, t);
			float f = (float)r->w[k].n / (float)nb;
			if (r->w[k].n == 0 || !g)
				continue;
			for (size_t i = 0; i < m->tensor[t].nelem; i++)
				g0[i] += f * g[i];
		}
	}
}

/* Forward and backward of the nb images in r->x, r->y on every worker,
 * worker 0 in this thread; *loss is the batch's mean loss. */
static int
parallel_step(struct run *r, int nb, float *loss, struct mea_err *e)
{
	int off = 0, rc;

	for (int k = 0; k < r->nw; k++) {
		struct worker *w = &r->w[k];
		w->n = nb / r->nw + (k < nb % r->nw);
		w->x = r->x + (size_t)off * w->plane;
		w->y = r->y + off;
		w->t = r->t ? r->t + (size_t)off * r->K : NULL;
		mea_plan_set_drop(w->plan, r->c->feature_drop, r->drop_seed, off);
		w->job.rc = 0;
		w->loss = 0;
		off += w->n;
	}
	if ((rc = fork_join(r->w, sizeof *r->w, r->nw, worker_step, e)))
		return rc;
	if (r->nw == 1) {
		*loss = r->w[0].loss;
		return MEA_OK;
	}
	*loss = 0;
	for (int k = 0; k < r->nw; k++)
		*loss += r->w[k].loss * (float)r->w[k].n / (float)nb;
	combine_grads(r, nb);
	return MEA_OK;
}

/* Hits of worker k's part against its labels. */
static double
worker_hits(const struct run *r, const struct worker *w)
{
	const float *out = mea_plan_value(w->plan, r->c->out_node);
	double hits = 0;

	for (int i = 0; i < w->n; i++)
		hits += argmax(out + (size_t)i * r->K, r->K) == w->y[i];
	return hits;
}

/* The teacher's logits of a batch's images, in the output's classes
 * (the hard ones, in their order, when training the extension). */
static void
teacher_rows(struct run *r, const int32_t *idx, int nb)
{
	const struct mea_dataset *ds = r->ds;

	for (int i = 0; i < nb; i++) {
		const float *src = ds->soft + (size_t)idx[i] * ds->K;
		float *dst = r->t + (size_t)i * r->K;
		for (int c = 0; c < ds->K; c++) {
			int slot = r->remap ? r->remap[c] : c;
			if (slot >= 0)
				dst[slot] = src[c];
		}
	}
}

/* One epoch over the images in base[0..n-1].  Its order is drawn afresh
 * from base, not from the previous epoch's order, so that epoch k depends
 * on (seed, k) alone and a resumed run repeats the uninterrupted one. */
static int
train_epoch(struct run *r, int epoch, const int32_t *base, int32_t *order, size_t n,
		double t0, mea_train_cb *cb, void *ctx, int *stopped, struct mea_err *e)
{
	const struct mea_train_cfg *c = r->c;
	size_t steps = n / (size_t)c->batch;   /* drop the last partial batch */
	double loss_sum = 0, hits = 0, seen = 0;
	struct mea_rng rng;

	if (steps == 0)
		steps = 1;
	mea_rng_seed(&rng, c->seed * 1000003u + (uint64_t)epoch);
	memcpy(order, base, n * sizeof *order);
	mea_rng_shuffle(&rng, order, n);
	for (size_t s = 0; s < steps; s++) {
		int nb = (size_t)c->batch < n ? c->batch : (int)n;
		double lr = mea_train_lr(c, (size_t)epoch * steps + s, steps);
		float loss;
		int rc;

		mea_dataset_batch(r->ds, order + s * (size_t)c->batch, nb, r->m->mean, r->m->std,
				&c->aug, &rng, r->x, r->y);
		if (r->remap)
			for (int i = 0; i < nb; i++)
				r->y[i] = r->remap[r->y[i]];
		if (r->t)
			teacher_rows(r, order + s * (size_t)c->batch, nb);
		if (c->feature_drop > 0)  /* nothing drawn without: runs keep their bits */
			r->drop_seed = mea_rng_next(&rng);
		if ((rc = parallel_step(r, nb, &loss, e)))
			return rc;
		if (!isfinite(loss))
			return mea_errf(e, MEA_E_FORMAT, "epoch %d, step %zu: loss is %g; stopping",
					epoch + 1, s + 1, loss);
		sgd_step(r->m, r->w[0].plan, c, (float)lr);
		for (int k = 0; k < r->nw; k++)
			hits += worker_hits(r, &r->w[k]);
		loss_sum += (double)loss * nb;
		seen += nb;
		if (cb) {
			struct mea_train_status st = {
				.epoch = epoch, .epochs = c->epochs, .step = s + 1, .steps = steps,
				.loss = loss_sum / seen, .acc = hits / seen, .lr = lr,
				.seconds = now() - t0, .epoch_done = s + 1 == steps,
			};
			if (cb(ctx, &st)) {
				*stopped = 1;
				return MEA_OK;
			}
		}
	}
	return MEA_OK;
}

static void
free_workers(struct run *r)
{
	for (int k = 0; k < r->nw; k++)
		mea_plan_free(r->w[k].plan);
	free(r->w);
}

/* One plan per worker, each for its largest part of a batch. */
static int
make_workers(struct run *r, struct mea_err *e)
{
	const struct mea_train_cfg *c = r->c;
	struct mea_plan_opts po = {0};
	int rc = MEA_OK, nw = c->workers > 1 ? (c->workers < c->batch ? c->workers : c->batch) : 1;

	if (!(r->w = calloc((size_t)nw, sizeof *r->w)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	r->nw = nw;
	po.batch = c->batch / r->nw + (c->batch % r->nw != 0);
	po.ninputs = 1;
	po.input[0] = 0;
	po.noutputs = 1;
	po.output[0] = c->out_node;
	po.train_mask = c->mask;
	po.row_shift = c->row_shift;
	for (int k = 0; k < r->nw && !rc; k++) {
		r->w[k].c = c;
		r->w[k].plane = (size_t)r->ds->C * r->ds->H * r->ds->W;
		po.keep_stats = k > 0;
		rc = mea_plan_new(&r->w[k].plan, r->m, &po, e);
	}
	return rc;
}

int
mea_train(struct mea_model *m, const struct mea_dataset *ds, const int32_t *idx,
		size_t n, const int32_t *remap, const struct mea_train_cfg *c,
		int first_epoch, mea_train_cb *cb, void *ctx, struct mea_err *e)
{
	struct run r = {.m = m, .ds = ds, .c = c, .remap = remap};
	int32_t *base = NULL, *order = NULL;
	size_t nsel, plane = (size_t)ds->C * ds->H * ds->W;
	int rc, stopped = 0;
	double t0 = now();

	if (c->batch < 1 || c->epochs < 1)
		return mea_errf(e, MEA_E_ARG, "batch and epochs must be positive");
	if (ds->C != m->in_c || ds->H != m->in_h || ds->W != m->in_w)
		return mea_errf(e, MEA_E_FORMAT, "images are %dx%dx%d, the model takes %dx%dx%d",
				ds->C, ds->H, ds->W, m->in_c, m->in_h, m->in_w);
	r.K = m->node[c->out_node].C;
	if (c->distill > 0 && !ds->soft)
		return mea_errf(e, MEA_E_FORMAT, "distilling needs a teacher's logits: records "
				"with cloud_logits (mea-main --cloud with the teacher)");
	if (c->distill > 0 && !remap && ds->K != r.K)
		return mea_errf(e, MEA_E_FORMAT, "the teacher has %d classes, the model %d",
				ds->K, r.K);
	/* Momentum for the blocks this job trains; none for the ones it
	 * leaves frozen (the main block, in the ext job). */
	if ((rc = mea_model_drop_state(m, MEA_BLOCKS_ALL & ~c->mask, e)) ||
			(rc = mea_model_add_state(m, c->mask, e)))
		return rc;
	if ((rc = select_samples(ds, idx, n, remap, &base, &nsel)))
		return mea_errf(e, rc, "out of memory");
	if (nsel == 0) {
		free(base);
		return mea_errf(e, MEA_E_FORMAT, "no training images (none of the selected classes)");
	}
	r.x = malloc((size_t)c->batch * plane * sizeof *r.x);
	r.y = malloc((size_t)c->batch * sizeof *r.y);
	if (c->distill > 0)
		r.t = malloc((size_t)c->batch * r.K * sizeof *r.t);
	order = malloc(nsel * sizeof *order);
	if (!r.x || !r.y || (c->distill > 0 && !r.t) || !order)
		rc = mea_errf(e, MEA_E_NOMEM, "out of memory for a batch of %d", c->batch);
	else
		rc = make_workers(&r, e);
	for (int ep = first_epoch; !rc && !stopped && ep < c->epochs; ep++)
		rc = train_epoch(&r, ep, base, order, nsel, t0, cb, ctx, &stopped, e);
	free_workers(&r);
	free(r.x);
	free(r.y);
	free(r.t);
	free(base);
	free(order);
	return rc;
}

/* Evaluation in threads: whole batches of the same images as with one
 * thread, so the answers do not depend on the thread count. */
struct eval_part {
	struct job job;        /* first: see fork_join */
	struct mea_model *m;
	const struct mea_dataset *ds;
	const int32_t *idx;    /* its images */
	size_t n;
	int out_node, batch;
	int32_t *pred;         /* its slots of the outputs */
	float *entropy;
};

static void *
eval_part(void *arg)
{
	struct eval_part *t = arg;
	struct mea_model *m = t->m;
	struct mea_plan_opts po = {0};
	struct mea_plan *plan = NULL;
	int K = m->node[t->out_node].C, batch = t->batch;
	float *p = malloc((size_t)K * sizeof *p);

	po.batch = batch;
	po.ninputs = 1;
	po.noutputs = 1;
	po.output[0] = t->out_node;
	if (!p) {
		t->job.rc = mea_errf(&t->job.err, MEA_E_NOMEM, "out of memory");
		return NULL;
	}
	if ((t->job.rc = mea_plan_new(&plan, m, &po, &t->job.err))) {
		free(p);
		return NULL;
	}
	for (size_t i = 0; i < t->n && !t->job.rc; i += (size_t)batch) {
		int nb = t->n - i < (size_t)batch ? (int)(t->n - i) : batch;
		const float *out;
		mea_dataset_batch(t->ds, t->idx + i, nb, m->mean, m->std, NULL, NULL,
				mea_plan_value(plan, 0), NULL);
		if ((t->job.rc = mea_plan_forward_tta(plan, nb, t->out_node, &t->job.err)))
			break;
		out = mea_plan_value(plan, t->out_node);
		for (int b = 0; b < nb; b++) {
			mea_softmax(1, K, out + (size_t)b * K, p);
			t->pred[i + b] = argmax(p, K);
			if (t->entropy)
				t->entropy[i + b] = mea_entropy(K, p);
		}
	}
	mea_plan_free(plan);
	free(p);
	return NULL;
}

int
mea_eval(struct mea_model *m, const struct mea_dataset *ds, const int32_t *idx,
		size_t n, int out_node, int batch, int threads, int32_t *pred, float *entropy,
		struct mea_err *e)
{
	size_t nbatch = (n + (size_t)batch - 1) / (size_t)batch, first = 0;
	int nt = threads > 1 ? threads : 1, rc;
	struct eval_part *t;

	if ((size_t)nt > nbatch)
		nt = nbatch ? (int)nbatch : 1;
	if (!(t = calloc((size_t)nt, sizeof *t)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	for (int k = 0; k < nt; k++) {
		size_t last = nbatch * (size_t)(k + 1) / (size_t)nt;   /* its batches: first..last-1 */
		size_t i0 = first * (size_t)batch, i1 = last * (size_t)batch < n ? last * (size_t)batch : n;
		t[k] = (struct eval_part){ .m = m, .ds = ds, .idx = idx + i0, .n = i1 - i0,
			.out_node = out_node, .batch = batch, .pred = pred + i0,
			.entropy = entropy ? entropy + i0 : NULL };
		first = last;
	}
	rc = fork_join(t, sizeof *t, nt, eval_part, e);
	free(t);
	return rc;
}

int
mea_eval_accuracy(struct mea_model *m, const struct mea_dataset *ds, const int32_t *idx,
		size_t n, int out_node, const int32_t *remap, int threads, double *acc,
		struct mea_err *e)
{
	int32_t *sel = NULL, *pred = NULL;
	size_t nsel = 0, hits = 0;
	int rc;

	if (select_samples(ds, idx, n, remap, &sel, &nsel) ||
			!(pred = malloc((nsel ? nsel : 1) * sizeof *pred))) {
		free(sel);
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	}
	rc = mea_eval(m, ds, sel, nsel, out_node, 128, threads, pred, NULL, e);
	for (size_t i = 0; !rc && i < nsel; i++) {
		int32_t y = ds->label[sel[i]];
		hits += pred[i] == (remap ? remap[y] : y);
	}
	*acc = nsel ? (double)hits / (double)nsel : NAN;
	free(sel);
	free(pred);
	return rc;
}

int
mea_calibrate(struct mea_model *m, const struct mea_dataset *ds, const int32_t *idx,
		size_t n, double share, int threads, double *precision,
		struct mea_calib_report *rep, struct mea_err *e)
{
	int K = m->nclasses, nhard = m->nhard > 0 ? m->nhard : K / 2, rc;
	int32_t *pred = malloc((n ? n : 1) * sizeof *pred), *label = malloc((n ? n : 1) * sizeof *label);
	int32_t *hard = malloc((size_t)(nhard ? nhard : 1) * sizeof *hard);
	float *ent = malloc((n ? n : 1) * sizeof *ent);
	uint8_t *ok = malloc(n ? n : 1);
	double *prec = malloc((size_t)K * sizeof *prec);
	size_t hits = 0, above = 0;

	rc = !pred || !label || !hard || !ent || !ok || !prec
		? mea_errf(e, MEA_E_NOMEM, "out of memory") : MEA_OK;
	if (!rc && n == 0)
		rc = mea_errf(e, MEA_E_FORMAT, "no held-out images to calibrate on");
	if (!rc)
		rc = mea_eval(m, ds, idx, n, m->node_logits, 128, threads, pred, ent, e);
	if (!rc) {
		for (size_t i = 0; i < n; i++) {
			label[i] = ds->label[idx[i]];
			ok[i] = pred[i] == label[i];
			hits += ok[i];
		}
		rc = mea_class_precision(K, n, pred, label, prec);
	}
	if (!rc)
		rc = mea_hard_classes(K, prec, nhard, hard);
	if (!rc)
		rc = mea_model_set_hard(m, nhard, hard, e);
	if (!rc) {
		rep->n = n;
		rep->accuracy = (double)hits / (double)n;
		rep->t_fit = mea_threshold_fit(n, ent, ok);
		rep->t_share = share >= 0 ? mea_threshold_share(n, ent, share) : NAN;
		for (size_t i = 0; i < n; i++)
			above += ent[i] > rep->t_fit;
		rep->share_at_fit = (double)above / (double)n;
		m->threshold = (float)(share >= 0 ? rep->t_share : rep->t_fit);
		if (precision)
			memcpy(precision, prec, (size_t)K * sizeof *prec);
	}
	free(pred);
	free(label);
	free(hard);
	free(ent);
	free(ok);
	free(prec);
	return rc;
}

/* slot[c] = the place of class c among m's hard classes, -1 for an easy
 * one (slot: m->nclasses entries). */
static void
hard_slots(const struct mea_model *m, int32_t *slot)
{
	for (int c = 0; c < m->nclasses; c++)
		slot[c] = -1;
	for (int k = 0; k < m->nhard; k++)
		slot[m->hard[k]] = k;
}

int
mea_train_target(const struct mea_model *m, int ext, struct mea_train_cfg *cfg,
		int32_t **remap, struct mea_err *e)
{
	*remap = NULL;
	cfg->mask = MEA_BLOCK_BIT(MEA_BLOCK_MAIN);
	cfg->out_node = m->node_logits;
	if (!ext)
		return MEA_OK;
	if (m->node_ext < 0 || m->nhard < 1)
		return mea_errf(e, MEA_E_ARG, "no extension block or hard classes (init with "
				"--meanet, then calibrate)");
	if (!(*remap = malloc((size_t)m->nclasses * sizeof **remap)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	hard_slots(m, *remap);
	cfg->mask = MEA_BLOCK_BIT(MEA_BLOCK_ADAPTIVE) | MEA_BLOCK_BIT(MEA_BLOCK_EXT);
	cfg->out_node = m->node_ext;
	return MEA_OK;
}

int
mea_eval_edge(struct mea_model *m, const struct mea_dataset *ds, const int32_t *idx,
		size_t n, int threads, struct mea_edge_report *rep, int32_t *main_pred,
		float *entropy, int32_t *edge_pred, struct mea_err *e)
{
	int32_t *pm = malloc((n ? n : 1) * sizeof *pm), *pe = malloc((n ? n : 1) * sizeof *pe);
	float *ent = malloc((n ? n : 1) * sizeof *ent);
	int32_t *slot = malloc((size_t)m->nclasses * sizeof *slot);  /* hard_slots */
	int ext = m->node_ext >= 0 && m->nhard > 0, rc;

	memset(rep, 0, sizeof *rep);
	rc = !pm || !pe || !ent || !slot ? mea_errf(e, MEA_E_NOMEM, "out of memory") : MEA_OK;
	if (!rc)
		rc = mea_eval(m, ds, idx, n, m->node_logits, 128, threads, pm, ent, e);
	if (!rc && ext)
		rc = mea_eval(m, ds, idx, n, m->node_ext, 128, threads, pe, NULL, e);
	if (!rc)
		hard_slots(m, slot);
	for (size_t i = 0; !rc && i < n; i++) {
		int32_t y = ds->label[idx[i]], c = pm[i];
		int32_t edge = ext && slot[c] >= 0 ? m->hard[pe[i]] : c;
		if (main_pred)
			main_pred[i] = c;
		if (entropy)
			entropy[i] = ent[i];
		if (edge_pred)
			edge_pred[i] = edge;
		rep->main_hits += c == y;
		rep->edge_hits += edge == y;
		rep->above_t += ent[i] > m->threshold;
		if (ext && slot[y] >= 0) {
			rep->hard_n++;
			rep->hard_main_hits += c == y;
			rep->hard_edge_hits += edge == y;
		}
	}
	rep->n = n;
	free(pm);
	free(pe);
	free(ent);
	free(slot);
	return rc;
}
