"""Pipelined double binary tree all-reduce, as in NCCL.

Two binary trees over the ranks, each carrying half of the buffer. Tree A is
NCCL's in-order tree (``ncclGetBtree``): position t >= 1 with lowest set bit b
has parent (t ^ b) | 2b (or t ^ b when that is past the end); position 0 is
the root with a single child. Every odd position is a leaf. Tree B is tree A
mirrored (rank p-1-t at position t) when p is even and shifted by one (rank
t+1 mod p at position t) when p is odd (``ncclGetDtree``), so the interior
ranks of one tree are leaves of the other: each rank sends and receives about
one half-buffer's worth of traffic per direction in total, rather than the
interior nodes of a single tree carrying twice the load.

Each half is cut into C chunks and pipelined: a node of height h sends chunk c
to its parent at step c + h, after reducing what its children sent; the root
(height H) has chunk c complete after step c + H - 1 and starts sending it
down at step c + H; a node at depth d forwards chunk c at step c + H + d. The
reduction and the broadcast of different chunks overlap, so the whole
all-reduce takes C + 2H - 1 steps (H = ceil(log2(p+1)) - 1 or so) and each
step moves one chunk per tree edge. Latency is logarithmic in p: the tree wins
for small and medium messages on many ranks; the ring wins for large messages
on few ranks.

Why this tree and not another: the double binary tree keeps the log p latency
of a binomial tree while, unlike a single binary or binomial tree, using every
rank's send and receive bandwidth about evenly (no rank is interior in both
trees); it is what NCCL uses, so its behaviour is well known. A node's
children may have different heights; a child's chunk then arrives early and is
reduced in place, still in a fixed order (by step, then lower child first).

Every chunk's final value is computed at its tree's root only and then copied
down: bitwise identical on every rank, and deterministic from run to run.

Sanders, Speck, Träff, "Two-tree algorithms for full bandwidth broadcast,
reduction and scan", Parallel Computing 35(12), 2009; NCCL 2.4 release notes.
"""

from __future__ import annotations

import numpy as np

from ..schedule import BUF_OUT, Ops, Schedule, StepGroup
from ._blocks import block_off, block_size, copy_whole, split_runs, with_first_copy
from ._variant import Variant

I64 = np.int64

#: default chunk size in elements (128 KiB of float32); at most MAX_CHUNKS chunks per half
DEFAULT_CHUNK = 32768
MAX_CHUNKS = 64


class BinaryTree:
    """NCCL's in-order binary tree over positions 0..p-1 (root 0), as arrays."""

    def __init__(self, p: int):
        t = np.arange(p, dtype=I64)
        b = t & -t
        up = (t ^ b) | (b << 1)
        up = np.where(up >= p, t ^ b, up)
        up[0] = -1
        self.parent = up
        self.lo = np.full(p, -1, dtype=I64)   # child below (smaller position)
        self.hi = np.full(p, -1, dtype=I64)   # child above
        kids = t[1:]
        par = up[1:]
        below = kids < par
        self.lo[par[below]] = kids[below]
        self.hi[par[~below]] = kids[~below]
        # depth: walk every node up one level at a time (the tree is log p deep)
        depth = np.zeros(p, dtype=I64)
        anc = up.copy()
        while np.any(anc >= 0):
            ok = anc >= 0
            depth[ok] += 1
            anc = np.where(ok, up[np.where(ok, anc, 0)], -1)
        self.depth = depth
        height = np.zeros(p, dtype=I64)
        for d in range(int(depth.max()) if p else 0, 0, -1):
            nodes = t[depth == d]
            np.maximum.at(height, up[nodes], height[nodes] + 1)
        self.height = height
        self.H = int(height[0]) if p else 0
        self.D = int(depth.max()) if p else 0


def _positions(p: int):
    """(rank -> position, position -> rank) of tree A and tree B."""
    ident = lambda x: x  # noqa: E731
    if p % 2 == 0:
        b_pos = lambda r: p - 1 - r  # noqa: E731
        b_rank = b_pos
    else:
        b_pos = lambda r: (r - 1) % p  # noqa: E731
        b_rank = lambda t: (t + 1) % p  # noqa: E731
    return [(ident, ident), (b_pos, b_rank)]


