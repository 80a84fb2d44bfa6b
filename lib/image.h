/*
 * image.h: images into 8-bit planar buffers, and the datasets that hold
 * many of them (part of libmea; included by mea.h).
 *
 * A struct mea_image is C planes of H rows of W bytes (CHW), C being 1
 * (grey) or 3 (R, G, B).  Every function that fills one reuses its
 * buffer, growing it when needed; mea_image_free releases it.  A zeroed
 * struct is a valid empty image.
 *
 * Decoding never trusts a declared size: width and height are checked
 * against MEA_IMAGE_MAX_SIDE and MEA_IMAGE_MAX_PIXELS before anything is
 * allocated.  libpng and libjpeg report errors through setjmp/longjmp
 * inside this module; callers only ever see a MEA_E_* code and a message.
 */
#ifndef MEA_IMAGE_H
#define MEA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

struct mea_err;
struct mea_record;
struct mea_classes;

#define MEA_IMAGE_MAX_SIDE   16384u        /* width or height */
#define MEA_IMAGE_MAX_PIXELS (48u << 20)   /* width * height: 8192 x 6144 */
#define MEA_IMAGE_MAX_FILE   (256u << 20)  /* bytes of one encoded image */

struct mea_image {
	int c, h, w;            /* channels (1 or 3), height, width */
	unsigned char *data;    /* c*h*w bytes, plane after plane; owned */
	size_t cap;             /* bytes allocated at data */
};

void mea_image_free(struct mea_image *im);
/* Set the shape and make room for c*h*w bytes (contents undefined).
 * Fails with MEA_E_LIMIT beyond the limits above, MEA_E_NOMEM. */
int mea_image_reserve(struct mea_image *im, int c, int h, int w, struct mea_err *e);
/* 0 when a declared width x height is within the limits, else MEA_E_LIMIT
 * with a message giving the size. */
int mea_image_check_size(uint32_t w, uint32_t h, struct mea_err *e);

/* What a file is: mea_image_sniff tells PNG to IDX from its first bytes,
 * mea_file_kind all of them. */
enum mea_image_kind {
	MEA_KIND_UNKNOWN = 0,
	MEA_KIND_PNG,
	MEA_KIND_JPEG,
	MEA_KIND_STREAM,        /* a mea record stream ("MEAR") */
	MEA_KIND_GZIP,          /* gzip data (perhaps an IDX file) */
	MEA_KIND_IDX,           /* an IDX file of u8 */
	MEA_KIND_CIFAR10,       /* CIFAR binary batches */
	MEA_KIND_CIFAR100,
};
int mea_image_sniff(const unsigned char *p, size_t n);

/*
 * Decode a PNG or JPEG held in memory into im, with the file's own
 * channels: 1 for grey (and grey + alpha) PNGs and greyscale JPEGs, 3 for
 * everything else.  Alpha is composited over white; 16-bit samples are
 * rounded to 8 bits; palettes and low bit depths are expanded; sample
 * values are taken as stored (no gamma or colour-profile conversion).
 * CMYK and YCCK JPEGs are converted to RGB (Adobe's inverted CMYK when
 * the file has an Adobe marker, plain CMYK otherwise).  A JPEG that
 * libjpeg would only warn about (truncated or corrupt data) is an error.
 *
 * min_h, min_w (0 for none) allow a faster JPEG decode: libjpeg may
 * scale by 1/2, 1/4 or 1/8 in the DCT as long as the image stays at
 * least min_h high and min_w wide.  PNGs ignore them.
 */
int mea_image_decode(struct mea_image *im, const unsigned char *p, size_t n,
		int min_h, int min_w, struct mea_err *e);

/* mea_file_read then mea_image_decode: *buf, *cap are the caller's
 * reusable file buffer. */
int mea_image_load(struct mea_image *im, const char *path, unsigned char **buf, size_t *cap,
		int min_h, int min_w, struct mea_err *e);
/* Read a whole file into *buf (grown as needed, *cap its size); *n gets
 * the length.  Fails on directories, empty files and files larger than
 * MEA_IMAGE_MAX_FILE.  Messages do not name the path (the caller does). */
int mea_file_read(const char *path, unsigned char **buf, size_t *cap, size_t *n,
		struct mea_err *e);

/* Write im as an 8-bit grey or RGB PNG.  A file left half-written by a
 * failure is removed. */
