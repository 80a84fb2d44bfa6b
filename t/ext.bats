#!/usr/bin/env bats
# mea-ext: the adaptive and extension blocks on the records routed to them.

load helper

setup_file() {
	export X=$BATS_FILE_TMPDIR
	mea-train --init -a resnet8 -i 1x28x28 -k 10 --meanet -s 3 -o "$X/edge.mea-model"
	mea-train --init -a resnet8 -i 1x28x28 -k 10 -o "$X/plain.mea-model"
	mea-decode -n 20 "$FMNIST/t10k-images-idx3-ubyte.gz" |
		mea-main -m "$X/edge.mea-model" > "$X/main.mea"
}

# fields FILE KEY: the value of KEY in every record, one a line ("-" if absent)
fields() {
	mea-decode --text "$1" | awk -v k="$2" '
		/^record/ { if (n++) print (v == "" ? "-" : v); v = "" }
		$1 == k { v = $2 }
		END { if (n) print (v == "" ? "-" : v) }'
}

@test "mea-ext: records routed to the extension get a hard-class answer" {
	# T = 100: nothing is complex; hard classes 0..4 of the untrained model
	mea-gate -m "$X/edge.mea-model" -T 100 < "$X/main.mea" > "$X/gated.mea"
	run --separate-stderr bash -c "mea-ext -m '$X/edge.mea-model' < '$X/gated.mea' > '$X/ext.mea'"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	paste <(fields "$X/ext.mea" route) <(fields "$X/ext.mea" exit) \
		<(fields "$X/ext.mea" ext_pred) <(fields "$X/ext.mea" pred) > "$X/t"
	[ "$(wc -l < "$X/t")" -eq 20 ]
	nex=0
	while read -r route exit ext pred; do
		if [ "$route" = '"ext"' ]; then
			nex=$((nex + 1))
			[ "$exit" = '"ext"' ]
			[ "$ext" = "$pred" ]
			[ "$ext" -ge 0 ] && [ "$ext" -le 4 ]
		else
			[ "$ext" = "-" ] && [ "$exit" = '"main"' ]
		fi
	done < "$X/t"
	[ "$nex" -gt 0 ]
	[ "$(mea-decode --text "$X/ext.mea" | grep -c 'ext_logits   f32 \[5\]')" -eq "$nex" ]
}

@test "mea-ext: --profile tables the adaptive and extension layers on stderr" {
	mea-gate -m "$X/edge.mea-model" -T 100 < "$X/main.mea" > "$X/gated.mea"
	mea-ext -m "$X/edge.mea-model" -P < "$X/gated.mea" > /dev/null 2> "$X/err"
	grep -Eq '^mea-ext: profile: [0-9]+ steps, [0-9]+ images' "$X/err"
	grep -Eq ' adapt\.conv1 +conv 3x3 s1 ' "$X/err"
	grep -Eq ' ext\.fc +fc ' "$X/err"
	refute grep -q ' layer1\.0\.conv1 ' "$X/err"    # the main block is not run again
}

@test "mea-ext: records not routed to it pass through byte for byte, in order" {
	mea-gate -m "$X/edge.mea-model" -T 100 -H '' < "$X/main.mea" > "$X/easy.mea"
	run bash -c "mea-ext -m '$X/edge.mea-model' < '$X/easy.mea' | cmp - '$X/easy.mea'"
	[ "$status" -eq 0 ]
	run bash -c "mkrec_test < /dev/null > '$X/empty.mea'; printf 'field id s a\nfield x s unknown\nend\n' | mkrec_test | mea-ext -m '$X/edge.mea-model' | mkrec_test -p"
	[ "$status" -eq 0 ]
	[[ $output == *'x            "unknown"'* ]]
}

@test "mea-ext: order and ids are kept and the batch size does not change answers" {
	mea-gate -m "$X/edge.mea-model" -T 100 < "$X/main.mea" > "$X/gated.mea"
	mea-ext -m "$X/edge.mea-model" -b 1 < "$X/gated.mea" > "$X/b1.mea"
	mea-ext -m "$X/edge.mea-model" -b 7 < "$X/gated.mea" > "$X/b7.mea"
	diff <(fields "$X/b1.mea" id) <(fields "$X/main.mea" id)
	diff <(fields "$X/b1.mea" ext_pred) <(fields "$X/b7.mea" ext_pred)
	diff <(fields "$X/b1.mea" seq) <(seq 0 19)
}

@test "mea-ext: in sweep mode every hard prediction is answered, without an exit" {
	mea-gate -m "$X/edge.mea-model" -T 0 --all < "$X/main.mea" > "$X/sweep.mea"
	mea-ext -m "$X/edge.mea-model" < "$X/sweep.mea" > "$X/swept.mea"
	paste <(fields "$X/swept.mea" hard) <(fields "$X/swept.mea" ext_pred) \
		<(fields "$X/swept.mea" exit) > "$X/t"
	while read -r hard ext exit; do
		[ "$exit" = "-" ]
		if [ "$hard" = 1 ]; then [ "$ext" != "-" ]; else [ "$ext" = "-" ]; fi
	done < "$X/t"
}

@test "mea-ext: a routed record without a feature map is named, earlier ones are kept" {
	{ mea-gate -m "$X/edge.mea-model" -T 100 -H '0,1,2,3,4,5,6,7,8,9' < "$X/main.mea" | head -c 0
	  printf 'field id s nofeat.png\nfield route s ext\ntensor image u8 1,28,28 0\nend\n' | mkrec_test; } > "$X/bad.mea"
	run --separate-stderr mea-ext -m "$X/edge.mea-model" < "$X/bad.mea"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[ "$stderr" = "mea-ext: stdin: record 0 (nofeat.png): no feat tensor (run mea-main with a MEANet edge model first)" ]
	mea-gate -m "$X/edge.mea-model" -T 100 -H '0,1,2,3,4,5,6,7,8,9' < "$X/main.mea" > "$X/all.mea"
	cat "$X/all.mea" "$X/bad.mea" > "$X/bad2.mea"
	run --separate-stderr bash -c "mea-ext -m '$X/edge.mea-model' < '$X/bad2.mea' > '$X/partial.mea'"
	[ "$status" -eq 1 ]
	[[ $stderr == "mea-ext: stdin: record 20 (nofeat.png): no feat tensor"* ]]
	[ "$(fields "$X/partial.mea" exit | grep -c ext)" -eq 20 ]
}

@test "mea-ext: a model without an extension block is refused with status 3" {
	run --separate-stderr mea-ext -m "$X/plain.mea-model" < "$X/main.mea"
	[ "$status" -eq 3 ]
	[ -z "$output" ]
	[[ $stderr == "mea-ext: $X/plain.mea-model: not a MEANet edge model"* ]]
	run --separate-stderr mea-ext -m "$X/missing.mea-model" < /dev/null
	[ "$status" -eq 3 ]
	[[ $stderr == "mea-ext: $X/missing.mea-model"* ]]
}

@test "mea-ext: --help, --version and a bad option" {
	run --separate-stderr mea-ext --help
	[ "$status" -eq 0 ] && [[ $output == usage:* ]]
	run --separate-stderr mea-ext --version
	[ "$output" = "mea-ext 0.1.0" ]
	run --separate-stderr mea-ext -m x -b 0
	[ "$status" -eq 2 ]
	[[ $stderr == "mea-ext: --batch: '0' is not a whole number"* ]]
}
