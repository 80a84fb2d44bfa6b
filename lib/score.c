/* score.c: accuracy, costs, energy and the threshold sweep of a finished
 * stream (see mea-score(1)). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mea.h"
#include "score.h"

/* ------------------------------------------------------------- energy */

static const char *const energy_key[3] = { "edge_mac_pj", "link_bit_pj", "cloud_mac_pj" };

int
mea_energy_load(struct mea_energy *en, const char *path, struct mea_err *e)
{
	double v[3] = { 0, 0, 0 };
	int seen[3] = { 0, 0, 0 }, lineno = 0, rc = MEA_OK;
	char line[1024];
	FILE *f;

	if (!(f = fopen(path, "r")))
		return mea_errf(e, MEA_E_IO, "%s: %s", path, strerror(errno));
	while (!rc && fgets(line, sizeof line, f)) {
		char *p, *end;
		size_t n;
		double x;
		int k;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			rc = mea_errf(e, MEA_E_FORMAT, "%s: line %d: too long", path, lineno);
			break;
		}
		line[strcspn(line, "#")] = '\0';
		p = line + strspn(line, " \t\r\n");
		if (!*p)
			continue;
		n = strcspn(p, " \t\r\n");
		for (k = 0; k < 3; k++)
			if (strlen(energy_key[k]) == n && memcmp(p, energy_key[k], n) == 0)
				break;
		if (k == 3) {
			rc = mea_errf(e, MEA_E_FORMAT,
					"%s: line %d: unknown key '%.*s' (edge_mac_pj, link_bit_pj, cloud_mac_pj)",
					path, lineno, (int)(n > 40 ? 40 : n), p);
			break;
		}
		if (seen[k]++) {
			rc = mea_errf(e, MEA_E_FORMAT, "%s: line %d: %s given twice",
					path, lineno, energy_key[k]);
			break;
		}
		p += n;
		p += strspn(p, " \t");
		errno = 0;
		x = strtod(p, &end);
		if (end == p || errno || !isfinite(x) || x < 0 ||
		    end[strspn(end, " \t\r\n")] != '\0')
			rc = mea_errf(e, MEA_E_FORMAT, "%s: line %d: %s: '%.*s' is not a number >= 0",
					path, lineno, energy_key[k], (int)strcspn(p, "\r\n"), p);
		v[k] = x;
	}
	if (!rc && ferror(f))
		rc = mea_errf(e, MEA_E_IO, "%s: %s", path, strerror(errno));
	fclose(f);
	for (int k = 0; !rc && k < 3; k++)
		if (!seen[k])
			rc = mea_errf(e, MEA_E_FORMAT, "%s: no %s", path, energy_key[k]);
	if (rc)
		return rc;
	en->edge_mac_pj = v[0];
	en->link_bit_pj = v[1];
	en->cloud_mac_pj = v[2];
	return MEA_OK;
}

double
mea_energy_uj(const struct mea_energy *en, double macs_edge, double bytes, double macs_cloud)
{
	return (macs_edge * en->edge_mac_pj + 8 * bytes * en->link_bit_pj +
			macs_cloud * en->cloud_mac_pj) * 1e-6;
}

/* -------------------------------------------------------------- score */

void
mea_score_init(struct mea_score *s)
{
	memset(s, 0, sizeof *s);
}

void
mea_score_free(struct mea_score *s)
{
	free(s->answers);
	free(s->answers_lab);
	free(s->hits);
	free(s->actual);
	free(s->hard);
	free(s->pt);
	memset(s, 0, sizeof *s);
}

static int
grow_array(void **a, size_t elem, int old, int cap)
{
	unsigned char *p = realloc(*a, (size_t)cap * elem);
	if (!p)
		return MEA_E_NOMEM;
	memset(p + (size_t)old * elem, 0, (size_t)(cap - old) * elem);
	*a = p;
	return MEA_OK;
}

