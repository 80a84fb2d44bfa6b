#!/usr/bin/env bats
# docs: every command in the EXAMPLES section of every man page runs as
# the page shows it, so that the manuals cannot rot.
#
# Each page is rendered with mandoc, as a reader sees it (quotes and
# escapes included), and each display of its EXAMPLES section (a .Dl
# line or a .Bd -literal block) is one block:
#
#   - a block whose first line is "/* NAME.c: ..." is C source, saved as
#     NAME.c for the blocks after it to build;
#   - a block of "$ command" lines is a transcript: the commands run and
#     their output (stdout and stderr) must be the lines shown, blanks
#     squeezed;
#   - any other block is a script, run with bash -e -o pipefail, so that
#     every stage of every pipeline must succeed.
#
# The blocks of a page run in order, each in its own process group (which
# is killed afterwards, servers started with & included), all in one
# scratch directory holding the fixtures the examples name: pics/ (20
# PNGs of the test set, in class folders), pics.mea, a.mea, b.mea,
# logits.mea, routed.mea, answered.mea, photos/ (JPEGs), a CIFAR-10
# batch, train.mea (64 training images), init.mea-model, edge.mea-model,
# weights/ (the shipped models, or random stand-ins of the same shapes
# when they have not been trained yet), and share/.
load helper

# Blocks that cannot run here, by a string a line of the block contains.
# Keep this short: prefer changing the example into one that runs.
SKIP=(
	# needs a host named "cloud" reachable by ssh, with mea installed
	"ssh -o BatchMode=yes cloud"
	# the whole training recipe: an hour of training on 54000 images;
	# t/train.bats runs every job on small data, and init.mea-model and
	# train.mea stand in for its outputs in the blocks after it
	"mea-decode \$F/train-images-idx3-ubyte.gz > train.mea"
)

# Blocks whose documented exit status is not 0: the string, then the
# statuses allowed.  Nothing listens on 127.0.0.1:9100 by then (the
# servers of earlier blocks are gone), so the cloud is given up: 5.
STATUS=(
	"mea-offload -c 127.0.0.1:9100 -t 2 -r 1 -v" "0 5"
)

setup_file() {
	local fx=$BATS_FILE_TMPDIR/fx E C
	mkdir -p "$fx/weights"
	cd "$fx"
	# A copy, not a link: share/mea-cloud.sh finds its model in ../weights.
	cp -R "$TOP/share" share
	E=weights/fmnist-edge.mea-model
	C=weights/fmnist-cloud.mea-model
	mea-decode -n 64 "$FMNIST/train-images-idx3-ubyte.gz" > train.mea
	if [ -s "$TOP/$E" ]; then
		cp "$TOP/$E" "$E"
	else
		# Calibrated, so that the classes a random main block answers
		# are easy (their precision is above 0) and the rest hard.
		mea-train --init -a resnet8 -i 1x28x28 -k 10 --meanet -N share/fashion-mnist.classes \
			-o "$BATS_FILE_TMPDIR/random.mea-model"
		mea-train -j calibrate -m "$BATS_FILE_TMPDIR/random.mea-model" -f 0.5 -o "$E" \
			< train.mea > /dev/null
	fi
	if [ -s "$TOP/$C" ]; then
		cp "$TOP/$C" "$C"
	else
		mea-train --init -a resnet8 -i 1x28x28 -k 10 -N share/fashion-mnist.classes -o "$C"
	fi
	cp "$E" edge.mea-model
	mea-train --init -a resnet20 -i 1x28x28 -k 10 --meanet -N share/fashion-mnist.classes \
		-o init.mea-model
	mea-decode -n 20 -L share/fashion-mnist.classes -e pics "$FMNIST/t10k-images-idx3-ubyte.gz"
	mea-decode pics/ > pics.mea
	mea-decode -n 5 "$FMNIST/t10k-images-idx3-ubyte.gz" > a.mea
	cp pics.mea b.mea
	mea-main -m "$E" < pics.mea > logits.mea
	# A low threshold, so that the offload examples have records to send.
	mea-gate -m "$E" -T 0.05 < logits.mea > routed.mea
	mea-ext -m "$E" < routed.mea | mea-offload -e "mea-main -m $C --cloud" > answered.mea
	mkdir -p photos/2024 cifar-10-batches-bin
	decode_mkimg_test photo photos/beach.jpg 640 480 1
	decode_mkimg_test photo photos/2024/dog.jpg 400 300 2
	decode_mkimg_test cifar cifar-10-batches-bin/test_batch.bin 10 10 > /dev/null
}

