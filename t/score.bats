#!/usr/bin/env bats
# mea-score(1): summaries, tables and sweeps of small streams whose
# answers were worked out by hand.

load helper

setup() {
	S=$BATS_TEST_TMPDIR
	# Eight answered records.  By hand:
	#   correct: r0 r1 r2 r4 r6 r7 = 6 of 8 -> accuracy 0.75
	#   exits: main r0 r1 r7 (3, all right), ext r2 r3 (2, 1 right),
	#          cloud r4 r5 (2, 1 right), fallback r6 (1, right)
	#   class  answers labelled hits  precision recall
	#     0       1       2       1     1.0000   0.5000
	#     1       3       2       2     0.6667   1.0000
	#     2       3       2       2     0.6667   1.0000
	#     3       1       2       1     1.0000   0.5000
	#   hard classes inferred from main_pred with hard=1: 2, 3
	#   per image: macs_edge 1200/8 = 150, macs_cloud 2000/8 = 250,
	#              bytes_up 300/8 = 37.5, bytes_down 40/8 = 5
	#   t_main: (0.1 + 0.3) / 2 = 0.2 over 2 records
	cat > "$S/eight.txt" <<-'REC'
	field id s r0
	field seq i 0
	field label i 0
	field main_pred i 0
	field hard i 0
	field pred i 0
	field exit s main
	field macs_edge i 100
	field t_main f 0.1
	end
	field id s r1
	field seq i 1
	field label i 1
	field main_pred i 1
	field hard i 0
	field pred i 1
	field exit s main
	field macs_edge i 100
	field t_main f 0.3
	end
	field id s r2
	field seq i 2
	field label i 2
	field main_pred i 2
	field hard i 1
	field pred i 2
	field exit s ext
	field macs_edge i 300
	end
	field id s r3
	field seq i 3
	field label i 3
	field main_pred i 3
	field hard i 1
	field pred i 2
	field exit s ext
	field macs_edge i 300
	end
	field id s r4
	field seq i 4
	field label i 3
	field main_pred i 2
	field hard i 1
	field pred i 3
	field exit s cloud
	field macs_edge i 100
	field macs_cloud i 1000
	field bytes_up i 100
	field bytes_down i 20
	end
	field id s r5
	field seq i 5
	field label i 0
	field main_pred i 0
	field hard i 0
	field pred i 1
	field exit s cloud
	field macs_edge i 100
	field macs_cloud i 1000
	field bytes_up i 100
	field bytes_down i 20
	end
	field id s r6
	field seq i 6
	field label i 1
	field main_pred i 1
	field hard i 0
	field pred i 1
	field exit s fallback
	field macs_edge i 100
	field bytes_up i 100
	end
	field id s r7
	field seq i 7
	field label i 2
	field pred i 2
	field exit s main
	field macs_edge i 100
	end
	REC
	mkrec_test < "$S/eight.txt" > "$S/eight.mea"
	# Round numbers: edge 150 * 2 = 300 pJ, link (37.5 + 5) * 8 * 1000 =
	# 340000 pJ, cloud 250 * 10 = 2500 pJ; total 342800 pJ = 0.3428 uJ.
	printf '# a test profile\nedge_mac_pj 2\nlink_bit_pj 1000 # 1 nJ\n\ncloud_mac_pj 10\n' \
		> "$S/test.energy"
}

# squeeze: the summary with runs of blanks made one space
squeeze() {
	tr -s ' ' <<< "$1"
}

@test "mea-score: the summary gives accuracy, exits and classes as worked out by hand" {
	run --separate-stderr mea-score -e "$S/test.energy" < "$S/eight.mea"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	out=$(squeeze "$output")
	[[ $out == *"records 8"* ]]
	[[ $out == *"accuracy 0.7500 (6 of 8 labelled)"* ]]
	[[ $out == *$'\nmain 3 0.3750 1.0000\n'* ]]
	[[ $out == *$'\next 2 0.2500 0.5000\n'* ]]
	[[ $out == *$'\ncloud 2 0.2500 0.5000\n'* ]]
	[[ $out == *$'\nfallback 1 0.1250 1.0000\n'* ]]
	[[ $out != *"none"* ]]
	[[ $out == *"hard classes: 2 3 (inferred from the records' hard field)"* ]]
	[[ $out == *$'\n0 1 2 1.0000 0.5000\n'* ]]
	[[ $out == *$'\n1 3 2 0.6667 1.0000\n'* ]]
	[[ $out == *$'\n2 * 3 2 0.6667 1.0000\n'* ]]
	[[ $out == *$'\n3 * 1 2 1.0000 0.5000\n'* ]]
}

