#!/usr/bin/env bats
# mea-decode: images, folders, IDX and CIFAR files into records.
# Test images come from decode_mkimg_test, which also prints the pixels a
# decoder must get back ("C H W v v ..."); decode_dump_test prints each
# record as "ID LABEL C H W v v ...".

load helper

setup() {
	S=$BATS_TEST_TMPDIR
	IMAGES=$FMNIST/t10k-images-idx3-ubyte.gz
	LABELS=$FMNIST/t10k-labels-idx1-ubyte.gz
	CLASSES=$TOP/share/fashion-mnist.classes
}

# decode FILE: the pixels of its one record, "C H W v v ...".
decode() {
	mea-decode "$@" | decode_dump_test | cut -d' ' -f3-
}

# within TOL A B: same shape, every value of A within TOL of B's.
within() {
	awk -v tol="$1" -v a="$2" -v b="$3" 'BEGIN {
		n = split(a, x, " "); m = split(b, y, " ")
		if (n != m || n < 4) exit 1
		for (i = 1; i <= n; i++) {
			d = x[i] - y[i]; if (d < 0) d = -d
			if ((i <= 3 && d) || d > tol) exit 1
		}
	}'
}

# The first Fashion-MNIST test image, straight from the IDX bytes.
first_image() {
	zcat "$IMAGES" | od -An -v -tu1 -j16 -N784 | tr -s ' \n' '  ' | sed 's/^ *//; s/ *$//'
}

# bad_input PATH REASON: status 1, nothing on stdout, one line naming PATH.
bad_input() {
	run --separate-stderr mea-decode "$1"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "mea-decode: $1: "$2 ]]
}

@test "mea-decode: --help and --version print on stdout and exit 0" {
	run --separate-stderr mea-decode --help
	[ "$status" -eq 0 ]
	[[ $output == "usage: mea-decode "* ]]
	[[ $output == *"--classes-from-dirs"* ]]
	[ -z "$stderr" ]
	run --separate-stderr mea-decode -V
	[ "$status" -eq 0 ]
	[ "$output" = "mea-decode 0.1.0" ]
}

@test "mea-decode: a bad option or value is a usage error (2) with empty stdout" {
	for args in "--size 0" "--size 28x" "--channels 2" "--cifar 50" "--limit -1" \
			"--size 28 --resize 32" "--text --export $S/x" "--bogus"; do
		run --separate-stderr mea-decode $args "$S/none.png"
		[ "$status" -eq 2 ]
		[ -z "$output" ]
		[[ $stderr == "mea-decode: "* ]]
	done
	run --separate-stderr mea-decode --channels 2 x.png
	[[ $stderr == *"--channels"* ]]
}

@test "mea-decode: grey PNGs of every bit depth, plain and interlaced, decode exactly" {
	for depth in 1 2 4 8 16; do
		for il in "" i; do
			want=$(decode_mkimg_test png "$S/g$depth$il.png" grey $depth $il)
			[ "$(decode "$S/g$depth$il.png")" = "$want" ]
		done
	done
	# Two rows worked out by hand: sample (x, 0) is 37x + 13 mod 256.
	[[ $(decode "$S/g8.png") == "1 9 11 13 50 87 124 161 198 235 16 53 90 127 "* ]]
	[[ $(decode "$S/g1i.png") == "1 9 11 255 0 255 0 255 0 255 0 255 0 255 "* ]]
}

@test "mea-decode: RGB, RGBA and grey+alpha PNGs (8 and 16 bits) have alpha composited over white" {
	for type in rgb rgba greya; do
		for depth in 8 16; do
			for il in "" i; do
				f=$S/$type$depth$il.png
				want=$(decode_mkimg_test png "$f" $type $depth $il)
				[ "$(decode "$f")" = "$want" ]
			done
		done
	done
	# Pixel (0, 0) is (13, 114, 215) at alpha 60: round((v*60 + 255*195) / 255).
	run bash -c "mea-decode '$S/rgba8.png' | decode_dump_test | cut -d' ' -f6,105,204"
	[ "$output" = "198 222 246" ]
}