/* Make room for class ids below need (need <= MEA_SCORE_MAX_CLASSES). */
static int
grow(struct mea_score *s, int need, struct mea_err *e)
{
	int cap = s->cap ? s->cap : 16;

	if (need <= s->cap)
		return MEA_OK;
	while (cap < need)
		cap *= 2;
	if (grow_array((void **)&s->answers, sizeof *s->answers, s->cap, cap) ||
	    grow_array((void **)&s->answers_lab, sizeof *s->answers_lab, s->cap, cap) ||
	    grow_array((void **)&s->hits, sizeof *s->hits, s->cap, cap) ||
	    grow_array((void **)&s->actual, sizeof *s->actual, s->cap, cap) ||
	    grow_array((void **)&s->hard, sizeof *s->hard, s->cap, cap))
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	s->cap = cap;
	return MEA_OK;
}

int
mea_score_set_classes(struct mea_score *s, int K, struct mea_err *e)
{
	if (K < 1 || K > MEA_SCORE_MAX_CLASSES)
		return mea_errf(e, MEA_E_ARG, "%d classes (1 to %d)", K, MEA_SCORE_MAX_CLASSES);
	if (grow(s, K, e))
		return e->code;
	s->nclasses = s->K = K;
	return MEA_OK;
}

int
mea_score_reserve(struct mea_score *s, int K, struct mea_err *e)
{
	if (K > MEA_SCORE_MAX_CLASSES)
		K = MEA_SCORE_MAX_CLASSES;
	if (s->nclasses && K > s->nclasses)
		K = s->nclasses;
	if (K <= s->K)
		return MEA_OK;
	if (grow(s, K, e))
		return e->code;
	s->K = K;
	return MEA_OK;
}

int
mea_score_set_hard(struct mea_score *s, const int32_t *hard, int n, struct mea_err *e)
{
	int limit = s->nclasses ? s->nclasses : MEA_SCORE_MAX_CLASSES;

	for (int i = 0; i < n; i++)
		if (hard[i] < 0 || hard[i] >= limit)
			return mea_errf(e, MEA_E_ARG, "hard class %ld is not a class id from 0 to %d",
					(long)hard[i], limit - 1);
	if (s->cap)
		memset(s->hard, 0, (size_t)s->cap);
	for (int i = 0; i < n; i++) {
		if (grow(s, hard[i] + 1, e))
			return e->code;
		s->hard[hard[i]] = 1;
		if (hard[i] >= s->K)
			s->K = hard[i] + 1;
	}
	s->hard_given = 1;
	return MEA_OK;
}

/* Field readers: 1 with the value when present, 0 when absent, -1 with e
 * set when present but unusable. */
static int
get_int(const struct mea_record *r, const char *key, int64_t *v, struct mea_err *e)
{
	const struct mea_field *f = mea_field_get(r, key);

	if (!f)
		return 0;
	if (f->type != MEA_FIELD_INT) {
		mea_errf(e, MEA_E_FORMAT, "field '%s' is not an integer", key);
		return -1;
	}
	*v = f->i;
	return 1;
}

static int
get_class(const struct mea_score *s, const struct mea_record *r, const char *key,
		int64_t *v, struct mea_err *e)
{
	int64_t limit = s->nclasses ? s->nclasses : MEA_SCORE_MAX_CLASSES;
	int k = get_int(r, key, v, e);

	if (k == 1 && (*v < 0 || *v >= limit)) {
		mea_errf(e, MEA_E_FORMAT, "%s %lld is not a class id from 0 to %lld",
				key, (long long)*v, (long long)(limit - 1));
		return -1;
	}
	return k;
}

/* A cost or a time: an integer or a float, finite and >= 0. */
static int
get_num(const struct mea_record *r, const char *key, double *v, struct mea_err *e)
{
	const struct mea_field *f = mea_field_get(r, key);

	if (!f)
		return 0;
	if (f->type == MEA_FIELD_STR) {
		mea_errf(e, MEA_E_FORMAT, "field '%s' is not a number", key);
		return -1;
	}
	*v = f->type == MEA_FIELD_INT ? (double)f->i : f->f;
	if (!isfinite(*v) || *v < 0) {
		mea_errf(e, MEA_E_FORMAT, "field '%s' is %g, not a finite number >= 0", key, *v);
		return -1;
	}
	return 1;
}

static int
exit_index(const char *s)
{
	if (!s)
		return MEA_EXIT_NONE;
	for (int x = 0; x < MEA_EXIT_OTHER; x++)
		if (strcmp(s, mea_exit_name(x)) == 0)
			return x;
	return MEA_EXIT_OTHER;
}

