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

from collectives.libexecutor cimport (CL_BLOCKING_DEADLINE_MAX_BYTES, CL_NATIVE_ALLTOALLV, CL_OK, CL_PENDING,
                                      cl_create, cl_create_native, cl_done, cl_blocking_deadline,
                                      cl_emulation_delays, cl_emulation_lateness, cl_execute, cl_execution, cl_free,
                                      cl_have_persistent, cl_is_persistent, cl_native, cl_now, cl_rebind_native,
                                      cl_rebind_program,
                                      cl_result, cl_row, cl_scratch_needed, cl_set_polls_before_yield,
                                      cl_start, cl_test, cl_wait, cl_wait_all)
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp

# one name for both, as in mpi4py's own Cython examples: cimported for the type
# (MPI.Comm, its ob_mpi), imported for the objects (MPI.COMM_WORLD)
from mpi4py import MPI

from ._constants import (NATIVE, STATUS_BAD_PROGRAM, STATUS_MPI_ERROR, STATUS_NO_MEMORY, STATUS_OK,
                         STATUS_PEER_NOTICE, STATUS_PENDING, STATUS_TIMEOUT, TAGS_PER_EXECUTION)

cnp.import_array()

import numpy as _np


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


def emulation_delays(bint reset=True):
    """``(lateness in s, steps whose data came late, their lateness in s)`` since the last call.

    The lateness of every held step summed, and the part of it by which a step's
    messages were complete only after their modelled time (the transfer, or this
    rank getting a core to see it, was slower than the model); the rest is
    waking from the hold late.
    """
    cdef int64_t data_late = 0
    cdef double late_sum = 0.0, data_late_sum = 0.0
    cl_emulation_delays(&late_sum, &data_late, &data_late_sum, reset)
    return late_sum, data_late, data_late_sum


# ---- the small-call fast path ------------------------------------------------------------
#
# A training loop calls the same small all-reduce thousands of times. The checked path
# (collectives.communicator) costs microseconds of Python per call; here a call whose shape
# was seen before (same array type, dtype, shape, op, algorithm and kind of output) is
# checked and run in C. Only what the shape cannot tell is checked per call: the buffers'
# flags, out's dtype/shape/overlap, the deadline. Anything unusual returns FAST_MISS and the
# checked path decides, with its own errors, before any message is sent.

#: returned by FastCalls.call for a call it does not take: run the checked path instead
FAST_MISS = object()

cdef enum:
    FAST_MAX_DIMS = 8     # arrays with more dimensions take the checked path
    FAST_SHAPES = 8       # call shapes kept per collective (a loop's loss, norm, flags...)

# out= None, out is x (in place), a separate array
OUT_NEW, OUT_INPLACE, OUT_SEPARATE = 0, 1, 2


cdef class _Shape:
    cdef object descr          # numpy dtype, compared by identity
    cdef tuple shape           # x.shape, for a new output
    cdef str op, algorithm, label
    cdef int out_kind, ndim, dcode, opcode, root
    cdef cnp.npy_intp dims[FAST_MAX_DIMS]
    cdef int64_t count
    cdef list pool             # idle executions of this shape for the non-blocking fast path

    def __cinit__(self):
        self.pool = []


cdef inline bint _same_dims(cnp.ndarray a, int ndim, const cnp.npy_intp *dims):
    if cnp.PyArray_NDIM(a) != ndim:
        return False
    cdef const cnp.npy_intp *d = cnp.PyArray_DIMS(a)
    for i in range(ndim):
        if d[i] != dims[i]:
            return False
    return True


cdef bint _same_shape(_Shape a, _Shape b):
    return (a.descr is b.descr and a.shape == b.shape and a.op == b.op and a.algorithm == b.algorithm
            and a.out_kind == b.out_kind)


cdef int _READY = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED


cdef class FastCalls:
    """Repeat calls of one collective on one communicator that the MPI library's own
    collective runs (``algorithm="mpi"``, or what "auto" chose for small messages).

    The Communicator remembers a call shape here after the checked path ran it; a later
    call with that shape is checked and run by :meth:`call` in one compiled call.
    """
    cdef MPI.Comm comm
    cdef MPI.Comm notice
    cdef int which
    cdef readonly str collective
    cdef list shapes

    def __cinit__(self, MPI.Comm comm not None, MPI.Comm notice, str collective, int which):
        self.comm = comm
        self.notice = notice
        self.collective = collective
        self.which = which
        self.shapes = []

    def remember(self, cnp.ndarray x not None, str op, str algorithm, int out_kind, int dcode,
                 int opcode, int root, str label):
        """Keep the shape of a call the checked path just ran (on ``x``, a plain numpy array)."""
        if cnp.PyArray_NDIM(x) > FAST_MAX_DIMS:
            return
        cdef _Shape s = _Shape()
        s.descr = <object>cnp.PyArray_DESCR(x)
        s.op, s.algorithm, s.label = op, algorithm, label
        s.out_kind, s.dcode, s.opcode, s.root = out_kind, dcode, opcode, root
        s.ndim = cnp.PyArray_NDIM(x)
        for i in range(s.ndim):
            s.dims[i] = cnp.PyArray_DIMS(x)[i]
        s.count = cnp.PyArray_SIZE(x)
        s.shape = (<object>x).shape
        for cand in self.shapes:   # a shape seen again (its call missed for a per-call reason)
            if _same_shape(<_Shape>cand, s):
                self.shapes.remove(cand)
                break
        self.shapes.insert(0, s)
        del self.shapes[FAST_SHAPES:]

    def forget(self):
        """Drop every remembered shape (the communicator was freed or broke)."""
        self.shapes = []

    def __len__(self):
        return len(self.shapes)

    cdef _Shape _lookup(self, object owner, object x, object out, object op, object algorithm):
        """The remembered shape of this call when its buffers and the Communicator pass every
        per-call check the shape cannot answer; None sends the call to the checked path."""
        if not self.shapes or not cnp.PyArray_CheckExact(x) or type(op) is not str \
                or type(algorithm) is not str:
            return None
        cdef cnp.ndarray a = <cnp.ndarray>x
        cdef cnp.ndarray o
        cdef int kind = OUT_NEW if out is None else (OUT_INPLACE if out is x else OUT_SEPARATE)
        cdef object descr = <object>cnp.PyArray_DESCR(a)
        cdef _Shape s = None
        for cand in self.shapes:
            s = <_Shape>cand
            if (s.descr is descr and s.out_kind == kind and _same_dims(a, s.ndim, s.dims)
                    and (s.op is op or s.op == op)
                    and (s.algorithm is algorithm or s.algorithm == algorithm)):
                break
            s = None
        if s is None:
            return None
        cdef int flags = cnp.PyArray_FLAGS(a)
        if (flags & _READY) != _READY:
            return None
        cdef char *xp = <char *>cnp.PyArray_DATA(a)
        cdef char *op_
        cdef cnp.npy_intp nbytes = cnp.PyArray_NBYTES(a)
        if kind == OUT_INPLACE:
            if not flags & cnp.NPY_ARRAY_WRITEABLE:
                return None
        elif kind == OUT_SEPARATE:
            if not cnp.PyArray_CheckExact(out):
                return None
            o = <cnp.ndarray>out
            flags = cnp.PyArray_FLAGS(o)
            if ((flags & (_READY | cnp.NPY_ARRAY_WRITEABLE)) != (_READY | cnp.NPY_ARRAY_WRITEABLE)
                    or <object>cnp.PyArray_DESCR(o) is not descr or not _same_dims(o, s.ndim, s.dims)):
                return None
            op_ = <char *>cnp.PyArray_DATA(o)
            if nbytes and op_ < xp + nbytes and xp < op_ + nbytes:
                return None   # overlapping buffers: the checked path decides
        # what may change between calls on the Communicator itself
        if owner._broken or owner._comm is None or owner.validate:
            return None
        return s

    def call(self, owner, x, out, op, algorithm, timeout):
        """Run the call if its shape was remembered and its buffers pass; else FAST_MISS.

        ``owner`` is the Communicator: a broken or freed one, ``validate``, a deadline
        that is not a plain positive number all go the checked path. Returns what the
        public method returns (``out``, or a new array).
        """
        cdef _Shape s = self._lookup(owner, x, out, op, algorithm)
        if s is None:
            return FAST_MISS
        cdef double deadline
        if timeout is None:
            deadline = owner.timeout_or_zero
        elif type(timeout) is float or type(timeout) is int:
            deadline = timeout
            if not deadline > 0:
                return FAST_MISS
        else:
            return FAST_MISS
        cdef cnp.ndarray o
        if s.out_kind == OUT_NEW:
            o = _np.empty(s.shape, s.descr)
            result = o
        else:
            o = <cnp.ndarray>out
            result = out
        cdef cl_result res
        cdef int status
        cdef const void *sp = _data(<cnp.ndarray>x)
        cdef void *rp = _data(o)
        cdef MPI_Comm nc = self.notice.ob_mpi if self.notice is not None else MPI_COMM_NULL
        with nogil:
            status = cl_native(self.comm.ob_mpi, self.which, sp, rp, s.count, NULL, s.dcode,
                               s.opcode, s.root, deadline, nc, &res)
        if status != CL_OK:
            owner._check_result(_result(&res), self.collective, s.label)
        return result

    def start(self, owner, x, out, op, algorithm):
        """Start the non-blocking call (``comm.iallreduce``...) if its shape was remembered and
        its buffers pass: a :class:`FastRequest`, else FAST_MISS.

        The request runs on an execution of the shape's pool, bound to this call's
        buffers; it goes back to the pool when the request completes, so two requests
        in flight never share one.
        """
        cdef _Shape s = self._lookup(owner, x, out, op, algorithm)
        if s is None:
            return FAST_MISS
        cdef cnp.ndarray a = <cnp.ndarray>x
        cdef cnp.ndarray o
        if s.out_kind == OUT_NEW:
            o = _np.empty(s.shape, s.descr)
            result = o
        else:
            o = a if s.out_kind == OUT_INPLACE else <cnp.ndarray>out
            result = out
        cdef Execution ex
        if s.pool:
            ex = <Execution>s.pool.pop()
            ex.bind(self.comm, self.notice, a, o)
        else:
            made = Execution.collective(self.comm, self.which, a, o, s.count, None, s.dcode, s.opcode,
                                        s.root, False, self.notice)
            if isinstance(made, dict):
                owner._check_result(made, self.collective, s.label)
            ex = <Execution>made
        cdef FastRequest req = FastRequest.__new__(FastRequest)
        req.ex = ex
        req.shape = s
        req.owner = owner
        req.result = result
        req.collective = self.collective
        req.state = REQ_ACTIVE
        cdef int st = cl_start(ex.ex, owner.timeout_or_zero, &ex.res)
        if st == CL_OK:
            req._complete()
        elif st != CL_PENDING:
            req._fail(_result(&ex.res))
        return req

