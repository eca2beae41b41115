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

import numpy as np

from ..errors import InvalidArgument
from ..schedule import BUF_IN, BUF_OUT, Ops, Schedule, StepGroup
from ._blocks import with_first_copy


def _peers(i, ranks, p, pow2):
    """Step i's partners: exchange with ``rank xor (i+1)`` on a power of two (each pair swaps),
    else send ``i+1`` ranks ahead and receive from ``i+1`` behind."""
    k = i + 1
    if pow2:
        return ranks ^ k, ranks ^ k
    return (ranks + k) % p, (ranks - k) % p


def alltoall(nranks: int, count: int) -> Schedule:
    p = nranks
    B = count // p
    pow2 = p & (p - 1) == 0

    def build(i, ranks):
        to, frm = _peers(i, ranks, p, pow2)
        return Ops.concat([
            Ops.send(ranks, to, BUF_IN, to * B, B),
            Ops.recv(ranks, frm, BUF_OUT, frm * B, B),
        ])

    groups = [StepGroup(p - 1, build, "pairwise exchange xor" if pow2 else "pairwise exchange shift")] \
        if p > 1 else []
    groups = with_first_copy(groups, lambda ranks: Ops.copy(ranks, BUF_IN, ranks * B, BUF_OUT, ranks * B, B))
    return Schedule("alltoall", "pairwise", p, count, count, groups, tmp_count=0)


def alltoallv(nranks: int, count: int, counts=None) -> Schedule:
    """Pairwise exchange with uneven blocks: the all-to-all-v schedule.

    ``counts[i, j]`` is the number of elements rank i sends to rank j (a
    ``(nranks, nranks)`` array). Rank i's input holds its blocks back to back
    in rank order (block j at ``sum(counts[i, :j])``); its output receives
    block i of every rank, in rank order (rank j's at ``sum(counts[:j, i])``).
    The steps are those of :func:`alltoall`; zero-length blocks send nothing.
    For the per-rank program only row r and column r of ``counts`` matter, so a
    rank that knows just its own send and receive counts may leave the rest 0;
    the model needs the whole matrix for its flows.
    """
    p = nranks
    if counts is None:
        # without counts: equal blocks, as alltoall
        counts = np.full((p, p), count // p if p else 0, dtype=np.int64)
    c = np.asarray(counts, dtype=np.int64)
    if c.shape != (p, p) or (c < 0).any():
        raise InvalidArgument(f"alltoallv: counts must be a ({p}, {p}) array of non-negative "
                              f"element counts, got shape {c.shape}")
    send_off = np.cumsum(c, axis=1) - c      # [i, j]: where i's block for j starts in i's input
    recv_off = np.cumsum(c, axis=0) - c      # [i, j]: where i's block lands in j's output
    pow2 = p & (p - 1) == 0

    def build(i, ranks):
        to, frm = _peers(i, ranks, p, pow2)
        return Ops.concat([
            Ops.send(ranks, to, BUF_IN, send_off[ranks, to], c[ranks, to]),
            Ops.recv(ranks, frm, BUF_OUT, recv_off[frm, ranks], c[frm, ranks]),
        ])

    groups = [StepGroup(p - 1, build, "pairwise exchange xor" if pow2 else "pairwise exchange shift")] \
        if p > 1 else []
    groups = with_first_copy(groups, lambda ranks: Ops.copy(ranks, BUF_IN, send_off[ranks, ranks], BUF_OUT,
                                                            recv_off[ranks, ranks], c[ranks, ranks]))
    in_count = int(c.sum(axis=1).max()) if p else 0
    out_count = int(c.sum(axis=0).max()) if p else 0
    return Schedule("alltoallv", "pairwise", p, in_count, out_count, groups, tmp_count=0)
