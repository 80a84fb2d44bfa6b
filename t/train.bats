#!/usr/bin/env bats
# mea-train: the three jobs of MEANet training, resume, and bad input.

load helper

setup_file() {
	export X=$BATS_FILE_TMPDIR
	mea-decode -n 640 "$FMNIST/train-images-idx3-ubyte.gz" > "$X/train.mea"
	mea-decode -n 64 "$FMNIST/t10k-images-idx3-ubyte.gz" > "$X/test.mea"
	mea-train --init -a resnet8 -w 0.5 -i 1x28x28 -k 10 -E -N "$TOP/share/fashion-mnist.classes" \
		-s 7 -o "$X/init.mea-model"
	# the model every later test starts from: 3 quick epochs of the main block
	mea-train -j full -m "$X/init.mea-model" -o "$X/main.mea-model" -e 3 -b 32 -f 0.2 \
		< "$X/train.mea" 2> "$X/main.log"
}

@test "mea-train: the loss of a small model falls on real Fashion-MNIST" {
	run awk '/^epoch/ { for (i = 1; i <= NF; i++) if ($i == "loss") print $(i + 1) }' "$X/main.log"
	[ "${#lines[@]}" -eq 3 ]
	awk -v a="${lines[0]}" -v b="${lines[2]}" 'BEGIN { exit !(b < a * 0.9) }'
	[[ $(head -1 "$X/main.log") == "epoch 1/3 loss "*" held-out "* ]]
}

@test "mea-train: --val-frac 0 trains on every image and says nothing is held out" {
	run --separate-stderr mea-train -j full -m "$X/init.mea-model" -o "$X/all.mea-model" -e 1 \
		-b 32 -f 0 < "$X/train.mea"
	[ "$status" -eq 0 ]
	[[ $stderr == "epoch 1/1 loss "*" held-out none lr "* ]]
	! cmp -s "$X/all.mea-model" "$X/main.mea-model"
}

@test "mea-train: the same seed gives the same bytes" {
	mea-train -j full -m "$X/init.mea-model" -o "$X/again.mea-model" -e 3 -b 32 -f 0.2 -q \
		< "$X/train.mea"
	cmp "$X/main.mea-model" "$X/again.mea-model"
}

@test "mea-train: a stopped run resumed continues exactly where it stopped" {
	mea-train -j full -m "$X/init.mea-model" -o "$X/split.mea-model" -e 3 -b 32 -f 0.2 -q -X 1 \
		< "$X/train.mea"
	run --separate-stderr mea-train -j full -r -o "$X/split.mea-model" -e 3 -b 32 -f 0.2 \
		< "$X/train.mea"
	[ "$status" -eq 0 ]
	[[ ${stderr_lines[0]} == "epoch 2/3 "* ]]
	cmp "$X/main.mea-model" "$X/split.mea-model"
}

@test "mea-train: resuming with other settings is refused" {
	cp "$X/main.mea-model" "$X/other.mea-model"
	run --separate-stderr mea-train -j full -r -o "$X/other.mea-model" -e 3 -b 64 -f 0.2 < "$X/train.mea"
	[ "$status" -eq 2 ]
	[[ $stderr == "mea-train: $X/other.mea-model: was trained with '"*"batch=32"*"', not '"*"batch=64"* ]]
}

