/* gate.c: the MEANet inference rule (MEANET.md, "Inference rule"). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mea.h"
#include "gate.h"

void
mea_gate_init(struct mea_gate *g)
{
	memset(g, 0, sizeof *g);
	g->rule = MEA_GATE_ARGMAX;
	g->threshold = 0.8;
	g->min_conf = 0.5;
	g->cloud = 1;
}

void
mea_gate_free(struct mea_gate *g)
{
	free(g->hard);
	free(g->is_hard);
	free(g->prob);
	g->hard = NULL;
	g->is_hard = NULL;
	g->prob = NULL;
	g->nhard = g->span = 0;
	g->cap = 0;
}

int
mea_gate_set_hard(struct mea_gate *g, const int32_t *hard, int n, struct mea_err *e)
{
	int32_t *copy = NULL;
	unsigned char *is_hard = NULL;
	int span = 0;

	if (n < 0 || n > MEA_GATE_MAX_CLASSES)
		return mea_errf(e, MEA_E_ARG, "%d hard classes (at most %d)", n, MEA_GATE_MAX_CLASSES);
	for (int i = 0; i < n; i++) {
		int limit = g->nclasses > 0 ? g->nclasses : MEA_GATE_MAX_CLASSES;
		if (hard[i] < 0 || hard[i] >= limit)
			return mea_errf(e, MEA_E_ARG, "hard class %ld is not a class id from 0 to %d",
					(long)hard[i], limit - 1);
		if (hard[i] >= span)
			span = hard[i] + 1;
	}
	if (n > 0) {
		copy = malloc((size_t)n * sizeof *copy);
		is_hard = calloc((size_t)span, 1);
		if (!copy || !is_hard) {
			free(copy);
			free(is_hard);
			return mea_errf(e, MEA_E_NOMEM, "out of memory");
		}
		memcpy(copy, hard, (size_t)n * sizeof *copy);
		for (int i = 0; i < n; i++) {
			if (is_hard[hard[i]]) {
				free(copy);
				free(is_hard);
				return mea_errf(e, MEA_E_ARG, "hard class %ld is listed twice",
						(long)hard[i]);
			}
			is_hard[hard[i]] = 1;
		}
	}
	free(g->hard);
	free(g->is_hard);
	g->hard = copy;
	g->is_hard = is_hard;
	g->nhard = n;
	g->span = span;
	return MEA_OK;
}

int
mea_gate_parse_list(const char *s, int32_t **hard, int *n, struct mea_err *e)
{
	size_t cap = 1;
	int32_t *v;
	int k = 0;

	for (const char *p = s; *p; p++)
		cap += *p == ',';
	if (!(v = malloc(cap * sizeof *v)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	while (*s) {
		char *end;
		long id;

		errno = 0;
		id = strtol(s, &end, 10);
		if (end == s || errno || id < 0 || id >= MEA_GATE_MAX_CLASSES ||
		    (*end && *end != ',') || (*end == ',' && !end[1])) {
			free(v);
			return mea_errf(e, MEA_E_ARG, "'%.*s' is not a class id from 0 to %d",
					(int)strcspn(s, ","), s, MEA_GATE_MAX_CLASSES - 1);
		}
		v[k++] = (int32_t)id;
		s = *end ? end + 1 : end;
	}
	*hard = v;
	*n = k;
	return MEA_OK;
}

int
mea_gate_decide(const struct mea_gate *g, int K, const float *x, float *p,
		struct mea_gate_decision *d, struct mea_err *e)
{
	int c = 0;

	if (K < 1 || K > MEA_GATE_MAX_CLASSES)
		return mea_errf(e, MEA_E_FORMAT, "logits have %d classes (1 to %d)",
				K, MEA_GATE_MAX_CLASSES);
	if (g->nclasses > 0 && K != g->nclasses)
		return mea_errf(e, MEA_E_FORMAT, "logits have %d classes, expected %d",
				K, g->nclasses);
	if (g->span > K)
		return mea_errf(e, MEA_E_FORMAT, "logits have %d classes but class %d is hard",
				K, g->span - 1);
	/* The route depends on every logit: one NaN would make the entropy
	 * NaN, every comparison false, and the record quietly "easy". */
	for (int k = 0; k < K; k++) {
		if (isnan(x[k]))
			return mea_errf(e, MEA_E_FORMAT, "logits contain NaN");
		if (isinf(x[k]))
			return mea_errf(e, MEA_E_FORMAT, "logits contain an infinite value");
	}
	mea_softmax(1, K, x, p);
	for (int k = 1; k < K; k++)
		if (p[k] > p[c])
			c = k;
	d->pred = c;
	d->conf = p[c];
	d->entropy = mea_entropy(K, p);
	d->hard_mass = 0;
	for (int k = 0; k < g->span; k++)
		if (g->is_hard[k])
			d->hard_mass += p[k];
	/* H and T are compared in single precision, the precision of H: a
	 * threshold printed with 9 digits (as mea-score --sweep prints the
	 * entropies it steps over) then means exactly that entropy. */
	switch (g->rule) {
	case MEA_GATE_HARDPROB:
		d->hard = d->hard_mass > 0.5;
		d->complex = (float)d->entropy > (float)g->threshold;
		break;
	case MEA_GATE_MAXPROB:
		d->hard = c < g->span && g->is_hard[c];
		d->complex = d->conf < g->min_conf;
		break;
	default:
		d->hard = c < g->span && g->is_hard[c];
		d->complex = (float)d->entropy > (float)g->threshold;
		break;
	}
	if (d->complex && g->cloud)
		d->route = MEA_ROUTE_CLOUD;
	else
		d->route = d->hard ? MEA_ROUTE_EXT : MEA_ROUTE_MAIN;
	return MEA_OK;
}

