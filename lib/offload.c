/*
 * offload.c: the mea-offload engine (offload.h, mea-offload(1)).
 *
 * One thread and one poll loop over three descriptors: the input, the
 * worker's output (answers) and the worker's input (requests, polled only
 * while bytes wait to go).  Records wait in a ring in input order, each
 * DONE (pass-through, answered or fallen back), WAIT (for the cloud, not
 * sent) or SENT (in flight).  Requests go out in ring order and the
 * worker answers in order, so among the records not yet DONE every SENT
 * one comes before every WAIT one, and the oldest SENT record is the one
 * the next answer belongs to.  The front of the ring is written out as
 * soon as it is DONE.
 *
 * Both directions to the worker are non-blocking: a request that does
 * not fit in the socket waits in a byte buffer, and answers are
 * collected in another until a whole record is there, so a stalled or
 * lying worker can never block the loop past the timeout.  Only the
 * input is read with mea_read, which may wait for the rest of a record
 * that has started to arrive: mea programs write whole records.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "offload.h"

enum { SLOT_DONE, SLOT_WAIT, SLOT_SENT };

struct slot {
	struct mea_record rec;
	int state;
	uint64_t index;         /* input record number, for messages */
	double t_first;         /* when first sent; < 0 when never */
	uint64_t up;            /* request bytes sent, over all attempts */
};

/* Bytes p[off..len) of a growing buffer. */
struct bytes {
	unsigned char *p;
	size_t cap, off, len;
};

struct engine {
	const struct mea_offload_conf *c;
	struct mea_offload_stats *st;
	struct slot *ring;
	size_t cap, head, n;    /* n records from ring[head], wrapping */
	size_t nwait, nsent;

	/* The worker: one socket (rfd == wfd) or a child's two pipes. */
	char host[256], port[64];
	char where[128];        /* the worker in messages */
	int rfd, wfd, sock;
	pid_t pid;
	int up, dead, fails;
	double retry_at;        /* reconnect not before this */
	double head_since;      /* the oldest request waits since then */
	struct bytes out, in;
	unsigned char *enc;     /* one encoded request */
	size_t enccap;
	struct mea_record req;  /* borrows from a ring record: never cleared */
	struct mea_record ans;
};

#define SLOT(g, i) (&(g)->ring[((g)->head + (i)) % (g)->cap])
#define READ_CHUNK 65536
/* Seconds a dropped child gets to end by itself (it sees end of input)
 * before its process group is signalled: sh -c does not pass signals on,
 * so a signalled sh would orphan the worker it started. */
