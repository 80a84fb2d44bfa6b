/*
 * decode_mkimg: writes the images the mea-decode tests and benchmark
 * decode, and prints the pixels a decoder must get back from them, as
 * "C H W v v v ..." in CHW order (one line).  The expected values are
 * worked out here from the pattern written, independently of libmea.
 *
 *   png FILE TYPE DEPTH [i]   TYPE grey, greya, rgb, rgba, palette, grey-trns,
 *                             rgb-trns, palette-trns; i = Adam7 interlace
 *   jpeg FILE TYPE            TYPE rgb, progressive, grey, cmyk, cmyk-plain
 *   photo FILE W H SEED       a large colour JPEG (prints nothing)
 *   png-ihdr FILE W H         a PNG that ends after an IHDR claiming W x H
 *   jpeg-sof FILE W H         a JPEG whose frame header claims W x H
 *   cifar FILE N 10|100       a CIFAR batch; prints one line per image
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <jpeglib.h>
#include <zlib.h>

#define PW 11          /* PNG test size: odd, and bigger than an Adam7 block */
#define PH 9

static void
fail(const char *msg)
{
	fprintf(stderr, "decode_mkimg: %s\n", msg);
	exit(2);
}

/* A test tool may simply exit on libpng's errors. */
static void
png_fail(png_structp png, png_const_charp msg)
{
	(void)png;
	fprintf(stderr, "decode_mkimg: libpng: %s\n", msg);
	exit(2);
}

static FILE *
create(const char *path)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		fail("cannot create the output file");
	return f;
}

/* The 8-bit value of a sample, from its position and channel. */
static unsigned
pat(int x, int y, int ch)
{
	return (unsigned)(x * 37 + y * 71 + ch * 101 + 13) % 256;
}

static unsigned
over_white(unsigned v, unsigned a)
{
	/* round((v a + 255 (255 - a)) / 255), done in floating point here */
	double r = (v * (double)a + 255.0 * (255 - a)) / 255.0;
	return (unsigned)(r + 0.5);
}

static void
print_expect(int c, int h, int w, const unsigned *v)
{
	printf("%d %d %d", c, h, w);
	for (int i = 0; i < c * h * w; i++)
		printf(" %u", v[i]);
	putchar('\n');
}

static void
png_write(const char *path, const char *type, int depth, int ilace)
{
	static unsigned exp[3 * PH * PW];
	png_byte row[PW * 8];
	png_color pal[256];
	png_byte trns[256];
	png_color_16 key = { 0 };
	int grey = !strncmp(type, "grey", 4), palette = !strncmp(type, "palette", 7);
	int alpha = !strcmp(type, "greya") || !strcmp(type, "rgba");
	int tr = strstr(type, "trns") != NULL;
	int ctype = palette ? PNG_COLOR_TYPE_PALETTE : grey ? (alpha ? PNG_COLOR_TYPE_GRAY_ALPHA
		: PNG_COLOR_TYPE_GRAY) : alpha ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB;
	int nc = palette ? 1 : (grey ? 1 : 3) + alpha, oc = grey ? 1 : 3;
	unsigned max = (1u << (depth < 16 ? depth : 8)) - 1, ncol = palette ? max + 1 : 0;
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_fail, NULL);
	png_infop info = png_create_info_struct(png);
	FILE *f = create(path);

	for (unsigned i = 0; i < ncol; i++) {
		pal[i] = (png_color){ (png_byte)((i * 53 + 7) % 256), (png_byte)((i * 101 + 3) % 256),
			(png_byte)((i * 29 + 200) % 256) };
		trns[i] = (png_byte)(i % 3 == 0 ? 0 : i % 3 == 1 ? 255 : (i * 97) % 256);
	}
	png_init_io(png, f);
	png_set_IHDR(png, info, PW, PH, depth, ctype, ilace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
			PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	if (palette)
		png_set_PLTE(png, info, pal, (int)ncol);
	if (palette && tr)
		png_set_tRNS(png, info, trns, (int)ncol, NULL);
	/* Colour key: the value of pixel (0, 0), at full depth. */
	if (!palette && tr) {
		unsigned m = depth == 16 ? 257 : 1;
		if (grey)
			key.gray = (png_uint_16)((pat(0, 0, 0) & max) * m);
		else
			key = (png_color_16){ 0, (png_uint_16)(pat(0, 0, 0) * m),
				(png_uint_16)(pat(0, 0, 1) * m), (png_uint_16)(pat(0, 0, 2) * m), 0 };
		png_set_tRNS(png, info, NULL, 0, &key);
	}
	png_write_info(png, info);
	int passes = png_set_interlace_handling(png);
	for (int pass = 0; pass < passes; pass++)
	for (int y = 0; y < PH; y++) {
		memset(row, 0, sizeof row);
		for (int x = 0; x < PW; x++) {
			unsigned a = alpha ? pat(x, y, 3) : 255, s[4];
			/* Samples at the file's depth; out[] at 8 bits. */
			for (int ch = 0; ch < nc; ch++) {
				unsigned v = alpha && ch == nc - 1 ? a : pat(x, y, ch);
				if (palette || (grey && depth < 8))
					v = palette ? (unsigned)(x * 3 + y * 5 + 1) % ncol : v & max;
				s[ch] = v;
				if (depth == 16) {
					/* v * 257 plus a little: rounds back to v */
					unsigned w = v * 257 + (unsigned)(x * 13 + y * 7) % 201 - 100;
					if (v == 0 || v == 255 || tr)
						w = v * 257;
					row[2 * (x * nc + ch)] = (png_byte)(w >> 8);
					row[2 * (x * nc + ch) + 1] = (png_byte)w;
				} else if (depth == 8) {
					row[x * nc + ch] = (png_byte)v;
				} else {
					int bit = (x * nc + ch) * depth;
					row[bit / 8] |= (png_byte)(v << (8 - depth - bit % 8));
				}
			}
			if (pass)
				continue;
			for (int ch = 0; ch < oc; ch++) {
				unsigned v;
				if (palette) {
					png_color p = pal[s[0]];
					v = ch == 0 ? p.red : ch == 1 ? p.green : p.blue;
					if (tr)
						v = over_white(v, trns[s[0]]);
				} else {
					v = grey && depth < 8 ? s[0] * 255 / max : s[ch];
					if (alpha)
						v = over_white(v, a);
					if (tr && x == 0 && y == 0)
						v = 255;
					/* other pixels equal to the key are transparent too */
					if (tr && (x || y) && (grey ? s[0] == (depth < 8 ? (pat(0, 0, 0) & max)
							: pat(0, 0, 0)) : s[0] == pat(0, 0, 0) &&
							s[1] == pat(0, 0, 1) && s[2] == pat(0, 0, 2)))
						v = 255;
				}
				exp[(ch * PH + y) * PW + x] = v;
			}
		}
		png_write_row(png, row);
	}
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	if (fclose(f))
		fail("write error");
	print_expect(oc, PH, PW, exp);
}

