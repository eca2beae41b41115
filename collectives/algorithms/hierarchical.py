"""Hierarchical (two-level) all-reduce and all-to-all over groups of ranks.

Groups are the ranks that share a fast network (a node, a leaf switch, a
dragonfly group). ``groups=`` takes a list of rank lists, an int array
``group_of_rank`` (one label per rank), a group size (consecutive ranks), or
None: groups of ceil(sqrt(p)) consecutive ranks, the last one possibly smaller.
The Communicator passes the groups of its topology, or the shared-memory nodes.

All-reduce (three phases, 2(S-1) + 2(G-1) steps for G groups, S = largest group):

1. reduce-scatter inside each group (ring);
2. all-reduce of each shard across the groups, among the ranks holding it (ring);
3. all-gather inside each group (ring).

Unequal groups: the buffer is cut into S shards (``array_split``), S the
largest group size; member l of a group of s members holds the contiguous
run of shards ``array_split(range(S), s)[l]`` (in a group of S members one
shard each, in a group of one member all of them). So every group holds every
shard, a shard's boundaries are the same in every group, and phase 2 is, for
each shard k, a ring all-reduce over the G ranks (one per group, in group
order) that hold shard k. A rank of a small group takes part in several such
rings at once (one message per shard per step). Each element is reduced
on exactly one rank (the owner of its piece in phase 2) in a fixed order and
then only copied: bitwise identical results on every rank and every run.
No scratch.

All-to-all (three steps, plus one with packing): the blocks a rank sends to a
remote group are aggregated, inside its group, at one member (the
*aggregator* for that group pair, member ``j' mod s`` for destination group
j', so the work is spread over members); aggregators exchange one message per
group pair, and the receiving aggregator hands each member of its group the
blocks it is owed in one message. Blocks inside a group go directly.

1. direct blocks inside the group; segments for each remote group to its aggregator;
2. each aggregator transposes its s_j x s_j' blocks (local copies) and sends
   them to the counterpart aggregator of the destination group;
3. the counterpart sends each member of its group its s_j blocks;
4. (only when groups are not ranges of consecutive ranks) local unpacking.

Scratch: two aggregation areas of at most about ``count`` elements each, plus
one packing area of ``count`` when groups are not consecutive ranges.
"""

from __future__ import annotations

import numpy as np

from ..errors import CollectivesError
from ..schedule import BUF_IN, BUF_OUT, BUF_TMP, Ops, Schedule, StepGroup
from ._blocks import (I64, block_owner, make_groups, split_off, split_runs, topology_groups,
                      with_first_copy)
from ._variant import Variant


def _expand(counts):
    """For per-item counts, ``(item index, index within item)`` of every expanded entry."""
    counts = np.asarray(counts, dtype=I64)
    item = np.repeat(np.arange(counts.shape[0], dtype=I64), counts)
    starts = np.cumsum(counts) - counts
    within = np.arange(item.shape[0], dtype=I64) - starts[item]
    return item, within


# ---- all-reduce -------------------------------------------------------------------------------