@test "mea-decode: palette PNGs of every depth, with and without tRNS, and colour keys decode exactly" {
	for depth in 1 2 4 8; do
		for type in palette palette-trns; do
			want=$(decode_mkimg_test png "$S/p.png" $type $depth)
			[ "$(decode "$S/p.png")" = "$want" ]
			want=$(decode_mkimg_test png "$S/p.png" $type $depth i)
			[ "$(decode "$S/p.png")" = "$want" ]
		done
	done
	for depth in 1 2 4 8 16; do
		want=$(decode_mkimg_test png "$S/k.png" grey-trns $depth)
		[ "$(decode "$S/k.png")" = "$want" ]
	done
	for depth in 8 16; do
		want=$(decode_mkimg_test png "$S/k.png" rgb-trns $depth)
		[ "$(decode "$S/k.png")" = "$want" ]
	done
}

@test "mea-decode: baseline, progressive, grey and CMYK JPEGs decode to their colours" {
	for type in rgb progressive grey cmyk cmyk-plain; do
		want=$(decode_mkimg_test jpeg "$S/$type.jpg" $type)
		got=$(decode "$S/$type.jpg")
		within 3 "$want" "$got"
	done
	# The top-left quadrant is (200, 100, 50); the grey file has 1 channel.
	run bash -c "mea-decode '$S/rgb.jpg' | decode_dump_test | cut -d' ' -f3-6"
	[ "$output" = "3 16 16 200" ]
	run bash -c "mea-decode '$S/grey.jpg' | decode_dump_test | cut -d' ' -f3-5"
	[ "$output" = "1 16 16" ]
}

@test "mea-decode: the first Fashion-MNIST test image is an ankle boot (9) with the file's bytes" {
	[ "$(zcat "$LABELS" | od -An -tu1 -j8 -N1 | tr -d ' ')" = 9 ]
	want=$(first_image)
	run --separate-stderr bash -c "set -o pipefail; mea-decode --limit 1 '$IMAGES' | decode_dump_test"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "$output" = "$IMAGES:0 9 1 28 28 $want" ]
}

@test "mea-decode: the Fashion-MNIST test set is 10,000 records, 1,000 of each class" {
	run --separate-stderr bash -c "set -o pipefail; mea-decode '$IMAGES' | decode_dump_test |
		cut -d' ' -f2 | sort -n | uniq -c | awk '\$1 == 1000' | wc -l"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "$output" -eq 10 ]
	run bash -c "set -o pipefail; mea-decode --text '$IMAGES' | grep -c '^record '"
	[ "$output" -eq 10000 ]
}

@test "mea-decode: --text shows the fields and the image shape" {
	run --separate-stderr mea-decode --text --limit 2 "$IMAGES"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "record 0" ]
	[[ $output == *"id           \"$IMAGES:0\""* ]]
	[[ $output == *"seq          1"* ]]
	[[ $output == *"label        9"* ]]
	[[ $output == *"image        u8 [1,28,28] 0 0"* ]]
	[ "$(grep -c '^record ' <<< "$output")" -eq 2 ]
}

@test "mea-decode: halving by area averaging is the rounded mean of each 2x2 block" {
	want=$(first_image | awk '{ for (i = 1; i <= NF; i++) v[i - 1] = $i
		for (y = 0; y < 14; y++) for (x = 0; x < 14; x++) {
			p = 56 * y + 2 * x; s = v[p] + v[p + 1] + v[p + 28] + v[p + 29]
			printf "%s%d", y || x ? " " : "", int(s / 4 + 0.5) } }')
	[ "$(decode --limit 1 --size 14 "$IMAGES")" = "1 14 14 $want" ]
}

