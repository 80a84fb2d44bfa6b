#!/usr/bin/env bats
# mea-gate(1): the MEANet routing rule on hand-made logits.

load helper

setup_file() {
	# A small MEANet model whose metadata the -m tests read: 4 classes,
	# hard classes 0,1 (the builder's default), T 0.3.
	if command -v mea-train > /dev/null; then
		mea-train --init -a resnet8 -i 1x8x8 -k 4 -E -T 0.3 \
			-o "$BATS_FILE_TMPDIR/m.mea-model" > /dev/null 2>&1 || true
	fi
}

setup() {
	S=$BATS_TEST_TMPDIR
}

# mk NAME: the records described on stdin into $S/NAME.mea
mk() {
	mkrec_test > "$S/$1.mea"
}

# get FILE REC KEY: the printed value of field or tensor KEY of record REC
get() {
	mkrec_test -p < "$1" | awk -v r="record $2" -v k="$3" \
		'/^record/ { cur = $0; next } cur == r && $1 == k { print $2 }'
}

# to FILE CMD...: run CMD with its stdout in FILE (binary output does not
# survive $output)
to() {
	local out=$1
	shift
	"$@" > "$out"
}

# close A B [TOL]: |A - B| <= TOL (default 1e-5)
close() {
	awk -v a="$1" -v b="$2" -v t="${3:-1e-5}" \
		'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'
}

@test "mea-gate: a confident easy record exits at main with its answer" {
	mk in <<-'REC'
	field id s a.png
	tensor logits f32 3 5 0 0
	end
	REC
	run --separate-stderr to "$S/out.mea" mea-gate --hard 1 < "$S/in.mea"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	# p = (e^5, 1, 1) / (e^5 + 2); H = -sum p log p
	close "$(get "$S/out.mea" 0 entropy)" 0.0798695
	[ "$(get "$S/out.mea" 0 main_pred)" = 0 ]
	close "$(get "$S/out.mea" 0 main_conf)" 0.986703
	[ "$(get "$S/out.mea" 0 hard)" = 0 ]
	[ "$(get "$S/out.mea" 0 route)" = '"main"' ]
	[ "$(get "$S/out.mea" 0 pred)" = 0 ]
	close "$(get "$S/out.mea" 0 conf)" 0.986703
	[ "$(get "$S/out.mea" 0 exit)" = '"main"' ]
	t=$(get "$S/out.mea" 0 t_gate)
	awk -v t="$t" 'BEGIN { exit !(t >= 0 && t < 10) }'
}

@test "mea-gate: a confident hard record goes to the extension without an answer" {
	mk in <<-'REC'
	field id s b.png
	field pred i 7
	field exit s main
	tensor logits f32 3 0 5 0
	end
	REC
	mea-gate --hard 2,1 < "$S/in.mea" > "$S/out.mea"
	[ "$(get "$S/out.mea" 0 route)" = '"ext"' ]
	[ "$(get "$S/out.mea" 0 hard)" = 1 ]
	[ "$(get "$S/out.mea" 0 main_pred)" = 1 ]
	# a stale answer from an earlier run is removed
	[ -z "$(get "$S/out.mea" 0 pred)" ]
	[ -z "$(get "$S/out.mea" 0 exit)" ]
	[ -z "$(get "$S/out.mea" 0 conf)" ]
}

@test "mea-gate: entropy above T goes to the cloud, below T stays at the edge" {
	# uniform over 3 classes: H = ln 3 = 1.0986
	mk in <<-'REC'
	tensor logits f32 3 0 0 0
	end
	REC
	mea-gate --hard 1 < "$S/in.mea" > "$S/def.mea"
	[ "$(get "$S/def.mea" 0 route)" = '"cloud"' ]
	close "$(get "$S/def.mea" 0 entropy)" 1.098612
	close "$(get "$S/def.mea" 0 main_conf)" 0.333333
	[ -z "$(get "$S/def.mea" 0 pred)" ]
	mea-gate --hard 1 -T 1.0 < "$S/in.mea" > "$S/lo.mea"
	[ "$(get "$S/lo.mea" 0 route)" = '"cloud"' ]
	mea-gate --hard 1 --threshold 1.1 < "$S/in.mea" > "$S/hi.mea"
	[ "$(get "$S/hi.mea" 0 route)" = '"main"' ]
	[ "$(get "$S/hi.mea" 0 pred)" = 0 ]
	mea-gate --hard 1 -T 1.0986 < "$S/in.mea" > "$S/below.mea"
	[ "$(get "$S/below.mea" 0 route)" = '"cloud"' ]
	mea-gate --hard 1 -T 1.0987 < "$S/in.mea" > "$S/above.mea"
	[ "$(get "$S/above.mea" 0 route)" = '"main"' ]
}

