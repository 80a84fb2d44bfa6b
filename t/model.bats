#!/usr/bin/env bats
# The model file (mea-model(5)), the graph engine and mea-train --init,
# through the model_test tool and mea-main.

load helper

setup() {
	S=$BATS_TEST_TMPDIR
	model_test tiny "$S/tiny.mea-model"
}

# A model that fails to load: status 3, one stderr line naming the file,
# nothing on stdout.
refuse() {
	local file=$1 want=$2
	run -3 --separate-stderr mea-main -m "$file" < /dev/null
	[ -z "$output" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "mea-main: $file: "* ]]
	[[ $stderr == *"$want"* ]] || { echo "stderr: $stderr" >&2; return 1; }
}

@test "model: a hand-built net gives the logits of a plain-loop reference" {
	run --separate-stderr model_test forward "$S/tiny.mea-model"
	[ "$status" -eq 0 ]
	[[ $output == *"max relative error"* ]]
}

@test "model: the extension runs from the image and the feature map alone" {
	model_test tiny "$S/edge" meanet
	run --separate-stderr model_test ext "$S/edge"
	[ "$status" -eq 0 ]
	mea-train --init -a resnet8 -i 1x12x12 -k 4 --meanet -o "$S/r8"
	run --separate-stderr model_test ext "$S/r8"
	[ "$status" -eq 0 ]
}

@test "model: decoding and encoding a file gives the same bytes" {
	run --separate-stderr model_test roundtrip "$S/tiny.mea-model"
	[ "$status" -eq 0 ]
	[[ $output == *identical* ]]
}

@test "model: the header starts with MEAMODEL and version 1, little-endian" {
	run bash -c "head -c 12 '$S/tiny.mea-model' | od -An -tx1"
	[ "$status" -eq 0 ]
	[[ $output == " 4d 45 41 4d 4f 44 45 4c 01 00 00 00" ]]
}

@test "model: a bad magic is refused" {
	model_test corrupt magic "$S/tiny.mea-model" "$S/bad"
	refuse "$S/bad" "bad magic"
}

@test "model: another version is refused" {
	model_test corrupt version "$S/tiny.mea-model" "$S/bad"
	refuse "$S/bad" "version 2, this program reads version 1"
}

@test "model: a file cut at any of several offsets is refused as truncated" {
	size=$(stat -c %s "$S/tiny.mea-model")
	for n in 0 7 100 127 128 1000 $((size / 2)) $((size - 1)); do
		head -c "$n" "$S/tiny.mea-model" > "$S/cut"
		refuse "$S/cut" "truncated: $n bytes"
	done
}

@test "model: junk after the end is refused" {
	{ cat "$S/tiny.mea-model"; printf x; } > "$S/long"
	refuse "$S/long" "junk at the end"
}

@test "model: a weight of the wrong shape is named with both shapes" {
	model_test corrupt shape "$S/tiny.mea-model" "$S/bad"
	refuse "$S/bad" "node 1 (conv1): weight shape 2x4x3x3, expected 4x2x3x3"
}

@test "model: a NaN weight is refused, naming the tensor" {
	model_test corrupt nan "$S/tiny.mea-model" "$S/bad"
	refuse "$S/bad" "(a.conv1.weight): value 4 is nan, not finite"
}

@test "model: a dangling connection is refused" {
	model_test corrupt dangling "$S/tiny.mea-model" "$S/bad"
	refuse "$S/bad" "(a.bn1): input 0 is node 9999, which does not exist"
}

@test "model: a cycle is refused" {
	model_test corrupt cycle "$S/tiny.mea-model" "$S/bad"
	refuse "$S/bad" "(a.conv1): input 0 is node 4, not an earlier node"
}

@test "model: an absurd count is refused before anything is allocated" {
	model_test corrupt count "$S/tiny.mea-model" "$S/bad"
	refuse "$S/bad" "2147483647 nodes, limit 4096"
}

@test "model: header costs that disagree with the graph are refused" {
	model_test corrupt macs "$S/tiny.mea-model" "$S/bad"
	refuse "$S/bad" "header: main block 15895 MACs"
}