@test "mea-train: --no-row-shift trains by im2col, to other bits, and a resume must keep it" {
	# The default (row shifts) and im2col give the same gradients up to
	# rounding: the same loss to a few digits, not the same bytes.
	mea-train -j full -m "$X/init.mea-model" -o "$X/im2col.mea-model" -e 3 -b 32 -f 0.2 -X 1 \
		-R < "$X/train.mea" 2> "$X/im2col.log"
	mea-train -j full -m "$X/init.mea-model" -o "$X/shift1.mea-model" -e 3 -b 32 -f 0.2 -X 1 \
		< "$X/train.mea" 2> "$X/shift1.log"
	refute cmp -s "$X/im2col.mea-model" "$X/shift1.mea-model"
	loss() { awk '{ for (i = 1; i <= NF; i++) if ($i == "loss") print $(i + 1) }' "$1"; }
	awk -v a="$(loss "$X/im2col.log")" -v b="$(loss "$X/shift1.log")" \
		'BEGIN { d = a - b; exit !(d < 0.01 && d > -0.01) }'
	run --separate-stderr mea-train -j full -r -o "$X/im2col.mea-model" -e 3 -b 32 -f 0.2 \
		< "$X/train.mea"
	[ "$status" -eq 2 ]
	[[ $stderr == *"', not '"*"rowshift=1'" ]]
	run --separate-stderr mea-train -j full -r -o "$X/im2col.mea-model" -e 3 -b 32 -f 0.2 \
		-R < "$X/train.mea"
	[ "$status" -eq 0 ]
	[[ ${stderr_lines[0]} == "epoch 2/3 "* ]]
}

