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
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from mpi4py import MPI

from . import notices
from .errors import CollectiveTimeout, CommunicatorBroken, MismatchError, PeerFailure

#: seconds between two probes of the notice duplicate while a request waits
NOTICE_POLL = 1e-3

ANY = "any"


@dataclass(frozen=True)
class RecvStatus:
    """What a completed receive got: the ``source`` rank, the ``tag`` and ``count`` elements."""

    source: int
    tag: int
    count: int

    def __int__(self) -> int:
        return self.source

    def __index__(self) -> int:
        return self.source


class Request:
    """A point-to-point operation in flight (from :meth:`Communicator.isend` / ``irecv``).

    ``wait(timeout=None)`` completes it (the Communicator's deadline when
    ``timeout`` is None) and returns None for a send or a :class:`RecvStatus`
    for a receive; ``test()`` says whether it is complete, without waiting.
    """

    def __init__(self, comm, kind: str, buf, peer: int, tag: int, itemsize: int):
        self._comm = comm          # the collectives.Communicator
        self.kind = kind           # "send" or "recv"
        self._buf = buf            # keeps the numpy view alive while MPI uses it
        self.peer = peer           # MPI.ANY_SOURCE for an any-source receive
        self.tag = tag
        self._itemsize = itemsize
        self._mpi: Optional[MPI.Request] = None
        self._status: Optional[RecvStatus] = None
        self._done = False
        self._error: Optional[Exception] = None

    # ---- public --------------------------------------------------------------------

    def test(self) -> bool:
        """True when the operation is complete (progressing it, and earlier receives, a little)."""
        if self._error is not None:
            raise self._error
        if not self._done:
            if self.kind == "send":
                _finish_if_done(self)
            # a send may wait for a receive of this rank that is queued but not yet posted
            # (a send to oneself, or a ring of exchanges): progress those too
            if not self._done:
                _progress(self._comm)
            if self._error is not None:
                raise self._error
        return self._done

    def wait(self, timeout: float | None = None):
        """Complete the operation; a :class:`RecvStatus` for a receive, None for a send.

        Raises :class:`~collectives.errors.CollectiveTimeout` past the deadline
        (``timeout`` seconds, else the Communicator's), naming the peer and tag,
        and :class:`~collectives.errors.PeerFailure` when the peer left.
        """
        comm = self._comm
        limit = comm._deadline(timeout)
        start = time.monotonic()
        next_notice = start + NOTICE_POLL
        spins = 0
        while not self.test():
            now = time.monotonic()
            if limit and now - start > limit:
                self._expire(now - start)
            if now >= next_notice:
                self._check_notices()
                next_notice = now + NOTICE_POLL
            spins += 1
            if spins > 1000:
                time.sleep(0)   # long waits yield the core to the peer (shared machines)
        return self._status

    @property
    def status(self) -> Optional[RecvStatus]:
        """The receive's status once complete (None before, and for a send)."""
        return self._status

    # ---- internals -----------------------------------------------------------------

    def _peer_text(self) -> str:
        return "any rank" if self.peer == MPI.ANY_SOURCE else f"rank {self.peer}"

    def _expire(self, elapsed):
        comm = self._comm
        if self._mpi is not None:   # a send (or a receive already matched) still holds the buffer
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

    def _check_notices(self):
        comm = self._comm
        notice = comm._notice
        if notice is None or comm.size < 2:
            return
        status = MPI.Status()
        source = MPI.ANY_SOURCE if self.peer == MPI.ANY_SOURCE else self.peer
        if not notice.Iprobe(source=source, tag=notices.TAG, status=status):
            return
        peer = status.Get_source()
        reason = notices.receive(notice, peer)
        comm._broken = f"rank {peer} {reason}"
        if self._mpi is None:
            _withdraw(comm, self)
        direction = "to" if self.kind == "send" else "from"
        self._error = PeerFailure(
            f"{self.kind} {direction} {self._peer_text()} (tag {self.tag}) stopped: rank {peer} "
            f"{reason}. This Communicator is now unusable.",
            rank=peer, reason=reason, collective=self.kind, algorithm="p2p")
        raise self._error


def post_send(comm, a, dest: int, tag: int) -> Request:
    """Start sending the numpy array ``a`` (checked by the caller)."""
    req = Request(comm, "send", a, dest, tag, a.dtype.itemsize)
    req._mpi = comm._p2p.Isend([a, MPI.BYTE] if a.size else [None, 0, MPI.BYTE], dest=dest, tag=tag)
    return req


def post_recv(comm, o, source: int, tag: int) -> Request:
    """Queue a receive into the numpy array ``o`` (checked by the caller)."""
    req = Request(comm, "recv", o, source, tag, o.dtype.itemsize)
    comm._p2p_pending.append(req)
    _progress(comm)
    return req


def _overlaps(a: Request, b: Request) -> bool:
    """Could one message match both receives?"""
    any_s = MPI.ANY_SOURCE
    return a.peer == any_s or b.peer == any_s or a.peer == b.peer


def _progress(comm) -> None:
    """Move every request of ``comm`` that can move: match receives in posting order, test."""
    pending = comm._p2p_pending
    if not pending:
        return
    blocked: list = []
    for req in list(pending):
        if req._done or req._error is not None:
            continue
        if req.kind == "recv" and req._mpi is None:
            if any(_overlaps(req, earlier) and earlier.tag == req.tag for earlier in blocked):
                continue
            if not _match(comm, req):
                blocked.append(req)
                continue
        _finish_if_done(req)
    pending[:] = [r for r in pending if not r._done and r._error is None]


def _match(comm, req: Request) -> bool:
    """Probe for ``req``'s message; when it is there, check its size and start receiving it."""
    status = MPI.Status()
    message = comm._p2p.improbe(source=req.peer, tag=req.tag, status=status)
    if message is None:
        return False
    nbytes = status.Get_count(MPI.BYTE)
    source = status.Get_source()
    o = req._buf
    if nbytes > o.nbytes or nbytes % req._itemsize:
        # take the message anyway, so that the channel stays in step, then say why it does not fit
        message.Recv([bytearray(nbytes), MPI.BYTE])
        req._error = MismatchError(
            f"recv from rank {source} (tag {req.tag}): the message holds {nbytes} bytes, but out "
            f"holds {o.nbytes} bytes of {o.dtype} (itemsize {req._itemsize})"
            + (": it would be truncated" if nbytes > o.nbytes else ": not a whole number of elements")
            + ". The message was discarded; the Communicator stays usable.")
        return True
    req._status = RecvStatus(source, status.Get_tag(), nbytes // req._itemsize)
    req._mpi = message.Irecv([o, nbytes, MPI.BYTE] if nbytes else [None, 0, MPI.BYTE])
    return True


def _finish_if_done(req: Request) -> None:
    if req._mpi is not None and req._mpi.Test():
        req._mpi = None
        req._done = True


def _withdraw(comm, req: Request) -> None:
    try:
        comm._p2p_pending.remove(req)
    except ValueError:
        pass


def check_usable(comm) -> None:
    if comm._p2p is None:
        raise CommunicatorBroken("this Communicator was freed; create a new one")
    comm._ensure_usable()