@test "model: a main-block node moved to the extension is refused" {
	model_test corrupt block "$S/tiny.mea-model" "$S/bad"
	refuse "$S/bad" "a node of the extension block cannot read node 2 (bn1) of the main block"
}

@test "model: a missing file is status 3" {
	refuse "$S/nonexistent.mea-model" "No such file or directory"
}

@test "model: the training graph's gradients match finite differences" {
	run --separate-stderr model_test grad
	[ "$status" -eq 0 ]
	run --separate-stderr model_test grad meanet
	[ "$status" -eq 0 ]
	[[ $output == *" 0 disagree"* ]]
}

@test "model: feature dropout drops the main block's channels, the same in any worker" {
	run --separate-stderr model_test drop
	[ "$status" -eq 0 ]
	[[ $output == *" 0 faults" ]]
}

@test "model: inference's own lowerings give the values training's would" {
	# Row shifts (ResNets' 3x3 convolutions), fused inverted residuals
	# (MobileNetV2's large blocks), the classifier on the whole batch:
	# logits and the first residual adds, against a plain plan.
	# MobileNetV2 at 96x96 and batch 9 runs its steps in runs of growing
	# slices (1, 4 and 9 images when this was written; graph.c,
	# plan_slices), its small
	# depthwise planes a group at a time at stride 1 and 2, and its 1x1
	# convolutions over small planes several images to a GEMM.
	for a in "resnet20 1x28x28 10 12" "resnet18 3x64x64 10 3" "mobilenetv2 3x224x224 20 2" \
			"mobilenetv2 3x96x96 10 9"; do
		run model_test lowering $a
		echo "$output"
		[ "$status" -eq 0 ]
		# At 224x224 it fuses its three blocks at 112x112 and 56x56.
		[[ $a != "mobilenetv2 3x224x224"* || $output == *"48 steps, 54 plain"* ]]
	done
	[[ $output == *"mobilenetv2 3x96x96: 54 steps, 54 plain"* ]]
}

@test "model: the main block can be extracted from an edge model" {
	model_test tiny "$S/edge" meanet
	model_test extract "$S/edge" "$S/main"
	run --separate-stderr model_test info "$S/main"
	[ "$status" -eq 0 ]
	[[ $output == *"block main "* ]]
	[[ $output != *adaptive* ]]
	[[ $output != *extension* ]]
	run --separate-stderr model_test forward "$S/main"
	[ "$status" -eq 0 ]
}

@test "mea-train: resnet20 at 1x28x28 costs 31.0 M MACs and 0.272 M parameters" {
	run --separate-stderr mea-train --init -a resnet20 -i 1x28x28 -k 10 -o "$S/r20" -v
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[[ $stderr == *"block main          31021952 MACs     272186 params (31.0 M MACs, 0.272 M params)"* ]]
}

@test "mea-train: the paper's CIFAR-100 MEANet costs 69.1, 12.5 and 21.8 M MACs" {
	run --separate-stderr mea-train --init -a resnet32 -i 3x32x32 -k 100 --meanet -o "$S/m" -v
	[ "$status" -eq 0 ]
	[[ $stderr == *"main          69130496 MACs"* ]]
	[[ $stderr == *"adaptive      12500992 MACs"* ]]
	[[ $stderr == *"extension     21761152 MACs"* ]]
	[[ $stderr == *"50 hard"* ]]
}

@test "mea-train: ResNet-18 and MobileNetV2 have their published sizes" {
	run --separate-stderr mea-train --init -a resnet18 -i 3x224x224 -k 1000 -o "$S/m" -v
	[[ $stderr == *"11689512 params"* ]]
	run --separate-stderr mea-train --init -a mobilenetv2 -i 3x224x224 -k 1000 -o "$S/m" -v
	[[ $stderr == *"3504872 params"* ]]
}

@test "mea-train: every architecture builds a MEANet model that loads" {
	for a in resnet8 resnet110 resnet18 resnet34 mobilenetv2; do
		mea-train --init -a $a -i 3x20x17 -k 7 --meanet -w 0.5 -o "$S/$a"
		run --separate-stderr mea-main -m "$S/$a" < /dev/null
		[ "$status" -eq 0 ]
	done
}

