#!/bin/sh
# bench.sh: how fast mea runs on this machine (make bench; not a test).
#
# Every speed is also given as a ratio to the single-thread SGEMM rate
# measured in the same run, so that figures from a busy or a different
# machine can be compared.  FLOPs count a multiply-add as 2; the MACs of
# a model are the ones `mea-train --init -v` prints.
#
#   1. OpenBLAS: the kernel in use and SGEMM GFLOP/s at 1024^3, one thread
#      (t/bench_sgemm_test, which also times single convolution layers):
#      sustained, the best of three 1-second windows of back-to-back
#      products, and the peak of a single product.  The ratios below are
#      to the sustained rate: the programs run for seconds, and on this
#      shared machine a second of SGEMM runs a third below its best 15 ms
#      (t/bench_sgemm_test.c).  The peak is printed beside it.
#   2. mea-main, the real program, reading records through a pipe:
#      ResNet-20 at 1x28x28 (10 classes) and 3x32x32 (100 classes),
#      MobileNetV2 at 3x224x224 (1000 classes), each at --batch 1 and 64,
#      on Fashion-MNIST test images (resized for the colour inputs), with
#      random weights (speed does not depend on them).  images/s from the
#      wall time of the best of RUNS runs, and also from the CPU time
#      (user + system) of that run, which stays meaningful when other jobs
#      share the cores; peak resident memory from /usr/bin/time.  Five
#      runs, and 256 MobileNetV2 images (about 2.5 s a run): with three
#      runs of 128, one busy spell on this shared machine could set a
#      row's figure.
#      2b. MobileNetV2's time by kind of layer, from mea-main --profile.
#   3. Training: steps of ResNet-20 at 1x28x28, batch 128, on random data
#      (t/bench_train_test: the step lib/trainer.c does, through mea_plan),
#      by row shifts (mea-train's default) and by im2col (--no-row-shift).
#      A training step counts 3x the forward MACs (forward, then the input
#      and weight gradients of backward).  Then mea-train itself on NTRAIN
#      (1920) real images with one thread and with two (data-parallel).
#   4. share/bench-decode.sh and share/bench-offload.sh.
# Then a table, and the commands that reproduce each figure.
#
#   sh share/bench.sh      RUNS=5 N28=4096 N32=4096 N224=256 STEPS=10
#
# make bench runs it with OPENBLAS_CORETYPE=SkylakeX where the CPU has
# AVX-512 (this OpenBLAS does not recognise such CPUs and would otherwise
# use its Prescott (SSE3) code), and with OpenBLAS's own choice elsewhere
# (share/blas-core.sh).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
PATH=$top/bin:$top/build/t:$PATH
export PATH
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
RUNS=${RUNS:-5}
N28=${N28:-4096}
N32=${N32:-4096}
N224=${N224:-256}
STEPS=${STEPS:-10}
idx=$FMNIST/t10k-images-idx3-ubyte.gz

for f in bin/mea-main bin/mea-decode bin/mea-train build/t/bench_sgemm_test \
		build/t/bench_train_test; do
	[ -x "$top/$f" ] || { echo "bench: $f: not built (run make)" >&2; exit 4; }
done
[ -e "$idx" ] || { echo "bench: $idx: missing (make deps)" >&2; exit 4; }
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time: not installed" >&2; exit 4; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mea-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

echo "mea bench on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" \
	"($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}, one OpenBLAS thread everywhere"
echo

# ------------------------------------------------------------ 1. SGEMM

echo "== 1. OpenBLAS, SGEMM and single convolution layers"
echo "+ bench_sgemm_test"
bench_sgemm_test | tee "$tmp/sgemm"
sgemm1=$(awk '/^sgemm/ { print $3 }' "$tmp/sgemm")
echo

# ----------------------------------------------------------- 2. mea-main

echo "== 2. mea-main through a pipe (best of $RUNS runs)"
echo "(the + lines repeat a figure when run in one directory, with"
echo " PATH=$top/bin:$top/build/t:\$PATH OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-})"
# model NAME ARCH SHAPE CLASSES: a random model, its MACs per image and
# the name the table gives it
model() {
	echo "+ mea-train --init -a $2 -i $3 -k $4 -s 1 -o $1.mea-model -v"
	mea-train --init -a "$2" -i "$3" -k "$4" -s 1 -o "$tmp/$1.mea-model" -v 2> "$tmp/$1.info"
	awk '/^block main/ { print $3 }' "$tmp/$1.info" > "$tmp/$1.macs"
	echo "$2 $3 k$4" > "$tmp/$1.what"
}
model r20-28 resnet20 1x28x28 10
model r20-32 resnet20 3x32x32 100
model mnv2 mobilenetv2 3x224x224 1000
echo "+ mea-decode -n $N28 $idx > r28.mea"
mea-decode -n "$N28" "$idx" > "$tmp/r28.mea"
echo "+ mea-decode -n $N32 -s 32 -c 3 $idx > r32.mea"
mea-decode -n "$N32" -s 32 -c 3 "$idx" > "$tmp/r32.mea"
echo "+ mea-decode -n $N224 -s 224 -c 3 $idx > r224.mea"
mea-decode -n "$N224" -s 224 -c 3 "$idx" > "$tmp/r224.mea"