setup() {
	W=$BATS_TEST_TMPDIR/w
	cp -R "$BATS_FILE_TMPDIR/fx" "$W"
	cd "$W"
	# mea-offload's default worker runs the shipped cloud model next to
	# the programs; until it is trained, the stand-in runs instead.
	if [ ! -s "$TOP/weights/fmnist-cloud.mea-model" ]; then
		export MEA_CLOUD="mea-main -m $W/weights/fmnist-cloud.mea-model --cloud"
	fi
}

# blocks PAGE DIR: the displays of PAGE's EXAMPLES, one file each in DIR
# (001, 002, ...), their common indentation removed.
blocks() {
	mkdir -p "$2"
	mandoc -Tascii -Owidth=1000 "$1" | sed 's/.\x08//g' | awk -v dir="$2" '
	function flush(   i, f) {
		while (n > 0 && buf[n] == "")
			n--
		if (n > 0) {
			f = sprintf("%s/%03d", dir, ++nb)
			for (i = 1; i <= n; i++)
				print substr(buf[i], base + 1) > f
			close(f)
		}
		n = 0
	}
	/^[^ ]/ { flush(); sec = $0; next }
	sec != "EXAMPLES" { next }
	/^$/ { if (n) buf[++n] = ""; next }
	{
		ind = match($0, /[^ ]/) - 1
		if (ind <= 5) { flush(); next }   # prose, or a subsection title
		if (!n) base = ind
		buf[++n] = $0
	}
	END { flush() }'
}

