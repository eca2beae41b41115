"""The routing layer of the model: which directed links a flow uses, and how much of it.

A :class:`Network` wraps a :class:`~collectives.topology.Topology` (or a
:class:`VirtualFullMesh`, for direct-connect meshes too large to build as a
graph) and answers one vectorised question: for arrays of source and
destination hosts, the *fractional incidence* of each flow on the directed
links, and its mean path latency.

The incidence is kept in factored form, so that it never has a row of a few
hundred links per flow:

* ``own``: the links private to one flow's endpoints (a host's up- and
  downlink, weight 1), at most two per flow;
* ``pair``: the index of the flow's (source switch, destination switch) pair,
  or -1; each pair has one row of fabric fractions, shared by every flow
  between the two switches (cached across steps).

Routing modes (``routing=``):

``"ecmp"`` (default except for dragonflies)
    Every shortest path (hop count; hosts never forward in a switched network),
    the flow spread evenly over them. Fractions come from path counting on the
    shortest-path DAG: the share of edge ``u -> v`` is
    ``sigma_s(u) * sigma_t(v) / sigma_s(t)`` where ``sigma_x(y)`` counts the
    shortest paths between x and y. Counts for many sources are computed at
    once as sparse-matrix level sweeps; no path is ever enumerated.
``"minimal"``, ``"valiant"`` (dragonfly; ``"minimal"`` is the dragonfly
    default)
    Kim et al. 2008. With one global link per pair of groups both are routed
    in closed form, vectorised over flows (Valiant: spread evenly over every
    intermediate group, its rows shared per source router and destination
    group, per group pair and per source group and destination router);
    otherwise fractions come from
    :class:`collectives.topology.routing.Router` once per router pair.
``"adaptive"`` (dragonfly; other families fall back to ``"ecmp"``)
    UGAL-style (Singh 2005; Kim et al. 2008, section 4.2), decided from the
    flows of the batch itself: each flow's minimal route loads its global
    link; a flow between two groups goes Valiant when the load the *other*
    flows put on its minimal global link, in seconds (bytes, or flows when no
    weights are given, over bandwidth), exceeds twice the mean load on the
    global links its Valiant route would use -- the factor 2 being Valiant's
    extra global hop. Everything else stays minimal. One pass, no iteration:
    the decision uses the load of minimal routing, as a router sees its
    queues before it commits.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from ..errors import ModelError

__all__ = ["Network", "VirtualFullMesh", "network_for", "Routed", "ROUTINGS"]

#: Routing modes the model accepts (``"shortest"`` is an alias of ``"ecmp"``).
ROUTINGS = ("ecmp", "minimal", "valiant", "adaptive")


class VirtualFullMesh:
    """A full mesh of ``n`` hosts (``n(n-1)/2`` links) that is never built as a graph.

    ``topology.full_mesh(10000)`` would need 50 million networkx edges; the
    model only needs to know that every host pair has its own link. Directed
    link ``s -> d`` has id ``s * n + d``.
    """

    family = "full-mesh"
    switched = False

    def __init__(self, n, link_bandwidth=12.5e9, link_latency=500e-9):
        self.n = int(n)
        if self.n < 2:
            raise ModelError(f"a full mesh needs at least 2 hosts, got {n!r}")
        self.link_bandwidth = float(link_bandwidth)
        self.link_latency = float(link_latency)
        self.name = f"full-mesh:n={self.n}"
        self.hosts = [f"h{i}" for i in range(self.n)] if self.n <= 100_000 else None
        self.switches = []

    @property
    def num_hosts(self):
        return self.n

    def __len__(self):
        return self.n

    def __repr__(self):
        return f"<VirtualFullMesh {self.n} hosts, {self.n * (self.n - 1) // 2} links>"

    def group_index(self, level=None):
        return np.arange(self.n, dtype=np.int64)

    def describe(self, **_):
        """Closed-form metrics (Dally & Towles 2004): see ``Topology.describe()``."""
        n, bw = self.n, self.link_bandwidth
        links = n * (n - 1) // 2
        return {"name": self.name, "family": "full-mesh", "hosts": n, "switches": 0,
                "links": links, "cables": links, "ports": 2 * links,
                "ports_per_host": n - 1, "diameter": 1, "mean_distance": 1.0,
                "bisection_bandwidth": (n // 2) * ((n + 1) // 2) * bw,
                "injection_bandwidth": (n - 1) * bw}


class Routed:
    """The routing of one batch of flows (see the module docstring).

    Attributes
    ----------
    own_flow, own_link, own_w : arrays
        (flow, link, fraction) entries private to single flows (host links,
        the links of a dragonfly minimal route).
    terms : list of (rows, matrix)
        Shared rows: flow f also loads row ``rows[f]`` of ``matrix`` (a CSR
        matrix rows x network links of fractions) unless ``rows[f] < 0``.
    latency : float64 array, one per flow
        Mean path latency (links, switch traversals), without the per-message overhead.
    local : bool array
        Flows whose ends are on one host (no link at all).
    """

    __slots__ = ("own_flow", "own_link", "own_w", "terms", "latency", "local")

    def __init__(self, own_flow, own_link, own_w, terms, latency, local):
        self.own_flow = own_flow
        self.own_link = own_link
        self.own_w = own_w
        self.terms = terms
        self.latency = latency
        self.local = local


def _csr_rows(rows_links, rows_w, ncols):
    """CSR matrix from equal-length rows given as 2-D arrays (rows x width)."""
    r, w = rows_links.shape
    indptr = np.arange(r + 1, dtype=np.int64) * w
    return sp.csr_matrix((rows_w.reshape(-1), rows_links.reshape(-1), indptr), shape=(r, ncols))


def network_for(topology, routing=None, switch_latency=0.0):
    """The (cached) :class:`Network` of a topology for a routing mode and switch latency."""
    if isinstance(topology, Network):
        return topology
    key = ("model.network", routing, float(switch_latency))
    cache = getattr(topology, "_cache", None)
    if cache is not None and key in cache:
        return cache[key]
    if isinstance(topology, VirtualFullMesh):
        net = _MeshNetwork(topology, switch_latency)
    else:
        net = Network(topology, routing, switch_latency)
    if cache is not None:
        cache[key] = net
    else:
        try:
            topology._model_net = net
        except AttributeError:
            pass
    return net


class Network:
    """Routing view of a :class:`~collectives.topology.Topology` for the model.

    Parameters
    ----------
    topology : Topology
    routing : {"ecmp", "minimal", "valiant"}, optional
        Default: ``"minimal"`` for dragonflies, ``"ecmp"`` otherwise.
    switch_latency : float
        Seconds added per traversal of a forwarding node, on top of a node's
        own ``latency`` attribute.

    Fat-trees and leaf-spines (ECMP) and dragonflies with one global link per
    group pair (minimal) are routed in closed form, vectorised over flows;
    every other case by shortest-path counting per switch pair (cached).
    """

    def __init__(self, topology, routing=None, switch_latency=0.0):
        from ..topology.routing import default_mode

        self.topo = topology
        mode = routing or default_mode(topology)
        if mode == "shortest":
            mode = "ecmp"
        if mode not in ROUTINGS:
            raise ModelError(f"unknown routing {routing!r}: expected one of {', '.join(ROUTINGS)}")
        if mode in ("minimal", "valiant", "adaptive") and topology.family != "dragonfly":
            if mode == "valiant":
                raise ModelError(f"routing='valiant' needs a dragonfly; {topology.name} is a "
                                 f"{topology.family or 'loaded graph'} (use 'ecmp')")
            mode = "ecmp"
        self.mode = mode
        self.switch_latency = float(switch_latency)
        links = topology.links
        self.bandwidth = np.asarray(links.bandwidth, dtype=np.float64)
        self.link_latency = np.asarray(links.latency, dtype=np.float64)
        self.link_src = links.src
        self.link_dst = links.dst
        self.nlinks = len(links)
        nodes = topology.nodes
        self.nnodes = len(nodes)
        G = topology.graph
        kinds = np.array([G.nodes[n]["kind"] == "host" for n in nodes])
        self.is_host = kinds
        self.node_cost = np.asarray(topology.node_latency, dtype=np.float64) + self.switch_latency
        idx = topology.node_index
        H = len(topology.hosts)
        self.host_node = np.array([idx[h] for h in topology.hosts], dtype=np.int64)
        # endpoint of each host in the fabric: its switch when single-homed (switched nets)
        self.endpoint = self.host_node.copy()
        self.up = np.full(H, -1, dtype=np.int64)
        self.down = np.full(H, -1, dtype=np.int64)
        if topology.switched:
            lid = topology.link_id
            for i, h in enumerate(topology.hosts):
                a = topology.attachment(h)
                if a is not None:
                    ia = idx[a]
                    self.endpoint[i] = ia
                    self.up[i] = lid[(self.host_node[i], ia)]
                    self.down[i] = lid[(ia, self.host_node[i])]
        self.single_homed = self.up >= 0
        # forwarding nodes: every node of a direct network; non-hosts of a switched one
        self.forwards = ~kinds if topology.switched else np.ones(self.nnodes, dtype=bool)
        self._pairs = {}          # (a, b) -> (link ids, fractions, latency)
        self._sigma = {}          # source node -> (dist int array, sigma float array)
        self._adj = None
        self.method = "pair counting"
        self._fast = None
        if self.single_homed.all() and topology.switched:
            try:
                if mode == "ecmp" and topology.family in ("fat-tree", "leaf-spine"):
                    self._fast = _TreeRoutes(self)
                    self.method = "closed form (folded Clos)"
                elif mode == "ecmp" and topology.family in ("rail-optimized", "rail-only"):
                    self._fast = _RailRoutes(self)
                    self.method = f"closed form ({topology.family})"
                elif mode == "minimal" and topology.family == "dragonfly":
                    self._fast = _DragonflyMinimal(self)
                    self.method = "closed form (dragonfly minimal)"
                elif mode in ("valiant", "adaptive") and topology.family == "dragonfly":
                    minimal = _DragonflyMinimal(self)
                    valiant = _DragonflyValiant(minimal)
                    self._fast = valiant if mode == "valiant" else _DragonflyAdaptive(minimal, valiant)
                    self.method = f"closed form (dragonfly {mode})"
            except _NotRegular:
                self._fast = None
        if self._fast is None and mode == "ecmp" and topology.family in ("torus", "scaleup-torus"):
            try:
                self._fast = _TorusRoutes(self)
                self.method = "pair counting, once per torus offset"
            except _NotRegular:
                self._fast = None
        self._generic_adaptive = None
        if mode == "adaptive" and self._fast is None:
            # several global links per group pair: decide on the router's per-pair routes
            self._generic_adaptive = (Network(topology, "minimal", switch_latency),
                                      Network(topology, "valiant", switch_latency))

    # ------------------------------------------------------------------ names
    def link_names(self, ids):
        """``[(u, v), ...]`` node ids of directed links."""
        nodes = self.topo.nodes
        ids = np.asarray(ids, dtype=np.int64)
        return [(nodes[int(self.link_src[i])], nodes[int(self.link_dst[i])]) for i in ids]

    def capacity(self, ids):
        return self.bandwidth[ids]

    # ------------------------------------------------------------------ routing
    def route(self, src_hosts, dst_hosts, weights=None) -> Routed:
        """Route flows between host indices (positions in ``topology.hosts``).

        ``weights`` (bytes per flow, optional) is read by ``"adaptive"``
        routing only, which decides from the load of the batch; without it
        every flow counts one.
        """
        s = np.asarray(src_hosts, dtype=np.int64)
        d = np.asarray(dst_hosts, dtype=np.int64)
        if self._generic_adaptive is not None:
            return self._adaptive_generic(s, d, weights)
        nf = len(s)
        local = s == d
        ea, eb = self.endpoint[s], self.endpoint[d]
        sh = self.single_homed[s] & self.single_homed[d] & ~local
        # own links: uplink of the source, downlink of the destination
        f_idx = np.arange(nf, dtype=np.int64)
        own_flow = [f_idx[sh], f_idx[sh]]
        own_link = [self.up[s[sh]], self.down[d[sh]]]
        lat = np.zeros(nf)
        lat[sh] = (self.link_latency[self.up[s[sh]]] + self.link_latency[self.down[d[sh]]]
                   + self.node_cost[ea[sh]])
        needs_pair = ~local & (ea != eb)
        lat[needs_pair & sh] += self.node_cost[eb[needs_pair & sh]]
        terms = []
        if needs_pair.any():
            fi = np.nonzero(needs_pair)[0]
            if self._fast is not None:
                if isinstance(self._fast, _DragonflyAdaptive):
                    w = np.ones(len(fi)) if weights is None else \
                        np.asarray(weights, dtype=np.float64)[fi]
                    of, ol, ow, tt, pl = self._fast.route(fi, ea[fi], eb[fi], nf, w)
                else:
                    of, ol, ow, tt, pl = self._fast.route(fi, ea[fi], eb[fi], nf)
                own_flow.append(of)
                own_link.append(ol)
                terms += tt
                lat[fi] += pl
            else:
                keys = ea[fi] * self.nnodes + eb[fi]
                ukeys, inv = np.unique(keys, return_inverse=True)
                pair = np.full(nf, -1, dtype=np.int64)
                pair[fi] = inv
                rows = self._pair_rows(ukeys // self.nnodes, ukeys % self.nnodes)
                indptr = np.zeros(len(ukeys) + 1, dtype=np.int64)
                indptr[1:] = np.cumsum([len(r[0]) for r in rows])
                cols = np.concatenate([r[0] for r in rows])
                vals = np.concatenate([r[1] for r in rows])
                plat = np.array([r[2] for r in rows])
                lat[fi] += plat[inv]
                terms.append((pair, sp.csr_matrix((vals, cols, indptr),
                                                  shape=(len(ukeys), self.nlinks))))
        own_flow = np.concatenate(own_flow)
        own_link = np.concatenate(own_link)
        return Routed(own_flow, own_link, np.ones(len(own_flow)), terms, lat, local)

    def _global_mask(self):
        m = getattr(self, "_gmask", None)
        if m is None:
            m = np.zeros(self.nlinks, dtype=bool)
            for e, (_, _, k) in enumerate(self.topo.graph.edges(data="kind")):
                if k == "global":
                    m[2 * e] = m[2 * e + 1] = True
            self._gmask = m
        return m

    def _adaptive_generic(self, s, d, weights, decide_only=False):
        """Adaptive routing from the per-pair minimal and Valiant routes (any dragonfly)."""
        from .maxmin import incidence

        net_m, net_v = self._generic_adaptive
        rm, rv = net_m.route(s, d), net_v.route(s, d)
        w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64)
        gmask = self._global_mask()
        inc_m = incidence(rm, self.capacity)
        inc_v = incidence(rv, self.capacity)
        load = np.zeros(self.nlinks)
        load[inc_m.links] = inc_m.link_sum(w) / self.bandwidth[inc_m.links]
        load[~gmask] = 0.0

        def mean_on_global(inc, y):
            g = gmask[inc.links].astype(np.float64)
            share = inc.flow_sum(g)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(share > 0, inc.flow_sum(y[inc.links] * g) / share, 0.0), share > 0

        q_min, has_global = mean_on_global(inc_m, load)
        own, _ = mean_on_global(inc_m, 1.0 / self.bandwidth)
        q_val, _ = mean_on_global(inc_v, load)
        go = has_global & (q_min - w * own > 2.0 * q_val * (1 + 1e-12))
        if decide_only:
            return go
        keep_m = ~go[rm.own_flow]
        keep_v = go[rv.own_flow]
        terms = []
        for routed, sel in ((rm, ~go), (rv, go)):
            for rows, mat in routed.terms:
                rows = np.where(sel, rows, -1)
                terms.append((rows, mat))
        return Routed(np.concatenate([rm.own_flow[keep_m], rv.own_flow[keep_v]]),
                      np.concatenate([rm.own_link[keep_m], rv.own_link[keep_v]]),
                      np.concatenate([rm.own_w[keep_m], rv.own_w[keep_v]]), terms,
                      np.where(go, rv.latency, rm.latency), rm.local)

    def decisions(self, src_hosts, dst_hosts, weights=None) -> np.ndarray:
        """Adaptive routing only: a bool per flow, True where the flow goes Valiant."""
        if self._generic_adaptive is not None:
            return self._adaptive_generic(np.asarray(src_hosts, dtype=np.int64),
                                          np.asarray(dst_hosts, dtype=np.int64), weights, True)
        if not isinstance(self._fast, _DragonflyAdaptive):
            raise ModelError(f"decisions() needs routing='adaptive', this network routes {self.mode}")
        s = np.asarray(src_hosts, dtype=np.int64)
        d = np.asarray(dst_hosts, dtype=np.int64)
        ea, eb = self.endpoint[s], self.endpoint[d]
        w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64)
        out = np.zeros(len(s), dtype=bool)
        fi = np.nonzero(ea != eb)[0]
        out[fi] = self._fast.choose(ea[fi], eb[fi], w[fi])
        return out

    def _pair_rows(self, A, B):
        cache = self._pairs
        missing = [(a, b) for a, b in zip(A.tolist(), B.tolist()) if (a, b) not in cache]
        if missing:
            if self.mode == "ecmp":
                self._ecmp_pairs(missing)
            else:
                for a, b in missing:
                    cache[(a, b)] = self._router_pair(a, b)
        return [cache[(a, b)] for a, b in zip(A.tolist(), B.tolist())]

    def pair_fractions(self, a, b):
        """``(link ids, fractions, latency)`` between fabric endpoints a, b (node indices),
        by the generic method (what the closed forms are tested against)."""
        return self._pair_rows(np.array([a]), np.array([b]))[0]

    # ---------------------------------------------------------- ECMP by counting
    def _adjacency(self):
        if self._adj is None:
            n = self.nnodes
            src, dst = self.link_src, self.link_dst
            self._adj = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
            # fabric edges only: hosts neither forward nor are endpoints of fabric pairs
            # when every host is single-homed; otherwise a host source may send (level 1)
            fwd = self.forwards[src]
            self._adj_fwd = sp.csr_matrix((np.ones(int(fwd.sum())), (src[fwd], dst[fwd])),
                                          shape=(n, n))
            keep = ~(self.is_host[src] | self.is_host[dst]) if self.topo.switched and \
                self.single_homed.all() else np.ones(len(src), dtype=bool)
            self._fab = np.nonzero(keep)[0]
        return self._adj, self._adj_fwd

    def _sweep(self, sources):
        """Distances and shortest-path counts from each source (rows), all at once."""
        adj, adj_fwd = self._adjacency()
        n = self.nnodes
        m = len(sources)
        dist = np.full((m, n), -1, dtype=np.int32)
        sigma = np.zeros((m, n))
        rows = np.arange(m)
        dist[rows, sources] = 0
        sigma[rows, sources] = 1.0
        frontier = sp.csr_matrix((np.ones(m), (rows, sources)), shape=(m, n))
        level = 0
        while frontier.nnz:
            level += 1
            step = frontier @ (adj if level == 1 else adj_fwd)
            step = step.tocoo()
            new = dist[step.row, step.col] < 0
            r, c, v = step.row[new], step.col[new], step.data[new]
            if len(r) == 0:
                break
            dist[r, c] = level
            sigma[r, c] = v
            fw = self.forwards[c]
            frontier = sp.csr_matrix((v[fw], (r[fw], c[fw])), shape=(m, n))
        return dist, sigma

    def _ecmp_pairs(self, pairs):
        cache = self._pairs
        ends = sorted({x for p in pairs for x in p} - set(self._sigma))
        if len(ends) > 1024:
            # one dense row per endpoint: price the pairs in batches of endpoints so that
            # a study with tens of thousands of endpoints keeps ~1024 rows at a time
            todo = sorted(pairs)
            batch, seen = [], set()
            for pr in todo:
                new = {x for x in pr if x not in seen}
                if len(seen) + len(new) > 1024 and batch:
                    self._sigma.clear()
                    self._ecmp_pairs(batch)
                    batch, seen = [], set()
                    new = set(pr)
                batch.append(pr)
                seen |= new
            if batch:
                self._sigma.clear()
                self._ecmp_pairs(batch)
            return
        for i in range(0, len(ends), 256):
            chunk = np.array(ends[i:i + 256], dtype=np.int64)
            dist, sigma = self._sweep(chunk)
            for j, x in enumerate(chunk.tolist()):
                self._sigma[x] = (dist[j], sigma[j])
        fab = self._fab
        eu, ev = self.link_src[fab], self.link_dst[fab]
        ok_u_fwd = self.forwards[eu]
        ok_v_fwd = self.forwards[ev]
        lat_e = self.link_latency[fab]
        cost_v = self.node_cost[ev]
        for a, b in pairs:
            da, sa = self._sigma[a]
            db, sb = self._sigma[b]
            D = da[b]
            if D < 0:
                raise ModelError(f"no route from {self.topo.nodes[a]!r} to {self.topo.nodes[b]!r}")
            dau = da[eu]
            dbv = db[ev]
            on = (dau + 1 + dbv == D) & (dau >= 0) & (dbv >= 0)
            on &= (ok_u_fwd | (eu == a)) & (ok_v_fwd | (ev == b))
            ids = np.nonzero(on)[0]
            frac = sa[eu[ids]] * sb[ev[ids]] / sa[b]
            inner = ev[ids] != b
            lat = float(np.dot(frac, lat_e[ids]) + np.dot(frac[inner], cost_v[ids][inner]))
            cache[(a, b)] = (fab[ids].astype(np.int64), frac, lat)
        # the sigma cache holds one dense row per endpoint: bound it
        if len(self._sigma) > 4096:
            self._sigma.clear()

    # ---------------------------------------------------------- dragonfly modes
    def _router_pair(self, a, b):
        router = self.topo.router(self.mode)
        nodes = self.topo.nodes
        # a representative host on each router, asked through the public API
        rep = self._representatives()
        ha, hb = rep.get(a), rep.get(b)
        if ha is None or hb is None:
            raise ModelError(f"{self.mode} routing: no host on {nodes[a]!r} or {nodes[b]!r}")
        ids, frac = router.link_fractions(self.topo.hosts[ha], self.topo.hosts[hb])
        keep = ~self.is_host[self.link_src[ids]] & ~self.is_host[self.link_dst[ids]]
        ids, frac = ids[keep], frac[keep]
        ev = self.link_dst[ids]
        inner = ev != b
        lat = float(np.dot(frac, self.link_latency[ids]) + np.dot(frac[inner], self.node_cost[ev[inner]]))
        return ids.astype(np.int64), np.asarray(frac, dtype=np.float64), lat

    def _representatives(self):
        rep = getattr(self, "_rep", None)
        if rep is None:
            rep = {}
            for i in range(len(self.host_node) - 1, -1, -1):
                if self.single_homed[i]:
                    rep[int(self.endpoint[i])] = i
            self._rep = rep
        return rep


class _NotRegular(Exception):
    pass


class _TreeRoutes:
    """ECMP on a folded Clos (leaf-spine, k-ary fat-tree), in closed form.

    A flow between two edge (leaf) switches climbs to the lowest common tier
    and comes down: from edge ``a`` it spreads evenly over a's uplinks (the
    "up" row of a), in a fat-tree between pods it spreads again evenly over
    every core switch reachable from the source pod's aggregation switches
    (the "core" row of the pod pair), and it comes down evenly over the uplinks
    of ``b`` (the "down" row of b). This is what shortest-path counting gives
    on these graphs (the tests check it against the generic method).
    """

    def __init__(self, net):
        topo = net.topo
        G = topo.graph
        idx = topo.node_index
        nodes = topo.nodes
        lid = topo.link_id
        tiers = {n: G.nodes[n].get("tier") for n in topo.switches}
        lower = "edge" if topo.family == "fat-tree" else "leaf"
        upper = "aggregation" if topo.family == "fat-tree" else "spine"
        edges = [n for n in topo.switches if tiers[n] == lower]
        if not set(net.endpoint.tolist()) <= {idx[e] for e in edges}:
            raise _NotRegular          # hosts behind NICs (a multi-plane fat-tree)
        self.edge_no = np.full(net.nnodes, -1, dtype=np.int64)
        for i, e in enumerate(edges):
            self.edge_no[idx[e]] = i
        ups = [[m for m in G.adj[e] if tiers.get(m) == upper] for e in edges]
        u = len(ups[0])
        if u == 0 or any(len(x) != u for x in ups):
            raise _NotRegular
        up_links = np.array([[lid[(idx[e], idx[m])] for m in x] for e, x in zip(edges, ups)])
        down_links = np.array([[lid[(idx[m], idx[e])] for m in x] for e, x in zip(edges, ups)])
        L = net.nlinks
        w = np.full(up_links.shape, 1.0 / u)
        self.up = _csr_rows(up_links, w, L)
        self.down = _csr_rows(down_links, w, L)
        lat, cost = net.link_latency, net.node_cost
        up_nodes = np.array([[idx[m] for m in x] for x in ups])
        # mean latency edge -> upper tier -> edge (excluding the two edge switches)
        self.up_lat = lat[up_links].mean(axis=1) + cost[up_nodes].mean(axis=1)
        self.down_lat = lat[down_links].mean(axis=1)
        self.fat = topo.family == "fat-tree"
        self.pod = np.full(net.nnodes, -1, dtype=np.int64)
        if self.fat:
            for e in edges:
                self.pod[idx[e]] = G.nodes[e]["pod"]
            self.npods = int(self.pod.max()) + 1
            # aggregation switches of each pod and the cores above each of them
            aggs = {}
            for m in topo.switches:
                if tiers[m] == upper:
                    aggs.setdefault(G.nodes[m]["pod"], []).append(m)
            pods = sorted(aggs)
            if pods != list(range(self.npods)):
                raise _NotRegular
            cores = {a: sorted((c for c in G.adj[a] if tiers.get(c) == "core"), key=str)
                     for p in pods for a in aggs[p]}
            per = {len(v) for v in cores.values()}
            if len(per) != 1:
                raise _NotRegular
            c = per.pop()
            # aggregation "j" of each pod: the one that reaches the same cores
            order = {}
            for p in pods:
                for a in aggs[p]:
                    order.setdefault(tuple(cores[a]), []).append((p, a))
            if any(len(v) != self.npods for v in order.values()):
                raise _NotRegular
            self.groups = list(order.values())            # per core group: [(pod, agg)]
            nu = len(self.groups)
            self.agg_core = np.zeros((self.npods, nu, c), dtype=np.int64)
            self.core_agg = np.zeros((self.npods, nu, c), dtype=np.int64)
            core_cost = np.zeros((nu, c))
            for j, (key, members) in enumerate(order.items()):
                for p, a in members:
                    for i, cc in enumerate(key):
                        self.agg_core[p, j, i] = lid[(idx[a], idx[cc])]
                        self.core_agg[p, j, i] = lid[(idx[cc], idx[a])]
                        core_cost[j, i] = cost[idx[cc]]
            self.core_w = 1.0 / (nu * c)
            agg_nodes = [idx[a] for p in pods for a in aggs[p]]
            # aggregation -> core -> aggregation: two links, the core and the far aggregation
            self.inter_lat = (lat[self.agg_core].mean() + lat[self.core_agg].mean()
                              + core_cost.mean() + cost[agg_nodes].mean())
            self._core_rows = {}
        self.L = L
        self.lat = lat
        self.cost = cost

    def route(self, fi, ea, eb, nf):
        """For flows fi between edge switches ea != eb: (own..., terms, latency)."""
        a_no, b_no = self.edge_no[ea], self.edge_no[eb]
        if (a_no < 0).any() or (b_no < 0).any():
            raise ModelError("closed-form tree routing: a host hangs off a non-edge switch")
        rows_up = np.full(nf, -1, dtype=np.int64)
        rows_dn = np.full(nf, -1, dtype=np.int64)
        rows_up[fi] = a_no
        rows_dn[fi] = b_no
        lat = self.up_lat[a_no] + self.down_lat[b_no]
        terms = [(rows_up, self.up), (rows_dn, self.down)]
        if self.fat:
            pa, pb = self.pod[ea], self.pod[eb]
            inter = pa != pb
            if inter.any():
                key = pa[inter] * self.npods + pb[inter]
                ukey, inv = np.unique(key, return_inverse=True)
                rows = np.full(nf, -1, dtype=np.int64)
                rows[fi[inter]] = inv
                terms.append((rows, self._core_matrix(ukey)))
                lat[inter] += self.inter_lat
        z = np.zeros(0, dtype=np.int64)
        return z, z, np.zeros(0), terms, lat

    def _core_matrix(self, ukey):
        pa, pb = ukey // self.npods, ukey % self.npods
        w = self.agg_core.shape[1] * self.agg_core.shape[2]
        up = self.agg_core[pa].reshape(len(ukey), w)
        dn = self.core_agg[pb].reshape(len(ukey), w)
        cols = np.concatenate([up, dn], axis=1)
        return _csr_rows(cols, np.full(cols.shape, self.core_w), self.L)


class _RailRoutes:
    """ECMP on rail-optimized and rail-only networks, in closed form.

    Between two node switches of one scalable unit (every pair, rail-only) a
    flow spreads evenly over the rails: node switch -> the unit's leaf (or
    rail switch) of rail r -> node switch, ``1/R`` on each. Between units it
    climbs to every spine from every rail's leaf: ``1/R`` on each NIC link,
    ``1/(R*S)`` on each leaf-spine link up and down. These are all the
    shortest paths (the tests check the rows against path counting). Rows are
    shared: one "up" row per source node, one per unit pair side, one "down"
    row per destination node.
    """

    def __init__(self, net):
        topo = net.topo
        G = topo.graph
        idx = topo.node_index
        lid = topo.link_id
        p = topo.params
        nodes, R = int(p["nodes"]), int(p["rails"])
        self.m = int(p.get("nodes_per_leaf") or nodes)
        self.node_no = np.full(net.nnodes, -1, dtype=np.int64)
        for i in range(nodes):
            self.node_no[idx[f"n{i}sw"]] = i
        if not (self.node_no[net.endpoint] >= 0).all():
            raise _NotRegular
        rail_only = topo.family == "rail-only"
        up = np.zeros((nodes, R), dtype=np.int64)
        down = np.zeros((nodes, R), dtype=np.int64)
        first = np.zeros((nodes, R), dtype=np.int64)        # the leaf (or rail switch) per rail
        for i in range(nodes):
            sw = idx[f"n{i}sw"]
            for r in range(R):
                leaf = idx[f"rail{r}" if rail_only else f"r{r}l{i // self.m}"]
                up[i, r], down[i, r], first[i, r] = lid[(sw, leaf)], lid[(leaf, sw)], leaf
        L = net.nlinks
        w = np.full(up.shape, 1.0 / R)
        self.up, self.down = _csr_rows(up, w, L), _csr_rows(down, w, L)
        lat, cost = net.link_latency, net.node_cost
        self.up_lat = lat[up].mean(axis=1) + cost[first].mean(axis=1)
        self.down_lat = lat[down].mean(axis=1)
        self.units = 1 if rail_only else -(-nodes // self.m)
        self.spine = None
        if self.units > 1:
            spines = [n for n in topo.switches if G.nodes[n].get("tier") == "spine"]
            S = len(spines)
            su = np.zeros((self.units, R * S), dtype=np.int64)
            sd = np.zeros((self.units, R * S), dtype=np.int64)
            for u in range(self.units):
                k = 0
                for r in range(R):
                    leaf = idx[f"r{r}l{u}"]
                    for sp_ in spines:
                        j = idx[sp_]
                        su[u, k], sd[u, k] = lid[(leaf, j)], lid[(j, leaf)]
                        k += 1
            ws = np.full(su.shape, 1.0 / (R * S))
            self.spine_up, self.spine_down = _csr_rows(su, ws, L), _csr_rows(sd, ws, L)
            spine_cost = np.mean([cost[idx[x]] for x in spines])
            leaf_cost = cost[first].mean()
            self.spine_lat = lat[su].mean() + spine_cost + lat[sd].mean() + leaf_cost

    def route(self, fi, ea, eb, nf):
        a, b = self.node_no[ea], self.node_no[eb]
        rows_up = np.full(nf, -1, dtype=np.int64)
        rows_dn = np.full(nf, -1, dtype=np.int64)
        rows_up[fi] = a
        rows_dn[fi] = b
        lat = self.up_lat[a] + self.down_lat[b]
        terms = [(rows_up, self.up), (rows_dn, self.down)]
        if self.units > 1:
            ua, ub = a // self.m, b // self.m
            cross = ua != ub
            if cross.any():
                r1 = np.full(nf, -1, dtype=np.int64)
                r2 = np.full(nf, -1, dtype=np.int64)
                r1[fi[cross]] = ua[cross]
                r2[fi[cross]] = ub[cross]
                terms += [(r1, self.spine_up), (r2, self.spine_down)]
                lat[cross] += self.spine_lat
        z = np.zeros(0, dtype=np.int64)
        return z, z, np.zeros(0), terms, lat


class _TorusRoutes:
    """ECMP on a torus (of hosts, or of scale-up node switches) by translation.

    A torus is vertex-transitive: the shortest-path fractions from ``a`` to
    ``b`` are those from the origin to ``b - a`` (coordinates modulo the
    dimensions), shifted by ``a``. So each distinct offset of a batch is
    priced once by path counting, and every pair with that offset gets the
    shifted row: a step of 16,384 ring neighbours costs one count, not 16,384.
    """

    def __init__(self, net):
        topo = net.topo
        G = topo.graph
        idx = topo.node_index
        dims = tuple(int(k) for k in topo.params.get("dims") or ())
        if not dims:
            raise _NotRegular
        D = len(dims)
        self.dims = np.array(dims, dtype=np.int64)
        self.coord = np.full((net.nnodes, D), -1, dtype=np.int64)
        grid = np.full(dims, -1, dtype=np.int64)
        for n, c in G.nodes(data="coord"):
            if c is not None:
                i = idx[n]
                self.coord[i] = c
                grid[tuple(c)] = i
        if (grid < 0).any() or not (self.coord[net.endpoint] >= 0).all():
            raise _NotRegular
        # every node on the torus must cost the same to cross, or shifting would change latency
        on = self.coord[:, 0] >= 0
        if np.ptp(net.node_cost[on]) > 0:
            raise _NotRegular
        self.grid = grid.reshape(-1)
        self.strides = np.array([int(np.prod(dims[d + 1:])) for d in range(D)], dtype=np.int64)
        self.origin = int(self.grid[0])
        # link_table[g, 2*d + (0: +1, 1: -1)]: the torus link leaving grid position g along d
        cu, cv = self.coord[net.link_src], self.coord[net.link_dst]
        on_torus = (cu[:, 0] >= 0) & (cv[:, 0] >= 0)
        step = (cv - cu) % self.dims
        moved = (step != 0).sum(axis=1) == 1
        on_torus &= moved
        dim = np.argmax(step != 0, axis=1)
        plus = step[np.arange(len(step)), dim] == 1
        self.code = np.where(plus, 2 * dim, 2 * dim + 1)
        self.link_table = np.full((len(self.grid), 2 * D), -1, dtype=np.int64)
        ids = np.nonzero(on_torus)[0]
        g = self._flat(cu[ids])
        self.link_table[g, self.code[ids]] = ids
        two = np.nonzero(self.dims == 2)[0]          # +1 and -1 are the same neighbour
        for d in two.tolist():
            a, b = self.link_table[:, 2 * d], self.link_table[:, 2 * d + 1]
            self.link_table[:, 2 * d] = np.where(a >= 0, a, b)
            self.link_table[:, 2 * d + 1] = np.where(b >= 0, b, a)
        self.on_torus = on_torus
        self.net = net

    def _flat(self, c):
        out = np.zeros(len(c), dtype=np.int64)
        for d in range(len(self.dims)):
            out += (c[:, d] % self.dims[d]) * self.strides[d]
        return out

    def route(self, fi, ea, eb, nf):
        net = self.net
        off = self._flat(self.coord[eb] - self.coord[ea])
        uoff, oinv = np.unique(off, return_inverse=True)
        rows0 = net._pair_rows(np.full(len(uoff), self.origin, dtype=np.int64), self.grid[uoff])
        pair = ea * len(self.grid) + off
        upair, pinv = np.unique(pair, return_inverse=True)
        src = upair // len(self.grid)
        poff = np.searchsorted(uoff, upair % len(self.grid))
        lens = np.array([len(rows0[k][0]) for k in range(len(uoff))], dtype=np.int64)
        n_per = lens[poff]
        indptr = np.zeros(len(upair) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(n_per)
        cat_ids = np.concatenate([r[0] for r in rows0]) if len(rows0) else np.zeros(0, np.int64)
        cat_w = np.concatenate([r[1] for r in rows0]) if len(rows0) else np.zeros(0)
        start = np.zeros(len(uoff) + 1, dtype=np.int64)
        start[1:] = np.cumsum(lens)
        # position of every entry in the concatenated canonical rows
        if not self.on_torus[cat_ids].all():
            raise ModelError("torus routing: a route leaves the torus links")  # pragma: no cover
        rep = np.repeat(np.arange(len(upair)), n_per)
        pos = np.repeat(start[poff] - indptr[:-1], n_per) + np.arange(indptr[-1])
        # shift each canonical link's source by the flow's source coordinates
        cu = self.coord[net.link_src[cat_ids]]
        g = np.zeros(len(pos), dtype=np.int64)
        shift = self.coord[src]
        for d in range(len(self.dims)):
            g += ((cu[:, d][pos] + shift[:, d][rep]) % self.dims[d]) * self.strides[d]
        cols = self.link_table[g, self.code[cat_ids][pos]]
        mat = sp.csr_matrix((cat_w[pos], cols, indptr), shape=(len(upair), net.nlinks))
        rows = np.full(nf, -1, dtype=np.int64)
        rows[fi] = pinv
        lat = np.array([r[2] for r in rows0])[oinv]
        z = np.zeros(0, dtype=np.int64)
        return z, z, np.zeros(0), [(rows, mat)], lat


class _DragonflyMinimal:
    """Kim et al. 2008 minimal routing in closed form, when every pair of groups
    is joined by exactly one global link: local hop to the router that owns the
    global link (if another), the global link, local hop to the destination
    router (if another). One path: every link of a flow has fraction 1."""

    def __init__(self, net):
        topo = net.topo
        G = topo.graph
        idx = topo.node_index
        lid = topo.link_id
        routers = topo.switches
        ng = int(topo.params.get("groups"))
        a = int(topo.params.get("a"))
        self.group = np.full(net.nnodes, -1, dtype=np.int64)
        self.rno = np.full(net.nnodes, -1, dtype=np.int64)
        for r in routers:
            self.group[idx[r]] = G.nodes[r]["group"]
            self.rno[idx[r]] = G.nodes[r]["router"]
        self.router_node = np.full((ng, a), -1, dtype=np.int64)
        self.router_node[self.group[self.group >= 0], self.rno[self.group >= 0]] = \
            np.nonzero(self.group >= 0)[0]
        # local link ids: local[g, i, j] = link router i -> router j of group g
        self.local = np.full((ng, a, a), -1, dtype=np.int64)
        gx = np.full((ng, ng), -1, dtype=np.int64)
        gy = np.full((ng, ng), -1, dtype=np.int64)
        gl = np.full((ng, ng), -1, dtype=np.int64)
        for u, v, d in G.edges(data=True):
            k = d.get("kind")
            iu, iv = idx[u], idx[v]
            if k == "local":
                g = self.group[iu]
                self.local[g, self.rno[iu], self.rno[iv]] = lid[(iu, iv)]
                self.local[g, self.rno[iv], self.rno[iu]] = lid[(iv, iu)]
            elif k == "global":
                g, h = self.group[iu], self.group[iv]
                if gl[g, h] >= 0:
                    raise _NotRegular          # several global links per group pair
                gx[g, h], gy[g, h], gl[g, h] = iu, iv, lid[(iu, iv)]
                gx[h, g], gy[h, g], gl[h, g] = iv, iu, lid[(iv, iu)]
        off = ~np.eye(ng, dtype=bool)
        if (gl[off] < 0).any():
            raise _NotRegular
        self.gx, self.gy, self.gl = gx, gy, gl
        self.lat = net.link_latency
        self.cost = net.node_cost
        self.bandwidth = net.bandwidth

    def route(self, fi, ea, eb, nf):
        G, H = self.group[ea], self.group[eb]
        ra, rb = self.rno[ea], self.rno[eb]
        same = G == H
        flows, links = [], []
        lat = np.zeros(len(fi))
        # inside one group: the direct local link
        l0 = self.local[G[same], ra[same], rb[same]]
        flows.append(fi[same])
        links.append(l0)
        lat[same] = self.lat[l0]
        o = ~same
        Go, Ho = G[o], H[o]
        x, y, g = self.gx[Go, Ho], self.gy[Go, Ho], self.gl[Go, Ho]
        fo = fi[o]
        lo = self.lat[g] + self.cost[y] * (y != eb[o])
        # local hop to the global link's owner
        hop1 = x != ea[o]
        l1 = self.local[Go[hop1], ra[o][hop1], self.rno[x[hop1]]]
        hop2 = y != eb[o]
        l2 = self.local[Ho[hop2], self.rno[y[hop2]], rb[o][hop2]]
        lo[hop1] += self.lat[l1] + self.cost[x[hop1]]
        lo[hop2] += self.lat[l2]
        lat[o] = lo
        flows += [fo, fo[hop1], fo[hop2]]
        links += [g, l1, l2]
        f = np.concatenate(flows)
        l = np.concatenate(links)
        return f, l, np.ones(len(f)), [], lat


class _DragonflyValiant:
    """Valiant routing (Kim et al. 2008) in closed form on a dragonfly with one
    global link per pair of groups.

    A flow from router ``ra`` (group G) to router ``rb`` (group H != G) is
    spread evenly over every intermediate group I (not G, not H): minimal to
    I, then minimal to ``rb``. Its links split into three shared rows: the
    local hops in G (depending on ``ra`` and H), the global links and the
    local hop inside I (depending on G and H), and the local hop in H
    (depending on G and ``rb``). Flows inside one group, and every flow when
    there are only two groups, stay minimal.
    """

    def __init__(self, minimal):
        self.m = minimal
        self.ng = minimal.gl.shape[0]

    def _local(self, g, x, y):
        """Local link ids x -> y (routers, node indices) in groups g, -1 where x == y."""
        m = self.m
        ids = m.local[g, m.rno[x], m.rno[y]]
        return np.where(x == y, -1, ids)

    def _rows(self, keys_a, keys_b, kind):
        """CSR rows (one per key) and the mean latency of each, for the three row kinds."""
        m, ng = self.m, self.ng
        K = len(keys_a)
        inter = np.arange(ng)[None, :].repeat(K, axis=0)                     # (K, ng): group I
        if kind == "first":               # key (ra, H): ra -> x(G, I)
            ra, H = keys_a, keys_b
            G = m.group[ra]
            ok = (inter != G[:, None]) & (inter != H[:, None])
            x = m.gx[G[:, None], inter]
            cols = [self._local(G[:, None], ra[:, None], x)]
            lat = np.where(cols[0] >= 0, m.lat[np.maximum(cols[0], 0)] + m.cost[x], 0.0)
        elif kind == "middle":            # key (G, H): global G->I, local y(G,I)->x(I,H), global I->H
            G, H = keys_a, keys_b
            ok = (inter != G[:, None]) & (inter != H[:, None])
            g1 = m.gl[G[:, None], inter]
            y1 = m.gy[G[:, None], inter]
            x2 = m.gx[inter, H[:, None]]
            loc = self._local(inter, y1, x2)
            g2 = m.gl[inter, H[:, None]]
            cols = [g1, loc, g2]
            lat = (m.lat[np.maximum(g1, 0)] + m.cost[y1]
                   + np.where(loc >= 0, m.lat[np.maximum(loc, 0)] + m.cost[x2], 0.0)
                   + m.lat[np.maximum(g2, 0)])
        else:                             # key (G, rb): y(I, H) -> rb
            G, rb = keys_a, keys_b
            H = m.group[rb]
            ok = (inter != G[:, None]) & (inter != H[:, None])
            y = m.gy[inter, H[:, None]]
            cols = [self._local(H[:, None], y, rb[:, None])]
            lat = np.where(cols[0] >= 0, m.cost[y] + m.lat[np.maximum(cols[0], 0)], 0.0)
        w = 1.0 / (ng - 2)
        lat = (lat * ok).sum(axis=1) * w
        data, indices, rowid = [], [], []
        for c in cols:
            keep = ok & (c >= 0)
            r, _ = np.nonzero(keep)
            rowid.append(r)
            indices.append(c[keep])
        rowid = np.concatenate(rowid)
        indices = np.concatenate(indices)
        mat = sp.csr_matrix((np.full(len(rowid), w), (rowid, indices)),
                            shape=(K, len(m.lat)))
        mat.sum_duplicates()
        return mat, lat

    def route(self, fi, ea, eb, nf):
        m = self.m
        G, H = m.group[ea], m.group[eb]
        same = G == H
        if self.ng <= 2 or same.all():
            return m.route(fi, ea, eb, nf)
        parts = [m.route(fi[same], ea[same], eb[same], nf)] if same.any() else []
        o = ~same
        fo, ra, rb, Go, Ho = fi[o], ea[o], eb[o], G[o], H[o]
        lat = np.zeros(len(fi))
        terms = []
        nn = len(m.group)
        for kind, a, b in (("first", ra, Ho), ("middle", Go, Ho), ("last", Go, rb)):
            ukey, inv = np.unique(a * nn + b, return_inverse=True)
            mat, rlat = self._rows(ukey // nn, ukey % nn, kind)
            rows = np.full(nf, -1, dtype=np.int64)
            rows[fo] = inv
            terms.append((rows, mat))
            lat[o] += rlat[inv]
        return _merge_routes([(same, part) for part in parts], lat, terms)


def _merge_routes(parts, lat, terms):
    """One router's answer ``(own flows, own links, own weights, terms, latency)`` from the
    answers of routers that each took the flows selected by a mask: ``parts`` is
    ``[(mask, answer)]``; ``lat`` and ``terms`` hold what the caller routed itself."""
    z = np.zeros(0, dtype=np.int64)
    own_f, own_l, own_w = [z], [z], [np.zeros(0)]
    for sel, (of, ol, ow, tt, pl) in parts:
        own_f.append(of)
        own_l.append(ol)
        own_w.append(ow)
        terms = terms + tt
        lat[sel] = pl
    return (np.concatenate(own_f), np.concatenate(own_l), np.concatenate(own_w), terms, lat)


class _DragonflyAdaptive:
    """UGAL-style choice between :class:`_DragonflyMinimal` and
    :class:`_DragonflyValiant` per flow (see the module docstring)."""

    def __init__(self, minimal, valiant):
        self.m = minimal
        self.v = valiant
        self.ng = minimal.gl.shape[0]

    def choose(self, ea, eb, w):
        """True for the flows (router endpoints ea -> eb, weights w) that go Valiant."""
        m, ng = self.m, self.ng
        G, H = m.group[ea], m.group[eb]
        inter = G != H
        out = np.zeros(len(ea), dtype=bool)
        if ng <= 2 or not inter.any():
            return out
        gl = m.gl[G[inter], H[inter]]
        bw = m.bandwidth
        load = np.bincount(gl, weights=w[inter], minlength=len(bw)) / bw        # seconds per link
        others = load[gl] - w[inter] / bw[gl]
        # mean load on the global links of the Valiant routes, per group pair
        pair = G[inter] * ng + H[inter]
        upair, inv = np.unique(pair, return_inverse=True)
        Gu, Hu = upair // ng, upair % ng
        I = np.arange(ng)[None, :]
        ok = (I != Gu[:, None]) & (I != Hu[:, None])
        g1 = m.gl[Gu[:, None], I]
        g2 = m.gl[I, Hu[:, None]]
        val = ((load[np.maximum(g1, 0)] + load[np.maximum(g2, 0)]) * ok).sum(axis=1) / (2 * (ng - 2))
        out[inter] = others > 2.0 * val[inv] * (1 + 1e-12)
        return out

    def route(self, fi, ea, eb, nf, w):
        go = self.choose(ea, eb, w)
        parts = [(sel, router.route(fi[sel], ea[sel], eb[sel], nf))
                 for sel, router in ((~go, self.m), (go, self.v)) if sel.any()]
        return _merge_routes(parts, np.zeros(len(fi)), [])


class _MeshNetwork:
    """Routing on a :class:`VirtualFullMesh`: flow s -> d uses link ``s*n + d`` alone."""

    mode = "direct"

    def __init__(self, mesh, switch_latency=0.0):
        self.topo = mesh
        self.n = mesh.n
        self.nlinks = mesh.n * mesh.n
        self.bw = mesh.link_bandwidth
        self.lat = mesh.link_latency

    def capacity(self, ids):
        return np.full(len(ids), self.bw)

    def link_names(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        return [(f"h{i // self.n}", f"h{i % self.n}") for i in ids.tolist()]

    def route(self, src_hosts, dst_hosts) -> Routed:
        s = np.asarray(src_hosts, dtype=np.int64)
        d = np.asarray(dst_hosts, dtype=np.int64)
        local = s == d
        f = np.nonzero(~local)[0]
        lat = np.where(local, 0.0, self.lat)
        return Routed(f, s[f] * self.n + d[f], np.ones(len(f)), [], lat, local)


def is_power_of_two(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


def ilog2(n: int) -> int:
    return int(math.log2(n))
