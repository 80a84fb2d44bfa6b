#!/bin/sh
# bench-decode: images per second through mea-decode, one core:
#   the 10,000 Fashion-MNIST test images from the gzipped IDX file,
#   the same images as 10,000 PNG files (exported first, also timed),
#   large colour JPEGs (1024x768) resized to 224x224, plainly, with the
#   ImageNet resize-and-crop, and with --fast (DCT scaling in libjpeg).
# Each figure is the best of RUNS runs.  After `make`:
#   sh share/bench-decode.sh            (RUNS=3 NJPEG=200 by default)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
PATH=$top/bin:$top/build/t:$PATH
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
RUNS=${RUNS:-3}
NJPEG=${NJPEG:-200}
idx=$FMNIST/t10k-images-idx3-ubyte.gz

for f in "$top/bin/mea-decode" "$top/build/t/decode_mkimg_test" "$idx"; do
	[ -e "$f" ] || { echo "bench-decode: $f: missing (run make; install the dataset)" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

now() { date +%s.%N; }

# bench NAME COUNT command...: the best wall time of RUNS runs.
bench() {
	name=$1 count=$2
	shift 2
	best=
	i=0
	while [ $i -lt "$RUNS" ]; do
		t0=$(now)
		"$@" > /dev/null
		t1=$(now)
		best=$(awk -v a="$t0" -v b="$t1" -v best="$best" \
			'BEGIN { t = b - a; print (best == "" || t < best) ? t : best }')
		i=$((i + 1))
	done
	awk -v n="$count" -v t="$best" -v name="$name" \
		'BEGIN { printf "%-40s %6d images %8.3f s %9.0f images/s\n", name, n, t, n / t }'
}

echo "mea-decode $(mea-decode --version | cut -d' ' -f2) on $(grep -m1 'model name' /proc/cpuinfo |
	cut -d: -f2 | sed 's/^ *//') ($(nproc) cores; one used)"

bench "IDX (gzip), 28x28 grey" 10000 mea-decode "$idx"
bench "IDX (gzip), 28x28 -> 224x224 RGB" 10000 mea-decode -s 224 -c 3 "$idx"

export_png() {
	rm -rf "$tmp/png"
	mea-decode -L "$top/share/fashion-mnist.classes" -e "$tmp/png" "$idx"
}
bench "export to PNG files (--export)" 10000 export_png
bench "PNG files, 28x28 grey" 10000 mea-decode "$tmp/png"

mkdir "$tmp/jpg"
i=0
while [ $i -lt "$NJPEG" ]; do
	decode_mkimg_test photo "$tmp/jpg/$(printf %04d $i).jpg" 1024 768 $i
	i=$((i + 1))
done
echo "($NJPEG JPEGs of 1024x768, quality 85, $(du -sk "$tmp/jpg" | cut -f1) KiB)"
bench "JPEG 1024x768, native size" "$NJPEG" mea-decode "$tmp/jpg"
bench "JPEG 1024x768 -> 224x224 (--size)" "$NJPEG" mea-decode -s 224 "$tmp/jpg"
bench "JPEG 1024x768 -> -r 256 -C 224" "$NJPEG" mea-decode -r 256 -C 224 "$tmp/jpg"
bench "JPEG 1024x768 -> 224x224 --fast" "$NJPEG" mea-decode -F -s 224 "$tmp/jpg"
bench "JPEG 1024x768 -> -r 256 -C 224 --fast" "$NJPEG" mea-decode -F -r 256 -C 224 "$tmp/jpg"