# listed ARRAY FILE [STEP]: the index in ARRAY (every STEP-th entry) of the first
# entry that a line of FILE contains, or nothing.
listed() {
	local -n list=$1
	local i step=${3:-1}
	for ((i = 0; i < ${#list[@]}; i += step)); do
		if grep -qF -- "${list[i]}" "$2"; then
			echo "$i"
			return
		fi
	done
}

# run_block FILE: run a script or the commands of a transcript in its own
# process group, for at most 120 s (status 124 after that: an example
# that hangs fails rather than hangs the suite); then end whatever it
# left running.
run_block() {
	local pid st=0
	setsid timeout -k 5 120 bash -e -o pipefail "$1" < /dev/null > "$1.out" 2> "$1.err" 3>&- &
	pid=$!
	wait "$pid" || st=$?
	if kill -TERM -- "-$pid" 2>/dev/null; then
		for _ in $(seq 50); do
			kill -0 -- "-$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	return "$st"
}

fail_block() {
	echo "block $(basename "$1") of $page: $2"
	sed 's/^/    | /' "$1"
	echo "stdout:"
	tail -n 20 "$1.out" 2>/dev/null | sed 's/^/    /'
	echo "stderr:"
	tail -n 20 "$1.err" 2>/dev/null | sed 's/^/    /'
	return 1
}

# run_page PAGE: every block of PAGE, in order.
run_page() {
	page=$1
	local d=$BATS_TEST_TMPDIR/blocks f i s st ok name ran=0 bare
	# A display indented like the prose would be taken for prose.
	bare=$(sed -n '/^\.Sh EXAMPLES/,/^\.Sh /p' "$TOP/$page" | grep '^\.Bd' |
		grep -v -- '-offset indent' || true)
	if [ -n "$bare" ]; then
		echo "$page: in EXAMPLES, '$bare' needs -offset indent to be tested"
		return 1
	fi
	blocks "$TOP/$page" "$d"
	for f in "$d"/[0-9][0-9][0-9]; do
		[ -e "$f" ] || continue
		i=$(listed SKIP "$f")
		if [ -n "$i" ]; then
			echo "# $page: skipped: $(head -1 "$f")" >&3
			continue
		fi
		name=$(sed -n '1s|^/\* \([A-Za-z0-9_.-]*\.c\): .*|\1|p' "$f")
		if [ -n "$name" ]; then
			cp "$f" "$name"
			continue
		fi
		if grep -q '^#include' "$f"; then
			fail_block "$f" "C source must start with '/* NAME.c: ...' to be built"
			return 1
		fi
		if head -1 "$f" | grep -q '^\$ '; then
			# The transcript's commands, and the output it shows.
			awk '/^\$ / { sub(/^\$ /, ""); print; more = /\\$/; next }
				more { print; more = /\\$/ }' "$f" > "$f.sh"
			awk '/^\$ / { more = /\\$/; next } more { more = /\\$/; next } { print }' \
				"$f" > "$f.want"
		else
			cp "$f" "$f.sh"
		fi
		st=0
		run_block "$f.sh" || st=$?
		mv "$f.sh.out" "$f.out"
		mv "$f.sh.err" "$f.err"
		i=$(listed STATUS "$f" 2)
		ok=0
		for s in ${i:+${STATUS[i + 1]}}; do
			[ "$st" = "$s" ] && ok=1
		done
		[ -z "$i" ] && [ "$st" = 0 ] && ok=1
		if [ "$ok" != 1 ]; then
			fail_block "$f" "exit status $st$([ "$st" != 124 ] || echo ' (timed out)')"
			return 1
		fi
		if [ -e "$f.want" ]; then
			cat "$f.out" "$f.err" | tr -s ' \t' ' ' | sed 's/ $//' > "$f.got"
			tr -s ' \t' ' ' < "$f.want" | sed 's/ $//' > "$f.want2"
			if ! diff -u "$f.want2" "$f.got"; then
				fail_block "$f" "output differs from the page"
				return 1
			fi
		fi
		ran=$((ran + 1))
	done
	# A page whose examples all vanished from the rendering is a bug too.
	[ "$ran" -gt 0 ] || { echo "$page: no example ran"; return 1; }
}

@test "docs: mea(7) examples run as shown" {
	run_page man/mea.7
}

@test "docs: mea-decode(1) examples run as shown" {
	run_page man/mea-decode.1
}

@test "docs: mea-main(1) examples run as shown" {
	run_page man/mea-main.1
}

@test "docs: mea-gate(1) examples run as shown" {
	run_page man/mea-gate.1
}

@test "docs: mea-ext(1) examples run as shown" {
	run_page man/mea-ext.1
}

@test "docs: mea-offload(1) examples run as shown" {
	run_page man/mea-offload.1
}

@test "docs: mea-score(1) examples run as shown" {
	run_page man/mea-score.1
}

@test "docs: mea-train(1) examples run as shown" {
	run_page man/mea-train.1
}

@test "docs: mea-stream(5) examples run as shown" {
	run_page man/mea-stream.5
}

@test "docs: mea-model(5) examples run as shown" {
	run_page man/mea-model.5
}

@test "docs: every man page's examples are tested here" {
	local p missing=
	for p in "$TOP"/man/*.[1-9]; do
		grep -q "run_page man/${p##*/}\$" "$BATS_TEST_FILENAME" || missing="$missing ${p##*/}"
	done
	[ -z "$missing" ] || { echo "not in t/docs.bats:$missing"; return 1; }
}

@test "docs: every man page is clean mdoc (mandoc -Tlint -W warning)" {
	run mandoc -Tlint -W warning "$TOP"/man/*.[1-9]
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	[ -z "$output" ]
}
