"""Point-to-point messages of a Communicator: requests with deadlines and peer notices.

A send is an ``Isend`` on the Communicator's point-to-point duplicate; a receive
waits for a matching message with a matched probe (``Improbe``), checks its
size against the output buffer (so a message that does not fit is a clear
error, not a truncated buffer) and then receives it (``Imrecv``). While a
request waits, its loop tests it and, at most once a millisecond, probes the
notice duplicate for a peer that left or failed, exactly as the executor's wait
loops do; past the deadline it raises :class:`~collectives.errors.CollectiveTimeout`
naming the peer and the tag.

Receives of one Communicator are matched in the order they were posted: a
later receive does not probe while an earlier one that could take the same
message is still unmatched (MPI's non-overtaking rule).

The waits run in the compiled core (csrc/p2p.c) without the GIL: a blocking
``send``/``recv`` is one call into C, and so is ``Request.wait``/``test`` (and
:func:`collectives.wait_all` over requests of one Communicator) with any number
of receives queued: the core matches the queued receives in their turn while
it waits. Only a failure comes back to Python, whose methods here raise it.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from mpi4py import MPI

from . import _executor
from . import _p2p as _core
from . import notices
from .errors import CollectiveTimeout, CommunicationError, CommunicatorBroken, MismatchError, PeerFailure

ANY = "any"

#: the largest message the core sends in one MPI call: any with MPI 4's large-count calls,
#: else 2**31 - 1 bytes (longer ones go through mpi4py, which splits them)
_ONE_CALL_BYTES = 2 ** 63 - 1 if _executor.mpi_version() >= (4, 0) else 2 ** 31 - 1


class RecvStatus(NamedTuple):
    """What a completed receive got: the ``source`` rank, the ``tag`` and ``count`` elements.

    Immutable (a named tuple, which is also the cheapest to build on every receive);
    ``int(status)`` is the source rank.
    """

    source: int
    tag: int
    count: int

    def __int__(self) -> int:
        return self.source

    def __index__(self) -> int:
        return self.source


class Request(_core.RequestBase):
    """A point-to-point operation in flight (from :meth:`Communicator.isend` / ``irecv``).

    ``wait(timeout=None)`` completes it (the Communicator's deadline when
    ``timeout`` is None) and returns None for a send or a :class:`RecvStatus`
    for a receive; ``test()`` says whether it is complete, without waiting;
    ``status`` is the receive's status once complete. Both move every queued
    receive of the Communicator on, in posting order, in compiled code; several
    requests are completed together by :func:`collectives.wait_all`.
    """

    __slots__ = ()   # every field lives in the compiled base: no per-request dict

    def __init__(self, comm, kind: str, buf, peer: int, tag: int, itemsize: int):
        self._comm = comm          # the collectives.Communicator
        self.kind = kind           # "send" or "recv"
        self._recv = kind == "recv"
        self._buf = buf            # keeps the numpy view alive while MPI uses it
        self.peer = peer           # MPI.ANY_SOURCE for an any-source receive
        self.tag = tag
        self._itemsize = itemsize
        self._mpi = None           # the MPI.Request of a send or a matched receive
        self._status = None
        self._done = False
        self._error = None

    # ---- internals (the core calls these when a wait fails) ----------------------------

    def _peer_text(self) -> str:
        return "any rank" if self.peer == MPI.ANY_SOURCE else f"rank {self.peer}"

    def _expire(self, elapsed):
        comm = self._comm
        if self._mpi is not None:   # a send (or a receive already matched) still holds the buffer
            _strand(comm, self)
            comm._broken = f"{self.kind} to/from {self._peer_text()} timed out"
            broken = " This Communicator is now unusable: the message may still be in flight."
        else:   # an unmatched receive: nothing is posted, withdraw it and stay usable
            _withdraw(comm, self)
            broken = ""
        direction = "to" if self.kind == "send" else "from"
        self._error = CollectiveTimeout(
            f"{self.kind} {direction} {self._peer_text()} (tag {self.tag}) timed out after "
            f"{elapsed:.3f} s: the peer never posted the matching "
            f"{'receive' if self.kind == 'send' else 'send'}.{broken}",
            collective=self.kind, algorithm="p2p", peers=() if self.peer < 0 else (self.peer,),
            bytes_outstanding=int(getattr(self._buf, "nbytes", 0)), elapsed=elapsed)
        raise self._error

    def _take(self, out, waited: bool) -> bool:
        """Apply what ``_core.recv`` returned; True when the receive is complete (or matched and
        under way, when not ``waited``), False when nothing was there yet. Raises on failure."""
        status, source, tag, nbytes, elapsed, notice_from, message, handle, matched = out
        if matched:
            self._status = RecvStatus(source, tag, nbytes // self._itemsize)
        if status == _core.OK:
            if handle is None:
                self._mpi = None
                self._done = True
            else:
                self._mpi = handle
            return True
        if status == _core.PENDING:
            return False
        if status == _core.MISMATCH:
            self._error = _mismatch(self, source, nbytes)
            self._status = None
            _withdraw(self._comm, self)
            raise self._error
        if status == _core.LARGE:   # before MPI 4: mpi4py receives it (its own large-count path)
            o = self._buf
            if nbytes > o.nbytes or nbytes % self._itemsize:
                handle.Recv([bytearray(nbytes), MPI.BYTE])
                self._error = _mismatch(self, source, nbytes)
                self._status = None
                _withdraw(self._comm, self)
                raise self._error
            self._mpi = handle.Irecv([o, nbytes, MPI.BYTE])
            return True
        if handle is not None:   # matched: the transfer is under way and holds the buffer
            self._mpi = handle
        self._fail(status, elapsed, notice_from, message)

    def _fail(self, status, elapsed, notice_from, message):
        """Raise what a failed wait in the core means (the texts of the Python loop)."""
        if status == _core.TIMEOUT:
            self._expire(elapsed)
        if status == _core.PEER_NOTICE:
            self._peer_left(notice_from)
        comm = self._comm
        if self._mpi is not None:
            _strand(comm, self)
        comm._broken = f"{self.kind} to/from {self._peer_text()} failed in MPI"
        self._error = CommunicationError(
            f"{self.kind} {'to' if self.kind == 'send' else 'from'} {self._peer_text()} (tag "
            f"{self.tag}) failed in MPI: {message}. This Communicator is now unusable.")
        raise self._error

    def _peer_left(self, peer: int):
        comm = self._comm
        notice = comm._notice
        reason = notices.receive(notice, peer)
        comm._broken = f"rank {peer} {reason}"
        if self._mpi is None:
            _withdraw(comm, self)
        else:
            _strand(comm, self)
        direction = "to" if self.kind == "send" else "from"
        self._error = PeerFailure(
            f"{self.kind} {direction} {self._peer_text()} (tag {self.tag}) stopped: rank {peer} "
            f"{reason}. This Communicator is now unusable.",
            rank=peer, reason=reason, collective=self.kind, algorithm="p2p")
        raise self._error


def _strand(comm, req) -> None:
    """Keep a failed request's buffer alive as long as its Communicator: the message is still
    in flight (MPI may still read or write it), though nobody holds the request any more."""
    stranded = comm.__dict__.setdefault("_p2p_stranded", [])
    if not any(r is req for r in stranded):
        stranded.append(req)


def _notice_of(comm):
    """The notice duplicate a wait watches (None on one rank: nobody to hear from)."""
    return comm._notice if comm.size > 1 else None


def send(comm, a, dest: int, tag: int, timeout) -> None:
    """Send the numpy array ``a`` (checked by the caller) and wait, in one call into the core."""
    if comm._p2p_pending or a.nbytes > _ONE_CALL_BYTES:   # queued receives move on as it waits
        post_send(comm, a, dest, tag).wait(timeout)
        return
    failed = _core.send(comm._p2p, a, dest, tag,
                        comm.timeout_or_zero if timeout is None else comm._deadline(timeout),
                        comm._notice if comm.size > 1 else None)
    if failed is None:
        return
    send_failed(comm, a, dest, tag, failed)


def send_failed(comm, a, dest: int, tag: int, failed) -> None:
    """Raise what a failed blocking send in the core means (``failed``: what the core returned)."""
    req = Request(comm, "send", a, dest, tag, a.dtype.itemsize)
    req._mpi = failed[4]
    if req._mpi is not None:   # still in flight: keep its buffer alive as long as the Communicator
        _strand(comm, req)
    req._fail(failed[0], failed[1], failed[2], failed[3])


def recv(comm, o, source: int, tag: int, timeout) -> RecvStatus:
    """Receive into the numpy array ``o`` (checked by the caller), in one call into the core."""
    if comm._p2p_pending:   # earlier receives are matched first, in their turn
        return post_recv(comm, o, source, tag).wait(timeout)
    out = _core.recv(comm._p2p, o, source, tag, True, False,
                     comm.timeout_or_zero if timeout is None else comm._deadline(timeout),
                     comm._notice if comm.size > 1 else None)
    if out[0] == _core.OK and out[7] is None:
        return RecvStatus(out[1], out[2], out[3] // o.dtype.itemsize)
    return recv_rest(comm, o, source, tag, timeout, out)


def recv_rest(comm, o, source: int, tag: int, timeout, out) -> RecvStatus:
    """A blocking receive the core did not complete (``out``: what ``_core.recv`` returned):
    a receive still under way is waited for, a failure raised."""
    req = Request(comm, "recv", o, source, tag, o.dtype.itemsize)
    if out[8] and out[7] is not None and out[0] != _core.LARGE:   # matched, still under way
        _strand(comm, req)
    if req._take(out, waited=True) and not req._done:
        comm._p2p_pending.append(req)
        return req.wait(timeout)
    return req._status


def post_send(comm, a, dest: int, tag: int) -> Request:
    """Start sending the numpy array ``a`` (checked by the caller)."""
    req = Request(comm, "send", a, dest, tag, a.dtype.itemsize)
    if a.nbytes > _ONE_CALL_BYTES:   # mpi4py splits what one MPI call before MPI 4 cannot take
        req._mpi = comm._p2p.Isend([a, MPI.BYTE], dest=dest, tag=tag)
    else:
        req._mpi = _core.isend(comm._p2p, a, dest, tag)
    return req


def post_recv(comm, o, source: int, tag: int) -> Request:
    """Queue a receive into the numpy array ``o`` (checked by the caller)."""
    req = Request(comm, "recv", o, source, tag, o.dtype.itemsize)
    comm._p2p_pending.append(req)   # matched in its turn by the first wait or test
    return req


def _mismatch(req: Request, source: int, nbytes: int) -> MismatchError:
    o = req._buf
    return MismatchError(
        f"recv from rank {source} (tag {req.tag}): the message holds {nbytes} bytes, but out "
        f"holds {o.nbytes} bytes of {o.dtype} (itemsize {req._itemsize})"
        + (": it would be truncated" if nbytes > o.nbytes else ": not a whole number of elements")
        + ". The message was discarded; the Communicator stays usable.")


def _withdraw(comm, req: Request) -> None:
    try:
        comm._p2p_pending.remove(req)
    except ValueError:
        pass


def fast_path(comm) -> "_core.FastP2P":
    """The compiled fast path of ``comm``'s blocking send/recv (``Communicator.send``)."""
    import sys

    from .buffers import _KNOWN

    return _core.FastP2P(comm.size, _KNOWN, RecvStatus, sys.modules[__name__])


def set_polls_before_yield(polls: int) -> None:
    """Idle polls before point-to-point waits yield the core (the Communicator tunes it)."""
    _core.set_polls_before_yield(polls)


def check_usable(comm) -> None:
    if comm._p2p is None:
        raise CommunicatorBroken("this Communicator was freed; create a new one")
    comm._ensure_usable()
