/*
 * score.h: scoring a finished stream (part of libmea): accuracy overall,
 * per exit and per class, mean costs per image, an energy estimate, mean
 * stage times, a check for lost records, and the threshold sweep.  The
 * programs print what these functions write to a FILE they are given.
 *
 * Ownership: a struct mea_score owns its arrays; free with
 * mea_score_free.  Its fields are read-only for callers except the
 * settings marked below, which are set before the first mea_score_add.
 */
#ifndef MEA_SCORE_H
#define MEA_SCORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct mea_err;
struct mea_record;

/* ------------------------------------------------------------- energy */

/*
 * An energy profile: three costs, every one an assumption the user can
 * change (share/energy/NAME.energy).  The estimate per image is
 *   E = MACs_edge * edge_mac_pj + 8 * (bytes_up + bytes_down) * link_bit_pj
 *     + MACs_cloud * cloud_mac_pj        (picojoules)
 * and counts nothing else.
 */
struct mea_energy {
	double edge_mac_pj;    /* pJ per multiply-accumulate on the edge */
	double link_bit_pj;    /* pJ per bit sent or received over the link */
	double cloud_mac_pj;   /* pJ per multiply-accumulate in the cloud */
};

/* Read a profile: lines "key value", '#' to the end of a line is a
 * comment, each of the three keys exactly once, values finite and >= 0.
 * MEA_E_IO when path cannot be read, MEA_E_FORMAT naming the line. */
int mea_energy_load(struct mea_energy *en, const char *path, struct mea_err *e);
/* Energy in microjoules of the given per-image means. */
double mea_energy_uj(const struct mea_energy *en, double macs_edge, double bytes,
		double macs_cloud);

/* -------------------------------------------------------------- score */

#define MEA_SCORE_MAX_CLASSES 65536
#define MEA_SCORE_MAX_TIMES   64     /* distinct t_* fields summarised */

enum mea_exit {
	MEA_EXIT_MAIN, MEA_EXIT_EXT, MEA_EXIT_CLOUD, MEA_EXIT_FALLBACK,
	MEA_EXIT_OTHER,                  /* an "exit" string not listed above */
	MEA_EXIT_NONE,                   /* no "exit" field */
	MEA_NEXITS
};

struct mea_score_count {
	uint64_t n, labelled, correct;
};

struct mea_score_time {
	char key[64];
	double sum;
	uint64_t n;
};

/* What --sweep keeps of each record. */
struct mea_score_point {
	double entropy;
	int32_t label, main_pred, ext_pred, cloud_pred;   /* -1 when absent */
	int hard;
	double macs_edge, macs_cloud, bytes;
};

struct mea_score {
	/* Settings. */
	int nclasses;          /* class ids must be below this; 0: up to the limit */
	int sweep;             /* keep a point per record for mea_score_sweep */

	uint64_t n, labelled, answered, correct;
	struct mea_score_count exit[MEA_NEXITS];
	int K;                 /* 1 + the largest class id seen (or nclasses) */
	int cap;
	uint64_t *answers;     /* [cap] answers of class c */
	uint64_t *answers_lab; /* [cap] answers of class c on labelled records */
	uint64_t *hits;        /* [cap] correct answers of class c */
	uint64_t *actual;      /* [cap] labelled records of class c */
	unsigned char *hard;   /* [cap] 1: hard (given, or inferred) */
	int hard_given;        /* 1 once mea_score_set_hard was called */
	double macs_edge, macs_cloud, bytes_up, bytes_down;   /* sums */
	int ntimes;
	struct mea_score_time time[MEA_SCORE_MAX_TIMES];

	/* Lost-record check on "seq": after mea_score_add, gap is 1 when the
	 * record's seq skipped past last + 1 (gap_from is that last). */
	int have_seq, gap;
	int64_t last_seq, gap_from, gap_to;
	uint64_t ngaps, lost;

	struct mea_score_point *pt;
	size_t npt, cappt;
};

void mea_score_init(struct mea_score *s);
void mea_score_free(struct mea_score *s);
/* Fix the class count (before the first add): ids >= K are then errors. */
int mea_score_set_classes(struct mea_score *s, int K, struct mea_err *e);
/* Make the class table at least K rows (for K class names) without
 * limiting the ids accepted. */
int mea_score_reserve(struct mea_score *s, int K, struct mea_err *e);
/* Set (or replace) the hard classes; without this call they are
 * inferred: class c is hard when some record has main_pred c and hard 1. */
int mea_score_set_hard(struct mea_score *s, const int32_t *hard, int n, struct mea_err *e);

/* Count one record.  MEA_E_FORMAT (naming the field) for a class id out
 * of range, a well-known field of the wrong type, a negative or
 * non-finite cost or time, and with s->sweep a record not marked by
 * mea-gate --all or lacking what the sweep needs. */
int mea_score_add(struct mea_score *s, const struct mea_record *r, struct mea_err *e);

/* How to present a score. */
struct mea_score_view {
	char **names;                   /* class names [nnames], or NULL */
	int nnames;
	const char *hard_source;        /* "--hard", "the model", ... or NULL */
	const struct mea_energy *energy;/* NULL: no energy estimate */
	const char *energy_name;        /* where the profile came from */
};

/* The readable summary, and the same as one JSON object. */
void mea_score_print(FILE *f, const struct mea_score *s, const struct mea_score_view *v);
void mea_score_print_json(FILE *f, const struct mea_score *s, const struct mea_score_view *v);

/* One tab-separated line per record (strings with \t, \n, \\ escaped;
 * absent fields empty), after a header line. */
void mea_score_record_header(FILE *f);
void mea_score_record_line(FILE *f, const struct mea_record *r);

/*
 * The threshold sweep over the points kept with s->sweep.  Costs per path:
 * a negative option means "from the records": macs_main is the mean
 * macs_edge of records that are not hard, macs_ext the mean macs_edge of
 * hard records less macs_main, macs_cloud and bytes each record's own
 * macs_cloud and bytes_up + bytes_down.
 */
struct mea_score_sweep_opts {
	int steps;                      /* 0: every distinct entropy; else a grid */
	double macs_main, macs_ext, macs_cloud, bytes;  /* < 0: from the records */
	const struct mea_energy *energy;/* NULL: empty energy column */
};
/* Writes a header and one row per threshold.  *no_cloud gets the number
 * of records without cloud_pred (their cloud answer is the edge's).
 * MEA_E_ARG when macs_main cannot be derived. */
int mea_score_sweep(FILE *f, const struct mea_score *s, const struct mea_score_sweep_opts *o,
		uint64_t *no_cloud, struct mea_err *e);

const char *mea_exit_name(int exit);  /* "main", ..., "other", "none" */

#endif