# The reference resize: each axis area-averaged when it shrinks, bilinear
# (half-pixel centres, clamped) when it grows.
resize_ref() {
	awk -v H="$1" -v W="$2" '
	function axis(n, m, a,    j, i, x0, x1, lo, hi, x, i0) {
		for (j = 0; j < m; j++) {
			for (i = 0; i < n; i++) wt[a, j, i] = 0
			if (m < n) {
				x0 = j * n; x1 = x0 + n
				for (i = 0; i < n; i++) {
					lo = i * m; hi = lo + m
					if (lo < x0) lo = x0; if (hi > x1) hi = x1
					if (hi > lo) wt[a, j, i] = (hi - lo) / n
				}
			} else {
				x = (j + 0.5) * n / m - 0.5; if (x < 0) x = 0
				i0 = int(x); if (i0 >= n - 1) { wt[a, j, n - 1] = 1; continue }
				wt[a, j, i0] = 1 - (x - i0); wt[a, j, i0 + 1] = x - i0
			}
		}
	}
	{ for (i = 1; i <= NF; i++) v[i - 1] = $i }
	END {
		axis(28, H, "y"); axis(28, W, "x")
		for (y = 0; y < H; y++) for (x = 0; x < W; x++) {
			s = 0
			for (r = 0; r < 28; r++) if (wt["y", y, r]) for (c = 0; c < 28; c++)
				s += wt["y", y, r] * wt["x", x, c] * v[28 * r + c]
			printf "%s%d", y || x ? " " : "", int(s + 0.5)
		}
	}'
}