# ---- resumable executions (collectives.requests) ------------------------------------

def now():
    """The core's monotonic clock (seconds): deadlines passed to Execution.wait are on it."""
    return cl_now()


def buffer_state(cnp.ndarray a):
    """(address, bytes) of an array's memory, cheaply (a persistent request's bound buffers)."""
    return (<intptr_t>cnp.PyArray_DATA(a), cnp.PyArray_NBYTES(a))


BLOCKING_DEADLINE_MAX_BYTES = CL_BLOCKING_DEADLINE_MAX_BYTES


def blocking_deadline(want=None):
    """Whether small native calls with a deadline run blocking under the revoking watchdog.

    ``want``: False switches that path off, True back on where the MPI allows it
    (Open MPI with ULFM enabled, ``MPI_THREAD_MULTIPLE``), None only asks. Returns
    True when the path is active. MPI must be initialised.
    """
    return bool(cl_blocking_deadline(-1 if want is None else (1 if want else 0)))


def have_persistent():
    """True when this build's MPI has MPI-4 persistent collectives (MPI_Allreduce_init, ...)."""
    return bool(cl_have_persistent())


cdef class Execution:
    """One program, or one MPI collective, bound to its buffers: started, tested, waited, freed.

    Holds a reference to every buffer the C execution reads or writes (and to the
    communicators), so none is freed while the execution exists; the caller must
    not change their size. ``start``/``test``/``wait`` return None (done), False
    (``test``: not yet) or a result dict on failure.
    """
    cdef cl_execution *ex
    cdef cl_result res
    cdef readonly object keep
    cdef readonly bint native

    def __dealloc__(self):
        if self.ex != NULL:
            cl_free(self.ex)
            self.ex = NULL

    @staticmethod
    def program(MPI.Comm comm not None, cnp.ndarray program, cnp.ndarray inbuf, cnp.ndarray outbuf,
                cnp.ndarray tmp, int dtype, int op, int64_t segment_bytes, int inflight,
                cnp.ndarray scratch, int tag_base, cnp.ndarray holds=None, MPI.Comm notice=None):
        """An execution of `program` (PROGRAM_DTYPE rows) on `comm`; raises MemoryError/ValueError."""
        cdef Execution e = Execution.__new__(Execution)
        cdef void *bufs[3]
        bufs[0] = _data(inbuf)
        bufs[1] = _data(outbuf)
        bufs[2] = _data(tmp)
        cdef const double *hp = NULL
        if holds is not None:
            if cnp.PyArray_DIM(holds, 0) != cnp.PyArray_DIM(program, 0):
                raise ValueError("holds must have one entry per program row")
            hp = <const double *>cnp.PyArray_DATA(holds)
        cdef MPI_Comm nc = notice.ob_mpi if notice is not None else MPI_COMM_NULL
        e.keep = (comm, program, inbuf, outbuf, tmp, scratch, holds, notice)
        e.native = False
        e.ex = cl_create(comm.ob_mpi, <const cl_row *>cnp.PyArray_DATA(program), cnp.PyArray_DIM(program, 0),
                         bufs, dtype, op, segment_bytes, inflight, cnp.PyArray_DATA(scratch),
                         cnp.PyArray_NBYTES(scratch), tag_base, hp, nc, &e.res)
        if e.ex == NULL:
            raise ValueError(e.res.message.decode("utf-8", "replace"))
        return e

    @staticmethod
    def collective(MPI.Comm comm not None, int which, cnp.ndarray sendbuf, cnp.ndarray recvbuf,
                   int64_t count, cnp.ndarray recvcounts, int dtype, int op, int root, bint persistent,
                   MPI.Comm notice=None):
        """An execution of the MPI library's own collective (persistent where the MPI has it)."""
        cdef Execution e = Execution.__new__(Execution)
        cdef const int *counts = NULL
        if recvcounts is not None:
            counts = <const int *>cnp.PyArray_DATA(recvcounts)
        cdef const void *sp = _data(sendbuf) if sendbuf is not None else NULL
        cdef void *rp = _data(recvbuf) if recvbuf is not None else NULL
        cdef MPI_Comm nc = notice.ob_mpi if notice is not None else MPI_COMM_NULL
        e.keep = (comm, sendbuf, recvbuf, notice)
        e.native = True
        with nogil:
            e.ex = cl_create_native(comm.ob_mpi, which, sp, rp, count, counts, dtype, op, root,
                                    persistent, nc, &e.res)
        if e.ex == NULL:
            return _result(&e.res)
        return e

    cdef bind(self, MPI.Comm comm, MPI.Comm notice, cnp.ndarray sendbuf, cnp.ndarray recvbuf):
        """Point an idle native execution at new buffers of its shape (the fast path's pool)."""
        if cl_rebind_native(self.ex, _data(sendbuf), _data(recvbuf)) != CL_OK:
            raise ValueError("only an idle, non-persistent native execution can be rebound")
        self.keep = (comm, sendbuf, recvbuf, notice)

    def rebind_program(self, cnp.ndarray inbuf not None, cnp.ndarray outbuf not None, int tag_base):
        """Point an idle program execution at new input and output buffers of its sizes and a
        new tag base, keeping its tmp and scratch (the pool of non-blocking calls by shape)."""
        if self.ex == NULL or self.native:
            raise ValueError("only an idle program execution can be rebound")
        _, program, old_in, old_out, tmp, scratch, holds, notice = self.keep
        if cnp.PyArray_NBYTES(inbuf) != cnp.PyArray_NBYTES(old_in) or \
                cnp.PyArray_NBYTES(outbuf) != cnp.PyArray_NBYTES(old_out):
            raise ValueError("a pooled execution is rebound to buffers of its own sizes only")
        if cl_rebind_program(self.ex, _data(inbuf), _data(outbuf), tag_base) != CL_OK:
            raise ValueError("only an idle program execution can be rebound")
        self.keep = (self.keep[0], program, inbuf, outbuf, tmp, scratch, holds, notice)

    @property
    def persistent(self):
        """True when this is an MPI-4 persistent request (MPI_Allreduce_init, ...)."""
        return self.ex != NULL and bool(cl_is_persistent(self.ex))

    @property
    def done(self):
        return self.ex != NULL and bool(cl_done(self.ex))

    def start(self, double timeout):
        """Begin a run (deadline `timeout` s from now, <= 0: none): None if already done, False if
        in flight, else a result dict."""
        cdef int st
        if self.ex == NULL:
            raise ValueError("execution freed")
        st = cl_start(self.ex, timeout, &self.res)
        if st == CL_OK:
            return None
        if st == CL_PENDING:
            return False
        return _result(&self.res)

    def test(self):
        """Progress without blocking: None when done, False when not yet, else a result dict."""
        cdef int st = cl_test(self.ex, &self.res)
        if st == CL_OK:
            return None
        if st == CL_PENDING:
            return False
        return _result(&self.res)

    def wait(self, double deadline=0.0):
        """Wait (without the GIL) until done; `deadline` > 0 on now()'s clock replaces the run's own."""
        cdef int st
        with nogil:
            st = cl_wait(self.ex, deadline, &self.res)
        if st == CL_OK:
            return None
        return _result(&self.res)

    def free(self):
        if self.ex != NULL:
            cl_free(self.ex)
            self.ex = NULL