def allreduce(nranks: int, count: int, groups=None) -> Schedule:
    p = nranks
    g = make_groups(groups, p)
    G = g.count
    S = int(g.size.max())

    def shard_off(k):
        return split_off(k, count, S)

    def member_range(j, l):
        """Element range [lo, hi) held by member l of group j (vectorised)."""
        s = g.size[j]
        return shard_off(split_off(l, S, s)), shard_off(split_off(l + 1, S, s))

    def intra(i, ranks, reduce_phase):
        j = g.group[ranks]
        l = g.local[ranks]
        s = g.size[j]
        act = i < s - 1
        if reduce_phase:
            sb, rb = (l - i - 1) % s, (l - i - 2) % s
        else:
            sb, rb = (l - i) % s, (l - i - 1) % s
        slo, shi = member_range(j, sb)
        rlo, rhi = member_range(j, rb)
        nxt = g.member(j, (l + 1) % s)
        prv = g.member(j, (l - 1) % s)
        return Ops.concat([
            Ops.send(ranks, nxt, BUF_OUT, slo, np.where(act, shi - slo, 0)),
            Ops.recv(ranks, prv, BUF_OUT, rlo, np.where(act, rhi - rlo, 0), reduce=reduce_phase),
        ])

    def cross(i, ranks, reduce_phase):
        # one entry per (rank, shard it holds), shards in increasing order
        j = g.group[ranks]
        l = g.local[ranks]
        s = g.size[j]
        first = split_off(l, S, s)
        nsh = split_off(l + 1, S, s) - first
        item, within = _expand(nsh)
        r = ranks[item]
        jj = j[item]
        k = first[item] + within
        lo = shard_off(k)
        n = shard_off(k + 1) - lo
        if reduce_phase:
            sp, rp = (jj - i - 1) % G, (jj - i - 2) % G
        else:
            sp, rp = (jj - i) % G, (jj - i - 1) % G
        nj, pj = (jj + 1) % G, (jj - 1) % G
        holder = lambda grp: g.member(grp, block_owner(k, S, g.size[grp]))  # noqa: E731
        so = lo + split_off(sp, n, G)
        sc = split_off(sp + 1, n, G) - split_off(sp, n, G)
        ro = lo + split_off(rp, n, G)
        rc = split_off(rp + 1, n, G) - split_off(rp, n, G)
        return Ops.concat([
            Ops.send(r, holder(nj), BUF_OUT, so, sc),
            Ops.recv(r, holder(pj), BUF_OUT, ro, rc, reduce=reduce_phase),
        ])

    steps = []
    sizes = np.unique(g.size)
    if S > 1:
        sig = lambda i: int(np.sum(sizes - 1 > i))  # noqa: E731
        steps += split_runs(S - 1, sig, lambda a, n: StepGroup(
            n, lambda i, ranks, a=a: intra(a + i, ranks, True), f"intra-group reduce-scatter {a}.."))
    if G > 1:
        steps.append(StepGroup(G - 1, lambda i, ranks: cross(i, ranks, True), "cross-group reduce-scatter"))
        steps.append(StepGroup(G - 1, lambda i, ranks: cross(i, ranks, False), "cross-group all-gather"))
    if S > 1:
        steps += split_runs(S - 1, sig, lambda a, n: StepGroup(
            n, lambda i, ranks, a=a: intra(a + i, ranks, False), f"intra-group all-gather {a}.."))
    steps = with_first_copy(steps, lambda ranks: Ops.copy(ranks, BUF_IN, 0, BUF_OUT, 0, count))
    return Schedule("allreduce", "hierarchical", p, count, count, steps, tmp_count=0, reduces=True,
                    params={"groups": g.describe()})


# ---- all-to-all -------------------------------------------------------------------------------