/* ------------------------------------------------------------ JPEG */

static void
jpeg_write(const char *path, int w, int h, int comps, J_COLOR_SPACE cs, int progressive,
		int adobe, int quality, unsigned (*px)(int x, int y, int ch, void *), void *arg)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr err;
	unsigned char *row = malloc((size_t)w * (size_t)comps);
	FILE *f = create(path);

	c.err = jpeg_std_error(&err);
	jpeg_create_compress(&c);
	jpeg_stdio_dest(&c, f);
	c.image_width = (JDIMENSION)w;
	c.image_height = (JDIMENSION)h;
	c.input_components = comps;
	c.in_color_space = cs;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, quality, TRUE);
	if (quality == 100)
		for (int i = 0; i < c.num_components; i++)
			c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
	if (progressive)
		jpeg_simple_progression(&c);
	if (cs == JCS_CMYK)
		c.write_Adobe_marker = (boolean)adobe;
	jpeg_start_compress(&c, TRUE);
	for (int y = 0; y < h; y++) {
		for (int x = 0; x < w; x++)
			for (int ch = 0; ch < comps; ch++)
				row[x * comps + ch] = (unsigned char)px(x, y, ch, arg);
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	if (fclose(f))
		fail("write error");
}

/* Four flat 8x8 quadrants, so the DCT keeps them almost exactly. */
static const unsigned quad[4][4] = {
	{ 200, 100, 50, 0 }, { 20, 220, 120, 0 }, { 90, 40, 230, 0 }, { 250, 250, 250, 0 },
};

static unsigned
quad_rgb(int x, int y, int ch, void *arg)
{
	(void)arg;
	return quad[(y / 8) * 2 + x / 8][ch];
}

static unsigned
quad_grey(int x, int y, int ch, void *arg)
{
	(void)arg;
	(void)ch;
	return quad[(y / 8) * 2 + x / 8][0];
}

/* CMYK samples for a quadrant: K = 40 of ink, and C, M, Y chosen so
 * that R = (255 - C)(255 - K) / 255 lands near the quadrant's colour. */
static unsigned
cmyk_ink(int q, int ch)
{
	if (ch == 3)
		return 40;
	return 255 - (unsigned)(quad[q][ch] * 255.0 / 215 + 0.5 > 255 ? 255
		: quad[q][ch] * 255.0 / 215 + 0.5);
}

static unsigned
quad_cmyk(int x, int y, int ch, void *arg)
{
	unsigned ink = cmyk_ink((y / 8) * 2 + x / 8, ch);
	return *(int *)arg ? 255 - ink : ink;    /* Adobe stores inverted */
}

