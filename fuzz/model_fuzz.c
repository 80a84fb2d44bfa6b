/*
 * model_fuzz: the model-file loader (mea-model(5)), and what a program
 * does with a model the loader accepts.
 *
 * A model mea_model_decode accepts must encode back to the same bytes
 * (one spelling), extract its main block, and run: an inference plan is
 * built and run forward on a batch of two images, as mea-main and
 * mea-ext do.  Models too costly to run in a fuzzing loop (more than a
 * few million MACs per image) are only loaded; the limits that keep such
 * a model safe are the loader's, and it is the loader that is tested.
 */
#include <stdint.h>

#include "fuzz.h"

#define MODEL_FUZZ_MAX_MACS 4000000ull
#define MODEL_FUZZ_MAX_ACT  (1u << 20)     /* floats of all node outputs */

static int
model_cheap(const struct mea_model *m)
{
	uint64_t macs = 0, act = 0;

	for (int i = 0; i < m->nnodes; i++) {
		macs += m->node[i].macs;
		act += (uint64_t)m->node[i].C * (uint64_t)m->node[i].H * (uint64_t)m->node[i].W;
	}
	return macs <= MODEL_FUZZ_MAX_MACS && act <= MODEL_FUZZ_MAX_ACT;
}

/* Build a plan from node 0 to the outputs, fill the image with values
 * from the file's bytes, run it. */
static void
model_run(struct mea_model *m, const uint8_t *data, size_t size)
{
	struct mea_plan_opts po = { .batch = 2, .ninputs = 1, .input = { 0 }, .noutputs = 1 };
	struct mea_plan *plan;
	struct mea_err e;
	size_t nx;
	float *x;
	int rc;
	static int threads;

	if (!threads++)
		mea_set_threads(1);
	po.output[0] = m->node_logits;
	if (m->node_ext >= 0)
		po.output[po.noutputs++] = m->node_ext;
	fuzz_err_reset(&e);
	rc = mea_plan_new(&plan, m, &po, &e);
	fuzz_check("mea_plan_new", rc, &e);
	if (rc)
		return;
	x = mea_plan_value(plan, 0);
	nx = 2 * (size_t)m->in_c * (size_t)m->in_h * (size_t)m->in_w;
	for (size_t i = 0; i < nx; i++)
		x[i] = (float)data[i % size] / 255.0f - 0.5f;
	fuzz_err_reset(&e);
	rc = mea_plan_forward(plan, 2, &e);
	fuzz_check("mea_plan_forward", rc, &e);
	mea_plan_free(plan);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mea_model *m, *x;
	unsigned char *buf;
	struct mea_err e;
	size_t len;
	int rc;

	fuzz_err_reset(&e);
	rc = mea_model_decode(&m, data, size, "fuzz", &e);
	fuzz_check("mea_model_decode", rc, &e);
	if (rc) {
		if (m)
			fuzz_fail("a failed decode left a model behind", rc, &e);
		return 0;
	}

	fuzz_err_reset(&e);
	rc = mea_model_encode(m, &buf, &len, &e);
	fuzz_check("mea_model_encode", rc, &e);
	if (rc || len != size || memcmp(buf, data, size) != 0)
		fuzz_fail("a decoded model does not encode to the same bytes", rc, &e);
	free(buf);

	mea_model_print(fuzz_devnull(), m, 1);
	fuzz_err_reset(&e);
	rc = mea_model_extract(&x, m, MEA_BLOCK_BIT(MEA_BLOCK_MAIN), &e);
	fuzz_check("mea_model_extract", rc, &e);
	mea_model_free(x);

	if (model_cheap(m))
		model_run(m, data, size);
	mea_model_free(m);
	return 0;
}
