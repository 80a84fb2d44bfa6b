#!/usr/bin/env bats
# Hostile input, for every program: random bytes, streams cut at every
# byte, NaN and infinity, sizes at and past the documented limits, model
# files with a broken header, closed pipes, full disks and interrupted
# writes.  Each must end with the documented status, one line on stderr
# naming the file or record, and never a partial record on stdout.  Under
# `make check-asan` any sanitizer report fails the run as well.

load helper

setup_file() {
	D=$BATS_FILE_TMPDIR
	# the model of the brief (resnet8, 8x8 grey, 3 classes), and tiny 4x4
	# ones that load fast for the tests that run a program many times
	mea-train --init -a resnet8 -i 1x8x8 -k 3 -o "$D/m3.mea-model"
	mea-train --init -a resnet8 -i 1x4x4 -k 3 -w 0.25 -o "$D/m4.mea-model"
	mea-train --init -a resnet8 -i 1x4x4 -k 4 -E -w 0.25 -o "$D/e4.mea-model"
	awk 'BEGIN { for (i = 0; i < 4; i++) printf "field id s r%d\nfield seq i %d\n" \
		"field label i %d\ntensor image u8 1,4,4 %d 3 200\nend\n", i, i, i % 4, 40 * i }' |
		mkrec_test > "$D/img4.mea"
	mea-main -m "$D/e4.mea-model" < "$D/img4.mea" > "$D/main4.mea"
	mea-gate -m "$D/e4.mea-model" -T 100 < "$D/main4.mea" > "$D/gate4.mea"
	mea-gate -m "$D/e4.mea-model" -T 0 < "$D/main4.mea" > "$D/cloud4.mea"
}

setup() {
	S=$BATS_TEST_TMPDIR
	D=$BATS_FILE_TMPDIR
}

# rnd SEED N: N pseudo-random bytes, the same for the same seed
rnd() {
	perl -e 'srand($ARGV[0]); print pack("C*", map { int rand 256 } 1 .. $ARGV[1])' "$@"
}

# rndrec SEED N: a record header that passes the checks, then N random bytes
rndrec() {
	perl -e 'srand($ARGV[0]); my $n = $ARGV[1];
		print pack("a4 v v V v v", "MEAR", 1, 0, $n, 1 + int rand 3, int rand 3),
			pack("C*", map { int rand 256 } 1 .. $n)' "$@"
}

# fails PROG STATUS WHERE: the last `run --separate-stderr` ended with
# STATUS, wrote nothing on stdout and one line "PROG: WHERE..." on stderr
fails() {
	if [ "$status" -ne "$2" ] || [ -n "$output" ] || [ "${#stderr_lines[@]}" -ne 1 ] ||
			[[ $stderr != "$1: $3"* ]]; then
		echo "status $status (want $2), stdout ${#output} bytes, stderr:" >&2
		echo "$stderr" >&2
		return 1
	fi
}

# records FILE: the number of whole records in FILE, "N+partial" when a
# partial one follows them
records() {
	local st=0
	mkrec_test -p < "$1" > "$1.txt" 2> /dev/null || st=$?
	grep -c '^record' "$1.txt"
	[ $st -eq 0 ] || echo "+partial"
}

@test "every program: random bytes on stdin are refused in one line naming record 0" {
	for seed in 1 2 3; do
		rnd $seed 3000 > "$S/r$seed"
		rndrec $seed 300 > "$S/h$seed"
		for f in "$S/r$seed" "$S/h$seed"; do
			for cmd in "mea-decode -" "mea-main -m $D/m4.mea-model" "mea-gate --hard 1" \
					"mea-ext -m $D/e4.mea-model" "mea-offload -e fakecloud_test" "mea-score" \
					"mea-train -j eval -m $D/m4.mea-model" \
					"mea-train -j full -e 1 -q -m $D/m4.mea-model -o $S/out.mea-model"; do
				run --separate-stderr $cmd < "$f"
				fails "${cmd%% *}" 1 "stdin: record 0: " || { echo "$cmd < $f" >&2; return 1; }
			done
		done
	done
	[ ! -e "$S/out.mea-model" ]
}

