#!/bin/sh
# Print the OPENBLAS_CORETYPE=NAME assignment that make bench and make
# weights run under, or nothing to let OpenBLAS choose.
#
# Debian's OpenBLAS 0.3.21 does not recognise recent Intel CPUs and falls
# back to its Prescott (SSE3) code; where the CPU has AVX-512 its SkylakeX
# kernel is the right one.  Forcing SkylakeX on a CPU without AVX-512
# (the AMD EPYC of some of our machines) dies of SIGILL, so elsewhere
# OpenBLAS picks for itself.  MEA_BENCH_CORE=NAME overrides both.
if [ -n "${MEA_BENCH_CORE:-}" ]; then
	echo "OPENBLAS_CORETYPE=$MEA_BENCH_CORE"
elif grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
	echo "OPENBLAS_CORETYPE=SkylakeX"
fi
