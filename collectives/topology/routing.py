"""Routing: equal-cost shortest paths (ECMP), dragonfly minimal and Valiant.

Nothing is precomputed for all pairs. A :class:`Router` runs one
breadth-first search per source switch when first asked (kept in an LRU
cache of ``source_cache`` sources) and caches the routes of each
(switch, switch) pair in an LRU of ``cache_size`` pairs. A single-homed host
is routed through the switch it hangs off, so all hosts under one leaf share
the cached routes of that leaf.

Modes
-----
``"ecmp"`` (alias ``"shortest"``)
    Every shortest path by hop count, the flow spread evenly over them (each
    path gets ``1/npaths``). Hosts never forward traffic in a topology with
    switches; in a direct-connect topology they are the routers.
``"minimal"`` (dragonfly; other families fall back to ``"ecmp"``)
    Kim et al. 2008 MIN: at most one local hop in the source group, one global
    link that joins the two groups directly, at most one local hop in the
    destination group; the fewest-hop of those routes, spread evenly.
``"valiant"`` (dragonfly only)
    Valiant load balancing as in Kim et al. 2008: minimal to an intermediate
    group, then minimal to the destination. The flow is spread evenly over all
    groups other than the source's and the destination's (the expected load of
    a random choice); traffic inside one group stays minimal.

Adaptive (UGAL-style) routing picks minimal or Valiant per flow from the load
of a whole batch of flows, so it has no per-pair routes here; the model
implements it (``routing="adaptive"`` in :mod:`collectives.model.network`).

Link identifiers are those of :class:`~collectives.topology.core.LinkTable`:
``topo.links.bandwidth[link]``, ``topo.links.latency[link]``.
"""

from __future__ import annotations

from collections import OrderedDict, deque

import numpy as np

from ..errors import TopologyError

__all__ = ["Router", "MODES", "default_mode"]

MODES = ("ecmp", "minimal", "valiant")


def default_mode(topo) -> str:
    """``"minimal"`` for dragonflies, ``"ecmp"`` otherwise."""
    return "minimal" if topo.family == "dragonfly" else "ecmp"


class _LRU(OrderedDict):
    def __init__(self, size):
        super().__init__()
        self.size = size

    def get_or(self, key, make):
        try:
            v = self[key]
            self.move_to_end(key)
            return v
        except KeyError:
            v = make()
            self[key] = v
            if len(self) > self.size:
                self.popitem(last=False)
            return v


