"""The library's exception hierarchy.

Every error the library raises on purpose derives from :class:`CollectivesError`.
Errors about arguments also derive from ``ValueError`` or ``TypeError`` so that
code written against numpy/torch conventions catches them too.
"""

from __future__ import annotations


class CollectivesError(Exception):
    """Root of every exception raised by the collectives library."""


class InvalidArgument(CollectivesError, ValueError):
    """An argument has a value the library does not accept (checked before any message)."""


class InvalidType(CollectivesError, TypeError):
    """An argument has a type the library does not accept (checked before any message)."""


class BuildMismatch(CollectivesError, ImportError):
    """The compiled core and mpi4py use different MPI libraries."""


class TopologyError(CollectivesError, ValueError):
    """A topology, its file or its spec string is malformed or unusable."""


class TopologyFileError(CollectivesError, OSError):
    """A topology, hostfile or profile file cannot be read."""


class CommunicationError(CollectivesError, RuntimeError):
    """MPI reported an error while a collective was in flight (for example a dead peer)."""


class CollectiveTimeout(CommunicationError, TimeoutError):
    """A collective did not finish before its deadline.

    Attributes name what was being waited for: ``collective``, ``algorithm``,
    ``step``, ``peers`` (ranks still awaited), ``bytes_outstanding`` and
    ``elapsed`` (seconds).
    """

    def __init__(self, message, *, collective=None, algorithm=None, step=None,
                 peers=(), bytes_outstanding=0, elapsed=0.0):
        super().__init__(message)
        self.collective = collective
        self.algorithm = algorithm
        self.step = step
        self.peers = tuple(peers)
        self.bytes_outstanding = bytes_outstanding
        self.elapsed = elapsed


class PeerFailure(CommunicationError):
    """Another rank left (exited, raised) or failed in a collective while this rank waited for it.

    Attributes: ``rank`` (the peer that sent the notice), ``reason`` (what it
    said it did), ``collective``, ``algorithm`` and ``step`` (where this rank
    was waiting).
    """

    def __init__(self, message, *, rank=None, reason="", collective=None, algorithm=None, step=None):
        super().__init__(message)
        self.rank = rank
        self.reason = reason
        self.collective = collective
        self.algorithm = algorithm
        self.step = step


class CommunicatorBroken(CommunicationError):
    """The communicator failed earlier (timeout or peer error) and refuses further calls."""


class RequestError(CollectivesError, RuntimeError):
    """A request used out of turn: a persistent request started again before its run
    completed, or used after ``free``; too many requests in flight at once."""


class MismatchError(CommunicationError, ValueError):
    """Ranks called the same collective with arguments that do not agree (validate=True)."""


class ModelError(CollectivesError, ValueError):
    """The model or planner was asked something it cannot price."""


class EmulationWarning(UserWarning):
    """Emulated links cannot be trusted here: ranks outnumber cores, or steps end later than
    the model says (a loaded machine). Measured times then overstate the modelled network."""


__all__ = [
    "CollectivesError", "InvalidArgument", "InvalidType", "BuildMismatch",
    "TopologyError", "TopologyFileError", "CommunicationError",
    "CollectiveTimeout", "PeerFailure", "EmulationWarning", "CommunicatorBroken", "MismatchError", "ModelError",
    "RequestError",
]
