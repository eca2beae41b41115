"""Peer notices: a rank that leaves, or fails inside a collective, tells its peers.

Without them a rank that returns early, calls ``sys.exit`` or dies of an
uncaught exception leaves every other rank waiting in its next collective
until the deadline. Each Communicator keeps a second duplicate of its MPI
communicator that carries nothing but notices. A rank announces on it

* when the process exits with the Communicator still alive (``atexit``; the
  reason names the uncaught exception when there was one), and
* when one of its collectives fails (an MPI error such as a truncated message,
  or a timeout), so that a mismatch MPI detects on one side is reported on
  both.

The executor's wait loops probe the notice communicator at most once a
millisecond while nothing moves, so the fast path pays nothing; a notice ends
the wait (after a short grace, for data the peer sent before leaving) with
:class:`~collectives.errors.PeerFailure` naming the rank and what it did.
A rank killed outright (SIGKILL) sends nothing: MPICH's launcher then ends the
job, and the deadline remains the last resort.
"""

from __future__ import annotations

import atexit
import sys
import time
import weakref

from ._constants import NOTICE_TAG as TAG   # the tag the executor probes for (csrc/executor.h)
#: bytes of a notice's text at most
MAX_TEXT = 480
#: seconds a leaving rank waits for its notices to go out
SEND_WAIT = 1.0

_live: "weakref.WeakSet" = weakref.WeakSet()
_uncaught: str | None = None
_installed = False


def register(communicator) -> None:
    """Announce this rank's exit on ``communicator``'s notice channel while it lives."""
    global _installed
    _live.add(communicator)
    if not _installed:
        _installed = True
        previous = sys.excepthook

        def excepthook(kind, value, tb):
            global _uncaught
            _uncaught = f"raised an uncaught {kind.__name__}: {value}"
            previous(kind, value, tb)

        sys.excepthook = excepthook
        # registered after mpi4py's own exit handler, so it runs before MPI_Finalize
        atexit.register(_announce_exit)


def _announce_exit() -> None:
    reason = _uncaught or "exited (its script ended or called sys.exit)"
    for communicator in list(_live):
        try:
            communicator._announce(f"left: {reason}")
        except Exception:   # exiting anyway: a notice that cannot go out is not an error
            pass


def send(notice_comm, rank: int, size: int, text: str) -> None:
    """Send ``text`` to every other rank of ``notice_comm`` (best effort, bounded in time)."""
    from mpi4py import MPI

    payload = text.encode("utf-8", "replace")[:MAX_TEXT]
    reqs = [notice_comm.Isend(payload, dest=peer, tag=TAG) for peer in range(size) if peer != rank]
    deadline = time.monotonic() + SEND_WAIT
    while reqs and not MPI.Request.Testall(reqs):
        if time.monotonic() > deadline:
            break
        time.sleep(0.0005)


def receive(notice_comm, source: int) -> str:
    """The text of the notice ``source`` sent (the executor saw it arrive)."""
    from mpi4py import MPI

    status = MPI.Status()
    notice_comm.Probe(source=source, tag=TAG, status=status)
    buf = bytearray(status.Get_count(MPI.BYTE))
    notice_comm.Recv(buf, source=source, tag=TAG)
    return buf.decode("utf-8", "replace")
