/* Element-wise kernels written as plain C loops for the compiler to vectorise.
 *
 * This file is a template: it is included once per instruction-set level with
 *   CL_GEN_NAME(x)  a name for the level's copy of function x, and
 *   CL_GEN_ATTR     the function attribute of the level (empty for portable,
 *                   __attribute__((target("avx2,f16c"))) and so on),
 * and defines CL_GEN_NAME(reduce)(dst, src, n, dtype, op) and
 * CL_GEN_NAME(divide)(buf, n, dtype, divisor). Every copy computes exactly the
 * same thing: the element rules below are pure functions of the two inputs,
 * so vector width and instruction choice cannot change a single bit.
 *
 * Element rules (the same in every copy and in reduce_x86.c's intrinsics):
 *  - integers wrap modulo 2^bits (arithmetic done in unsigned types);
 *  - float sum/prod: if dst is NaN the result is dst's NaN unchanged, else if
 *    src is NaN it is src's NaN unchanged, else the IEEE result (a NaN made by
 *    the operation itself, Inf-Inf or 0*Inf, is the CPU's default NaN);
 *  - min/max: NaN wins, dst's NaN first: min(d, s) = (d <= s || isnan(d)) ? d : s
 *    and max(d, s) = (d >= s || isnan(d)) ? d : s, the rule of numpy's
 *    np.minimum/np.maximum; ties, -0.0 against +0.0 included, keep dst. The
 *    result is always one of the two inputs, bits unchanged;
 *  - float16/bfloat16 sum/prod widen both to float32, combine, and round once
 *    to nearest even (float32 has at least 2p+2 bits for both formats, so this
 *    equals the correctly rounded 16-bit result); min/max compare the widened
 *    values and return the chosen 16-bit input as it was.
 *  - divide: NaN elements are left as they are; others become x / divisor,
 *    correctly rounded (in float when the divisor is exact in float, else in
 *    double, which gives the same correctly rounded result).
 */

