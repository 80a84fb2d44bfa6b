#!/usr/bin/env bats
# mea-main: the main block over a stream, on randomly initialised models and
# random images from model_test.

load helper

setup_file() {
	D=$BATS_FILE_TMPDIR
	mea-train --init -a resnet8 -i 1x28x28 -k 10 --meanet -o "$D/edge.mea-model"
	mea-train --init -a resnet8 -i 1x28x28 -k 10 -s 2 -o "$D/plain.mea-model"
	model_test records 12 1x28x28 1 > "$D/recs.mea"
	model_test records 12 1x28x28 1 f32 > "$D/recs32.mea"
	model_test records 2 3x32x32 1 > "$D/rgb.mea"
}

setup() {
	D=$BATS_FILE_TMPDIR
	S=$BATS_TEST_TMPDIR
}

@test "mea-main: adds logits [10] and, for an edge model, feat [64,7,7]" {
	mea-main -m "$D/edge.mea-model" < "$D/recs.mea" > "$S/out.mea"
	run --separate-stderr mkrec_test -p < "$S/out.mea"
	[ "$status" -eq 0 ]
	[ "$(grep -c 'logits       f32 \[10\]' <<< "$output")" -eq 9 ]
	[ "$(grep -c 'feat         f32 \[64,7,7\]' <<< "$output")" -eq 9 ]
	[ "$(grep -c 'macs_edge    9345920$' <<< "$output")" -eq 9 ]
	[ "$(grep -c '^  t_main ' <<< "$output")" -eq 9 ]
}

@test "mea-main: a plain model adds no feature map" {
	mea-main -m "$D/plain.mea-model" < "$D/recs.mea" > "$S/out.mea"
	run --separate-stderr mkrec_test -p < "$S/out.mea"
	[ "$status" -eq 0 ]
	[ "$(grep -c 'logits       f32 \[10\]' <<< "$output")" -eq 9 ]
	[[ $output != *feat* ]]
}

@test "mea-main: every other field and tensor passes through, in order" {
	mkrec_test -p < "$D/recs.mea" > "$S/in.txt"
	mea-main -m "$D/edge.mea-model" < "$D/recs.mea" | mkrec_test -p |
		grep -Ev '^  (logits|feat|macs_edge|t_main) ' > "$S/out.txt"
	diff "$S/in.txt" "$S/out.txt"
	# Record 3 has no image and comes through untouched, in its place.
	grep -A8 '^record 3$' "$S/out.txt" | grep -q 'id           "img003"'
}

# same_as_batch1 MODEL RECORDS BATCH N: mea-main at --batch BATCH gives
# the logits and features of batch 1, for the N records with an image.
same_as_batch1() {
	mea-main -m "$1" -b 1 < "$2" > "$S/b1.mea"
	mea-main -m "$1" --batch "$3" < "$2" > "$S/bn.mea"
	run model_test cmp logits "$S/b1.mea" "$S/bn.mea" 1e-4
	[ "$status" -eq 0 ]
	[[ $output == "$4 records with logits"* ]]
	run model_test cmp feat "$S/b1.mea" "$S/bn.mea" 1e-4
	[ "$status" -eq 0 ]
}

@test "mea-main: batch 1 and batch 64 give the same logits and features" {
	same_as_batch1 "$D/edge.mea-model" "$D/recs.mea" 64 9
}

@test "mea-main: large images, a batch in several passes, give the logits of batch 1" {
	# At 96x96 one image's activations fill the cache, so a batch runs one
	# image at a time until the classifier, which then runs on all four
	# (record 3 has no image).
	mea-train --init -a resnet8 -i 1x96x96 -k 10 --meanet -o "$S/big.mea-model"
	model_test records 5 1x96x96 1 > "$S/big.mea"
	same_as_batch1 "$S/big.mea-model" "$S/big.mea" 5 4
}

@test "mea-main: MobileNetV2 runs its planes of 28x28 and below channels-last, same logits" {
	# graph.c, mark_channels_last: 1x1 and 3x3 depthwise convolutions over
	# small planes run on [pixel][channel] values (nhwc.c), the rest NCHW;
	# values change layout where the two meet, and the feature map the
	# extension reads stays NCHW.  A batch of 5 runs them over several
	# images at once, a batch of 1 one image at a time.
	mea-train --init -a mobilenetv2 -i 3x64x64 -k 10 --meanet -w 0.5 -o "$S/mn.mea-model"
	model_test records 5 3x64x64 1 > "$S/mn.mea"
	same_as_batch1 "$S/mn.mea-model" "$S/mn.mea" 5 4
	mea-main -m "$S/mn.mea-model" -b 5 --profile < "$S/mn.mea" 2> "$S/err" > /dev/null
	grep -Eq ' ir1\.dw +dwconv 3x3 s1 +16x32x32 ' "$S/err"
	grep -Eq ' ir2\.dw +dwconv 3x3 s2 +48x16x16 ' "$S/err"
	grep -Eq ' ir2\.project +conv 1x1 s1 nhwc +16x16x16 ' "$S/err"
	grep -Eq ' ir3\.dw +dwconv 3x3 s1 nhwc +' "$S/err"
	grep -Eq ' ir3\.project +conv 1x1 s1\+add nhwc +' "$S/err"
	grep -Eq ' ir7\.dw +dwconv 3x3 s2 nhwc +' "$S/err"
	# The feature map (the last block's output) is the extension's.
	grep -Eq ' ir17\.project +conv 1x1 s1 +160x2x2 ' "$S/err"
}

