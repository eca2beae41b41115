# cython: language_level=3
"""Thin Cython layer over csrc/executor.c: runs a rank's program, or the MPI
library's own collective, without the GIL and with a deadline.

Buffers arrive as addresses of memory the caller keeps alive (collectives.communicator
validates and pins them); this module does no argument checking of its own
beyond what C needs.
"""

from libc.stdint cimport int64_t, intptr_t

cdef extern from "mpi.h":
    ctypedef int MPI_Comm  # only ever handled by C; the real type comes from mpi.h
    int MPI_MAX_LIBRARY_VERSION_STRING
    int MPI_Get_library_version(char *version, int *resultlen) nogil
    int MPI_Get_version(int *version, int *subversion) nogil
    int MPI_Initialized(int *flag) nogil

cdef extern from "executor.h":
    ctypedef struct cl_row:
        pass
    ctypedef struct cl_result:
        int status
        int64_t step
        int mpi_error
        int npeers
        int peers[16]
        int64_t bytes_outstanding
        double elapsed
        int64_t peak_scratch_bytes
        char message[256]
    MPI_Comm cl_comm_from_handle(intptr_t handle) nogil
    intptr_t cl_comm_world_handle() nogil
    int64_t cl_scratch_needed(const cl_row *rows, int64_t nrows, int itemsize,
                              int64_t segment_bytes, int inflight) nogil
    int cl_execute(MPI_Comm comm, const cl_row *rows, int64_t nrows, void **bufs,
                   int dtype, int op, int64_t segment_bytes, int inflight,
                   void *scratch, int64_t scratch_bytes, double timeout, int tag_base,
                   const double *holds, cl_result *res) nogil
    int cl_native(MPI_Comm comm, int which, const void *sendbuf, void *recvbuf,
                  int64_t count, const int *recvcounts, int dtype, int op, int root,
                  double timeout, cl_result *res) nogil
    double cl_now() nogil
    void cl_set_polls_before_yield(int polls) nogil

STATUS_OK = 0
STATUS_TIMEOUT = 1
STATUS_MPI_ERROR = 2
STATUS_BAD_PROGRAM = 3
STATUS_NO_MEMORY = 4

NATIVE = {"allreduce": 0, "alltoall": 1, "reduce_scatter": 2, "allgather": 3,
          "broadcast": 4, "barrier": 5}


def mpi_library_version():
    """MPI_Get_library_version of the MPI this module was linked against."""
    cdef char buf[8192]
    cdef int n = 0
    MPI_Get_library_version(buf, &n)
    return buf[:n].decode("utf-8", "replace").rstrip("\x00").strip()


def mpi_version():
    cdef int v = 0, s = 0
    MPI_Get_version(&v, &s)
    return (v, s)


def comm_world_handle():
    """MPI_COMM_WORLD's handle as this build sees it (compared with mpi4py's at import)."""
    return <object>cl_comm_world_handle()


def set_polls_before_yield(int polls):
    """Idle polls before the wait loops yield the core (0: yield at once, for oversubscribed nodes)."""
    cl_set_polls_before_yield(polls)


cdef dict _result(cl_result *r):
    return {
        "status": r.status,
        "step": r.step,
        "mpi_error": r.mpi_error,
        "peers": [r.peers[i] for i in range(r.npeers)],
        "bytes_outstanding": r.bytes_outstanding,
        "elapsed": r.elapsed,
        "peak_scratch_bytes": r.peak_scratch_bytes,
        "message": r.message.decode("utf-8", "replace"),
    }


def scratch_needed(program, int itemsize, int64_t segment_bytes, int inflight):
    """Bytes of scratch memory cl_execute needs for `program` (a PROGRAM_DTYPE array)."""
    cdef intptr_t addr = program.__array_interface__["data"][0]
    return cl_scratch_needed(<const cl_row *>addr, len(program), itemsize, segment_bytes, inflight)


# ---- the hot path: arrays in, no dict out unless something went wrong ---------------

cimport numpy as cnp

cnp.import_array()


cdef inline void *_data(cnp.ndarray a):
    return cnp.PyArray_DATA(a) if cnp.PyArray_SIZE(a) else NULL


def run(intptr_t comm_handle, cnp.ndarray program, cnp.ndarray inbuf, cnp.ndarray outbuf,
        cnp.ndarray tmp, int dtype, int op, int64_t segment_bytes, int inflight,
        cnp.ndarray scratch, double timeout, cnp.ndarray holds=None):
    """Run `program` on numpy buffers the caller has checked; None on success, else a result dict.

    `holds` (float64 seconds, one per program row) turns on link emulation.
    """
    cdef cl_result res
    cdef void *bufs[3]
    bufs[0] = _data(inbuf)
    bufs[1] = _data(outbuf)
    bufs[2] = _data(tmp)
    cdef const cl_row *rows = <const cl_row *>cnp.PyArray_DATA(program)
    cdef int64_t nrows = cnp.PyArray_DIM(program, 0)
    cdef void *sp = cnp.PyArray_DATA(scratch)
    cdef int64_t sb = cnp.PyArray_NBYTES(scratch)
    cdef MPI_Comm comm = cl_comm_from_handle(comm_handle)
    cdef int status
    cdef const double *hp = NULL
    if holds is not None:
        if cnp.PyArray_DIM(holds, 0) != nrows:
            raise ValueError("holds must have one entry per program row")
        hp = <const double *>cnp.PyArray_DATA(holds)
    with nogil:
        status = cl_execute(comm, rows, nrows, bufs, dtype, op, segment_bytes, inflight,
                            sp, sb, timeout, 0, hp, &res)
    if status == 0:
        return None
    return _result(&res)


def run_native(intptr_t comm_handle, int which, cnp.ndarray sendbuf, cnp.ndarray recvbuf, int64_t count,
               cnp.ndarray recvcounts, int dtype, int op, int root, double timeout):
    """The MPI library's own collective on numpy buffers; None on success, else a result dict."""
    cdef cl_result res
    cdef const int *counts = NULL
    if recvcounts is not None:
        counts = <const int *>cnp.PyArray_DATA(recvcounts)
    cdef const void *sp = _data(sendbuf) if sendbuf is not None else NULL
    cdef void *rp = _data(recvbuf) if recvbuf is not None else NULL
    cdef MPI_Comm comm = cl_comm_from_handle(comm_handle)
    cdef int status
    with nogil:
        status = cl_native(comm, which, sp, rp, count, counts, dtype, op, root, timeout, &res)
    if status == 0:
        return None
    return _result(&res)