@test "mea-decode: random bytes as an image, an IDX or a CIFAR file are refused, naming the file" {
	for seed in 1 2 3; do
		rnd $seed 2000 > "$S/x$seed.png"
		run --separate-stderr mea-decode "$S/x$seed.png"
		fails mea-decode 1 "$S/x$seed.png: not a PNG or JPEG image"
		{ printf '\211PNG\r\n\032\n'; rnd $seed 500; } > "$S/p$seed.png"
		run --separate-stderr mea-decode "$S/p$seed.png"
		fails mea-decode 1 "$S/p$seed.png: "
		{ printf '\377\330\377'; rnd $seed 500; } > "$S/j$seed.jpg"
		run --separate-stderr mea-decode "$S/j$seed.jpg"
		fails mea-decode 1 "$S/j$seed.jpg: "
		{ printf '\0\0\010\003\0\0\0\011\0\0\0\007\0\0\0\005'; rnd $seed 300; } > "$S/i$seed-idx3-ubyte"
		run --separate-stderr bash -c 'mea-decode "$1" > /dev/null' _ "$S/i$seed-idx3-ubyte"
		[ "$status" -eq 1 ]
		[ "${#stderr_lines[@]}" -eq 1 ]
		[[ $stderr == "mea-decode: $S/i$seed-idx3-ubyte: image 8: truncated"* ]]
		run --separate-stderr mea-decode -b 10 "$S/x$seed.png"
		[ "$status" -eq 1 ]
		[[ $stderr == "mea-decode: $S/x$seed.png: image 0: "* ]]
	done
}

@test "every program: random bytes as the model file are status 3, naming the file" {
	rnd 4 5000 > "$S/junk.mea-model"
	for cmd in "mea-main -m" "mea-gate -m" "mea-ext -m" "mea-score -m" "mea-train -j eval -m"; do
		run --separate-stderr $cmd "$S/junk.mea-model" < "$D/img4.mea"
		fails "${cmd%% *}" 3 "$S/junk.mea-model: not a mea model file (bad magic)" ||
			{ echo "$cmd" >&2; return 1; }
	done
	run --separate-stderr mea-offload -m "$S/junk.mea-model" < "$D/cloud4.mea"
	fails mea-offload 3 "$S/junk.mea-model: not a mea model file (bad magic)"
}

@test "every program: text files of random bytes are refused in one line" {
	rnd 5 200 > "$S/junk"
	run --separate-stderr mea-score -N "$S/junk" < /dev/null
	fails mea-score 1 "$S/junk: line "
	run --separate-stderr mea-score -e "$S/junk" < /dev/null
	fails mea-score 1 "$S/junk: line "
	run --separate-stderr mea-decode -L "$S/junk" "$S/junk"
	fails mea-decode 1 "$S/junk: line "
	run --separate-stderr mea-train --init -a resnet8 -i 1x4x4 -k 3 -N "$S/junk" -o "$S/m"
	fails mea-train 2 "$S/junk: line 1: "
	[ ! -e "$S/m" ]
}

@test "mea-decode, mea-score: a line that never ends is refused without taking its memory" {
	run --separate-stderr mea-score -N /dev/zero < /dev/null
	fails mea-score 1 "/dev/zero: line 1: longer than 255 bytes"
	run --separate-stderr mea-decode -L /dev/zero "$D/img4.mea"
	fails mea-decode 1 "/dev/zero: line 1: longer than 255 bytes"
	decode_mkimg_test png "$S/a.png" grey 8 > /dev/null
	{ echo "$S/a.png"; head -c 5000000 /dev/zero | tr '\0' a; echo; echo "$S/a.png"; } > "$S/list"
	run --separate-stderr bash -c 'mea-decode < "$1" > "$1.mea"' _ "$S/list"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mea-decode: stdin: line 2: longer than 4096 bytes" ]
	[ "$(records "$S/list.mea")" = 2 ]
	[ -x /usr/bin/time ] && [ -z "${ASAN_OPTIONS:-}" ] || skip "no /usr/bin/time, or under a sanitizer"
	/usr/bin/time -f %M -o "$S/rss" mea-decode < "$S/list" > /dev/null 2>&1 || true
	[ "$(tail -n 1 "$S/rss")" -lt 16384 ]
}

