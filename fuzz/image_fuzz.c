/*
 * image_fuzz: PNG and JPEG decoding (mea_image_decode) and what
 * mea-decode does next with a decoded image: a record of it, and the
 * preparations of --channels, --size, --resize and --crop.
 *
 * A decoded image must have 1 or 3 channels and a size within the
 * limits; a JPEG is decoded a second time with the fastest DCT scaling
 * that --fast allows.
 */
#include <stdint.h>

#include "fuzz.h"

#define IMAGE_FUZZ_MAX_PREP (1u << 20)   /* pixels */

static void
image_check(const struct mea_image *im)
{
	if ((im->c != 1 && im->c != 3) || im->h < 1 || im->w < 1 ||
			(uint32_t)im->h > MEA_IMAGE_MAX_SIDE || (uint32_t)im->w > MEA_IMAGE_MAX_SIDE ||
			(uint64_t)im->h * (uint64_t)im->w > MEA_IMAGE_MAX_PIXELS)
		fuzz_fail("a decoded image has an impossible shape", 0, NULL);
}

/* As mea-decode: the image into a record and back, then prepared. */
static void
image_use(struct mea_image *im, struct mea_image *tmp, const struct mea_prep *p)
{
	struct mea_record r;
	struct mea_err e;
	int rc;

	mea_record_init(&r);
	fuzz_err_reset(&e);
	rc = mea_image_record(&r, im, "fuzz.png", 0, 3, -1, &e);
	fuzz_check("mea_image_record", rc, &e);
	fuzz_err_reset(&e);
	if (!rc)
		rc = mea_image_prepare_record(&r, im, tmp, p, 1, &e);
	fuzz_check("mea_image_prepare_record", rc, &e);
	if (!rc)
		image_check(im);
	mea_record_clear(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct mea_prep grey = { .c = 1, .h = 7, .w = 5 };
	static const struct mea_prep colour = { .c = 3, .side = 6, .crop_h = 4, .crop_w = 4 };
	struct mea_image im = { 0 }, tmp = { 0 };
	struct mea_err e;
	int rc;

	fuzz_err_reset(&e);
	rc = mea_image_decode(&im, data, size, 0, 0, &e);
	fuzz_check("mea_image_decode", rc, &e);
	if (rc == MEA_OK) {
		image_check(&im);
		/* A few hundred bytes of JPEG can declare 40 megapixels, which
		 * is within the limits; resizing that under ASan takes seconds
		 * the fuzzer is better off spending on other inputs. */
		if ((size_t)im.h * (size_t)im.w <= IMAGE_FUZZ_MAX_PREP)
			image_use(&im, &tmp, (im.h ^ im.w) & 1 ? &grey : &colour);
	}
	if (mea_image_sniff(data, size) == MEA_KIND_JPEG) {
		fuzz_err_reset(&e);
		rc = mea_image_decode(&im, data, size, 1, 1, &e);
		fuzz_check("mea_image_decode (scaled)", rc, &e);
		if (rc == MEA_OK)
			image_check(&im);
	}
	mea_image_free(&im);
	mea_image_free(&tmp);
	return 0;
}
