"""Ring algorithms: reduce-scatter, all-gather, and all-reduce as the two in a row.

The buffer is cut into p blocks (the ``numpy.array_split`` partition). In the
reduce-scatter, at step s (0 <= s < p-1) rank r sends block (r-s-1) mod p to
r+1 and receives block (r-s-2) mod p from r-1, reducing it into its own copy;
after p-1 steps rank r holds block r reduced over every rank. In the
all-gather rank r sends block (r-s) mod p to r+1 and stores block (r-s-1) mod p
from r-1. All-reduce = reduce-scatter + all-gather: 2(p-1) steps, each rank
sends 2(p-1)/p of the buffer — bandwidth-optimal, latency linear in p.

Every block's final value is reduced on one rank (block b on rank b), always
in the same order (the ring order starting after b), and the all-gather only
copies it: results are bitwise identical on every rank and from run to run.

Patarasuk & Yuan, "Bandwidth optimal all-reduce algorithms for clusters of
workstations", JPDC 69(2), 2009.
"""

from __future__ import annotations

import numpy as np

from ..errors import CollectivesError, InvalidArgument
from ..schedule import BUF_IN, BUF_OUT, BUF_TMP, Ops, Schedule, StepGroup
from ._blocks import block_off, block_size, copy_whole, with_first_copy
from ._variant import Variant


def _ring_positions(p: int, order):
    """(position of each rank, rank at each position) for a ring order (None: rank order)."""
    if order is None:
        ident = np.arange(p, dtype=np.int64)
        return ident, ident
    at = np.asarray(order, dtype=np.int64).reshape(-1)
    if at.shape != (p,) or not np.array_equal(np.sort(at), np.arange(p)):
        raise InvalidArgument(f"ring order must be a permutation of the {p} ranks, got {order!r}")
    pos = np.empty(p, dtype=np.int64)
    pos[at] = np.arange(p, dtype=np.int64)
    return pos, at


def _reduce_scatter_group(count: int, p: int, pos, at) -> StepGroup:
    """The p-1 reduce-scatter steps of an all-reduce, in place on BUF_OUT (blocks by ring position)."""
    def build(i, ranks):
        k = pos[ranks]
        sb = (k - i - 1) % p
        rb = (k - i - 2) % p
        return Ops.concat([
            Ops.send(ranks, at[(k + 1) % p], BUF_OUT, block_off(sb, count, p), block_size(sb, count, p)),
            Ops.recv(ranks, at[(k - 1) % p], BUF_OUT, block_off(rb, count, p), block_size(rb, count, p),
                     reduce=True),
        ])
    return StepGroup(p - 1, build, "ring reduce-scatter")


def _allgather_group(p: int, off, size, name="ring all-gather", pos=None, at=None) -> StepGroup:
    """p-1 all-gather steps on BUF_OUT: block b is ``off(b)``, ``size(b)`` (vectorised).

    With a ring order (``pos``/``at``), block indices are ring positions.
    """
    if pos is None:
        pos = at = np.arange(p, dtype=np.int64)

    def build(i, ranks):
        k = pos[ranks]
        sb = (k - i) % p
        rb = (k - i - 1) % p
        return Ops.concat([
            Ops.send(ranks, at[(k + 1) % p], BUF_OUT, off(sb), size(sb)),
            Ops.recv(ranks, at[(k - 1) % p], BUF_OUT, off(rb), size(rb)),
        ])
    return StepGroup(p - 1, build, name)


def allreduce(nranks: int, count: int, order=None) -> Schedule:
    """Ring all-reduce: 2(p-1) steps in two step groups, no scratch.

    ``order``: the ranks in ring order (a permutation; default rank order).
    On a torus or a switch hierarchy the planner picks an order whose
    neighbours are close in the network.
    """
    p = nranks
    groups = []
    if p > 1:
        pos, at = _ring_positions(p, order)
        groups = [_reduce_scatter_group(count, p, pos, at),
                  _allgather_group(p, lambda b: block_off(b, count, p), lambda b: block_size(b, count, p),
                                   pos=pos, at=at)]
    groups = with_first_copy(groups, copy_whole(count))
    return Schedule("allreduce", "ring", p, count, count, groups, tmp_count=0, reduces=True)


