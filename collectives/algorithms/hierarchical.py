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

class _Aggregators:
    """Who aggregates the traffic between two groups, and where it lies in scratch.

    Member ``l`` of a group of ``s`` members is the aggregator for every remote
    group ``j' = l (mod s)``. Its aggregation area holds, remote group after
    remote group in increasing order, the ``s`` segments its group's members
    send to ``j'`` (``size[j']`` blocks each, member by member): ``s *
    size[j']`` blocks per served group. Sizes and offsets here are in blocks.
    """

    def __init__(self, g):
        self.g = g
        size = g.size
        index = np.arange(g.count, dtype=I64)
        moduli = np.unique(size)
        row = {int(m): t for t, m in enumerate(moduli)}
        # same_residue_before[t, j'] = total size of the groups j'' < j' with
        # j'' = j' (mod m), m = moduli[t]: the groups served before j' by one member
        self.same_residue_before = np.zeros((len(moduli), g.count), dtype=I64)
        residue_total = {}    # m -> total size of the groups of each residue mod m
        for t, m in enumerate(moduli):
            m = int(m)
            for residue in range(min(m, g.count)):
                sel = index[residue::m]
                self.same_residue_before[t, sel] = np.cumsum(size[sel]) - size[sel]
            residue_total[m] = np.bincount(index % m, weights=size, minlength=m).astype(I64)
        self.row_of_group = np.array([row[int(m)] for m in size], dtype=I64)
        # blocks of each rank's aggregation area: its served groups, not its own
        group, local = g.group, g.local
        own_size = size[group]
        self.area = np.zeros(g.p, dtype=I64)
        for m in moduli:
            m = int(m)
            sel = own_size == m
            serves_own = group[sel] % m == local[sel]
            self.area[sel] = m * (residue_total[m][local[sel]]
                                  - np.where(serves_own, size[group[sel]], 0))

    def member(self, j, remote):
        """The rank of group ``j`` that aggregates its traffic with group ``remote``."""
        return self.g.member(j, remote % self.g.size[j])

    def slot(self, j, remote):
        """Blocks before ``remote``'s part of the aggregation area of its aggregator in group ``j``."""
        s = self.g.size[j]
        before = self.same_residue_before[self.row_of_group[j], remote]
        # group j has the residue of the groups its members serve, but is not served
        own_counted = (j < remote) & ((j % s) == (remote % s))
        return s * (before - np.where(own_counted, self.g.size[j], 0))

    def served(self, ranks):
        """``(entry, remote)``: for each rank of ``ranks`` (by index) every remote group it serves."""
        g = self.g
        j, l = g.group[ranks], g.local[ranks]
        s = g.size[j]
        entry, q = _expand(np.where(l < g.count, (g.count - l + s - 1) // s, 0))
        remote = l[entry] + q * s[entry]
        keep = remote != j[entry]
        return entry[keep], remote[keep]


def alltoall(nranks: int, count: int, groups=None) -> Schedule:
    """Hierarchical all-to-all: one message between two groups, through aggregators.

    Rank r's block for rank d (``count // nranks`` elements) travels, when d is
    in another group, from r to the aggregator of r's group for d's group,
    packed with the blocks of r's group-mates for that group; then, in one
    message, to the counterpart aggregator in d's group, which hands d the
    blocks of every member of r's group. See the module docstring for the steps.

    Parameters
    ----------
    nranks, count : int
        Ranks, and elements of each rank's buffer (``nranks`` equal blocks).
    groups : optional
        As :func:`allreduce`.

    Returns
    -------
    Schedule
    """
    p = nranks
    g = make_groups(groups, p)
    ngroups = g.count
    block = count // p
    size = g.size
    agg = _Aggregators(g)

    # scratch: the input packed group-major (when groups are not consecutive ranks),
    # then two aggregation areas: what is gathered (later: what the counterpart sent)
    # and its transpose, ready to send
    packed = not g.consecutive
    pack_len = p * block if packed else 0
    area_len = int(agg.area.max()) * block
    gathered, transposed = pack_len, pack_len + area_len
    tmp_count = pack_len + 2 * area_len if ngroups > 1 else pack_len
    source = BUF_TMP if packed else BUF_IN      # the input in group-major block order

    def segment_of(remote):
        """Offset in ``source`` of the blocks for the members of group ``remote``."""
        return g.start[remote] * block

    def landing(src_group):
        """Where the blocks from the members of ``src_group`` land: output, or the packed area."""
        return (BUF_TMP if packed else BUF_OUT), g.start[src_group] * block

    def to_aggregators(i, ranks, copies=True):
        j, l = g.group[ranks], g.local[ranks]
        local_ops = []
        if copies:
            local_ops.append(Ops.copy(ranks, BUF_IN, ranks * block, BUF_OUT, ranks * block, block))
            if packed:
                entry, q = _expand(np.full(ranks.shape, p))
                local_ops.append(Ops.copy(ranks[entry], BUF_IN, g.members[q] * block, BUF_TMP,
                                          q * block, block))
        # blocks for the other members of the group go straight to them
        entry, q = _expand(size[j])
        r, mate = ranks[entry], g.member(j[entry], q)
        n = np.where(q != l[entry], block, 0)
        sends = [Ops.send(r, mate, source, g.pos[mate] * block, n)]
        recvs = [Ops.recv(r, mate, BUF_OUT, mate * block, n)]
        # the segment for each remote group goes to the group's aggregator for it
        entry, remote = _expand(np.full(ranks.shape, ngroups))
        r, jr, lr = ranks[entry], j[entry], l[entry]
        aggregator = agg.member(jr, remote)
        is_remote = remote != jr
        segment = size[remote] * block
        sends.append(Ops.send(r, aggregator, source, segment_of(remote),
                              np.where(is_remote & (aggregator != r), segment, 0)))
        if copies:
            local_ops.append(Ops.copy(r, source, segment_of(remote), BUF_TMP,
                                      gathered + (agg.slot(jr, remote) + lr * size[remote]) * block,
                                      np.where(is_remote & (aggregator == r), segment, 0)))
        # as aggregator: every other member's segment for each remote group served
        entry, remote = agg.served(ranks)
        r, jr, lr = ranks[entry], j[entry], l[entry]
        entry, member = _expand(size[jr])
        r, jr, lr, remote = r[entry], jr[entry], lr[entry], remote[entry]
        recvs.append(Ops.recv(r, g.member(jr, member), BUF_TMP,
                              gathered + (agg.slot(jr, remote) + member * size[remote]) * block,
                              np.where(member != lr, size[remote] * block, 0)))
        return Ops.concat(local_ops + sends + recvs)

    def between_groups(i, ranks, copies=True):
        entry, remote = agg.served(ranks)
        r, j = ranks[entry], g.group[ranks][entry]
        s = size[j]
        base = agg.slot(j, remote)
        ops = []
        if copies:
            # [member][member of remote] -> [member of remote][member]: the counterpart's
            # members then each find their blocks in one run
            entry, w = _expand(s * size[remote])
            rr, ss, rem, bb = r[entry], s[entry], remote[entry], base[entry]
            member, dest = w // size[rem], w % size[rem]
            ops.append(Ops.copy(rr, BUF_TMP, gathered + (bb + member * size[rem] + dest) * block,
                                BUF_TMP, transposed + (bb + dest * ss + member) * block, block))
        counterpart = agg.member(remote, j)
        n = s * size[remote] * block
        ops.append(Ops.send(r, counterpart, BUF_TMP, transposed + base * block, n))
        ops.append(Ops.recv(r, counterpart, BUF_TMP, gathered + base * block, n))
        return Ops.concat(ops)

    def scatter_in_groups(i, ranks, copies=True):
        # as counterpart: hand each member of the group its blocks from each source group
        entry, src_group = agg.served(ranks)
        r, j = ranks[entry], g.group[ranks][entry]
        base = gathered + agg.slot(j, src_group) * block
        entry, dest = _expand(size[j])
        r, j, src_group, base = r[entry], j[entry], src_group[entry], base[entry]
        me = g.local[r]
        n = size[src_group] * block
        buf, off = landing(src_group)
        ops = []
        if copies:
            ops.append(Ops.copy(r, BUF_TMP, base + dest * n, buf, off, np.where(dest == me, n, 0)))
        ops.append(Ops.send(r, g.member(j, dest), BUF_TMP, base + dest * n,
                            np.where(dest != me, n, 0)))
        # receive from the counterpart of every remote source group
        entry, src_group = _expand(np.full(ranks.shape, ngroups))
        r, j = ranks[entry], g.group[ranks][entry]
        counterpart = agg.member(j, src_group)
        buf, off = landing(src_group)
        ops.append(Ops.recv(r, counterpart, buf, off,
                            np.where((src_group != j) & (counterpart != r), size[src_group] * block, 0)))
        return Ops.concat(ops)

    def unpack(i, ranks):
        entry, src = _expand(np.full(ranks.shape, p))
        r = ranks[entry]
        other = g.group[src] != g.group[r]
        return Ops.copy(r, BUF_TMP, g.pos[src] * block, BUF_OUT, src * block,
                        np.where(other, block, 0))

    def messages_only(step):
        return lambda i, ranks: step(i, ranks, copies=False)

    steps = [StepGroup(1, to_aggregators, "hierarchical: intra-group and to aggregators",
                       messages_only(to_aggregators))]
    if ngroups > 1:
        steps.append(StepGroup(1, between_groups, "hierarchical: between groups",
                               messages_only(between_groups)))
        steps.append(StepGroup(1, scatter_in_groups, "hierarchical: scatter in groups",
                               messages_only(scatter_in_groups)))
        if packed:
            steps.append(StepGroup(1, unpack, "hierarchical: unpack", lambda i, ranks: Ops.empty()))
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