const char *
mea_exit_name(int x)
{
	static const char *const name[MEA_NEXITS] = {
		"main", "ext", "cloud", "fallback", "other", "none"
	};
	return x >= 0 && x < MEA_NEXITS ? name[x] : NULL;
}

static int
check_times(const struct mea_record *r, struct mea_err *e)
{
	double v;

	for (int i = 0; i < r->nfields; i++)
		if (strncmp(r->field[i].key, "t_", 2) == 0 && get_num(r, r->field[i].key, &v, e) < 0)
			return e->code;
	return MEA_OK;
}

/* After check_times. */
static void
add_times(struct mea_score *s, const struct mea_record *r)
{
	for (int i = 0; i < r->nfields; i++) {
		const struct mea_field *f = &r->field[i];
		double v;
		int t;

		if (strncmp(f->key, "t_", 2) != 0)
			continue;
		v = f->type == MEA_FIELD_INT ? (double)f->i : f->f;
		for (t = 0; t < s->ntimes; t++)
			if (strcmp(s->time[t].key, f->key) == 0)
				break;
		if (t == s->ntimes) {
			if (t == MEA_SCORE_MAX_TIMES)
				continue;
			snprintf(s->time[t].key, sizeof s->time[t].key, "%s", f->key);
			s->ntimes++;
		}
		s->time[t].sum += v;
		s->time[t].n++;
	}
}

/* What the sweep needs of a record made by mea-gate --all. */
static int
make_point(const struct mea_score *s, const struct mea_record *r, struct mea_score_point *p,
		struct mea_err *e)
{
	const struct mea_field *h = mea_field_get(r, "entropy");
	int64_t v = 0;
	double x;
	int k;

	if (get_int(r, "sweep", &v, e) < 1 || v != 1)
		return mea_errf(e, MEA_E_FORMAT, "not marked sweep=1: make the records with mea-gate --all");
	if (!h || h->type != MEA_FIELD_FLOAT || !isfinite(h->f) || h->f < 0)
		return mea_errf(e, MEA_E_FORMAT, "field 'entropy' is missing or not a number >= 0");
	p->entropy = h->f;
	if ((k = get_class(s, r, "main_pred", &v, e)) < 1)
		return k ? e->code : mea_errf(e, MEA_E_FORMAT, "no field 'main_pred'");
	p->main_pred = (int32_t)v;
	if ((k = get_int(r, "hard", &v, e)) < 1)
		return k ? e->code : mea_errf(e, MEA_E_FORMAT, "no field 'hard'");
	p->hard = v != 0;
	p->label = p->ext_pred = p->cloud_pred = -1;
	if ((k = get_class(s, r, MEA_F_LABEL, &v, e)) < 0)
		return e->code;
	if (k)
		p->label = (int32_t)v;
	if ((k = get_class(s, r, "ext_pred", &v, e)) < 0)
		return e->code;
	if (k)
		p->ext_pred = (int32_t)v;
	else if (p->hard)
		return mea_errf(e, MEA_E_FORMAT,
				"a hard record without ext_pred: run mea-ext after mea-gate --all");
	if ((k = get_class(s, r, "cloud_pred", &v, e)) < 0)
		return e->code;
	if (k)
		p->cloud_pred = (int32_t)v;
	p->macs_edge = p->macs_cloud = p->bytes = 0;
	if (get_num(r, "macs_edge", &p->macs_edge, e) < 0 ||
	    get_num(r, "macs_cloud", &p->macs_cloud, e) < 0)
		return e->code;
	if ((k = get_num(r, "bytes_up", &x, e)) < 0)
		return e->code;
	p->bytes += k ? x : 0;
	if ((k = get_num(r, "bytes_down", &x, e)) < 0)
		return e->code;
	p->bytes += k ? x : 0;
	return MEA_OK;
}

