# cython: language_level=3
"""Thin Cython layer over csrc/p2p.c: point-to-point sends and receives waited on
without the GIL, with a deadline and peer notices.

Buffers are numpy arrays that collectives.p2p has checked and keeps alive;
requests and matched messages cross as mpi4py objects (``MPI.Request``,
``MPI.Message``), so an operation can be finished by mpi4py as well.
"""

from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

cimport numpy as cnp
from mpi4py cimport MPI
from mpi4py.libmpi cimport (MPI_ANY_SOURCE, MPI_COMM_NULL, MPI_Comm, MPI_Message, MPI_MESSAGE_NULL,
                            MPI_Request, MPI_REQUEST_NULL, MPI_SUCCESS)

from collectives.libp2p cimport (CL_OP_ACTIVE, CL_OP_DONE, CL_OP_UNMATCHED, CL_P2P_LARGE,
                                 CL_P2P_MISMATCH, CL_P2P_MPI_ERROR, CL_P2P_OK, CL_P2P_PEER_NOTICE,
                                 CL_P2P_PENDING, CL_P2P_TIMEOUT, cl_p2p_isend, cl_p2p_op,
                                 cl_p2p_progress, cl_p2p_recv, cl_p2p_result, cl_p2p_send,
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


# ---- requests and the queue of a Communicator --------------------------------------------
#
# A pipeline keeps several receives posted at once (1F1B: two irecvs and two isends), so a
# wait must match the Communicator's receives in their posting order while it waits for its
# own. The request's state lives in this compiled base class; cl_p2p_progress moves the whole
# queue on without the GIL, and only a failure goes back to Python (collectives.p2p.Request's
# methods raise it with the texts of the library's errors).

cdef enum:
    QUEUE_ON_STACK = 16     # operations moved without a heap allocation


cdef class RequestBase:
    """The compiled state and waits of :class:`collectives.p2p.Request` (see there)."""
    cdef public object _comm, kind, _buf, _mpi, _status, _error
    cdef public int peer, tag, _itemsize
    cdef public bint _done, _recv

    def test(self):
        """Move the Communicator's queue on once, without waiting.

        Returns
        -------
        bool
            True once this operation is complete. Raises the operation's error if it failed.
        """
        if self._error is not None:
            raise self._error
        if not self._done:
            _run(self._comm, [self], True, 0.0)
        return self._done

    def wait(self, timeout=None):
        """Complete the operation, moving the Communicator's other queued receives on meanwhile.

        Parameters
        ----------
        timeout : float, optional
            Seconds from now; by default the Communicator's timeout.

        Returns
        -------
        RecvStatus or None
            The receive's status (``source``, ``tag``, ``count``); None for a send.

        Raises
        ------
        CollectiveTimeout
            Past the deadline, naming the peer and tag (an unmatched receive is
            withdrawn and the Communicator stays usable).
        PeerFailure
            When the peer left or failed.
        MismatchError
            When the message does not fit ``out`` (it is discarded).
        """
        if self._error is not None:
            raise self._error
        if self._done:
            return self._status
        owner = self._comm
        cdef double limit = _limit(owner, timeout)
        cdef list pending = owner._p2p_pending
        if not pending or (len(pending) == 1 and pending[0] is self):
            # nothing else queued: one wait in the core, as a blocking call
            if self._wait_alone(owner, pending, limit):
                return self._status
        _run(owner, [self], False, limit)
        return self._status

    cdef bint _wait_alone(self, owner, list pending, double limit) except -1:
        """Wait for this request alone (no other receive queued); False when the queue's
        general wait must finish it (a long message before MPI 4, received by mpi4py)."""
        cdef cl_p2p_result res
        cdef MPI_Comm nc = _comm_or_null(owner._notice) if owner.size > 1 else MPI_COMM_NULL
        cdef MPI.Request h
        cdef int status, peer = self.peer
        cdef MPI_Request req = MPI_REQUEST_NULL
        cdef MPI_Message msg = MPI_MESSAGE_NULL
        cdef cnp.ndarray o
        cdef MPI_Comm comm
        cdef void *buf
        cdef int64_t capacity
        cdef int itemsize = self._itemsize, tag = self.tag
        if self._mpi is not None:   # a send, or a matched receive
            h = <MPI.Request>self._mpi
            with nogil:
                status = cl_p2p_wait(&h.ob_mpi, limit, nc, peer, &res)
            if status != CL_P2P_OK:
                self._fail(status, res.elapsed, res.notice_from, res.message.decode("utf-8", "replace"))
            self._mpi = None
            self._done = True
            if self._recv:
                del pending[:]
            return True
        o = <cnp.ndarray>self._buf
        comm = _p2p_comm(owner)
        buf = _data(o)
        capacity = cnp.PyArray_NBYTES(o)
        with nogil:
            status = cl_p2p_recv(comm, buf, capacity, itemsize, peer, tag, 1, 0, limit, nc, &req, &msg, &res)
        if status == CL_P2P_OK and req == MPI_REQUEST_NULL:
            self._status = _tuple_new(_STATUS[0], (res.source, res.tag, res.nbytes // itemsize))
            self._done = True
            del pending[:]
            return True
        self._take(_recv_outcome(status, req, msg, &res), True)   # raises what failed
        return self._done

    @property
    def status(self):
        """The receive's status once complete (None before, and for a send)."""
        return self._status


cdef MPI_Comm _p2p_comm(owner) except *:
    """The point-to-point communicator of ``owner``; CommunicatorBroken once it was freed
    (a request waited for after ``comm.free()``)."""
    p2p_comm = owner._p2p
    if p2p_comm is None:
        from collectives.errors import CommunicatorBroken
        raise CommunicatorBroken("this Communicator was freed; create a new one")
    return (<MPI.Comm>p2p_comm).ob_mpi


cdef inline double _limit(owner, timeout) except -1.0:
    """The deadline in seconds of a wait (0: none)."""
    if timeout is None:
        return owner.timeout_or_zero
    if (type(timeout) is float or type(timeout) is int) and timeout > 0:
        return timeout
    return owner._deadline(timeout)   # checks it (the library's errors)


def wait_many(owner, list wanted, timeout=None):
    """Complete every request of ``wanted`` (all of ``owner``), moving them on together."""
    cdef list left = [r for r in wanted if not (<RequestBase>r)._done]
    for r in wanted:
        if (<RequestBase>r)._error is not None:
            raise (<RequestBase>r)._error
    if left:
        _run(owner, left, False, _limit(owner, timeout))


def test_many(owner, list wanted):
    """Move ``owner``'s queue on once; True when every request of ``wanted`` is complete."""
    for r in wanted:
        if (<RequestBase>r)._error is not None:
            raise (<RequestBase>r)._error
    _run(owner, [r for r in wanted if not (<RequestBase>r)._done], True, 0.0)
    for r in wanted:
        if not (<RequestBase>r)._done:
            return False
    return True


cdef int _run(owner, list wanted, bint once, double limit) except -1:
    """Move ``owner``'s queue (its unmatched and matched receives) and ``wanted`` on until every
    request of ``wanted`` is done (one pass when ``once``), within ``limit`` seconds (0: none).
    A failure is raised through the failing request's own methods."""
    cdef list pending = owner._p2p_pending
    cdef list queue = list(pending)
    cdef RequestBase r
    cdef Py_ssize_t i, n
    for w in wanted:
        r = <RequestBase>w
        if r._done or r._error is not None:
            continue
        # once each: a send is in no queue (it is tested with the receives), and a request
        # listed twice must not be tested twice, since MPI frees it at its first completion
        for q in queue:
            if q is r:
                break
        else:
            queue.append(r)
    n = len(queue)
    if n == 0:
        return 0
    cdef cl_p2p_op stack[QUEUE_ON_STACK]
    cdef cl_p2p_op *ops = stack
    if n > QUEUE_ON_STACK:
        ops = <cl_p2p_op *>malloc(n * sizeof(cl_p2p_op))
        if ops == NULL:
            raise MemoryError()
    cdef double spent = 0.0, now_limit
    cdef int status, failed, notice_peer = MPI_ANY_SOURCE
    cdef MPI_Comm comm, nc
    cdef cl_p2p_result res
    try:
        comm = _p2p_comm(owner)
        nc = _comm_or_null(owner._notice) if owner.size > 1 else MPI_COMM_NULL
        if len(wanted) == 1:
            notice_peer = (<RequestBase>wanted[0]).peer
        while True:
            _fill(queue, wanted, ops, n)
            now_limit = 0.0
            if limit > 0:
                now_limit = limit - spent if limit - spent > 1e-9 else 1e-9
            if once:   # one pass of tests and probes: not worth giving the GIL away
                status = cl_p2p_progress(comm, ops, <int>n, once, now_limit, nc, notice_peer, &failed, &res)
            else:
                with nogil:
                    status = cl_p2p_progress(comm, ops, <int>n, once, now_limit, nc, notice_peer,
                                             &failed, &res)
            spent += res.elapsed
            if _write_back(queue, ops, n, failed) and pending:
                pending[:] = [q for q in pending if not (<RequestBase>q)._done
                              and (<RequestBase>q)._error is None]
            if status == CL_P2P_OK or status == CL_P2P_PENDING:
                return 0
            r = <RequestBase>queue[failed]
            if status == CL_P2P_TIMEOUT:
                r._expire(spent)
            if status == CL_P2P_PEER_NOTICE:
                r._peer_left(res.notice_from)
            if status == CL_P2P_MPI_ERROR:
                r._fail(status, spent, res.notice_from, res.message.decode("utf-8", "replace"))
            # a message that does not fit (or too long for one call of this MPI): its own request says so
            outcome = _op_outcome(status, &ops[failed], &res)
            wanted_one = any(w is r for w in wanted)
            if wanted_one:
                r._take(outcome, True)
            else:
                try:
                    r._take(outcome, False)
                except Exception as exc:   # kept in r._error: its own wait raises it
                    if r._error is not exc:
                        raise
            pending[:] = [q for q in pending if not (<RequestBase>q)._done
                          and (<RequestBase>q)._error is None]
            queue = [q for q in queue if not (<RequestBase>q)._done and (<RequestBase>q)._error is None]
            n = len(queue)
            if n == 0 or all([(<RequestBase>w)._done or (<RequestBase>w)._error is not None
                              for w in wanted]):
                for w in wanted:
                    if (<RequestBase>w)._error is not None:
                        raise (<RequestBase>w)._error
                return 0
    finally:
        if ops != stack:
            free(ops)


cdef tuple _op_outcome(int status, cl_p2p_op *op, cl_p2p_result *res):
    """What ``recv`` would have returned for the operation (RequestBase._take's input)."""
    cdef MPI.Message m
    handle = None
    if status == CL_P2P_LARGE:
        m = MPI.Message()
        m.ob_mpi = op.message
        handle = m
    return (status, op.source, op.got_tag, op.nbytes, res.elapsed, res.notice_from,
            res.message.decode("utf-8", "replace"), handle, bool(op.matched))


cdef void _fill(list queue, list wanted, cl_p2p_op *ops, Py_ssize_t n) except *:
    cdef RequestBase r
    cdef cl_p2p_op *op
    cdef cnp.ndarray o
    for i in range(n):
        r = <RequestBase>queue[i]
        op = &ops[i]
        op.is_recv = r._recv
        op.peer = r.peer
        op.tag = r.tag
        op.matched = 0
        op.message = MPI_MESSAGE_NULL
        op.wanted = 0
        for w in wanted:
            if w is r:
                op.wanted = 1
                break
        if r._done:
            op.state = CL_OP_DONE
            op.req = MPI_REQUEST_NULL
        elif r._mpi is None:
            op.state = CL_OP_UNMATCHED if r._recv else CL_OP_DONE
            op.req = MPI_REQUEST_NULL
        else:
            op.state = CL_OP_ACTIVE
            op.req = (<MPI.Request>r._mpi).ob_mpi
        if r._recv:
            o = <cnp.ndarray>r._buf
            op.buf = _data(o)
            op.capacity = cnp.PyArray_NBYTES(o)
            op.itemsize = r._itemsize
        else:
            op.buf = NULL
            op.capacity = 0
            op.itemsize = 1


cdef int _write_back(list queue, cl_p2p_op *ops, Py_ssize_t n, int failed) except -1:
    """Copy what the core did into the requests; the number that finished."""
    cdef RequestBase r
    cdef cl_p2p_op *op
    cdef MPI.Request h
    cdef int finished = 0
    for i in range(n):
        if i == failed and ops[i].state == CL_OP_DONE and ops[i].matched:
            continue   # matched but not received: the caller applies the failure
        r = <RequestBase>queue[i]
        op = &ops[i]
        if op.matched:
            r._status = _tuple_new(_STATUS[0], (op.source, op.got_tag, op.nbytes // r._itemsize))
        if op.state == CL_OP_DONE:
            if not r._done:
                r._mpi = None
                r._done = True
                finished += 1
        elif op.state == CL_OP_ACTIVE:
            if r._mpi is None:
                h = MPI.Request()
                h.ob_mpi = op.req
                r._mpi = h
            else:
                (<MPI.Request>r._mpi).ob_mpi = op.req
    return finished


#: the RecvStatus named tuple (collectives.p2p), set once by set_status_type
_STATUS = [tuple]


def set_status_type(status_type):
    """The named tuple a completed receive's status is (collectives.p2p.RecvStatus)."""
    _STATUS[0] = status_type


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


cdef str _SEND = "send"
cdef str _RECV = "recv"


cdef class FastP2P:
    """Point-to-point calls of one Communicator in compiled code (see above): blocking
    ``send``/``recv`` and the requests of ``isend``/``irecv``.

    ``known`` is the set of dtypes the checked path has accepted (``collectives.buffers``);
    ``status_type`` the named tuple a receive returns; ``finish`` the Python module whose
    ``Request`` class the requests are, and whose ``send_failed``/``recv_rest`` take over when
    the core did not complete a blocking call.
    """
    cdef int size
    cdef object known, status_type, finish, request_type
    cdef list descrs

    def __cinit__(self, int size, known, status_type, finish):
        self.size = size
        self.known = known
        self.status_type = status_type
        self.finish = finish
        self.request_type = finish.Request
        self.descrs = []
        _STATUS[0] = status_type

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
        return not (owner._broken or owner._p2p is None)

    cdef double _deadline(self, owner, timeout) except -1.0:
        """The timeout in seconds (0: none), or -2 when the checked path must look at it."""
        if timeout is None:
            return owner.timeout_or_zero
        if (type(timeout) is float or type(timeout) is int) and timeout > 0:
            return timeout
        return -2.0

    cdef object _send_array(self, owner, x, dest, tag):
        """``x`` as an array the fast path sends to ``dest`` with ``tag``, else None."""
        if not cnp.PyArray_CheckExact(x) or type(dest) is not int or type(tag) is not int:
            return None
        cdef cnp.ndarray a = <cnp.ndarray>x
        if (cnp.PyArray_FLAGS(a) & _READY) != _READY or not self._known(<object>cnp.PyArray_DESCR(a)):
            return None
        if not (0 <= dest < self.size and 0 <= tag <= FAST_TAG_MAX) or not self._usable(owner):
            return None
        if cnp.PyArray_NBYTES(a) > 2147483647:
            return None
        return a

    cdef object _recv_array(self, owner, out, source, tag, int *src):
        """``out`` as an array the fast path receives into (``*src`` the source), else None."""
        if not cnp.PyArray_CheckExact(out) or type(tag) is not int:
            return None
        cdef cnp.ndarray o = <cnp.ndarray>out
        if (cnp.PyArray_FLAGS(o) & _READY_W) != _READY_W or not self._known(<object>cnp.PyArray_DESCR(o)):
            return None
        if type(source) is int:
            if not 0 <= source < self.size:
                return None
            src[0] = source
        elif type(source) is str and source == "any":
            src[0] = MPI_ANY_SOURCE
        else:
            return None
        if not 0 <= tag <= FAST_TAG_MAX or not self._usable(owner):
            return None
        if cnp.PyArray_NBYTES(o) > 2147483647:
            return None
        return o

    cdef RequestBase _request(self, owner, str kind, cnp.ndarray buf, int peer, int tag):
        cdef RequestBase r = <RequestBase>self.request_type.__new__(self.request_type)
        r._comm = owner
        r.kind = kind
        r._buf = buf
        r.peer = peer
        r.tag = tag
        r._itemsize = <int>cnp.PyArray_ITEMSIZE(buf)
        r._recv = kind is _RECV
        r._done = False
        return r

    cdef RequestBase _post_send(self, owner, cnp.ndarray a, int dest, int tag):
        cdef MPI.Request h = MPI.Request()
        cdef MPI.Comm comm = <MPI.Comm>owner._p2p
        cdef int rc = cl_p2p_isend(comm.ob_mpi, _data(a), cnp.PyArray_NBYTES(a), dest, tag, &h.ob_mpi)
        if rc != MPI_SUCCESS:
            raise MPI.Exception(rc)
        cdef RequestBase r = self._request(owner, _SEND, a, dest, tag)
        r._mpi = h
        return r

    cdef RequestBase _post_recv(self, owner, cnp.ndarray o, int source, int tag):
        cdef RequestBase r = self._request(owner, _RECV, o, source, tag)
        r._mpi = None
        owner._p2p_pending.append(r)   # matched in its turn by the first wait or test
        return r

    def isend(self, owner, x, dest, tag):
        """Start sending ``x`` to ``dest``: its request, or FAST_MISS for the checked path."""
        a = self._send_array(owner, x, dest, tag)
        if a is None:
            return FAST_MISS
        return self._post_send(owner, a, dest, tag)

    def irecv(self, owner, out, source, tag):
        """Start receiving into ``out``: its request, or FAST_MISS for the checked path."""
        cdef int src = 0
        o = self._recv_array(owner, out, source, tag, &src)
        if o is None:
            return FAST_MISS
        return self._post_recv(owner, o, src, tag)

    def send(self, owner, x, dest, tag, timeout):
        """Send ``x`` to ``dest`` and wait: True once sent, FAST_MISS for the checked path."""
        a_obj = self._send_array(owner, x, dest, tag)
        if a_obj is None:
            return FAST_MISS
        cdef double limit = self._deadline(owner, timeout)
        if limit < 0:
            return FAST_MISS
        cdef cnp.ndarray a = <cnp.ndarray>a_obj
        if owner._p2p_pending:   # receives are queued: they move on while this send waits
            _run(owner, [self._post_send(owner, a, dest, tag)], False, limit)
            return True
        cdef int64_t nbytes = cnp.PyArray_NBYTES(a)
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
        cdef int src = 0
        o_obj = self._recv_array(owner, out, source, tag, &src)
        if o_obj is None:
            return FAST_MISS
        cdef double limit = self._deadline(owner, timeout)
        if limit < 0:
            return FAST_MISS
        cdef cnp.ndarray o = <cnp.ndarray>o_obj
        cdef RequestBase r
        if owner._p2p_pending:   # earlier receives are matched first, in their turn
            r = self._post_recv(owner, o, src, tag)
            if not r._done:
                _run(owner, [r], False, limit)
            return r._status
        cdef int64_t capacity = cnp.PyArray_NBYTES(o)
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


def wait_all_of_one(list reqs, timeout=None):
    """``cl.wait_all`` when every request is a point-to-point one of one Communicator: their
    results (None for a send, the RecvStatus of a receive) after one compiled wait; None when
    the list holds anything else (the general path then takes it)."""
    if not reqs:
        return None
    cdef RequestBase r
    owner = None
    for q in reqs:
        if not isinstance(q, RequestBase):
            return None
        r = <RequestBase>q
        if owner is None:
            owner = r._comm
        elif r._comm is not owner:
            return None
    cdef double limit = _limit(owner, timeout)
    cdef list left = []
    for q in reqs:
        r = <RequestBase>q
        if r._error is not None:
            raise r._error
        if not r._done:
            left.append(r)
    if left:
        _run(owner, left, False, limit)
    return [(<RequestBase>q)._status for q in reqs]
