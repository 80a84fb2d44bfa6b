/* batch.c: records queued for one forward pass of a plan (see mea.h). */
#include <stdlib.h>

#include "mea.h"

int
mea_batch_init(struct mea_batch *b, int cap, struct mea_err *e)
{
	b->rec = calloc((size_t)cap, sizeof *b->rec);
	b->row = calloc((size_t)cap, sizeof *b->row);
	b->cap = cap;
	b->nrec = b->nrows = 0;
	if (!b->rec || !b->row) {
		mea_batch_free(b);
		return mea_errf(e, MEA_E_NOMEM, "out of memory for a batch of %d records", cap);
	}
	return MEA_OK;
}

void
mea_batch_free(struct mea_batch *b)
{
	for (int i = 0; b->rec && i < b->cap; i++)
		mea_record_clear(&b->rec[i]);
	free(b->rec);
	free(b->row);
	b->rec = NULL;
	b->row = NULL;
	b->cap = b->nrec = b->nrows = 0;
}

int
mea_batch_push(struct mea_batch *b, int takes_row)
{
	int row = takes_row ? b->nrows++ : -1;
	b->row[b->nrec++] = row;
	return row;
}

int
mea_batch_write(struct mea_batch *b, struct mea_writer *w, struct mea_err *e)
{
	int rc = MEA_OK;

	for (int i = 0; i < b->nrec; i++) {
		if (!rc)
			rc = mea_write(w, &b->rec[i], e);
		mea_record_clear(&b->rec[i]);
	}
	b->nrec = b->nrows = 0;
	return rc;
}
