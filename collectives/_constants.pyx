# cython: language_level=3
"""The codes the Python side shares with the C core, read from the C headers at build time.

csrc/executor.h and csrc/reduce.h are the only place these values are written;
libexecutor.pxd and libreduce.pxd declare them for Cython, and this module hands
them to Python: ``collectives.schedule`` (op kinds, buffers), ``collectives.dtypes``
(dtype and op codes) and ``collectives._executor`` (statuses, native collectives)
take their values from here.

This module neither links nor initialises MPI: the model side (schedules priced
in a what-if study) imports it without starting MPI.
"""

from collectives cimport libexecutor as cx
from collectives cimport libreduce as cr

#: kind of a program row (csrc/executor.h, CL_OP_*)
OP_SEND = cx.CL_OP_SEND
OP_RECV = cx.CL_OP_RECV
OP_RECV_REDUCE = cx.CL_OP_RECV_REDUCE
OP_COPY = cx.CL_OP_COPY

#: the buffers a program row reads and writes (CL_BUF_*)
BUF_IN = cx.CL_BUF_IN
BUF_OUT = cx.CL_BUF_OUT
BUF_TMP = cx.CL_BUF_TMP

#: cl_result.status (CL_OK, CL_TIMEOUT, ...)
STATUS_OK = cx.CL_OK
STATUS_TIMEOUT = cx.CL_TIMEOUT
STATUS_MPI_ERROR = cx.CL_MPI_ERROR
STATUS_BAD_PROGRAM = cx.CL_BAD_PROGRAM
STATUS_NO_MEMORY = cx.CL_NO_MEMORY
STATUS_PEER_NOTICE = cx.CL_PEER_NOTICE
STATUS_PENDING = cx.CL_PENDING

#: tags one execution in flight uses (tag_base .. tag_base + TAGS_PER_EXECUTION - 1)
TAGS_PER_EXECUTION = cx.CL_TAGS_PER_EXECUTION

#: peer notices (collectives.notices): their tag, how often a stalled wait probes for one (us),
#: and how long a wait may still finish after seeing one (ms)
NOTICE_TAG = cx.CL_NOTICE_TAG
NOTICE_PROBE_US = cx.CL_NOTICE_PROBE_US
NOTICE_GRACE_MS = cx.CL_NOTICE_GRACE_MS

#: an emulated step that ends more than this many microseconds after its modelled time is late
HOLD_LATE_US = cx.CL_HOLD_LATE_US

#: peers a timeout report names at most
MAX_REPORTED_PEERS = cx.CL_MAX_REPORTED_PEERS

#: collective name -> cl_native's code for the MPI library's own collective (CL_NATIVE_*)
NATIVE = {
    "allreduce": cx.CL_NATIVE_ALLREDUCE,
    "alltoall": cx.CL_NATIVE_ALLTOALL,
    "reduce_scatter": cx.CL_NATIVE_REDUCE_SCATTER,
    "allgather": cx.CL_NATIVE_ALLGATHER,
    "broadcast": cx.CL_NATIVE_BROADCAST,
    "barrier": cx.CL_NATIVE_BARRIER,
    "alltoallv": cx.CL_NATIVE_ALLTOALLV,
}

#: dtype name -> cl_dtype code (csrc/reduce.h)
DTYPE_CODES = {
    "int8": cr.CL_INT8, "int16": cr.CL_INT16, "int32": cr.CL_INT32, "int64": cr.CL_INT64,
    "uint8": cr.CL_UINT8, "uint16": cr.CL_UINT16, "uint32": cr.CL_UINT32, "uint64": cr.CL_UINT64,
    "float16": cr.CL_FLOAT16, "bfloat16": cr.CL_BFLOAT16,
    "float32": cr.CL_FLOAT32, "float64": cr.CL_FLOAT64,
}
NUM_DTYPES = cr.CL_NUM_DTYPES

#: kernel op name -> cl_op code
KERNEL_OPS = {"sum": cr.CL_SUM, "prod": cr.CL_PROD, "min": cr.CL_MIN, "max": cr.CL_MAX}
NUM_OPS = cr.CL_NUM_OPS

#: instruction-set levels of the kernels (CL_ISA_*)
ISA_LEVELS = {"portable": cr.CL_ISA_PORTABLE, "avx2": cr.CL_ISA_AVX2, "avx512": cr.CL_ISA_AVX512}
NUM_ISAS = cr.CL_NUM_ISAS