def wait_all(list executions, double deadline=0.0):
    """Wait for every Execution of the list, round robin in C; None, or (index, result dict)."""
    cdef int n = len(executions)
    cdef cl_execution **es = <cl_execution **>malloc(sizeof(cl_execution *) * (n if n else 1))
    cdef int failed = -1, st, i
    cdef cl_result res
    cdef Execution e
    if es == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            e = <Execution?>executions[i]
            if e.ex == NULL:
                raise ValueError("execution freed")
            es[i] = e.ex
        with nogil:
            st = cl_wait_all(es, n, deadline, &failed, &res)
    finally:
        free(es)
    if st == CL_OK:
        return None
    return failed, _result(&res)


# ---- the non-blocking fast path's request ------------------------------------------------

cdef enum:
    REQ_ACTIVE = 0
    REQ_DONE = 1
    REQ_FAILED = 2
    POOL_DEPTH = 4        # idle executions kept per call shape (requests in flight at once)

#: native executions that failed while MPI may still use their buffers: kept alive for good
LEFT_TO_MPI = []

_STATE_NAMES = ("active", "done", "failed")


cdef class FastRequest:
    """A non-blocking collective started by the fast path (a repeat ``comm.iallreduce`` or
    ``comm.ialltoall`` of a shape the MPI library's own collective runs).

    It behaves as :class:`collectives.requests.Request` does: ``wait(timeout=None)``
    returns the result, ``test()`` moves the collective on and says whether it is
    complete, ``done``; a failure raises the blocking call's error and breaks the
    Communicator; dropped in flight, it is waited for with a ``ResourceWarning``.
    """
    cdef Execution ex
    cdef _Shape shape
    cdef object owner
    cdef object result
    cdef object error
    cdef int state
    cdef readonly str collective

    @property
    def algorithm(self):
        """The algorithm that runs the call (the MPI library's own collective)."""
        return self.shape.label

    @property
    def done(self):
        """True once the collective completed (without moving it on; see :meth:`test`)."""
        return self.state == REQ_DONE

    cdef _complete(self):
        self.state = REQ_DONE
        cdef Execution ex = self.ex
        self.ex = None
        ex.keep = None              # the pool must not keep the caller's buffers alive
        if len(self.shape.pool) < POOL_DEPTH:
            self.shape.pool.append(ex)

    def _fail(self, res):
        self.state = REQ_FAILED
        LEFT_TO_MPI.append(self.ex)   # MPI may still write into its buffers
        self.ex = None
        try:
            self.owner._check_result(res, self.collective, self.shape.label)
            from .errors import RequestError

            self.error = RequestError(f"{self.collective}: request failed: {res.get('message')}")
            raise self.error
        except BaseException as exc:
            self.error = exc
            raise

    def test(self):
        """Move the collective on without blocking; True once it is complete."""
        if self.state == REQ_DONE:
            return True
        if self.state == REQ_FAILED:
            raise self.error
        cdef int st = cl_test(self.ex.ex, &self.ex.res)
        if st == CL_OK:
            self._complete()
            return True
        if st == CL_PENDING:
            return False
        self._fail(_result(&self.ex.res))

    def wait(self, timeout=None):
        """Wait until the collective completes and return its result (see
        :meth:`collectives.requests.Request.wait`)."""
        if self.state == REQ_DONE:
            return self.result
        if self.state == REQ_FAILED:
            raise self.error
        cdef double deadline = 0.0
        if timeout is not None:
            if (type(timeout) is float or type(timeout) is int) and timeout > 0:   # not NaN either
                deadline = cl_now() + <double>timeout
            else:
                from .communicator import _check_timeout

                deadline = cl_now() + _check_timeout(timeout)
        cdef int st
        cdef cl_execution *e = self.ex.ex
        with nogil:
            st = cl_wait(e, deadline, &self.ex.res)
        if st == CL_OK:
            self._complete()
            return self.result
        self._fail(_result(&self.ex.res))

    # what collectives.requests.wait_all reads of a request
    @property
    def _state(self):
        return _STATE_NAMES[self.state]

    @property
    def _execution(self):
        return self.ex

    @property
    def _result(self):
        return self.result

    def _finish(self):
        self._complete()

    def _not_active(self, what):
        if self.state == REQ_FAILED:
            raise self.error

    def __del__(self):
        if self.state == REQ_ACTIVE and self.ex is not None:
            wait_dropped(self)

    def __repr__(self):
        return f"<collectives.Request {self.collective} ({self.shape.label}), {_STATE_NAMES[self.state]}>"


