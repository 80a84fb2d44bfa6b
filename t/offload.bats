#!/usr/bin/env bats
# mea-offload: records to a cloud worker and back, in order, with every
# way the worker can fail.  The worker is t/fakecloud_test.c (class =
# image[0] % 10, logit 4) unless the shipped cloud model exists.  All
# servers listen on 127.0.0.1 on free ports and are killed in teardown.

load helper

setup() {
	S=$BATS_TEST_TMPDIR
	: > "$S/pids"
	# softmax of a logit 4 against nine zeros
	CONF=$(awk 'BEGIN { printf "%.6f", exp(4) / (exp(4) + 9) }')
}

teardown() {
	local p
	while read -r p; do kill "$p" 2>/dev/null || true; done < "$S/pids"
	while read -r p; do wait "$p" 2>/dev/null || true; done < "$S/pids"
}

# gen N [ROUTES]: N records, seq 0..N-1, route cycling through ROUTES
# (default cloud,main,ext), image[0] = seq % 256, an unknown field and
# tensor that must pass through.
gen() {
	awk -v n="$1" -v routes="${2:-cloud,main,ext}" 'BEGIN {
		nr = split(routes, r, ",")
		for (i = 0; i < n; i++) {
			rt = r[i % nr + 1]
			printf "field id s img_%05d\nfield seq i %d\nfield label i %d\n", i, i, i % 10
			printf "field route s %s\nfield main_pred i %d\nfield main_conf f 0.5\n", rt, i % 7
			if (rt == "ext")
				printf "field ext_pred i 9\nfield ext_conf f 0.25\n"
			printf "field x.note s keep me\n"
			printf "tensor image u8 1,4,4 %d 1 2 3\n", i % 256
			printf "tensor x.extra f32 3 1.5 -2 3\nend\n"
		}
	}' | mkrec_test
}

