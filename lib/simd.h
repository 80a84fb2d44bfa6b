/*
 * simd.h: what conv.c and nhwc.c share about their own vector loops
 * (internal to libmea).  WIDE_CLONES compiles a function three times,
 * for the baseline x86-64, for AVX2 and for AVX-512, picked once at load
 * time (conv.c, "inner loops", says why and why the answers are the same
 * on any).
 */
#ifndef MEA_SIMD_H
#define MEA_SIMD_H

#include <math.h>

#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define HAVE_WIDE_CLONES
#endif
#endif
#ifdef HAVE_WIDE_CLONES
#define WIDE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WIDE_CLONES
#endif

/* For small helpers of a cloned function: inlined, they are compiled
 * for the clone's instruction set; called, for the baseline only. */
#ifdef __GNUC__
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* min(max(v, lo), hi), with the compares of mea_relu_forward (a NaN
 * passes through); lo = -inf, hi = +inf is no activation. */
static inline float
clamp(float v, float lo, float hi)
{
	v = v < lo ? lo : v;
	return v > hi ? hi : v;
}

/* The clamp bounds of an activation (relu and cap as in nn.h). */
static inline void
act_bounds(int relu, float cap, float *lo, float *hi)
{
	*lo = relu ? 0.0f : -INFINITY;
	*hi = relu && cap > 0 ? cap : INFINITY;
}

#endif
