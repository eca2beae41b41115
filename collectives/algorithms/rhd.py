"""Recursive halving and doubling (Rabenseifner's all-reduce).

All-reduce = reduce-scatter by recursive halving + all-gather by recursive
doubling. On p' = 2^k ranks, round j of the halving pairs rank v with
v xor p'/2^(j+1); each keeps one half of its current range, sends the other
half and reduces the half it receives: after k rounds rank v holds block v
reduced over everyone. The doubling runs the rounds backwards, exchanging the
ranges gathered so far. 2 log2 p' steps; each rank sends 2(p'-1)/p' of the
buffer, like the ring, with log latency.

Non-powers of two use the standard fold (Rabenseifner 2004; Thakur,
Rabenseifner & Gropp 2005): with rem = p - p', the first 2*rem ranks pair up;
each odd one sends its whole buffer to the even one below it, which reduces
it, and sits out; the remaining p' ranks run the power-of-two algorithm; at the
end each even rank sends the result back to its odd partner. That is
2 log2 p' + 2 steps, and the fold moves the whole buffer once more.

The p' "virtual" blocks are unions of the p real blocks (virtual rank v < rem
owns real blocks 2v and 2v+1, the others block v+rem): they are contiguous, so
the same schedule also gives a reduce-scatter with the ``numpy.array_split``
partition (the unfold step sends each odd rank its own block only) and an
all-gather (recursive doubling with the same fold).

Each element is reduced on exactly one rank in a fixed order and then only
copied: results are bitwise identical across ranks and runs.

R. Thakur, R. Rabenseifner, W. Gropp, "Optimization of collective
communication operations in MPICH", IJHPCA 19(1), 2005.
"""

from __future__ import annotations

import numpy as np

from ..schedule import BUF_IN, BUF_OUT, BUF_TMP, Ops, Schedule, StepGroup
from ._blocks import block_off, block_size, ilog2
from ._variant import Variant

I64 = np.int64