int mea_image_write_png(const struct mea_image *im, const char *path, struct mea_err *e);

/* Store im in r as the u8 tensor "image" [C,H,W] (replacing one there). */
int mea_image_to_record(struct mea_record *r, const struct mea_image *im, struct mea_err *e);
/* Make r (cleared first) the record of a decoded image: fields "id",
 * "seq", "label" (when label >= 0), "coarse" (when coarse >= 0) and the
 * tensor "image". */
int mea_image_record(struct mea_record *r, const struct mea_image *im, const char *id,
		uint64_t seq, int label, int coarse, struct mea_err *e);
/* Write im as dir/CLASS/NNNNN.png, making the folders when missing.
 * NNNNN is n with at least five digits (names sort in the order of n);
 * CLASS is cl's name for label, or the label's number when cl has no
 * such class; with label < 0 the file goes straight into dir. */
int mea_image_export(const struct mea_image *im, const char *dir,
		const struct mea_classes *cl, int64_t label, uint64_t n, struct mea_err *e);
/* Load r's "image" tensor, which must be u8 [C,H,W] with C 1 or 3. */
int mea_image_from_record(struct mea_image *im, const struct mea_record *r, struct mea_err *e);

/* ------------------------------------------------ geometry (resize.c) */

/* Convert to c channels in place: 3 -> 1 is 0.299 R + 0.587 G + 0.114 B
 * rounded; 1 -> 3 copies the grey plane. */
int mea_image_channels(struct mea_image *im, int c, struct mea_err *e);
/* dst = src scaled to h x w (dst != src).  Each axis that shrinks is
 * area-averaged (every source pixel weighted by how much of it the
 * destination pixel covers); each axis that grows is bilinear with
 * pixel centres aligned (the "half-pixel" convention). */
int mea_image_resize(struct mea_image *dst, const struct mea_image *src, int h, int w,
		struct mea_err *e);
/* dst = the centred h x w window of src; MEA_E_IMAGE when src is smaller. */
int mea_image_crop(struct mea_image *dst, const struct mea_image *src, int h, int w,
		struct mea_err *e);
/* The size that gives the shorter side `side` and keeps the aspect ratio
 * (the longer side rounded down, as torchvision does; at least 1). */
void mea_image_fit_short(int h, int w, int side, int *oh, int *ow);

/* What a program wants done to every decoded image, in this order:
 * to grey, resize (exactly h x w, or the shorter side to `side`), centre
 * crop, to colour.  Zeros mean "leave as it is". */
struct mea_prep {
	int c;                  /* 1 or 3 channels; 0 keeps the image's own */
	int h, w;               /* resize to exactly h x w */
	int side;               /* or resize so the shorter side is this */
	int crop_h, crop_w;     /* then keep the centred crop_h x crop_w */
};
/* Apply p to im; tmp is scratch (reused between calls, freed by the
 * caller with mea_image_free). */
int mea_image_prepare(struct mea_image *im, struct mea_image *tmp, const struct mea_prep *p,
		struct mea_err *e);
/* Load r's image into im and prepare it; when store is set, put the
 * result back into r in place of the old image. */
int mea_image_prepare_record(struct mea_record *r, struct mea_image *im, struct mea_image *tmp,
		const struct mea_prep *p, int store, struct mea_err *e);
/* The smallest decoded size p can start from without losing detail: the
 * min_h, min_w to pass to mea_image_decode for a fast JPEG decode. */
void mea_prep_min(const struct mea_prep *p, int *min_h, int *min_w);

/* ------------------------------- files of many images (dataset.c) */

/* An IDX file (images [N][H][W], labels [N]) or a CIFAR-10/100 batch
 * (records of a label byte, or coarse and fine label bytes, and 3x32x32
 * pixels), read one image at a time. */
struct mea_imagefile {
	int kind;               /* MEA_KIND_IDX, _CIFAR10 or _CIFAR100 */
	void *img, *lab;        /* gzFile handles (zlib reads plain files too) */
	uint32_t n;             /* images in the file (IDX); 0 when unknown */
	int c, h, w;
	uint64_t next;          /* index of the next image */
	unsigned char *buf;     /* one raw record */
	size_t bufsize;
};

/*
 * Open an IDX image file (gzipped or not) with an optional IDX label file
 * (NULL for none); the counts must agree.  Only unsigned-byte IDX files
 * with 3 dimensions (images) and 1 dimension (labels) are accepted.
 */
