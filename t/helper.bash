# Sourced by every t/*.bats file: puts the freshly built programs first on
# PATH and names the shared test data.
bats_require_minimum_version 1.5.0
TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
export PATH="$TOP/bin:$TOP/build/t:$PATH"
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
export MEA_THREADS=1

# refute CMD [ARG...]: fail unless CMD fails.  A bare `! CMD` fails a
# Bats test only as its last line: errexit ignores a negated command.
refute() {
	if "$@"; then
		echo "expected to fail: $*" >&2
		return 1
	fi
}
