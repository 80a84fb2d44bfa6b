#!/bin/sh
# mea-cloud.sh: serve a mea cloud worker over TCP with socat, one worker
# process per connection, so a bad stream on one connection ends only
# that connection's worker.  Listens on loopback unless --bind opens it.
# See mea-offload(1).
#
#   mea-cloud.sh [-p port] [-b address] [-m model] [-n max] [-- command ...]
set -eu

prog=mea-cloud.sh
port=9100
bind=127.0.0.1
model=
max=16
here=$(cd "$(dirname "$0")" && pwd)

usage() {
	cat <<-EOF
	usage: $prog [-p port] [-b address] [-m model] [-n max] [-- command ...]
	Serve 'mea-main -m MODEL --cloud' on a TCP port, one process per connection.
	  -p, --port PORT        port to listen on (default 9100)
	  -b, --bind ADDRESS     address to listen on (default 127.0.0.1, loopback only;
	                         0.0.0.0 opens it to the network: put it behind a firewall)
	  -m, --model FILE       the cloud model (default: the shipped fmnist-cloud.mea-model)
	  -n, --max-children N   connections served at once (default 16)
	  -- COMMAND ...         serve this worker command instead of mea-main
	  -h, --help             this help
	The command and the model path must not contain ',' ':' or '!' (socat
	address syntax).
	EOF
}

die() {
	echo "$prog: $*" >&2
	exit 2
}

need() {
	[ $# -ge 2 ] || die "$1: needs a value"
}

while [ $# -gt 0 ]; do
	case $1 in
	-p|--port) need "$@"; port=$2; shift 2 ;;
	-b|--bind) need "$@"; bind=$2; shift 2 ;;
	-m|--model) need "$@"; model=$2; shift 2 ;;
	-n|--max-children) need "$@"; max=$2; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	--) shift; break ;;
	*) die "$1: unknown option (try --help)" ;;
	esac
done

case $port in ''|*[!0-9]*) die "--port: '$port' is not a port number" ;; esac
case $max in ''|*[!0-9]*) die "--max-children: '$max' is not a number" ;; esac
command -v socat >/dev/null || { echo "$prog: socat: not installed (apt-get install socat)" >&2; exit 4; }

if [ $# -gt 0 ]; then
	cmd=$*
else
	# Installed: PREFIX/share/mea/{mea-cloud.sh,weights}, PREFIX/bin/mea-main.
	# Build tree: share/mea-cloud.sh, weights/, bin/mea-main.
	if [ -z "$model" ]; then
		for m in "$here/weights/fmnist-cloud.mea-model" "$here/../weights/fmnist-cloud.mea-model"; do
			[ -r "$m" ] && { model=$m; break; }
		done
		[ -n "$model" ] || { echo "$prog: fmnist-cloud.mea-model: not found (give --model)" >&2; exit 3; }
	fi
	main=mea-main
	for b in "$here/../../bin/mea-main" "$here/../bin/mea-main"; do
		[ -x "$b" ] && { main=$b; break; }
	done
	cmd="$main -m $model --cloud"
fi
case $cmd in *[,:!]*) die "'$cmd': ',' ':' and '!' cannot pass through socat" ;; esac

# -t 30: after the client's end of input, wait up to 30 s for the
# worker's last answers (socat's default is 0.5 s).
exec socat -t 30 "TCP-LISTEN:$port,bind=$bind,fork,reuseaddr,max-children=$max" "EXEC:$cmd"