@test "mea-decode: resizing matches a plain-loop area-average and bilinear reference" {
	for size in 10x10 9x17 40x33 13x56 56x13; do
		h=${size%x*} w=${size#*x}
		want=$(first_image | resize_ref $h $w)
		got=$(decode --limit 1 --size $size "$IMAGES")
		within 1 "1 $h $w $want" "$got"
	done
}

@test "mea-decode: --resize N --crop HxW scales the shorter side to N, then keeps the centre" {
	want=$(decode_mkimg_test png "$S/rgb.png" rgb 8)
	# 9x11 cropped to 3x5: rows 3..5, columns 3..7 of each plane.
	crop=$(awk '{ for (c = 0; c < 3; c++) for (y = 3; y < 6; y++) for (x = 3; x < 8; x++)
		printf " %s", $(4 + c * 99 + y * 11 + x) }' <<< "$want")
	[ "$(decode --crop 3x5 "$S/rgb.png")" = "3 3 5$crop" ]
	# 9x11 with the shorter side to 18 is 18x22 (22 = 11 * 18 / 9).
	[[ $(decode --resize 18 "$S/rgb.png") == "3 18 22 "* ]]
	[[ $(decode --resize 18 --crop 16 "$S/rgb.png") == "3 16 16 "* ]]
	decode_mkimg_test photo "$S/photo.jpg" 640 480 7
	[[ $(decode -r 256 -C 224 "$S/photo.jpg") == "3 224 224 "* ]]
	[[ $(decode --fast -r 256 -C 224 "$S/photo.jpg") == "3 224 224 "* ]]
	run --separate-stderr mea-decode --crop 10 "$S/rgb.png"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[[ $stderr == "mea-decode: $S/rgb.png: image of 9x11 is smaller than the 10x10 crop" ]]
}

@test "mea-decode: --fast decodes a large JPEG to nearly the same 224x224 image" {
	decode_mkimg_test photo "$S/photo.jpg" 1024 768 3
	decode --size 224 "$S/photo.jpg" | tr ' ' '\n' > "$S/slow"
	decode --fast --size 224 "$S/photo.jpg" | tr ' ' '\n' > "$S/fast"
	[ "$(head -3 "$S/fast" | tr '\n' ' ')" = "3 224 224 " ]
	[ "$(wc -l < "$S/fast")" -eq $((3 + 3 * 224 * 224)) ]
	# Mean absolute difference below 2 grey levels.
	paste "$S/slow" "$S/fast" | awk '{ d = $1 - $2; s += d < 0 ? -d : d } END { exit !(s / NR < 2) }'
}

@test "mea-decode: --channels 1 is 0.299 R + 0.587 G + 0.114 B; --channels 3 repeats grey" {
	want=$(decode_mkimg_test png "$S/rgb.png" rgb 8)
	grey=$(awk '{ for (i = 0; i < 99; i++)
		printf " %d", int((299 * $(4 + i) + 587 * $(103 + i) + 114 * $(202 + i)) / 1000 + 0.5) }' <<< "$want")
	[ "$(decode --channels 1 "$S/rgb.png")" = "1 9 11$grey" ]
	g=$(decode_mkimg_test png "$S/g.png" grey 8)
	plane=${g#1 9 11 }
	[ "$(decode --channels 3 "$S/g.png")" = "3 9 11 $plane $plane $plane" ]
}

@test "mea-decode: a folder is walked depth first in byte order, skipping hidden and other files" {
	d=$S/tree
	mkdir -p "$d/b" "$d/a/sub" "$d/.hidden"
	for f in b/z.png a/sub/m.png a/B.png a/a.PNG a.png .x.png .hidden/y.png; do
		decode_mkimg_test png "$d/$f" grey 8 > /dev/null
	done
	decode_mkimg_test jpeg "$d/b/a.jpg" grey > /dev/null
	echo notes > "$d/notes.txt"
	run --separate-stderr bash -c "set -o pipefail; mea-decode '$d' | decode_dump_test | cut -d' ' -f1"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "$output" = "$(printf '%s\n' "$d/a/B.png" "$d/a/a.PNG" "$d/a/sub/m.png" "$d/a.png" \
		"$d/b/a.jpg" "$d/b/z.png")" ]
}

@test "mea-decode: with no arguments, the paths come from stdin in their order" {
	decode_mkimg_test png "$S/x.png" grey 4 > /dev/null
	decode_mkimg_test jpeg "$S/y.jpg" rgb > /dev/null
	run --separate-stderr bash -c "set -o pipefail; printf '%s\n' '$S/y.jpg' '' '$S/x.png' |
		mea-decode | decode_dump_test | cut -d' ' -f1-5"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "$output" = "$(printf '%s\n' "$S/y.jpg - 3 16 16" "$S/x.png - 1 9 11")" ]
}

@test "mea-decode: --classes labels each image by its folder; an unknown folder is a bad input" {
	mkdir -p "$S/f/Bag" "$S/f/Trouser" "$S/f/Cat"
	for f in Bag/1.png Trouser/2.png Cat/3.png; do
		decode_mkimg_test png "$S/f/$f" grey 8 > /dev/null
	done
	run --separate-stderr bash -c "mea-decode --classes '$CLASSES' '$S/f' | decode_dump_test | cut -d' ' -f1,2"
	[ "$output" = "$(printf '%s\n' "$S/f/Bag/1.png 8" "$S/f/Trouser/2.png 1")" ]
	[ "$stderr" = "mea-decode: $S/f/Cat/3.png: folder 'Cat' is not in the class list" ]
	run --separate-stderr bash -c "mea-decode --classes-from-dirs '$S/f' | decode_dump_test | cut -d' ' -f1,2"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf '%s\n' "$S/f/Bag/1.png 0" "$S/f/Cat/3.png 1" "$S/f/Trouser/2.png 2")" ]
	printf 'Bag\nBag\n' > "$S/dup.classes"
	run --separate-stderr mea-decode --classes "$S/dup.classes" "$S/f"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[ "$stderr" = "mea-decode: $S/dup.classes: line 2: class 'Bag' is also on line 1" ]
}

@test "mea-decode: --export writes a PNG per image in a folder per class that decodes back" {
	run --separate-stderr mea-decode --limit 60 --classes "$CLASSES" --export "$S/ex" "$IMAGES"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ -z "$stderr" ]
	[ -f "$S/ex/Ankle_boot/00000.png" ]
	[ "$(find "$S/ex" -name '*.png' | wc -l)" -eq 60 ]
	[ "$(ls "$S/ex" | wc -l)" -eq 10 ]
	a=$(mea-decode -n 60 "$IMAGES" | decode_dump_test | cut -d' ' -f2- | sort)
	b=$(mea-decode -L "$CLASSES" "$S/ex" | decode_dump_test | cut -d' ' -f2- | sort)
	[ "$a" = "$b" ]
	# The file name is the record's seq: record 0 is Ankle_boot/00000.png.
	[ "$(mea-decode -n 1 "$IMAGES" | decode_dump_test | cut -d' ' -f2-)" = \
		"$(mea-decode -L "$CLASSES" "$S/ex/Ankle_boot/00000.png" | decode_dump_test | cut -d' ' -f2-)" ]
}