int
mea_score_add(struct mea_score *s, const struct mea_record *r, struct mea_err *e)
{
	int64_t label = 0, pred = 0, mp = 0, hard = 0, seq = 0;
	double macs_edge = 0, macs_cloud = 0, up = 0, down = 0;
	int has_label, has_pred, has_mp, has_hard, has_seq, x;
	const struct mea_field *ef = mea_field_get(r, "exit");
	struct mea_score_point pt;

	/* Check everything first, so that a bad record counts for nothing. */
	s->gap = 0;
	if ((has_seq = get_int(r, MEA_F_SEQ, &seq, e)) < 0 ||
	    (has_label = get_class(s, r, MEA_F_LABEL, &label, e)) < 0 ||
	    (has_pred = get_class(s, r, "pred", &pred, e)) < 0 ||
	    (has_mp = get_class(s, r, "main_pred", &mp, e)) < 0 ||
	    (has_hard = get_int(r, "hard", &hard, e)) < 0 ||
	    get_num(r, "macs_edge", &macs_edge, e) < 0 ||
	    get_num(r, "macs_cloud", &macs_cloud, e) < 0 ||
	    get_num(r, "bytes_up", &up, e) < 0 ||
	    get_num(r, "bytes_down", &down, e) < 0)
		return e->code;
	if (has_seq && seq < 0)
		return mea_errf(e, MEA_E_FORMAT, "seq %lld is negative", (long long)seq);
	if (ef && ef->type != MEA_FIELD_STR)
		return mea_errf(e, MEA_E_FORMAT, "field 'exit' is not a string");
	if (check_times(r, e))
		return e->code;
	if (s->sweep && make_point(s, r, &pt, e))
		return e->code;
	if ((has_label && grow(s, (int)label + 1, e)) || (has_pred && grow(s, (int)pred + 1, e)) ||
	    (has_mp && grow(s, (int)mp + 1, e)))
		return e->code;
	if (s->sweep && s->npt == s->cappt) {
		size_t cap = s->cappt ? 2 * s->cappt : 256;
		struct mea_score_point *p = realloc(s->pt, cap * sizeof *p);
		if (!p)
			return mea_errf(e, MEA_E_NOMEM, "out of memory");
		s->pt = p;
		s->cappt = cap;
	}
	add_times(s, r);

	/* A sequence that starts again (a second stream after the first) is
	 * not a gap; only a jump forward past the next number is. */
	if (has_seq) {
		if (s->have_seq && seq > s->last_seq && seq - s->last_seq > 1) {
			s->gap = 1;
			s->gap_from = s->last_seq;
			s->gap_to = seq;
			s->ngaps++;
			s->lost += (uint64_t)(seq - s->last_seq - 1);
		}
		s->have_seq = 1;
		s->last_seq = seq;
	}
	s->n++;
	x = exit_index(ef ? ef->s : NULL);
	s->exit[x].n++;
	if (has_pred) {
		s->answered++;
		s->answers[pred]++;
	}
	if (has_label) {
		s->labelled++;
		s->exit[x].labelled++;
		s->actual[label]++;
		if (has_pred) {
			s->answers_lab[pred]++;
			if (pred == label) {
				s->hits[pred]++;
				s->correct++;
				s->exit[x].correct++;
			}
		}
	}
	if (has_label && label >= s->K)
		s->K = (int)label + 1;
	if (has_pred && pred >= s->K)
		s->K = (int)pred + 1;
	if (has_mp && mp >= s->K)
		s->K = (int)mp + 1;
	if (!s->hard_given && has_mp && has_hard && hard)
		s->hard[mp] = 1;
	s->macs_edge += macs_edge;
	s->macs_cloud += macs_cloud;
	s->bytes_up += up;
	s->bytes_down += down;
	if (s->sweep)
		s->pt[s->npt++] = pt;
	return MEA_OK;
}

/* ------------------------------------------------------------ summary */

static const char *
class_name(const struct mea_score_view *v, int c)
{
	if (v && v->names && c < v->nnames && v->names[c] && *v->names[c])
		return v->names[c];
	return NULL;
}

static double
ratio(double a, double b)
{
	return b > 0 ? a / b : NAN;
}

/* A share or accuracy cell: the number, "-" for nothing to divide, or
 * "no labels" when there are records but none is labelled. */
static void
cell(FILE *f, int width, double num, uint64_t den, int nolabels)
{
	if (den > 0)
		fprintf(f, " %*.4f", width, num / (double)den);
	else
		fprintf(f, " %*s", width, nolabels ? "no labels" : "-");
}

static int
exit_shown(const struct mea_score *s, int x)
{
	return x < MEA_EXIT_OTHER || s->exit[x].n > 0;
}

