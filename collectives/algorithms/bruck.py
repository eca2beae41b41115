"""Bruck's all-to-all for small blocks.

J. Bruck, C.-T. Ho, S. Kipnis, E. Upfal, D. Weathersby, "Efficient algorithms
for all-to-all communications in multiport message-passing systems", IEEE TPDS
8(11), 1997 (the radix-2 variant).

1. local rotation: ``W[i] = in[(r + i) mod p]`` (W is scratch);
2. for k = 0 .. ceil(log2 p) - 1: pack every block W[i] with bit k of i set,
   send the pack to rank r + 2^k, receive the same positions from r - 2^k
   and unpack them into W (unpacking happens at the start of the next step);
3. a final local step: unpack the last round and apply the inverse rotation
   ``out[(r - i) mod p] = W[i]``.

ceil(log2 p) message rounds (+1 local step), each moving about half the
buffer: fewer, larger messages than pairwise's p-1 — better when blocks are
small and latency dominates, worse for large blocks (log2 p / 2 times the
bytes). Scratch: W (count elements) plus two pack areas of ceil(p/2) blocks.
The copies are O(p) per rank; the step groups carry a message-only builder so
:meth:`Schedule.flows` stays cheap at large p.
"""

from __future__ import annotations

import numpy as np

from ..schedule import BUF_IN, BUF_OUT, BUF_TMP, Ops, Schedule, StepGroup
from ._blocks import I64, ceil_log2


def _runs(p: int, k: int):
    """(start, length) in blocks of the runs of indices 0..p-1 with bit k set."""
    d = 1 << k
    starts = np.arange(d, p, 2 * d, dtype=I64)
    return starts, np.minimum(d, p - starts)


def alltoall(nranks: int, count: int) -> Schedule:
    p = nranks
    B = count // p
    K = ceil_log2(p)
    if p == 1:
        return Schedule("alltoall", "bruck", p, count, count,
                        [StepGroup(1, lambda i, ranks: Ops.copy(ranks, BUF_IN, 0, BUF_OUT, 0, count), "copy")])
    maxn = max(int(_runs(p, k)[1].sum()) for k in range(K))
    SEND_AT, RECV_AT = p * B, p * B + maxn * B

    def unpack(ranks, k):
        starts, lens = _runs(p, k)
        nr = len(starts)
        r = np.repeat(ranks, nr)
        st, ln = np.tile(starts, len(ranks)), np.tile(lens, len(ranks))
        packed = np.tile(np.cumsum(lens) - lens, len(ranks))
        return Ops.copy(r, BUF_TMP, RECV_AT + packed * B, BUF_TMP, st * B, ln * B)

    def pack(ranks, k):
        starts, lens = _runs(p, k)
        nr = len(starts)
        r = np.repeat(ranks, nr)
        st, ln = np.tile(starts, len(ranks)), np.tile(lens, len(ranks))
        packed = np.tile(np.cumsum(lens) - lens, len(ranks))
        return Ops.copy(r, BUF_TMP, st * B, BUF_TMP, SEND_AT + packed * B, ln * B)

    def messages(k, ranks):
        d = 1 << k
        n = int(_runs(p, k)[1].sum()) * B
        return Ops.concat([
            Ops.send(ranks, (ranks + d) % p, BUF_TMP, SEND_AT, n),
            Ops.recv(ranks, (ranks - d) % p, BUF_TMP, RECV_AT, n),
        ])

    def round_build(k):
        def build(i, ranks):
            parts = []
            if k == 0:
                # W[0:p-r] = in[r:p], W[p-r:p] = in[0:r]
                parts.append(Ops.copy(ranks, BUF_IN, ranks * B, BUF_TMP, 0, (p - ranks) * B))
                parts.append(Ops.copy(ranks, BUF_IN, 0, BUF_TMP, (p - ranks) * B, ranks * B))
            else:
                parts.append(unpack(ranks, k - 1))
            parts.append(pack(ranks, k))
            parts.append(messages(k, ranks))
            return Ops.concat(parts)
        return build

    def final(i, ranks):
        idx = np.arange(p, dtype=I64)
        r = np.repeat(ranks, p)
        w = np.tile(idx, len(ranks))
        return Ops.concat([unpack(ranks, K - 1),
                           Ops.copy(r, BUF_TMP, w * B, BUF_OUT, ((r - w) % p) * B, B)])

    packed = [int(_runs(p, k)[1].sum()) * B for k in range(K)]

    def copies(k):
        # every rank copies alike: the rotation (p blocks) or the last round's unpacking, then the
        # packing of this round (or, after the last round, its unpacking and the inverse rotation)
        n = (p * B if k == 0 else packed[k - 1]) + (packed[k] if k < K else p * B)
        return lambda i, ranks: np.full(len(ranks), n, dtype=I64)

    groups = [StepGroup(1, round_build(k), f"bruck round {k}", lambda i, ranks, k=k: messages(k, ranks),
                        copies(k))
              for k in range(K)]
    groups.append(StepGroup(1, final, "bruck inverse rotation", lambda i, ranks: Ops.empty(), copies(K)))
    return Schedule("alltoall", "bruck", p, count, count, groups, tmp_count=p * B + 2 * maxn * B)
