/*
 * offload.h: sending records to a cloud worker (part of libmea; the
 * engine of mea-offload(1)).
 *
 * A cloud worker is any program that reads mea records and answers each
 * one, in order, with the same record plus an f32 tensor "cloud_logits"
 * [K] and its multiply-accumulates added to the int field "macs_cloud"
 * (mea-main --cloud is the real one).  The worker is reached over TCP
 * ("HOST:PORT") or run as a child process (sh -c COMMAND) whose stdin and
 * stdout carry the stream.
 *
 * mea_offload_run() is a filter from a reader to a writer.  A record goes
 * to the cloud when its "route" is "cloud" or its "sweep" is 1; the
 * request carries only its "id", "seq" and "image" (and "feat" on
 * request).  Every record is written in input order, each as soon as it
 * and all records before it are done; up to conf.inflight requests are
 * outstanding at once.  When the worker fails (refused, closed, silent
 * past the timeout, or answering something that is not the answer) the
 * engine reconnects with exponential backoff; requests in flight are sent
 * again.  After conf.retries reconnects in a row without an answer the
 * cloud is given up for the rest of the stream and each cloud record gets
 * the edge answer (exit = "fallback").  No record is lost, duplicated or
 * reordered.
 *
 * Signals: writes to a socket never raise SIGPIPE, but writes to a child's
 * pipe do, so the caller ignores SIGPIPE (cli_init does).  A child worker
 * runs in its own process group, which gets SIGTERM when the worker is
 * dropped (SIGKILL a second later), and is always reaped.
 */
#ifndef MEA_OFFLOAD_H
#define MEA_OFFLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "mea.h"

/* Fields mea-offload reads and writes (see mea-offload(1)). */
#define MEA_T_CLOUD_LOGITS "cloud_logits"
#define MEA_T_FEAT         "feat"

struct mea_offload_conf {
	const char *connect;   /* "HOST:PORT" or "[V6ADDR]:PORT"; or NULL */
	const char *command;   /* run with sh -c when connect is NULL */
	int inflight;          /* requests outstanding at once, 1..MEA_OFFLOAD_MAX_INFLIGHT */
	double timeout;        /* seconds: to connect, and for each answer */
	int retries;           /* reconnects in a row without an answer, then give up */
	double backoff;        /* first wait before a reconnect, seconds; doubles */
	double backoff_max;    /* the wait never exceeds this */
	int send_feat;         /* also send tensor "feat" when the record has one */
	size_t max_queue;      /* records held at once; 0: 8 * inflight + 64 */
};

#define MEA_OFFLOAD_MAX_INFLIGHT 1024

/* Filled in by mea_offload_run, also when it fails. */
struct mea_offload_stats {
	uint64_t records;      /* records written */
	uint64_t routed;       /* records for the cloud (route or sweep) */
	uint64_t answered;     /* of those, answered by the cloud */
	uint64_t fallback;     /* of those, given the edge answer instead */
	uint64_t resent;       /* requests sent again after a reconnect */
	uint64_t connects;     /* connections made or children started */
	uint64_t failures;     /* connections that failed */
	uint64_t bytes_up, bytes_down;
	int gave_up;           /* the cloud was given up */
	char failure[384];     /* the last failure, "WHERE: WHAT"; "" for none */
};

/* Defaults: no worker, 8 in flight, 10 s timeout, 5 retries, backoff
 * 0.1 s doubling up to 5 s, no features, automatic queue size. */
void mea_offload_conf_init(struct mea_offload_conf *c);

/*
 * Run the filter until in ends.  Returns 0 when every record was written,
 * whether the cloud answered or not (st->fallback counts the edge
 * answers, st->failure says why).  Errors: MEA_E_ARG for an impossible
 * conf (the message names it); the reader's error for bad input, after
 * every record before the bad one was written; MEA_E_FORMAT for a cloud
 * record without an "image" tensor; MEA_E_LIMIT for a record with no room
 * for the new fields; MEA_E_IO when writing to out fails; MEA_E_NOMEM.
 * A worker's failures are never errors here.
 */
int mea_offload_run(const struct mea_offload_conf *c, struct mea_reader *in,
		struct mea_writer *out, struct mea_offload_stats *st, struct mea_err *e);

/* The pieces of the record contract, for other stages and for tests. */

/* 1 when r goes to the cloud: "route" is "cloud" or "sweep" is 1. */
int mea_offload_wanted(const struct mea_record *r);

/*
 * Take the worker's answer ans for r: check it (ans must carry r's "id"
 * and "seq" when r has them, and an f32 "cloud_logits" [K], K >= 1, all
 * finite; "macs_cloud", when present, an int >= 0), then set r's
 * cloud_pred (argmax, the first of equal maxima) and cloud_conf (its
 * softmax probability), add the worker's macs_cloud to r's, and for
 * route "cloud" set the answer: pred, conf, exit = "cloud".  Errors:
 * MEA_E_FORMAT when ans is not the answer to r (r is unchanged),
 * MEA_E_LIMIT when r has no room for the fields.
 */
int mea_offload_merge(struct mea_record *r, const struct mea_record *ans,
		struct mea_err *e);

/*
 * Give r the edge answer: for route "cloud", exit = "fallback" and pred,
 * conf from ext_pred, ext_conf when present, else from main_pred,
 * main_conf (left alone when neither is there).  Other records (sweep
 * only) are not changed.  Returns 0 or MEA_E_LIMIT.
 */
int mea_offload_fallback(struct mea_record *r);

#endif
