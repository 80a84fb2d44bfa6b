#!/bin/sh
# make demo: the main job.  Runs the whole MEANet pipeline on the sample
# images in share/samples/ (the first 100 of the Fashion-MNIST test set,
# in one folder per class, so the folder names are the labels): the main
# block, the gate, the extension, the shipped cloud model run on this
# machine as the cloud, and mea-score's summary.
#
#   sh share/demo.sh          (make demo; from the top directory)
#
# EDGE, CLOUD and SAMPLES name other models and images.  Exit status: 0,
# or 1 when a stage failed.  Without the weights it says so and shows the
# decoded samples.
set -eu
BIN=${BIN:-bin}
EDGE=${EDGE:-weights/fmnist-edge.mea-model}
CLOUD=${CLOUD:-weights/fmnist-cloud.mea-model}
SAMPLES=${SAMPLES:-share/samples}
CLASSES=share/fashion-mnist.classes

# Without the cloud model the edge runs alone (complex images stay at the
# edge); without the edge model there is no pipeline to show, so the demo
# shows what the first stage makes of the samples.
if [ ! -s "$EDGE" ]; then
	echo "demo: $EDGE: missing; 'make weights' trains it (hours on two cores)" >&2
	echo "demo: showing the decoded samples instead" >&2
	echo "\$ mea-decode -L $CLASSES $SAMPLES | mea-decode --text -n 2 -"
	"$BIN/mea-decode" -L "$CLASSES" "$SAMPLES" > "${TMPDIR:-/tmp}/mea-demo.$$"
	"$BIN/mea-decode" --text -n 2 - < "${TMPDIR:-/tmp}/mea-demo.$$"
	echo "\$ mea-decode --text ... | (records per label)"
	"$BIN/mea-decode" --text - < "${TMPDIR:-/tmp}/mea-demo.$$" | awk -v classes="$CLASSES" '
		/^record/ { n++ }
		$1 == "label" { count[$2]++ }
		END {
			while ((getline name < classes) > 0)
				names[k++] = name
			printf "%d records\n", n
			for (c = 0; c < k; c++)
				printf "  label %d %-12s %4d\n", c, names[c], count[c]
		}'
	rm -f "${TMPDIR:-/tmp}/mea-demo.$$"
	exit 0
fi
nocloud=
if [ ! -s "$CLOUD" ]; then
	echo "demo: $CLOUD: missing ('make weights' trains it); running the edge alone" >&2
	nocloud=--no-cloud
fi

# mea-offload's default worker is the shipped cloud model, run here.
offload=mea-offload
[ "$CLOUD" = weights/fmnist-cloud.mea-model ] || offload="mea-offload -m $CLOUD"
[ -z "$nocloud" ] || offload="mea-offload -e false"   # never called: nothing is complex

cat <<END
The MEANet pipeline on $(find "$SAMPLES" -name '*.png' | wc -l) images of $SAMPLES:

\$ mea-decode -L $CLASSES $SAMPLES |
    mea-main -m $EDGE |
    mea-gate -m $EDGE $nocloud |
    mea-ext -m $EDGE |
    $offload |
    mea-score -m $EDGE

END
out=$(mktemp "${TMPDIR:-/tmp}/mea-demo.XXXXXX")
trap 'rm -f "$out"' EXIT
trap 'exit 1' INT TERM
"$BIN/mea-decode" -L "$CLASSES" "$SAMPLES" |
	"$BIN/mea-main" -m "$EDGE" |
	"$BIN/mea-gate" -m "$EDGE" $nocloud |
	"$BIN/mea-ext" -m "$EDGE" |
	"$BIN"/$offload |
	"$BIN/mea-score" -m "$EDGE" > "$out"
cat "$out"

# sh has no pipefail: a stage that failed said so on stderr, and leaves
# fewer records than images (or none) for mea-score.
n=$(find "$SAMPLES" -name '*.png' | wc -l)
got=$(sed -n 's/^records *//p' "$out")
if [ "$got" != "$n" ]; then
	echo "demo: $got of $n images came out of the pipeline" >&2
	exit 1
fi