#define DROP_GRACE 0.25

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
nap(double s)
{
	struct timespec ts = { 0, (long)(s * 1e9) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A system message as the middle of a sentence: "connection refused". */
static const char *
lower(char *buf, size_t n, const char *msg)
{
	snprintf(buf, n, "%s", msg);
	if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
		buf[0] = (char)(buf[0] - 'A' + 'a');
	return buf;
}

static const char *
errtext(int err, char *buf, size_t n)
{
	return lower(buf, n, strerror(err));
}

/* Record why the worker failed: "WHERE: what". */
static void
note(struct engine *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
note(struct engine *g, const char *fmt, ...)
{
	char what[sizeof g->st->failure - sizeof g->where - 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(g->st->failure, sizeof g->st->failure, "%s: %s", g->where, what);
}

/* ------------------------------------------------------- the contract */

int
mea_offload_wanted(const struct mea_record *r)
{
	const char *route = mea_field_str(r, MEA_F_ROUTE);
	int64_t sweep;

	return (route && strcmp(route, "cloud") == 0) ||
		(mea_field_int(r, "sweep", &sweep) && sweep == 1);
}

static int
is_cloud_route(const struct mea_record *r)
{
	const char *route = mea_field_str(r, MEA_F_ROUTE);
	return route && strcmp(route, "cloud") == 0;
}

static int
same_field(const struct mea_field *a, const struct mea_field *b)
{
	if (!a || !b || a->type != b->type)
		return 0;
	if (a->type == MEA_FIELD_STR)
		return strcmp(a->s, b->s) == 0;
	if (a->type == MEA_FIELD_INT)
		return a->i == b->i;
	return memcmp(&a->f, &b->f, sizeof a->f) == 0;
}

int
mea_offload_merge(struct mea_record *r, const struct mea_record *ans, struct mea_err *e)
{
	static const char *const keys[] = { MEA_F_ID, MEA_F_SEQ };
	const struct mea_tensor *t = mea_tensor_get(ans, MEA_T_CLOUD_LOGITS);
	const struct mea_field *macs = mea_field_get(ans, "macs_cloud");
	const float *x;
	double sum = 0;
	size_t best = 0;
	int rc;

	for (int i = 0; i < 2; i++) {
		const struct mea_field *mine = mea_field_get(r, keys[i]);
		if (mine && !same_field(mine, mea_field_get(ans, keys[i])))
			return mea_errf(e, MEA_E_FORMAT, "the answer has another '%s'", keys[i]);
	}
	if (!t || t->dtype != MEA_F32 || t->ndim != 1 || t->nelem == 0)
		return mea_errf(e, MEA_E_FORMAT, "no f32 [K] tensor '%s' in the answer",
				MEA_T_CLOUD_LOGITS);
	x = t->data;
	for (size_t k = 0; k < t->nelem; k++) {
		if (!isfinite(x[k]))
			return mea_errf(e, MEA_E_FORMAT, "%s[%zu] is not finite", MEA_T_CLOUD_LOGITS, k);
		if (x[k] > x[best])
			best = k;
	}
	if (macs && (macs->type != MEA_FIELD_INT || macs->i < 0))
		return mea_errf(e, MEA_E_FORMAT, "macs_cloud in the answer is not an int >= 0");
	/* softmax of the winner, shifted by the maximum so nothing overflows */
	for (size_t k = 0; k < t->nelem; k++)
		sum += exp((double)x[k] - x[best]);
	if ((rc = mea_field_set_int(r, "cloud_pred", (int64_t)best)) ||
			(rc = mea_field_set_float(r, "cloud_conf", 1.0 / sum)) ||
			(rc = mea_field_add_int(r, "macs_cloud", macs ? macs->i : 0)))
		return mea_errf(e, rc, "%s", mea_strerror(rc));
	if (is_cloud_route(r) &&
			((rc = mea_field_set_int(r, "pred", (int64_t)best)) ||
			 (rc = mea_field_set_float(r, "conf", 1.0 / sum)) ||
			 (rc = mea_field_set_str(r, "exit", "cloud"))))
		return mea_errf(e, rc, "%s", mea_strerror(rc));
	return MEA_OK;
}

int
mea_offload_fallback(struct mea_record *r)
{
	const char *src = mea_field_get(r, "ext_pred") ? "ext" : "main";
	char kp[16], kc[16];
	int64_t pred;
	double conf;
	int rc;

	if (!is_cloud_route(r))
		return MEA_OK;
	snprintf(kp, sizeof kp, "%s_pred", src);
	snprintf(kc, sizeof kc, "%s_conf", src);
	if (mea_field_int(r, kp, &pred) && (rc = mea_field_set_int(r, "pred", pred)))
		return rc;
	if (mea_field_float(r, kc, &conf) && (rc = mea_field_set_float(r, "conf", conf)))
		return rc;
	return mea_field_set_str(r, "exit", "fallback");
}

/* ------------------------------------------------------------ the worker */

static int
parse_hostport(struct engine *g, const char *s, struct mea_err *e)
{
	const char *host = s, *port, *end;

	if (*s == '[') {
		host = s + 1;
		if (!(end = strchr(host, ']')) || end[1] != ':')
			return mea_errf(e, MEA_E_ARG, "'%s' is not [ADDRESS]:PORT", s);
		port = end + 2;
	} else {
		if (!(end = strrchr(s, ':')) || memchr(s, ':', (size_t)(end - s)))
			return mea_errf(e, MEA_E_ARG, "'%s' is not HOST:PORT", s);
		port = end + 1;
	}
	if (end == host || !*port || (size_t)(end - host) >= sizeof g->host ||
			strlen(port) >= sizeof g->port)
		return mea_errf(e, MEA_E_ARG, "'%s' is not HOST:PORT", s);
	memcpy(g->host, host, (size_t)(end - host));
	g->host[end - host] = '\0';
	strcpy(g->port, port);
	return MEA_OK;
}

static int
tcp_open(struct engine *g)
{
	struct addrinfo hints, *res, *ai;
	char buf[128];
	int fd = -1, err = 0, rc, one = 1;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(g->host, g->port, &hints, &res)) != 0) {
		note(g, "%s", lower(buf, sizeof buf,
				rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc)));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno;
		if (err == EINPROGRESS) {
			struct pollfd p = { fd, POLLOUT, 0 };
			double end = now() + g->c->timeout, left;
			socklen_t len = sizeof err;
			while ((left = end - now()) > 0 &&
					(rc = poll(&p, 1, (int)ceil(left * 1000))) < 0 && errno == EINTR)
				;
			if (left <= 0 || rc == 0)
				err = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
				err = errno;
			if (err == 0)
				break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		if (err == ETIMEDOUT)
			note(g, "no connection within %g s", g->c->timeout);
		else
			note(g, "%s", errtext(err, buf, sizeof buf));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	g->rfd = g->wfd = fd;
	g->sock = 1;
	return 0;
}

/* Start sh -c COMMAND in its own process group, so that dropping it can
 * signal whatever it started (dash does not exec the last command). */
static int
child_open(struct engine *g)
{
	int to[2], from[2];
	char buf[128];
	pid_t pid;

	if (pipe(to) != 0) {
		note(g, "pipe: %s", errtext(errno, buf, sizeof buf));
		return -1;
	}
	if (pipe(from) != 0) {
		note(g, "pipe: %s", errtext(errno, buf, sizeof buf));
		close(to[0]);
		close(to[1]);
		return -1;
	}
	/* No other child may inherit these (one thread: no race here). */
	for (int i = 0; i < 2; i++) {
		fcntl(to[i], F_SETFD, FD_CLOEXEC);
		fcntl(from[i], F_SETFD, FD_CLOEXEC);
	}
	if ((pid = fork()) < 0) {
		note(g, "fork: %s", errtext(errno, buf, sizeof buf));
		close(to[0]); close(to[1]); close(from[0]); close(from[1]);
		return -1;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls between fork and exec. */
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_DFL;
		sigaction(SIGPIPE, &sa, NULL);
		setpgid(0, 0);
		if (dup2(to[0], 0) < 0 || dup2(from[1], 1) < 0)
			_exit(127);
		execl("/bin/sh", "sh", "-c", g->c->command, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	close(to[0]);
	close(from[1]);
	fcntl(to[1], F_SETFL, fcntl(to[1], F_GETFL) | O_NONBLOCK);
	fcntl(from[0], F_SETFL, fcntl(from[0], F_GETFL) | O_NONBLOCK);
	g->wfd = to[1];
	g->rfd = from[0];
	g->sock = 0;
	g->pid = pid;
	return 0;
}

static int
exited(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof si);
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/*
 * Reap the child, giving it `grace` seconds to end by itself.  Its process
 * group gets SIGTERM either way (the child's leftovers, or the child when
 * it outstayed the grace) while the unreaped child still holds the group
 * id, then SIGKILL a second later.  Returns the wait status.
 */
static int
child_reap(pid_t pid, double grace)
{
	double end = now() + grace;
	int status = 0;

	while (!exited(pid) && now() < end)
		nap(0.002);
	kill(-pid, SIGTERM);
	for (end = now() + 1; !exited(pid) && now() < end; )
		nap(0.002);
	if (!exited(pid))
		kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

/* Close the connection; for a child, reap it.  Returns its wait status. */
static int
conn_drop(struct engine *g, double grace)
{
	int status = 0;

	if (!g->up)
		return 0;
	if (g->sock) {
		shutdown(g->wfd, SHUT_WR);
		close(g->wfd);
	} else {
		close(g->wfd);
		close(g->rfd);
		status = child_reap(g->pid, grace);
		g->pid = 0;
	}
	g->up = 0;
	g->rfd = g->wfd = -1;
	g->out.off = g->out.len = 0;
	g->in.off = g->in.len = 0;
	return status;
}

static int
conn_open(struct engine *g)
{
	int rc = g->c->connect ? tcp_open(g) : child_open(g);

	if (rc == 0) {
		g->up = 1;
		g->st->connects++;
	}
	return rc;
}

/* --------------------------------------------------------- the records */

/* Account for a record the cloud is finished with, one way or the other. */
static int
settle(struct engine *g, struct slot *s, uint64_t down)
{
	int rc;

	if ((rc = mea_field_add_int(&s->rec, "bytes_up", (int64_t)s->up)) ||
			(rc = mea_field_add_int(&s->rec, "bytes_down", (int64_t)down)) ||
			(rc = mea_field_set_float(&s->rec, "t_offload",
				s->t_first < 0 ? 0.0 : now() - s->t_first)))
		return rc;
	if (s->state == SLOT_SENT)
		g->nsent--;
	else
		g->nwait--;
	s->state = SLOT_DONE;
	return MEA_OK;
}

static int
fall_back(struct engine *g, struct slot *s)
{
	int rc = mea_offload_fallback(&s->rec);

	g->st->fallback++;
	return rc ? rc : settle(g, s, 0);
}

/* The worker failed (note() said why): drop it, put the requests in
 * flight back in line, and wait or give up. */
static int
cloud_failed(struct engine *g)
{
	double wait = g->c->backoff;
	int rc;

	conn_drop(g, DROP_GRACE);
	g->st->failures++;
	for (size_t i = 0; i < g->n; i++)
		if (SLOT(g, i)->state == SLOT_SENT)
			SLOT(g, i)->state = SLOT_WAIT;
	g->nwait += g->nsent;
	g->nsent = 0;
	if (++g->fails > g->c->retries) {
		g->dead = 1;
		g->st->gave_up = 1;
		for (size_t i = 0; i < g->n; i++)
			if (SLOT(g, i)->state == SLOT_WAIT && (rc = fall_back(g, SLOT(g, i))))
				return rc;
		return MEA_OK;
	}
	for (int i = 1; i < g->fails && wait < g->c->backoff_max; i++)
		wait *= 2;
	g->retry_at = now() + (wait < g->c->backoff_max ? wait : g->c->backoff_max);
	return MEA_OK;
}

static int
grow(struct bytes *b, size_t need)
{
	unsigned char *p;
	size_t cap = b->cap ? b->cap : READ_CHUNK;

	if (b->off > 0 && b->cap - b->len < need) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->cap - b->len >= need)
		return MEA_OK;
	while (cap - b->len < need)
		if (mea_mul_size(cap, 2, &cap))
			return MEA_E_NOMEM;
	if (!(p = realloc(b->p, cap)))
		return MEA_E_NOMEM;
	b->p = p;
	b->cap = cap;
	return MEA_OK;
}

/* The worker's end is closed (err 0) or failed with err: say how, from
 * its exit status for a child, and drop it. */
static int
worker_gone(struct engine *g, int err)
{
	size_t missing = g->nsent;
	char buf[128];
	int st;

	st = conn_drop(g, DROP_GRACE);
	if (g->c->connect && err)
		note(g, "%s (%zu answers missing)", errtext(err, buf, sizeof buf), missing);
	else if (g->c->connect)
		note(g, "connection closed by the worker (%zu answers missing)", missing);
	else if (WIFSIGNALED(st))
		note(g, "killed by signal %d (%zu answers missing)", WTERMSIG(st), missing);
	else
		note(g, "exited with status %d (%zu answers missing)", WEXITSTATUS(st), missing);
	/* sh could not run the command: trying again will not help */
	if (!g->c->connect && WIFEXITED(st) &&
			(WEXITSTATUS(st) == 126 || WEXITSTATUS(st) == 127))
		g->fails = g->c->retries;
	return cloud_failed(g);
}

/* Write what waits for the worker, until it would block. */
static int
push(struct engine *g)
{
	while (g->up && g->out.off < g->out.len) {
		size_t n = g->out.len - g->out.off;
		ssize_t k = g->sock ? send(g->wfd, g->out.p + g->out.off, n, MSG_NOSIGNAL)
			: write(g->wfd, g->out.p + g->out.off, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (k < 0)
			return worker_gone(g, errno);
		g->out.off += (size_t)k;
	}
	if (g->out.off == g->out.len)
		g->out.off = g->out.len = 0;
	return MEA_OK;
}

/* Queue requests for waiting records while there is room in flight. */
static int
send_requests(struct engine *g, struct mea_err *e)
{
	for (size_t i = 0; i < g->n && g->nwait > 0 && g->nsent < (size_t)g->c->inflight; i++) {
		struct slot *s = SLOT(g, i);
		const struct mea_field *f;
		const struct mea_tensor *t;
		size_t len;
		int rc;

		if (s->state != SLOT_WAIT)
			continue;
		/* The request borrows the record's fields and tensor data; it is
		 * emptied, never cleared. */
		g->req.nfields = g->req.ntensors = 0;
		if ((f = mea_field_get(&s->rec, MEA_F_ID)))
			g->req.field[g->req.nfields++] = *f;
		if ((f = mea_field_get(&s->rec, MEA_F_SEQ)))
			g->req.field[g->req.nfields++] = *f;
		g->req.tensor[g->req.ntensors++] = *mea_tensor_get(&s->rec, MEA_T_IMAGE);
		if (g->c->send_feat && (t = mea_tensor_get(&s->rec, MEA_T_FEAT)))
			g->req.tensor[g->req.ntensors++] = *t;
		rc = mea_record_encode(&g->req, &g->enc, &g->enccap, &len, e);
		g->req.nfields = g->req.ntensors = 0;
		if (rc)
			return mea_err_prefix(e, "record %llu: request", (unsigned long long)s->index);
		if (grow(&g->out, len))
			return mea_errf(e, MEA_E_NOMEM, "out of memory for requests");
		memcpy(g->out.p + g->out.len, g->enc, len);
		g->out.len += len;
		if (g->nsent++ == 0)
			g->head_since = now();
		g->nwait--;
		s->state = SLOT_SENT;
		s->up += len;
		g->st->bytes_up += len;
		if (s->t_first < 0)
			s->t_first = now();
		else
			g->st->resent++;
	}
	return push(g);
}

static struct slot *
oldest_sent(struct engine *g)
{
	for (size_t i = 0; i < g->n; i++)
		if (SLOT(g, i)->state == SLOT_SENT)
			return SLOT(g, i);
	return NULL;
}

/* Take every whole answer collected so far. */
static int
take_answers(struct engine *g, struct mea_err *e)
{
	while (g->up && g->in.len - g->in.off >= MEA_RECORD_HEADER) {
		const unsigned char *p = g->in.p + g->in.off;
		struct slot *s = oldest_sent(g);
		uint32_t body = get32(p + 8);
		struct mea_err why;
		int rc;

		if (!s) {
			note(g, "%zu bytes nobody asked for", g->in.len - g->in.off);
			return cloud_failed(g);
		}
		/* Refuse garbage at its first bytes instead of waiting for a
		 * length read from it; mea_record_decode checks the rest. */
		if (memcmp(p, MEA_RECORD_MAGIC, 4) != 0 || p[4] != MEA_STREAM_VERSION || p[5] ||
				p[6] || p[7] || body > MEA_MAX_RECORD_BODY) {
			note(g, "answer to record %llu: not a mea record", (unsigned long long)s->index);
			return cloud_failed(g);
		}
		if (g->in.len - g->in.off - MEA_RECORD_HEADER < body)
			break;
		rc = mea_record_decode(&g->ans, p, MEA_RECORD_HEADER + (size_t)body, &why);
		if (rc == MEA_OK)
			rc = mea_offload_merge(&s->rec, &g->ans, &why);
		mea_record_clear(&g->ans);
		if (rc == MEA_E_FORMAT || rc == MEA_E_TRUNC || rc == MEA_E_LIMIT) {
			note(g, "answer to record %llu: %s", (unsigned long long)s->index, why.msg);
			return cloud_failed(g);
		}
		if (rc)
			return mea_errf(e, rc, "record %llu: %s", (unsigned long long)s->index, why.msg);
		g->in.off += MEA_RECORD_HEADER + (size_t)body;
		g->st->bytes_down += MEA_RECORD_HEADER + (size_t)body;
		g->st->answered++;
		g->fails = 0;
		g->head_since = now();
		if ((rc = settle(g, s, MEA_RECORD_HEADER + (uint64_t)body)))
			return mea_errf(e, rc, "record %llu: %s", (unsigned long long)s->index,
					mea_strerror(rc));
	}
	return MEA_OK;
}

/* Read what the worker sent, until it would block. */
static int
pull(struct engine *g, struct mea_err *e)
{
	int rc;

	while (g->up) {
		ssize_t k;
		if (grow(&g->in, READ_CHUNK))
			return mea_errf(e, MEA_E_NOMEM, "out of memory for answers");
		k = read(g->rfd, g->in.p + g->in.len, g->in.cap - g->in.len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (k < 0)
			return worker_gone(g, errno);
		if (k == 0 && g->nsent == 0 && g->in.off == g->in.len) {
			conn_drop(g, DROP_GRACE);       /* an idle worker went away */
			return MEA_OK;
		}
		if (k == 0)
			return worker_gone(g, 0);
		g->in.len += (size_t)k;
		if ((rc = take_answers(g, e)))
			return rc;
	}
	return MEA_OK;
}

/* ----------------------------------------------------------- the stream */

static const char *
rec_name(const struct mea_record *r)
{
	const char *id = mea_field_str(r, MEA_F_ID);
	return id ? id : "";
}

/* Fields the engine may add to a cloud record. */
static const char *const added[] = {
	"cloud_pred", "cloud_conf", "macs_cloud", "bytes_up", "bytes_down", "t_offload",
	"pred", "conf", "exit",
};

/* Read one record into the ring.  MEA_EOF at the end of the input. */
static int
take_input(struct engine *g, struct mea_reader *in, struct mea_err *e)
{
	struct slot *s = SLOT(g, g->n);
	int rc, need = 0;

	if ((rc = mea_read(in, &s->rec, e)))
		return rc;
	s->index = in->nrec - 1;
	s->state = SLOT_DONE;
	s->t_first = -1;
	s->up = 0;
	if (!mea_offload_wanted(&s->rec)) {
		g->n++;
		return MEA_OK;
	}
	if (!mea_tensor_get(&s->rec, MEA_T_IMAGE))
		rc = mea_errf(e, MEA_E_FORMAT, "%s: record %llu (%s): no tensor 'image' to send",
				in->name, (unsigned long long)s->index, rec_name(&s->rec));
	for (size_t i = 0; i < sizeof added / sizeof added[0]; i++)
		need += !mea_field_get(&s->rec, added[i]);
	if (!rc && s->rec.nfields + need > MEA_MAX_FIELDS)
		rc = mea_errf(e, MEA_E_LIMIT, "%s: record %llu (%s): no room for %d more fields",
				in->name, (unsigned long long)s->index, rec_name(&s->rec), need);
	if (rc) {
		mea_record_clear(&s->rec);
		return rc;
	}
	g->n++;
	g->nwait++;
	g->st->routed++;
	s->state = SLOT_WAIT;
	if (g->dead && (rc = fall_back(g, s)))
		return mea_errf(e, rc, "%s: record %llu: %s", in->name,
				(unsigned long long)s->index, mea_strerror(rc));
	return MEA_OK;
}

/* Write out the finished records at the front. */
static int
flush_done(struct engine *g, struct mea_writer *out, struct mea_err *e)
{
	int rc;

	while (g->n > 0 && SLOT(g, 0)->state == SLOT_DONE) {
		struct slot *s = SLOT(g, 0);
		if ((rc = mea_write(out, &s->rec, e)))
			return rc;
		mea_record_clear(&s->rec);
		g->head = (g->head + 1) % g->cap;
		g->n--;
		g->st->records++;
	}
	return MEA_OK;
}

static int
ms_until(double t)
{
	double left = t - now();

	if (left <= 0)
		return 0;
	return left > 86400 ? 86400000 : (int)ceil(left * 1000);
}

static int
loop(struct engine *g, struct mea_reader *in, struct mea_writer *out, struct mea_err *e)
{
	struct mea_err in_err;
	int in_open = 1, in_rc = MEA_OK, rc;

	for (;;) {
		struct pollfd p[3];
		int np = 0, rp = -1, wp = -1, ms = -1;

		/* Everything that needs no waiting, first. */
		if ((rc = flush_done(g, out, e)))
			return rc;
		while (in_open && g->n < g->cap && mea_reader_pending(in)) {
			if ((rc = take_input(g, in, &in_err)) != MEA_OK) {
				in_open = 0;
				in_rc = rc == MEA_EOF ? MEA_OK : rc;
			}
			if ((rc = flush_done(g, out, e)))
				return rc;
		}
		if (g->nwait > 0 && !g->up && !g->dead && now() >= g->retry_at &&
				conn_open(g) != 0 && (rc = cloud_failed(g)))
			return rc;
		if (g->up && (rc = send_requests(g, e)))
			return rc;
		if ((rc = flush_done(g, out, e)))
			return rc;
		if (!in_open && g->n == 0)
			break;

		/* Then wait for the input, the worker or the next deadline. */
		if (in_open && g->n < g->cap)
			p[np++] = (struct pollfd){ in->fd, POLLIN, 0 };
		if (g->up) {
			p[rp = np++] = (struct pollfd){ g->rfd, POLLIN, 0 };
			if (g->out.len > g->out.off)
				p[wp = np++] = (struct pollfd){ g->wfd, POLLOUT, 0 };
		}
		if (g->up && g->nsent > 0)
			ms = ms_until(g->head_since + g->c->timeout);
		else if (!g->up && g->nwait > 0 && !g->dead)
			ms = ms_until(g->retry_at);
		if (poll(p, (nfds_t)np, ms) < 0 && errno != EINTR)
			return mea_errf(e, MEA_E_IO, "poll: %s", strerror(errno));
		if (rp >= 0 && p[rp].revents && (rc = pull(g, e)))
			return rc;
		if (wp >= 0 && p[wp].revents && (rc = push(g)))
			return rc;
		if (g->up && g->nsent > 0 && now() >= g->head_since + g->c->timeout) {
			note(g, "no answer within %g s (record %llu)", g->c->timeout,
					(unsigned long long)oldest_sent(g)->index);
			if ((rc = cloud_failed(g)))
				return rc;
		}
	}
	if (in_rc != MEA_OK)
		*e = in_err;
	return in_rc;
}

/* ------------------------------------------------------------- the run */

void
mea_offload_conf_init(struct mea_offload_conf *c)
{
	memset(c, 0, sizeof *c);
	c->inflight = 8;
	c->timeout = 10;
	c->retries = 5;
	c->backoff = 0.1;
	c->backoff_max = 5;
}

static int
check_conf(struct engine *g, const struct mea_offload_conf *c, struct mea_err *e)
{
	if (!c->connect == !c->command)
		return mea_errf(e, MEA_E_ARG, "give either a HOST:PORT or a command for the cloud");
	if (c->inflight < 1 || c->inflight > MEA_OFFLOAD_MAX_INFLIGHT)
		return mea_errf(e, MEA_E_ARG, "inflight %d is not from 1 to %d",
				c->inflight, MEA_OFFLOAD_MAX_INFLIGHT);
	if (!(c->timeout > 0 && c->timeout <= 86400))
		return mea_errf(e, MEA_E_ARG, "timeout %g is not from 0 to 86400 s", c->timeout);
	if (c->retries < 0 || !(c->backoff >= 0 && c->backoff <= 3600) ||
			!(c->backoff_max >= 0 && c->backoff_max <= 3600))
		return mea_errf(e, MEA_E_ARG, "retries or backoff out of range");
	if (c->connect) {
		snprintf(g->where, sizeof g->where, "%s", c->connect);
		return parse_hostport(g, c->connect, e);
	}
	if (strlen(c->command) < sizeof g->where)
		snprintf(g->where, sizeof g->where, "%s", c->command);
	else
		snprintf(g->where, sizeof g->where, "%.*s...", (int)sizeof g->where - 4, c->command);
	return MEA_OK;
}

int
mea_offload_run(const struct mea_offload_conf *c, struct mea_reader *in,
		struct mea_writer *out, struct mea_offload_stats *st, struct mea_err *e)
{
	struct engine *g;
	int rc;

	memset(st, 0, sizeof *st);
	if (!(g = calloc(1, sizeof *g)))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	g->c = c;
	g->st = st;
	g->rfd = g->wfd = -1;
	if ((rc = check_conf(g, c, e)))
		goto out;
	g->cap = c->max_queue ? c->max_queue : 8 * (size_t)c->inflight + 64;
	if (g->cap < (size_t)c->inflight)
		g->cap = (size_t)c->inflight;
	if (!(g->ring = calloc(g->cap, sizeof *g->ring))) {
		rc = mea_errf(e, MEA_E_NOMEM, "out of memory for %zu records", g->cap);
		goto out;
	}
	e->code = MEA_OK;
	rc = loop(g, in, out, e);
	/* Every answer is in (or given up): the worker may go. */
	conn_drop(g, c->timeout < 2 ? c->timeout : 2);
	/* A field that could not be set on the way (out of memory) left no
	 * message of its own. */
	if (rc != MEA_OK && e->code != rc)
		mea_errf(e, rc, "%s", mea_strerror(rc));
out:
	if (g->ring)
		for (size_t i = 0; i < g->cap; i++)
			mea_record_clear(&g->ring[i].rec);
	mea_record_clear(&g->ans);
	free(g->ring);
	free(g->out.p);
	free(g->in.p);
	free(g->enc);
	free(g);
	return rc;
}
