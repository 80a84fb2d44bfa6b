/*
 * classes.c: ImageFolder trees: class lists (label k is the k-th name)
 * and the sorted walk over a folder of images.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "mea.h"
#include "image.h"

#define MAX_CLASS_NAME 255          /* a file name */

void
mea_classes_free(struct mea_classes *cl)
{
	for (int k = 0; k < cl->n; k++)
		free(cl->name[k]);
	free(cl->name);
	free(cl->sorted);
	memset(cl, 0, sizeof *cl);
}

int
mea_classes_add(struct mea_classes *cl, const char *name, struct mea_err *e)
{
	char **nn, *s;

	if (cl->n >= MEA_MAX_CLASSES)
		return mea_errf(e, MEA_E_LIMIT, "more than %d classes", MEA_MAX_CLASSES);
	if (!(s = strdup(name)) || !(nn = realloc(cl->name, (size_t)(cl->n + 1) * sizeof *nn))) {
		free(s);
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	}
	nn[cl->n++] = s;
	cl->name = nn;
	/* The lookup index is stale now; find() searches linearly until the
	 * next index(). */
	free(cl->sorted);
	cl->sorted = NULL;
	return MEA_OK;
}

struct pair {
	const char *name;
	int k;
};

static int
cmp_pair(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : x->k - y->k;
}

/* Build the sorted index; report the first duplicate name. */
static int
index_build(struct mea_classes *cl, struct mea_err *e)
{
	struct pair *p;
	int rc = MEA_OK;

	free(cl->sorted);
	cl->sorted = NULL;
	if (cl->n == 0)
		return MEA_OK;
	p = malloc((size_t)cl->n * sizeof *p);
	cl->sorted = malloc((size_t)cl->n * sizeof *cl->sorted);
	if (!p || !cl->sorted) {
		free(p);
		free(cl->sorted);
		cl->sorted = NULL;
		return mea_errf(e, MEA_E_NOMEM, "out of memory");
	}
	for (int k = 0; k < cl->n; k++)
		p[k] = (struct pair){ cl->name[k], k };
	qsort(p, (size_t)cl->n, sizeof *p, cmp_pair);
	for (int i = 0; i < cl->n; i++) {
		cl->sorted[i] = p[i].k;
		if (i > 0 && !rc && strcmp(p[i].name, p[i - 1].name) == 0)
			rc = mea_errf(e, MEA_E_FORMAT, "line %d: class '%s' is also on line %d",
					p[i].k + 1, p[i].name, p[i - 1].k + 1);
	}
	free(p);
	return rc;
}

/* The next line of f into buf (without its newline), its length in *len.
 * Returns 0, EOF, or 1 for a line that does not fit in size - 1 bytes: a
 * class list of one endless line must not take endless memory. */
static int
get_line(FILE *f, char *buf, size_t size, size_t *len)
{
	size_t n = 0;
	int c;

	while ((c = getc(f)) != EOF && c != '\n') {
		if (n + 1 >= size)
			return 1;
		buf[n++] = (char)c;
	}
	if (c == EOF && n == 0)
		return EOF;
	buf[n] = '\0';
	*len = n;
	return 0;
}

int
mea_classes_load(struct mea_classes *cl, const char *path, struct mea_err *e)
{
	char line[MAX_CLASS_NAME + 3];     /* a name, a '\r', a byte more, the NUL */
	size_t len;
	int rc = MEA_OK, lineno = 0, got;
	struct stat st;
	FILE *f;

	memset(cl, 0, sizeof *cl);
	if (!(f = fopen(path, "r")))
		return mea_errf(e, MEA_E_IO, "%s", strerror(errno));
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(f);
		return mea_errf(e, MEA_E_IO, "is a directory");
	}
	while (!rc && (got = get_line(f, line, sizeof line, &len)) != EOF) {
		lineno++;
		if (got) {
			rc = mea_errf(e, MEA_E_FORMAT, "line %d: longer than %d bytes", lineno,
					MAX_CLASS_NAME);
			break;
		}
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (len == 0 || strlen(line) != len)
			rc = mea_errf(e, MEA_E_FORMAT, "line %d: empty class name or NUL byte", lineno);
		else if (len > MAX_CLASS_NAME || strchr(line, '/') ||
				strcmp(line, ".") == 0 || strcmp(line, "..") == 0)
			rc = mea_errf(e, MEA_E_FORMAT, "line %d: '%.40s' cannot be a folder name",
					lineno, line);
		else
			rc = mea_classes_add(cl, line, e);
	}
	if (!rc && ferror(f))
		rc = mea_errf(e, MEA_E_IO, "%s", strerror(errno));
	if (!rc && cl->n == 0)
		rc = mea_errf(e, MEA_E_FORMAT, "no class names");
	if (!rc)
		rc = index_build(cl, e);
	fclose(f);
	if (rc)
		mea_classes_free(cl);
	return rc;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
mea_classes_sort(struct mea_classes *cl)
{
	int n = 0;

	if (cl->n == 0)
		return;
	qsort(cl->name, (size_t)cl->n, sizeof *cl->name, cmp_str);
	for (int k = 0; k < cl->n; k++) {
		if (n > 0 && strcmp(cl->name[k], cl->name[n - 1]) == 0)
			free(cl->name[k]);
		else
			cl->name[n++] = cl->name[k];
	}
	cl->n = n;
	/* No duplicates are left, so only memory can fail; find() copes
	 * without the index. */
	index_build(cl, NULL);
}