def wait_dropped(request):
    """A request garbage-collected while in flight (its owner's ``__del__``): warn and wait for
    it, so its buffers are not freed under MPI; an error broke the Communicator, whose next
    call says so. Nothing at interpreter exit, when MPI may be gone."""
    import sys

    if sys.is_finalizing():
        return
    try:
        import warnings

        warnings.warn(f"a {request.collective} request was dropped while in flight: waiting for it "
                      "(wait for every request you start)", ResourceWarning, stacklevel=3)
        request.wait()
    except Exception:
        pass


# ---- the all-to-all-v fast path -------------------------------------------------------------
#
# An expert-parallel layer exchanges blocks of the same counts many times (the counts change
# only when the routing does). A call whose x and out, counts and algorithm match a shape the
# checked path ran (Communicator.alltoallv) is checked and run here in one compiled call; the
# counts are compared by value with the remembered ones. Anything else returns FAST_MISS.

cdef class _VShape:
    cdef object descr, send_counts, recv_counts, entry
    cdef str algorithm, label
    cdef int out_kind, ndim, out_ndim
    cdef cnp.npy_intp dims[FAST_MAX_DIMS]
    cdef cnp.npy_intp out_dims[FAST_MAX_DIMS]
    cdef tuple out_shape


cdef inline bint _same_counts(object given, object kept):
    """Counts equal to the remembered ones: an int array of the same dtype and bytes, or a
    list/tuple of the same type and values."""
    cdef cnp.ndarray g, k
    if cnp.PyArray_CheckExact(given):
        if not cnp.PyArray_CheckExact(kept):
            return False
        g = <cnp.ndarray>given
        k = <cnp.ndarray>kept
        if (<object>cnp.PyArray_DESCR(g) is not <object>cnp.PyArray_DESCR(k) or cnp.PyArray_NDIM(g) != 1
                or cnp.PyArray_DIM(g, 0) != cnp.PyArray_DIM(k, 0)
                or not cnp.PyArray_FLAGS(g) & cnp.NPY_ARRAY_C_CONTIGUOUS):
            return False
        return memcmp(cnp.PyArray_DATA(g), cnp.PyArray_DATA(k), cnp.PyArray_NBYTES(g)) == 0
    if type(given) is not type(kept) or not (type(given) is list or type(given) is tuple):
        return False
    for v in given:
        if type(v) is not int:   # 1.0 == 1, but the checked path refuses float counts
            return False
    return given == kept


