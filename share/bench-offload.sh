#!/bin/sh
# bench-offload.sh: what offloading costs, measured on this machine with
# the fake cloud worker of the tests (t/fakecloud_test.c, no model), so
# the numbers are mea-offload's own: throughput in records per second,
# the latency it adds per record (mean t_offload) with 1 and 16 requests
# in flight, against
#   - a worker on a loopback TCP port (mea-cloud.sh),
#   - a worker 10 ms of round trip away (t/netdelay_test.c on both ways),
#   - a worker that takes 2 ms per record,
# and the bytes sent and received per offloaded 28x28 image.
#
#   sh share/bench-offload.sh [records]      (from the top of the build tree)
set -eu

N=${1:-5000}
NSLOW=${NSLOW:-500}
TOP=$(cd "$(dirname "$0")/.." && pwd)
PATH=$TOP/bin:$TOP/build/t:$PATH
export PATH
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mea-bench-offload.XXXXXX")
srv=
cleanup() {
	[ -n "$srv" ] && kill "$srv" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

for f in bin/mea-offload build/t/fakecloud_test build/t/netdelay_test build/t/mkrec_test; do
	[ -x "$TOP/$f" ] || { echo "bench-offload: $f: not built (run make)" >&2; exit 4; }
done
command -v socat >/dev/null || { echo "bench-offload: socat: not installed" >&2; exit 4; }

# n records, all for the cloud, a 28x28 image each (Fashion-MNIST size)
gen() {
	awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++)
		printf "field id s t10k:%d\nfield seq i %d\nfield route s cloud\nfield main_pred i 0\nfield main_conf f 0.4\ntensor image u8 1,28,28 %d 7\nend\n", i, i, i % 256 }' |
		mkrec_test
}

now() { date +%s.%N; }

# run LABEL RECORDS INFLIGHT ARGS...: one row of the table
run() {
	label=$1 n=$2 inflight=$3
	shift 3
	t0=$(now)
	mea-offload -n "$inflight" "$@" < "$tmp/in.$n" > "$tmp/out" 2> "$tmp/err" || {
		echo "bench-offload: $label: mea-offload failed:" >&2
		cat "$tmp/err" >&2
		exit 1
	}
	t1=$(now)
	mkrec_test -p < "$tmp/out" | awk -v label="$label" -v n="$n" -v inflight="$inflight" \
		-v t0="$t0" -v t1="$t1" '
		$1 == "t_offload" { lat += $2; k++ }
		$1 == "bytes_up" { up += $2 }
		$1 == "bytes_down" { down += $2 }
		$1 == "exit" && $2 != "\"cloud\"" { bad++ }
		END {
			if (k != n || bad) { print label ": " k " of " n " answered" > "/dev/stderr"; exit 1 }
			printf "%-28s %8d %8d %10.0f %12.3f %8.0f %8.0f\n", label, inflight, n,
				n / (t1 - t0), 1000 * lat / k, up / k, down / k
		}'
}

gen "$N" > "$tmp/in.$N"
gen "$NSLOW" > "$tmp/in.$NSLOW"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
	echo $((20000 + $$ % 20000)))
sh "$TOP/share/mea-cloud.sh" -p "$port" -- fakecloud_test > "$tmp/srv.log" 2>&1 &
srv=$!
gen 1 > "$tmp/in.1"
i=0
while ! mea-offload -c "127.0.0.1:$port" -r 0 < "$tmp/in.1" > /dev/null 2>&1 && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done

echo "mea-offload against the fake cloud worker ($(uname -m), $(nproc) cores)"
printf "%-28s %8s %8s %10s %12s %8s %8s\n" worker inflight records "records/s" "latency ms" "B up" "B down"
for k in 1 16; do
	run "loopback TCP" "$N" "$k" -c "127.0.0.1:$port"
done
for k in 1 16; do
	run "child process (pipes)" "$N" "$k" -e fakecloud_test
done
for k in 1 16; do
	run "10 ms round trip" "$NSLOW" "$k" -e 'netdelay_test 0.005 | fakecloud_test | netdelay_test 0.005'
done
for k in 1 16; do
	run "2 ms per record" "$NSLOW" "$k" -e 'fakecloud_test -d 0.002'
done
echo
echo "latency: mean t_offload, from a record's request to its answer, so with"
echo "16 in flight it includes the wait behind the requests sent before it."
echo "B up, B down: bytes per offloaded record: the request (id, seq and the"
echo "784-byte image, in a mea record) and the answer (the request plus"
echo "cloud_logits [10] and macs_cloud)."