static const char *const counted =
	"edge and cloud multiply-accumulates and the bits sent and received;\n"
	"  not counted: memory traffic, idle and radio tail power, decoding, the server's overheads\n";

void
mea_score_print(FILE *f, const struct mea_score *s, const struct mea_score_view *v)
{
	double n = (double)s->n;
	int nolab = s->labelled == 0, width = 5, nhard = 0;

	fprintf(f, "records      %llu\n", (unsigned long long)s->n);
	if (nolab) {
		fprintf(f, "accuracy     no labels\n");
	} else {
		fprintf(f, "accuracy     %.4f (%llu of %llu labelled)\n",
				(double)s->correct / (double)s->labelled,
				(unsigned long long)s->correct, (unsigned long long)s->labelled);
		if (s->labelled < s->n)
			fprintf(f, "unlabelled   %llu\n", (unsigned long long)(s->n - s->labelled));
	}
	if (s->answered < s->n)
		fprintf(f, "unanswered   %llu (no \"pred\"; counted as wrong)\n",
				(unsigned long long)(s->n - s->answered));

	fprintf(f, "\nexit       records    share   accuracy\n");
	for (int x = 0; x < MEA_NEXITS; x++) {
		if (!exit_shown(s, x))
			continue;
		fprintf(f, "%-9s %8llu", mea_exit_name(x), (unsigned long long)s->exit[x].n);
		cell(f, 8, (double)s->exit[x].n, s->n, 0);
		cell(f, 10, (double)s->exit[x].correct, s->exit[x].labelled,
				nolab && s->exit[x].n > 0);
		fputc('\n', f);
	}

	for (int c = 0; c < s->K; c++) {
		const char *nm = class_name(v, c);
		int w = snprintf(NULL, 0, "%d%s%s", c, nm ? " " : "", nm ? nm : "");
		if (w > width)
			width = w > 32 ? 32 : w;
	}
	fprintf(f, "\nhard classes:");
	for (int c = 0; c < s->K; c++)
		if (s->hard[c])
			fprintf(f, " %d", c), nhard++;
	if (!nhard)
		fprintf(f, " none");
	fprintf(f, " (%s)\n", s->hard_given ? (v && v->hard_source ? v->hard_source : "given")
			: "inferred from the records' hard field");
	fprintf(f, "%-*s  hard  answers  labelled  precision     recall\n", width, "class");
	for (int c = 0; c < s->K; c++) {
		const char *nm = class_name(v, c);
		char label[80];
		snprintf(label, sizeof label, "%d%s%.31s", c, nm ? " " : "", nm ? nm : "");
		fprintf(f, "%-*.*s  %4s %8llu %9llu", width, width, label, s->hard[c] ? "*" : "",
				(unsigned long long)s->answers[c], (unsigned long long)s->actual[c]);
		cell(f, 10, (double)s->hits[c], s->answers_lab[c], nolab);
		cell(f, 10, (double)s->hits[c], s->actual[c], nolab);
		fputc('\n', f);
	}

	fprintf(f, "\nper image (mean over %llu records)\n", (unsigned long long)s->n);
	fprintf(f, "  edge MACs    %.0f\n  cloud MACs   %.0f\n  bytes up     %.1f\n"
			"  bytes down   %.1f\n", s->n ? s->macs_edge / n : 0,
			s->n ? s->macs_cloud / n : 0, s->n ? s->bytes_up / n : 0,
			s->n ? s->bytes_down / n : 0);
	if (v && v->energy && s->n) {
		const struct mea_energy *en = v->energy;
		double me = s->macs_edge / n, mc = s->macs_cloud / n;
		double by = (s->bytes_up + s->bytes_down) / n;
		fprintf(f, "\nenergy per image  %.3f uJ (profile %s)\n",
				mea_energy_uj(en, me, by, mc), v->energy_name ? v->energy_name : "given");
		fprintf(f, "  edge   %12.3f uJ  (MACs x %g pJ)\n", mea_energy_uj(en, me, 0, 0),
				en->edge_mac_pj);
		fprintf(f, "  link   %12.3f uJ  (bits up and down x %g pJ)\n",
				mea_energy_uj(en, 0, by, 0), en->link_bit_pj);
		fprintf(f, "  cloud  %12.3f uJ  (MACs x %g pJ)\n", mea_energy_uj(en, 0, 0, mc),
				en->cloud_mac_pj);
		fprintf(f, "  counted: %s", counted);
	} else {
		fprintf(f, "\nenergy per image  not estimated (%s)\n",
				s->n ? "no energy profile" : "no records");
	}

	if (s->ntimes) {
		fprintf(f, "\ntime per stage (mean seconds over the records that carry it)\n");
		for (int t = 0; t < s->ntimes; t++)
			fprintf(f, "  %-12s %.6f  (%llu records)\n", s->time[t].key,
					s->time[t].sum / (double)s->time[t].n,
					(unsigned long long)s->time[t].n);
	}
	if (s->ngaps)
		fprintf(f, "\nlost records %llu (in %llu gaps of seq)\n",
				(unsigned long long)s->lost, (unsigned long long)s->ngaps);
}