# cut_everywhere PROG ARGS...: run PROG on $S/two.mea cut at every byte
cut_everywhere() {
	local n i whole len0 want st
	n=$(wc -c < "$S/two.mea")
	len0=$(head -c 12 "$S/two.mea" | tail -c 4 | od -An -tu4 | tr -d ' ')
	len0=$((len0 + 16))
	for ((i = 0; i < n; i++)); do
		head -c $i "$S/two.mea" > "$S/cut"
		st=0
		"$@" < "$S/cut" > "$S/out" 2> "$S/err" || st=$?
		whole=$(( i >= len0 ? 1 : 0 ))
		[ "$(records "$S/out")" = $whole ] || { echo "offset $i: a partial record" >&2; return 1; }
		if [ $i -eq 0 ] || [ $i -eq $len0 ]; then
			[ $st -eq 0 ] && [ ! -s "$S/err" ] || { echo "offset $i: status $st" >&2; return 1; }
			continue
		fi
		want="$1: stdin: record $whole: truncated"
		[ $st -eq 1 ] && [ "$(wc -l < "$S/err")" -eq 1 ] && [[ $(cat "$S/err") == "$want"* ]] ||
			{ echo "offset $i: status $st, stderr $(cat "$S/err")" >&2; return 1; }
	done
}

@test "mea-gate: a stream cut at any byte passes the whole records and names the cut one" {
	printf 'field id s a\ntensor logits f32 3 2 1 0\nend\nfield id s b\ntensor logits f32 3 0 0 3\nend\n' |
		mkrec_test > "$S/two.mea"
	cut_everywhere mea-gate --hard 1
}

@test "mea-main: a stream cut at any byte passes the whole records and names the cut one" {
	printf 'field id s a\ntensor image u8 1,4,4 1 2 3\nend\nfield id s b\ntensor image u8 1,4,4 9\nend\n' |
		mkrec_test > "$S/two.mea"
	cut_everywhere mea-main -m "$D/m4.mea-model"
}

@test "mea-gate: NaN and infinite logits are refused, naming the record, after the good ones" {
	for v in nan inf -inf; do
		printf 'field id s ok\ntensor logits f32 3 1 0 0\nend\nfield id s bad.png\ntensor logits f32 3 1 %s 0\nend\n' \
			"$v" | mkrec_test > "$S/in.mea"
		run --separate-stderr bash -c 'mea-gate --hard 1 < "$1" > "$2"' _ "$S/in.mea" "$S/out.mea"
		fails mea-gate 1 "stdin: record 1 (bad.png): logits contain"
		[ "$(records "$S/out.mea")" = 1 ]
	done
}

@test "mea-score: NaN or infinite costs, times and entropies are refused, naming the record" {
	for f in 'macs_edge f nan' 'bytes_up f inf' 't_main f nan' 'macs_cloud f -inf'; do
		printf 'field id s x\nfield %s\nend\n' "$f" | mkrec_test > "$S/in.mea"
		run --separate-stderr mea-score < "$S/in.mea"
		fails mea-score 1 "stdin: record 0 (x): field '${f%% *}'"
	done
	printf 'field id s x\nfield entropy f nan\nfield main_pred i 1\nfield hard i 0\nfield sweep i 1\nend\n' |
		mkrec_test > "$S/in.mea"
	run --separate-stderr mea-score --sweep < "$S/in.mea"
	fails mea-score 1 "stdin: record 0 (x): field 'entropy'"
	# an empty stream is a header and no rows (this once sorted a NULL)
	run --separate-stderr mea-score --sweep < /dev/null
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[ -z "$stderr" ]
	# logits are the gate's business: the scorer passes over them
	printf 'field id s x\ntensor logits f32 2 nan inf\nend\n' | mkrec_test > "$S/in.mea"
	run --separate-stderr mea-score -j < "$S/in.mea"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
}