cdef class FastAlltoallv:
    """Repeat ``Communicator.alltoallv`` calls with remembered counts (see above)."""
    cdef MPI.Comm comm
    cdef MPI.Comm notice
    cdef list shapes

    def __cinit__(self, MPI.Comm comm not None, MPI.Comm notice):
        self.comm = comm
        self.notice = notice
        self.shapes = []

    def remember(self, cnp.ndarray x not None, out, send_counts, recv_counts, str algorithm, entry):
        """Keep the shape of a call the checked path just ran on plain numpy arrays; ``entry``
        is its cached call (program, or counts for MPI_Ialltoallv)."""
        if cnp.PyArray_NDIM(x) > FAST_MAX_DIMS:
            return
        cdef _VShape s = _VShape()
        s.descr = <object>cnp.PyArray_DESCR(x)
        s.ndim = cnp.PyArray_NDIM(x)
        for i in range(s.ndim):
            s.dims[i] = cnp.PyArray_DIMS(x)[i]
        s.out_kind = OUT_NEW if out is None else OUT_SEPARATE
        cdef cnp.ndarray o
        if out is not None:
            o = <cnp.ndarray>out
            if cnp.PyArray_NDIM(o) > FAST_MAX_DIMS:
                return
            s.out_ndim = cnp.PyArray_NDIM(o)
            for i in range(s.out_ndim):
                s.out_dims[i] = cnp.PyArray_DIMS(o)[i]
        # private copies: the caller may change its own counts in place later
        s.send_counts = send_counts.copy() if type(send_counts) is not tuple else send_counts
        s.recv_counts = recv_counts.copy() if type(recv_counts) is not tuple else recv_counts
        s.algorithm, s.label, s.entry = algorithm, entry.algorithm, entry
        rows = int(sum(int(c) for c in recv_counts))
        s.out_shape = (rows,) + (<object>x).shape[1:]
        self.shapes.insert(0, s)
        del self.shapes[FAST_SHAPES:]

    def forget(self):
        """Drop every remembered shape (the communicator was freed or broke)."""
        self.shapes = []

    def __len__(self):
        return len(self.shapes)

    def call(self, owner, x, send_counts, recv_counts, out, algorithm, timeout):
        """Run the call if its shape was remembered and its buffers pass; else FAST_MISS."""
        if not self.shapes or not cnp.PyArray_CheckExact(x) or type(algorithm) is not str \
                or recv_counts is None:
            return FAST_MISS
        cdef cnp.ndarray a = <cnp.ndarray>x
        cdef cnp.ndarray o
        cdef int kind = OUT_NEW if out is None else OUT_SEPARATE
        cdef object descr = <object>cnp.PyArray_DESCR(a)
        cdef _VShape s = None
        for cand in self.shapes:
            s = <_VShape>cand
            if (s.descr is descr and s.out_kind == kind and _same_dims(a, s.ndim, s.dims)
                    and (s.algorithm is algorithm or s.algorithm == algorithm)
                    and _same_counts(send_counts, s.send_counts) and _same_counts(recv_counts, s.recv_counts)):
                break
            s = None
        if s is None or (cnp.PyArray_FLAGS(a) & _READY) != _READY:
            return FAST_MISS
        cdef char *xp
        cdef char *op_
        if kind == OUT_SEPARATE:
            if not cnp.PyArray_CheckExact(out):
                return FAST_MISS
            o = <cnp.ndarray>out
            if ((cnp.PyArray_FLAGS(o) & (_READY | cnp.NPY_ARRAY_WRITEABLE)) != (_READY | cnp.NPY_ARRAY_WRITEABLE)
                    or <object>cnp.PyArray_DESCR(o) is not descr or not _same_dims(o, s.out_ndim, s.out_dims)):
                return FAST_MISS
            xp = <char *>cnp.PyArray_DATA(a)
            op_ = <char *>cnp.PyArray_DATA(o)
            if (cnp.PyArray_NBYTES(a) and cnp.PyArray_NBYTES(o) and op_ < xp + cnp.PyArray_NBYTES(a)
                    and xp < op_ + cnp.PyArray_NBYTES(o)):
                return FAST_MISS   # overlapping buffers: the checked path says so
        if owner._broken or owner._comm is None or owner.emulate:
            return FAST_MISS
        cdef double deadline
        if timeout is None:
            deadline = owner.timeout_or_zero
        elif (type(timeout) is float or type(timeout) is int) and timeout > 0:
            deadline = timeout
        else:
            return FAST_MISS
        if kind == OUT_NEW:
            o = _np.empty(s.out_shape, descr)
        result = o if kind == OUT_NEW else out
        entry = s.entry
        cdef cl_result res
        cdef int status
        cdef const void *sp = _data(a)
        cdef void *rp = _data(o)
        cdef MPI_Comm nc = self.notice.ob_mpi if self.notice is not None else MPI_COMM_NULL
        cdef cnp.ndarray counts, program, tmp, scratch
        cdef const int *cp
        cdef void *bufs[3]
        cdef int dcode = entry.dcode
        if entry.program is None:
            counts = <cnp.ndarray>entry.counts
            cp = <const int *>cnp.PyArray_DATA(counts)
            with nogil:
                status = cl_native(self.comm.ob_mpi, CL_NATIVE_ALLTOALLV, sp, rp, 0, cp, dcode, 0, 0,
                                   deadline, nc, &res)
        else:
            program = <cnp.ndarray>entry.program
            tmp = <cnp.ndarray>owner._tmp
            scratch = <cnp.ndarray>owner._scratch
            bufs[0] = <void *>sp
            bufs[1] = rp
            bufs[2] = _data(tmp)
            status = _run_program(self.comm.ob_mpi, program, bufs, dcode, owner.segment_bytes,
                                  owner.inflight, scratch, deadline, nc, &res)
        if status != CL_OK:
            owner._check_result(_result(&res), "alltoallv", s.label, entry.num_steps or None)
        return result


cdef int _run_program(MPI_Comm comm, cnp.ndarray program, void **bufs, int dcode, int64_t segment_bytes,
                      int inflight, cnp.ndarray scratch, double deadline, MPI_Comm nc, cl_result *res):
    cdef const cl_row *rows = <const cl_row *>cnp.PyArray_DATA(program)
    cdef int64_t nrows = cnp.PyArray_DIM(program, 0)
    cdef void *sp = cnp.PyArray_DATA(scratch)
    cdef int64_t sb = cnp.PyArray_NBYTES(scratch)
    cdef int status
    with nogil:
        status = cl_execute(comm, rows, nrows, bufs, dcode, 0, segment_bytes, inflight, sp, sb, deadline,
                            0, NULL, nc, res)
    return status
