/*
 * text_fuzz: the small text inputs: a class list (mea-decode -L,
 * mea-score -N), an energy profile (mea-score -e) and a list of hard
 * class ids (--hard of mea-gate and mea-score).  The files are read from
 * a memfd as /proc/self/fd/N; the list is the input up to its first NUL.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mea_classes cl;
	struct mea_energy en;
	struct mea_gate g;
	struct mea_err e;
	int32_t *hard;
	char path[64], *s;
	int fd, rc, n;

	if ((fd = memfd_create("text_fuzz", 0)) < 0)
		abort();
	for (size_t off = 0; off < size; ) {
		ssize_t k = write(fd, data + off, size - off);
		if (k <= 0)
			abort();
		off += (size_t)k;
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

	fuzz_err_reset(&e);
	rc = mea_classes_load(&cl, path, &e);
	fuzz_check("mea_classes_load", rc, &e);
	if (!rc) {
		for (int k = 0; k < cl.n; k++)
			if (mea_classes_find(&cl, cl.name[k]) < 0)
				fuzz_fail("a loaded class name is not found", rc, &e);
		mea_classes_free(&cl);
	}
	fuzz_err_reset(&e);
	rc = mea_energy_load(&en, path, &e);
	fuzz_check("mea_energy_load", rc, &e);
	close(fd);

	if (!(s = malloc(size + 1)))
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_err_reset(&e);
	rc = mea_gate_parse_list(s, &hard, &n, &e);
	fuzz_check("mea_gate_parse_list", rc, &e);
	if (!rc) {
		mea_gate_init(&g);
		fuzz_err_reset(&e);
		rc = mea_gate_set_hard(&g, hard, n, &e);
		fuzz_check("mea_gate_set_hard", rc, &e);
		mea_gate_free(&g);
		free(hard);
	}
	free(s);
	return 0;
}
