#!/bin/sh
# make weights: retrain the shipped Fashion-MNIST models from scratch with
# mea-train, on the 60,000 training images only (a tenth held out for the
# hard classes and T; the test set is used only for the final report).
#
#   sh share/weights.sh edge|cloud|report|all
#
# Every stage writes its model under build/weights/ and its log beside
# it; a stage that was cut short is resumed (--resume), and a finished
# one is skipped, so the script can be run again after an interruption.
set -eu
BIN=${BIN:-bin}
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
W=${WEIGHTS_WORK:-work/weights}   # not under build/: make clean must not eat a run
mkdir -p "$W" weights

# The settings of the shipped models.  After changing one, remove its
# files under $W: mea-train refuses to resume a run made with others.
SEED=1
# The edge model: main block on both cores (-t 2).  The adaptive block
# has the main block's trunk (-A 3) and starts as a copy of it (-B,
# --adaptive-from-main), so that it fine-tunes features learnt on all ten
# classes; its own small CNN (-A 1) left the edge 0.1 point above the
# main block.  The extension takes weight decay 1e-4, the authors' value
# (5e-4 left it underfitting), and label smoothing 0.1.
EDGE_ARCH="-a resnet20 -w 1 -A 3"
EDGE_EPOCHS=15
EDGE_OPTS="-t 2"
EXT_EPOCHS=20
EXT_OPTS="-d 1e-4 -Z 0.1 -B -t 2"
# The cloud model scores each image and its mirror image (-F) and learns
# from smoothed labels (-Z), with two training threads (-t 2: the run
# wants both cores to itself).
CLOUD_ARCH="-a resnet20 -w 2 -F"
CLOUD_EPOCHS=15
CLOUD_OPTS="-Z 0.1 -t 2"
COMMON="-s $SEED -f 0.1 -Y 1 -t 1"

data() {
	[ -s "$W/train.mea" ] || "$BIN/mea-decode" "$FMNIST/train-images-idx3-ubyte.gz" > "$W/train.mea.$$"
	[ -s "$W/train.mea" ] || mv "$W/train.mea.$$" "$W/train.mea"
	[ -s "$W/test.mea" ] || "$BIN/mea-decode" "$FMNIST/t10k-images-idx3-ubyte.gz" > "$W/test.mea.$$"
	[ -s "$W/test.mea" ] || mv "$W/test.mea.$$" "$W/test.mea"
}

# train JOB IN OUT EPOCHS [OPTIONS]: run one training job, logging; a job
# that has a checkpoint is resumed (-r), and one that has finished only
# rewrites the same bytes.  OPTIONS come after the common ones and so
# override them.
train() {
	job=$1 in=$2 out=$3 epochs=$4
	shift 4
	log="$out.log"
	[ ! -s "$out" ] || set -- "$@" -r
	start=$(date +%s)
	echo "+ mea-train -j $job -m $in -o $out -e $epochs $COMMON $*" >> "$log"
	"$BIN/mea-train" -j "$job" -m "$in" -o "$out" -e "$epochs" $COMMON "$@" \
		< "$W/train.mea" 2>> "$log"
	echo "seconds $(( $(date +%s) - start ))" >> "$log"
}

edge() {
	data
	[ -s "$W/edge-init.mea-model" ] || "$BIN/mea-train" --init $EDGE_ARCH -i 1x28x28 -k 10 -E \
		-N share/fashion-mnist.classes -s $SEED -o "$W/edge-init.mea-model"
	train full "$W/edge-init.mea-model" "$W/edge-main.mea-model" $EDGE_EPOCHS $EDGE_OPTS
	"$BIN/mea-train" -j calibrate -m "$W/edge-main.mea-model" -o "$W/edge-cal.mea-model" \
		$COMMON $EDGE_OPTS < "$W/train.mea" > "$W/edge-cal.log"
	train ext "$W/edge-cal.mea-model" "$W/edge-ext.mea-model" $EXT_EPOCHS $EXT_OPTS
	cp "$W/edge-ext.mea-model" weights/fmnist-edge.mea-model
}

cloud() {
	data
	[ -s "$W/cloud-init.mea-model" ] || "$BIN/mea-train" --init $CLOUD_ARCH -i 1x28x28 -k 10 \
		-N share/fashion-mnist.classes -s $SEED -o "$W/cloud-init.mea-model"
	train full "$W/cloud-init.mea-model" "$W/cloud.mea-model" $CLOUD_EPOCHS $CLOUD_OPTS
	cp "$W/cloud.mea-model" weights/fmnist-cloud.mea-model
}

report() {
	data
	for m in weights/fmnist-edge.mea-model weights/fmnist-cloud.mea-model; do
		echo "== $m"
		"$BIN/mea-train" -j eval -m "$m" < "$W/test.mea"
		sha256sum "$m"
	done
}

case "${1:-all}" in
edge) edge ;;
cloud) cloud ;;
report) report ;;
all) edge; cloud; report ;;
*) echo "usage: sh share/weights.sh edge|cloud|report|all" >&2; exit 2 ;;
esac