# main NAME RECORDS COUNT BATCH: one row of the table (the run with the
# shortest wall time; the largest peak RSS of all runs)
main() {
	name=$1 rec=$2 count=$3 batch=$4
	echo "+ cat $rec.mea | /usr/bin/time -f '%e %U %S %M' mea-main -m $name.mea-model -b $batch > /dev/null"
	i=0
	while [ "$i" -lt "$RUNS" ]; do
		cat "$tmp/$rec.mea" | /usr/bin/time -f '%e %U %S %M' -o "$tmp/time" \
			mea-main -m "$tmp/$name.mea-model" -b "$batch" > /dev/null
		tail -n 1 "$tmp/time"
		i=$((i + 1))
	done > "$tmp/runs"
	sed 's/^/    wall, user, system s, peak KiB: /' "$tmp/runs"
	awk -v what="mea-main $(cat "$tmp/$name.what")" -v batch="$batch" -v n="$count" \
		-v macs="$(cat "$tmp/$name.macs")" '
		NR == 1 || $1 < wall { wall = $1; cpu = $2 + $3 }
		$4 > rss { rss = $4 }
		END { printf "%s|%d|%.6f|%.6f|%.6f|%d\n", what, batch, n / wall, n / cpu, macs, rss }
		' "$tmp/runs" >> "$tmp/rows"
}
main r20-28 r28 "$N28" 1
main r20-28 r28 "$N28" 64
main r20-32 r32 "$N32" 1
main r20-32 r32 "$N32" 64
main mnv2 r224 "$N224" 1
main mnv2 r224 "$N224" 64
echo

# Where the time goes, by kind of layer (mea-main --profile's table, the
# op column cut to its kernel: "conv 1x1", "dwconv 3x3", ...).
echo "== 2b. MobileNetV2 at batch 64 by kind of layer (mea-main --profile)"
echo "+ mea-main -m mnv2.mea-model -b 64 --profile < r224.mea 2> profile > /dev/null"
mea-main -m "$tmp/mnv2.mea-model" -b 64 --profile < "$tmp/r224.mea" 2> "$tmp/profile" > /dev/null
awk '
	NR > 2 && $1 != "total" {
		kind = $3 ($3 ~ /conv$/ ? " " $4 : "")
		if (!(kind in n)) { k++; order[k] = kind }
		n[kind]++
		ms[kind] += $(NF - 2); mac[kind] += $(NF - 3); all += $(NF - 2)
	}
	/^mea-main: profile/ { imgs = $5 }
	END {
		printf "    %-12s %6s %10s %7s %8s\n", "kind", "steps", "ms", "share", "GFLOP/s"
		for (i = 1; i <= k; i++) {
			c = order[i]
			gf = ms[c] > 0 ? 2 * mac[c] * 1e6 * imgs / (ms[c] * 1e-3) * 1e-9 : 0
			printf "    %-12s %6d %10.1f %6.1f%% %8.1f\n", c, n[c], ms[c], 100 * ms[c] / all, gf
		}
	}
' "$tmp/profile"
echo

# ----------------------------------------------------------- 3. training

echo "== 3. Training steps through mea_plan, random data"
# Both lowerings of the stride-1 convolutions: the row shift (-r), which
# mea-train takes by default, and im2col (mea-train --no-row-shift, which
# trained the shipped weights).  The target row is the default's.
for low in rowshift im2col; do
	flag=; [ "$low" = im2col ] || flag=-r
	echo "+ /usr/bin/time -f '%M' bench_train_test $flag resnet20 1x28x28 10 128 $STEPS"
	/usr/bin/time -f '%M' -o "$tmp/time" bench_train_test $flag resnet20 1x28x28 10 128 \
		"$STEPS" | tee "$tmp/train"
	echo "    peak KiB: $(tail -n 1 "$tmp/time")"
	# "... best B images/s G GFLOP/s, ... (CPU time: best C GFLOP/s ..." -> a
	# row like main's (CPU-time images/s from C/G, forward MACs from G = 6 MACs B).
	awk -v rss="$(tail -n 1 "$tmp/time")" -v low="$low" '/^train/ {
			for (i = 1; i <= NF; i++) {
				if ($i == "best" && $(i + 2) == "images/s") { ips = $(i + 1); gf = $(i + 3) }
				if ($i == "time:" && $(i + 1) == "best") cgf = $(i + 2)
			}
			printf "training resnet20 1x28x28 %s|128|%.6f|%.6f|%.6f|%d\n",
				low, ips, ips * cgf / gf, gf * 1e9 / ips / 6, rss
		}' "$tmp/train" >> "$tmp/rows"
