/* Between reduce.c (dispatch) and reduce_x86.c (the x86 levels); not a public interface. */
#ifndef COLLECTIVES_REDUCE_INTERNAL_H
#define COLLECTIVES_REDUCE_INTERNAL_H

#include <stdint.h>

/* Same contract as cl_reduce / cl_divide; -2 where the level is not compiled in. */
int cl_reduce_avx2(void *dst, const void *src, int64_t n, int dtype, int op);
int cl_reduce_avx512(void *dst, const void *src, int64_t n, int dtype, int op);
int cl_divide_avx2(void *buf, int64_t n, int dtype, double divisor);
int cl_divide_avx512(void *buf, int64_t n, int dtype, double divisor);

/* 1 if the CPU (and the OS, for the wider registers) supports the level */
int cl_cpu_has_avx2(void);
int cl_cpu_has_avx512(void);

#endif
