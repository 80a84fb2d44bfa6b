#!/bin/sh
# Install the Debian packages mea needs, only when one is missing.
# Run as root (CI and fresh machines are); otherwise prints what to install.
set -e
PKGS="build-essential pkgconf libpng-dev libjpeg62-turbo-dev zlib1g-dev
libopenblas-dev bats mandoc dataset-fashion-mnist socat gnuplot-nox
netcat-openbsd haproxy jq time"
missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing" >&2
if [ "$(id -u)" != 0 ]; then
	echo "deps: not root; run: sudo apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
