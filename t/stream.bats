#!/usr/bin/env bats
# The record stream itself (mea-stream(5)), through the mkrec test tool.

load helper

setup() {
	S=$BATS_TEST_TMPDIR
	cat > "$S/two.txt" <<-'REC'
	field id s first.png
	field label i 3
	field conf f 0.5
	tensor image u8 1,2,3 1 2 3 4 5 6
	tensor logits f32 4 0.5 -1.25 2 3
	tensor half f16 2 1.5 -2
	tensor idx i32 2 -7 9
	end
	field id s second.png
	field x.unknown s kept
	end
	REC
	mkrec_test < "$S/two.txt" > "$S/two.mea"
}

@test "stream: a record round-trips every field type and dtype" {
	run --separate-stderr mkrec_test -p < "$S/two.mea"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[[ $output == *'id           "first.png"'* ]]
	[[ $output == *"label        3"* ]]
	[[ $output == *"conf         0.5"* ]]
	[[ $output == *"image        u8 [1,2,3] 1 2 3 4 5 6"* ]]
	[[ $output == *"logits       f32 [4] 0.5 -1.25 2 3"* ]]
	[[ $output == *"half         f16 [2] 1.5 -2"* ]]
	[[ $output == *"idx          i32 [2] -7 9"* ]]
	[[ $output == *'x.unknown    "kept"'* ]]
}

@test "stream: the header is MEAR, version 1, little-endian body length" {
	run bash -c "head -c 16 '$S/two.mea' | od -An -tx1"
	[ "$status" -eq 0 ]
	[[ $output == " 4d 45 41 52 01 00 00 00"* ]]
}

@test "stream: cat of two streams is a valid stream" {
	cat "$S/two.mea" "$S/two.mea" > "$S/four.mea"
	run --separate-stderr mkrec_test -p < "$S/four.mea"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^record' <<< "$output")" -eq 4 ]
	[[ $output == *"record 3"* ]]
}

@test "stream: an empty input is an empty stream" {
	run --separate-stderr mkrec_test -p < /dev/null
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "stream: a stream cut at any byte is reported as truncated, naming the record" {
	size=$(stat -c %s "$S/two.mea")
	first=$(( $(od -An -tu4 -j8 -N4 "$S/two.mea") + 16 ))
	for ((n = 1; n < size; n++)); do
		[ "$n" -eq "$first" ] && continue
		head -c "$n" "$S/two.mea" > "$S/cut.mea"
		run --separate-stderr mkrec_test -p < "$S/cut.mea"
		[ "$status" -eq 1 ] || { echo "cut at $n: status $status"; false; }
		rec=0; [ "$n" -gt "$first" ] && rec=1
		[[ $stderr == "mkrec: stdin: record $rec: truncated"* ]] || { echo "cut at $n: $stderr"; false; }
	done
}

@test "stream: a wrong magic is refused as not a mea stream" {
	printf 'P6\n2 2\n255\n0123456789ab' > "$S/bad.mea"
	run --separate-stderr mkrec_test -p < "$S/bad.mea"
	[ "$status" -eq 1 ]
	[ "$stderr" = "mkrec: stdin: record 0: bad magic (not a mea stream)" ]
}

@test "stream: a second record with a wrong magic is named as record 1" {
	{ cat "$S/two.mea"; printf 'XXXXXXXXXXXXXXXXXXXX'; } > "$S/bad.mea"
	run --separate-stderr mkrec_test -p < "$S/bad.mea"
	[ "$status" -eq 1 ]
	[[ $stderr == "mkrec: stdin: record 2: bad magic"* ]]
}

@test "stream: an unknown version is refused" {
	{ printf 'MEAR\002\000\000\000\000\000\000\000\000\000\000\000'; } > "$S/v2.mea"
	run --separate-stderr mkrec_test -p < "$S/v2.mea"
	[ "$status" -eq 1 ]
	[[ $stderr == *"record 0: stream version 2"* ]]
}

@test "stream: an oversized tensor header is refused before allocating" {
	# one tensor named t, f32, 2 dims of 1048576 x 1048576: far over the limit
	printf 'MEAR\001\000\000\000\015\000\000\000\000\000\001\000\004\002\001\000t\000\000\020\000\000\000\020\000' > "$S/big.mea"
	run --separate-stderr mkrec_test -p < "$S/big.mea"
	[ "$status" -eq 1 ]
	[[ $stderr == "mkrec: stdin: record 0: tensor 't': "*"exceeds"* ]]
}

@test "stream: a dimension over the limit is refused" {
	printf 'MEAR\001\000\000\000\011\000\000\000\000\000\001\000\001\001\001\000t\000\000\040\000' > "$S/dim.mea"
	run --separate-stderr mkrec_test -p < "$S/dim.mea"
	[ "$status" -eq 1 ]
	[[ $stderr == *"record 0: tensor 't': dimension 0 is 2097152"* ]]
}

@test "stream: a body length over the limit is refused without reading it" {
	printf 'MEAR\001\000\000\000\000\000\000\100\000\000\000\000' > "$S/huge.mea"
	run --separate-stderr mkrec_test -p < "$S/huge.mea"
	[ "$status" -eq 1 ]
	[[ $stderr == *"record 0: record body of 1073741824 bytes"* ]]
}

@test "stream: tensor data that overruns its record is refused" {
	# body says 10 bytes, tensor claims 4 u8 values but only 2 follow the dims
	printf 'MEAR\001\000\000\000\012\000\000\000\000\000\001\000\001\001\001\000t\004\000\000\000\001\002' > "$S/over.mea"
	run --separate-stderr mkrec_test -p < "$S/over.mea"
	[ "$status" -eq 1 ]
	[[ $stderr == *"record 0: tensor 't' data (4 bytes) overruns the record"* ]]
}

@test "stream: the example reader in mea-stream(5) compiles and reads a stream" {
	sed -n '/^\.Bd -literal/,/^\.Ed/p' "$TOP/man/mea-stream.5" | sed '1d;$d' |
		sed 's/\\e/\\/g' > "$S/reader.c"
	cc -std=c11 -Wall -Wextra -Werror -o "$S/reader" "$S/reader.c"
	run --separate-stderr "$S/reader" < "$S/two.mea"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "first.png: image[1x2x3] logits[4] half[2] idx[2]" ]
	[ "${lines[1]}" = "second.png:" ]
}