int mea_imagefile_open_idx(struct mea_imagefile *ds, const char *images, const char *labels,
		struct mea_err *e);
/* Open a CIFAR-10 (classes 10) or CIFAR-100 (classes 100) binary batch. */
int mea_imagefile_open_cifar(struct mea_imagefile *ds, const char *path, int classes,
		struct mea_err *e);
/* Either of the above by kind (MEA_KIND_IDX, _CIFAR10, _CIFAR100 from
 * mea_file_kind); an IDX file gets the labels file given or, when NULL,
 * the one beside it by the MNIST naming (mea_idx_labels_path), if any. */
int mea_imagefile_open(struct mea_imagefile *ds, const char *path, int kind,
		const char *labels, struct mea_err *e);
/* Decode the next image into im; *label gets its label (or -1 when there
 * is none) and *coarse the CIFAR-100 coarse label (else -1).  Returns 0,
 * MEA_EOF after the last image, or an error naming "image N". */
int mea_imagefile_next(struct mea_imagefile *ds, struct mea_image *im, int *label,
		int *coarse, struct mea_err *e);
void mea_imagefile_close(struct mea_imagefile *ds);

/* The label file that goes with an IDX image file by the MNIST naming
 * ("...images-idx3..." -> "...labels-idx1...", with or without ".gz"),
 * if one exists: copied into out (size n) and 1 returned, else 0. */
int mea_idx_labels_path(const char *images, char *out, size_t n);
/* What path is, from its first bytes (looking through gzip): *kind gets
 * an enum mea_image_kind, MEA_KIND_IDX also for a gzipped IDX file.  A
 * file of no known kind is taken for a CIFAR batch when cifar is 10 or
 * 100, or when cifar is 0 and mea_cifar_guess recognises it.  Fails when
 * path cannot be opened or is a directory. */
int mea_file_kind(const char *path, int cifar, int *kind, struct mea_err *e);
/* 10 or 100 when path looks like a CIFAR binary batch (a name ending in
 * ".bin" and a size that is a whole number of records of exactly one of
 * the two kinds), else 0. */
int mea_cifar_guess(const char *path);

/* ---------------------------------------------- class lists (classes.c) */

#define MEA_MAX_CLASSES 100000

struct mea_classes {
	int n;
	char **name;            /* owned; name[k] is class k */
	int *sorted;            /* indices in name order, for lookups */
};

/* Load a class list: one name per line, no empty names, no '/', no
 * duplicates.  Line k (from 0) is label k. */
int mea_classes_load(struct mea_classes *cl, const char *path, struct mea_err *e);
/* Add a name (a copy) at the end. */
int mea_classes_add(struct mea_classes *cl, const char *name, struct mea_err *e);
/* Sort names bytewise and drop duplicates (for lists built from folders). */
void mea_classes_sort(struct mea_classes *cl);
/* Label of name, or -1. */
int mea_classes_find(const struct mea_classes *cl, const char *name);
/* The label of the image at path: the place of its folder's name (the
 * last component before the file name) in the list.  MEA_E_FORMAT when
 * path has no folder or the folder is not a class. */
int mea_classes_label(const struct mea_classes *cl, const char *path, int *label,
		struct mea_err *e);
void mea_classes_free(struct mea_classes *cl);
/* Add the names of dir's sub-directories (not hidden ones), then sort
 * the list: the ImageFolder convention of torchvision.  A dir that is
 * not a directory (or does not exist) adds nothing. */
int mea_classes_from_dir(struct mea_classes *cl, const char *dir, struct mea_err *e);

/* ------------------------------------------- folder walks (classes.c) */

/* True when name ends in .png, .jpg or .jpeg, in any case. */
int mea_is_image_name(const char *name);
/*
 * Walk dir depth first, each directory's entries in bytewise order of
 * their names, sub-directories walked where they fall, names starting
 * with '.' skipped.  fn(arg, path, NULL) is called for every regular
 * file with an image name (mea_is_image_name); fn(arg, path, err) for a
 * directory that cannot be read or that loops back on itself (the walk
 * goes on past it).  A non-zero return from fn stops the walk and is
 * returned.  Paths are borrowed for the call.  Other failures (out of
 * memory) return an error code with e set.
 */
int mea_dir_walk(const char *dir, int (*fn)(void *arg, const char *path,
		const struct mea_err *err), void *arg, struct mea_err *e);

#endif
