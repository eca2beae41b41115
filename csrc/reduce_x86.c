/* x86-64 kernels chosen at run time (see reduce.c for the dispatch).
 *
 * Two levels, each compiled for its instruction set with GCC/Clang function
 * target attributes, so the file builds with the generic x86-64 baseline flags
 * and the code only runs after the CPU said it can:
 *   avx2:   AVX2 + F16C        (Haswell, Zen 1 and later)
 *   avx512: AVX-512 F/BW/VL + F16C  (Skylake-SP, Ice Lake, Zen 4 and later)
 * Integers, float32 and float64 use the plain C loops of reduce_generic.h,
 * which the compiler vectorises for the level's vector width. float16 and
 * bfloat16 use intrinsics: F16C's VCVTPH2PS/VCVTPS2PH, and integer shifts
 * with the same round-to-nearest-even rule as half.h for bfloat16 (not
 * AVX512_BF16's VCVTNEPS2BF16, which flushes subnormals to zero).
 * Every kernel follows the element rules written at the top of
 * reduce_generic.h, so results are bitwise identical to the portable path;
 * tests/test_kernels.py checks that for every dtype, op and level.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

/* Floating-point exception flags are not part of the kernels' results; without
 * -ftrapping-math GCC may compute both sides of a select, which is what lets it
 * vectorise the NaN rules and the 16-bit conversions. Values are unaffected. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <immintrin.h>
#include <stdint.h>

#include "half.h"
#include "reduce.h"
#include "reduce_internal.h"

#define CL_AVX2 __attribute__((target("avx2,f16c")))
#define CL_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,f16c")))

/* Elements before the first multiple of `align` bytes in d (at most n). Aligned
 * stores (and loads of d) avoid split cache-line accesses, which cost AVX-512
 * code up to a third of its speed on numpy's 16-byte-aligned arrays. */
static inline int64_t cl_head(const void *d, unsigned align, int64_t n)
{
    const int64_t h = (int64_t)(((align - ((uintptr_t)d & (align - 1u))) & (align - 1u)) >> 1);
    return h < n ? h : n;
}

/* ---- the generic loops, compiled twice ---------------------------------- */

#define CL_GEN_NAME(x) cl_avx2_gen_##x
#define CL_GEN_ATTR CL_AVX2
#include "reduce_generic.h"
#undef CL_GEN_NAME
#undef CL_GEN_ATTR

#define CL_GEN_NAME(x) cl_avx512_gen_##x
#define CL_GEN_ATTR CL_AVX512
#include "reduce_generic.h"
#undef CL_GEN_NAME
#undef CL_GEN_ATTR

/* ---- AVX2 + F16C: 8 halves per step, scalar tail from the generic copy ---- */

CL_AVX2 static inline __m256 cl_avx2_w_f16(__m128i h) { return _mm256_cvtph_ps(h); }
CL_AVX2 static inline __m128i cl_avx2_n_f16(__m256 f) { return _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT); }
CL_AVX2 static inline __m128i cl_avx2_nan_f16(__m128i h)
{
    return _mm_cmpgt_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7FFF)), _mm_set1_epi16(0x7C00));
}

CL_AVX2 static inline __m256 cl_avx2_w_bf16(__m128i h)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
CL_AVX2 static inline __m128i cl_avx2_nan_bf16(__m128i h)
{
    return _mm_cmpgt_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7FFF)), _mm_set1_epi16(0x7F80));
}

/* 8 x 32-bit lane mask -> 8 x 16-bit lane mask */
CL_AVX2 static inline __m128i cl_avx2_mask16(__m256 m)
{
    const __m256i mi = _mm256_castps_si256(m);
    return _mm_packs_epi32(_mm256_castsi256_si128(mi), _mm256_extracti128_si256(mi, 1));
}

#define CL_LD128(p) _mm_loadu_si128((const __m128i *)(const void *)(p))
#define CL_ST128(p, v) _mm_storeu_si128((__m128i *)(void *)(p), (v))