#define CL_GEN_INT(T, U, SUF)                                                                 \
    CL_GEN_ATTR static void CL_GEN_NAME(sum_##SUF)(T *d, const T *s, int64_t n)             \
    { for (int64_t i = 0; i < n; i++) d[i] = (T)((U)d[i] + (U)s[i]); }                      \
    CL_GEN_ATTR static void CL_GEN_NAME(prod_##SUF)(T *d, const T *s, int64_t n)            \
    { for (int64_t i = 0; i < n; i++) d[i] = (T)((U)d[i] * (U)s[i]); }                      \
    CL_GEN_ATTR static void CL_GEN_NAME(min_##SUF)(T *d, const T *s, int64_t n)             \
    { for (int64_t i = 0; i < n; i++) { T a = d[i], b = s[i]; d[i] = a <= b ? a : b; } }     \
    CL_GEN_ATTR static void CL_GEN_NAME(max_##SUF)(T *d, const T *s, int64_t n)             \
    { for (int64_t i = 0; i < n; i++) { T a = d[i], b = s[i]; d[i] = a >= b ? a : b; } }

/* U: an unsigned type at least as wide as int, so nothing is promoted to signed int */
CL_GEN_INT(int8_t, unsigned int, i8)
CL_GEN_INT(int16_t, unsigned int, i16)
CL_GEN_INT(int32_t, uint32_t, i32)
CL_GEN_INT(int64_t, uint64_t, i64)
CL_GEN_INT(uint8_t, unsigned int, u8)
CL_GEN_INT(uint16_t, unsigned int, u16)
CL_GEN_INT(uint32_t, uint32_t, u32)
CL_GEN_INT(uint64_t, uint64_t, u64)

#define CL_GEN_FLOAT(T, SUF)                                                                  \
    CL_GEN_ATTR static void CL_GEN_NAME(sum_##SUF)(T *d, const T *s, int64_t n)             \
    {                                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                     \
            T a = d[i], b = s[i], r = a + b;                                                  \
            r = b != b ? b : r;                                                               \
            d[i] = a != a ? a : r;                                                            \
        }                                                                                     \
    }                                                                                         \
    CL_GEN_ATTR static void CL_GEN_NAME(prod_##SUF)(T *d, const T *s, int64_t n)            \
    {                                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                     \
            T a = d[i], b = s[i], r = a * b;                                                  \
            r = b != b ? b : r;                                                               \
            d[i] = a != a ? a : r;                                                            \
        }                                                                                     \
    }                                                                                         \
    CL_GEN_ATTR static void CL_GEN_NAME(min_##SUF)(T *d, const T *s, int64_t n)             \
    { for (int64_t i = 0; i < n; i++) { T a = d[i], b = s[i]; d[i] = ((a <= b) | (a != a)) ? a : b; } } \
    CL_GEN_ATTR static void CL_GEN_NAME(max_##SUF)(T *d, const T *s, int64_t n)             \
    { for (int64_t i = 0; i < n; i++) { T a = d[i], b = s[i]; d[i] = ((a >= b) | (a != a)) ? a : b; } } \
    CL_GEN_ATTR static void CL_GEN_NAME(div_##SUF)(T *d, int64_t n, T div)                  \
    { for (int64_t i = 0; i < n; i++) { T a = d[i]; d[i] = a != a ? a : a / div; } }

CL_GEN_FLOAT(float, f32)
CL_GEN_FLOAT(double, f64)

/* 16-bit floats: W widens, N narrows, ISNAN tests the stored bits */
#define CL_GEN_HALF(SUF, W, N, ISNAN)                                                         \
    CL_GEN_ATTR static void CL_GEN_NAME(sum_##SUF)(uint16_t *d, const uint16_t *s, int64_t n) \
    {                                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                     \
            uint16_t a = d[i], b = s[i], r = N(W(a) + W(b));                                  \
            r = ISNAN(b) ? b : r;                                                             \
            d[i] = ISNAN(a) ? a : r;                                                          \
        }                                                                                     \
    }                                                                                         \
    CL_GEN_ATTR static void CL_GEN_NAME(prod_##SUF)(uint16_t *d, const uint16_t *s, int64_t n) \
    {                                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                     \
            uint16_t a = d[i], b = s[i], r = N(W(a) * W(b));                                  \
            r = ISNAN(b) ? b : r;                                                             \
            d[i] = ISNAN(a) ? a : r;                                                          \
        }                                                                                     \
    }                                                                                         \
    CL_GEN_ATTR static void CL_GEN_NAME(min_##SUF)(uint16_t *d, const uint16_t *s, int64_t n) \
    {                                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                     \
            uint16_t a = d[i], b = s[i]; float fa = W(a), fb = W(b);                          \
            d[i] = ((fa <= fb) | ISNAN(a)) ? a : b;                                            \
        }                                                                                     \
    }                                                                                         \
    CL_GEN_ATTR static void CL_GEN_NAME(max_##SUF)(uint16_t *d, const uint16_t *s, int64_t n) \
    {                                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                     \
            uint16_t a = d[i], b = s[i]; float fa = W(a), fb = W(b);                          \
            d[i] = ((fa >= fb) | ISNAN(a)) ? a : b;                                            \
        }                                                                                     \
    }                                                                                         \
    CL_GEN_ATTR static void CL_GEN_NAME(div_##SUF)(uint16_t *d, int64_t n, float div)       \
    {                                                                                         \
        for (int64_t i = 0; i < n; i++) { uint16_t a = d[i]; d[i] = ISNAN(a) ? a : N(W(a) / div); } \
    }                                                                                         \
    CL_GEN_ATTR static void CL_GEN_NAME(divd_##SUF)(uint16_t *d, int64_t n, double div)     \
    {                                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                     \
            uint16_t a = d[i]; d[i] = ISNAN(a) ? a : N((float)((double)W(a) / div));          \
        }                                                                                     \
    }

CL_GEN_HALF(f16, cl_f16_to_f32, cl_f32_to_f16, cl_f16_isnan)
CL_GEN_HALF(bf16, cl_bf16_to_f32, cl_f32_to_bf16, cl_bf16_isnan)

CL_GEN_ATTR static void CL_GEN_NAME(divd_f32)(float *d, int64_t n, double div)
{
    for (int64_t i = 0; i < n; i++) { float a = d[i]; d[i] = a != a ? a : (float)((double)a / div); }
}

#define CL_GEN_CASE(CODE, T, SUF)                                                             \
    case CODE:                                                                                \
        switch (op) {                                                                         \
        case CL_SUM: CL_GEN_NAME(sum_##SUF)((T *)dst, (const T *)src, n); return 0;           \
        case CL_PROD: CL_GEN_NAME(prod_##SUF)((T *)dst, (const T *)src, n); return 0;         \
        case CL_MIN: CL_GEN_NAME(min_##SUF)((T *)dst, (const T *)src, n); return 0;           \
        case CL_MAX: CL_GEN_NAME(max_##SUF)((T *)dst, (const T *)src, n); return 0;           \
        default: return -1;                                                                   \
        }

CL_GEN_ATTR static int CL_GEN_NAME(reduce)(void *dst, const void *src, int64_t n, int dtype, int op)
{
    switch (dtype) {
    CL_GEN_CASE(CL_INT8, int8_t, i8)
    CL_GEN_CASE(CL_INT16, int16_t, i16)
    CL_GEN_CASE(CL_INT32, int32_t, i32)
    CL_GEN_CASE(CL_INT64, int64_t, i64)
    CL_GEN_CASE(CL_UINT8, uint8_t, u8)
    CL_GEN_CASE(CL_UINT16, uint16_t, u16)
    CL_GEN_CASE(CL_UINT32, uint32_t, u32)
    CL_GEN_CASE(CL_UINT64, uint64_t, u64)
    CL_GEN_CASE(CL_FLOAT16, uint16_t, f16)
    CL_GEN_CASE(CL_BFLOAT16, uint16_t, bf16)
    CL_GEN_CASE(CL_FLOAT32, float, f32)
    CL_GEN_CASE(CL_FLOAT64, double, f64)
    default: return -1;
    }
}

CL_GEN_ATTR static int CL_GEN_NAME(divide)(void *buf, int64_t n, int dtype, double divisor)
{
    const int exact = (double)(float)divisor == divisor;   /* NaN divisor: not "exact", double path */
    switch (dtype) {
    case CL_FLOAT16:
        if (exact) CL_GEN_NAME(div_f16)((uint16_t *)buf, n, (float)divisor);
        else CL_GEN_NAME(divd_f16)((uint16_t *)buf, n, divisor);
        return 0;
    case CL_BFLOAT16:
        if (exact) CL_GEN_NAME(div_bf16)((uint16_t *)buf, n, (float)divisor);
        else CL_GEN_NAME(divd_bf16)((uint16_t *)buf, n, divisor);
        return 0;
    case CL_FLOAT32:
        if (exact) CL_GEN_NAME(div_f32)((float *)buf, n, (float)divisor);
        else CL_GEN_NAME(divd_f32)((float *)buf, n, divisor);
        return 0;
    case CL_FLOAT64:
        CL_GEN_NAME(div_f64)((double *)buf, n, divisor);
        return 0;
    default:
        return -1;
    }
}

#undef CL_GEN_INT
#undef CL_GEN_FLOAT
#undef CL_GEN_HALF
#undef CL_GEN_CASE
