"""Broadcast: binomial tree, scatter + ring all-gather, pipelined chain.

All three work in place on BUF_OUT (the caller's buffer, which on the root
holds the data) and need no scratch. Ranks are renumbered ``v = (r - root) mod p``
so the root is virtual rank 0.

* ``binomial`` — ceil(log2 p) steps; in step k every rank v < 2^k that has
  the data sends the whole buffer to v + 2^k. Best for small messages
  (latency log p, but the whole message crosses log p links in a row).
* ``scatter_allgather`` — van de Geijn: a binomial scatter of the p blocks
  (``array_split``), then a ring all-gather. ceil(log2 p) + p - 1 steps, about
  2n bytes per rank: best for large messages on few to moderate rank counts.
  (Barnett, Payne, van de Geijn, Watts, "Broadcasting on meshes with wormhole
  routing", JPDC 1996; Thakur et al. 2005.)
* ``chain`` — a pipelined chain v -> v+1 in chunks (``chunk=`` elements, same
  default as the tree all-reduce): C + p - 2 steps in at most three step
  groups (filling, full, draining), n bytes per rank; best for large
  messages when p is small or the network is a ring/line.

Broadcast only copies, so every rank ends with the root's bits exactly.
"""

from __future__ import annotations

import numpy as np

from ..schedule import BUF_OUT, Ops, Schedule, StepGroup
from ._blocks import block_off, ceil_log2, split_runs
from .tree import default_chunks


def _check_root(root, p):
    from ..errors import InvalidArgument, InvalidType

    if isinstance(root, bool) or not isinstance(root, (int, np.integer)):
        raise InvalidType(f"broadcast: root must be an int rank, got {root!r}")
    if not 0 <= int(root) < p:
        raise InvalidArgument(f"broadcast: root={root} is out of range: ranks are 0..{p - 1}")
    return int(root)


def binomial(nranks: int, count: int, root: int = 0) -> Schedule:
    p = nranks
    root = _check_root(root, p)
    K = ceil_log2(p)

    def rnd(k):
        d = 1 << k

        def build(i, ranks):
            v = (ranks - root) % p
            snd = (v < d) & (v + d < p)
            rcv = (v >= d) & (v < 2 * d)
            return Ops.concat([
                Ops.send(ranks, (ranks + d) % p, BUF_OUT, 0, np.where(snd, count, 0)),
                Ops.recv(ranks, (ranks - d) % p, BUF_OUT, 0, np.where(rcv, count, 0)),
            ])
        return build

    groups = [StepGroup(1, rnd(k), f"binomial round {k}") for k in range(K)]
    return Schedule("broadcast", "binomial", p, count, count, groups, params={"root": root})


def scatter_allgather(nranks: int, count: int, root: int = 0) -> Schedule:
    p = nranks
    root = _check_root(root, p)
    K = ceil_log2(p)

    def scatter(k):
        d = 1 << k

        def build(i, ranks):
            v = (ranks - root) % p
            snd = (v % (2 * d) == 0) & (v + d < p)
            rcv = (v % (2 * d) == d)
            # the receiver's range is blocks [w, min(w + d, p)) with w = its virtual rank
            sw = v + d
            so = block_off(np.minimum(sw, p), count, p)
            se = block_off(np.minimum(sw + d, p), count, p)
            ro = block_off(np.minimum(v, p), count, p)
            re = block_off(np.minimum(v + d, p), count, p)
            return Ops.concat([
                Ops.send(ranks, (ranks + d) % p, BUF_OUT, so, np.where(snd, se - so, 0)),
                Ops.recv(ranks, (ranks - d) % p, BUF_OUT, ro, np.where(rcv, re - ro, 0)),
            ])
        return build

    def allgather(i, ranks):
        v = (ranks - root) % p
        sb, rb = (v - i) % p, (v - i - 1) % p
        so, sn = block_off(sb, count, p), block_off(sb + 1, count, p) - block_off(sb, count, p)
        ro, rn = block_off(rb, count, p), block_off(rb + 1, count, p) - block_off(rb, count, p)
        return Ops.concat([
            Ops.send(ranks, (ranks + 1) % p, BUF_OUT, so, np.where(v != p - 1, sn, 0)),
            Ops.recv(ranks, (ranks - 1) % p, BUF_OUT, ro, np.where(v != 0, rn, 0)),
        ])

    groups = [StepGroup(1, scatter(k), f"scatter round {k}") for k in reversed(range(K))]
    if p > 1:
        groups.append(StepGroup(p - 1, allgather, "ring all-gather"))
    return Schedule("broadcast", "scatter_allgather", p, count, count, groups, params={"root": root})


def chain(nranks: int, count: int, root: int = 0, chunk: int | None = None) -> Schedule:
    from ..errors import InvalidArgument

    p = nranks
    root = _check_root(root, p)
    if chunk is not None and (not isinstance(chunk, (int, np.integer)) or isinstance(chunk, bool)
                              or chunk < 1):
        raise InvalidArgument(f"chain: chunk must be a positive number of elements, got {chunk!r}")
    C = default_chunks(count, chunk)
    groups = []
    if p > 1:
        nsteps = C + p - 2

        def build(t, ranks):
            v = (ranks - root) % p
            cs = t - v            # chunk v sends at step t
            cr = t - v + 1        # chunk v receives at step t
            oks = (v < p - 1) & (cs >= 0) & (cs < C)
            okr = (v > 0) & (cr >= 0) & (cr < C)
            cs, cr = np.clip(cs, 0, C - 1), np.clip(cr, 0, C - 1)
            so, sn = block_off(cs, count, C), block_off(cs + 1, count, C) - block_off(cs, count, C)
            ro, rn = block_off(cr, count, C), block_off(cr + 1, count, C) - block_off(cr, count, C)
            return Ops.concat([
                Ops.send(ranks, (ranks + 1) % p, BUF_OUT, so, np.where(oks, sn, 0)),
                Ops.recv(ranks, (ranks - 1) % p, BUF_OUT, ro, np.where(okr, rn, 0)),
            ])

        def signature(t):
            # three phases (filling, full, draining). Inside a phase the steps
            # differ only in how many chain links are busy; the model prices
            # repetition 0, which is exact on contention-free chains.
            return (t >= min(C, p - 1) - 1) + (t >= max(C, p - 1))

        groups = split_runs(nsteps, signature, lambda a, n: StepGroup(
            n, lambda i, ranks, a=a: build(a + i, ranks), f"chain steps {a}.."))
    return Schedule("broadcast", "chain", p, count, count, groups, params={"root": root, "chunks": C})
