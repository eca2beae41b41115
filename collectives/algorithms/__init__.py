"""The algorithm registry: the one place that knows algorithms by name.

Every algorithm is described once, by an :class:`Algorithm`: its collective
and name, the function of its family's module that builds its
:class:`~collectives.schedule.Schedule` (``build(nranks, count, **params)``),
what it needs from whoever runs it, and which parameter variants are worth
pricing on a given network. The Communicator, the model, the planner, the
emulator and the torch backend ask this registry and never test a name, so a
new algorithm is one module and one :func:`register` call.

``count`` is the number of elements of each rank's input buffer:

- allreduce: ``out_count = count``;
- alltoall: ``count`` divisible by p, block = count // p, ``out_count = count``;
- reduce_scatter: the input is split like ``numpy.array_split(x, p)``; rank r's
  output is its block (``out_count`` is the largest block; rank r only writes
  the first ``len(block r)`` elements);
- allgather: ``out_count = p * count``, rank r's input lands at ``out[r*count]``;
- broadcast: in place on BUF_OUT, ``count`` elements, ``root=`` parameter.

What an algorithm may need (:attr:`Algorithm.needs`):

- ``"groups"``: groups of ranks (``groups=``); the Communicator passes the
  groups of its topology or of shared memory, the model the topology's natural
  groups under the placement;
- ``"root"``: the call's root rank (``root=``);
- ``"order"``: a rank order (``order=``), which the planner's variants supply.

"mpi" (the MPI library's own collective) and "auto" (the planner) are handled
by the Communicator, not here; :data:`SPECIAL_NAMES` lists them for messages.
The first algorithm registered for a collective is its default: what a plan
on one rank names, where nothing is sent.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable, Optional

import numpy as np

from ..errors import InvalidArgument, InvalidType
from ..schedule import Schedule
from . import broadcast, bruck, hierarchical, pairwise, rhd, ring, tree
from ._blocks import block_bounds
from ._variant import Variant

#: names the Communicator accepts besides the registry's
SPECIAL_NAMES = ("auto", "mpi")

#: the collectives, in the order the Communicator numbers them
COLLECTIVES = ("allreduce", "alltoall", "reduce_scatter", "allgather", "broadcast")

#: what an algorithm may declare in :attr:`Algorithm.needs`
NEEDS = frozenset({"groups", "root", "order"})


@dataclass(frozen=True)
class Algorithm:
    """The registry's description of one algorithm.

    Attributes
    ----------
    collective : str
        One of :data:`COLLECTIVES`.
    name : str
        The name users pass as ``algorithm=``.
    build : callable
        ``build(nranks, count, **params) -> Schedule``.
    needs : frozenset of str
        What it takes from the caller's context (see :data:`NEEDS`).
    variants : callable, optional
        ``variants(topology, hosts, count, params)`` yields the
        :class:`Variant` worth pricing on ``topology`` with rank r on host
        ``hosts[r]``, for ``count`` elements, leaving the ``params`` the
        caller fixed alone. None: only the defaults.
    doc : str
        One line for listings.
    """

    collective: str
    name: str
    build: Callable[..., Schedule]
    needs: frozenset = frozenset()
    variants: Optional[Callable[..., Iterable[Variant]]] = None
    doc: str = ""

    @property
    def params(self) -> dict:
        """The keyword parameters ``build`` takes, with their defaults."""
        sig = inspect.signature(self.build)
        return {n: p.default for n, p in list(sig.parameters.items())[2:]}

    def label(self, variant: Variant) -> str:
        """How a plan names ``variant`` of this algorithm: ``name`` or ``name(label)``."""
        return f"{self.name}({variant.label})" if variant.label else self.name

    def variants_on(self, topology, hosts, count: int, params: dict) -> list:
        """The variants worth pricing (at least one: the defaults with ``params``)."""
        if self.variants is None:
            return [Variant(params=dict(params))]
        return list(self.variants(topology, hosts, count, dict(params))) or [Variant(params=dict(params))]


#: collectives whose blocks differ per rank pair: their schedules take ``counts=`` (a
#: ``(p, p)`` matrix of element counts) and are built per call; the planner does not price them
VARIABLE_COLLECTIVES = ("alltoallv",)

ALGORITHMS: dict[str, dict[str, Algorithm]] = {c: {} for c in COLLECTIVES + VARIABLE_COLLECTIVES}


def register(algorithm: Algorithm) -> Algorithm:
    """Add ``algorithm`` to the registry (its name must be new for its collective).

    Raises :class:`~collectives.errors.InvalidArgument` for an unknown
    collective or need, a name already taken or reserved, or a ``build`` that
    is not callable.
    """
    if not isinstance(algorithm, Algorithm):
        raise InvalidType(f"register takes an Algorithm, got {type(algorithm).__name__}")
    table = _table(algorithm.collective)
    name = algorithm.name
    if not isinstance(name, str) or not name or name != name.lower() or name in SPECIAL_NAMES:
        raise InvalidArgument(f"algorithm name {name!r} must be a new lower-case name, not one of "
                              f"{', '.join(SPECIAL_NAMES)}")
    if name in table:
        raise InvalidArgument(f"{algorithm.collective} already has an algorithm named {name!r}")
    if not callable(algorithm.build):
        raise InvalidArgument(f"{algorithm.collective} algorithm {name!r}: build must be callable")
    unknown = set(algorithm.needs) - NEEDS
    if unknown:
        raise InvalidArgument(f"{algorithm.collective} algorithm {name!r} needs {sorted(unknown)}; "
                              f"known needs are {', '.join(sorted(NEEDS))}")
    table[name] = algorithm
    return algorithm


def unregister(collective: str, name: str) -> None:
    """Remove an algorithm :func:`register` added."""
    _lookup(collective, name)
    del ALGORITHMS[collective][name]


def get(collective: str, name: str) -> Algorithm:
    """The :class:`Algorithm` registered as ``name`` for ``collective``."""
    return _lookup(collective, name)


def algorithms(collective: str) -> tuple[Algorithm, ...]:
    """Every registered algorithm of ``collective``, in registration order."""
    return tuple(_table(collective).values())


def algorithm_names(collective: str) -> tuple[str, ...]:
    """The registry's algorithm names for ``collective`` (without "auto" and "mpi")."""
    return tuple(_table(collective))


