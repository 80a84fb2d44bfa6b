/*
 * fuzz_replay: runs the fuzz targets of fuzz/ on saved inputs, without
 * libFuzzer, so that the seeds (fuzz/corpus/TARGET) and every input that
 * once crashed a target (fuzz/regress/TARGET) are replayed by the normal
 * build in `make test`, and under the sanitizers in `make check-asan`.
 *
 *   fuzz_replay_test TARGET PATH...   TARGET: stream, model, image,
 *                                     dataset or text; a PATH that is a
 *                                     folder stands for the files in it
 *
 * Prints "TARGET: N inputs" and exits 0 when every input ran; a broken
 * promise aborts (see fuzz/fuzz.h), as it does under libFuzzer.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Each target defines LLVMFuzzerTestOneInput: give each its own name. */
#define LLVMFuzzerTestOneInput replay_stream
#include "../fuzz/stream_fuzz.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_model
#include "../fuzz/model_fuzz.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_image
#include "../fuzz/image_fuzz.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_dataset
#include "../fuzz/dataset_fuzz.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_text
#include "../fuzz/text_fuzz.c"
#undef LLVMFuzzerTestOneInput

typedef int (*target_fn)(const uint8_t *, size_t);

static const struct { const char *name; target_fn fn; } targets[] = {
	{ "stream", replay_stream }, { "model", replay_model }, { "image", replay_image },
	{ "dataset", replay_dataset }, { "text", replay_text },
};

static void
fail(const char *what, const char *path)
{
	fprintf(stderr, "fuzz_replay: %s: %s\n", path, what);
	exit(2);
}

static void
replay_file(target_fn fn, const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t n = 0, cap = 0, k;

	if (!f)
		fail("cannot open", path);
	do {
		if (n == cap) {
			cap = cap ? 2 * cap : 65536;
			if (!(buf = realloc(buf, cap)))
				fail("out of memory", path);
		}
		k = fread(buf + n, 1, cap - n, f);
		n += k;
	} while (k > 0);
	if (ferror(f))
		fail("read error", path);
	fclose(f);
	/* libFuzzer hands over a buffer of exactly n bytes: so do we, so
	 * ASan sees a read past the end. */
	unsigned char *exact = malloc(n ? n : 1);
	if (!exact)
		fail("out of memory", path);
	memcpy(exact, buf, n);
	free(buf);
	fn(exact, n);
	free(exact);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files of a folder, in name order; returns how many ran. */
static int
replay_dir(target_fn fn, const char *dir)
{
	char **names = NULL, path[4096];
	struct dirent *d;
	int n = 0, cap = 0;
	DIR *dp = opendir(dir);

	if (!dp)
		fail("cannot open", dir);
	while ((d = readdir(dp))) {
		if (d->d_name[0] == '.')
			continue;
		if (n == cap && !(names = realloc(names, (size_t)(cap = cap ? 2 * cap : 64) *
				sizeof *names)))
			fail("out of memory", dir);
		if (!(names[n++] = strdup(d->d_name)))
			fail("out of memory", dir);
	}
	closedir(dp);
	if (n)
		qsort(names, (size_t)n, sizeof *names, cmp_str);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		replay_file(fn, path);
		free(names[i]);
	}
	free(names);
	return n;
}

int
main(int argc, char **argv)
{
	target_fn fn = NULL;
	struct stat st;
	int n = 0;

	if (argc < 3)
		fail("usage: fuzz_replay_test TARGET PATH...", "fuzz_replay");
	for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
		if (strcmp(argv[1], targets[i].name) == 0)
			fn = targets[i].fn;
	if (!fn)
		fail("unknown target", argv[1]);
	for (int i = 2; i < argc; i++) {
		if (stat(argv[i], &st) != 0)
			fail("no such file or folder", argv[i]);
		if (S_ISDIR(st.st_mode)) {
			n += replay_dir(fn, argv[i]);
		} else {
			replay_file(fn, argv[i]);
			n++;
		}
	}
	printf("%s: %d inputs\n", argv[1], n);
	return 0;
}
