/* Element-wise reduction kernels: dst[i] = dst[i] op src[i].
 *
 * The interface is fixed: the executor (csrc/executor.c) and the Cython wrapper
 * (collectives/_kernels.pyx) both call these. The codes are the single source:
 * collectives/libreduce.pxd declares them for Cython and collectives/_constants.pyx
 * hands them to Python (collectives.dtypes). float16 and bfloat16 are widened
 * to float32 per element, combined, and rounded once (round to nearest even).
 */
#ifndef COLLECTIVES_REDUCE_H
#define COLLECTIVES_REDUCE_H

#include <stdint.h>

typedef enum {
    CL_INT8 = 0, CL_INT16 = 1, CL_INT32 = 2, CL_INT64 = 3,
    CL_UINT8 = 4, CL_UINT16 = 5, CL_UINT32 = 6, CL_UINT64 = 7,
    CL_FLOAT16 = 8, CL_BFLOAT16 = 9, CL_FLOAT32 = 10, CL_FLOAT64 = 11,
    CL_NUM_DTYPES = 12
} cl_dtype;

typedef enum { CL_SUM = 0, CL_PROD = 1, CL_MIN = 2, CL_MAX = 3, CL_NUM_OPS = 4 } cl_op;

/* dst[i] = dst[i] op src[i] for i in [0, n). Returns 0, or -1 for an unknown dtype/op.
 * dst and src must not overlap partially (identical pointers are allowed). */
int cl_reduce(void *dst, const void *src, int64_t n, int dtype, int op);

/* buf[i] = buf[i] / divisor for floating dtypes (the second half of "avg").
 * Returns 0, or -1 for a non-floating dtype. */
int cl_divide(void *buf, int64_t n, int dtype, double divisor);

/* Size in bytes of one element of dtype, or 0 for an unknown dtype. */
int cl_dtype_size(int dtype);

/* Name of the instruction set the kernels chose at run time on this CPU,
 * for example "avx512f+avx512bw+f16c", "avx2+f16c", "neon" or "portable". */
const char *cl_kernel_isa(void);

/* ---- additions (not used by the executor): instruction-set levels ----------
 * Level 0 is the portable C path (vectorised by the compiler for the build's
 * baseline: SSE2 on x86-64, NEON on aarch64); 1 is AVX2+F16C; 2 is
 * AVX-512F/BW/VL+F16C. Every level gives bitwise identical results.
 * cl_reduce/cl_divide use the level chosen once at first use: the best the CPU
 * supports, capped by the environment variable COLLECTIVES_KERNELS
 * ("portable", "avx2", "avx512" or "auto"; read once). */
enum { CL_ISA_PORTABLE = 0, CL_ISA_AVX2 = 1, CL_ISA_AVX512 = 2, CL_NUM_ISAS = 3 };

/* The level cl_reduce uses (after COLLECTIVES_KERNELS). */
int cl_kernel_isa_level(void);

/* 1 if this CPU and build can run the level, else 0. */
int cl_isa_supported(int level);

/* Name of a level ("portable", "avx2+f16c", "avx512f+avx512bw+avx512vl+f16c"), NULL if unknown. */
const char *cl_isa_name(int level);

/* cl_reduce / cl_divide at a given level (for tests comparing levels).
 * Return -1 for an unknown dtype/op (or non-floating dtype for divide), -2 if
 * the level is unknown or not supported here. */
int cl_reduce_isa(void *dst, const void *src, int64_t n, int dtype, int op, int level);
int cl_divide_isa(void *buf, int64_t n, int dtype, double divisor, int level);

#endif