@test "mea-main: --profile tables each layer's time on stderr and changes no record" {
	mea-main -m "$D/edge.mea-model" < "$D/recs.mea" > "$S/plain.mea"
	mea-main -m "$D/edge.mea-model" --profile < "$D/recs.mea" > "$S/prof.mea" 2> "$S/err"
	cmp "$S/plain.mea" "$S/prof.mea" || {
		# t_main differs from run to run; the results must not
		run model_test cmp logits "$S/plain.mea" "$S/prof.mea" 0
		[ "$status" -eq 0 ]
	}
	grep -Eq '^mea-main: profile: [0-9]+ steps, 9 images, [0-9.]+ s in the steps$' "$S/err"
	# ResNet-8: the stem, a residual add fused into the last convolution of
	# each block, and the classifier, with shapes, MACs and a total line.
	grep -Eq '^ +0  conv1 +conv 3x3 s1 +16x28x28 +0\.11 ' "$S/err"
	grep -Eq ' layer1\.0\.conv2 +conv 3x3 s1\+add ' "$S/err"
	grep -Eq ' fc +fc +10x1x1 ' "$S/err"
	grep -Eq '^ +total +[0-9.]+ +[0-9.]+ +100\.0% ' "$S/err"
	run mea-main -m "$D/edge.mea-model" -P -b 0 < /dev/null
	[ "$status" -eq 2 ]
}

@test "mea-main: f32 images in [0,1] give the logits of the u8 images" {
	mea-main -m "$D/edge.mea-model" < "$D/recs.mea" > "$S/u8.mea"
	mea-main -m "$D/edge.mea-model" < "$D/recs32.mea" > "$S/f32.mea"
	run model_test cmp logits "$S/u8.mea" "$S/f32.mea" 1e-4
	[ "$status" -eq 0 ]
}

@test "mea-main: --cloud adds cloud_logits, macs_cloud and t_cloud, no feat" {
	mea-main -m "$D/edge.mea-model" < "$D/recs.mea" |
		mea-main -m "$D/plain.mea-model" --cloud > "$S/out.mea"
	run --separate-stderr mkrec_test -p < "$S/out.mea"
	[ "$(grep -c 'cloud_logits f32 \[10\]' <<< "$output")" -eq 9 ]
	[ "$(grep -c 'macs_cloud   9345920$' <<< "$output")" -eq 9 ]
	[ "$(grep -c '^  t_cloud ' <<< "$output")" -eq 9 ]
	# The edge stage's feat passes through; the cloud stage adds none.
	[ "$(grep -c 'feat  ' <<< "$output")" -eq 9 ]
	run --separate-stderr bash -c "mea-main -m '$D/edge.mea-model' -c < '$D/recs.mea' | mkrec_test -p"
	[ "$status" -eq 0 ]
	[[ $output == *cloud_logits* ]]
	[[ $output != *feat* ]]
}

# One random 28x28 image as a record, then (with "mirror") its mirror image.
image_record() {
	awk -v mirror="$1" 'BEGIN { srand(3); for (i = 0; i < 784; i++) v[i] = int(rand() * 256)
		printf "tensor image u8 1,28,28"
		for (r = 0; r < 28; r++) for (c = 0; c < 28; c++)
			printf " %d", v[r * 28 + (mirror ? 27 - c : c)]
		print "\nend" }' | mkrec_test
}

@test "mea-main: a --test-flip model scores an image and its mirror image alike, at twice the MACs" {
	mea-train --init -a resnet8 -i 1x28x28 -k 10 -s 2 -F -o "$S/flip.mea-model"
	image_record 0 > "$S/a.mea"
	image_record 1 > "$S/b.mea"
	for m in plain flip; do
		[ $m = plain ] && model=$D/plain.mea-model || model=$S/flip.mea-model
		mea-main -m "$model" --cloud < "$S/a.mea" > "$S/a-$m.mea"
		mea-main -m "$model" --cloud < "$S/b.mea" > "$S/b-$m.mea"
	done
	# the plain model tells the two apart; the flipping one cannot
	run model_test cmp cloud_logits "$S/a-plain.mea" "$S/b-plain.mea" 1e-6
	[ "$status" -ne 0 ]
	model_test cmp cloud_logits "$S/a-flip.mea" "$S/b-flip.mea" 0
	[[ $(mkrec_test -p < "$S/a-flip.mea") == *"macs_cloud   18691840"* ]]
	run --separate-stderr mea-train --init -a resnet8 -i 1x28x28 -k 10 -E -F -o "$S/x.mea-model"
	[ "$status" -eq 2 ]
	[[ $stderr == *"--test-flip is for whole classifiers"* ]]
}