def all_names() -> frozenset:
    """Every name an ``algorithm=`` argument can hold, for any collective."""
    return frozenset(SPECIAL_NAMES).union(*(table.keys() for table in ALGORITHMS.values()))


def default_algorithm(collective: str) -> str:
    """The collective's default algorithm: its first registered one."""
    return next(iter(_table(collective)))


def accepted_name(collective: str, algorithm) -> str:
    """``algorithm`` (any case) as a name the Communicator runs: a registry name or a special one.

    Raises :class:`~collectives.errors.InvalidType` for a non-string and
    :class:`~collectives.errors.InvalidArgument` for an unknown name.
    """
    if not isinstance(algorithm, str):
        raise InvalidType(f"algorithm must be a string, got {algorithm!r}")
    name = algorithm.lower()
    if name in SPECIAL_NAMES or name in _table(collective):
        return name
    accepted = ", ".join(list(SPECIAL_NAMES) + list(algorithm_names(collective)))
    raise InvalidArgument(f"unknown {collective} algorithm {algorithm!r}: accepted are {accepted}")


def parse_algorithm(collective: str, algorithm) -> tuple:
    """``(name, params)`` from ``"rhd"`` or ``"rhd(pairing=near-first)"``, the form the planner's
    labels take: the name is checked as :func:`accepted_name` does, each ``key=value`` against
    the algorithm's parameters (values that are integers become ints). The values themselves
    are checked when the schedule is built, before any message is sent.
    """
    if not isinstance(algorithm, str):
        raise InvalidType(f"algorithm must be a string, got {algorithm!r}")
    text = algorithm.strip()
    if not text.endswith(")") or "(" not in text:
        return accepted_name(collective, text), {}
    head, body = text[:-1].split("(", 1)
    name = accepted_name(collective, head.strip())
    if name in SPECIAL_NAMES:
        raise InvalidArgument(f"{collective} algorithm {name!r} takes no parameters, got {algorithm!r}")
    accepted = algorithm_params(collective, name)
    params = {}
    for item in filter(None, (part.strip() for part in body.split(","))):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or key not in accepted:
            names = ", ".join(accepted) or "none"
            raise InvalidArgument(f"{collective} algorithm {algorithm!r}: {item!r} is not key=value "
                                  f"with a parameter of {name} (its parameters: {names})")
        params[key] = int(value) if value.lstrip("-").isdigit() else value
    return name, params


def algorithm_params(collective: str, algorithm: str) -> dict:
    """The keyword parameters an algorithm takes, with their defaults."""
    return _lookup(collective, algorithm).params