@test "mea-gate: --rule hardprob routes by the probability mass on hard classes" {
	# p = (0.379, 0.310, 0.310): argmax 0, mass on {1,2} = 0.621
	mk in <<-'REC'
	tensor logits f32 3 1 0.8 0.8
	end
	REC
	mea-gate -T 2 --hard 1,2 < "$S/in.mea" > "$S/a.mea"
	[ "$(get "$S/a.mea" 0 route)" = '"main"' ]
	[ "$(get "$S/a.mea" 0 hard)" = 0 ]
	mea-gate -T 2 --hard 1,2 --rule hardprob < "$S/in.mea" > "$S/h.mea"
	[ "$(get "$S/h.mea" 0 route)" = '"ext"' ]
	[ "$(get "$S/h.mea" 0 hard)" = 1 ]
	[ "$(get "$S/h.mea" 0 main_pred)" = 0 ]
	# the other way round: argmax 0 is hard, but its mass is 0.379
	mea-gate -T 2 --hard 0 < "$S/in.mea" > "$S/a0.mea"
	[ "$(get "$S/a0.mea" 0 route)" = '"ext"' ]
	mea-gate -T 2 --hard 0 -r hardprob < "$S/in.mea" > "$S/h0.mea"
	[ "$(get "$S/h0.mea" 0 route)" = '"main"' ]
	[ "$(get "$S/h0.mea" 0 pred)" = 0 ]
}

@test "mea-gate: --rule maxprob calls a record complex by its top probability, not T" {
	mk in <<-'REC'
	tensor logits f32 3 1 0.8 0.8
	end
	tensor logits f32 3 5 0 0
	end
	REC
	mea-gate --hard 2 -T 0 --rule maxprob < "$S/in.mea" > "$S/d.mea"
	[ "$(get "$S/d.mea" 0 route)" = '"cloud"' ]   # 0.379 < 0.5
	[ "$(get "$S/d.mea" 1 route)" = '"main"' ]    # 0.987, whatever T says
	mea-gate --hard 2 --rule maxprob --min-conf 0.3 < "$S/in.mea" > "$S/p.mea"
	[ "$(get "$S/p.mea" 0 route)" = '"main"' ]
	mea-gate --hard 2 --rule maxprob -p 0.99 < "$S/in.mea" > "$S/q.mea"
	[ "$(get "$S/q.mea" 1 route)" = '"cloud"' ]
}

@test "mea-gate: --no-cloud keeps complex records at the edge, routed by class" {
	mk in <<-'REC'
	tensor logits f32 3 0 0 0
	end
	tensor logits f32 3 0 0.1 0
	end
	REC
	mea-gate --hard 1 --no-cloud < "$S/in.mea" > "$S/out.mea"
	[ "$(get "$S/out.mea" 0 route)" = '"main"' ]
	[ "$(get "$S/out.mea" 0 pred)" = 0 ]
	[ "$(get "$S/out.mea" 1 route)" = '"ext"' ]
	[ "$(get "$S/out.mea" 1 hard)" = 1 ]
}

@test "mea-gate: --all marks every routed record sweep=1 and keeps the rule's routes" {
	mk in <<-'REC'
	tensor logits f32 3 5 0 0
	end
	tensor logits f32 3 0 5 0
	end
	tensor logits f32 3 0 0 0
	end
	field id s no-logits
	end
	REC
	mea-gate --hard 1 --all < "$S/in.mea" > "$S/out.mea"
	[ "$(get "$S/out.mea" 0 route)" = '"main"' ]
	[ "$(get "$S/out.mea" 1 route)" = '"ext"' ]
	[ "$(get "$S/out.mea" 2 route)" = '"cloud"' ]
	for r in 0 1 2; do [ "$(get "$S/out.mea" $r sweep)" = 1 ]; done
	[ -z "$(get "$S/out.mea" 3 sweep)" ]
	[ "$(get "$S/out.mea" 0 exit)" = '"main"' ]
}