def alltoall(nranks: int, count: int, groups=None) -> Schedule:
    p = nranks
    g = make_groups(groups, p)
    G = g.count
    B = count // p
    size = g.size
    gidx = np.arange(G, dtype=I64)

    # strided prefix sums: CS[mi, j'] = sum of size[j''] for j'' < j', j'' = j' (mod m)
    moduli = np.unique(size)
    mindex = {int(m): t for t, m in enumerate(moduli)}
    CS = np.zeros((len(moduli), G), dtype=I64)
    TOT = {}
    for t, m in enumerate(moduli):
        m = int(m)
        for res in range(min(m, G)):
            sel = gidx[res::m]
            CS[t, sel] = np.cumsum(size[sel]) - size[sel]
        TOT[m] = np.bincount(gidx % m, weights=size, minlength=m).astype(I64)
    mi_of_group = np.array([mindex[int(m)] for m in size], dtype=I64)

    def slot(j, jr):
        """Blocks before remote group jr's area in an aggregation area of group j (vectorised)."""
        s = size[j]
        before = CS[mi_of_group[j], jr]
        own = (j < jr) & ((j % s) == (jr % s))
        return s * (before - np.where(own, size[j], 0))

    # scratch layout
    pack = not g.consecutive
    r0 = p * B if pack else 0
    j_all = g.group
    l_all = g.local
    s_all = size[j_all]
    area = np.zeros(p, dtype=I64)   # blocks of each rank's aggregation area
    for m in moduli:
        m = int(m)
        sel = s_all == m
        tot = TOT[m][l_all[sel]]
        area[sel] = m * (tot - np.where(j_all[sel] % m == l_all[sel], size[j_all[sel]], 0))
    R1 = int(area.max()) * B if p else 0
    O1, O2 = r0, r0 + R1
    tmp_count = r0 + 2 * R1 if G > 1 else r0

    SRC = BUF_TMP if pack else BUF_IN

    def seg_off(jr):  # offset of group jr's destinations in the source layout
        return g.start[jr] * B

    def agg(j, jr):  # aggregator in group j for traffic to/from group jr
        return g.member(j, jr % size[j])

    def dest(jj):  # where a rank puts the blocks of source group jj in step 2
        return (BUF_TMP if pack else BUF_OUT), g.start[jj] * B

    def step0(i, ranks, copies=True):
        j, l = g.group[ranks], g.local[ranks]
        s = size[j]
        parts = []
        if copies:
            parts.append(Ops.copy(ranks, BUF_IN, ranks * B, BUF_OUT, ranks * B, B))
            if pack:
                it, q = _expand(np.full(ranks.shape, p))
                d = g.members[q]
                parts.append(Ops.copy(ranks[it], BUF_IN, d * B, BUF_TMP, q * B, B))
        # direct blocks inside the group
        it, q = _expand(s)
        r, jq, lq = ranks[it], j[it], l[it]
        d = g.member(jq, q)
        parts_send = [Ops.send(r, d, SRC, g.pos[d] * B, np.where(q != lq, B, 0))]
        parts_recv = [Ops.recv(r, d, BUF_OUT, d * B, np.where(q != lq, B, 0))]
        # segments to the aggregators, remote groups in increasing order
        it, jr = _expand(np.full(ranks.shape, G))
        r, jq, lq = ranks[it], j[it], l[it]
        a = agg(jq, jr)
        remote = jr != jq
        n = np.where(remote & (a != r), size[jr] * B, 0)
        parts_send.append(Ops.send(r, a, SRC, seg_off(jr), n))
        if copies:
            mine = remote & (a == r)
            parts.append(Ops.copy(r, SRC, seg_off(jr), BUF_TMP,
                                  O1 + (slot(jq, jr) + lq * size[jr]) * B, np.where(mine, size[jr] * B, 0)))
        # as aggregator: receive every other member's segment for each remote group I serve
        it, q = _expand(np.where(l < G, (G - l + s - 1) // s, 0))
        r, jq, lq, sq = ranks[it], j[it], l[it], s[it]
        jr = lq + q * sq
        it2, m = _expand(sq)
        r, jq, lq, jr = r[it2], jq[it2], lq[it2], jr[it2]
        ok = (jr != jq) & (m != lq)
        parts_recv.append(Ops.recv(r, g.member(jq, m), BUF_TMP, O1 + (slot(jq, jr) + m * size[jr]) * B,
                                   np.where(ok, size[jr] * B, 0)))
        return Ops.concat(parts + parts_send + parts_recv)

    def served(ranks):
        """(rank entry, remote group) for every remote group a rank aggregates/counterparts."""
        j, l = g.group[ranks], g.local[ranks]
        s = size[j]
        it, q = _expand(np.where(l < G, (G - l + s - 1) // s, 0))
        jr = l[it] + q * s[it]
        keep = jr != j[it]
        return it[keep], jr[keep]

    def step1(i, ranks, copies=True):
        it, jr = served(ranks)
        r, j = ranks[it], g.group[ranks][it]
        s = size[j]
        base = slot(j, jr)
        parts = []
        if copies:
            # transpose [m][d'] -> [d'][m]
            it2, w = _expand(s * size[jr])
            rr, jj, ss, jrr, bb = r[it2], j[it2], s[it2], jr[it2], base[it2]
            m, dd = w // size[jrr], w % size[jrr]
            parts.append(Ops.copy(rr, BUF_TMP, O1 + (bb + m * size[jrr] + dd) * B,
                                  BUF_TMP, O2 + (bb + dd * ss + m) * B, B))
        c = agg(jr, j)
        parts.append(Ops.send(r, c, BUF_TMP, O2 + base * B, s * size[jr] * B))
        parts.append(Ops.recv(r, c, BUF_TMP, O1 + base * B, s * size[jr] * B))
        return Ops.concat(parts)

    def step2(i, ranks, copies=True):
        it, jr = served(ranks)            # jr: the source group whose blocks I hold
        r, j = ranks[it], g.group[ranks][it]
        s = size[j]
        base = O1 + slot(j, jr) * B
        it2, dl = _expand(s)
        rr, jj, jrr, bb, me = r[it2], j[it2], jr[it2], base[it2], g.local[r][it2]
        d = g.member(jj, dl)
        n = size[jrr] * B
        dbuf, doff = dest(jrr)
        parts = []
        if copies:
            parts.append(Ops.copy(rr, BUF_TMP, bb + dl * n, dbuf, doff, np.where(dl == me, n, 0)))
        parts.append(Ops.send(rr, d, BUF_TMP, bb + dl * n, np.where(dl != me, n, 0)))
        # receive from the counterpart of every remote source group
        j0 = g.group[ranks]
        it3, js = _expand(np.full(ranks.shape, G))
        r3, jq = ranks[it3], j0[it3]
        c = agg(jq, js)
        ok = (js != jq) & (c != r3)
        dbuf, doff = dest(js)
        parts.append(Ops.recv(r3, c, dbuf, doff, np.where(ok, size[js] * B, 0)))
        return Ops.concat(parts)

    def step3(i, ranks):
        it, sidx = _expand(np.full(ranks.shape, p))
        r = ranks[it]
        other = g.group[sidx] != g.group[r]
        return Ops.copy(r, BUF_TMP, g.pos[sidx] * B, BUF_OUT, sidx * B, np.where(other, B, 0))

    steps = [StepGroup(1, step0, "hierarchical: intra-group and to aggregators",
                       lambda i, ranks: step0(i, ranks, copies=False))]
    if G > 1:
        steps.append(StepGroup(1, step1, "hierarchical: between groups",
                               lambda i, ranks: step1(i, ranks, copies=False)))
        steps.append(StepGroup(1, step2, "hierarchical: scatter in groups",
                               lambda i, ranks: step2(i, ranks, copies=False)))
        if pack:
            steps.append(StepGroup(1, step3, "hierarchical: unpack", lambda i, ranks: Ops.empty()))
    return Schedule("alltoall", "hierarchical", p, count, count, steps, tmp_count=tmp_count,
                    params={"groups": g.describe()})


# ---- variants the planner prices ---------------------------------------------------------------

def _levels(topology):
    """The topology's group levels that can make groups (not single hosts, not everything)."""
    if not hasattr(topology, "group_levels"):
        return []
    return [level for level in topology.group_levels() if level not in ("host", "all")]


def _group_variants(topology, hosts, params, messages_per_step):
    """One variant per distinct grouping of the ranks by a level of the topology.

    Levels that put every rank in one group, or each in its own, are left out
    (the algorithm would be a flat one). With ``groups=`` fixed by the caller, or
    no usable level, only the defaults are priced.
    """
    if "groups" in params:
        yield Variant(params=dict(params))
        return
    p = len(hosts)
    seen = set()
    for level in _levels(topology):
        try:
            groups = topology_groups(topology, hosts, level)
        except CollectivesError:
            continue    # this level does not apply to these hosts
        ngroups = int(groups.max()) + 1 if len(groups) else 0
        if groups.tobytes() in seen or ngroups in (1, p):
            continue
        seen.add(groups.tobytes())
        yield Variant(f"groups={level}", dict(params, groups=groups),
                      messages_per_step=messages_per_step(p, ngroups))
    if not seen:
        yield Variant(params=dict(params))


def allreduce_variants(topology, hosts, count, params):
    """Hierarchical all-reduce: one variant per group level of the topology."""
    return _group_variants(topology, hosts, params, lambda p, ngroups: 0)


def alltoall_variants(topology, hosts, count, params):
    """Hierarchical all-to-all: one variant per group level; every rank sends to every
    group's aggregator, so its first step has p x groups messages."""
    return _group_variants(topology, hosts, params, lambda p, ngroups: p * ngroups)