@test "mea-main, mea-ext, mea-train: NaN and infinite f32 images and features are refused" {
	for v in nan inf -inf; do
		printf 'field id s ok\ntensor image f32 1,4,4 0.5\nend\nfield id s bad\ntensor image f32 1,4,4 0.5 %s 0\nend\n' \
			"$v" | mkrec_test > "$S/in.mea"
		run --separate-stderr bash -c 'mea-main -m "$1" < "$2" > "$3"' _ "$D/m4.mea-model" "$S/in.mea" "$S/out.mea"
		fails mea-main 1 "stdin: record 1 (bad): image: pixel 1 of channel 0 is not finite"
		[ "$(records "$S/out.mea")" = 1 ]
		run --separate-stderr mea-train -j eval -m "$D/m4.mea-model" < "$S/in.mea"
		fails mea-train 1 "stdin: record 0 (ok): "
	done
	# a feature map with a NaN, routed to the extension
	printf 'field id s x\nfield route s ext\ntensor image u8 1,4,4 1\ntensor feat f32 16,1,1 0.5 nan\nend\n' |
		mkrec_test > "$S/ext.mea"
	run --separate-stderr mea-ext -m "$D/e4.mea-model" < "$S/ext.mea"
	[ "$status" -eq 1 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "mea-ext: stdin: record 0 (x): feat "* ]]
	[ -z "$output" ]
}

# rec NF NT FORMAT VALUES... [+N]: a record header with NF fields and NT
# tensors, then the body packed by perl's pack(FORMAT, VALUES), then N
# bytes 'a'
rec() {
	perl -e 'my ($nf, $nt, $fmt, @v) = @ARGV; my $pad = "";
		$pad = "a" x $1 if @v && $v[-1] =~ /^\+(\d+)$/ && pop @v;
		my $b = pack($fmt, @v) . $pad;
		print pack("a4 v v V v v", "MEAR", 1, 0, length $b, $nf, $nt), $b' "$@"
}

@test "every stream reader: dimensions at the limit pass, beyond it they are refused" {
	# one dimension: 1048576 is the limit
	rec 0 1 'C C C C a V' 1 1 1 0 x 1048576 +1048576 > "$S/at.mea"
	run --separate-stderr bash -c 'mea-gate --hard 1 < "$1" > "$2"' _ "$S/at.mea" "$S/out.mea"
	[ "$status" -eq 0 ]
	cmp "$S/at.mea" "$S/out.mea"
	rec 0 1 'C C C C a V' 1 1 1 0 x 1048577 > "$S/over.mea"
	run --separate-stderr mea-gate --hard 1 < "$S/over.mea"
	fails mea-gate 1 "stdin: record 0: tensor 'x': dimension 0 is 1048577 (at most 1048576)"
	# four dimensions are the most
	rec 0 1 'C C C C a V5' 1 5 1 0 x 1 1 1 1 1 > "$S/five.mea"
	run --separate-stderr mea-score < "$S/five.mea"
	fails mea-score 1 "stdin: record 0: tensor 'x': 5 dimensions (at most 4)"
	# 256 MiB of tensor data is the most, refused before reading it
	rec 0 1 'C C C C a V2' 1 2 1 0 x 1048576 257 > "$S/big.mea"
	run --separate-stderr mea-main -m "$D/m4.mea-model" < "$S/big.mea"
	fails mea-main 1 "stdin: record 0: tensor 'x': tensor data of 269484032 elements exceeds"
	# 64 fields and 32 tensors are the most
	rec 65 0 'a*' '' > "$S/fields.mea"
	run --separate-stderr mea-ext -m "$D/e4.mea-model" < "$S/fields.mea"
	fails mea-ext 1 "stdin: record 0: 65 fields (at most 64)"
	rec 0 33 'a*' '' > "$S/tensors.mea"
	run --separate-stderr mea-offload -e fakecloud_test < "$S/tensors.mea"
	fails mea-offload 1 "stdin: record 0: 33 tensors (at most 32)"
	# strings of 4096 bytes are the most
	rec 1 0 'a C a V' s 1 k 4097 +4097 > "$S/str.mea"
	run --separate-stderr mea-decode - < "$S/str.mea"
	fails mea-decode 1 "stdin: record 0: field 'k': bad string length"
	rec 1 0 'a C a V' s 1 k 4096 +4096 > "$S/str.mea"
	run --separate-stderr bash -c 'mea-decode - < "$1" | mkrec_test -p' _ "$S/str.mea"
	[ "$status" -eq 0 ]
}