@test "mea-score: costs, energy and stage times per image" {
	run --separate-stderr mea-score --energy "$S/test.energy" < "$S/eight.mea"
	[ "$status" -eq 0 ]
	out=$(squeeze "$output")
	[[ $out == *"edge MACs 150"* ]]
	[[ $out == *"cloud MACs 250"* ]]
	[[ $out == *"bytes up 37.5"* ]]
	[[ $out == *"bytes down 5.0"* ]]
	[[ $out == *"energy per image 0.343 uJ (profile $S/test.energy)"* ]]
	[[ $out == *"edge 0.000 uJ (MACs x 2 pJ)"* ]]
	[[ $out == *"link 0.340 uJ (bits up and down x 1000 pJ)"* ]]
	[[ $out == *"cloud 0.003 uJ (MACs x 10 pJ)"* ]]
	[[ $out == *"counted: edge and cloud multiply-accumulates"* ]]
	[[ $out == *"t_main 0.200000 (2 records)"* ]]
}

@test "mea-score: --json parses and carries the same numbers" {
	command -v python3 > /dev/null || skip "no python3"
	mea-score --json -e "$S/test.energy" < "$S/eight.mea" > "$S/s.json"
	run python3 - "$S/s.json" <<-'PY'
	import json, sys
	s = json.load(open(sys.argv[1]))
	close = lambda a, b: abs(a - b) < 1e-9
	assert s["records"] == 8 and s["labelled"] == 8 and s["correct"] == 6
	assert close(s["accuracy"], 0.75)
	x = s["exits"]
	assert set(x) == {"main", "ext", "cloud", "fallback"}
	assert x["main"]["records"] == 3 and close(x["main"]["accuracy"], 1)
	assert close(x["ext"]["share"], 0.25) and close(x["ext"]["accuracy"], 0.5)
	assert x["fallback"]["records"] == 1
	c = s["classes"]
	assert [k["hard"] for k in c] == [False, False, True, True]
	assert close(c[1]["precision"], 2 / 3) and close(c[0]["recall"], 0.5)
	assert close(s["per_image"]["macs_edge"], 150)
	assert close(s["per_image"]["bytes_up"], 37.5)
	assert close(s["energy"]["total_uj"], 0.3428)
	assert close(s["time"]["t_main"]["mean"], 0.2)
	assert s["lost"] == 0
	print("ok")
	PY
	[ "$status" -eq 0 ]
	[ "$output" = ok ]
}

@test "mea-score: --records prints one tab-separated line per record" {
	run --separate-stderr mea-score --records < "$S/eight.mea"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 9 ]
	[ "${lines[0]}" = "$(printf 'id\tlabel\tpred\texit\tconf\tentropy\tmain_pred\troute\thard\tmacs_edge\tmacs_cloud\tbytes_up\tbytes_down')" ]
	[ "${lines[4]}" = "$(printf 'r3\t3\t2\text\t\t\t3\t\t1\t300\t\t\t')" ]
	[ "${lines[5]}" = "$(printf 'r4\t3\t3\tcloud\t\t\t2\t\t1\t100\t1000\t100\t20')" ]
	printf 'field id s a\tb\\c\nfield conf f 0.25\nend\n' | mkrec_test > "$S/tab.mea"
	run mea-score -r < "$S/tab.mea"
	[ "${lines[1]}" = "$(printf 'a\\tb\\\\c\t\t\t\t0.25\t\t\t\t\t\t\t\t')" ]
}

