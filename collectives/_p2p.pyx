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
    if status == CL_P2P_OK and req == MPI_REQUEST_NULL:
        return (status, res.source, res.tag, res.nbytes, res.elapsed, -1, None, None, True)
    return _recv_outcome(status, req, msg, &res)


cdef tuple _recv_outcome(int status, MPI_Request req, MPI_Message msg, cl_p2p_result *res):
    """A receive that did not simply complete, as ``recv`` reports it: the request of a matched
    receive still under way, or the matched message of a LARGE one, beside the result."""
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
    return (status, res.source, res.tag, res.nbytes, res.elapsed, res.notice_from,
            res.message.decode("utf-8", "replace"), handle, bool(res.matched))


# ---- the small-message fast path -----------------------------------------------------------
#
# A pipeline sends and receives the same kind of buffer thousands of times. The checked path
# (Communicator.send/recv in Python) costs microseconds per call; here a call on a plain numpy
# array whose dtype the checked path already accepted, to a peer and with a tag that need no
# further look, is checked and run in one compiled call. Anything unusual returns FAST_MISS,
# and the checked path then decides with its own errors, before any message is sent.

#: returned by FastP2P for a call it does not take: run the checked path instead
FAST_MISS = object()

cdef int _READY = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED
cdef int _READY_W = _READY | cnp.NPY_ARRAY_WRITEABLE

cdef enum:
    FAST_TAG_MAX = 32767    # MPI guarantees MPI_TAG_UB >= 32767: larger tags take the checked path
    FAST_DTYPES = 8         # dtypes remembered (identity compared)

_tuple_new = tuple.__new__


cdef class FastP2P:
    """Blocking ``send``/``recv`` of one Communicator in compiled code (see above).

    ``known`` is the set of dtypes the checked path has accepted (``collectives.buffers``);
    ``status_type`` the named tuple a receive returns; ``finish`` the Python module whose
    ``send_failed``/``recv_rest`` take over when the core did not complete the call.
    """
    cdef int size
    cdef object known, status_type, finish
    cdef list descrs

    def __cinit__(self, int size, known, status_type, finish):
        self.size = size
        self.known = known
        self.status_type = status_type
        self.finish = finish
        self.descrs = []

    cdef bint _known(self, object descr):
        for d in self.descrs:
            if d is descr:
                return True
        if descr in self.known:
            if len(self.descrs) >= FAST_DTYPES:
                del self.descrs[0]
            self.descrs.append(descr)
            return True
        return False

    cdef bint _usable(self, owner):
        return not (owner._broken or owner._p2p is None or owner._p2p_pending)

    cdef double _deadline(self, owner, timeout) except -1.0:
        """The timeout in seconds (0: none), or -2 when the checked path must look at it."""
        if timeout is None:
            return owner.timeout_or_zero
        if (type(timeout) is float or type(timeout) is int) and timeout > 0:
            return timeout
        return -2.0

    def send(self, owner, x, dest, tag, timeout):
        """Send ``x`` to ``dest`` and wait: True once sent, FAST_MISS for the checked path."""
        if not cnp.PyArray_CheckExact(x) or type(dest) is not int or type(tag) is not int:
            return FAST_MISS
        cdef cnp.ndarray a = <cnp.ndarray>x
        if (cnp.PyArray_FLAGS(a) & _READY) != _READY or not self._known(<object>cnp.PyArray_DESCR(a)):
            return FAST_MISS
        if not (0 <= dest < self.size and 0 <= tag <= FAST_TAG_MAX) or not self._usable(owner):
            return FAST_MISS
        cdef double limit = self._deadline(owner, timeout)
        cdef int64_t nbytes = cnp.PyArray_NBYTES(a)
        if limit < 0 or nbytes > 2147483647:
            return FAST_MISS
        cdef MPI.Comm comm = <MPI.Comm>owner._p2p
        cdef MPI_Comm nc = _comm_or_null(owner._notice) if self.size > 1 else MPI_COMM_NULL
        cdef cl_p2p_result res
        cdef MPI_Request req = MPI_REQUEST_NULL
        cdef const void *buf = _data(a)
        cdef int d = dest, t = tag, status
        with nogil:
            status = cl_p2p_send(comm.ob_mpi, buf, nbytes, d, t, limit, nc, &req, &res)
        if status == CL_P2P_OK:
            return True
        cdef MPI.Request pending = None
        if req != MPI_REQUEST_NULL:
            pending = MPI.Request()
            pending.ob_mpi = req
        self.finish.send_failed(owner, a, dest, tag, _failure(&res, pending))

    def recv(self, owner, out, source, tag, timeout):
        """Receive into ``out``: its RecvStatus, or FAST_MISS for the checked path."""
        if not cnp.PyArray_CheckExact(out) or type(tag) is not int:
            return FAST_MISS
        cdef cnp.ndarray o = <cnp.ndarray>out
        if (cnp.PyArray_FLAGS(o) & _READY_W) != _READY_W or not self._known(<object>cnp.PyArray_DESCR(o)):
            return FAST_MISS
        cdef int src
        if type(source) is int:
            if not 0 <= source < self.size:
                return FAST_MISS
            src = source
        elif type(source) is str and source == "any":
            src = MPI_ANY_SOURCE
        else:
            return FAST_MISS
        if not 0 <= tag <= FAST_TAG_MAX or not self._usable(owner):
            return FAST_MISS
        cdef double limit = self._deadline(owner, timeout)
        cdef int64_t capacity = cnp.PyArray_NBYTES(o)
        if limit < 0 or capacity > 2147483647:
            return FAST_MISS
        cdef MPI.Comm comm = <MPI.Comm>owner._p2p
        cdef MPI_Comm nc = _comm_or_null(owner._notice) if self.size > 1 else MPI_COMM_NULL
        cdef cl_p2p_result res
        cdef MPI_Request req = MPI_REQUEST_NULL
        cdef MPI_Message msg = MPI_MESSAGE_NULL
        cdef void *buf = _data(o)
        cdef int itemsize = <int>cnp.PyArray_ITEMSIZE(o)
        cdef int t = tag, status
        with nogil:
            status = cl_p2p_recv(comm.ob_mpi, buf, capacity, itemsize, src, t, 1, 0, limit, nc,
                                 &req, &msg, &res)
        if status == CL_P2P_OK and req == MPI_REQUEST_NULL:
            return _tuple_new(self.status_type, (res.source, res.tag, res.nbytes // itemsize))
        # anything but a completed receive: the checked path's handling, from the same result
        return self.finish.recv_rest(owner, o, src, tag, timeout, _recv_outcome(status, req, msg, &res))