/* ---------------------------------------------------------------- json */

static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void
json_num(FILE *f, double x)
{
	if (isfinite(x))
		fprintf(f, "%.10g", x);
	else
		fputs("null", f);
}

void
mea_score_print_json(FILE *f, const struct mea_score *s, const struct mea_score_view *v)
{
	double n = (double)s->n;

	fprintf(f, "{\n  \"records\": %llu,\n  \"labelled\": %llu,\n  \"answered\": %llu,\n"
			"  \"correct\": %llu,\n  \"accuracy\": ", (unsigned long long)s->n,
			(unsigned long long)s->labelled, (unsigned long long)s->answered,
			(unsigned long long)s->correct);
	json_num(f, ratio((double)s->correct, (double)s->labelled));
	fprintf(f, ",\n  \"exits\": {");
	for (int x = 0, first = 1; x < MEA_NEXITS; x++) {
		if (!exit_shown(s, x))
			continue;
		fprintf(f, "%s\n    \"%s\": {\"records\": %llu, \"labelled\": %llu, \"correct\": %llu,"
				" \"share\": ", first ? "" : ",", mea_exit_name(x),
				(unsigned long long)s->exit[x].n, (unsigned long long)s->exit[x].labelled,
				(unsigned long long)s->exit[x].correct);
		json_num(f, ratio((double)s->exit[x].n, n));
		fprintf(f, ", \"accuracy\": ");
		json_num(f, ratio((double)s->exit[x].correct, (double)s->exit[x].labelled));
		fputc('}', f);
		first = 0;
	}
	fprintf(f, "\n  },\n  \"hard_source\": ");
	json_str(f, s->hard_given ? (v && v->hard_source ? v->hard_source : "given") : "inferred");
	fprintf(f, ",\n  \"classes\": [");
	for (int c = 0; c < s->K; c++) {
		const char *nm = class_name(v, c);
		fprintf(f, "%s\n    {\"class\": %d, \"name\": ", c ? "," : "", c);
		if (nm)
			json_str(f, nm);
		else
			fputs("null", f);
		fprintf(f, ", \"hard\": %s, \"answers\": %llu, \"labelled\": %llu, \"precision\": ",
				s->hard[c] ? "true" : "false", (unsigned long long)s->answers[c],
				(unsigned long long)s->actual[c]);
		json_num(f, ratio((double)s->hits[c], (double)s->answers_lab[c]));
		fprintf(f, ", \"recall\": ");
		json_num(f, ratio((double)s->hits[c], (double)s->actual[c]));
		fputc('}', f);
	}
	fprintf(f, "\n  ],\n  \"per_image\": {\"macs_edge\": ");
	json_num(f, ratio(s->macs_edge, n));
	fprintf(f, ", \"macs_cloud\": ");
	json_num(f, ratio(s->macs_cloud, n));
	fprintf(f, ", \"bytes_up\": ");
	json_num(f, ratio(s->bytes_up, n));
	fprintf(f, ", \"bytes_down\": ");
	json_num(f, ratio(s->bytes_down, n));
	fprintf(f, "},\n  \"energy\": ");
	if (v && v->energy && s->n) {
		const struct mea_energy *en = v->energy;
		double me = s->macs_edge / n, mc = s->macs_cloud / n;
		double by = (s->bytes_up + s->bytes_down) / n;
		fprintf(f, "{\"profile\": ");
		json_str(f, v->energy_name ? v->energy_name : "given");
		fprintf(f, ", \"edge_mac_pj\": %.10g, \"link_bit_pj\": %.10g, \"cloud_mac_pj\": %.10g,"
				" \"edge_uj\": %.10g, \"link_uj\": %.10g, \"cloud_uj\": %.10g,"
				" \"total_uj\": %.10g}", en->edge_mac_pj, en->link_bit_pj, en->cloud_mac_pj,
				mea_energy_uj(en, me, 0, 0), mea_energy_uj(en, 0, by, 0),
				mea_energy_uj(en, 0, 0, mc), mea_energy_uj(en, me, by, mc));
	} else {
		fputs("null", f);
	}
	fprintf(f, ",\n  \"time\": {");
	for (int t = 0; t < s->ntimes; t++) {
		fprintf(f, "%s\n    ", t ? "," : "");
		json_str(f, s->time[t].key);
		fprintf(f, ": {\"mean\": %.10g, \"records\": %llu}",
				s->time[t].sum / (double)s->time[t].n, (unsigned long long)s->time[t].n);
	}
	fprintf(f, "%s},\n  \"lost\": %llu,\n  \"gaps\": %llu\n}\n", s->ntimes ? "\n  " : "",
			(unsigned long long)s->lost, (unsigned long long)s->ngaps);
}

