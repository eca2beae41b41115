# cython: language_level=3
"""Thin Cython layer over csrc/executor.c: runs a rank's program, or the MPI
library's own collective, without the GIL and with a deadline.

The communicator arrives as an ``mpi4py.MPI.Comm`` and its ``MPI_Comm`` is read
through mpi4py's Cython API (``ob_mpi``), so no handle crosses Python as an
integer. Buffers are numpy arrays the caller keeps alive (collectives.communicator
validates and pins them); this module does no argument checking of its own
beyond what C needs.
"""

from libc.stdint cimport int64_t, intptr_t

cimport numpy as cnp
from mpi4py cimport MPI
from mpi4py.libmpi cimport (MPI_COMM_NULL, MPI_COMM_WORLD, MPI_Comm, MPI_Get_library_version, MPI_Get_version,
                            MPI_MAX_LIBRARY_VERSION_STRING)

from collectives.libexecutor cimport (CL_OK, cl_emulation_lateness, cl_execute, cl_native,
                                      cl_result, cl_row, cl_scratch_needed,
                                      cl_set_polls_before_yield)

# one name for both, as in mpi4py's own Cython examples: cimported for the type
# (MPI.Comm, its ob_mpi), imported for the objects (MPI.COMM_WORLD)
from mpi4py import MPI

from ._constants import (NATIVE, STATUS_BAD_PROGRAM, STATUS_MPI_ERROR, STATUS_NO_MEMORY, STATUS_OK,
                         STATUS_PEER_NOTICE, STATUS_TIMEOUT)

cnp.import_array()


def mpi_library_version():
    """MPI_Get_library_version of the MPI this module was linked against, as MPI reports it
    (Open MPI's ends in the NUL it counts: compare through _mpicheck.library_version)."""
    cdef char buf[MPI_MAX_LIBRARY_VERSION_STRING + 1]
    cdef int n = 0
    MPI_Get_library_version(buf, &n)
    return buf[:n].decode("utf-8", "replace")


def mpi_version():
    """(version, subversion) of the MPI standard this module was linked against."""
    cdef int v = 0, s = 0
    MPI_Get_version(&v, &s)
    return (v, s)


def same_comm_world():
    """True if mpi4py's COMM_WORLD holds this build's MPI_COMM_WORLD (one and the same MPI)."""
    return (<MPI.Comm>MPI.COMM_WORLD).ob_mpi == MPI_COMM_WORLD


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

cdef inline void *_data(cnp.ndarray a):
    return cnp.PyArray_DATA(a) if cnp.PyArray_SIZE(a) else NULL


def run(MPI.Comm comm not None, cnp.ndarray program, cnp.ndarray inbuf, cnp.ndarray outbuf,
        cnp.ndarray tmp, int dtype, int op, int64_t segment_bytes, int inflight,
        cnp.ndarray scratch, double timeout, cnp.ndarray holds=None, MPI.Comm notice=None):
    """Run `program` on `comm` over numpy buffers the caller has checked; None on success, else a result dict.

    `holds` (float64 seconds, one per program row) turns on link emulation; a stalled wait
    watches `notice` (the communicator's notice duplicate) for peers that left or failed.
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
    cdef int status
    cdef const double *hp = NULL
    if holds is not None:
        if cnp.PyArray_DIM(holds, 0) != nrows:
            raise ValueError("holds must have one entry per program row")
        hp = <const double *>cnp.PyArray_DATA(holds)
    cdef MPI_Comm nc = notice.ob_mpi if notice is not None else MPI_COMM_NULL
    with nogil:
        status = cl_execute(comm.ob_mpi, rows, nrows, bufs, dtype, op, segment_bytes, inflight,
                            sp, sb, timeout, 0, hp, nc, &res)
    if status == CL_OK:
        return None
    return _result(&res)


def run_native(MPI.Comm comm not None, int which, cnp.ndarray sendbuf, cnp.ndarray recvbuf, int64_t count,
               cnp.ndarray recvcounts, int dtype, int op, int root, double timeout,
               MPI.Comm notice=None):
    """The MPI library's own collective on `comm` over numpy buffers; None on success, else a result dict."""
    cdef cl_result res
    cdef const int *counts = NULL
    if recvcounts is not None:
        counts = <const int *>cnp.PyArray_DATA(recvcounts)
    cdef const void *sp = _data(sendbuf) if sendbuf is not None else NULL
    cdef void *rp = _data(recvbuf) if recvbuf is not None else NULL
    cdef int status
    cdef MPI_Comm nc = notice.ob_mpi if notice is not None else MPI_COMM_NULL
    with nogil:
        status = cl_native(comm.ob_mpi, which, sp, rp, count, counts, dtype, op, root, timeout, nc,
                           &res)
    if status == CL_OK:
        return None
    return _result(&res)


def emulation_lateness(bint reset=True):
    """``(held steps, late steps, worst lateness in s)`` of emulated links since the last call.

    A step is late when it ended more than ``CL_HOLD_LATE_US`` after the time the
    model gave it: this machine could not keep the emulation to the model.
    """
    cdef int64_t steps = 0, late = 0
    cdef double worst = 0.0
    cl_emulation_lateness(&steps, &late, &worst, reset)
    return steps, late, worst
