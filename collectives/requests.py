"""Non-blocking and persistent collectives: requests that run while the caller computes.

``comm.iallreduce(x)`` (and ``ialltoall``, ``ireduce_scatter``, ``iallgather``,
``ibroadcast``, ``ibarrier``) checks its arguments exactly as the blocking call
does, starts the collective and returns a :class:`Request` at once; the
collective moves on whenever the caller tests or waits for it (no Python
thread: the compiled executor is resumable). ``comm.allreduce_init(x, out=y)``
(and ``alltoall_init``, ``reduce_scatter_init``, ``allgather_init``,
``broadcast_init``) binds a call to its buffers once and returns a
:class:`PersistentRequest`, started and waited as often as needed with no
per-call planning, checking or allocation: MPI-4's ``MPI_Allreduce_init`` when
the algorithm is the MPI library's own ("mpi") and the MPI has it, the
executor's precompiled program otherwise.

Rules, as in MPI:

- every rank must start the collectives of one Communicator in the same order
  (requests, persistent starts and blocking calls alike);
- the buffers of a request in flight must not be read or written until it
  completes, and a persistent request's buffers must keep their size and
  address for its whole life (``start`` refuses otherwise);
- a request's deadline is the Communicator's timeout counted from its start;
  ``wait(timeout=t)`` replaces it with ``t`` seconds from the wait. A request
  that times out or fails raises as the blocking call would
  (:class:`~collectives.errors.CollectiveTimeout` naming the collective, step
  and peers) and breaks its Communicator.

A request dropped while in flight is waited for by its finaliser with a
:class:`ResourceWarning` (its buffers stay alive until then): never a silent
hang on a peer, never memory freed under a message.
"""

from __future__ import annotations

import abc
import atexit
import weakref
from typing import Any, Iterable, Optional

import numpy as np

from . import _p2p
from . import dtypes as _dt
from ._constants import BUF_TMP
from ._mpicheck import load_core
from .buffers import as_array
from .communicator import _check_timeout, _preemptions, _tag_upper
from .errors import CommunicationError, InvalidArgument, InvalidType, RequestError

_core = load_core()
_TAGS = int(_core.TAGS_PER_EXECUTION)

#: native executions that failed while MPI may still use their buffers: kept alive for good
_LEFT_TO_MPI: list = []

#: call shapes of non-blocking calls on the executor's programs pooled per Communicator, and
#: idle executions kept per shape (each request in flight holds its own)
_POOLED_SHAPES = 16
_POOLED_PER_SHAPE = 4


def _buffer_state(obj) -> tuple:
    """(address, bytes) of a user buffer now: a torch tensor can be resized under us."""
    if type(obj) is np.ndarray:
        return _core.buffer_state(obj)
    if type(obj).__module__.split(".")[0] == "torch":
        return (int(obj.data_ptr()), int(obj.nelement() * obj.element_size()))
    return _core.buffer_state(as_array(obj, "buffer"))


def _program_sizes(comm, entry, itemsize):
    """(scratch bytes, tmp bytes) a program needs: each execution in flight has its own."""
    cache = comm.__dict__.setdefault("_request_sizes", {})
    key = (id(entry), itemsize)
    hit = cache.get(key)
    if hit is not None and hit[0] is entry:
        return hit[1], hit[2]
    prog = entry.program
    scratch = int(_core.scratch_needed(prog, itemsize, comm.segment_bytes, comm.inflight))
    tmp = 0
    if len(prog):
        for buf, off in (("src_buf", "src_off"), ("dst_buf", "dst_off")):
            sel = prog[buf] == BUF_TMP
            if sel.any():
                tmp = max(tmp, int((prog[off][sel] + prog["count"][sel]).max()))
    if len(cache) > 512:
        cache.clear()
    cache[key] = (entry, scratch, tmp * itemsize)
    return scratch, tmp * itemsize


