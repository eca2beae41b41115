# cython: language_level=3
"""Thin Cython layer over csrc/p2p.c: point-to-point sends and receives waited on
without the GIL, with a deadline and peer notices.

Buffers are numpy arrays that collectives.p2p has checked and keeps alive;
requests and matched messages cross as mpi4py objects (``MPI.Request``,
``MPI.Message``), so an operation can be finished by mpi4py as well.
"""

from libc.stdint cimport int64_t

cimport numpy as cnp
from mpi4py cimport MPI
from mpi4py.libmpi cimport (MPI_ANY_SOURCE, MPI_COMM_NULL, MPI_Comm, MPI_Message, MPI_MESSAGE_NULL,
                            MPI_Request, MPI_REQUEST_NULL, MPI_SUCCESS)

from collectives.libp2p cimport (CL_P2P_LARGE, CL_P2P_MISMATCH, CL_P2P_MPI_ERROR,
                                 CL_P2P_OK, CL_P2P_PEER_NOTICE, CL_P2P_PENDING, CL_P2P_TIMEOUT,
                                 cl_p2p_isend, cl_p2p_recv, cl_p2p_result, cl_p2p_send,
                                 cl_p2p_set_polls_before_yield, cl_p2p_wait)

# one name for both, as in _executor.pyx: cimported for the types, imported for the objects
from mpi4py import MPI

cnp.import_array()

#: cl_p2p_result.status (csrc/p2p.h)
OK = CL_P2P_OK
TIMEOUT = CL_P2P_TIMEOUT
MPI_ERROR = CL_P2P_MPI_ERROR
PEER_NOTICE = CL_P2P_PEER_NOTICE
MISMATCH = CL_P2P_MISMATCH
LARGE = CL_P2P_LARGE
PENDING = CL_P2P_PENDING
#: the source of a receive from any rank
ANY_SOURCE = MPI_ANY_SOURCE


cdef inline void *_data(cnp.ndarray a) noexcept:
    return cnp.PyArray_DATA(a) if cnp.PyArray_SIZE(a) else NULL


cdef inline MPI_Comm _comm_or_null(MPI.Comm c) noexcept:
    return c.ob_mpi if c is not None else MPI_COMM_NULL


def set_polls_before_yield(int polls):
    """Idle polls before the waits yield the core (0: yield at once, for oversubscribed nodes)."""
    cl_p2p_set_polls_before_yield(polls)


cdef tuple _failure(cl_p2p_result *r, MPI.Request pending):
    return (r.status, r.elapsed, r.notice_from, r.message.decode("utf-8", "replace"), pending)


def send(MPI.Comm comm not None, cnp.ndarray a, int dest, int tag, double timeout,
         MPI.Comm notice=None):
    """Send ``a`` to ``dest`` and wait; None when done, else ``(status, elapsed, notice_from,
    message, request)`` with the request still open after a timeout or a notice."""
    cdef cl_p2p_result res
    cdef MPI_Request req = MPI_REQUEST_NULL
    cdef const void *buf = _data(a)
    cdef int64_t nbytes = cnp.PyArray_NBYTES(a)
    cdef MPI_Comm nc = _comm_or_null(notice)
    cdef int status
    with nogil:
        status = cl_p2p_send(comm.ob_mpi, buf, nbytes, dest, tag, timeout, nc, &req, &res)
    if status == CL_P2P_OK:
        return None
    cdef MPI.Request pending = None
    if req != MPI_REQUEST_NULL:
        pending = MPI.Request()
        pending.ob_mpi = req
    return _failure(&res, pending)


def isend(MPI.Comm comm not None, cnp.ndarray a, int dest, int tag):
    """Start sending ``a`` to ``dest``: an ``MPI.Request``; an MPI error raises ``MPI.Exception``."""
    cdef MPI.Request req = MPI.Request()
    cdef int rc
    cdef const void *buf = _data(a)
    cdef int64_t nbytes = cnp.PyArray_NBYTES(a)
    rc = cl_p2p_isend(comm.ob_mpi, buf, nbytes, dest, tag, &req.ob_mpi)
    if rc != MPI_SUCCESS:
        raise MPI.Exception(rc)
    return req


def wait(MPI.Request req not None, double timeout, MPI.Comm notice=None, int notice_peer=MPI_ANY_SOURCE):
    """Wait for ``req``; None when done, else ``(status, elapsed, notice_from, message, None)``."""
    cdef cl_p2p_result res
    cdef MPI_Comm nc = _comm_or_null(notice)
    cdef int status
    with nogil:
        status = cl_p2p_wait(&req.ob_mpi, timeout, nc, notice_peer, &res)
    if status == CL_P2P_OK:
        return None
    return _failure(&res, None)


def recv(MPI.Comm comm not None, cnp.ndarray o, int source, int tag, bint wait, bint once,
         double timeout, MPI.Comm notice=None):
    """Match a message for ``o`` and receive it (see cl_p2p_recv).

    Returns ``(status, source, tag, nbytes, elapsed, notice_from, message, request, matched)``:
    the request is an ``MPI.Request`` while a matched receive is still under way (``wait``
    false, or a timeout or notice after the match), and for ``LARGE`` the matched
    ``MPI.Message`` to receive through mpi4py.
    """
    cdef cl_p2p_result res
    cdef MPI_Request req = MPI_REQUEST_NULL
    cdef MPI_Message msg = MPI_MESSAGE_NULL
    cdef void *buf = _data(o)
    cdef int64_t capacity = cnp.PyArray_NBYTES(o)
    cdef int itemsize = <int>cnp.PyArray_ITEMSIZE(o)
    cdef MPI_Comm nc = _comm_or_null(notice)
    cdef int status
    with nogil:
        status = cl_p2p_recv(comm.ob_mpi, buf, capacity, itemsize, source, tag, wait, once, timeout,
                             nc, &req, &msg, &res)
    cdef object handle = None
    cdef MPI.Request r
    cdef MPI.Message m
    if req != MPI_REQUEST_NULL:
        r = MPI.Request()
        r.ob_mpi = req
        handle = r
    elif status == CL_P2P_LARGE:
        m = MPI.Message()
        m.ob_mpi = msg
        handle = m
    if status == CL_P2P_OK and handle is None:
        return (status, res.source, res.tag, res.nbytes, res.elapsed, -1, None, None, True)
    return (status, res.source, res.tag, res.nbytes, res.elapsed, res.notice_from,
            res.message.decode("utf-8", "replace"), handle, bool(res.matched))