int
mea_classes_find(const struct mea_classes *cl, const char *name)
{
	int lo = 0, hi = cl->n;

	if (!cl->sorted) {
		for (int k = 0; k < cl->n; k++)
			if (strcmp(cl->name[k], name) == 0)
				return k;
		return -1;
	}
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2, c = strcmp(cl->name[cl->sorted[mid]], name);
		if (c == 0)
			return cl->sorted[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int
mea_classes_label(const struct mea_classes *cl, const char *path, int *label,
		struct mea_err *e)
{
	const char *end = strrchr(path, '/'), *start = end;
	char name[MAX_CLASS_NAME + 1];

	*label = -1;
	while (start && start > path && start[-1] != '/')
		start--;
	if (!end || end == start || (size_t)(end - start) > MAX_CLASS_NAME)
		return mea_errf(e, MEA_E_FORMAT, "no folder name to give the class");
	memcpy(name, start, (size_t)(end - start));
	name[end - start] = '\0';
	if ((*label = mea_classes_find(cl, name)) < 0)
		return mea_errf(e, MEA_E_FORMAT, "folder '%s' is not in the class list", name);
	return MEA_OK;
}

/* ------------------------------------------------------------ walks */

int
mea_is_image_name(const char *name)
{
	static const char *const ext[] = { ".png", ".jpg", ".jpeg" };
	size_t n = strlen(name);

	for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
		size_t k = strlen(ext[i]);
		if (n > k && strcasecmp(name + n - k, ext[i]) == 0)
			return 1;
	}
	return 0;
}

static int
not_hidden(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static char *
join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	int slash = a > 0 && dir[a - 1] != '/';
	char *p = malloc(a + (size_t)slash + b + 1);

	if (p) {
		memcpy(p, dir, a);
		if (slash)
			p[a] = '/';
		memcpy(p + a + (size_t)slash, name, b + 1);
	}
	return p;
}

int
mea_classes_from_dir(struct mea_classes *cl, const char *dir, struct mea_err *e)
{
	struct dirent **ent;
	struct stat st;
	int n, rc = MEA_OK;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return MEA_OK;      /* a file argument, or one reported later */
	if ((n = scandir(dir, &ent, not_hidden, by_name)) < 0)
		return mea_errf(e, errno == ENOMEM ? MEA_E_NOMEM : MEA_E_IO, "%s", strerror(errno));
	for (int i = 0; i < n; i++) {
		char *path = join(dir, ent[i]->d_name);
		if (!path && !rc)
			rc = mea_errf(e, MEA_E_NOMEM, "out of memory");
		else if (!rc && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			rc = mea_classes_add(cl, ent[i]->d_name, e);
		free(path);
		free(ent[i]);
	}
	free(ent);
	if (!rc)
		mea_classes_sort(cl);
	return rc;
}

/* The directories from the top of the walk down to here, to notice a
 * symbolic link that leads back up. */
struct ancestor {
	dev_t dev;
	ino_t ino;
	const struct ancestor *up;
};

typedef int walk_fn(void *arg, const char *path, const struct mea_err *err);

static int
report(walk_fn *fn, void *arg, const char *path, const char *msg)
{
	struct mea_err err;
	mea_errf(&err, MEA_E_IO, "%s", msg);
	return fn(arg, path, &err);
}

static int
walk(const char *dir, const struct ancestor *up, walk_fn *fn, void *arg, struct mea_err *e)
{
	struct ancestor me = { 0, 0, up };
	struct dirent **ent;
	struct stat st;
	int n, rc = 0;

	if (stat(dir, &st) < 0)
		return report(fn, arg, dir, strerror(errno));
	for (const struct ancestor *a = up; a; a = a->up)
		if (a->dev == st.st_dev && a->ino == st.st_ino)
			return report(fn, arg, dir, "directory loop (a link back to a parent)");
	me.dev = st.st_dev;
	me.ino = st.st_ino;
	if ((n = scandir(dir, &ent, not_hidden, by_name)) < 0) {
		if (errno == ENOMEM)
			return mea_errf(e, MEA_E_NOMEM, "%s: out of memory", dir);
		return report(fn, arg, dir, strerror(errno));
	}
	for (int i = 0; i < n; i++) {
		char *path = rc ? NULL : join(dir, ent[i]->d_name);
		if (!rc && !path)
			rc = mea_errf(e, MEA_E_NOMEM, "%s: out of memory", dir);
		else if (!rc && stat(path, &st) < 0) {
			/* A dangling link matters only where an image was meant. */
			if (mea_is_image_name(ent[i]->d_name))
				rc = report(fn, arg, path, strerror(errno));
		}
		else if (!rc && S_ISDIR(st.st_mode))
			rc = walk(path, &me, fn, arg, e);
		else if (!rc && S_ISREG(st.st_mode) && mea_is_image_name(ent[i]->d_name))
			rc = fn(arg, path, NULL);
		free(path);
		free(ent[i]);
	}
	free(ent);
	return rc;
}

int
mea_dir_walk(const char *dir, walk_fn *fn, void *arg, struct mea_err *e)
{
	return walk(dir, NULL, fn, arg, e);
}