@test "mea-decode: CIFAR-10 and CIFAR-100 batches give labels, coarse labels and CHW pixels" {
	want=$(decode_mkimg_test cifar "$S/data_batch_1.bin" 5 10)
	run --separate-stderr bash -c "set -o pipefail; mea-decode '$S/data_batch_1.bin' | decode_dump_test |
		awk '{ printf \"%s %s %s %s\", \$1, \$3, \$4, \$5; for (i = 6; i < 14; i++) printf \" %s\", \$i; print \"\" }'"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 5 ]
	[ "${lines[3]}" = "$S/data_batch_1.bin:3 3 32 32 $(sed -n 4p <<< "$want" | cut -d' ' -f3-)" ]
	decode_mkimg_test cifar "$S/train" 4 100 > /dev/null
	run --separate-stderr mea-decode --text --cifar 100 "$S/train"
	[ "$status" -eq 0 ]
	[[ $output == *"label        21"*"coarse       4"*"image        u8 [3,32,32]"* ]]
	[ "$(grep -c '^record ' <<< "$output")" -eq 4 ]
}

@test "mea-decode: a truncated dataset keeps its whole records and names the image that was cut" {
	decode_mkimg_test cifar "$S/test_batch.bin" 3 10 > /dev/null
	head -c 8000 "$S/test_batch.bin" > "$S/cut"
	run --separate-stderr bash -c "mea-decode --cifar 10 '$S/cut' | decode_dump_test | cut -d' ' -f1"
	[ "$output" = "$(printf '%s\n' "$S/cut:0" "$S/cut:1")" ]
	[ "$stderr" = "mea-decode: $S/cut: image 2: truncated (1854 of 3073 bytes)" ]
	zcat "$IMAGES" | head -c $((16 + 3 * 784 + 100)) > "$S/cut-images-idx3-ubyte"
	run --separate-stderr bash -c "set -o pipefail; mea-decode '$S/cut-images-idx3-ubyte' | decode_dump_test | wc -l"
	[ "$status" -eq 1 ]
	[ "$output" -eq 3 ]
	[ "$stderr" = "mea-decode: $S/cut-images-idx3-ubyte: image 3: truncated (100 of 784 bytes)" ]
}

@test "mea-decode: --labels must match the image count" {
	printf '\0\0\10\1\0\0\0\5\1\2\3\4\5' > "$S/five"
	run --separate-stderr mea-decode --labels "$S/five" "$IMAGES"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[ "$stderr" = "mea-decode: $IMAGES: labels $S/five: 5 labels for 10000 images" ]
	run --separate-stderr bash -c "mea-decode --labels '$LABELS' --limit 2 '$IMAGES' | decode_dump_test | cut -d' ' -f2"
	[ "$output" = "$(printf '9\n2')" ]
}

@test "mea-decode: a truncated PNG is one line on stderr and no record" {
	decode_mkimg_test png "$S/full.png" rgb 8 > /dev/null
	head -c $(($(stat -c %s "$S/full.png") / 2)) "$S/full.png" > "$S/cut.png"
	bad_input "$S/cut.png" "PNG: file is truncated"
}

@test "mea-decode: a truncated or corrupt JPEG is refused, not patched with grey" {
	decode_mkimg_test jpeg "$S/full.jpg" rgb > /dev/null
	head -c $(($(stat -c %s "$S/full.jpg") - 100)) "$S/full.jpg" > "$S/cut.jpg"
	bad_input "$S/cut.jpg" "JPEG: Premature end of JPEG file"
	cp "$S/full.jpg" "$S/bad.jpg"
	printf '\377\022\377\022\377\022\377\022' | dd of="$S/bad.jpg" bs=1 seek=400 conv=notrunc 2>/dev/null
	bad_input "$S/bad.jpg" "JPEG: "*
}