class Router:
    """Routes between hosts of one topology (see the module docstring).

    Parameters
    ----------
    topo : Topology
    mode : {"ecmp", "shortest", "minimal", "valiant"}
    cache_size : int
        Switch pairs whose routes are kept (LRU).
    source_cache : int
        Sources whose BFS distances are kept (LRU); each costs one int per node.
    """

    def __init__(self, topo, mode="ecmp", *, cache_size=8192, source_cache=256):
        if mode == "shortest":
            mode = "ecmp"
        if mode == "adaptive":
            # the choice between minimal and Valiant depends on the traffic, not on the pair
            raise TopologyError(f"unknown routing 'adaptive' for a Router (expected one of "
                                f"{', '.join(MODES)}): adaptive routing chooses per flow from "
                                "the load of a whole set of flows, so it has no fixed routes "
                                "between two hosts; use routing='adaptive' in collectives.model")
        if mode not in MODES:
            raise TopologyError(f"unknown routing {mode!r}: expected one of {', '.join(MODES)}")
        dragon = topo.family == "dragonfly"
        if mode == "valiant" and not dragon:
            raise TopologyError(f"valiant routing needs a dragonfly; {topo.name} is not one")
        if mode == "minimal" and not dragon:
            mode = "ecmp"
        self.topo = topo
        self.mode = mode
        G = topo.graph
        nodes = topo.nodes
        idx = topo.node_index
        self._kind_host = [G.nodes[n]["kind"] == "host" for n in nodes]
        self._adj = [[idx[m] for m in G.adj[n]] for n in nodes]
        self._switched = topo.switched
        if self._switched:       # fabric-only adjacency: what a BFS between switches walks
            host = self._kind_host
            self._fadj = [[m for m in a if not host[m]] for a in self._adj]
        else:
            self._fadj = self._adj
        self._dist = _LRU(source_cache)
        self._pairs = _LRU(cache_size)
        self._att = {}
        for h in topo.hosts:
            a = topo.attachment(h)
            self._att[h] = None if a is None else idx[a]
        if mode in ("minimal", "valiant"):
            self._group = [G.nodes[n].get("group") if not self._kind_host[i] else None
                           for i, n in enumerate(nodes)]
            self._glinks = {}
            for u, v, d in G.edges(data=True):
                if d.get("kind") == "global":
                    iu, iv = idx[u], idx[v]
                    gu, gv = self._group[iu], self._group[iv]
                    self._glinks.setdefault((gu, gv), []).append((iu, iv))
                    self._glinks.setdefault((gv, gu), []).append((iv, iu))
            self._ngroups = int(topo.params.get("groups", 0)) or \
                (max(g for g in self._group if g is not None) + 1)

    # ------------------------------------------------------------ BFS machinery
    def _expandable(self, i, source):
        return i == source or not (self._switched and self._kind_host[i])

    def _bfs(self, s):
        def run():
            if not (self._switched and self._kind_host[s]):
                return self._bfs_scipy(s)
            dist = [-1] * len(self._adj)
            dist[s] = 0
            q = deque([s])
            adj, host = self._adj, self._kind_host
            while q:
                u = q.popleft()
                if u != s and host[u]:
                    continue
                du = dist[u] + 1
                for v in adj[u]:
                    if dist[v] < 0:
                        dist[v] = du
                        q.append(v)
            return dist
        return self._dist.get_or(s, run)

    def _bfs_scipy(self, s):
        """BFS in C over the fabric (switched) or the whole graph (direct-connect)."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import shortest_path

        if getattr(self, "_csr", None) is None:
            rows = [u for u, a in enumerate(self._fadj) for _ in a]
            cols = [v for a in self._fadj for v in a]
            n = len(self._adj)
            self._csr = csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
        d = shortest_path(self._csr, method="D", unweighted=True, indices=s)
        d[np.isinf(d)] = -1
        return d.astype(np.int64).tolist()

    def _preds(self, dist, v, s):
        d = dist[v] - 1
        if self._switched and not self._kind_host[s]:
            return [u for u in self._fadj[v] if dist[u] == d]
        return [u for u in self._adj[v] if dist[u] == d and self._expandable(u, s)]

    def _dag(self, s, t):
        """The shortest-path DAG from s to t: (nodes by increasing distance, preds, counts).

        ``preds[v]`` lists the predecessors of v on shortest s-t paths and
        ``count[v]`` the number of shortest paths from s to v.
        """
        dist = self._bfs(s)
        if dist[t] < 0:
            raise TopologyError(f"no route from {self.topo.nodes[s]!r} to {self.topo.nodes[t]!r}")
        preds = {}
        stack = [t]
        while stack:
            v = stack.pop()
            if v == s or v in preds:
                continue
            p = preds[v] = self._preds(dist, v, s)
            stack.extend(u for u in p if u not in preds)
        order = sorted(preds, key=dist.__getitem__)
        count = {s: 1}
        for v in order:
            count[v] = sum(count[u] for u in preds[v])
        return [s] + order, preds, count

    def _count(self, s, t):
        return self._dag(s, t)[2]

    def _ecmp(self, s, t, max_paths):
        if s == t:
            return [((s,), 1.0)]
        order, preds, memo = self._dag(s, t)
        total = memo[t]
        if total > max_paths:
            raise TopologyError(
                f"{total} equal-cost paths from {self.topo.nodes[s]!r} to {self.topo.nodes[t]!r} "
                f"exceed max_paths={max_paths}; use Router.link_fractions() instead")
        out = []

        def walk(v, tail):
            if v == s:
                out.append(((s,) + tail))
                return
            for u in preds[v]:
                walk(u, (v,) + tail)
        walk(t, ())
        w = 1.0 / len(out)
        return [(p, w) for p in out]

    # ------------------------------------------------------------ dragonfly
    def _min_to_group(self, r, H):
        """Fewest-hop routes from router r to any router of group H over one direct global link."""
        G = self._group[r]
        best, cands = None, []
        for x, y in self._glinks.get((G, H), ()):
            p = (r, y) if x == r else (r, x, y)
            if best is None or len(p) < best:
                best, cands = len(p), [p]
            elif len(p) == best:
                cands.append(p)
        return cands

    def _minimal(self, r, s):
        if r == s:
            return [((r,), 1.0)]
        G, H = self._group[r], self._group[s]
        if G == H:
            return [((r, s), 1.0)]
        full = []
        for p in self._min_to_group(r, H):
            full.append(p if p[-1] == s else p + (s,))
        if not full:                         # groups not directly joined: shortest paths
            return self._ecmp(r, s, 1_000_000)
        best = min(len(p) for p in full)
        full = [p for p in full if len(p) == best]
        w = 1.0 / len(full)
        return [(p, w) for p in full]

    def _valiant(self, r, s):
        G, H = self._group[r], self._group[s]
        if G == H or self._ngroups <= 2:
            return self._minimal(r, s)
        inter = [I for I in range(self._ngroups) if I not in (G, H)]
        out = {}
        for I in inter:
            legs = self._min_to_group(r, I)
            for leg in legs:
                for tail, wt in self._minimal(leg[-1], s):
                    p = leg + tail[1:]
                    out[p] = out.get(p, 0.0) + wt / len(legs) / len(inter)
        return list(out.items())

    # ------------------------------------------------------------ pairs
    def _fabric_routes(self, a, b, max_paths):
        key = (a, b)
        routes = self._pairs.get(key)
        if routes is not None:
            self._pairs.move_to_end(key)
            if len(routes) <= max_paths:
                return routes
        if self.mode == "ecmp":
            routes = self._ecmp(a, b, max_paths)
        elif self.mode == "minimal":
            routes = self._minimal(a, b)
        else:
            routes = self._valiant(a, b)
        self._pairs[key] = routes
        if len(self._pairs) > self._pairs.size:
            self._pairs.popitem(last=False)
        return routes

    def _host_index(self, h):
        i = self.topo.node_index.get(h)
        if i is None or not self._kind_host[i]:
            raise TopologyError(f"{h!r} is not a host of {self.topo.name}")
        return i

    def _routes_idx(self, src, dst, max_paths=100_000):
        s, t = self._host_index(src), self._host_index(dst)
        if s == t:
            return [((s,), 1.0)]
        a, b = self._att.get(src), self._att.get(dst)
        if a is not None and b is not None:
            if a == b:
                return [((s, a, t), 1.0)]
            return [((s,) + p + (t,), w) for p, w in self._fabric_routes(a, b, max_paths)]
        if self.mode != "ecmp":
            raise TopologyError(f"{self.mode} routing needs hosts with one router link")
        return self._fabric_routes(s, t, max_paths)

    # ------------------------------------------------------------ public API
    def routes(self, src, dst, max_paths=100_000):
        """``[(path, weight), ...]``: each path a list of node ids, weights summing to 1."""
        nodes = self.topo.nodes
        return [([nodes[i] for i in p], w) for p, w in self._routes_idx(src, dst, max_paths)]

    def paths(self, src, dst, max_paths=100_000):
        """The routes from host ``src`` to host ``dst`` as lists of node ids.

        Raises TopologyError if there are more than ``max_paths`` (use
        :meth:`link_fractions`, which never enumerates paths).
        """
        return [p for p, _ in self.routes(src, dst, max_paths)]

    def num_paths(self, src, dst) -> int:
        """Number of routes (ECMP: counted without enumerating them)."""
        if self.mode == "ecmp":
            s, t = self._host_index(src), self._host_index(dst)
            if s == t:
                return 1
            a, b = self._att.get(src), self._att.get(dst)
            if a is not None and b is not None:
                s, t = a, b
            if s == t:
                return 1
            return self._count(s, t)[t]
        return len(self._routes_idx(src, dst))

    def _link_ids(self, p):
        lid = self.topo.link_id
        return np.fromiter((lid[(p[i], p[i + 1])] for i in range(len(p) - 1)), dtype=np.int64,
                           count=len(p) - 1)

    def link_paths(self, src, dst, max_paths=100_000):
        """``(paths, weights)``: each path an int64 array of directed link ids
        (see ``topo.links``), ``weights`` a float array summing to 1."""
        r = self._routes_idx(src, dst, max_paths)
        return [self._link_ids(p) for p, _ in r], np.array([w for _, w in r])

    def link_fractions(self, src, dst):
        """``(link_ids, fractions)``: the share of a src -> dst flow on each directed link.

        Each link appears once. For ECMP computed from path counts on the
        shortest-path DAG, so it is cheap even when there are millions of
        equal-cost paths (tori), and cached per switch pair as two read-only
        arrays (about 16 bytes per link on the routes).
        """
        s, t = self._host_index(src), self._host_index(dst)
        if s == t:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        if self.mode != "ecmp":
            acc = {}
            for p, w in self._routes_idx(src, dst):
                for l in self._link_ids(p).tolist():
                    acc[l] = acc.get(l, 0.0) + w
            ids = np.array(sorted(acc), dtype=np.int64)
            return ids, np.array([acc[i] for i in ids.tolist()])
        lid = self.topo.link_id
        a, b = self._att.get(src), self._att.get(dst)
        if a is not None and b is not None:
            ends = np.array([lid[(s, a)], lid[(b, t)]], dtype=np.int64)
            s0, t0 = a, b
        else:
            ends = np.zeros(0, dtype=np.int64)
            s0, t0 = s, t
        if s0 == t0:
            return ends, np.ones(len(ends))
        ids, frac = self._pairs.get_or(("fractions", s0, t0), lambda: self._dag_fractions(s0, t0))
        return np.concatenate([ends[:1], ids, ends[1:]]), \
            np.concatenate([np.ones(min(1, len(ends))), frac, np.ones(len(ends[1:]))])

    def incidence(self, src, dst):
        """Flows x links, sparse: for flows ``src[i] -> dst[i]`` (host *indices* into
        ``topo.hosts``, e.g. ``placement.host_index[ranks]``) return three arrays
        ``(flow, link, fraction)``: flow ``flow[j]`` puts ``fraction[j]`` of its bytes on
        directed link ``link[j]``. Flows with ``src == dst`` have no entry.

        This is :meth:`link_fractions` for many pairs at once (same caches); the
        result feeds a vectorised max-min or a ``scipy.sparse`` matrix directly.
        """
        src = np.asarray(src, dtype=np.int64).ravel()
        dst = np.asarray(dst, dtype=np.int64).ravel()
        if src.shape != dst.shape:
            raise TopologyError(f"incidence: {len(src)} sources but {len(dst)} destinations")
        hosts = self.topo.hosts
        H = len(hosts)
        if len(src) and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= H):
            raise TopologyError(f"incidence: host indices must be in [0, {H})")
        flows, links, fracs = [], [], []
        for i, (a, b) in enumerate(zip(src.tolist(), dst.tolist())):
            if a == b:
                continue
            ids, f = self.link_fractions(hosts[a], hosts[b])
            flows.append(np.full(len(ids), i, dtype=np.int64))
            links.append(ids)
            fracs.append(f)
        if not flows:
            return (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
        return np.concatenate(flows), np.concatenate(links), np.concatenate(fracs)

    def _dag_fractions(self, s, t):
        order, preds, count = self._dag(s, t)
        total = count[t]
        back = {t: 1}
        lid = self.topo.link_id
        ids, frac = [], []
        for v in reversed(order):
            if v == s:
                continue
            bv = back.get(v, 0)
            for u in preds[v]:
                back[u] = back.get(u, 0) + bv
                ids.append(lid[(u, v)])
                frac.append(count[u] * bv / total)
        ids = np.array(ids[::-1], dtype=np.int64)
        frac = np.array(frac[::-1], dtype=np.float64)
        ids.flags.writeable = False
        frac.flags.writeable = False
        return ids, frac

    def hops(self, src, dst) -> int:
        """Links on the shortest route (in this mode) from src to dst."""
        return min(len(p) - 1 for p, _ in self._routes_idx(src, dst))

    def latency(self, src, dst) -> float:
        """Weighted mean route latency: link latencies plus the ``latency`` of
        every node traversed between the endpoints."""
        lat = self.topo.links.latency
        nl = self.topo.node_latency
        tot = 0.0
        for p, w in self._routes_idx(src, dst):
            ids = self._link_ids(p)
            tot += w * (float(lat[ids].sum()) + float(nl[list(p[1:-1])].sum()))
        return tot