@test "mea-gate: records without logits pass through byte for byte" {
	mk in <<-'REC'
	field id s x
	field seq i 4
	tensor image u8 1,2,2 1 2 3 4
	end
	field id s y
	field odd.key s kept
	end
	REC
	mea-gate --hard 1 < "$S/in.mea" > "$S/out.mea"
	cmp "$S/in.mea" "$S/out.mea"
}

@test "mea-gate: unknown fields and tensors of a routed record are kept in order" {
	mk in <<-'REC'
	field id s z
	field x.first s one
	tensor extra i32 2 7 9
	tensor logits f32 3 5 0 0
	tensor feat f32 2 0.5 0.25
	field x.last i 3
	end
	REC
	mea-gate --hard 1 < "$S/in.mea" > "$S/out.mea"
	run mkrec_test -p < "$S/out.mea"
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = '  id           "z"' ]
	[ "${lines[2]}" = '  x.first      "one"' ]
	[ "${lines[3]}" = '  x.last       3' ]
	[[ ${lines[4]} == "  entropy "* ]]
	[[ $output == *"extra        i32 [2] 7 9"*"logits       f32 [3] 5 0 0"*"feat         f32 [2] 0.5 0.25"* ]]
}

@test "mea-gate: order and count of records are kept" {
	for i in 0 1 2 3 4 5 6; do
		printf 'field id s r%d\ntensor logits f32 3 %d 2 0\nend\nfield id s p%d\nend\n' $i $i $i
	done | mk in
	mea-gate --hard 1 < "$S/in.mea" > "$S/out.mea"
	run bash -c "mkrec_test -p < '$S/out.mea' | awk '\$1 == \"id\" { printf \"%s \", \$2 }'"
	[ "$output" = '"r0" "p0" "r1" "p1" "r2" "p2" "r3" "p3" "r4" "p4" "r5" "p5" "r6" "p6" ' ]
}

@test "mea-gate: NaN logits are refused naming the record; earlier records were written" {
	mk in <<-'REC'
	field id s a.png
	tensor logits f32 3 5 0 0
	end
	field id s shirt.png
	tensor logits f32 3 1 nan 0
	end
	field id s c.png
	tensor logits f32 3 5 0 0
	end
	REC
	run --separate-stderr to "$S/got.mea" mea-gate --hard 1 < "$S/in.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-gate: stdin: record 1 (shirt.png): logits contain NaN" ]
	# record 0, whole and routed, and nothing after it
	[ "$(mkrec_test -p < "$S/got.mea" | grep -c '^record')" -eq 1 ]
	[ "$(get "$S/got.mea" 0 id)" = '"a.png"' ]
	[ "$(get "$S/got.mea" 0 route)" = '"main"' ]
}

@test "mea-gate: infinite logits and logits of the wrong kind or size are refused" {
	printf 'tensor logits f32 3 1 inf 0\nend\n' | mk inf
	run --separate-stderr mea-gate --hard 1 < "$S/inf.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-gate: stdin: record 0: logits contain an infinite value" ]
	[ -z "$output" ]
	printf 'tensor logits f16 3 1 2 0\nend\n' | mk f16
	run --separate-stderr mea-gate --hard 1 < "$S/f16.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-gate: stdin: record 0: logits are f16, expected f32" ]
	printf 'field id s k\ntensor logits f32 3 1 2 0\nend\n' | mk k3
	run --separate-stderr mea-gate --hard 1 --classes 4 < "$S/k3.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-gate: stdin: record 0 (k): logits have 3 classes, expected 4" ]
	run --separate-stderr mea-gate --hard 5 < "$S/k3.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-gate: stdin: record 0 (k): logits have 3 classes but class 5 is hard" ]
}

@test "mea-gate: a truncated stream is named and nothing partial is written" {
	printf 'field id s a\ntensor logits f32 3 5 0 0\nend\nfield id s b\ntensor logits f32 3 5 0 0\nend\n' | mk two
	head -c "$(( $(stat -c %s "$S/two.mea") - 5 ))" "$S/two.mea" > "$S/cut.mea"
	run --separate-stderr to "$S/out.mea" mea-gate --hard 1 < "$S/cut.mea"
	[ "$status" -eq 1 ]
	[[ $stderr == "mea-gate: stdin: record 1: truncated"* ]]
	[ "$(mkrec_test -p < "$S/out.mea" | grep -c '^record')" -eq 1 ]
}