@test "mea-train: --adaptive-depth deepens the adaptive block alone" {
	mea-train --init -a resnet20 -i 1x28x28 -k 10 --meanet -s 2 -o "$S/a1" -v 2> "$S/v1"
	mea-train --init -a resnet20 -i 1x28x28 -k 10 --meanet -A 3 -s 2 -o "$S/a3" -v 2> "$S/v3"
	# Three BasicBlocks a stage: the adaptive block is the main block's
	# trunk, and costs what it costs; main and extension stay as they were.
	grep -q "block adaptive      31021312 MACs     271536 params" "$S/v3"
	grep -q "block adaptive       9345280 MACs" "$S/v1"
	[ "$(grep -v adaptive "$S/v1")" = "$(grep -v adaptive "$S/v3")" ]
	# The main block's random start is the same, so its training is too.
	model_test extract "$S/a1" "$S/m1"
	model_test extract "$S/a3" "$S/m3"
	cmp "$S/m1" "$S/m3"
	run --separate-stderr mea-main -m "$S/a3" < /dev/null
	[ "$status" -eq 0 ]
	run -2 --separate-stderr mea-train --init -a resnet20 -i 1x28x28 -k 10 -E -A 4 -o "$S/x"
	[ "$stderr" = "mea-train: an adaptive block of 4 BasicBlocks a stage: resnet20 allows 3" ]
	run -2 --separate-stderr mea-train --init -a mobilenetv2 -i 3x32x32 -k 10 -E -A 2 -o "$S/x"
	[[ $stderr == *"mobilenetv2 allows 1" ]]
	run -2 --separate-stderr mea-train --init -a resnet20 -i 1x28x28 -k 10 -A 2 -o "$S/x"
	[ "$stderr" = "mea-train: --adaptive-depth needs --meanet" ]
	[ ! -e "$S/x" ]
}

@test "mea-train: the same seed gives the same file, another seed another" {
	mea-train --init -a resnet8 -i 1x28x28 -k 10 -s 5 -o "$S/a"
	mea-train --init -a resnet8 -i 1x28x28 -k 10 -s 5 -o "$S/b"
	mea-train --init -a resnet8 -i 1x28x28 -k 10 -s 6 -o "$S/c"
	cmp "$S/a" "$S/b"
	refute cmp -s "$S/a" "$S/c"
}

@test "mea-train: class names, mean and std are stored" {
	printf '%s\n' zero one two > "$S/names"
	mea-train --init -a resnet8 -i 3x8x8 -k 3 -N "$S/names" -M 0.5 -S 0.1,0.2,0.3 -o "$S/m"
	grep -q one "$S/m"
	run --separate-stderr mea-main -m "$S/m" < /dev/null
	[ "$status" -eq 0 ]
}

@test "mea-train: an unknown architecture and missing options are usage errors" {
	run -2 --separate-stderr mea-train --init -a resnet21 -i 1x28x28 -k 10 -o "$S/m"
	[ -z "$output" ]
	[[ $stderr == "mea-train: unknown architecture 'resnet21'"* ]]
	[ ! -e "$S/m" ]
	run -2 --separate-stderr mea-train --init -a resnet20
	[[ $stderr == *"needs --arch, --input, --classes and --output"* ]]
	run -2 --separate-stderr mea-train --init -a resnet20 -i 28x28 -k 10 -o "$S/m"
	[[ $stderr == *"--input: '28x28' is not a shape like 1x28x28"* ]]
}

@test "mea-model(5): the example reader compiles and lists the nodes" {
	sed -n '/^A complete reader in C/,/^\.Ed/p' "$TOP/man/mea-model.5" |
		sed '1,/^\.Bd/d;$d' | sed 's/\\e/\\/g' > "$S/reader.c"
	cc -std=c11 -Wall -Werror -o "$S/reader" "$S/reader.c"
	run --separate-stderr "$S/reader" "$S/tiny.mea-model"
	[ "$status" -eq 0 ]
	[[ ${lines[0]} == "input 2x6x5, 3 classes, main 15894 MACs" ]]
	[[ $output == *" 13 b.down.bn "*"bn      block 0 <- 12"* ]]
}
