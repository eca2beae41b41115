"""Pairwise-exchange all-to-all.

p-1 steps; in step k (1 <= k < p) every rank exchanges one block with one
partner: ``r xor k`` when p is a power of two (each step is a perfect matching,
so both directions of every link carry one block), otherwise it sends to
``(r + k) mod p`` and receives from ``(r - k) mod p`` (a shift). Blocks are
read straight from the input buffer, so no scratch and no first copy of the
whole message (only the rank's own block is copied). One message per rank and
step: the best all-to-all for medium and large blocks; for very small blocks
the p-1 latencies dominate and Bruck's log2 p rounds win.

All steps share one pattern (one step group of p-1 repetitions).
"""

from __future__ import annotations

from ..schedule import BUF_IN, BUF_OUT, Ops, Schedule, StepGroup
from ._blocks import with_first_copy


def alltoall(nranks: int, count: int) -> Schedule:
    p = nranks
    B = count // p
    pow2 = p & (p - 1) == 0

    def build(i, ranks):
        k = i + 1
        if pow2:
            to = frm = ranks ^ k
        else:
            to, frm = (ranks + k) % p, (ranks - k) % p
        return Ops.concat([
            Ops.send(ranks, to, BUF_IN, to * B, B),
            Ops.recv(ranks, frm, BUF_OUT, frm * B, B),
        ])

    groups = [StepGroup(p - 1, build, "pairwise exchange xor" if pow2 else "pairwise exchange shift")] \
        if p > 1 else []
    groups = with_first_copy(groups, lambda ranks: Ops.copy(ranks, BUF_IN, ranks * B, BUF_OUT, ranks * B, B))
    return Schedule("alltoall", "pairwise", p, count, count, groups, tmp_count=0)