@test "every stream reader: a record body beyond 512 MiB is refused, a huge truncated one costs no memory" {
	perl -e 'print pack("a4 v v V v v", "MEAR", 1, 0, 536870913, 0, 0)' > "$S/over.mea"
	run --separate-stderr mea-train -j eval -m "$D/m4.mea-model" < "$S/over.mea"
	fails mea-train 1 "stdin: record 0: record body of 536870913 bytes (at most 536870912)"
	perl -e 'print pack("a4 v v V v v", "MEAR", 1, 0, 536870912, 0, 0), "x" x 100000' > "$S/cut.mea"
	run --separate-stderr mea-gate --hard 1 < "$S/cut.mea"
	fails mea-gate 1 "stdin: record 0: truncated (100000 of 536870912 body bytes)"
	[ -x /usr/bin/time ] && [ -z "${ASAN_OPTIONS:-}" ] || skip "no /usr/bin/time, or under a sanitizer"
	/usr/bin/time -f %M -o "$S/rss" mea-gate --hard 1 < "$S/cut.mea" 2> /dev/null || true
	echo "max resident: $(tail -n 1 "$S/rss") KiB" >&2
	[ "$(tail -n 1 "$S/rss")" -lt 32768 ]
}

@test "every program: class ids, logits and options at the limits pass, beyond them they are refused" {
	perl -e 'print pack("a4 v v V v v C C C C a6 V", "MEAR", 1, 0, 4 + 6 + 4 + 4 * 65536, 0, 1,
		4, 1, 6, 0, "logits", 65536), "\0" x (4 * 65536)' > "$S/k.mea"
	run --separate-stderr bash -c 'mea-gate --hard 1 < "$1" | mkrec_test -p' _ "$S/k.mea"
	[ "$status" -eq 0 ]
	perl -e 'print pack("a4 v v V v v C C C C a6 V", "MEAR", 1, 0, 4 + 6 + 4 + 4 * 65537, 0, 1,
		4, 1, 6, 0, "logits", 65537), "\0" x (4 * 65537)' > "$S/k1.mea"
	run --separate-stderr mea-gate --hard 1 < "$S/k1.mea"
	fails mea-gate 1 "stdin: record 0: logits have 65537 classes (1 to 65536)"
	printf 'field id s x\nfield label i 65535\nend\n' | mkrec_test > "$S/l.mea"
	run --separate-stderr mea-score -j < "$S/l.mea"
	[ "$status" -eq 0 ]
	printf 'field id s x\nfield label i 65536\nend\n' | mkrec_test > "$S/l.mea"
	run --separate-stderr mea-score < "$S/l.mea"
	fails mea-score 1 "stdin: record 0 (x): "
	run --separate-stderr mea-main -m "$D/m4.mea-model" -b 4096 < "$D/img4.mea"
	[ "$status" -eq 0 ]
	run --separate-stderr mea-main -m "$D/m4.mea-model" -b 4097 < "$D/img4.mea"
	fails mea-main 2 "--batch: '4097' is not a whole number from 1 to 4096"
	run --separate-stderr mea-gate -K 65537 --hard 1 < /dev/null
	fails mea-gate 2 "--classes: "
	run --separate-stderr mea-train --init -a resnet8 -i 65x8x8 -k 3 -o "$S/m"
	fails mea-train 2 "--input: "
	run --separate-stderr mea-decode -s 16385 "$D/img4.mea"
	fails mea-decode 2 "--size: "
}