class _Plan:
    """Virtual ranks and blocks of the fold."""

    def __init__(self, p: int, real_off):
        self.p = p
        self.p2 = 1 << ilog2(p)
        self.rem = p - self.p2
        self.levels = ilog2(self.p2)
        v = np.arange(self.p2 + 1, dtype=I64)
        self.vstart = np.where(v < self.rem, 2 * v, v + self.rem)   # first real rank/block of virtual v
        self.voff = np.asarray(real_off(self.vstart), dtype=I64)       # virtual block boundaries
        self.real_off = real_off

    def virtual(self, ranks):
        """Virtual rank of each real rank, -1 for the odd ranks that fold away."""
        folded = ranks < 2 * self.rem
        return np.where(folded, np.where(ranks % 2 == 0, ranks // 2, -1), ranks - self.rem)

    def real(self, v):
        return self.vstart[v]

    def span(self, lo, nblocks):
        """Element offset and count of virtual blocks [lo, lo+nblocks)."""
        return self.voff[lo], self.voff[lo + nblocks] - self.voff[lo]


def _fold(plan: _Plan, send_buf, send_off, send_count, dst_buf, dst_off):
    """Odd ranks below 2*rem send to the even rank below; it reduces (the fold step)."""
    rem = plan.rem

    def build(i, ranks):
        in_fold = ranks < 2 * rem
        odd = in_fold & (ranks % 2 == 1)
        even = in_fold & (ranks % 2 == 0)
        so, sc = send_off(ranks)
        do, dc = dst_off(ranks + 1)
        return Ops.concat([
            Ops.send(ranks, ranks - 1, send_buf, so, np.where(odd, sc, 0)),
            Ops.recv(ranks, ranks + 1, dst_buf, do, np.where(even, dc, 0), reduce=True),
        ])
    return build


def _range_start(plan: _Plan, vv, bits, rounds: int):
    """First virtual block of the range a rank holds after ``rounds`` halving rounds.

    Round i splits the range in two halves of ``p2 >> (i+1)`` blocks and keeps the upper
    one when bit ``bits[i]`` of the virtual rank is set.
    """
    start = np.zeros_like(vv)
    for i in range(rounds):
        start = start + ((vv >> bits[i]) & 1) * (plan.p2 >> (i + 1))
    return start


def _halving_round(plan: _Plan, j: int, work, final_to_out: bool, bits):
    half = plan.p2 >> (j + 1)
    last = j == plan.levels - 1

    def build(i, ranks):
        v = plan.virtual(ranks)
        act = v >= 0
        vv = np.where(act, v, 0)
        u = vv ^ (1 << bits[j])
        base = _range_start(plan, vv, bits, j)
        upper = ((vv >> bits[j]) & 1) != 0
        keep_lo = np.where(upper, base + half, base)
        send_lo = np.where(upper, base, base + half)
        so, sc = plan.span(send_lo, half)
        ko, kc = plan.span(keep_lo, half)
        peer = plan.real(u)
        parts = []
        dbuf = np.full(ranks.shape, work, dtype=I64)
        doff = ko
        if last and final_to_out:
            # reduce-scatter: ranks that own exactly one real block finish in BUF_OUT
            single = act & (vv >= plan.rem)
            parts.append(Ops.copy(ranks, work, ko, BUF_OUT, 0, np.where(single, kc, 0)))
            dbuf = np.where(single, BUF_OUT, dbuf)
            doff = np.where(single, 0, ko)
        parts.append(Ops.send(ranks, peer, work, so, np.where(act, sc, 0)))
        parts.append(Ops.recv(ranks, peer, dbuf, doff, np.where(act, kc, 0), reduce=True))
        return Ops.concat(parts)
    return build


def _doubling_round(plan: _Plan, j: int, bits):
    """Undo halving round ``j``: exchange the ranges held after it with that round's partner."""
    size = plan.p2 >> (j + 1)

    def build(i, ranks):
        v = plan.virtual(ranks)
        act = v >= 0
        vv = np.where(act, v, 0)
        u = vv ^ (1 << bits[j])
        so, sc = plan.span(_range_start(plan, vv, bits, j + 1), size)
        ro, rc = plan.span(_range_start(plan, u, bits, j + 1), size)
        peer = plan.real(u)
        return Ops.concat([
            Ops.send(ranks, peer, BUF_OUT, so, np.where(act, sc, 0)),
            Ops.recv(ranks, peer, BUF_OUT, ro, np.where(act, rc, 0)),
        ])
    return build


def _unfold_whole(plan: _Plan, total: int):
    rem = plan.rem

    def build(i, ranks):
        in_fold = ranks < 2 * rem
        odd = in_fold & (ranks % 2 == 1)
        even = in_fold & (ranks % 2 == 0)
        return Ops.concat([
            Ops.send(ranks, ranks + 1, BUF_OUT, 0, np.where(even, total, 0)),
            Ops.recv(ranks, ranks - 1, BUF_OUT, 0, np.where(odd, total, 0)),
        ])
    return build


def _bits(plan: _Plan, pairing: str):
    """Bit of the virtual rank each halving round flips: far-first starts at p'/2, near-first at 1."""
    if pairing == "far-first":
        return [plan.levels - 1 - j for j in range(plan.levels)]
    return list(range(plan.levels))


def _steps(plan, fold, halving, doubling, unfold, first_copy, pairing="far-first"):
    groups = []
    bits = _bits(plan, pairing)
    if plan.rem:
        groups.append(StepGroup(1, fold, "rhd fold"))
    if halving:
        groups += [StepGroup(1, _halving_round(plan, j, *halving, bits), f"rhd halving {j}")
                   for j in range(plan.levels)]
    if doubling:
        # the doubling undoes the halving rounds, last first (an all-gather alone starts from
        # what a far-first halving would have left: each rank its own block)
        groups += [StepGroup(1, _doubling_round(plan, j, bits), f"rhd doubling {k}")
                   for k, j in enumerate(range(plan.levels - 1, -1, -1))]
    if plan.rem:
        groups.append(StepGroup(1, unfold, "rhd unfold"))
    if not groups:
        return [StepGroup(1, lambda i, ranks: first_copy(ranks), "copy")]
    first = groups[0].build
    groups[0] = StepGroup(1, lambda i, ranks: Ops.concat([first_copy(ranks), first(i, ranks)]),
                          groups[0].name)
    return groups


#: the pairing orders of the halving rounds the all-reduce can run
PAIRINGS = ("far-first", "near-first")


def pairing_variants(topology, hosts, count, params):
    """Both pairing orders, unless the caller fixed one: which is faster depends on whether
    the first, largest exchange (half the buffer) stays near on the network."""
    yield Variant(params=dict(params))
    if "pairing" in params:
        return
    for pairing in PAIRINGS[1:]:
        yield Variant(f"pairing={pairing}", dict(params, pairing=pairing))


def allreduce(nranks: int, count: int, pairing: str = "far-first") -> Schedule:
    """Rabenseifner all-reduce in place on BUF_OUT: 2 log2 p' (+2 with the fold) steps, no scratch.

    ``pairing``: ``"far-first"`` (round j of the halving pairs virtual ranks
    ``p'/2**(j+1)`` apart: the first and largest exchange, half the buffer, goes
    farthest) or ``"near-first"`` (MPICH's order: distance ``2**j``, so the
    largest exchange stays between neighbouring ranks and only the smallest
    ones travel far). Each rank then finishes the halving with the block whose
    index is its rank's bits reversed; the doubling undoes the rounds in
    reverse, so the result is the same, bit for bit.
    """
    if pairing not in PAIRINGS:
        from ..errors import InvalidArgument

        raise InvalidArgument(f"rhd: pairing={pairing!r} is not one of {', '.join(PAIRINGS)}")
    p = nranks
    plan = _Plan(p, lambda b: block_off(b, count, p))
    whole = lambda ranks: (np.zeros_like(ranks), np.full_like(ranks, count))  # noqa: E731
    groups = _steps(
        plan,
        fold=_fold(plan, BUF_OUT, whole, None, BUF_OUT, whole),
        halving=(BUF_OUT, False),
        doubling=True,
        unfold=_unfold_whole(plan, count),
        first_copy=lambda ranks: Ops.copy(ranks, BUF_IN, 0, BUF_OUT, 0, count),
        pairing=pairing)
    return Schedule("allreduce", "rhd", p, count, count, groups, tmp_count=0, reduces=True,
                    params={"pairing": pairing})


def reduce_scatter(nranks: int, count: int) -> Schedule:
    """Recursive-halving reduce-scatter (with the fold); works in a scratch copy of the input.

    tmp_count = count (the halving needs the whole partial vector somewhere,
    and BUF_IN is read only and BUF_OUT holds one block). log2 p' (+2) steps.
    """
    p = nranks
    plan = _Plan(p, lambda b: block_off(b, count, p))
    maxb = -(-count // p)
    rem = plan.rem
    whole = lambda ranks: (np.zeros_like(ranks), np.full_like(ranks, count))  # noqa: E731

    def unfold(i, ranks):
        in_fold = ranks < 2 * rem
        odd = in_fold & (ranks % 2 == 1)
        even = in_fold & (ranks % 2 == 0)
        return Ops.concat([
            Ops.copy(ranks, BUF_TMP, block_off(ranks, count, p), BUF_OUT, 0,
                     np.where(even, block_size(ranks, count, p), 0)),
            Ops.send(ranks, ranks + 1, BUF_TMP, block_off(ranks + 1, count, p),
                     np.where(even, block_size(ranks + 1, count, p), 0)),
            Ops.recv(ranks, ranks - 1, BUF_OUT, 0, np.where(odd, block_size(ranks, count, p), 0)),
        ])

    def first_copy(ranks):
        if p == 1:
            return Ops.copy(ranks, BUF_IN, 0, BUF_OUT, 0, count)
        keep = plan.virtual(ranks) >= 0
        return Ops.copy(ranks, BUF_IN, 0, BUF_TMP, 0, np.where(keep, count, 0))

    groups = _steps(
        plan,
        fold=_fold(plan, BUF_IN, whole, None, BUF_TMP, whole),
        halving=(BUF_TMP, True),
        doubling=False,
        unfold=unfold,
        first_copy=first_copy)
    return Schedule("reduce_scatter", "rhd", p, count, maxb, groups,
                    tmp_count=count if p > 1 else 0, reduces=True)


def allgather(nranks: int, count: int) -> Schedule:
    """Recursive-doubling all-gather (with the fold): log2 p' (+2) steps, no scratch."""
    p = nranks
    plan = _Plan(p, lambda b: np.asarray(b, dtype=I64) * count)
    rem = plan.rem

    def fold(i, ranks):
        in_fold = ranks < 2 * rem
        odd = in_fold & (ranks % 2 == 1)
        even = in_fold & (ranks % 2 == 0)
        return Ops.concat([
            Ops.send(ranks, ranks - 1, BUF_OUT, ranks * count, np.where(odd, count, 0)),
            Ops.recv(ranks, ranks + 1, BUF_OUT, (ranks + 1) * count, np.where(even, count, 0)),
        ])

    groups = _steps(
        plan, fold=fold, halving=None, doubling=True,
        unfold=_unfold_whole(plan, p * count),
        first_copy=lambda ranks: Ops.copy(ranks, BUF_IN, 0, BUF_OUT, ranks * count, count))
    return Schedule("allgather", "rhd", p, count, p * count, groups, tmp_count=0)