# A training setting (the options after KEY) that changes the trained
# bytes and that a resumed run must repeat: one epoch of three with it,
# then a resume without it is refused naming KEY, one with it continues.
setting_sticks() {
	local name=$1 key=$2
	shift 2
	[ -e "$X/plain1.mea-model" ] || mea-train -j full -m "$X/init.mea-model" \
		-o "$X/plain1.mea-model" -e 3 -b 32 -f 0.2 -q -X 1 < "$X/train.mea"
	mea-train -j full -m "$X/init.mea-model" -o "$X/$name.mea-model" -e 3 -b 32 -f 0.2 -q -X 1 \
		"$@" < "$X/train.mea"
	refute cmp -s "$X/$name.mea-model" "$X/plain1.mea-model"
	run --separate-stderr mea-train -j full -r -o "$X/$name.mea-model" -e 3 -b 32 -f 0.2 \
		< "$X/train.mea"
	[ "$status" -eq 2 ]
	[[ $stderr == *"$key"*"', not '"* && ${stderr#*, not } != *"${key%%=*}"* ]]
	run --separate-stderr mea-train -j full -r -o "$X/$name.mea-model" -e 3 -b 32 -f 0.2 \
		"$@" < "$X/train.mea"
	[ "$status" -eq 0 ]
	[[ ${stderr_lines[0]} == "epoch 2/3 "* ]]
}

@test "mea-train: --smooth trains towards smoothed labels and a resume must keep it" {
	setting_sticks smooth smooth=0.1 -Z 0.1
}

@test "mea-train: --erase changes training, repeats itself, and a resume must keep it" {
	setting_sticks erase erase=0.5 -O 0.5
	mea-train -j full -m "$X/init.mea-model" -o "$X/erase1.mea-model" -e 3 -b 32 -f 0.2 -q -X 1 \
		-O 0.5 < "$X/train.mea"
	mea-train -j full -m "$X/init.mea-model" -o "$X/erase2.mea-model" -e 3 -b 32 -f 0.2 -q -X 1 \
		-O 0.5 < "$X/train.mea"
	cmp "$X/erase1.mea-model" "$X/erase2.mea-model"
	run --separate-stderr mea-train -j full -m "$X/init.mea-model" -o "$X/erase3.mea-model" \
		-O 1.5 < "$X/train.mea"
	[ "$status" -eq 2 ]
	[[ $stderr == *"--erase"* ]]
}

@test "mea-train: --threads 2 splits each batch, repeats itself and resumes exactly" {
	mea-train -j full -m "$X/init.mea-model" -o "$X/t2.mea-model" -e 3 -b 32 -f 0.2 -q -t 2 \
		< "$X/train.mea"
	mea-train -j full -m "$X/init.mea-model" -o "$X/t2b.mea-model" -e 3 -b 32 -f 0.2 -q -t 2 -X 2 \
		< "$X/train.mea"
	mea-train -j full -r -o "$X/t2b.mea-model" -e 3 -b 32 -f 0.2 -q -t 2 < "$X/train.mea"
	cmp "$X/t2.mea-model" "$X/t2b.mea-model"
	# per-part batch statistics: not the one-thread result, and a resume
	# must keep the thread count
	refute cmp -s "$X/t2.mea-model" "$X/main.mea-model"
	run --separate-stderr mea-train -j full -r -o "$X/t2.mea-model" -e 3 -b 32 -f 0.2 \
		< "$X/train.mea"
	[ "$status" -eq 2 ]
	[[ $stderr == *"threads=2"*"', not '"* && ${stderr#*, not } != *threads* ]]
	# and it still learns: held-out accuracy well above chance
	run mea-train -j eval -m "$X/t2.mea-model" < "$X/test.mea"
	awk '/^main/ { exit !($2 > 0.3) }' <<< "$output"
}

@test "mea-train: evaluation and calibration give the same answers with any thread count" {
	mea-train -j eval -m "$X/main.mea-model" -P -t 1 < "$X/train.mea" > "$X/eval1"
	mea-train -j eval -m "$X/main.mea-model" -P -t 3 < "$X/train.mea" > "$X/eval3"
	[ "$(wc -l < "$X/eval1")" -eq 641 ]
	cmp "$X/eval1" "$X/eval3"
	mea-train -j calibrate -m "$X/main.mea-model" -o "$X/cal1.mea-model" -f 0.5 -t 1 \
		< "$X/train.mea" > /dev/null
	mea-train -j calibrate -m "$X/main.mea-model" -o "$X/cal2.mea-model" -f 0.5 -t 2 \
		< "$X/train.mea" > /dev/null
	cmp "$X/cal1.mea-model" "$X/cal2.mea-model"
}

@test "mea-train: calibration stores the hardest half of the classes and T" {
	run --separate-stderr mea-train -j calibrate -m "$X/main.mea-model" -o "$X/cal.mea-model" \
		-f 0.2 -C 0.25 < "$X/train.mea"
	[ "$status" -eq 0 ]
	[[ $output == *"held-out images  128"* ]]
	[[ $output == *"T (share 0.250)"* ]]
	[ "$(grep -c ' precision ' <<< "$output")" -eq 5 ]
	# hardest first: precisions never decrease down the list
	grep ' precision ' <<< "$output" | awk '{ if (NR > 1 && $4 < p) exit 1; p = $4 }'
	# the gate reads the stored list and T back
	run mea-train -j eval -m "$X/cal.mea-model" < "$X/train.mea"
	[[ $output == *"above T      0.25"* ]] || [[ $output == *"above T      0.2"* ]]
}

@test "mea-train: extension training leaves the main block's answers unchanged" {
	mea-train -j calibrate -m "$X/main.mea-model" -o "$X/cal.mea-model" -f 0.2 < "$X/train.mea" > /dev/null
	run --separate-stderr mea-train -j ext -m "$X/cal.mea-model" -o "$X/ext.mea-model" -e 2 -b 32 \
		-f 0.2 < "$X/train.mea"
	[ "$status" -eq 0 ]
	[ "${#stderr_lines[@]}" -eq 2 ]
	mea-main -m "$X/cal.mea-model" < "$X/test.mea" > "$X/before.mea"
	mea-main -m "$X/ext.mea-model" < "$X/test.mea" > "$X/after.mea"
	model_test cmp logits "$X/before.mea" "$X/after.mea" 0
	model_test cmp feat "$X/before.mea" "$X/after.mea" 0
	# The frozen main block's momentum is not carried on to the device.
	tr '\0' '\n' < "$X/cal.mea-model" | grep -qx conv1.weight.velocity
	refute grep -qx conv1.weight.velocity <(tr '\0' '\n' < "$X/ext.mea-model")
	tr '\0' '\n' < "$X/ext.mea-model" | grep -qx adapt.conv1.weight.velocity
	run --separate-stderr mea-train -j eval -m "$X/ext.mea-model" < "$X/test.mea"
	[ "$status" -eq 0 ]
	[[ $output == *"images       64"* ]]
	[[ $output == *"edge "*"(main + extension, no cloud)"* ]]
	[[ $output == *"hard classes "*" main, "*" edge, on "*" images"* ]]
}

@test "mea-train: --distill learns from a teacher's cloud_logits, and needs them" {
	# The teacher: the 3-epoch main model, run as a cloud over the images.
	mea-main -c -m "$X/main.mea-model" < "$X/train.mea" > "$X/taught.mea"
	mea-train -j calibrate -m "$X/main.mea-model" -o "$X/cal2.mea-model" -f 0.2 \
		< "$X/train.mea" > /dev/null
	mea-train -j ext -m "$X/cal2.mea-model" -o "$X/kd.mea-model" -e 2 -b 32 -f 0.2 -q \
		-D 0.5 -K 3 < "$X/taught.mea"
	mea-train -j ext -m "$X/cal2.mea-model" -o "$X/nokd.mea-model" -e 2 -b 32 -f 0.2 -q \
		< "$X/taught.mea"
	refute cmp -s "$X/kd.mea-model" "$X/nokd.mea-model"
	# The same run with weight 0 is the plain one: the logits change nothing.
	mea-train -j ext -m "$X/cal2.mea-model" -o "$X/kd0.mea-model" -e 2 -b 32 -f 0.2 -q \
		-D 0 < "$X/taught.mea"
	cmp "$X/kd0.mea-model" "$X/nokd.mea-model"
	# A full job distils too; records without the teacher's logits are refused.
	mea-train -j full -m "$X/init.mea-model" -o "$X/kdfull.mea-model" -e 1 -b 32 -f 0.2 -q \
		-D 0.7 < "$X/taught.mea"
	run --separate-stderr mea-train -j ext -m "$X/cal2.mea-model" -o "$X/x.mea-model" -e 1 \
		-D 0.5 < "$X/train.mea"
	[ "$status" -eq 1 ]
	[[ $stderr == "mea-train: distilling needs a teacher's logits: records with cloud_logits"* ]]
	{ head -c 0 /dev/null; cat "$X/taught.mea"; cat "$X/test.mea"; } > "$X/half.mea"
	run --separate-stderr mea-train -j ext -m "$X/cal2.mea-model" -o "$X/x.mea-model" -e 1 \
		-D 0.5 < "$X/half.mea"
	[ "$status" -eq 1 ]
	[[ $stderr == "mea-train: stdin: record 640 "*"has no cloud_logits, the earlier records had them" ]]
	# Teacher logits of the wrong size or not finite name the record.
	local bad
	for bad in "3 0|cloud_logits is not 10 f32 values" "10 1 nan|cloud_logits[1] is not finite"; do
		printf 'field id s a.png\nfield label i 1\ntensor image u8 1,28,28 0\n' > "$X/bad.txt"
		printf 'tensor cloud_logits f32 %s\nend\n' "${bad%%|*}" >> "$X/bad.txt"
		mkrec_test < "$X/bad.txt" > "$X/bad.mea"
		run --separate-stderr mea-train -j full -m "$X/init.mea-model" -o "$X/x.mea-model" \
			-e 1 -D 0.5 < "$X/bad.mea"
		[ "$status" -eq 1 ]
		[ "$stderr" = "mea-train: stdin: record 0 (a.png): ${bad#*|}" ]
	done
}

@test "mea-train: --feature-drop changes extension training, repeats itself, and a resume must keep it" {
	mea-train -j calibrate -m "$X/main.mea-model" -o "$X/cal3.mea-model" -f 0.2 \
		< "$X/train.mea" > /dev/null
	ext() { mea-train -j ext -m "$X/cal3.mea-model" -e 2 -b 32 -f 0.2 -q -X 1 "$@" < "$X/train.mea"; }
	ext -o "$X/nodrop.mea-model"
	ext -o "$X/drop1.mea-model" -G 0.5
	ext -o "$X/drop2.mea-model" -G 0.5
	cmp "$X/drop1.mea-model" "$X/drop2.mea-model"
	refute cmp -s "$X/drop1.mea-model" "$X/nodrop.mea-model"
	# At 0 nothing is drawn: the run is the one without the option.
	ext -o "$X/drop0.mea-model" -G 0
	cmp "$X/drop0.mea-model" "$X/nodrop.mea-model"
	# Only training drops features: the main block answers as before.
	mea-main -m "$X/cal3.mea-model" < "$X/test.mea" > "$X/before3.mea"
	mea-main -m "$X/drop1.mea-model" < "$X/test.mea" > "$X/after3.mea"
	model_test cmp logits "$X/before3.mea" "$X/after3.mea" 0
	run --separate-stderr mea-train -j ext -r -o "$X/drop1.mea-model" -e 2 -b 32 -f 0.2 \
		< "$X/train.mea"
	[ "$status" -eq 2 ]
	[[ $stderr == *"fdrop=0.5"*"', not '"* && ${stderr#*, not } != *fdrop* ]]
	run --separate-stderr mea-train -j ext -r -o "$X/drop1.mea-model" -e 2 -b 32 -f 0.2 \
		-G 0.5 < "$X/train.mea"
	[ "$status" -eq 0 ]
	[[ ${stderr_lines[0]} == "epoch 2/2 "* ]]
	# The main block's own training has no frozen features to drop.
	run --separate-stderr mea-train -j full -m "$X/init.mea-model" -o "$X/x.mea-model" \
		-G 0.5 < "$X/train.mea"
	[ "$status" -eq 2 ]
	[[ $stderr == "mea-train: --feature-drop goes with --job ext"* ]]
}

@test "mea-train: --adaptive-from-main starts the adaptive block as the main block's layers" {
	mea-train -j calibrate -m "$X/main.mea-model" -o "$X/cal4.mea-model" -f 0.2 \
		< "$X/train.mea" > /dev/null
	# At learning rate 0 the weights stay as they start.
	ext() { mea-train -j ext -m "$X/cal4.mea-model" -e 1 -b 32 -f 0.2 -l 0 -q "$@" < "$X/train.mea"; }
	ext -o "$X/seeded.mea-model" -B
	ext -o "$X/unseeded.mea-model"
	for t in conv1.weight layer1.0.conv2.bn.weight layer3.0.conv1.weight layer3.0.down.weight; do
		model_test same "$X/seeded.mea-model" "adapt.$t" "$t"
		run model_test same "$X/unseeded.mea-model" "adapt.$t" "$t"
		[ "$status" -eq 1 ]
	done
	# The main block answers as before.
	mea-main -m "$X/seeded.mea-model" < "$X/test.mea" > "$X/seeded.out"
	mea-main -m "$X/cal4.mea-model" < "$X/test.mea" > "$X/cal4.out"
	model_test cmp logits "$X/seeded.out" "$X/cal4.out" 0
	# It is a way to start: a resume must keep it.
	run --separate-stderr mea-train -j ext -r -o "$X/seeded.mea-model" -e 1 -b 32 -f 0.2 \
		-l 0 < "$X/train.mea"
	[ "$status" -eq 2 ]
	[[ $stderr == *"adaptive=main"*"', not '"* ]]
	run --separate-stderr mea-train -j full -m "$X/init.mea-model" -o "$X/x.mea-model" -B \
		< "$X/train.mea"
	[ "$status" -eq 2 ]
	[[ $stderr == "mea-train: --adaptive-from-main goes with --job ext"* ]]
	# MobileNetV2's adaptive block is not a copy of its trunk.
	mea-train --init -a mobilenetv2 -w 0.25 -i 1x28x28 -k 10 -E -o "$X/mb.mea-model"
	run --separate-stderr mea-train -j ext -m "$X/mb.mea-model" -o "$X/x.mea-model" -e 1 -B \
		< "$X/train.mea"
	[ "$status" -eq 3 ]
	[[ $stderr == "mea-train: $X/mb.mea-model: the adaptive block's adapt."*" has no counterpart of its size in the main block" ]]
}

@test "mea-train: the extension job needs calibrated hard classes and an extension" {
	mea-train --init -a resnet8 -w 0.5 -i 1x28x28 -k 10 -o "$X/plain.mea-model"
	run --separate-stderr mea-train -j ext -m "$X/plain.mea-model" -o "$X/x.mea-model" -e 1 < "$X/train.mea"
	[ "$status" -eq 3 ]
	[[ $stderr == "mea-train: $X/plain.mea-model: no extension block"* ]]
}

@test "mea-train: unlabelled records are refused, naming the record" {
	printf 'field id s nolabel.png\ntensor image u8 1,28,28 0\nend\n' | mkrec_test > "$X/nolabel.mea"
	run --separate-stderr mea-train -j full -m "$X/init.mea-model" -o "$X/x.mea-model" -e 1 < "$X/nolabel.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-train: stdin: record 0 (nolabel.png): no label (training needs labelled records)" ]
	[ ! -e "$X/x.mea-model" ]
}

@test "mea-train: images of another shape are refused" {
	{ head -c 0 /dev/null; cat "$X/test.mea"; printf 'field id s big.png\nfield label i 1\ntensor image u8 1,32,32 0\nend\n' | mkrec_test; } > "$X/mixed.mea"
	run --separate-stderr mea-train -j full -m "$X/init.mea-model" -o "$X/x.mea-model" -e 1 < "$X/mixed.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-train: stdin: record 64 (big.png): image is 1x32x32, earlier ones 1x28x28" ]
	printf 'field id s big.png\nfield label i 1\ntensor image u8 1,32,32 0\nend\n' | mkrec_test > "$X/big.mea"
	run --separate-stderr mea-train -j full -m "$X/init.mea-model" -o "$X/x.mea-model" -e 1 < "$X/big.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-train: images are 1x32x32, the model takes 1x28x28" ]
}

@test "mea-train: an empty stream and a label out of range are refused" {
	run --separate-stderr mea-train -j full -m "$X/init.mea-model" -o "$X/x.mea-model" < /dev/null
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-train: stdin: no records (an empty training stream)" ]
	printf 'field id s x.png\nfield label i 10\ntensor image u8 1,28,28 0\nend\n' | mkrec_test > "$X/l10.mea"
	run --separate-stderr mea-train -j full -m "$X/init.mea-model" -o "$X/x.mea-model" < "$X/l10.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-train: stdin: record 0 (x.png): label 10 outside 0..9" ]
}

@test "mea-train: a diverging run stops at the first non-finite loss, naming the step" {
	run --separate-stderr mea-train -j full -m "$X/init.mea-model" -o "$X/nan.mea-model" -e 2 -b 32 \
		-l 1e30 -W 0 -q < "$X/train.mea"
	[ "$status" -eq 1 ]
	[[ $stderr =~ ^mea-train:\ epoch\ [12],\ step\ [0-9]+:\ loss\ is\ (nan|inf|-nan)\;\ stopping$ ]]
}

@test "mea-train: usage errors name the option" {
	run --separate-stderr mea-train -j full -m "$X/init.mea-model"
	[ "$status" -eq 2 ]
	[ "$stderr" = "mea-train: --job full needs --output" ]
	run --separate-stderr mea-train -j nosuch
	[ "$status" -eq 2 ]
	[[ $stderr == "mea-train: --job: 'nosuch' is not init, full, calibrate, ext or eval" ]]
	run --separate-stderr mea-train -j full -m a -o b -e 0
	[ "$status" -eq 2 ]
	[[ $stderr == "mea-train: --epochs: '0' is not a whole number from 1 to 100000" ]]
	run mea-train --version
	[ "$output" = "mea-train 0.1.0" ]
}

@test "mea-train: an output that is not a regular file is refused, not replaced" {
	mkfifo "$X/fifo"
	run --separate-stderr mea-train --init -a resnet8 -i 1x8x8 -k 3 -o "$X/fifo"
	[ "$status" -eq 4 ]
	[ "$stderr" = "mea-train: $X/fifo: not a regular file; a model is written only to a new or regular file" ]
	[ -p "$X/fifo" ]
}