def reduce_scatter(nranks: int, count: int) -> Schedule:
    """Ring reduce-scatter from BUF_IN: p-1 steps, one group.

    The partial sums travel through two scratch slots of one block each
    (a rank adds its own input block to the partial sum it receives, so the
    receive target first gets a copy of that input block); the last step
    reduces straight into BUF_OUT. tmp_count = min(2, p-2) * largest block.
    """
    p = nranks
    maxb = -(-count // p) if p else 0
    slots = max(0, min(2, p - 2))
    if p == 1:
        groups = [StepGroup(1, lambda i, ranks: Ops.copy(ranks, BUF_IN, 0, BUF_OUT, 0, count), "copy")]
    else:
        last = p - 2

        def build(i, ranks):
            sb = (ranks - i - 1) % p
            rb = (ranks - i - 2) % p
            if i == last:
                dbuf, doff = BUF_OUT, 0
            else:
                dbuf, doff = BUF_TMP, (i % 2) * maxb
            if i == 0:
                sbuf, soff = BUF_IN, block_off(sb, count, p)
            else:
                sbuf, soff = BUF_TMP, ((i - 1) % 2) * maxb
            rsize = block_size(rb, count, p)
            return Ops.concat([
                Ops.copy(ranks, BUF_IN, block_off(rb, count, p), dbuf, doff, rsize),
                Ops.send(ranks, (ranks + 1) % p, sbuf, soff, block_size(sb, count, p)),
                Ops.recv(ranks, (ranks - 1) % p, dbuf, doff, rsize, reduce=True),
            ])
        groups = [StepGroup(p - 1, build, "ring reduce-scatter")]
    return Schedule("reduce_scatter", "ring", p, count, maxb, groups, tmp_count=slots * maxb,
                    reduces=True)


def allgather(nranks: int, count: int) -> Schedule:
    """Ring all-gather: p-1 steps, one group; rank r's input lands at out[r*count]."""
    p = nranks
    groups = []
    if p > 1:
        groups = [_allgather_group(p, lambda b: b * count, lambda b: np.full_like(b, count))]
    groups = with_first_copy(groups, lambda ranks: Ops.copy(ranks, BUF_IN, 0, BUF_OUT, ranks * count, count))
    return Schedule("allgather", "ring", p, count, p * count, groups, tmp_count=0)


# ---- ring orders the planner prices ----------------------------------------------------------

def ring_orders(topology, hosts) -> dict:
    """Candidate ring orders: name -> permutation of ranks (rank order along the ring).

    ``"linear"`` is rank order; ``"hierarchy"`` visits the ranks group by group
    of the topology's switch hierarchy (when that differs); ``"snake"``, on a
    torus, is the boustrophedon order whose consecutive ranks are neighbours.
    """
    p = len(hosts)
    orders = {"linear": np.arange(p, dtype=np.int64)}
    if hasattr(topology, "graph"):
        try:
            group = np.asarray(topology.group_index(), dtype=np.int64)[hosts]
            hierarchy = np.lexsort((hosts, group))
            if not np.array_equal(hierarchy, orders["linear"]):
                orders["hierarchy"] = hierarchy.astype(np.int64)
        except CollectivesError:
            pass    # no group structure: rank order is all there is
        if topology.family == "torus":
            dims = list(topology.params.get("dims") or [])
            coords = [topology.graph.nodes[topology.hosts[h]].get("coord") for h in hosts.tolist()]
            if dims and all(c is not None for c in coords):
                orders["snake"] = _snake(np.asarray(coords), dims)
    return orders


def _snake(coords, dims):
    """Boustrophedon (dimension-ordered, reflected) order: consecutive ranks are neighbours."""
    key = np.zeros(len(coords), dtype=np.int64)
    flip = np.zeros(len(coords), dtype=np.int64)
    for d in range(len(dims) - 1, -1, -1):
        c = coords[:, d]
        c = np.where(flip % 2 == 1, dims[d] - 1 - c, c)
        key = key * dims[d] + c
        flip = flip + c
    return np.argsort(key, kind="stable").astype(np.int64)


def order_variants(topology, hosts, count, params, *, takes_order):
    """Rank order, then every other order of :func:`ring_orders`.

    With ``takes_order`` the order is passed as ``order=``; without (a ring
    that cannot follow an order yet) it is priced by placing ring position i
    on the host of rank ``order[i]``, and marked as model only.
    """
    yield Variant(params=dict(params))
    if "order" in params:
        return
    for name, order in ring_orders(topology, hosts).items():
        if name == "linear":
            continue
        if takes_order:
            yield Variant(f"order={name}", dict(params, order=order))
        else:
            yield Variant(f"order={name}", dict(params), placement=hosts[order], executable=False,
                          note="model only: the ring takes no order= parameter yet")

