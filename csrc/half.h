/* Portable scalar conversions between float32 and the two 16-bit float formats.
 *
 * float16 (IEEE binary16) and bfloat16 are stored as uint16_t bit patterns.
 * Widening is exact. Narrowing rounds to nearest, ties to even, handles
 * subnormals, overflows to Inf and keeps NaN a NaN. The NaN rule of the
 * narrowing functions is the one x86 hardware applies (F16C VCVTPS2PH): keep the
 * sign and the top payload bits and set the quiet bit, so that the vector paths
 * in reduce_x86.c and these scalar functions agree bit for bit on every input.
 *
 * No floating-point environment tricks: the code assumes only IEEE float32
 * arithmetic without flush-to-zero (the default on x86-64 and aarch64).
 */
#ifndef COLLECTIVES_HALF_H
#define COLLECTIVES_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t cl_f32_bits(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }
static inline float cl_bits_f32(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }

static inline int cl_f16_isnan(uint16_t h) { return (h & 0x7FFFu) > 0x7C00u; }
static inline int cl_bf16_isnan(uint16_t h) { return (h & 0x7FFFu) > 0x7F80u; }

/* float16 -> float32, exact (after M. Dukhan's FP16 library, MIT licence).
 * NaN: payload shifted into place, quiet bit set (as VCVTPH2PS does). */
static inline float cl_f16_to_f32(uint16_t h)
{
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    /* normal, Inf and NaN: rebias the exponent by a multiplication */
    const float normalized = cl_bits_f32((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    /* subnormal: put the mantissa under a fixed exponent and subtract the bias */
    const float denormalized = cl_bits_f32((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t bits = two_w < (1u << 27) ? cl_f32_bits(denormalized) : cl_f32_bits(normalized);
    return cl_bits_f32(sign | bits);
}

/* float32 -> float16, round to nearest even (after M. Dukhan's FP16 library).
 * NaN -> sign | 0x7E00 | top 9 payload bits (VCVTPS2PH's rule). */
static inline uint16_t cl_f32_to_f16(float f)
{
    const uint32_t w = cl_f32_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    /* |f| * 2^112 * 2^-110 overflows to Inf exactly when f rounds to Inf in float16 */
    float base = (cl_bits_f32(cl_f32_bits(f) & 0x7FFFFFFFu) * 0x1.0p+112f) * 0x1.0p-110f;
    uint32_t bias = shl1_w & 0xFF000000u;
    bias = bias < 0x71000000u ? 0x71000000u : bias;
    /* adding 2^(e+13) rounds the mantissa to 10 bits (nearest even) in hardware */
    base = cl_bits_f32((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = cl_f32_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    const uint32_t nan = 0x7E00u | ((w >> 13) & 0x03FFu);
    return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? nan : nonsign));
}

static inline float cl_bf16_to_f32(uint16_t h) { return cl_bits_f32((uint32_t)h << 16); }

/* float32 -> bfloat16, round to nearest even. The usual "add 0x7FFF plus the
 * lowest kept bit" trick would carry a NaN with a small payload into Inf, so NaN
 * is handled first: sign and top payload bits, quiet bit set. */
static inline uint16_t cl_f32_to_bf16(float f)
{
    const uint32_t w = cl_f32_bits(f);
    const uint32_t rounded = (w + 0x7FFFu + ((w >> 16) & 1u)) >> 16;
    const uint32_t nan = (w >> 16) | 0x0040u;
    return (uint16_t)((w & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded);
}

#endif