@test "mea-decode: images at the size limits are judged by the size they claim" {
	decode_mkimg_test png-ihdr "$S/wide.png" 16385 1
	run --separate-stderr mea-decode "$S/wide.png"
	fails mea-decode 1 "$S/wide.png: image is 16385x1 (sides of at most 16384)"
	decode_mkimg_test png-ihdr "$S/many.png" 8193 6145
	run --separate-stderr mea-decode "$S/many.png"
	fails mea-decode 1 "$S/many.png: image is 8193x6145 (at most 50331648 pixels)"
	decode_mkimg_test jpeg-sof "$S/wide.jpg" 1 16385
	run --separate-stderr mea-decode "$S/wide.jpg"
	fails mea-decode 1 "$S/wide.jpg: "
	# at the limit the size is fine: the file just has no pixels
	decode_mkimg_test png-ihdr "$S/edge.png" 16384 1
	run --separate-stderr mea-decode "$S/edge.png"
	fails mea-decode 1 "$S/edge.png: PNG: "
}

# corrupt IN OUT OFFSET FORMAT VALUE: IN with the header field at OFFSET
# set to VALUE (a perl pack format); VALUE "+N" adds N to a u64 field
corrupt() {
	perl -e 'my ($in, $out, $off, $fmt, $v) = @ARGV; local $/; open my $f, "<", $in or die;
		my $b = <$f>; if ($v =~ /^\+(\d+)$/) { $v = unpack("Q<", substr($b, $off, 8)) + $1 }
		substr($b, $off, length pack($fmt, $v)) = pack($fmt, $v);
		open my $o, ">", $out or die; print $o $b' "$@"
}

@test "mea-main: a model file with any header field broken is status 3, naming the file" {
	local M=$D/m3.mea-model
	while read -r off fmt value what; do
		corrupt "$M" "$S/bad.mea-model" "$off" "$fmt" "$value"
		run --separate-stderr mea-main -m "$S/bad.mea-model" < "$D/img4.mea"
		fails mea-main 3 "$S/bad.mea-model: " || { echo "field $what" >&2; return 1; }
	done <<-'FIELDS'
	0 a8 XEAMODEL magic
	8 V 2 version
	12 V 1 flags
	16 Q< +1 file-size
	24 V 65 input-channels-beyond-limit
	24 V 2 input-channels
	28 V 4097 input-height-beyond-limit
	28 V 9 input-height
	32 V 0 input-width
	36 V 65537 classes-beyond-limit
	36 V 4 classes
	40 V 4 hard-classes
	44 V 4097 nodes-beyond-limit
	44 V 1 nodes
	48 V 16385 tensors-beyond-limit
	48 V 0 tensors
	52 V 65 info-beyond-limit
	52 V 0 info
	56 V 2143289344 threshold-NaN
	56 V 3212836864 threshold-negative
	60 V 0 logits-node
	60 V 4294967294 logits-node-absent
	64 V 1 feature-node
	68 V 5 extension-node
	72 Q< +1 main-MACs
	80 Q< +1 adaptive-MACs
	88 Q< +1 extension-MACs
	96 Q< +1 main-parameters
	104 Q< +1 adaptive-parameters
	112 Q< +1 extension-parameters
	120 Q< +4 weight-bytes
	120 Q< +2 weight-bytes-not-floats
	FIELDS
}

@test "every program that reads a model: a broken one is status 3 before any record is read" {
	corrupt "$D/e4.mea-model" "$S/bad.mea-model" 120 'Q<' +4
	B=$S/bad.mea-model
	for cmd in "mea-gate -m $B" "mea-ext -m $B" "mea-score -m $B" "mea-offload -m $B" \
			"mea-train -j eval -m $B" "mea-train -j full -q -m $B -o $S/out" \
			"mea-train -j calibrate -m $B -o $S/out"; do
		run --separate-stderr $cmd < "$D/cloud4.mea"
		fails "${cmd%% *}" 3 "$B: header: file size " || { echo "$cmd" >&2; return 1; }
		[ ! -e "$S/out" ]
	done
	head -c 100 "$D/e4.mea-model" > "$S/cut.mea-model"
	run --separate-stderr mea-main -m "$S/cut.mea-model" < "$D/img4.mea"
	fails mea-main 3 "$S/cut.mea-model: truncated"
}