/* The record setters report only a code; say which field had no room. */
static int
set_rc(int rc, const char *key, struct mea_err *e)
{
	if (rc == MEA_OK)
		return MEA_OK;
	return mea_errf(e, rc, "cannot set field '%s': %s", key,
			rc == MEA_E_LIMIT ? "the record has 64 fields" : mea_strerror(rc));
}

int
mea_gate_route(struct mea_gate *g, struct mea_record *r, struct mea_err *e)
{
	const struct mea_tensor *t = mea_tensor_get(r, "logits");
	struct mea_gate_decision d;
	int rc;

	if (!t)
		return MEA_OK;
	if (t->dtype != MEA_F32)
		return mea_errf(e, MEA_E_FORMAT, "logits are %s, expected f32",
				mea_dtype_name(t->dtype));
	if (t->nelem < 1 || t->nelem > MEA_GATE_MAX_CLASSES)
		return mea_errf(e, MEA_E_FORMAT, "logits have %zu classes (1 to %d)",
				t->nelem, MEA_GATE_MAX_CLASSES);
	if (t->nelem > g->cap) {
		float *p = realloc(g->prob, t->nelem * sizeof *p);
		if (!p)
			return mea_errf(e, MEA_E_NOMEM, "out of memory");
		g->prob = p;
		g->cap = t->nelem;
	}
	if ((rc = mea_gate_decide(g, (int)t->nelem, t->data, g->prob, &d, e)) != 0)
		return rc;

	if ((rc = set_rc(mea_field_set_float(r, "entropy", d.entropy), "entropy", e)) ||
	    (rc = set_rc(mea_field_set_int(r, "main_pred", d.pred), "main_pred", e)) ||
	    (rc = set_rc(mea_field_set_float(r, "main_conf", d.conf), "main_conf", e)) ||
	    (rc = set_rc(mea_field_set_int(r, "hard", d.hard), "hard", e)) ||
	    (rc = set_rc(mea_field_set_str(r, MEA_F_ROUTE, mea_route_name(d.route)),
			MEA_F_ROUTE, e)))
		return rc;
	if (g->sweep && (rc = set_rc(mea_field_set_int(r, "sweep", 1), "sweep", e)))
		return rc;
	if (d.route != MEA_ROUTE_MAIN) {
		mea_field_remove(r, "pred");
		mea_field_remove(r, "conf");
		mea_field_remove(r, "exit");
		return MEA_OK;
	}
	if ((rc = set_rc(mea_field_set_int(r, "pred", d.pred), "pred", e)) ||
	    (rc = set_rc(mea_field_set_float(r, "conf", d.conf), "conf", e)) ||
	    (rc = set_rc(mea_field_set_str(r, "exit", "main"), "exit", e)))
		return rc;
	return MEA_OK;
}

const char *
mea_route_name(int route)
{
	switch (route) {
	case MEA_ROUTE_EXT: return "ext";
	case MEA_ROUTE_CLOUD: return "cloud";
	default: return "main";
	}
}

static const char *const rule_names[] = { "argmax", "hardprob", "maxprob" };

const char *
mea_gate_rule_name(int rule)
{
	if (rule < 0 || rule >= (int)(sizeof rule_names / sizeof rule_names[0]))
		return NULL;
	return rule_names[rule];
}

int
mea_gate_rule_parse(const char *s)
{
	for (int i = 0; i < (int)(sizeof rule_names / sizeof rule_names[0]); i++)
		if (strcmp(s, rule_names[i]) == 0)
			return i;
	return -1;
}