@test "mea-decode: an empty file, a text file and a missing file are bad inputs" {
	: > "$S/empty.png"
	bad_input "$S/empty.png" "empty file"
	echo "not an image" > "$S/notes.png"
	bad_input "$S/notes.png" "not a PNG or JPEG image"
	bad_input "$S/missing.png" "No such file or directory"
}

@test "mea-decode: a folder where stdin should list files is a bad input" {
	mkdir "$S/photos"
	run --separate-stderr bash -c "echo '$S/photos' | mea-decode"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[ "$stderr" = "mea-decode: $S/photos: is a directory" ]
}

@test "mea-decode: absurd declared sizes are refused before anything is allocated" {
	decode_mkimg_test png-ihdr "$S/wide.png" 100000 100000
	bad_input "$S/wide.png" "image is 100000x100000 (sides of at most 16384)"
	decode_mkimg_test png-ihdr "$S/many.png" 16000 16000
	bad_input "$S/many.png" "image is 16000x16000 (at most 50331648 pixels)"
	decode_mkimg_test jpeg-sof "$S/wide.jpg" 60000 60000
	bad_input "$S/wide.jpg" "image is 60000x60000 (sides of at most 16384)"
}

@test "mea-decode: bad inputs are skipped and the rest decoded; the status is 1 at the end" {
	decode_mkimg_test png "$S/good.png" grey 8 > /dev/null
	echo text > "$S/bad.png"
	run --separate-stderr bash -c "mea-decode '$S/good.png' '$S/bad.png' '$S/good.png' | decode_dump_test | cut -d' ' -f1"
	[ "$output" = "$(printf '%s\n' "$S/good.png" "$S/good.png")" ]
	[ "$stderr" = "mea-decode: $S/bad.png: not a PNG or JPEG image" ]
	run --separate-stderr mea-decode "$S/good.png" "$S/bad.png" "$S/good.png"
	[ "$status" -eq 1 ]
}

@test "mea-decode: --strict stops at the first bad input" {
	decode_mkimg_test png "$S/good.png" grey 8 > /dev/null
	echo text > "$S/bad.png"
	run --separate-stderr mea-decode --strict "$S/bad.png" "$S/good.png"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[ "$stderr" = "mea-decode: $S/bad.png: not a PNG or JPEG image" ]
}

@test "mea-decode: a mea stream passes through unchanged, from a file or from stdin" {
	decode_mkimg_test png "$S/a.png" rgba 8 > /dev/null
	mea-decode "$S/a.png" "$S/a.png" > "$S/a.mea"
	mea-decode "$S/a.mea" > "$S/b.mea"
	cmp "$S/a.mea" "$S/b.mea"
	mea-decode - < "$S/a.mea" > "$S/c.mea"
	cmp "$S/a.mea" "$S/c.mea"
	run --separate-stderr mea-decode --text "$S/a.mea"
	[ "$status" -eq 0 ]
	[[ $output == "record 0"*"image        u8 [3,9,11]"*"record 1"* ]]
	# Options apply to the images of a stream too.
	[[ $(decode --channels 1 --size 3 "$S/a.mea" | head -1) == "1 3 3 "* ]]
	head -c $(($(stat -c %s "$S/a.mea") / 2 + 50)) "$S/a.mea" > "$S/cut.mea"
	run --separate-stderr bash -c "mea-decode '$S/cut.mea' | decode_dump_test | wc -l"
	[ "$output" -eq 1 ]
	[[ $stderr == "mea-decode: $S/cut.mea: record 1: truncated"* ]]
}

@test "mea-decode: a full disk is an I/O error (4)" {
	decode_mkimg_test png "$S/a.png" grey 8 > /dev/null
	run --separate-stderr bash -c "mea-decode '$S/a.png' > /dev/full"
	[ "$status" -eq 4 ]
	[ "$stderr" = "mea-decode: stdout: No space left on device" ]
	run --separate-stderr bash -c "mea-decode --text '$S/a.png' > /dev/full"
	[ "$status" -eq 4 ]
	[ "$stderr" = "mea-decode: stdout: No space left on device" ]
}