done
echo

# mea-train itself on both cores: data-parallel threads (-t 2) against one,
# an epoch of NTRAIN real images (the time includes reading them and the
# held-out evaluation of 1%, the same in both).
NTRAIN=${NTRAIN:-1920}
echo "== 3b. mea-train -j full, ResNet-20 1x28x28, $NTRAIN images, 1 and 2 threads"
echo "+ mea-decode -n $NTRAIN train-images-idx3-ubyte.gz > train.mea"
mea-decode -n "$NTRAIN" "$FMNIST/train-images-idx3-ubyte.gz" > "$tmp/train.mea"
mea-train --init -a resnet20 -i 1x28x28 -k 10 -s 1 -o "$tmp/t.mea-model"
for t in 1 2; do
	echo "+ mea-train -j full -m t.mea-model -o out.mea-model -e 1 -f 0.01 -q -t $t < train.mea"
	/usr/bin/time -f '%e' -o "$tmp/time.$t" \
		mea-train -j full -m "$tmp/t.mea-model" -o "$tmp/out.mea-model" -e 1 -f 0.01 -q \
		-t "$t" < "$tmp/train.mea"
done
awk -v a="$(tail -n 1 "$tmp/time.1")" -v b="$(tail -n 1 "$tmp/time.2")" -v n="$NTRAIN" \
	'BEGIN { printf "    -t 1: %.1f s, %.0f images/s;  -t 2: %.1f s, %.0f images/s;  %.2fx\n",
		a, n / a, b, n / b, a / b }' | tee "$tmp/threads"
echo

echo "+ bench_sgemm_test sgemm     (again, after the programs)"
bench_sgemm_test sgemm | tee "$tmp/sgemm2"
sgemm2=$(awk '/^sgemm/ { print $3 }' "$tmp/sgemm2")
sgemm=$(awk -v a="$sgemm1" -v b="$sgemm2" 'BEGIN { print (a > b ? a : b) }')
peak=$(cat "$tmp/sgemm" "$tmp/sgemm2" | awk '/^sgemm/ { for (i = 1; i < NF; i++)
	if ($i == "peak" && $(i + 1) > p) p = $(i + 1) } END { print p }')
echo

# ------------------------------------------------------------- the table

echo "== Summary: ratios to sustained SGEMM $sgemm GFLOP/s (the better of $sgemm1 and $sgemm2;"
echo "   the fastest single product ran at $peak)"
echo "   core: $(awk -F'core ' '/^blas/ { print $2; exit }' "$tmp/sgemm")"
echo "   mea's own loops: $(awk -F': ' '/^mea loops/ { print $2; exit }' "$tmp/sgemm")"
awk -F'|' -v sg="$sgemm" '
	BEGIN {
		printf "%-37s %5s %9s %8s %7s %7s %7s %9s  %s\n", "what", "batch",
			"images/s", "GFLOP/s", "x sgemm", "CPU GF", "x sgemm", "peak MiB",
			"target"
	}
	{
		gf = 2 * $5 * $3 * 1e-9
		cgf = 2 * $5 * $4 * 1e-9
		if ($1 ~ /^training/) {
			gf *= 3; cgf *= 3; want = $1 ~ /im2col/ ? 0 : 0.40
		} else
			want = $2 == 1 ? 0.25 : 0.50
		if (want)
			note = sprintf("%.2f %s", want, gf / sg >= want ? "met" : "below")
		else
			note = "(mea-train --no-row-shift)"
		if ($1 ~ /resnet20/ && $1 !~ /^training/ && $2 == 64)
			note = note sprintf(", <64 MiB %s", $6 / 1024 < 64 ? "met" : "above")
		printf "%-37s %5d %9.1f %8.1f %7.2f %7.1f %7.2f %9.1f  %s\n", $1, $2, $3,
			gf, gf / sg, cgf, cgf / sg, $6 / 1024, note
	}' "$tmp/rows"
echo "(GFLOP/s from wall time, and from the CPU time of the same run; target: the"
echo " share of SGEMM asked for by wall time; training counts 3x the forward MACs)"
echo "mea-train on $(nproc) cores (3b):$(cat "$tmp/threads")"
echo

# --------------------------------------------- 4. decoding and offloading

echo "== 4. share/bench-decode.sh"
sh "$top/share/bench-decode.sh"
echo
echo "== 5. share/bench-offload.sh"
sh "$top/share/bench-offload.sh"