def _tag_base(comm, persistent: bool) -> tuple:
    """(slot, tag base) of a new execution: slots are handed out in start order, which every
    rank follows, so every rank gives one execution the same tags."""
    state = comm.__dict__.get("_request_slots")
    if state is None:
        nslots = (_tag_upper() + 1) // _TAGS - 1      # slot 0: the blocking calls' tags
        if nslots < 2:
            raise CommunicationError(f"this MPI's tag range (MPI_TAG_UB={_tag_upper()}) is too small "
                                     "for requests in flight beside blocking calls")
        half = max(1, nslots // 2)
        # non-blocking requests take slots 1..half, persistent ones the rest
        state = comm.__dict__["_request_slots"] = {"ranges": ((1, half), (half + 1, nslots)),
                                                   "next": [0, 0], "busy": {}}
    kind = 1 if persistent and state["ranges"][1][1] >= state["ranges"][1][0] else 0
    lo, hi = state["ranges"][kind]
    n = hi - lo + 1
    slot = lo + state["next"][kind] % n
    state["next"][kind] += 1
    holder = state["busy"].get(slot)
    if holder is not None and holder() is not None and holder()._holds_slot():
        raise RequestError(
            f"too many requests in flight on this Communicator: tag slot {slot} of {n} is still in use "
            "by an earlier request; wait for requests before starting more")
    return slot, slot * _TAGS


# ---- requests -----------------------------------------------------------------------

class Request(metaclass=abc.ABCMeta):
    """A collective started by ``comm.iallreduce`` and friends.

    ``wait()`` returns the result (the output array, or ``x`` for a broadcast,
    None for a barrier); ``test()`` moves the collective on and says whether it
    is complete. A request that fails raises the blocking call's error from
    ``wait``/``test`` and breaks its Communicator.

    A repeat ``iallreduce``/``ialltoall`` of a shape the MPI library's own
    collective runs returns the compiled fast path's request instead
    (``isinstance(req, Request)`` holds for it too), with the same methods.
    """

    _persistent = False

    def __init__(self, comm, collective, x, op="sum", out=None, root=0, algorithm="auto"):
        self._comm = comm
        self.collective = collective
        self._execution = None
        self._error: Optional[BaseException] = None
        self._state = "idle"            # idle, active, done, failed, freed
        self._slot = None
        if collective == "barrier":
            comm._ensure_usable()
            self._setup_barrier()
        else:
            self._setup(x, op, out, root, algorithm)
        if not self._persistent:
            self._begin()

    def _setup(self, x, op, out, root, algorithm):
        comm = self._comm
        collective = self.collective
        comm._ensure_usable()
        a, o, result, op_code, in_place = comm._operands(collective, x, op, out, root)
        stage = None
        if in_place:
            staged = np.empty_like(a)   # in place: the blocks still to be sent must not be overwritten
            stage = (a, staged)
            a = staged
        if not isinstance(algorithm, str):
            raise InvalidType(f"algorithm must be a string, got {algorithm!r}")
        self._result = result
        self._o = o
        self._stage = stage
        self._avg = op == "avg"
        self._bound = (x, out)
        self._wide = None
        if self._avg and a.dtype.itemsize == 2:
            # half precision: summed in float32, scaled to stay finite, rounded once (as blocking)
            self._k = max(0, int(comm.size - 1).bit_length())
            self._half = a
            a = np.empty(a.shape, dtype=np.float32)
            self._wide = (a, np.empty(o.shape, dtype=np.float32))
            o = self._wide[1]
            op_code = comm._op("sum", a.dtype)
        self._a = a
        self._fingerprint_args = (collective, a, op, int(root))
        entry = comm._entry(collective, algorithm, a, op_code, int(root))
        self._entry = entry
        self.algorithm = entry.algorithm
        self._num_steps = entry.num_steps or None
        self._validate_name = entry.algorithm
        if entry.program is None:
            made = _core.Execution.collective(comm._comm, _core.NATIVE[collective], a, o, a.size,
                                              entry.counts, entry.dcode, op_code, int(root),
                                              self._persistent, comm._notice)
            if isinstance(made, dict):
                comm._check_result(made, collective, entry.algorithm)
            self._execution = made
            if (not self._persistent and stage is None and not self._avg and not comm.validate
                    and collective in comm._fast):
                # later calls of this shape start in compiled code (comm.iallreduce, ...)
                comm._remember(collective, algorithm, self._bound, a, o,
                               op if collective == "allreduce" else None, op_code, int(root), entry)
        else:
            self._slot, tag_base = _tag_base(comm, self._persistent)
            flat_a = a if a.ndim == 1 else a.reshape(-1)
            flat_o = o if o.ndim == 1 else o.reshape(-1)
            self._pool = None
            if not self._persistent:
                # one pool per call shape: an idle execution keeps its tmp and scratch
                key = (id(entry), a.dtype.str, a.size, o.size, op_code, comm.segment_bytes, comm.inflight)
                pools = comm.__dict__.setdefault("_program_pools", {})
                held = pools.get(key)
                if held is None or held[0] is not entry:
                    if len(pools) >= _POOLED_SHAPES:
                        pools.pop(next(iter(pools)))
                    held = pools[key] = (entry, [])
                self._pool = held[1]
            if self._pool:
                ex = self._pool.pop()
                ex.rebind_program(flat_a, flat_o, tag_base)
                self._execution = ex
            else:
                scratch, tmp = _program_sizes(comm, entry, a.dtype.itemsize)
                self._execution = _core.Execution.program(
                    comm._comm, entry.program, flat_a, flat_o, np.empty(tmp, dtype=np.uint8),
                    entry.dcode, op_code, comm.segment_bytes, comm.inflight,
                    np.empty(scratch, dtype=np.uint8), tag_base, entry.holds, comm._notice)
            comm._request_slots["busy"][self._slot] = weakref.ref(self)
        return None

    def _setup_barrier(self):
        comm = self._comm
        self.algorithm = "mpi"
        self._result = None
        self._stage = None
        self._avg = False
        self._wide = None
        self._bound = (None, None)
        self._entry = None
        self._num_steps = None
        self._fingerprint_args = None
        made = _core.Execution.collective(comm._comm, _core.NATIVE["barrier"], None, None, 0, None,
                                          _dt.dtype_code(np.uint8), 0, 0, self._persistent, comm._notice)
        if isinstance(made, dict):
            comm._check_result(made, "barrier", "mpi")
        self._execution = made

    def _holds_slot(self) -> bool:
        return self._state == "active" or (self._persistent and self._state != "freed")

    # -- the run ------------------------------------------------------------------------

    def _begin(self):
        comm = self._comm
        if comm._broken or comm._comm is None:
            comm._ensure_usable()
        if comm.validate and comm.size > 1 and self._fingerprint_args is not None:
            collective, a, op, root = self._fingerprint_args
            comm._fingerprint(collective, self._validate_name, a, op, root, comm.timeout_or_zero)
        if self._stage is not None:
            np.copyto(self._stage[1], self._stage[0])
        if self._wide is not None:
            wide = self._wide[0]
            wide[...] = self._half.astype(np.float32)
            if self._k:
                wide *= np.float32(2.0 ** -self._k)
        self._preempted = _preemptions() if self._entry is not None and self._entry.holds is not None else 0
        self._state = "active"
        status = self._execution.start(comm.timeout_or_zero)
        if status is None:
            self._finish()
        elif status is not False:
            self._fail(status)

    def _finish(self):
        self._state = "done"
        entry = self._entry
        comm = self._comm
        if entry is not None and entry.holds is not None:
            comm._judge_emulation(self._preempted)
        if self._wide is not None:
            total = self._wide[1]
            mean = total.astype(np.float64) / (comm.size * 2.0 ** -self._k)
            self._o[...] = mean.astype(self._o.dtype)
        elif self._avg:
            from ._kernels import divide_by

            divide_by(self._o, float(comm.size))
        if not self._persistent:
            self._release()

    def _fail(self, res):
        self._state = "failed"
        if self._execution is not None and self._execution.native:
            _LEFT_TO_MPI.append(self._execution)   # MPI may still write into its buffers
        try:
            self._comm._check_result(res, self.collective, self.algorithm, self._num_steps)
            self._error = RequestError(f"{self.collective}: request failed: {res.get('message')}")
            raise self._error
        except BaseException as exc:
            self._error = exc
            raise

    def _release(self):
        ex = self._execution
        self._execution = None
        if ex is not None and self._state != "failed":
            pool = getattr(self, "_pool", None)
            if pool is not None and self._state == "done" and len(pool) < _POOLED_PER_SHAPE:
                pool.append(ex)   # idle again: the next call of this shape reuses it
            else:
                ex.free()

    # -- public -------------------------------------------------------------------------

    def test(self) -> bool:
        """Move the collective on without blocking; True once it is complete.

        Raises the collective's error (e.g. ``CollectiveTimeout`` once its deadline
        has passed) if it failed.
        """
        state = self._state
        if state == "done":
            return True
        if state != "active":
            return self._not_active("test")
        status = self._execution.test()
        if status is None:
            self._finish()
            return True
        if status is False:
            return False
        self._fail(status)

    def wait(self, timeout: float | None = None) -> Any:
        """Wait until the collective completes and return its result.

        Parameters
        ----------
        timeout : float, optional
            Seconds from now before giving up (``CollectiveTimeout``, and the
            Communicator breaks); by default the request's own deadline, the
            Communicator's timeout counted from the start.

        Returns
        -------
        The output (``out``, or a new array), ``x`` for a broadcast, None for a barrier.
        """
        state = self._state
        if state == "done":
            return self._result
        if state != "active":
            self._not_active("wait")
            return self._result
        deadline = 0.0
        if timeout is not None:
            deadline = _core.now() + _check_timeout(timeout)
        status = self._execution.wait(deadline)
        if status is None:
            self._finish()
            return self._result
        self._fail(status)

    def _not_active(self, what):
        if self._state == "failed":
            raise self._error
        if self._state == "freed":
            raise RequestError(f"{what}: this {self.collective} request was freed")
        raise RequestError(f"{what}: this persistent {self.collective} was not started")

    @property
    def done(self) -> bool:
        """True once the collective completed (without moving it on; see :meth:`test`)."""
        return self._state == "done"

    def __del__(self):
        if getattr(self, "_state", None) == "active":
            _core.wait_dropped(self)

    def __repr__(self):
        return f"<collectives.{type(self).__name__} {self.collective} ({getattr(self, 'algorithm', '?')}), " \
               f"{self._state}>"


class PersistentRequest(Request):
    """A collective bound once to its buffers, started and waited any number of times.

    Made by ``comm.allreduce_init`` and friends: the algorithm is chosen and its
    program compiled (or MPI's persistent request made) once. ``start()`` begins a
    run, ``wait()``/``test()`` as for :class:`Request`, ``free()`` releases it;
    usable as a context manager. Starting again before the run completed raises
    :class:`~collectives.errors.RequestError`; a bound buffer whose size or address
    changed (``torch.Tensor.resize_``), or a broken or freed Communicator, is
    refused by ``start`` before any message.
    """

    _persistent = True

    def __init__(self, comm, collective, x, op="sum", out=None, root=0, algorithm="auto"):
        super().__init__(comm, collective, x, op=op, out=out, root=root, algorithm=algorithm)
        self._states = tuple(_buffer_state(b) if b is not None else None for b in self._bound)
        _LIVE_PERSISTENT.add(self)

    @property
    def persistent_mpi(self) -> bool:
        """True when each start is an MPI_Start of an MPI-4 persistent collective."""
        return self._execution is not None and self._execution.native and self._execution.persistent

    def start(self) -> "PersistentRequest":
        """Begin a run; returns self (so ``op.start().wait()`` reads well)."""
        comm = self._comm
        if comm._broken or comm._comm is None:
            comm._ensure_usable()
        if self._state == "active":
            raise RequestError(f"start: this persistent {self.collective} is still in flight: "
                               "wait (or test until done) before starting it again")
        if self._state == "freed":
            raise RequestError(f"start: this persistent {self.collective} was freed")
        if self._state == "failed":
            raise self._error
        x, out = self._bound
        if x is not None and _buffer_state(x) != self._states[0]:
            raise InvalidArgument(self._moved("x", x, self._states[0]))
        if out is not None and _buffer_state(out) != self._states[1]:
            raise InvalidArgument(self._moved("out", out, self._states[1]))
        self._begin()
        return self

    def _moved(self, name, obj, then):
        addr, nbytes = _buffer_state(obj)
        return (f"start: {self.collective}'s bound {name} changed since it was bound ({then[1]} bytes "
                f"at {then[0]:#x}, now {nbytes} bytes at {addr:#x}); bind the new buffer with a new "
                f"{self.collective}_init")

    def free(self) -> None:
        """Release the request (waits first if a run is in flight)."""
        if self._state == "active":
            self.wait()
        if self._state != "failed":
            self._release()
        self._state = "freed"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._state == "active" and exc[0] is not None:
            try:
                self.wait()
            except Exception:
                pass
        self.free()
        return False


# the compiled fast path's request (collectives._executor.FastRequest) is a Request to callers
Request.register(_core.FastRequest)


#: persistent requests still bound: released at exit while MPI is still initialised
_LIVE_PERSISTENT: "weakref.WeakSet[PersistentRequest]" = weakref.WeakSet()


@atexit.register
def _release_persistent():
    """Free the executions (and MPI's persistent requests) of persistent requests not yet freed.

    Registered after mpi4py's own exit handler, so it runs before MPI_Finalize."""
    for op in list(_LIVE_PERSISTENT):
        try:
            if op._state in ("idle", "done"):
                op._release()
                op._state = "freed"
        except Exception:
            pass


# ---- many at once -------------------------------------------------------------------

def wait_all(requests: Iterable[Any], timeout: float | None = None) -> list:
    """Wait for every request, progressing them all together; their results in order.

    The requests may belong to several Communicators, and may be collectives'
    requests (results: what their ``wait`` returns) or point-to-point ones from
    ``isend``/``irecv`` (results: None for a send, a
    :class:`~collectives.p2p.RecvStatus` for a receive). The core moves each on
    in turn (no Python thread); point-to-point requests of one Communicator are
    waited for in one compiled call, their receives matched in posting order.
    On the first failure its error is raised (that request's Communicator
    breaks, except for a receive that never matched); the other requests are
    left as they are and may still be waited for.
    """
    reqs = requests if type(requests) is list else list(requests)
    done = _p2p.wait_all_of_one(reqs, timeout)   # point-to-point of one Communicator: one call
    if done is not None:
        return done
    p2p_reqs = []
    for r in reqs:
        if isinstance(r, _p2p.RequestBase):
            p2p_reqs.append(r)
        elif not isinstance(r, Request):
            raise InvalidType(f"wait_all takes requests, got {type(r).__name__}")
    if timeout is not None:
        timeout = _check_timeout(timeout)
    if not p2p_reqs:
        _wait_collectives(reqs, timeout)
        return [r._result for r in reqs]
    colls = [r for r in reqs if not isinstance(r, _p2p.RequestBase)]
    owners = {id(r._comm): r._comm for r in p2p_reqs}
    if not colls and len(owners) == 1:
        _p2p.wait_many(p2p_reqs[0]._comm, p2p_reqs, timeout)
    else:
        _wait_mixed(colls, p2p_reqs, owners, timeout)
    return [r._status if isinstance(r, _p2p.RequestBase) else r._result for r in reqs]


def _wait_collectives(reqs: list, timeout) -> None:
    pending = [r for r in reqs if r._state == "active"]
    for r in reqs:
        if r._state not in ("active", "done"):
            r._not_active("wait_all")
    if pending:
        deadline = 0.0
        if timeout is not None:
            deadline = _core.now() + timeout
        failure = _core.wait_all([r._execution for r in pending], deadline)
        for i, r in enumerate(pending):
            if failure is not None and i == failure[0]:
                continue
            if r._state == "active" and r._execution.done:
                r._finish()
        if failure is not None:
            pending[failure[0]]._fail(failure[1])


def _wait_mixed(colls: list, p2p_reqs: list, owners: dict, timeout) -> None:
    """Collectives' and point-to-point requests (or those of several Communicators) together:
    each moved on in turn until all are done; a deadline passed raises through its request."""
    import time

    for r in colls:
        if r._state not in ("active", "done"):
            r._not_active("wait_all")
    by_owner = {key: [r for r in p2p_reqs if id(r._comm) == key] for key in owners}
    start = time.monotonic()
    spins = 0
    while True:
        done = all([r.test() for r in colls])
        for key, mine in by_owner.items():
            done = _p2p.test_many(owners[key], mine) and done
        if done:
            return
        elapsed = time.monotonic() - start
        for r in p2p_reqs:
            limit = r._comm._deadline(timeout)
            if not r._done and limit and elapsed > limit:
                r.wait(timeout=1e-6)   # raises its own timeout, naming its peer and tag
        if timeout is not None and elapsed > timeout:
            for r in colls:
                if r._state == "active":
                    r.wait(timeout=1e-6)
        spins += 1
        if spins > 1000:
            time.sleep(0)   # long waits yield the core to the peers (shared machines)


def test_all(requests: Iterable[Request]) -> bool:
    """Move every request on once; True when all of them are complete."""
    return all([r.test() for r in list(requests)])