/* ------------------------------------------------------------- records */

static const char *const record_cols[] = {
	"id", "label", "pred", "exit", "conf", "entropy", "main_pred", "route", "hard",
	"macs_edge", "macs_cloud", "bytes_up", "bytes_down"
};
#define NCOLS (sizeof record_cols / sizeof record_cols[0])

void
mea_score_record_header(FILE *f)
{
	for (size_t i = 0; i < NCOLS; i++)
		fprintf(f, "%s%c", record_cols[i], i + 1 < NCOLS ? '\t' : '\n');
}

void
mea_score_record_line(FILE *f, const struct mea_record *r)
{
	for (size_t i = 0; i < NCOLS; i++) {
		const struct mea_field *fl = mea_field_get(r, record_cols[i]);
		if (fl && fl->type == MEA_FIELD_INT)
			fprintf(f, "%lld", (long long)fl->i);
		else if (fl && fl->type == MEA_FIELD_FLOAT)
			fprintf(f, "%.6g", fl->f);
		else if (fl)
			for (const char *p = fl->s; *p; p++) {
				if (*p == '\t' || *p == '\n' || *p == '\\')
					fprintf(f, "\\%c", *p == '\t' ? 't' : *p == '\n' ? 'n' : '\\');
				else
					fputc(*p, f);
			}
		fputc(i + 1 < NCOLS ? '\t' : '\n', f);
	}
}

/* --------------------------------------------------------------- sweep */

/* The sweep compares entropies and thresholds in single precision, as
 * mea-gate does, so that a T it prints means the same to mea-gate -T. */
static int
by_entropy(const void *a, const void *b)
{
	float x = (float)((const struct mea_score_point *)a)->entropy;
	float y = (float)((const struct mea_score_point *)b)->entropy;
	return (x > y) - (x < y);
}

/* The shortest decimal text that reads back as the float x. */
static void
float_text(char *buf, size_t size, float x)
{
	for (int digits = 6; digits <= 9; digits++) {
		snprintf(buf, size, "%.*g", digits, (double)x);
		if ((float)strtod(buf, NULL) == x)
			break;
	}
}

