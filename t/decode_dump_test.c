/*
 * decode_dump: prints each record of a mea stream on stdin as one line,
 * "ID LABEL C H W v v v ...", LABEL being "-" when there is none, so the
 * mea-decode tests can compare every pixel.
 */
#include <inttypes.h>
#include <stdio.h>

#include "mea.h"

int
main(void)
{
	struct mea_reader rd;
	struct mea_record r;
	struct mea_err e;
	int rc;

	mea_record_init(&r);
	mea_reader_init(&rd, 0, "stdin");
	while ((rc = mea_read(&rd, &r, &e)) == MEA_OK) {
		const struct mea_tensor *t = mea_tensor_get(&r, MEA_T_IMAGE);
		const char *id = mea_field_str(&r, MEA_F_ID);
		int64_t label;

		printf("%s ", id ? id : "-");
		if (mea_field_int(&r, MEA_F_LABEL, &label))
			printf("%" PRId64, label);
		else
			putchar('-');
		if (!t || t->dtype != MEA_U8 || t->ndim != 3) {
			printf(" no-image\n");
			continue;
		}
		printf(" %u %u %u", (unsigned)t->dim[0], (unsigned)t->dim[1], (unsigned)t->dim[2]);
		for (size_t i = 0; i < t->nelem; i++)
			printf(" %u", ((const unsigned char *)t->data)[i]);
		putchar('\n');
	}
	mea_record_clear(&r);
	mea_reader_free(&rd);
	if (rc != MEA_EOF) {
		fprintf(stderr, "decode_dump: %s\n", e.msg);
		return 1;
	}
	return 0;
}
