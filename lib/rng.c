/* rng.c: a small seeded generator (xorshift128+ with splitmix64 seeding),
 * so training and initialisation repeat exactly for a seed. */
#include <math.h>

#include "mea.h"

static uint64_t
splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void
mea_rng_seed(struct mea_rng *r, uint64_t seed)
{
	r->s[0] = splitmix(&seed);
	r->s[1] = splitmix(&seed);
	if (!r->s[0] && !r->s[1])
		r->s[1] = 1;
}

uint64_t
mea_rng_next(struct mea_rng *r)
{
	uint64_t a = r->s[0], b = r->s[1];
	r->s[0] = b;
	a ^= a << 23;
	r->s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
	return r->s[1] + b;
}

uint32_t
mea_rng_below(struct mea_rng *r, uint32_t n)
{
	/* Lemire's multiply-shift; the bias for n << 2^32 is negligible here. */
	return (uint32_t)(((mea_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

float
mea_rng_uniform(struct mea_rng *r)
{
	return (float)(mea_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

float
mea_rng_normal(struct mea_rng *r)
{
	/* Box-Muller; u1 is kept away from 0 so log() stays finite. */
	double u1 = ((double)(mea_rng_next(r) >> 11) + 1.0) / 9007199254740993.0;
	double u2 = (double)(mea_rng_next(r) >> 11) / 9007199254740992.0;
	return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void
mea_rng_shuffle(struct mea_rng *r, int32_t *a, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = mea_rng_below(r, (uint32_t)i);
		int32_t t = a[i - 1];
		a[i - 1] = a[j];
		a[j] = t;
	}
}