#define CL_AVX2_HALF_ARITH(SUF)                                                                        \
    CL_AVX2 static void cl_avx2_sum_##SUF(uint16_t *d, const uint16_t *s, int64_t n)           \
    {                                                                                            \
        int64_t i = 0;                                                                           \
        for (; i + 8 <= n; i += 8) {                                                             \
            const __m128i a = CL_LD128(d + i), b = CL_LD128(s + i);                              \
            __m128i r = cl_avx2_n_##SUF(_mm256_add_ps(cl_avx2_w_##SUF(a), cl_avx2_w_##SUF(b)));  \
            r = _mm_blendv_epi8(r, b, cl_avx2_nan_##SUF(b));                                     \
            CL_ST128(d + i, _mm_blendv_epi8(r, a, cl_avx2_nan_##SUF(a)));                        \
        }                                                                                        \
        cl_avx2_gen_sum_##SUF(d + i, s + i, n - i);                                              \
    }                                                                                            \
    CL_AVX2 static void cl_avx2_prod_##SUF(uint16_t *d, const uint16_t *s, int64_t n)          \
    {                                                                                            \
        int64_t i = 0;                                                                           \
        for (; i + 8 <= n; i += 8) {                                                             \
            const __m128i a = CL_LD128(d + i), b = CL_LD128(s + i);                              \
            __m128i r = cl_avx2_n_##SUF(_mm256_mul_ps(cl_avx2_w_##SUF(a), cl_avx2_w_##SUF(b)));  \
            r = _mm_blendv_epi8(r, b, cl_avx2_nan_##SUF(b));                                     \
            CL_ST128(d + i, _mm_blendv_epi8(r, a, cl_avx2_nan_##SUF(a)));                        \
        }                                                                                        \
        cl_avx2_gen_prod_##SUF(d + i, s + i, n - i);                                             \
    }                                                                                            \
    CL_AVX2 static void cl_avx2_div_##SUF(uint16_t *d, int64_t n, float div)                   \
    {                                                                                            \
        const __m256 v = _mm256_set1_ps(div);                                                    \
        int64_t i = 0;                                                                           \
        for (; i + 8 <= n; i += 8) {                                                             \
            const __m128i a = CL_LD128(d + i);                                                   \
            const __m128i r = cl_avx2_n_##SUF(_mm256_div_ps(cl_avx2_w_##SUF(a), v));             \
            CL_ST128(d + i, _mm_blendv_epi8(r, a, cl_avx2_nan_##SUF(a)));                        \
        }                                                                                        \
        cl_avx2_gen_div_##SUF(d + i, n - i, div);                                                \
    }


#define CL_AVX2_HALF_MINMAX(SUF)                                                                 \
    CL_AVX2 static void cl_avx2_min_##SUF(uint16_t *d, const uint16_t *s, int64_t n)           \
    {                                                                                            \
        int64_t i = 0;                                                                           \
        for (; i + 8 <= n; i += 8) {                                                             \
            const __m128i a = CL_LD128(d + i), b = CL_LD128(s + i);                              \
            const __m256 le = _mm256_cmp_ps(cl_avx2_w_##SUF(a), cl_avx2_w_##SUF(b), _CMP_LE_OQ); \
            const __m128i keep = _mm_or_si128(cl_avx2_mask16(le), cl_avx2_nan_##SUF(a));        \
            CL_ST128(d + i, _mm_blendv_epi8(b, a, keep));                                        \
        }                                                                                        \
        cl_avx2_gen_min_##SUF(d + i, s + i, n - i);                                              \
    }                                                                                            \
    CL_AVX2 static void cl_avx2_max_##SUF(uint16_t *d, const uint16_t *s, int64_t n)           \
    {                                                                                            \
        int64_t i = 0;                                                                           \
        for (; i + 8 <= n; i += 8) {                                                             \
            const __m128i a = CL_LD128(d + i), b = CL_LD128(s + i);                              \
            const __m256 ge = _mm256_cmp_ps(cl_avx2_w_##SUF(a), cl_avx2_w_##SUF(b), _CMP_GE_OQ); \
            const __m128i keep = _mm_or_si128(cl_avx2_mask16(ge), cl_avx2_nan_##SUF(a));        \
            CL_ST128(d + i, _mm_blendv_epi8(b, a, keep));                                        \
        }                                                                                        \
        cl_avx2_gen_max_##SUF(d + i, s + i, n - i);                                              \
    }

CL_AVX2_HALF_ARITH(f16)
CL_AVX2_HALF_MINMAX(f16)
CL_AVX2_HALF_MINMAX(bf16)

/* ---- bfloat16 sum/prod/divide without widening shuffles --------------------
 * A vector of 2k bfloat16 is k 32-bit lanes holding an (even, odd) pair. x << 16
 * is the even elements as float32, x & 0xFFFF0000 the odd ones. Each is
 * combined in float32 and rounded to nearest even in place (x + 0x7FFF + lsb,
 * the result in the lane's top 16 bits), and the two halves are merged back.
 * NaN: inputs that are NaN are put back as they were (the element rule). With
 * no NaN input, the only NaN x86 arithmetic makes is the default NaN
 * 0xFFC00000, which the rounding maps to 0xFFC0, the same as half.h's NaN rule,
 * so no further NaN fix-up is needed (tests check Inf-Inf and 0*Inf). */

#define CL_AVX2_BF16_OP(NAME, VOP)                                                               \
    CL_AVX2 static void cl_avx2_##NAME##_bf16(uint16_t *d, const uint16_t *s, int64_t n)       \
    {                                                                                            \
        const __m256i himask = _mm256_set1_epi32((int)0xFFFF0000u);                              \
        const __m256i one = _mm256_set1_epi32(1), half = _mm256_set1_epi32(0x7FFF);             \
        const __m256i mag = _mm256_set1_epi16(0x7FFF), inf = _mm256_set1_epi16(0x7F80);         \
        int64_t i = cl_head(d, 32u, n);                                                          \
        cl_avx2_gen_##NAME##_bf16(d, s, i);                                                      \
        for (; i + 16 <= n; i += 16) {                                                           \
            const __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(d + i));       \
            const __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(s + i));       \
            const __m256 fe = VOP(_mm256_castsi256_ps(_mm256_slli_epi32(a, 16)),                \
                                  _mm256_castsi256_ps(_mm256_slli_epi32(b, 16)));               \
            const __m256 fo = VOP(_mm256_castsi256_ps(_mm256_and_si256(a, himask)),             \
                                  _mm256_castsi256_ps(_mm256_and_si256(b, himask)));            \
            __m256i re = _mm256_castps_si256(fe), ro = _mm256_castps_si256(fo);                 \
            re = _mm256_add_epi32(re, _mm256_add_epi32(half, _mm256_and_si256(_mm256_srli_epi32(re, 16), one))); \
            ro = _mm256_add_epi32(ro, _mm256_add_epi32(half, _mm256_and_si256(_mm256_srli_epi32(ro, 16), one))); \
            __m256i r = _mm256_or_si256(_mm256_srli_epi32(re, 16), _mm256_and_si256(ro, himask)); \
            r = _mm256_blendv_epi8(r, b, _mm256_cmpgt_epi16(_mm256_and_si256(b, mag), inf));     \
            r = _mm256_blendv_epi8(r, a, _mm256_cmpgt_epi16(_mm256_and_si256(a, mag), inf));     \
            _mm256_storeu_si256((__m256i *)(void *)(d + i), r);                                  \
        }                                                                                        \
        cl_avx2_gen_##NAME##_bf16(d + i, s + i, n - i);                                          \
    }

CL_AVX2_BF16_OP(sum, _mm256_add_ps)
CL_AVX2_BF16_OP(prod, _mm256_mul_ps)

CL_AVX2 static void cl_avx2_div_bf16(uint16_t *d, int64_t n, float div)
{
    const __m256 v = _mm256_set1_ps(div);
    const __m256i himask = _mm256_set1_epi32((int)0xFFFF0000u);
    const __m256i one = _mm256_set1_epi32(1), half = _mm256_set1_epi32(0x7FFF);
    const __m256i mag = _mm256_set1_epi16(0x7FFF), inf = _mm256_set1_epi16(0x7F80);
    int64_t i = cl_head(d, 32u, n);
    cl_avx2_gen_div_bf16(d, i, div);
    for (; i + 16 <= n; i += 16) {
        const __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(d + i));
        __m256i re = _mm256_castps_si256(_mm256_div_ps(_mm256_castsi256_ps(_mm256_slli_epi32(a, 16)), v));
        __m256i ro = _mm256_castps_si256(_mm256_div_ps(_mm256_castsi256_ps(_mm256_and_si256(a, himask)), v));
        re = _mm256_add_epi32(re, _mm256_add_epi32(half, _mm256_and_si256(_mm256_srli_epi32(re, 16), one)));
        ro = _mm256_add_epi32(ro, _mm256_add_epi32(half, _mm256_and_si256(_mm256_srli_epi32(ro, 16), one)));
        __m256i r = _mm256_or_si256(_mm256_srli_epi32(re, 16), _mm256_and_si256(ro, himask));
        r = _mm256_blendv_epi8(r, a, _mm256_cmpgt_epi16(_mm256_and_si256(a, mag), inf));
        _mm256_storeu_si256((__m256i *)(void *)(d + i), r);
    }
    cl_avx2_gen_div_bf16(d + i, n - i, div);
}

/* ---- AVX-512: 16 halves per step, masked tail ---------------------------- */

CL_AVX512 static inline __m512 cl_avx512_w_f16(__m256i h) { return _mm512_cvtph_ps(h); }
CL_AVX512 static inline __m256i cl_avx512_n_f16(__m512 f) { return _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT); }
CL_AVX512 static inline __mmask16 cl_avx512_nan_f16(__m256i h)
{
    return _mm256_cmpgt_epi16_mask(_mm256_and_si256(h, _mm256_set1_epi16(0x7FFF)), _mm256_set1_epi16(0x7C00));
}

CL_AVX512 static inline __m512 cl_avx512_w_bf16(__m256i h)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
CL_AVX512 static inline __mmask16 cl_avx512_nan_bf16(__m256i h)
{
    return _mm256_cmpgt_epi16_mask(_mm256_and_si256(h, _mm256_set1_epi16(0x7FFF)), _mm256_set1_epi16(0x7F80));
}

/* BODY computes r from a (dst) and b (src), 16 elements; masked head and tail */
#define CL_AVX512_MASKED16(BODY, M)                                                              \
    {                                                                                            \
        const __mmask16 m_ = (M);                                                                \
        const __m256i a = _mm256_maskz_loadu_epi16(m_, d + i);                                  \
        const __m256i b = _mm256_maskz_loadu_epi16(m_, s + i);                                  \
        BODY;                                                                                    \
        _mm256_mask_storeu_epi16(d + i, m_, r);                                                  \
    }
#define CL_AVX512_LOOP2(BODY)                                                                    \
    int64_t i = 0;                                                                               \
    const int64_t h_ = cl_head(d, 32u, n);                                                       \
    if (h_) { CL_AVX512_MASKED16(BODY, (__mmask16)((1u << h_) - 1u)) i = h_; }                   \
    for (; i + 16 <= n; i += 16) {                                                               \
        const __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(d + i));           \
        const __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(s + i));           \
        BODY;                                                                                    \
        _mm256_storeu_si256((__m256i *)(void *)(d + i), r);                                      \
    }                                                                                            \
    if (i < n) CL_AVX512_MASKED16(BODY, (__mmask16)((1u << (n - i)) - 1u))

#define CL_AVX512_HALF_ARITH(SUF)                                                                      \
    CL_AVX512 static void cl_avx512_sum_##SUF(uint16_t *d, const uint16_t *s, int64_t n)       \
    {                                                                                            \
        CL_AVX512_LOOP2(                                                                         \
            __m256i r = cl_avx512_n_##SUF(_mm512_add_ps(cl_avx512_w_##SUF(a), cl_avx512_w_##SUF(b))); \
            r = _mm256_mask_mov_epi16(r, cl_avx512_nan_##SUF(b), b);                             \
            r = _mm256_mask_mov_epi16(r, cl_avx512_nan_##SUF(a), a))                             \
    }                                                                                            \
    CL_AVX512 static void cl_avx512_prod_##SUF(uint16_t *d, const uint16_t *s, int64_t n)      \
    {                                                                                            \
        CL_AVX512_LOOP2(                                                                         \
            __m256i r = cl_avx512_n_##SUF(_mm512_mul_ps(cl_avx512_w_##SUF(a), cl_avx512_w_##SUF(b))); \
            r = _mm256_mask_mov_epi16(r, cl_avx512_nan_##SUF(b), b);                             \
            r = _mm256_mask_mov_epi16(r, cl_avx512_nan_##SUF(a), a))                             \
    }                                                                                            \
    CL_AVX512 static void cl_avx512_div_##SUF(uint16_t *d, int64_t n, float div)               \
    {                                                                                            \
        const __m512 v = _mm512_set1_ps(div);                                                    \
        const uint16_t *s = d;                                                                   \
        CL_AVX512_LOOP2(                                                                         \
            (void)b;                                                                             \
            __m256i r = cl_avx512_n_##SUF(_mm512_div_ps(cl_avx512_w_##SUF(a), v));               \
            r = _mm256_mask_mov_epi16(r, cl_avx512_nan_##SUF(a), a))                             \
    }


#define CL_AVX512_HALF_MINMAX(SUF)                                                               \
    CL_AVX512 static void cl_avx512_min_##SUF(uint16_t *d, const uint16_t *s, int64_t n)       \
    {                                                                                            \
        CL_AVX512_LOOP2(                                                                         \
            const __mmask16 keep = (__mmask16)(_mm512_cmp_ps_mask(cl_avx512_w_##SUF(a),         \
                cl_avx512_w_##SUF(b), _CMP_LE_OQ) | cl_avx512_nan_##SUF(a));                     \
            const __m256i r = _mm256_mask_blend_epi16(keep, b, a))                               \
    }                                                                                            \
    CL_AVX512 static void cl_avx512_max_##SUF(uint16_t *d, const uint16_t *s, int64_t n)       \
    {                                                                                            \
        CL_AVX512_LOOP2(                                                                         \
            const __mmask16 keep = (__mmask16)(_mm512_cmp_ps_mask(cl_avx512_w_##SUF(a),         \
                cl_avx512_w_##SUF(b), _CMP_GE_OQ) | cl_avx512_nan_##SUF(a));                     \
            const __m256i r = _mm256_mask_blend_epi16(keep, b, a))                               \
    }

CL_AVX512_HALF_ARITH(f16)
CL_AVX512_HALF_MINMAX(f16)
CL_AVX512_HALF_MINMAX(bf16)
/* ---- AVX-512 bfloat16 sum/prod/divide without widening shuffles --------------------
 * A vector of 2k bfloat16 is k 32-bit lanes holding an (even, odd) pair. x << 16
 * is the even elements as float32, x & 0xFFFF0000 the odd ones. Each is
 * combined in float32 and rounded to nearest even in place (x + 0x7FFF + lsb,
 * the result in the lane's top 16 bits), and the two halves are merged back.
 * NaN: inputs that are NaN are put back as they were (the element rule). With
 * no NaN input, the only NaN x86 arithmetic makes is the default NaN
 * 0xFFC00000, which the rounding maps to 0xFFC0, the same as half.h's NaN rule,
 * so no further NaN fix-up is needed (tests check Inf-Inf and 0*Inf). */

/* BODY computes r from a (dst) and b (src), 32 elements; masked head and tail */
#define CL_AVX512_MASKED32(BODY, M)                                                              \
    {                                                                                            \
        const __mmask32 m_ = (M);                                                                \
        const __m512i a = _mm512_maskz_loadu_epi16(m_, d + i);                                  \
        const __m512i b = _mm512_maskz_loadu_epi16(m_, s + i);                                  \
        BODY;                                                                                    \
        _mm512_mask_storeu_epi16(d + i, m_, r);                                                  \
    }
#define CL_AVX512_LOOP32(BODY)                                                                   \
    int64_t i = 0;                                                                               \
    const int64_t h_ = cl_head(d, 64u, n);                                                       \
    if (h_) { CL_AVX512_MASKED32(BODY, (__mmask32)((1u << h_) - 1u)) i = h_; }                   \
    for (; i + 32 <= n; i += 32) {                                                               \
        const __m512i a = _mm512_loadu_si512((const void *)(d + i));                             \
        const __m512i b = _mm512_loadu_si512((const void *)(s + i));                             \
        BODY;                                                                                    \
        _mm512_storeu_si512((void *)(d + i), r);                                                 \
    }                                                                                            \
    if (i < n) CL_AVX512_MASKED32(BODY, (__mmask32)((1u << (n - i)) - 1u))

CL_AVX512 static inline __m512i cl_avx512_round_bf16_pair(__m512 fe, __m512 fo)
{
    const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7FFF);
    __m512i re = _mm512_castps_si512(fe), ro = _mm512_castps_si512(fo);
    re = _mm512_add_epi32(re, _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(re, 16), one)));
    ro = _mm512_add_epi32(ro, _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(ro, 16), one)));
    /* (re >> 16) | (ro & 0xFFFF0000) */
    return _mm512_ternarylogic_epi32(_mm512_srli_epi32(re, 16), ro, _mm512_set1_epi32((int)0xFFFF0000u), 0xF8);
}
CL_AVX512 static inline __m512 cl_avx512_even_bf16(__m512i x) { return _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)); }
CL_AVX512 static inline __m512 cl_avx512_odd_bf16(__m512i x)
{
    return _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32((int)0xFFFF0000u)));
}
CL_AVX512 static inline __mmask32 cl_avx512_nan32_bf16(__m512i x)
{
    return _mm512_cmpgt_epi16_mask(_mm512_and_si512(x, _mm512_set1_epi16(0x7FFF)), _mm512_set1_epi16(0x7F80));
}

#define CL_AVX512_BF16_OP(NAME, VOP)                                                             \
    CL_AVX512 static void cl_avx512_##NAME##_bf16(uint16_t *d, const uint16_t *s, int64_t n)   \
    {                                                                                            \
        CL_AVX512_LOOP32(                                                                        \
            __m512i r = cl_avx512_round_bf16_pair(                                               \
                VOP(cl_avx512_even_bf16(a), cl_avx512_even_bf16(b)),                             \
                VOP(cl_avx512_odd_bf16(a), cl_avx512_odd_bf16(b)));                              \
            r = _mm512_mask_mov_epi16(r, cl_avx512_nan32_bf16(b), b);                            \
            r = _mm512_mask_mov_epi16(r, cl_avx512_nan32_bf16(a), a))                            \
    }

CL_AVX512_BF16_OP(sum, _mm512_add_ps)
CL_AVX512_BF16_OP(prod, _mm512_mul_ps)

CL_AVX512 static void cl_avx512_div_bf16(uint16_t *d, int64_t n, float div)
{
    const __m512 v = _mm512_set1_ps(div);
    const uint16_t *s = d;
    CL_AVX512_LOOP32(
        (void)b;
        __m512i r = cl_avx512_round_bf16_pair(_mm512_div_ps(cl_avx512_even_bf16(a), v),
                                              _mm512_div_ps(cl_avx512_odd_bf16(a), v));
        r = _mm512_mask_mov_epi16(r, cl_avx512_nan32_bf16(a), a))
}

/* ---- entry points ------------------------------------------------------- */

#define CL_HALF_SWITCH(LEVEL, SUF)                                                               \
    switch (op) {                                                                                \
    case CL_SUM: cl_##LEVEL##_sum_##SUF((uint16_t *)dst, (const uint16_t *)src, n); return 0;   \
    case CL_PROD: cl_##LEVEL##_prod_##SUF((uint16_t *)dst, (const uint16_t *)src, n); return 0; \
    case CL_MIN: cl_##LEVEL##_min_##SUF((uint16_t *)dst, (const uint16_t *)src, n); return 0;   \
    case CL_MAX: cl_##LEVEL##_max_##SUF((uint16_t *)dst, (const uint16_t *)src, n); return 0;   \
    default: return -1;                                                                          \
    }

int cl_reduce_avx2(void *dst, const void *src, int64_t n, int dtype, int op)
{
    if (dtype == CL_FLOAT16) { CL_HALF_SWITCH(avx2, f16) }
    if (dtype == CL_BFLOAT16) { CL_HALF_SWITCH(avx2, bf16) }
    return cl_avx2_gen_reduce(dst, src, n, dtype, op);
}

int cl_reduce_avx512(void *dst, const void *src, int64_t n, int dtype, int op)
{
    if (dtype == CL_FLOAT16) { CL_HALF_SWITCH(avx512, f16) }
    if (dtype == CL_BFLOAT16) { CL_HALF_SWITCH(avx512, bf16) }
    return cl_avx512_gen_reduce(dst, src, n, dtype, op);
}

int cl_divide_avx2(void *buf, int64_t n, int dtype, double divisor)
{
    if ((double)(float)divisor == divisor) {
        if (dtype == CL_FLOAT16) { cl_avx2_div_f16((uint16_t *)buf, n, (float)divisor); return 0; }
        if (dtype == CL_BFLOAT16) { cl_avx2_div_bf16((uint16_t *)buf, n, (float)divisor); return 0; }
    }
    return cl_avx2_gen_divide(buf, n, dtype, divisor);
}

int cl_divide_avx512(void *buf, int64_t n, int dtype, double divisor)
{
    if ((double)(float)divisor == divisor) {
        if (dtype == CL_FLOAT16) { cl_avx512_div_f16((uint16_t *)buf, n, (float)divisor); return 0; }
        if (dtype == CL_BFLOAT16) { cl_avx512_div_bf16((uint16_t *)buf, n, (float)divisor); return 0; }
    }
    return cl_avx512_gen_divide(buf, n, dtype, divisor);
}

int cl_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
}

int cl_cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return cl_cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl");
}

#else  /* not x86-64 with GCC/Clang: the x86 levels exist but are never available */

#include <stdint.h>
#include "reduce_internal.h"

int cl_reduce_avx2(void *dst, const void *src, int64_t n, int dtype, int op)
{ (void)dst; (void)src; (void)n; (void)dtype; (void)op; return -2; }
int cl_reduce_avx512(void *dst, const void *src, int64_t n, int dtype, int op)
{ (void)dst; (void)src; (void)n; (void)dtype; (void)op; return -2; }
int cl_divide_avx2(void *buf, int64_t n, int dtype, double divisor)
{ (void)buf; (void)n; (void)dtype; (void)divisor; return -2; }
int cl_divide_avx512(void *buf, int64_t n, int dtype, double divisor)
{ (void)buf; (void)n; (void)dtype; (void)divisor; return -2; }
int cl_cpu_has_avx2(void) { return 0; }
int cl_cpu_has_avx512(void) { return 0; }

#endif