@test "mea-main: macs_edge adds to what earlier stages spent" {
	mea-main -m "$D/plain.mea-model" < "$D/recs.mea" |
		mea-main -m "$D/plain.mea-model" > "$S/out.mea"
	run --separate-stderr mkrec_test -p < "$S/out.mea"
	[ "$(grep -c 'macs_edge    18691840$' <<< "$output")" -eq 9 ]
}

@test "mea-main: an image of the wrong shape names the record and both shapes" {
	run -1 --separate-stderr mea-main -m "$D/edge.mea-model" < "$D/rgb.mea"
	[ -z "$output" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[ "$stderr" = "mea-main: stdin: record 0 (img000): image u8 3x32x32, expected u8 or f32 1x28x28" ]
}

@test "mea-main: the records before a bad one are written whole" {
	cat "$D/recs.mea" "$D/rgb.mea" > "$S/mixed.mea"
	run -1 bash -c "mea-main -m '$D/edge.mea-model' -b 5 < '$S/mixed.mea' > '$S/out.mea' 2> '$S/err'"
	[[ $(cat "$S/err") == "mea-main: stdin: record 12 (img000): image u8 3x32x32"* ]]
	run --separate-stderr mkrec_test -p < "$S/out.mea"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^record' <<< "$output")" -eq 12 ]
}

@test "mea-main: a missing model file is status 3 and one line" {
	run -3 --separate-stderr mea-main -m "$S/none.mea-model" < "$D/recs.mea"
	[ -z "$output" ]
	[ "$stderr" = "mea-main: $S/none.mea-model: No such file or directory" ]
}

@test "mea-main: a truncated stream is status 1 after the good records" {
	size=$(stat -c %s "$D/recs.mea")
	head -c $((size - 10)) "$D/recs.mea" > "$S/cut.mea"
	run -1 --separate-stderr mea-main -m "$D/edge.mea-model" < "$S/cut.mea"
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "mea-main: stdin: record 11"*"truncated"* ]]
}

@test "mea-main: a record is answered while the input stays open" {
	model_test records 1 1x28x28 9 > "$S/one.mea"
	mkfifo "$S/in"
	mea-main -m "$D/edge.mea-model" -b 64 < "$S/in" > "$S/out.mea" 3>&- &
	pid=$!
	exec 4> "$S/in"
	cat "$S/one.mea" >&4
	# The producer has not closed its end: the record must still come out.
	for i in $(seq 200); do
		mkrec_test -p < "$S/out.mea" 2>/dev/null | grep -q logits && break
		sleep 0.05
	done
	run mkrec_test -p < "$S/out.mea"
	exec 4>&-
	wait "$pid"
	[[ $output == *"logits       f32 [10]"* ]]
}

@test "mea-main: options are checked; --help and --version" {
	run -2 --separate-stderr mea-main < "$D/recs.mea"
	[ -z "$output" ]
	[ "${stderr_lines[0]}" = "mea-main: no model: give -m FILE" ]
	run -2 --separate-stderr mea-main -m "$D/edge.mea-model" --batch 0
	[[ ${stderr_lines[0]} == "mea-main: --batch: '0' is not a whole number from 1 to 4096" ]]
	run -0 --separate-stderr mea-main --help
	[[ $output == usage:* ]]
	run -0 --separate-stderr mea-main -V
	[ "$output" = "mea-main 0.1.0" ]
}

@test "mea-main: a failed write to stdout is status 4" {
	run -4 --separate-stderr bash -c "mea-main -m '$D/edge.mea-model' < '$D/recs.mea' > /dev/full"
	[ "${#stderr_lines[@]}" -eq 1 ]
}

@test "mea-main(1): the examples run" {
	cd "$S"
	# The commands are the literal displays and .Dl lines of EXAMPLES.
	sed -n '/^\.Sh EXAMPLES/,/^\.Sh DIAGNOSTICS/p' "$TOP/man/mea-main.1" |
		awk '/^\.Bd/ { lit = 1; next } /^\.Ed/ { lit = 0; next }
			lit { print } /^\.Dl / { sub(/^\.Dl /, ""); print }' > examples.sh
	[ -x "$TOP/bin/mea-decode" ] || sed -i 's|^mea-decode.*|model_test records 8 1x28x28 1 \||' examples.sh
	run bash -e examples.sh
	[ "$status" -eq 0 ]
	[ "$(mkrec_test -p < cloud.mea | grep -c cloud_logits)" -eq 8 ]
}

@test "mea-main: ResNet-20 at batch 64 stays under 64 MiB resident" {
	[ -x /usr/bin/time ] || skip "no /usr/bin/time"
	mea-train --init -a resnet20 -i 1x28x28 -k 10 --meanet -o "$S/r20"
	model_test records 130 1x28x28 3 > "$S/recs.mea"
	/usr/bin/time -f %M -o "$S/rss" mea-main -m "$S/r20" -b 64 < "$S/recs.mea" > /dev/null
	echo "max resident: $(cat "$S/rss") KiB" >&2
	[ "$(cat "$S/rss")" -lt 65536 ]
}