def default_chunks(half: int, chunk: int | None) -> int:
    if half <= 0:
        return 1
    if chunk is None:
        return int(min(MAX_CHUNKS, max(1, -(-half // DEFAULT_CHUNK))))
    return int(max(1, -(-half // int(chunk))))


def chunk_variants(topology, hosts, count, params):
    """Pipeline chunks worth pricing: the default, 8 large chunks per half and 256 small ones.

    Only when the caller did not fix ``chunk=`` and the alternatives differ
    from the default and hold at least 64 elements (smaller ones only add steps).
    """
    yield Variant(params=dict(params))
    if "chunk" in params or not count:
        return
    half = -(-count // 2)
    default = default_chunks(half, None)
    for nchunks in (8, 256):
        chunk = max(1, -(-half // nchunks))
        if nchunks != default and chunk >= 64:
            yield Variant(f"chunk={chunk}", dict(params, chunk=chunk))


def allreduce(nranks: int, count: int, chunk: int | None = None) -> Schedule:
    """Pipelined double binary tree all-reduce: C + 2H - 1 steps, no scratch.

    ``chunk``: pipeline chunk in elements (default: 32768, at most 64 chunks
    per half-buffer, so small messages are one chunk: 2H steps).
    """
    from ..errors import InvalidArgument

    if chunk is not None and (not isinstance(chunk, (int, np.integer)) or isinstance(chunk, bool)
                              or chunk < 1):
        raise InvalidArgument(f"tree: chunk must be a positive number of elements, got {chunk!r}")
    p = nranks
    half_off = block_off(np.arange(3), count, 2)       # [0, ceil(n/2), n]
    half_len = [int(half_off[1] - half_off[0]), int(half_off[2] - half_off[1])]
    C = default_chunks(half_len[0], chunk)
    groups = []
    if p > 1:
        tree = BinaryTree(p)
        H, D = tree.H, tree.D
        nsteps = C + H + D - 1
        maps = _positions(p)

        def chunk_span(k, c):
            c = np.clip(c, 0, C - 1)
            return int(half_off[k]) + block_off(c, half_len[k], C), block_size(c, half_len[k], C)

        def build(t, ranks):
            parts = []
            for k, (to_pos, to_rank) in enumerate(maps):
                x = to_pos(ranks)
                h = tree.height[x]
                dep = tree.depth[x]
                par = tree.parent[x]
                has_par = par >= 0
                par_rank = to_rank(np.where(has_par, par, 0))
                # up: send chunk t - h to the parent
                c = t - h
                ok = has_par & (c >= 0) & (c < C)
                off, n = chunk_span(k, c)
                parts.append(Ops.send(ranks, par_rank, BUF_OUT, off, np.where(ok, n, 0)))
                # up: reduce what the children send (lower child first)
                for kid in (tree.lo[x], tree.hi[x]):
                    has = kid >= 0
                    kk = np.where(has, kid, 0)
                    c = t - tree.height[kk]
                    ok = has & (c >= 0) & (c < C)
                    off, n = chunk_span(k, c)
                    parts.append(Ops.recv(ranks, to_rank(kk), BUF_OUT, off, np.where(ok, n, 0), reduce=True))
                # down: receive the final chunk from the parent
                c = t - H - dep + 1
                ok = has_par & (c >= 0) & (c < C)
                off, n = chunk_span(k, c)
                parts.append(Ops.recv(ranks, par_rank, BUF_OUT, off, np.where(ok, n, 0)))
                # down: forward it to the children
                c = t - H - dep
                for kid in (tree.lo[x], tree.hi[x]):
                    has = kid >= 0
                    kk = np.where(has, kid, 0)
                    ok = has & (c >= 0) & (c < C)
                    off, n = chunk_span(k, c)
                    parts.append(Ops.send(ranks, to_rank(kk), BUF_OUT, off, np.where(ok, n, 0)))
            return Ops.concat(parts)

        def signature(t):
            up = (max(0, t - C + 1), min(t, H - 1))
            down = (max(0, t - H - C + 1), min(t - H, D - 1))
            return up if up[0] <= up[1] else None, down if down[0] <= down[1] else None

        def make(start, length):
            return StepGroup(length, lambda i, ranks, s=start: build(s + i, ranks),
                             f"tree steps {start}..{start + length - 1}")

        groups = split_runs(nsteps, signature, make)
    groups = with_first_copy(groups, copy_whole(count))
    return Schedule("allreduce", "tree", p, count, count, groups, tmp_count=0, reduces=True,
                    params={"chunk": chunk, "chunks": C})
