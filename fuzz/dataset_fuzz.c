/*
 * dataset_fuzz: IDX and CIFAR files (dataset.c), which the library reads
 * from a path through zlib.  The input is put in a memfd and read as
 * /proc/self/fd/N: sniffed as mea-decode does (mea_file_kind, looking
 * through gzip), read as an IDX file when it is one, with a labels file
 * made of its own pixels, and read as a CIFAR-10 and a CIFAR-100 batch.
 * At most a few thousand images are read from one input, so that a
 * small gzip bomb of 1x1 images stays quick.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

#define DATASET_FUZZ_MAX_IMAGES 4096

static int
dataset_memfd(const uint8_t *p, size_t n, char *path, size_t pathlen)
{
	int fd = memfd_create("dataset_fuzz", 0);

	if (fd < 0)
		abort();
	for (size_t off = 0; off < n; ) {
		ssize_t k = write(fd, p + off, n - off);
		if (k <= 0)
			abort();
		off += (size_t)k;
	}
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

static void
dataset_read(struct mea_imagefile *ds, struct mea_image *im)
{
	struct mea_err e;
	int rc, label, coarse;

	for (int i = 0; i < DATASET_FUZZ_MAX_IMAGES; i++) {
		fuzz_err_reset(&e);
		rc = mea_imagefile_next(ds, im, &label, &coarse, &e);
		fuzz_check("mea_imagefile_next", rc, &e);
		if (rc)
			break;
		if (im->c != ds->c || im->h != ds->h || im->w != ds->w || label < -1 || coarse < -1)
			fuzz_fail("an image from a dataset is not what the file said", rc, &e);
	}
	mea_imagefile_close(ds);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], lpath[64];
	struct mea_imagefile ds;
	struct mea_image im = { 0 };
	struct mea_err e;
	int fd, lfd = -1, kind, rc;

	fd = dataset_memfd(data, size, path, sizeof path);
	fuzz_err_reset(&e);
	rc = mea_file_kind(path, 0, &kind, &e);
	fuzz_check("mea_file_kind", rc, &e);

	if (!rc && kind == MEA_KIND_IDX) {
		/* Labels: a 1-dimensional IDX header with the image count, then
		 * the input's own bytes. */
		uint8_t *lab = malloc(size + 8);
		if (!lab)
			abort();
		memcpy(lab, "\0\0\x08\x01", 4);
		memcpy(lab + 4, size >= 8 ? data + 4 : (const uint8_t *)"\0\0\0\0", 4);
		memcpy(lab + 8, data, size);
		lfd = dataset_memfd(lab, size + 8, lpath, sizeof lpath);
		free(lab);
		for (int with_labels = 0; with_labels < 2; with_labels++) {
			fuzz_err_reset(&e);
			rc = mea_imagefile_open_idx(&ds, path, with_labels ? lpath : NULL, &e);
			fuzz_check("mea_imagefile_open_idx", rc, &e);
			if (!rc)
				dataset_read(&ds, &im);
		}
	}
	for (int classes = 10; classes <= 100; classes += 90) {
		fuzz_err_reset(&e);
		rc = mea_imagefile_open_cifar(&ds, path, classes, &e);
		fuzz_check("mea_imagefile_open_cifar", rc, &e);
		if (!rc)
			dataset_read(&ds, &im);
	}
	mea_image_free(&im);
	close(fd);
	if (lfd >= 0)
		close(lfd);
	return 0;
}
