# The C kernels' interface, csrc/reduce.h, declared once for every Cython module
# that calls the kernels or needs their codes (as mpi4py's libmpi.pxd does for mpi.h).

from libc.stdint cimport int64_t

cdef extern from "reduce.h" nogil:

    ctypedef enum cl_dtype:
        CL_INT8
        CL_INT16
        CL_INT32
        CL_INT64
        CL_UINT8
        CL_UINT16
        CL_UINT32
        CL_UINT64
        CL_FLOAT16
        CL_BFLOAT16
        CL_FLOAT32
        CL_FLOAT64
        CL_NUM_DTYPES

    ctypedef enum cl_op:
        CL_SUM
        CL_PROD
        CL_MIN
        CL_MAX
        CL_NUM_OPS

    enum:
        CL_ISA_PORTABLE
        CL_ISA_AVX2
        CL_ISA_AVX512
        CL_NUM_ISAS

    int cl_reduce(void *dst, const void *src, int64_t n, int dtype, int op)
    int cl_divide(void *buf, int64_t n, int dtype, double divisor)
    int cl_dtype_size(int dtype)
    const char *cl_kernel_isa()
    int cl_kernel_isa_level()
    int cl_isa_supported(int level)
    const char *cl_isa_name(int level)
    int cl_reduce_isa(void *dst, const void *src, int64_t n, int dtype, int op, int level)
    int cl_divide_isa(void *buf, int64_t n, int dtype, double divisor, int level)