# epipe PROG ARGS...: run with stdout a pipe whose reader has gone
epipe() {
	rm -f "$S/fifo"
	mkfifo "$S/fifo"
	bash -c 'f=$1; shift; exec 3<> "$f"; exec 4> "$f"; exec 3<&-; exec "$@" >&4 4>&-' _ "$S/fifo" "$@"
}

@test "every program: a reader that went away ends it quietly with status 4" {
	for cmd in "mea-decode -" "mea-decode -t -" "mea-main -m $D/e4.mea-model" \
			"mea-gate -m $D/e4.mea-model" "mea-ext -m $D/e4.mea-model" \
			"mea-offload -e fakecloud_test" "mea-score" "mea-score -r" "mea-score -j" \
			"mea-train -j eval -m $D/e4.mea-model" "mea-train --help" "mea-gate --version"; do
		run --separate-stderr epipe $cmd < "$D/gate4.mea"
		[ "$status" -eq 4 ] || { echo "$cmd: status $status" >&2; return 1; }
		[ -z "$stderr" ] || { echo "$cmd: $stderr" >&2; return 1; }
	done
	run --separate-stderr epipe mea-decode "$D/img4.mea" "$D/img4.mea"
	[ "$status" -eq 4 ]
	[ -z "$stderr" ]
}

@test "every program: a full disk on stdout is status 4 and one line" {
	for cmd in "mea-decode -" "mea-main -m $D/e4.mea-model" "mea-gate -m $D/e4.mea-model" \
			"mea-ext -m $D/e4.mea-model" "mea-offload -e fakecloud_test" "mea-score" \
			"mea-train -j eval -m $D/e4.mea-model"; do
		run --separate-stderr bash -c "$cmd > /dev/full" < "$D/gate4.mea"
		[ "$status" -eq 4 ]
		[ "$stderr" = "${cmd%% *}: stdout: No space left on device" ]
	done
}

@test "mea-decode --export, mea-train: a write cut short never leaves a partial file under the real name" {
	decode_mkimg_test png "$S/a.png" rgb 8 > /dev/null
	# a file size limit of 0 kills the program at its first byte written
	run bash -c 'ulimit -c 0; ulimit -f 0; mea-decode -e "$1/exp" "$1/a.png"' _ "$S"
	[ "$status" -ne 0 ]
	[ ! -e "$S/exp/00000.png" ]
	run mea-decode -e "$S/exp" "$S/a.png"
	[ "$status" -eq 0 ]
	[ -s "$S/exp/00000.png" ]
	cp "$D/m4.mea-model" "$S/keep.mea-model"
	run bash -c 'ulimit -c 0; ulimit -f 0; mea-train --init -a resnet8 -i 1x4x4 -k 5 -o "$1"' _ "$S/keep.mea-model"
	[ "$status" -ne 0 ]
	cmp "$S/keep.mea-model" "$D/m4.mea-model"
	mea-main -m "$S/keep.mea-model" < /dev/null
}

@test "every program: an id with a newline or an escape still gives a one-line error" {
	perl -e 'my $id = "evil\n\e[31mred\r"; my $b = pack("a C a2 V a*", "s", 2, "id", length $id, $id)
		. pack("C C C C a6 V f<3", 4, 1, 6, 0, "logits", 3, 0, 9**9**9, 0);
		print pack("a4 v v V v v", "MEAR", 1, 0, length $b, 1, 1), $b' > "$S/evil.mea"
	run --separate-stderr mea-gate --hard 1 < "$S/evil.mea"
	fails mea-gate 1 "stdin: record 0 (evil??[31mred?): logits contain an infinite value"
	run --separate-stderr mea-gate --hard "$(printf '1,2\n3')"
	fails mea-gate 2 "--hard: '2?3' is not a class id"
}

