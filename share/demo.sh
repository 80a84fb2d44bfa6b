#!/bin/sh
# make demo: the main job on the shipped data.  Decodes the Fashion-MNIST
# test set into a mea stream and prints a readable summary of it.
set -eu
BIN=${BIN:-bin}
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
out=${TMPDIR:-/tmp}/mea-demo.$$
trap 'rm -f "$out"' EXIT INT TERM

echo "$ mea-decode $FMNIST/t10k-images-idx3-ubyte.gz > test.mea"
"$BIN/mea-decode" "$FMNIST/t10k-images-idx3-ubyte.gz" > "$out"
echo "($(wc -c < "$out") bytes)"
echo
echo "$ mea-decode --text --limit 2 test.mea"
"$BIN/mea-decode" --text --limit 2 "$out"
echo
echo "$ mea-decode --text test.mea | (records per label)"
"$BIN/mea-decode" --text "$out" | awk '
	/^record/ { n++ }
	$1 == "label" { count[$2]++ }
	END {
		printf "%d records\n", n
		while ((getline name < "share/fashion-mnist.classes") > 0)
			names[i++] = name
		for (c = 0; c < 10; c++)
			printf "  label %d %-12s %5d\n", c, names[c], count[c]
	}'