static void
jpeg_test(const char *path, const char *type)
{
	unsigned exp[3 * 16 * 16];
	int grey = !strcmp(type, "grey"), cmyk = !strncmp(type, "cmyk", 4);
	int adobe = !strcmp(type, "cmyk"), oc = grey ? 1 : 3;

	if (cmyk)
		jpeg_write(path, 16, 16, 4, JCS_CMYK, 0, adobe, 100, quad_cmyk, &adobe);
	else if (grey)
		jpeg_write(path, 16, 16, 1, JCS_GRAYSCALE, 0, 0, 100, quad_grey, NULL);
	else
		jpeg_write(path, 16, 16, 3, JCS_RGB, !strcmp(type, "progressive"), 0, 100,
				quad_rgb, NULL);
	for (int ch = 0; ch < oc; ch++)
		for (int y = 0; y < 16; y++)
			for (int x = 0; x < 16; x++) {
				int q = (y / 8) * 2 + x / 8;
				unsigned v = quad[q][ch];
				if (cmyk)
					v = (unsigned)((255 - cmyk_ink(q, ch)) * (255.0 - 40) / 255 + 0.5);
				exp[(ch * 16 + y) * 16 + x] = v;
			}
	print_expect(oc, 16, 16, exp);
}

/* Something like a photograph: smooth shading plus a little noise. */
static unsigned
photo_px(int x, int y, int ch, void *arg)
{
	unsigned *seed = arg;
	*seed = *seed * 1103515245u + 12345u;
	return (unsigned)((x * (ch + 1) / 5 + y * (3 - ch) / 4 + (int)(*seed >> 16) % 24) % 256);
}

/* ------------------------------------------------ hand-made headers */

static void
put32(unsigned char *p, unsigned long v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void
png_ihdr(const char *path, unsigned long w, unsigned long h)
{
	unsigned char b[8 + 25] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
		'I', 'H', 'D', 'R' };
	FILE *f = create(path);

	put32(b + 16, w);
	put32(b + 20, h);
	b[24] = 8;      /* depth */
	b[25] = 2;      /* RGB */
	put32(b + 29, crc32(crc32(0, NULL, 0), b + 12, 17));
	fwrite(b, 1, sizeof b, f);
	if (fclose(f))
		fail("write error");
}

static void
jpeg_sof(const char *path, unsigned w, unsigned h)
{
	unsigned char buf[4096];
	size_t n;
	FILE *f;

	jpeg_write(path, 8, 8, 1, JCS_GRAYSCALE, 0, 0, 90, quad_grey, NULL);
	f = fopen(path, "rb");
	n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	for (size_t i = 0; i + 9 < n; i++)
		if (buf[i] == 0xff && buf[i + 1] == 0xc0) {
			buf[i + 5] = (unsigned char)(h >> 8);
			buf[i + 6] = (unsigned char)h;
			buf[i + 7] = (unsigned char)(w >> 8);
			buf[i + 8] = (unsigned char)w;
			break;
		}
	f = create(path);
	fwrite(buf, 1, n, f);
	if (fclose(f))
		fail("write error");
}

static void
cifar(const char *path, int n, int classes)
{
	FILE *f = create(path);

	for (int i = 0; i < n; i++) {
		int label = classes == 10 ? i % 10 : (i * 7) % 100, coarse = label / 5;
		if (classes == 100)
			fputc(coarse, f);
		fputc(label, f);
		printf("%d %d", label, classes == 100 ? coarse : -1);
		for (int p = 0; p < 3 * 32 * 32; p++) {
			int v = (p * 7 + i * 31) % 256;
			fputc(v, f);
			if (p < 8)
				printf(" %d", v);
		}
		putchar('\n');
	}
	if (fclose(f))
		fail("write error");
}

int
main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "png"))
		png_write(argv[2], argv[3], atoi(argv[4]), argc > 5 && !strcmp(argv[5], "i"));
	else if (argc == 4 && !strcmp(argv[1], "jpeg"))
		jpeg_test(argv[2], argv[3]);
	else if (argc == 6 && !strcmp(argv[1], "photo")) {
		unsigned seed = (unsigned)atoi(argv[5]);
		jpeg_write(argv[2], atoi(argv[3]), atoi(argv[4]), 3, JCS_RGB, 0, 0, 85, photo_px, &seed);
	} else if (argc == 5 && !strcmp(argv[1], "png-ihdr"))
		png_ihdr(argv[2], strtoul(argv[3], NULL, 10), strtoul(argv[4], NULL, 10));
	else if (argc == 5 && !strcmp(argv[1], "jpeg-sof"))
		jpeg_sof(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]));
	else if (argc == 5 && !strcmp(argv[1], "cifar"))
		cifar(argv[2], atoi(argv[3]), atoi(argv[4]));
	else
		fail("usage: see the comment at the top of t/decode_mkimg_test.c");
	return 0;
}