@test "mea-score: class names from --names label the table" {
	printf 'zero\none\ntwo\nthree\n' > "$S/names"
	run --separate-stderr mea-score -N "$S/names" < "$S/eight.mea"
	[ "$status" -eq 0 ]
	out=$(squeeze "$output")
	[[ $out == *$'\n2 two * 3 2 0.6667 1.0000\n'* ]]
	# every named class has a row, seen or not
	run --separate-stderr mea-score -N "$TOP/share/fashion-mnist.classes" < "$S/eight.mea"
	[ "$status" -eq 0 ]
	[[ $(squeeze "$output") == *$'\n9 Ankle_boot 0 0 - -\n'* ]]
	run --separate-stderr mea-score -N "$S/missing" < "$S/eight.mea"
	[ "$status" -eq 4 ]
	[[ $stderr == "mea-score: $S/missing: No such file or directory" ]]
}

@test "mea-score: --hard names the hard classes instead of inferring them" {
	run --separate-stderr mea-score --hard 1,0 < "$S/eight.mea"
	[ "$status" -eq 0 ]
	out=$(squeeze "$output")
	[[ $out == *"hard classes: 0 1 (from --hard)"* ]]
	[[ $out == *$'\n0 * 1 2 1.0000 0.5000\n'* ]]
	[[ $out == *$'\n2 3 2 0.6667 1.0000\n'* ]]
}

@test "mea-score: without labels the accuracy columns say no labels" {
	grep -v '^field label' "$S/eight.txt" | mkrec_test > "$S/nolab.mea"
	run --separate-stderr mea-score < "$S/nolab.mea"
	[ "$status" -eq 0 ]
	out=$(squeeze "$output")
	[[ $out == *"accuracy no labels"* ]]
	[[ $out == *$'\nmain 3 0.3750 no labels\n'* ]]
	[[ $out == *$'\nfallback 1 0.1250 no labels\n'* ]]
	[[ $out == *$'\n1 3 0 no labels no labels\n'* ]]
	mea-score --json < "$S/nolab.mea" | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["accuracy"] is None'
}

@test "mea-score: records without an answer count as wrong and are reported" {
	printf 'field label i 1\nfield route s ext\nend\nfield label i 1\nfield pred i 1\nfield exit s main\nend\n' |
		mkrec_test > "$S/half.mea"
	run --separate-stderr mea-score < "$S/half.mea"
	[ "$status" -eq 0 ]
	out=$(squeeze "$output")
	[[ $out == *"accuracy 0.5000 (1 of 2 labelled)"* ]]
	[[ $out == *'unanswered 1 (no "pred"; counted as wrong)'* ]]
	[[ $out == *$'\nnone 1 0.5000 0.0000\n'* ]]
}

@test "mea-score: a truncated stream is an error naming the record, and no summary" {
	head -c "$(( $(stat -c %s "$S/eight.mea") - 3 ))" "$S/eight.mea" > "$S/cut.mea"
	run --separate-stderr mea-score < "$S/cut.mea"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[[ $stderr == "mea-score: stdin: record 7: truncated"* ]]
	[ "$(wc -l <<< "$stderr")" -eq 1 ]
	run --separate-stderr mea-score --json < "$S/cut.mea"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
}

@test "mea-score: a gap in seq is reported on stderr and gives status 1" {
	awk '/^field id s r3$/ { skip = 1 } !skip { print } /^end$/ { skip = 0 }' "$S/eight.txt" |
		mkrec_test > "$S/gap.mea"
	run --separate-stderr mea-score < "$S/gap.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-score: stdin: record 3: seq jumps from 2 to 4 (1 lost)" ]
	[[ $(squeeze "$output") == *"records 7"*"lost records 1 (in 1 gaps of seq)"* ]]
	# two streams one after the other: seq starts again, which is no gap
	cat "$S/eight.mea" "$S/eight.mea" > "$S/twice.mea"
	run --separate-stderr mea-score < "$S/twice.mea"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[[ $(squeeze "$output") == *"records 16"* ]]
}

@test "mea-score: bad field values are errors naming the record" {
	printf 'field id s x.png\nfield label i 12\nend\n' | mkrec_test > "$S/big.mea"
	run --separate-stderr mea-score --classes 10 < "$S/big.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-score: stdin: record 0 (x.png): label 12 is not a class id from 0 to 9" ]
	[ -z "$output" ]
	printf 'field pred s two\nend\n' | mkrec_test > "$S/str.mea"
	run --separate-stderr mea-score < "$S/str.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-score: stdin: record 0: field 'pred' is not an integer" ]
	printf 'field pred i 1\nfield t_main f nan\nend\n' | mkrec_test > "$S/nan.mea"
	run --separate-stderr mea-score < "$S/nan.mea"
	[ "$status" -eq 1 ]
	[[ $stderr == "mea-score: stdin: record 0: field 't_main' is "*"not a finite number >= 0" ]]
}