int
mea_score_sweep(FILE *f, const struct mea_score *s, const struct mea_score_sweep_opts *o,
		uint64_t *no_cloud, struct mea_err *e)
{
	size_t n = s->npt, j = 0, nhard = 0, neasy = 0, nlab = 0;
	double mm = o->macs_main, mx = o->macs_ext, sum_easy = 0, sum_hard = 0;
	struct mea_score_point *p = NULL;
	/* prefix over the edge part (the j lowest entropies), suffix over the
	 * cloud part (the rest): [n + 1] each */
	double *edge_ok = NULL, *ext_n = NULL, *cloud_ok = NULL, *cloud_macs = NULL,
		*cloud_bytes = NULL;
	int rc = MEA_OK;

	*no_cloud = 0;
	for (size_t i = 0; i < n; i++) {
		if (s->pt[i].hard) {
			nhard++;
			sum_hard += s->pt[i].macs_edge;
		} else {
			neasy++;
			sum_easy += s->pt[i].macs_edge;
		}
	}
	if (mm < 0) {
		if (neasy == 0 && nhard > 0)
			return mea_errf(e, MEA_E_ARG, "every record is hard, so the main block's MACs "
					"cannot be told from the extension's: give --macs-main");
		mm = neasy ? sum_easy / (double)neasy : 0;
	}
	if (mx < 0)
		mx = nhard && sum_hard / (double)nhard > mm ? sum_hard / (double)nhard - mm : 0;

	if (n && (!(p = malloc(n * sizeof *p)) || !(edge_ok = calloc(n + 1, sizeof(double))) ||
	    !(ext_n = calloc(n + 1, sizeof(double))) || !(cloud_ok = calloc(n + 1, sizeof(double))) ||
	    !(cloud_macs = calloc(n + 1, sizeof(double))) ||
	    !(cloud_bytes = calloc(n + 1, sizeof(double))))) {
		rc = mea_errf(e, MEA_E_NOMEM, "out of memory");
		goto out;
	}
	if (n) {   /* qsort and memcpy must not see NULL, even for no items */
		memcpy(p, s->pt, n * sizeof *p);
		qsort(p, n, sizeof *p, by_entropy);
	}
	for (size_t i = 0; i < n; i++) {
		int32_t edge = p[i].hard ? p[i].ext_pred : p[i].main_pred;
		int32_t cloud = p[i].cloud_pred >= 0 ? p[i].cloud_pred : edge;
		*no_cloud += p[i].cloud_pred < 0;
		nlab += p[i].label >= 0;
		edge_ok[i + 1] = edge_ok[i] + (p[i].label >= 0 && edge == p[i].label);
		ext_n[i + 1] = ext_n[i] + p[i].hard;
		cloud_ok[i] = p[i].label >= 0 && cloud == p[i].label;
		cloud_macs[i] = o->macs_cloud >= 0 ? o->macs_cloud : p[i].macs_cloud;
		cloud_bytes[i] = o->bytes >= 0 ? o->bytes : p[i].bytes;
	}
	for (size_t i = n; i-- > 0;) {
		cloud_ok[i] += cloud_ok[i + 1];
		cloud_macs[i] += cloud_macs[i + 1];
		cloud_bytes[i] += cloud_bytes[i + 1];
	}

	fprintf(f, "T\taccuracy\tcloud\tmain\text\tmacs_edge\tmacs_cloud\tbytes\tenergy_uj\n");
	for (size_t row = 0; n > 0; row++) {
		double dn = (double)n, edge_macs, ext;
		float T, top = (float)p[n - 1].entropy;
		char text[32];

		if (o->steps > 0) {
			if (row > (size_t)o->steps)
				break;
			/* Grid points rounded to 6 digits, to read well; the
			 * last is the largest entropy exactly. */
			snprintf(text, sizeof text, "%.6g", top * (double)row / o->steps);
			T = row == (size_t)o->steps ? top : (float)strtod(text, NULL);
		} else if (row == 0) {
			T = 0;
		} else {
			while (j < n && (float)p[j].entropy <= 0)
				j++;
			if (j == n)
				break;
			T = (float)p[j].entropy;
		}
		while (j < n && (float)p[j].entropy <= T)
			j++;
		ext = ext_n[j];
		edge_macs = (dn * mm + ext * mx) / dn;
		float_text(text, sizeof text, T);
		fprintf(f, "%s\t", text);
		if (nlab)
			fprintf(f, "%.4f", (edge_ok[j] + cloud_ok[j]) / (double)nlab);
		fprintf(f, "\t%.4f\t%.4f\t%.4f\t%.0f\t%.0f\t%.1f\t", (dn - (double)j) / dn,
				((double)j - ext) / dn, ext / dn, edge_macs, cloud_macs[j] / dn,
				cloud_bytes[j] / dn);
		if (o->energy)
			fprintf(f, "%.3f", mea_energy_uj(o->energy, edge_macs, cloud_bytes[j] / dn,
					cloud_macs[j] / dn));
		fputc('\n', f);
	}
out:
	free(p);
	free(edge_ok);
	free(ext_n);
	free(cloud_ok);
	free(cloud_macs);
	free(cloud_bytes);
	return rc;
}