@test "mea-gate: bad option values are refused with status 2 and nothing on stdout" {
	printf 'tensor logits f32 3 5 0 0\nend\n' | mk in
	for args in "-T -1" "-T x" "--threshold=1e9" "--rule foo" "--hard 1,x" "--hard 1,,2" \
		"--hard 1," "--hard -1" "--hard 1,1" "--hard 1 --classes 0" "--hard 4 --classes 4" \
		"--hard 1 --min-conf 0.5" "--hard 1 -r maxprob -p 1.5" "" "--hard 1 --bogus" \
		"--hard 1 extra" "--hard"; do
		run --separate-stderr mea-gate $args < "$S/in.mea"
		[ "$status" -eq 2 ] || { echo "args '$args': status $status"; false; }
		[ -z "$output" ] || { echo "args '$args': output"; false; }
		[[ ${stderr%%$'\n'*} == "mea-gate: "* ]] || { echo "args '$args': $stderr"; false; }
	done
	run --separate-stderr mea-gate -T x --hard 1
	[[ $stderr == "mea-gate: --threshold: 'x' is not a number from 0 to 1e+06"* ]]
	run --separate-stderr mea-gate --rule foo --hard 1
	[[ $stderr == "mea-gate: --rule: 'foo' is not argmax, hardprob or maxprob"* ]]
}

@test "mea-gate: --hard '' means no hard classes" {
	printf 'tensor logits f32 3 0 5 0\nend\n' | mk in
	mea-gate --hard '' < "$S/in.mea" > "$S/out.mea"
	[ "$(get "$S/out.mea" 0 route)" = '"main"' ]
	[ "$(get "$S/out.mea" 0 pred)" = 1 ]
}

@test "mea-gate: --help and --version" {
	run --separate-stderr mea-gate --help
	[ "$status" -eq 0 ]
	[[ ${lines[0]} == "usage: mea-gate "* ]]
	[ -z "$stderr" ]
	run --separate-stderr mea-gate -V
	[ "$status" -eq 0 ]
	[ "$output" = "mea-gate 0.1.0" ]
}

@test "mea-gate: a write to a full disk fails with status 4" {
	printf 'tensor logits f32 3 5 0 0\nend\n' | mk in
	run --separate-stderr to /dev/full mea-gate --hard 1 < "$S/in.mea"
	[ "$status" -eq 4 ]
	[[ $stderr == "mea-gate: stdout"*"No space left on device" ]]
}

@test "mea-gate: -m takes T, the hard classes and K from the model; options override" {
	[ -f "$BATS_FILE_TMPDIR/m.mea-model" ] || skip "mea-train --init could not make a model"
	M=$BATS_FILE_TMPDIR/m.mea-model
	mk in <<-'REC'
	tensor logits f32 4 0 5 0 0
	end
	tensor logits f32 4 0 0 5 0
	end
	tensor logits f32 4 0 0 1 0
	end
	REC
	# H: 0.119 for a 5-logit peak, 1.268 for a 1-logit one; T 0.3; hard 0,1
	mea-gate -m "$M" < "$S/in.mea" > "$S/out.mea"
	[ "$(get "$S/out.mea" 0 route)" = '"ext"' ]
	[ "$(get "$S/out.mea" 1 route)" = '"main"' ]
	[ "$(get "$S/out.mea" 2 route)" = '"cloud"' ]
	mea-gate -m "$M" -T 2 --hard 2 < "$S/in.mea" > "$S/over.mea"
	[ "$(get "$S/over.mea" 0 route)" = '"main"' ]
	[ "$(get "$S/over.mea" 1 route)" = '"ext"' ]
	[ "$(get "$S/over.mea" 2 route)" = '"ext"' ]
	printf 'tensor logits f32 3 0 5 0\nend\n' | mk k3
	run --separate-stderr mea-gate -m "$M" < "$S/k3.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-gate: stdin: record 0: logits have 3 classes, expected 4" ]
}

@test "mea-gate: a missing or malformed model file is status 3" {
	run --separate-stderr mea-gate -m "$BATS_TEST_TMPDIR/none.mea-model" < /dev/null
	[ "$status" -eq 3 ]
	[[ $stderr == "mea-gate: "*"none.mea-model"* ]]
	[ -z "$output" ]
	printf 'not a model' > "$S/bad.mea-model"
	run --separate-stderr mea-gate -m "$S/bad.mea-model" < /dev/null
	[ "$status" -eq 3 ]
	[ "$(wc -l <<< "$stderr")" -eq 1 ]
}
