/* Element-wise reduction kernels (see reduce.h) and their run-time dispatch.
 *
 * Dispatch: three levels (reduce.h): portable C (this file), AVX2+F16C and
 * AVX-512F/BW/VL+F16C (reduce_x86.c, compiled with function target attributes
 * so that the baseline build stays generic x86-64). At first use the best level
 * the CPU supports is chosen, capped by COLLECTIVES_KERNELS=portable|avx2|avx512
 * (read once; "auto" or unset means no cap, an unknown value is ignored), and
 * cached. cl_reduce_isa/cl_divide_isa run any supported level on request so a
 * test can compare every level with the portable one in one process.
 *
 * The element rules (integer wrap-around, NaN, min/max ties, 16-bit rounding)
 * are written at the top of reduce_generic.h; every level follows them bit for
 * bit.
 */
/* Floating-point exception flags are not part of the kernels' results; without
 * -ftrapping-math GCC may compute both sides of a select, which is what lets it
 * vectorise the NaN rules and the 16-bit conversions. Values are unaffected. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "reduce.h"
#include "reduce_internal.h"

#define CL_GEN_NAME(x) cl_portable_##x
#define CL_GEN_ATTR
#include "reduce_generic.h"
#undef CL_GEN_NAME
#undef CL_GEN_ATTR

static const char *const cl_isa_names[CL_NUM_ISAS] = {
    "portable",
    "avx2+f16c",
    "avx512f+avx512bw+avx512vl+f16c",
};

int cl_dtype_size(int dtype)
{
    switch (dtype) {
    case CL_INT8: case CL_UINT8: return 1;
    case CL_INT16: case CL_UINT16: case CL_FLOAT16: case CL_BFLOAT16: return 2;
    case CL_INT32: case CL_UINT32: case CL_FLOAT32: return 4;
    case CL_INT64: case CL_UINT64: case CL_FLOAT64: return 8;
    default: return 0;
    }
}

int cl_isa_supported(int level)
{
    switch (level) {
    case CL_ISA_PORTABLE: return 1;
    case CL_ISA_AVX2: return cl_cpu_has_avx2();
    case CL_ISA_AVX512: return cl_cpu_has_avx512();
    default: return 0;
    }
}

const char *cl_isa_name(int level)
{
    return (level >= 0 && level < CL_NUM_ISAS) ? cl_isa_names[level] : NULL;
}

static int cl_choose_level(void)
{
    int cap = CL_NUM_ISAS - 1;
    const char *env = getenv("COLLECTIVES_KERNELS");
    if (env) {
        if (strcmp(env, "portable") == 0) cap = CL_ISA_PORTABLE;
        else if (strcmp(env, "avx2") == 0) cap = CL_ISA_AVX2;
        else if (strcmp(env, "avx512") == 0) cap = CL_ISA_AVX512;
    }
    int level = CL_ISA_PORTABLE;
    for (int l = 1; l <= cap; l++)
        if (cl_isa_supported(l)) level = l;
    return level;
}

/* -1: not chosen yet. Racing first calls compute the same value, so a relaxed
 * store is enough. */
static atomic_int cl_level = -1;

int cl_kernel_isa_level(void)
{
    int level = atomic_load_explicit(&cl_level, memory_order_relaxed);
    if (level < 0) {
        level = cl_choose_level();
        atomic_store_explicit(&cl_level, level, memory_order_relaxed);
    }
    return level;
}

const char *cl_kernel_isa(void) { return cl_isa_names[cl_kernel_isa_level()]; }

int cl_reduce_isa(void *dst, const void *src, int64_t n, int dtype, int op, int level)
{
    if (!cl_isa_supported(level)) return -2;
    if (dtype < 0 || dtype >= CL_NUM_DTYPES || op < 0 || op >= CL_NUM_OPS) return -1;
    if (n <= 0) return 0;
    switch (level) {
    case CL_ISA_AVX2: return cl_reduce_avx2(dst, src, n, dtype, op);
    case CL_ISA_AVX512: return cl_reduce_avx512(dst, src, n, dtype, op);
    default: return cl_portable_reduce(dst, src, n, dtype, op);
    }
}

int cl_divide_isa(void *buf, int64_t n, int dtype, double divisor, int level)
{
    if (!cl_isa_supported(level)) return -2;
    if (dtype != CL_FLOAT16 && dtype != CL_BFLOAT16 && dtype != CL_FLOAT32 && dtype != CL_FLOAT64) return -1;
    if (n <= 0) return 0;
    switch (level) {
    case CL_ISA_AVX2: return cl_divide_avx2(buf, n, dtype, divisor);
    case CL_ISA_AVX512: return cl_divide_avx512(buf, n, dtype, divisor);
    default: return cl_portable_divide(buf, n, dtype, divisor);
    }
}

int cl_reduce(void *dst, const void *src, int64_t n, int dtype, int op)
{
    const int level = cl_kernel_isa_level();
    if (dtype < 0 || dtype >= CL_NUM_DTYPES || op < 0 || op >= CL_NUM_OPS) return -1;
    if (n <= 0) return 0;
    switch (level) {
    case CL_ISA_AVX2: return cl_reduce_avx2(dst, src, n, dtype, op);
    case CL_ISA_AVX512: return cl_reduce_avx512(dst, src, n, dtype, op);
    default: return cl_portable_reduce(dst, src, n, dtype, op);
    }
}

int cl_divide(void *buf, int64_t n, int dtype, double divisor)
{
    const int level = cl_kernel_isa_level();
    if (dtype != CL_FLOAT16 && dtype != CL_BFLOAT16 && dtype != CL_FLOAT32 && dtype != CL_FLOAT64) return -1;
    if (n <= 0) return 0;
    switch (level) {
    case CL_ISA_AVX2: return cl_divide_avx2(buf, n, dtype, divisor);
    case CL_ISA_AVX512: return cl_divide_avx512(buf, n, dtype, divisor);
    default: return cl_portable_divide(buf, n, dtype, divisor);
    }
}