@test "mea-score: energy profiles are checked, and the default one is found" {
	run --separate-stderr mea-score < "$S/eight.mea"
	[ "$status" -eq 0 ]
	[[ $output == *"(profile $TOP/share/energy/default.energy)"* ]]
	run --separate-stderr mea-score -e int8-edge < "$S/eight.mea"
	[[ $output == *"(profile $TOP/share/energy/int8-edge.energy)"* ]]
	for f in "$TOP"/share/energy/*.energy; do
		mea-score -e "$f" < /dev/null > /dev/null
	done
	printf 'edge_mac_pj 1\nlink_bit_pj 1\ncloud_mac_pj 1\nwatts 3\n' > "$S/bad.energy"
	run --separate-stderr mea-score -e "$S/bad.energy" < "$S/eight.mea"
	[ "$status" -eq 1 ]
	[[ $stderr == "mea-score: $S/bad.energy: line 4: unknown key 'watts'"* ]]
	[ -z "$output" ]
	printf 'edge_mac_pj 1\nlink_bit_pj -1\ncloud_mac_pj 1\n' > "$S/neg.energy"
	run --separate-stderr mea-score -e "$S/neg.energy" < "$S/eight.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-score: $S/neg.energy: line 2: link_bit_pj: '-1' is not a number >= 0" ]
	printf 'edge_mac_pj 1\ncloud_mac_pj 1\n' > "$S/short.energy"
	run --separate-stderr mea-score -e "$S/short.energy" < "$S/eight.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-score: $S/short.energy: no link_bit_pj" ]
	run --separate-stderr mea-score -e no-such-profile < "$S/eight.mea"
	[ "$status" -eq 4 ]
	[ "$stderr" = "mea-score: no-such-profile: no such file or profile" ]
}

@test "mea-score: bad option values are refused with status 2 and nothing on stdout" {
	for args in "--json --records" "--sweep --json" "--steps 3" "--sweep --steps 0" \
		"--classes 0" "--hard x" "--hard 1,1,x" "--sweep --macs-main -1" "--bogus" "extra" \
		"-K 4 --hard 4"; do
		run --separate-stderr mea-score $args < "$S/eight.mea"
		[ "$status" -eq 2 ] || { echo "args '$args': status $status"; false; }
		[ -z "$output" ] || { echo "args '$args': output"; false; }
		[[ ${stderr%%$'\n'*} == "mea-score: "* ]] || { echo "args '$args': $stderr"; false; }
	done
	run mea-score --version
	[ "$output" = "mea-score 0.1.0" ]
	run --separate-stderr mea-score -h
	[ "$status" -eq 0 ]
	[[ ${lines[0]} == "usage: mea-score "* ]]
}

sweep_records() {
	# Four records made with mea-gate --all (by hand):
	#   H     hard main_pred ext_pred cloud_pred label  edge right? cloud right?
	#   0.1   0    0         -        0          0      yes         yes
	#   0.5   1    2         1        1          1      yes (ext)   yes
	#   0.9   0    0         -        2          2      no          yes
	#   0.9   0    3         -        -          3      yes         (edge's) yes
	# main block 100 MACs, extension 50, cloud 1000, 10 bytes up a record.
	cat > "$S/sweep.txt" <<-'REC'
	field label i 0
	field sweep i 1
	field entropy f 0.1
	field main_pred i 0
	field hard i 0
	field cloud_pred i 0
	field macs_edge i 100
	field macs_cloud i 1000
	field bytes_up i 10
	end
	field label i 1
	field sweep i 1
	field entropy f 0.5
	field main_pred i 2
	field hard i 1
	field ext_pred i 1
	field cloud_pred i 1
	field macs_edge i 150
	field macs_cloud i 1000
	field bytes_up i 10
	end
	field label i 2
	field sweep i 1
	field entropy f 0.9
	field main_pred i 0
	field hard i 0
	field cloud_pred i 2
	field macs_edge i 100
	field macs_cloud i 1000
	field bytes_up i 10
	end
	field label i 3
	field sweep i 1
	field entropy f 0.9
	field main_pred i 3
	field hard i 0
	field macs_edge i 100
	end
	REC
	mkrec_test < "$S/sweep.txt" > "$S/sweep.mea"
}

@test "mea-score: --sweep scores every distinct threshold from one pass" {
	sweep_records
	run --separate-stderr mea-score --sweep -e "$S/test.energy" < "$S/sweep.mea"
	[ "$status" -eq 0 ]
	[ "$stderr" = "mea-score: 1 of 4 records have no cloud_pred: their cloud answer is the edge's" ]
	# T=0: all to the cloud: 4 right; edge 100/img, cloud 3000/4 = 750,
	# bytes 30/4 = 7.5; energy (100*2 + 7.5*8*1000 + 750*10) pJ = 0.0677 uJ
	[ "${lines[0]}" = "$(printf 'T\taccuracy\tcloud\tmain\text\tmacs_edge\tmacs_cloud\tbytes\tenergy_uj')" ]
	[ "${lines[1]}" = "$(printf '0\t1.0000\t1.0000\t0.0000\t0.0000\t100\t750\t7.5\t0.068')" ]
	# T=0.1: the first record at the edge; the 0.9 without macs_cloud costs 0
	[ "${lines[2]}" = "$(printf '0.1\t1.0000\t0.7500\t0.2500\t0.0000\t100\t500\t5.0\t0.045')" ]
	# T=0.5: one ext at the edge: edge (4*100 + 50)/4 = 112.5 MACs;
	# energy (112.5*2 + 2.5*8*1000 + 250*10) pJ = 0.0227 uJ
	[ "${lines[3]}" = "$(printf '0.5\t1.0000\t0.5000\t0.2500\t0.2500\t112\t250\t2.5\t0.023')" ]
	# T=0.9: all at the edge, the third record is wrong
	[ "${lines[4]}" = "$(printf '0.9\t0.7500\t0.0000\t0.7500\t0.2500\t112\t0\t0.0\t0.000')" ]
	[ "${#lines[@]}" -eq 5 ]
}

@test "mea-score: --sweep with --steps and fixed costs" {
	sweep_records
	# grid 0, 0.3, 0.6, 0.9; main 10, ext 4, cloud 7 MACs, 1 byte an offload
	run --separate-stderr mea-score --sweep --steps 3 -M 10 -X 4 -C 7 -B 1 \
		-e "$S/test.energy" < "$S/sweep.mea"
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "$(printf '0\t1.0000\t1.0000\t0.0000\t0.0000\t10\t7\t1.0\t0.008')" ]
	[ "${lines[2]}" = "$(printf '0.3\t1.0000\t0.7500\t0.2500\t0.0000\t10\t5\t0.8\t0.006')" ]
	[ "${lines[3]}" = "$(printf '0.6\t1.0000\t0.5000\t0.2500\t0.2500\t11\t4\t0.5\t0.004')" ]
	[ "${lines[4]}" = "$(printf '0.9\t0.7500\t0.0000\t0.7500\t0.2500\t11\t0\t0.0\t0.000')" ]
	[ "${#lines[@]}" -eq 5 ]
}

@test "mea-score: --sweep without labels leaves the accuracy column empty" {
	sweep_records
	grep -v '^field label' "$S/sweep.txt" | mkrec_test > "$S/nolab.mea"
	run --separate-stderr mea-score --sweep -e "$S/test.energy" < "$S/nolab.mea"
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "$(printf '0\t\t1.0000\t0.0000\t0.0000\t100\t750\t7.5\t0.068')" ]
	[ "${#lines[@]}" -eq 5 ]
}

@test "mea-score: --sweep refuses records not made for it" {
	run --separate-stderr mea-score --sweep < "$S/eight.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-score: stdin: record 0 (r0): not marked sweep=1: make the records with mea-gate --all" ]
	[ -z "$output" ]
	printf 'field sweep i 1\nfield entropy f 0.2\nfield main_pred i 1\nfield hard i 1\nend\n' |
		mkrec_test > "$S/noext.mea"
	run --separate-stderr mea-score --sweep < "$S/noext.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-score: stdin: record 0: a hard record without ext_pred: run mea-ext after mea-gate --all" ]
	printf 'field sweep i 1\nfield entropy f 0.2\nfield main_pred i 1\nfield hard i 1\nfield ext_pred i 1\nfield macs_edge i 9\nend\n' |
		mkrec_test > "$S/allhard.mea"
	run --separate-stderr mea-score --sweep < "$S/allhard.mea"
	[ "$status" -eq 2 ]
	[[ $stderr == "mea-score: every record is hard"*"give --macs-main" ]]
	run --separate-stderr mea-score --sweep --macs-main 5 < "$S/allhard.mea"
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "$(printf '0\t\t1.0000\t0.0000\t0.0000\t5\t0\t0.0\t0.000')" ]
	[ "${lines[2]}" = "$(printf '0.2\t\t0.0000\t0.0000\t1.0000\t9\t0\t0.0\t0.000')" ]
}

@test "mea-score: a threshold printed by --sweep selects the same records in mea-gate" {
	# logits whose entropies are not round numbers
	for l in "5 0 0" "2 1 0" "1 1 0" "0.3 0.2 0" "3 0 2" "0 0 0"; do
		printf 'field label i 0\ntensor logits f32 3 %s\nend\n' "$l"
	done | mkrec_test > "$S/l.mea"
	mea-gate --hard '' --all < "$S/l.mea" > "$S/g.mea"
	mea-score --sweep -M 1 < "$S/g.mea" 2> /dev/null > "$S/sweep.tsv"
	# a header, T = 0 and the six distinct entropies
	[ "$(wc -l < "$S/sweep.tsv")" -eq 8 ]
	tail -n +2 "$S/sweep.tsv" | while IFS=$'\t' read -r T acc cloud rest; do
		mea-gate --hard '' -T "$T" < "$S/l.mea" > "$S/r.mea"
		n=$(mkrec_test -p < "$S/r.mea" | grep -c 'route        "cloud"' || true)
		got=$(awk -v n="$n" 'BEGIN { printf "%.4f", n / 6 }')
		[ "$got" = "$cloud" ] || { echo "T $T: $got of the records to the cloud, sweep says $cloud"; false; }
	done
}

@test "mea-score: -m takes the hard classes and the class count from the model" {
	command -v mea-train > /dev/null || skip "no mea-train"
	mea-train --init -a resnet8 -i 1x8x8 -k 5 -E -o "$S/m.mea-model" > /dev/null 2>&1 ||
		skip "mea-train --init could not make a model"
	run --separate-stderr mea-score -m "$S/m.mea-model" < "$S/eight.mea"
	[ "$status" -eq 0 ]
	out=$(squeeze "$output")
	[[ $out == *"hard classes: 0 1 (from the model)"* ]]
	[[ $out == *$'\n4 0 0 - -\n'* ]]
	run --separate-stderr mea-score -m "$S/nothing.mea-model" < "$S/eight.mea"
	[ "$status" -eq 3 ]
	[ -z "$output" ]
}

@test "mea-score: gate and score in one pipeline" {
	printf 'field id s a\nfield label i 0\ntensor logits f32 3 5 0 0\nend\nfield id s b\nfield label i 1\ntensor logits f32 3 0 5 0\nend\nfield id s c\nfield label i 2\ntensor logits f32 3 0 0 0\nend\n' |
		mkrec_test > "$S/l.mea"
	run --separate-stderr bash -c "set -o pipefail; mea-gate --hard 1 < '$S/l.mea' | mea-score"
	[ "$status" -eq 0 ]
	out=$(squeeze "$output")
	[[ $out == *"accuracy 0.3333 (1 of 3 labelled)"* ]]
	[[ $out == *$'\nmain 1 0.3333 1.0000\n'* ]]
	[[ $out == *$'\nnone 2 0.6667 0.0000\n'* ]]
	[[ $out == *"hard classes: 1 (inferred"* ]]
}

@test "mea-score: a write to a full disk fails with status 4" {
	run --separate-stderr bash -c "mea-score < '$S/eight.mea' > /dev/full"
	[ "$status" -eq 4 ]
	[ "$stderr" = "mea-score: stdout: No space left on device" ]
}