# summary FILE: one line per record: seq route exit pred conf cloud_pred
# cloud_conf ("-" for a missing field).
summary() {
	mkrec_test -p < "$1" | awk '
		function flush() {
			if (n) print f["seq"], f["route"], f["exit"], f["pred"], f["conf"],
				f["cloud_pred"], f["cloud_conf"]
			split("", f)
			f["seq"] = f["route"] = f["exit"] = f["pred"] = f["conf"] = "-"
			f["cloud_pred"] = f["cloud_conf"] = "-"
		}
		/^record/ { flush(); n++; next }
		NF >= 2 { v = $2; gsub(/"/, "", v); f[$1] = v }
		END { flush() }'
}

# offload IN OUT ARGS...: mea-offload ARGS < IN > OUT
offload() {
	local in=$1 out=$2
	shift 2
	mea-offload "$@" < "$in" > "$out"
}

# free_ports N: N distinct free TCP ports on loopback
free_ports() {
	python3 -c '
import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"
}

# wait_listen PORT PID: until something listens on 127.0.0.1:PORT; fails
# at once when the server PID has died (polled, not timed)
wait_listen() {
	local hex i
	hex=$(printf '%04X' "$1")
	for ((i = 0; i < 800; i++)); do
		grep -q "^ *[0-9]*: 0100007F:$hex 00000000:0000 0A" /proc/net/tcp && return 0
		kill -0 "$2" 2>/dev/null || { echo "server for port $1 died"; return 1; }
		sleep 0.025
	done
	echo "nothing listens on port $1"
	return 1
}

# bg CMD...: start a server in the background, remembered for teardown
bg() {
	"$@" 3>&- > "$S/bg.$(wc -l < "$S/pids").log" 2>&1 &
	echo $! >> "$S/pids"
}

# serve VAR CMD...: start CMD in the background on a free loopback port
# (the word PORT in its arguments becomes the port) and set VAR to the
# port.  A port taken by someone else between choosing and binding is
# chosen again.
serve() {
	local _var=$1 _try _port
	shift
	for ((_try = 0; _try < 5; _try++)); do
		read -r _port < <(free_ports 1)
		bg "${@//PORT/$_port}"
		if wait_listen "$_port" "$(tail -n 1 "$S/pids")"; then
			printf -v "$_var" %s "$_port"
			return 0
		fi
	done
	return 1
}

# check_order OUT N: N records, seq 0..N-1 in order
check_order() {
	summary "$1" > "$S/sum"
	[ "$(wc -l < "$S/sum")" -eq "$2" ] || { echo "$(wc -l < "$S/sum") records, not $2"; return 1; }
	awk '$1 != NR - 1 { print "record " NR - 1 " has seq " $1; bad = 1 } END { exit bad }' "$S/sum"
}

@test "mea-offload: records not for the cloud pass through byte for byte and no cloud is contacted" {
	gen 30 main,ext > "$S/in.mea"
	run -0 --separate-stderr offload "$S/in.mea" "$S/out.mea" -c 127.0.0.1:1
	[ -z "$stderr" ]
	cmp "$S/in.mea" "$S/out.mea"
}

@test "mea-offload: a cloud record gets the cloud's class, confidence, MACs and bytes, exit cloud" {
	{ gen 12; printf 'field id s extra\nfield route s cloud\nfield macs_cloud i 5\ntensor image u8 1,2,2 13\nend\n' | mkrec_test; } > "$S/in.mea"
	run -0 --separate-stderr offload "$S/in.mea" "$S/out.mea" -e fakecloud_test
	[ -z "$stderr" ]
	summary "$S/out.mea" > "$S/sum"
	# seq route exit pred conf cloud_pred cloud_conf
	awk -v conf="$CONF" '
		function near(a, b) { return a - b < 1e-6 && b - a < 1e-6 }
		$2 == "cloud" {
			want = $1 == "-" ? 3 : $1 % 10
			if ($3 != "cloud" || $4 != want || $6 != want || !near($5, conf) || !near($7, conf)) {
				print "bad: " $0; bad = 1
			}
			n++
		}
		$2 != "cloud" && ($3 != "-" || $6 != "-") { print "touched: " $0; bad = 1 }
		END { if (n != 5) { print n " cloud records"; bad = 1 } exit bad }' "$S/sum"
	mkrec_test -p < "$S/out.mea" > "$S/out.txt"
	# the worker's MACs are added to what the record had
	[ "$(grep -c '^  macs_cloud   1000$' "$S/out.txt")" -eq 4 ]
	grep -q '^  macs_cloud   1005$' "$S/out.txt"
	[ "$(grep -c '^  bytes_up     [1-9]' "$S/out.txt")" -eq 5 ]
	[ "$(grep -c '^  bytes_down   [1-9]' "$S/out.txt")" -eq 5 ]
	[ "$(grep -c '^  t_offload    ' "$S/out.txt")" -eq 5 ]
	# unknown fields and tensors stay
	[ "$(grep -c '^  x.note       "keep me"$' "$S/out.txt")" -eq 12 ]
	[ "$(grep -c '^  x.extra      f32 \[3\] 1.5 -2 3$' "$S/out.txt")" -eq 12 ]
}

@test "mea-offload: sweep records get cloud_pred and cloud_conf but keep their own answer" {
	printf 'field seq i 0\nfield route s main\nfield sweep i 1\nfield pred i 2\nfield conf f 0.75\nfield exit s main\ntensor image u8 1 7\nend\n' |
		mkrec_test > "$S/in.mea"
	run -0 --separate-stderr offload "$S/in.mea" "$S/out.mea" -e fakecloud_test
	[ -z "$stderr" ]
	run -0 summary "$S/out.mea"
	[ "$output" = "0 main main 2 0.75 7 $CONF" ]
}

@test "mea-offload: the request carries only id, seq and image; --send-feat adds feat" {
	printf 'field id s a\nfield seq i 4\nfield route s cloud\nfield label i 1\nfield main_pred i 3\ntensor image u8 1,2,2 9\ntensor feat f32 2 0.5\ntensor logits f32 10 0\nend\n' |
		mkrec_test > "$S/in.mea"
	run -0 offload "$S/in.mea" "$S/out.mea" -e "tee '$S/req.mea' | fakecloud_test"
	run -0 mkrec_test -p < "$S/req.mea"
	[ "$output" = 'record 0
  id           "a"
  seq          4
  image        u8 [1,2,2] 9 9 9 9' ]
	run -0 offload "$S/in.mea" "$S/out.mea" --send-feat -e "tee '$S/req.mea' | fakecloud_test"
	run -0 mkrec_test -p < "$S/req.mea"
	[[ $output == *"image        u8 [1,2,2] 9 9 9 9"*"feat         f32 [2] 0.5 0.5" ]]
	# bytes_up is the request's size, bytes_down the answer's
	grep -q "^  bytes_up     $(wc -c < "$S/req.mea")\$" <(mkrec_test -p < "$S/out.mea")
}

@test "mea-offload: a local cloud (-e) and a socat-served cloud (mea-cloud.sh) give the same answers" {
	serve port "$TOP/share/mea-cloud.sh" -p PORT -- fakecloud_test
	gen 300 > "$S/in.mea"
	run -0 --separate-stderr offload "$S/in.mea" "$S/local.mea" -e fakecloud_test
	[ -z "$stderr" ]
	run -0 --separate-stderr offload "$S/in.mea" "$S/tcp.mea" -c "127.0.0.1:$port"
	[ -z "$stderr" ]
	mkrec_test -p < "$S/local.mea" | grep -v '^  t_offload ' > "$S/local.txt"
	mkrec_test -p < "$S/tcp.mea" | grep -v '^  t_offload ' > "$S/tcp.txt"
	cmp "$S/local.txt" "$S/tcp.txt"
	[ "$(grep -c '^  exit         "cloud"$' "$S/tcp.txt")" -eq 100 ]
}

@test "mea-offload: nc as the transport (-e 'nc -N'), and nc serving one connection through a FIFO" {
	serve p1 "$TOP/share/mea-cloud.sh" -p PORT -- fakecloud_test
	mkfifo "$S/back"
	serve p2 sh -c "exec nc -l 127.0.0.1 PORT < '$S/back' | fakecloud_test > '$S/back'"
	gen 90 > "$S/in.mea"
	run -0 --separate-stderr offload "$S/in.mea" "$S/local.mea" -e fakecloud_test
	run -0 --separate-stderr offload "$S/in.mea" "$S/nc.mea" -e "nc -N 127.0.0.1 $p1"
	[ -z "$stderr" ]
	run -0 --separate-stderr offload "$S/in.mea" "$S/fifo.mea" -c "127.0.0.1:$p2"
	[ -z "$stderr" ]
	summary "$S/local.mea" > "$S/local.txt"
	summary "$S/nc.mea" > "$S/nc.txt"
	summary "$S/fifo.mea" > "$S/fifo.txt"
	cmp "$S/local.txt" "$S/nc.txt"
	cmp "$S/local.txt" "$S/fifo.txt"
}

@test "mea-offload: a cloud command that cannot run is not tried again" {
	gen 6 > "$S/in.mea"
	run -5 --separate-stderr offload "$S/in.mea" "$S/out.mea" -e 'no-such-cloud-command'
	# sh says it once, mea-offload once
	[ "${#stderr_lines[@]}" -eq 2 ]
	[[ ${stderr_lines[0]} == *"no-such-cloud-command: not found" ]]
	[ "${stderr_lines[1]}" = "mea-offload: no-such-cloud-command: exited with status 127 (2 answers missing); 2 records answered at the edge" ]
	check_order "$S/out.mea" 6
}

@test "mea-offload: a cloud killed in the middle of 2000 records: every record comes out in order, the rest at the edge, status 5" {
	# no fork: when the worker dies after 300 answers, the port closes
	serve port socat -t 5 TCP-LISTEN:PORT,bind=127.0.0.1,reuseaddr EXEC:"fakecloud_test -a 300 -x die"
	gen 2000 > "$S/in.mea"
	run -5 --separate-stderr offload "$S/in.mea" "$S/out.mea" -c "127.0.0.1:$port" --retries 2
	[[ $stderr =~ ^mea-offload:\ 127\.0\.0\.1:$port:\ connection\ refused\;\ ([0-9]+)\ records\ answered\ at\ the\ edge$ ]]
	fell=${BASH_REMATCH[1]}
	check_order "$S/out.mea" 2000
	# the cloud answered the first cloud records (up to 300: socat may
	# drop the last answers of a dying worker), the edge all the rest
	awk -v fell="$fell" '
		$2 == "cloud" && $3 == "cloud" { if (f) { print "cloud after fallback: " $0; bad = 1 } c++ }
		$2 == "cloud" && $3 == "fallback" { f++; if ($4 != $1 % 7) { print "not main_pred: " $0; bad = 1 } }
		$2 != "cloud" && $3 != "-" { print "touched: " $0; bad = 1 }
		END { if (c < 1 || c > 300 || f != fell || c + f != 667) { print c, f, fell; bad = 1 } exit bad }' "$S/sum"
}

@test "mea-offload: a local cloud that dies is restarted and the records in flight are sent again" {
	gen 2000 > "$S/in.mea"
	run -0 --separate-stderr offload "$S/in.mea" "$S/out.mea" -v -n 16 -e 'fakecloud_test -a 150 -x die'
	[[ $stderr == "mea-offload: 2000 records, 667 for the cloud: 667 answered there, 0 at the edge; 5 connections, 4 failed, "*" requests resent; "* ]]
	check_order "$S/out.mea" 2000
	awk '$2 == "cloud" && ($3 != "cloud" || $4 != $1 % 256 % 10) { print "bad: " $0; bad = 1 } END { exit bad }' "$S/sum"
}

@test "mea-offload: a cloud that never answers times out and the edge answer stands" {
	gen 20 > "$S/in.mea"
	run -5 --separate-stderr offload "$S/in.mea" "$S/out.mea" -t 0.2 -r 1 -e 'fakecloud_test -x hang'
	[ "$stderr" = "mea-offload: fakecloud_test -x hang: no answer within 0.2 s (record 0); 7 records answered at the edge" ]
	check_order "$S/out.mea" 20
	[ "$(awk '$2 == "cloud" && $3 == "fallback"' "$S/sum" | wc -l)" -eq 7 ]
}

@test "mea-offload: a cloud that answers garbage, half a record, another id or seq, or no logits is not believed" {
	gen 10 > "$S/in.mea"
	for how in garbage half wrongid wrongseq nologits nan; do
		run -5 --separate-stderr offload "$S/in.mea" "$S/out.mea" -t 0.2 -r 2 -e "fakecloud_test -x $how"
		echo "$how: $stderr"
		[[ $stderr == "mea-offload: fakecloud_test -x $how: "*"; 4 records answered at the edge" ]]
		[ "$(wc -l <<< "$stderr")" -eq 1 ]
		check_order "$S/out.mea" 10
		[ "$(awk '$3 == "fallback"' "$S/sum" | wc -l)" -eq 4 ]
		[ "$(awk '$3 == "cloud" || $6 != "-"' "$S/sum" | wc -l)" -eq 0 ]
	done
}

@test "mea-offload: an unreachable cloud: edge answers from ext, else main, one line, status 5" {
	read -r port < <(free_ports 1)
	printf '%s\n' 'field seq i 0' 'field route s cloud' 'field main_pred i 3' 'field main_conf f 0.4' \
		'tensor image u8 1 1' end \
		'field seq i 1' 'field route s main' 'field pred i 5' 'field exit s main' 'tensor image u8 1 1' end \
		'field seq i 2' 'field route s cloud' 'field main_pred i 3' 'field main_conf f 0.4' \
		'field ext_pred i 7' 'field ext_conf f 0.6' 'tensor image u8 1 1' end | mkrec_test > "$S/in.mea"
	run -5 --separate-stderr offload "$S/in.mea" "$S/out.mea" -c "127.0.0.1:$port" -r 1
	[ "$stderr" = "mea-offload: 127.0.0.1:$port: connection refused; 2 records answered at the edge" ]
	run -0 summary "$S/out.mea"
	[ "$output" = "0 cloud fallback 3 0.4 - -
1 main main 5 - - -
2 cloud fallback 7 0.6 - -" ]
}

# haproxy_front PORT: HAProxy on 127.0.0.1:PORT in front of workers $pa and
# $pb, "balance first" so that the connection goes to a (the one that
# dies) first
haproxy_front() {
	cat > "$S/haproxy.cfg" <<-EOF
	global
		maxconn 64
	defaults
		mode tcp
		timeout connect 1s
		timeout client 30s
		timeout server 30s
		retries 3
		option redispatch
	frontend f
		bind 127.0.0.1:$1
		default_backend w
	backend w
		balance first
		default-server check inter 100 fall 1 rise 1 maxconn 32
		server a 127.0.0.1:$pa
		server b 127.0.0.1:$pb
	EOF
	exec haproxy -db -f "$S/haproxy.cfg"
}

@test "mea-offload: two workers behind HAProxy, one killed mid-run: every record answered by the cloud" {
	command -v haproxy || skip "haproxy is not installed"
	# worker a dies after 400 answers on a connection and takes its
	# listener with it; health checks (no records) do not kill it
	printf '#!/bin/sh\nfakecloud_test -a 400 -x die || kill "$(cat %s/a.pid)"\n' "$S" > "$S/worker-a.sh"
	chmod +x "$S/worker-a.sh"
	serve pa socat -t 5 TCP-LISTEN:PORT,bind=127.0.0.1,fork,reuseaddr EXEC:"$S/worker-a.sh"
	tail -n 1 "$S/pids" > "$S/a.pid"
	serve pb socat -t 5 TCP-LISTEN:PORT,bind=127.0.0.1,fork,reuseaddr EXEC:fakecloud_test
	serve front haproxy_front PORT
	gen 2000 cloud,main > "$S/in.mea"
	run -0 --separate-stderr offload "$S/in.mea" "$S/out.mea" -v -c "127.0.0.1:$front" -r 8
	echo "$stderr"
	[[ $stderr == "mea-offload: 2000 records, 1000 for the cloud: 1000 answered there, 0 at the edge; "* ]]
	# a died: its listener is gone
	refute kill -0 "$(cat "$S/a.pid")" 2>/dev/null
	check_order "$S/out.mea" 2000
	awk '$2 == "cloud" && ($3 != "cloud" || $4 != $1 % 256 % 10) { print "bad: " $0; bad = 1 } END { exit bad }' "$S/sum"
}

@test "mea-offload: 8 pipelines at once against one socat-served worker" {
	serve port "$TOP/share/mea-cloud.sh" -p PORT -- fakecloud_test
	gen 600 > "$S/in.mea"
	jobs=()
	for i in 1 2 3 4 5 6 7 8; do
		mea-offload -c "127.0.0.1:$port" -n "$i" < "$S/in.mea" > "$S/out$i.mea" 2> "$S/err$i" 3>&- &
		jobs+=($!)
	done
	for i in 1 2 3 4 5 6 7 8; do
		wait "${jobs[i - 1]}" && echo 0 > "$S/status$i" || echo $? > "$S/status$i"
	done
	for i in 1 2 3 4 5 6 7 8; do
		[ "$(cat "$S/status$i")" -eq 0 ]
		[ ! -s "$S/err$i" ]
		check_order "$S/out$i.mea" 600
		[ "$(awk '$2 == "cloud" && $3 == "cloud" && $6 == $1 % 256 % 10' "$S/sum" | wc -l)" -eq 200 ]
	done
}

@test "mea-offload: a finished record is written before more input arrives" {
	gen 2 > "$S/two.mea"
	mea-offload -e fakecloud_test < "$S/two.mea" > "$S/want.mea"
	mkfifo "$S/in" "$S/out"
	mea-offload -e fakecloud_test < "$S/in" > "$S/out" 3>&- &
	echo $! >> "$S/pids"
	exec 5> "$S/in" 6< "$S/out"
	cat "$S/two.mea" >&5
	# input stays open: both records must still come out
	timeout 20 head -c "$(wc -c < "$S/want.mea")" <&6 > "$S/got.mea"
	exec 5>&- 6<&-
	summary "$S/want.mea" > "$S/want.txt"
	run -0 summary "$S/got.mea"
	[ "$output" = "$(cat "$S/want.txt")" ]
}

@test "mea-offload: the local cloud is ended and reaped at the end, even one that ignores end of input" {
	gen 9 > "$S/in.mea"
	run -0 --separate-stderr offload "$S/in.mea" "$S/out.mea" -t 1 \
		-e "echo \$\$ > '$S/cloud.pid'; fakecloud_test; exec sleep 1000"
	[ -z "$stderr" ]
	[ -s "$S/cloud.pid" ]
	refute kill -0 "$(cat "$S/cloud.pid")" 2>/dev/null
	check_order "$S/out.mea" 9
}

@test "mea-offload: MEA_CLOUD names the worker when no option does" {
	gen 6 > "$S/in.mea"
	MEA_CLOUD='fakecloud_test -k 3' run -0 --separate-stderr offload "$S/in.mea" "$S/out.mea"
	[ -z "$stderr" ]
	run -0 summary "$S/out.mea"
	[[ ${lines[0]} == "0 cloud cloud 0 "* ]]
	[[ ${lines[3]} == "3 cloud cloud 0 "* ]]    # image[0] = 3, 3 % 3
}

@test "mea-offload: without a cloud model the default worker is refused with status 3" {
	gen 3 > "$S/in.mea"
	run -3 --separate-stderr offload "$S/in.mea" "$S/out.mea" -m "$S/missing.mea-model"
	[ ! -s "$S/out.mea" ]
	[[ $stderr == "mea-offload: $S/missing.mea-model: "* ]]
	[ "${#stderr_lines[@]}" -eq 1 ]
}

@test "mea-offload: a cloud record without an image is refused by number, after the records before it" {
	{ gen 4; printf 'field id s blank\nfield route s cloud\nend\n' | mkrec_test; gen 2; } > "$S/in.mea"
	run -1 --separate-stderr offload "$S/in.mea" "$S/out.mea" -e fakecloud_test
	[ "$stderr" = "mea-offload: stdin: record 4 (blank): no tensor 'image' to send" ]
	check_order "$S/out.mea" 4
}

@test "mea-offload: a corrupt input stream is reported after every record before it" {
	gen 5 > "$S/in.mea"
	head -c 500 "$S/in.mea" > "$S/cut.mea"
	n=$(mkrec_test -p < "$S/cut.mea" 2>/dev/null | grep -c '^record' || true)
	run -1 --separate-stderr offload "$S/cut.mea" "$S/out.mea" -e fakecloud_test
	[[ $stderr == "mea-offload: stdin: record $n: truncated"* ]]
	check_order "$S/out.mea" "$n"
}

@test "mea-offload: bad options are refused with status 2 and one line naming the option" {
	for args in "-n 0" "--inflight x" "-t -1" "--retries many" "-c nohostport" "-c :80" "-c 1.2.3.4" "-e x -c h:1" "extra"; do
		run -2 --separate-stderr mea-offload $args < /dev/null
		echo "$args: $stderr"
		[ -z "$output" ]
		[ "${#stderr_lines[@]}" -eq 1 ]
		[[ $stderr == "mea-offload: "* ]]
	done
	run -2 --separate-stderr mea-offload --inflight 0
	[[ $stderr == "mea-offload: --inflight: '0' is not a whole number from 1 to 1024"* ]]
}

@test "mea-offload: --help and --version go to stdout with status 0" {
	run -0 --separate-stderr mea-offload --help
	[[ $output == "usage: mea-offload "* ]]
	[[ $output == *"--inflight"* ]]
	[ -z "$stderr" ]
	run -0 mea-offload --version
	[ "$output" = "mea-offload 0.1.0" ]
}

@test "mea-offload: a failed write to stdout is status 4" {
	[ -w /dev/full ] || skip "no /dev/full"
	gen 30 > "$S/in.mea"
	run -4 --separate-stderr bash -c 'mea-offload -e fakecloud_test < "$1" > /dev/full' _ "$S/in.mea"
	[[ $stderr == "mea-offload: stdout: "* ]]
}

@test "mea-offload: the shipped haproxy.cfg is valid and mea-cloud.sh refuses bad options" {
	command -v haproxy || skip "haproxy is not installed"
	run -0 haproxy -c -f "$TOP/share/haproxy.cfg"
	run -2 --separate-stderr "$TOP/share/mea-cloud.sh" --port x
	[ "$stderr" = "mea-cloud.sh: --port: 'x' is not a port number" ]
	run -0 "$TOP/share/mea-cloud.sh" --help
	[[ $output == *"--bind ADDRESS"* ]]
}

# a cloud model for mea-main: the shipped one, else an untrained ResNet-8
# (the answers only have to agree between the two ways of serving it)
cloud_model() {
	if [ -r "$TOP/weights/fmnist-cloud.mea-model" ]; then
		echo "$TOP/weights/fmnist-cloud.mea-model"
	else
		mea-train --init -a resnet8 -i 1x28x28 -k 10 -o "$S/cloud.mea-model" >&2 &&
			echo "$S/cloud.mea-model"
	fi
}

# n28 N: N records of 28x28 images, every other one for the cloud
n28() {
	awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++)
		printf "field id s p%d\nfield seq i %d\nfield route s %s\nfield main_pred i 1\nfield main_conf f 0.3\ntensor image u8 1,28,28 %d %d 0\nend\n",
			i, i, i % 2 ? "main" : "cloud", i * 6 % 256, 255 - i % 256 }' | mkrec_test
}

@test "mea-offload: mea-main --cloud as the worker, local and served, gives the same answers" {
	[ -x "$TOP/bin/mea-main" ] && [ -x "$TOP/bin/mea-train" ] || skip "mea-main or mea-train not built"
	model=$(cloud_model)
	serve port "$TOP/share/mea-cloud.sh" -p PORT -m "$model"
	n28 60 > "$S/in.mea"
	run -0 --separate-stderr offload "$S/in.mea" "$S/local.mea" -m "$model"
	[ -z "$stderr" ]
	run -0 --separate-stderr offload "$S/in.mea" "$S/tcp.mea" -n 16 -c "127.0.0.1:$port"
	[ -z "$stderr" ]
	# The same answers; the scores agree to float rounding, which depends
	# on how many records the worker happened to batch together.
	mkrec_test -p < "$S/local.mea" | grep -v '^  \(t_offload\|cloud_conf\|conf\|cloud_logits\) ' > "$S/local.txt"
	mkrec_test -p < "$S/tcp.mea" | grep -v '^  \(t_offload\|cloud_conf\|conf\|cloud_logits\) ' > "$S/tcp.txt"
	cmp "$S/local.txt" "$S/tcp.txt"
	model_test cmp cloud_logits "$S/local.mea" "$S/tcp.mea" 1e-4
	check_order "$S/tcp.mea" 60
	awk '$2 == "cloud" && ($3 != "cloud" || $6 == "-" || $7 <= 0 || $7 > 1) { print "bad: " $0; bad = 1 }
		$2 != "cloud" && $3 != "-" { print "touched: " $0; bad = 1 } END { exit bad }' "$S/sum"
	[ "$(grep -c '^  macs_cloud   [1-9]' "$S/tcp.txt")" -eq 30 ]
}

@test "mea-offload: by default it runs the mea-main next to it on the cloud model of its tree" {
	[ -x "$TOP/bin/mea-main" ] && [ -x "$TOP/bin/mea-train" ] || skip "mea-main or mea-train not built"
	model=$(cloud_model)
	n28 6 > "$S/in.mea"
	# the build tree (bin/, weights/) and an installed one (bin/, share/mea/weights/)
	for w in weights share/mea/weights; do
		rm -rf "$S/tree"
		mkdir -p "$S/tree/bin" "$S/tree/$w"
		cp "$TOP/bin/mea-offload" "$S/tree/bin/"
		printf '#!/bin/sh\necho "$@" > "%s/args"\nexec "%s" "$@"\n' "$S" "$TOP/bin/mea-main" > "$S/tree/bin/mea-main"
		chmod +x "$S/tree/bin/mea-main"
		cp "$model" "$S/tree/$w/fmnist-cloud.mea-model"
		run -0 --separate-stderr bash -c '"$1/tree/bin/mea-offload" < "$1/in.mea" > "$1/out.mea"' _ "$S"
		[ -z "$stderr" ]
		[ "$(cat "$S/args")" = "-m $S/tree/bin/../$w/fmnist-cloud.mea-model --cloud" ]
		[ "$(summary "$S/out.mea" | awk '$3 == "cloud"' | wc -l)" -eq 3 ]
	done
	# and without a model it says where it looked
	rm "$S/tree/$w/fmnist-cloud.mea-model"
	run -3 --separate-stderr bash -c '"$1/tree/bin/mea-offload" < "$1/in.mea"' _ "$S"
	[ "$stderr" = "mea-offload: fmnist-cloud.mea-model: not in $S/tree/bin/../share/mea/weights or $S/tree/bin/../weights (give --model, --exec or --connect)" ]
	[ -z "$output" ]
}
