"""The algorithm registry: the one place that knows algorithms by name.

Every algorithm is a function ``(nranks, count, **params) -> Schedule`` in the
module of its family; :data:`ALGORITHMS` maps collective -> name -> function.
The executor, the model and the emulator only ever see the Schedule.

``count`` is the number of elements of each rank's input buffer:

- allreduce: ``out_count = count``;
- alltoall: ``count`` divisible by p, block = count // p, ``out_count = count``;
- reduce_scatter: the input is split like ``numpy.array_split(x, p)``; rank r's
  output is its block (``out_count`` is the largest block; rank r only writes
  the first ``len(block r)`` elements);
- allgather: ``out_count = p * count``, rank r's input lands at ``out[r*count]``;
- broadcast: in place on BUF_OUT, ``count`` elements, ``root=`` parameter.

"mpi" (the MPI library's own collective) and "auto" (the planner) are handled
by the Communicator, not here; :data:`SPECIAL_NAMES` lists them for messages.
"""

from __future__ import annotations

import inspect

from ..errors import InvalidArgument, InvalidType
from ..schedule import Schedule
from . import bruck, hierarchical, pairwise, rhd, ring, tree
from . import broadcast as _broadcast
from ._blocks import block_bounds

#: names the Communicator accepts besides the registry's
SPECIAL_NAMES = ("auto", "mpi")

ALGORITHMS: dict[str, dict[str, callable]] = {
    "allreduce": {
        "ring": ring.allreduce,
        "tree": tree.allreduce,
        "rhd": rhd.allreduce,
        "hierarchical": hierarchical.allreduce,
    },
    "alltoall": {
        "pairwise": pairwise.alltoall,
        "bruck": bruck.alltoall,
        "hierarchical": hierarchical.alltoall,
    },
    "reduce_scatter": {
        "ring": ring.reduce_scatter,
        "rhd": rhd.reduce_scatter,
    },
    "allgather": {
        "ring": ring.allgather,
        "rhd": rhd.allgather,
    },
    "broadcast": {
        "binomial": _broadcast.binomial,
        "scatter_allgather": _broadcast.scatter_allgather,
        "chain": _broadcast.chain,
    },
}

COLLECTIVES = tuple(ALGORITHMS)


def algorithm_names(collective: str) -> tuple[str, ...]:
    """The registry's algorithm names for ``collective`` (without "auto" and "mpi")."""
    return tuple(_table(collective))


def algorithm_params(collective: str, algorithm: str) -> dict:
    """The keyword parameters an algorithm takes, with their defaults."""
    fn = _lookup(collective, algorithm)
    sig = inspect.signature(fn)
    return {n: p.default for n, p in list(sig.parameters.items())[2:]}


def build_schedule(collective: str, algorithm: str, nranks: int, count: int, **params) -> Schedule:
    """The Schedule of ``algorithm`` for ``collective`` on ``nranks`` ranks and ``count`` elements.

    Raises :class:`~collectives.errors.InvalidArgument` for an unknown
    collective, algorithm or parameter, a bad rank count or count, or an
    all-to-all count not divisible by ``nranks``.
    """
    fn = _lookup(collective, algorithm)
    nranks = _int_arg(nranks, "nranks", 1)
    count = _int_arg(count, "count", 0)
    if collective == "alltoall" and count % nranks:
        raise InvalidArgument(
            f"alltoall: count={count} is not divisible into nranks={nranks} equal blocks; "
            "pass a buffer of nranks equal blocks")
    accepted = algorithm_params(collective, algorithm)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        names = ", ".join(f"{k}={v!r}" for k, v in accepted.items()) or "none"
        raise InvalidArgument(
            f"{collective} algorithm {algorithm!r} does not take {', '.join(map(repr, unknown))}; "
            f"its parameters are: {names}")
    return fn(nranks, count, **params)


def _int_arg(value, name, low):
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidType(f"{name} must be an int, got {value!r}")
    if value < low:
        raise InvalidArgument(f"{name} must be at least {low}, got {value}")
    return int(value)


def _table(collective):
    if not isinstance(collective, str) or collective not in ALGORITHMS:
        raise InvalidArgument(
            f"unknown collective {collective!r}: accepted are {', '.join(COLLECTIVES)}")
    return ALGORITHMS[collective]


def _lookup(collective, algorithm):
    table = _table(collective)
    if not isinstance(algorithm, str) or algorithm not in table:
        hint = ""
        if algorithm in SPECIAL_NAMES:
            hint = f" ({algorithm!r} is handled by the Communicator, not by a schedule)"
        raise InvalidArgument(
            f"unknown {collective} algorithm {algorithm!r}{hint}: accepted are "
            f"{', '.join(list(SPECIAL_NAMES) + list(table))}")
    return table[algorithm]


__all__ = ["ALGORITHMS", "COLLECTIVES", "SPECIAL_NAMES", "algorithm_names", "algorithm_params",
           "build_schedule", "block_bounds"]
