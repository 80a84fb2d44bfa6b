/*
 * gate.h: the MEANet inference rule (part of libmea): from the main
 * block's logits, decide whether a record is complex (to the cloud),
 * easy (answered by the main block) or hard (to the extension block),
 * and mark the record accordingly.  See mea-gate(1) for the fields.
 *
 * Ownership: a struct mea_gate owns its hard-class list and a scratch
 * buffer for probabilities that mea_gate_route reuses from record to
 * record; free both with mea_gate_free.  One gate serves one thread.
 */
#ifndef MEA_GATE_H
#define MEA_GATE_H

#include <stddef.h>
#include <stdint.h>

struct mea_err;
struct mea_record;

#define MEA_GATE_MAX_CLASSES 65536    /* logits and class ids */

enum mea_gate_rule {
	MEA_GATE_ARGMAX = 0,   /* hard when argmax is a hard class; complex when H > T */
	MEA_GATE_HARDPROB,     /* hard when the mass on hard classes > 0.5; complex when H > T */
	MEA_GATE_MAXPROB,      /* hard as argmax; complex when max p < min_conf */
};

enum mea_route { MEA_ROUTE_MAIN = 0, MEA_ROUTE_EXT, MEA_ROUTE_CLOUD };

struct mea_gate {
	int rule;              /* enum mea_gate_rule */
	double threshold;      /* T in nats: complex when entropy > T */
	double min_conf;       /* MAXPROB: complex when max p < min_conf */
	int cloud;             /* 0: complex records stay at the edge */
	int sweep;             /* 1: mark every routed record "sweep" = 1 */
	int nclasses;          /* logits must have this many; 0 accepts any */
	int nhard;
	int32_t *hard;         /* [nhard] class ids, hardest first; owned */
	unsigned char *is_hard; /* [span]: 1 for a hard class id; owned */
	int span;              /* 1 + the largest hard class id, or 0 */
	float *prob;           /* scratch, [cap] */
	size_t cap;
};

/* What the rule makes of one logit vector. */
struct mea_gate_decision {
	int pred;              /* c = argmax (the first of equal maxima) */
	double conf;           /* p[c] */
	double entropy;        /* H = -sum p log p, nats */
	double hard_mass;      /* sum of p over the hard classes */
	int hard;              /* 1 when the rule calls it hard */
	int complex;           /* 1 when the rule calls it complex */
	int route;             /* enum mea_route */
};

/* Defaults: rule ARGMAX, T 0.8 (the published default), min_conf 0.5,
 * cloud on, no sweep, any class count, no hard classes. */
void mea_gate_init(struct mea_gate *g);
void mea_gate_free(struct mea_gate *g);

/* Replace the hard-class list with a copy of hard[n].  Refuses (MEA_E_ARG)
 * an id that is negative, at least g->nclasses (when set) or at least
 * MEA_GATE_MAX_CLASSES, and an id listed twice.  n may be 0. */
int mea_gate_set_hard(struct mea_gate *g, const int32_t *hard, int n, struct mea_err *e);
/* Parse "6,0,4" (comma-separated class ids; "" is the empty list) into a
 * malloc'ed array; caller frees *hard.  MEA_E_ARG names the bad item. */
int mea_gate_parse_list(const char *s, int32_t **hard, int *n, struct mea_err *e);

/* Apply the rule to logits x[K] with p[K] as scratch.  Refuses (MEA_E_FORMAT)
 * a non-finite logit, and K not equal to g->nclasses when that is set. */
int mea_gate_decide(const struct mea_gate *g, int K, const float *x, float *p,
		struct mea_gate_decision *d, struct mea_err *e);

/*
 * Route one record.  A record without a "logits" tensor is left untouched
 * (returns 0).  Otherwise it gets the fields entropy, main_pred,
 * main_conf, hard and route, "sweep" = 1 when g->sweep, and for route
 * main the answer pred, conf and exit = "main".  For another route, any
 * pred, conf and exit already present are removed, so a record routed
 * twice never carries a stale answer.  Errors: MEA_E_FORMAT for logits
 * that are not f32, empty, non-finite or of the wrong size; MEA_E_LIMIT
 * when the record has no room for the fields; MEA_E_NOMEM.  The message
 * names the problem, not the record: the caller adds where.
 */
int mea_gate_route(struct mea_gate *g, struct mea_record *r, struct mea_err *e);

const char *mea_route_name(int route);     /* "main", "ext", "cloud" */
const char *mea_gate_rule_name(int rule);  /* "argmax", ... or NULL */
int mea_gate_rule_parse(const char *s);    /* -1 when unknown */

#endif
