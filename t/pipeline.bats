#!/usr/bin/env bats
# The whole MEANet pipeline against the same models run whole, without it.

load helper

setup_file() {
	export X=$BATS_FILE_TMPDIR
	mea-decode -n 640 "$FMNIST/train-images-idx3-ubyte.gz" > "$X/train.mea"
	mea-decode -n 200 "$FMNIST/t10k-images-idx3-ubyte.gz" > "$X/test.mea"
	# small trained models, so that answers have margins: an edge model
	# through the three jobs, and a plain classifier as the cloud
	mea-train --init -a resnet8 -w 0.5 -i 1x28x28 -k 10 -E -s 5 -o "$X/e0"
	mea-train -j full -m "$X/e0" -o "$X/e1" -e 2 -b 32 -q < "$X/train.mea"
	mea-train -j calibrate -m "$X/e1" -o "$X/e2" < "$X/train.mea" > /dev/null
	mea-train -j ext -m "$X/e2" -o "$X/edge" -e 1 -b 32 -q < "$X/train.mea"
	mea-train --init -a resnet8 -i 1x28x28 -k 10 -s 6 -o "$X/c0"
	mea-train -j full -m "$X/c0" -o "$X/cloud" -e 2 -b 32 -q < "$X/train.mea"
	# the reference: each model run whole on every image
	mea-train -j eval -P -m "$X/edge" < "$X/test.mea" > "$X/edge.tsv"
	mea-train -j eval -P -m "$X/cloud" < "$X/test.mea" > "$X/cloud.tsv"
}

# A threshold between two entropies far enough apart that rounding
# differences between batch sizes cannot move an image across it.
pick_threshold() {
	tail -n +2 "$X/edge.tsv" | cut -f4 | sort -g | awk '
		{ v[NR] = $1 }
		END { for (i = int(NR * 0.7); i < NR; i++)
			if (v[i + 1] - v[i] > 1e-3) { printf "%.6f\n", (v[i] + v[i + 1]) / 2; exit } }'
}

@test "pipeline: every image gets the answer the models give when run whole" {
	T=$(pick_threshold)
	[ -n "$T" ]
	hard=$(mea-train -j calibrate -m "$X/e1" -o "$X/tmp" < "$X/train.mea" |
		awk '/ precision / { printf "%s%s", s, $1; s = "," }')
	run bash -c "set -o pipefail; mea-main -m '$X/edge' < '$X/test.mea' |
		mea-gate -m '$X/edge' -T $T | mea-ext -m '$X/edge' |
		mea-offload -e 'mea-main -m $X/cloud --cloud' | mea-score --records > '$X/records.tsv'"
	[ "$status" -eq 0 ]
	[ "$(wc -l < "$X/records.tsv")" -eq 201 ]
	# expected answer per image, from the references alone
	paste "$X/edge.tsv" "$X/cloud.tsv" | tail -n +2 | awk -F'\t' -v T="$T" -v hard="$hard" '
		BEGIN { n = split(hard, h, ","); for (i = 1; i <= n; i++) ishard[h[i]] = 1 }
		{ if ($4 > T) print $8, "cloud"; else if ($3 in ishard) print $5, "ext"; else print $3, "main" }' \
		> "$X/expected"
	head -1 "$X/records.tsv" | tr '\t' '\n' > "$X/cols"
	pc=$(grep -nx pred "$X/cols" | cut -d: -f1)
	ec=$(grep -nx exit "$X/cols" | cut -d: -f1)
	tail -n +2 "$X/records.tsv" | awk -F'\t' -v p="$pc" -v e="$ec" '{ print $p, $e }' > "$X/got"
	diff "$X/expected" "$X/got"
	# all three exits were used
	for x in main ext cloud; do grep -q " $x\$" "$X/got"; done
}

@test "pipeline: with --no-cloud the answers are the edge model's own" {
	run bash -c "set -o pipefail; mea-main -m '$X/edge' < '$X/test.mea' |
		mea-gate -m '$X/edge' --no-cloud | mea-ext -m '$X/edge' | mea-score --records > '$X/edge-records.tsv'"
	[ "$status" -eq 0 ]
	head -1 "$X/edge-records.tsv" | tr '\t' '\n' > "$X/cols"
	pc=$(grep -nx pred "$X/cols" | cut -d: -f1)
	diff <(tail -n +2 "$X/edge.tsv" | cut -f5) <(tail -n +2 "$X/edge-records.tsv" | cut -f"$pc")
}