def build_schedule(collective: str, algorithm: str, nranks: int, count: int, **params) -> Schedule:
    """The Schedule of ``algorithm`` for ``collective`` on ``nranks`` ranks and ``count`` elements.

    Raises :class:`~collectives.errors.InvalidArgument` for an unknown
    collective, algorithm or parameter, a bad rank count or count, or an
    all-to-all count not divisible by ``nranks``.
    """
    entry = _lookup(collective, algorithm)
    nranks = _int_arg(nranks, "nranks", 1)
    count = _int_arg(count, "count", 0)
    if collective == "alltoall" and count % nranks:
        raise InvalidArgument(
            f"alltoall: count={count} is not divisible into nranks={nranks} equal blocks; "
            "pass a buffer of nranks equal blocks")
    accepted = entry.params
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        names = ", ".join(f"{k}={v!r}" for k, v in accepted.items()) or "none"
        raise InvalidArgument(
            f"{collective} algorithm {algorithm!r} does not take {', '.join(map(repr, unknown))}; "
            f"its parameters are: {names}")
    return entry.build(nranks, count, **params)


def _int_arg(value, name, low):
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


# ---- the entries ----------------------------------------------------------------------------
# The first entry of each collective is its default (see default_algorithm).
for _entry in (
    Algorithm("allreduce", "ring", ring.allreduce, frozenset({"order"}),
              partial(ring.order_variants, takes_order=True),
              "ring reduce-scatter then all-gather: bandwidth optimal, 2(p-1) steps"),
    Algorithm("allreduce", "tree", tree.allreduce, frozenset(), tree.chunk_variants,
              "two pipelined binary trees (NCCL's double binary tree): log p latency"),
    Algorithm("allreduce", "rhd", rhd.allreduce, frozenset(), rhd.pairing_variants,
              "recursive halving and doubling (Rabenseifner), pairing far-first or "
              "near-first: 2 log p steps"),
    Algorithm("allreduce", "hierarchical", hierarchical.allreduce, frozenset({"groups"}),
              hierarchical.allreduce_variants,
              "reduce-scatter in groups, all-reduce across groups, all-gather in groups"),
    Algorithm("alltoall", "pairwise", pairwise.alltoall, frozenset(), None,
              "p-1 steps, one peer each: bandwidth optimal"),
    Algorithm("alltoall", "bruck", bruck.alltoall, frozenset(), None,
              "Bruck's log p steps: fewer, larger messages"),
    Algorithm("alltoall", "hierarchical", hierarchical.alltoall, frozenset({"groups"}),
              hierarchical.alltoall_variants,
              "blocks aggregated per group pair: one message between two groups"),
    Algorithm("reduce_scatter", "ring", ring.reduce_scatter, frozenset(),
              partial(ring.order_variants, takes_order=False), "ring: p-1 steps"),
    Algorithm("reduce_scatter", "rhd", rhd.reduce_scatter, frozenset(), None,
              "recursive halving: log p steps"),
    Algorithm("allgather", "ring", ring.allgather, frozenset(),
              partial(ring.order_variants, takes_order=False), "ring: p-1 steps"),
    Algorithm("allgather", "rhd", rhd.allgather, frozenset(), None,
              "recursive doubling: log p steps"),
    Algorithm("alltoallv", "pairwise", pairwise.alltoallv, frozenset(), None,
              "p-1 steps, one peer each, blocks of any size (zero-length ones send nothing)"),
    Algorithm("broadcast", "binomial", broadcast.binomial, frozenset({"root"}), None,
              "binomial tree: log p steps of the whole buffer"),
    Algorithm("broadcast", "scatter_allgather", broadcast.scatter_allgather, frozenset({"root"}),
              None, "scatter then ring all-gather (van de Geijn): for large buffers"),
    Algorithm("broadcast", "chain", broadcast.chain, frozenset({"root"}), None,
              "pipelined chain: for large buffers on few ranks or a line"),
):
    register(_entry)
del _entry


__all__ = ["ALGORITHMS", "COLLECTIVES", "VARIABLE_COLLECTIVES", "NEEDS", "SPECIAL_NAMES", "Algorithm", "Variant",
           "accepted_name", "algorithm_names", "algorithm_params", "algorithms", "all_names",
           "parse_algorithm",
           "block_bounds", "build_schedule", "default_algorithm", "get", "register", "unregister"]