@test "mea-offload: a worker that answers with random bytes leaves the edge answers, status 5" {
	rnd 6 5000 > "$S/noise"
	run --separate-stderr bash -c 'mea-offload -r 0 -t 5 -e "cat $1/noise" < "$2" > "$1/out.mea"' _ "$S" "$D/cloud4.mea"
	[ "$status" -eq 5 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "mea-offload: "* ]]
	[ "$(records "$S/out.mea")" = 4 ]
}

@test "every stream reader: memory stays flat from 2000 to 20000 records" {
	[ -x /usr/bin/time ] && [ -z "${ASAN_OPTIONS:-}" ] || skip "no /usr/bin/time, or under a sanitizer"
	for n in 2000 20000; do
		awk -v n=$n 'BEGIN { for (i = 0; i < n; i++) printf "field id s r%d\nfield seq i %d\n" \
			"field label i %d\ntensor image u8 1,4,4 %d 3 200\nend\n", i, i, i % 4, i % 256 }' |
			mkrec_test > "$S/i$n.mea"
		mea-main -m "$D/e4.mea-model" < "$S/i$n.mea" > "$S/m$n.mea"
		mea-gate -m "$D/e4.mea-model" < "$S/m$n.mea" > "$S/g$n.mea"
	done
	for cmd in "mea-decode - i" "mea-main -m $D/e4.mea-model i" "mea-gate -m $D/e4.mea-model m" \
			"mea-ext -m $D/e4.mea-model g" "mea-offload -e fakecloud_test g" "mea-score g"; do
		for n in 2000 20000; do
			/usr/bin/time -f %M -o "$S/rss$n" ${cmd% *} < "$S/${cmd##* }$n.mea" > /dev/null
		done
		echo "${cmd%% *}: $(cat "$S/rss2000") KiB for 2000, $(cat "$S/rss20000") KiB for 20000" >&2
		[ "$(cat "$S/rss20000")" -le $(( $(cat "$S/rss2000") + 1024 )) ]
	done
}

@test "fuzz: every seed and every input that once crashed a target runs clean" {
	for t in stream model image dataset text; do
		dirs=("$TOP/fuzz/corpus/$t")
		[ -d "$TOP/fuzz/regress/$t" ] && dirs+=("$TOP/fuzz/regress/$t")
		run --separate-stderr fuzz_replay_test "$t" "${dirs[@]}"
		[ "$status" -eq 0 ] || { echo "$t: $stderr" >&2; return 1; }
		[[ $output == "$t: "*" inputs" ]]
	done
}

@test "fuzz: the saved crashes, through the programs, end in one line or cleanly" {
	for f in "$TOP"/fuzz/regress/stream/*; do
		[ -e "$f" ] || continue
		for cmd in "mea-gate --hard 1" "mea-score" "mea-decode -"; do
			run --separate-stderr bash -c "$cmd < \"\$1\" > /dev/null" _ "$f"
			[ "$status" -le 1 ] && [ "${#stderr_lines[@]}" -le "$status" ] ||
				{ echo "$cmd < $f: $status $stderr" >&2; return 1; }
		done
	done
	for f in "$TOP"/fuzz/regress/model/*; do
		[ -e "$f" ] || continue
		run --separate-stderr mea-main -m "$f" < "$D/img4.mea"
		[ "$status" -eq 0 ] || [ "$status" -eq 3 ] && [ "${#stderr_lines[@]}" -le 1 ] ||
			{ echo "$f: $status $stderr" >&2; return 1; }
	done
	for f in "$TOP"/fuzz/regress/image/*; do
		[ -e "$f" ] || continue
		run --separate-stderr bash -c 'mea-decode "$1" > /dev/null' _ "$f"
		[ "$status" -le 1 ] && [ "${#stderr_lines[@]}" -le "$status" ] ||
			{ echo "$f: $status $stderr" >&2; return 1; }
	done
}
