"""Size, distance, bisection and cost metrics (``Topology.describe()``).

Methods
-------
- Hops are links on a path, host to host (a host under a switch is 2 hops
  from its neighbour under the same switch).
- **diameter** and **mean_distance** (over ordered pairs of distinct hosts,
  along shortest paths, hosts never forwarding in switched networks): closed
  forms for the builder families; otherwise exact breadth-first search (in C,
  via scipy) from every switch that has hosts, weighted by its host count, or
  from every host for direct-connect graphs; beyond ``2e7`` node visits BFS
  runs from a seeded sample of ``sample`` hosts instead (the diameter is then
  a lower bound, the mean an estimate; the method field says so).
- **bisection_bandwidth** (bytes/s, one direction): the smallest total
  bandwidth of the links crossing a split of the hosts into two halves
  (``floor(N/2)`` and ``ceil(N/2)``; switches may go to either side). Closed
  forms for the regular families; dragonfly: the cut between two halves of
  the groups; loaded graphs: spectral bisection of the hosts followed by
  greedy moves of switches, an upper bound. ``bisection_ratio`` divides it by
  ``floor(N/2)`` times the smallest host injection bandwidth (1.0 = full
  bisection).
- **cost**: ``port_cost`` per switch port in use, ``nic_port_cost`` per host
  (NIC) port, ``cable_cost`` per cable. The defaults are placeholders in an
  arbitrary currency unit; pass your own prices.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

from ..errors import TopologyError

__all__ = ["describe", "cut_bandwidth", "distance_stats", "bisection", "format_describe",
           "DEFAULT_PORT_COST", "DEFAULT_CABLE_COST", "DEFAULT_NIC_PORT_COST"]

DEFAULT_PORT_COST = 500.0
DEFAULT_NIC_PORT_COST = 500.0
DEFAULT_CABLE_COST = 250.0

_EXACT_LIMIT = 20_000_000     # node visits for the exact BFS


def _closed(topo, key):
    v = topo._closed.get(key)
    if v is None:
        return None
    value, method = v
    if callable(value):
        value = value(topo)
        topo._closed[key] = (value, method)
    return value, method


# ------------------------------------------------------------------ distances
def _csr(n, rows, cols):
    from scipy.sparse import csr_matrix

    return csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))


def _bfs_rows(csr, sources):
    from scipy.sparse.csgraph import shortest_path

    n = csr.shape[0]
    chunk = max(1, min(len(sources), 4_000_000 // max(n, 1)))
    for i in range(0, len(sources), chunk):
        idx = sources[i:i + chunk]
        yield idx, shortest_path(csr, method="D", directed=True, unweighted=True, indices=idx)


def distance_stats(topo, sample=256, seed=0):
    """``(diameter, mean_distance, diameter_method, mean_method)`` by BFS (module docstring)."""
    G = topo.graph
    H = len(topo.hosts)
    if H < 2:
        return 0, 0.0, "single host", "single host"
    att = {h: topo.attachment(h) for h in topo.hosts}
    if topo.switched and all(a is not None for a in att.values()):
        # every host hangs off one switch/NIC: BFS over the fabric from each attachment point
        fabric = [n for n in topo.nodes if G.nodes[n]["kind"] != "host"]
        fidx = {n: i for i, n in enumerate(fabric)}
        rows, cols = [], []
        for u, v in G.edges:
            if u in fidx and v in fidx:
                rows += [fidx[u], fidx[v]]
                cols += [fidx[v], fidx[u]]
        csr = _csr(len(fabric), rows, cols)
        counts = {}
        for h in topo.hosts:
            counts[fidx[att[h]]] = counts.get(fidx[att[h]], 0) + 1
        srcs = np.array(sorted(counts), dtype=np.int64)
        w = np.zeros(len(fabric))
        for i, c in counts.items():
            w[i] = c
        exact = len(srcs) * len(fabric) <= _EXACT_LIMIT
        if not exact:
            rng = np.random.default_rng(seed)
            srcs = np.sort(rng.choice(srcs, size=min(sample, len(srcs)), replace=False,
                                      p=w[srcs] / w[srcs].sum()))
        total = 0.0
        pairs = 0.0
        diam = 0
        for idx, D in _bfs_rows(csr, srcs):
            if np.isinf(D[:, w > 0]).any():
                raise TopologyError(f"{topo.name}: some hosts cannot reach each other")
            for r, s in enumerate(idx.tolist()):
                row = D[r]
                ws = w[s]
                others = w.copy()
                others[s] = 0.0
                total += ws * float(np.dot(others, row + 2.0)) + ws * (ws - 1) * 2.0
                pairs += ws * (others.sum() + ws - 1)
                mask = others > 0
                if mask.any():
                    diam = max(diam, int(row[mask].max()) + 2)
                if ws > 1:
                    diam = max(diam, 2)
        mean = total / pairs if pairs else 0.0
        if exact:
            how = "exact BFS from every switch with hosts, weighted by host count"
            return diam, mean, how, how
        how = f"BFS from {len(srcs)} switches sampled by host count (seed {seed})"
        return diam, mean, how + ": a lower bound", how + ": an estimate"
    # general case: hosts as sources; in switched graphs a host is split in an out-node and
    # an in-node so that no path transits a host
    nodes = topo.nodes
    n = len(nodes)
    idx = topo.node_index
    hidx = topo.host_index
    split = topo.switched
    rows, cols = [], []
    kind = {v: G.nodes[v]["kind"] for v in nodes}
    for u, v in G.edges:
        for a, b in ((u, v), (v, u)):
            if split and kind[b] == "host":
                rows.append(idx[a] if kind[a] != "host" else idx[a])
                cols.append(n + hidx[b])
            else:
                rows.append(idx[a])
                cols.append(idx[b])
    total_n = n + (H if split else 0)
    csr = _csr(total_n, rows, cols)
    srcs = np.array([idx[h] for h in topo.hosts], dtype=np.int64)
    targets = (n + np.arange(H)) if split else srcs
    exact = H * total_n <= _EXACT_LIMIT
    if not exact:
        rng = np.random.default_rng(seed)
        srcs = np.sort(rng.choice(srcs, size=min(sample, H), replace=False))
    total = 0.0
    pairs = 0
    diam = 0
    host_pos = {idx[h]: i for i, h in enumerate(topo.hosts)}
    for ids, D in _bfs_rows(csr, srcs):
        sub = D[:, targets]
        for r, s in enumerate(ids.tolist()):
            row = sub[r].copy()
            row[host_pos[s]] = np.nan
            vals = row[~np.isnan(row)]
            if np.isinf(vals).any():
                raise TopologyError(f"{topo.name}: some hosts cannot reach each other")
            total += float(vals.sum())
            pairs += len(vals)
            diam = max(diam, int(vals.max()))
    if exact:
        return diam, total / pairs, "exact BFS from every host", "exact BFS from every host"
    how = f"BFS from {len(srcs)} sampled hosts (seed {seed})"
    return diam, total / pairs, how + ": a lower bound", how + ": an estimate"


# ------------------------------------------------------------------ cuts
def cut_bandwidth(topo, side_a, refine=True):
    """Bandwidth crossing the split with hosts ``side_a`` on one side (bytes/s).

    Switches and NICs are placed on the side of most of their directly attached
    hosts, then moved one at a time while that lowers the cut (``refine``).
    """
    G = topo.graph
    side = {}
    for h in topo.hosts:
        side[h] = h in side_a
    fabric = [n for n in topo.nodes if G.nodes[n]["kind"] != "host"]
    for s in fabric:
        votes = [side[m] for m in G.adj[s] if m in side and G.nodes[m]["kind"] == "host"]
        side[s] = (sum(votes) * 2 >= len(votes)) if votes else None
    for s in fabric:
        if side[s] is None:
            w = {True: 0.0, False: 0.0}
            for m, d in G.adj[s].items():
                if side.get(m) is not None:
                    w[side[m]] += d["bandwidth"]
            side[s] = w[True] >= w[False]
    if refine and fabric:
        for _ in range(10):
            moved = False
            for s in fabric:
                same = other = 0.0
                for m, d in G.adj[s].items():
                    if side[m] == side[s]:
                        same += d["bandwidth"]
                    else:
                        other += d["bandwidth"]
                if other > same:
                    side[s] = not side[s]
                    moved = True
            if not moved:
                break
    return float(sum(d["bandwidth"] for u, v, d in G.edges(data=True) if side[u] != side[v]))


def bisection(topo, seed=0):
    """``(bisection_bandwidth, method)``: closed form if known, else spectral + refinement."""
    c = _closed(topo, "bisection_bandwidth")
    if c is not None:
        return c
    H = len(topo.hosts)
    if H < 2:
        return 0.0, "single host"
    if topo.graph.number_of_nodes() > 60_000:
        return None, "not computed: more than 60,000 nodes"
    return spectral_cut(topo, seed), ("spectral bisection of the hosts with greedy switch moves "
                                      "(an upper bound on the bisection)")


def spectral_cut(topo, seed=0):
    """Cut bandwidth of a host bisection from a Fiedler vector (an upper bound).

    When every host hangs off one switch, the vector is computed on the
    switches alone (hosts follow their switch), which is much smaller.
    """
    G = topo.graph
    H = len(topo.hosts)
    att = {h: topo.attachment(h) for h in topo.hosts}
    leafy = topo.switched and all(a is not None for a in att.values())
    sub = G.subgraph([n for n in G if G.nodes[n]["kind"] != "host"]) if leafy else G
    order = list(topo.hosts)
    if sub.number_of_nodes() > 2:
        try:
            method = "tracemin_lu" if sub.number_of_nodes() <= 1000 else "lobpcg"
            vec = nx.fiedler_vector(sub, weight="bandwidth", normalized=True, seed=seed,
                                    method=method)
            pos = dict(zip(sub.nodes, vec))
            key = (lambda h: pos[att[h]]) if leafy else (lambda h: pos[h])
            order = sorted(topo.hosts, key=lambda h: (key(h), topo.host_index[h]))
        except Exception:  # pragma: no cover - degenerate graphs
            pass
    return min(cut_bandwidth(topo, set(order[: H // 2])),
               cut_bandwidth(topo, set(order[H - H // 2:])))


# ------------------------------------------------------------------ describe
def describe(topo, *, port_cost=None, cable_cost=None, nic_port_cost=None, sample=256, seed=0):
    """All metrics of a topology as a JSON-serialisable dict.

    Keys: ``name``, ``family``, ``params``, ``hosts``, ``switches``, ``nics``,
    ``links`` (edges), ``cables``, ``ports`` (cable ends: switch + host),
    ``switch_ports``, ``host_ports``, ``ports_per_switch`` (min/max),
    ``radix`` (largest switch port count), ``diameter``, ``mean_distance``
    (hops), ``bisection_bandwidth`` (bytes/s), ``bisection_ratio``,
    ``host_bandwidth`` (smallest host injection, bytes/s),
    ``link_bandwidth``/``link_latency`` (min/max), ``groups`` (level, count,
    sizes), ``cost`` (total and its parts, with the prices used) and
    ``methods`` (how each computed metric was obtained).
    """
    G = topo.graph
    port_cost = DEFAULT_PORT_COST if port_cost is None else _price(port_cost, "port_cost")
    cable_cost = DEFAULT_CABLE_COST if cable_cost is None else _price(cable_cost, "cable_cost")
    nic_port_cost = (DEFAULT_NIC_PORT_COST if nic_port_cost is None
                     else _price(nic_port_cost, "nic_port_cost"))
    kind = dict(G.nodes(data="kind"))
    ports = dict.fromkeys(G.nodes, 0)
    cables = 0
    bws, lats = [], []
    for u, v, d in G.edges(data=True):
        c = d.get("cables", 1)
        cables += c
        ports[u] += c
        ports[v] += c
        bws.append(d["bandwidth"])
        lats.append(d["latency"])
    sw_ports = [ports[s] for s in topo.switches]
    switch_ports = sum(sw_ports)
    host_ports = sum(ports[n] for n in G.nodes if kind[n] != "switch")
    H = len(topo.hosts)

    methods = {}
    dia = _closed(topo, "diameter")
    mean = _closed(topo, "mean_distance")
    if dia is None or mean is None:
        key = ("distance_stats", sample, seed)
        if key not in topo._cache:
            topo._cache[key] = distance_stats(topo, sample=sample, seed=seed)
        d_bfs, m_bfs, how_d, how_m = topo._cache[key]
        if dia is None:
            dia = (d_bfs, how_d)
        if mean is None:
            mean = (m_bfs, how_m)
    methods["diameter"] = dia[1]
    methods["mean_distance"] = mean[1]
    key = ("bisection", seed)
    if key not in topo._cache:
        topo._cache[key] = bisection(topo, seed=seed)
    bis, how = topo._cache[key]
    methods["bisection_bandwidth"] = how
    inj = topo.injection_bandwidth()
    full = (H // 2) * inj
    level = topo.default_group_level
    gidx = topo.group_index(level)
    sizes = np.bincount(gidx) if len(gidx) else np.zeros(0, dtype=int)
    cost_ports = port_cost * switch_ports
    cost_nics = nic_port_cost * host_ports
    cost_cables = cable_cost * cables
    out = {
        "name": topo.name,
        "family": topo.family,
        "params": _jsonable(topo.params),
        "hosts": H,
        "switches": len(topo.switches),
        "nics": len(topo.nics),
        "links": G.number_of_edges(),
        "cables": cables,
        "ports": switch_ports + host_ports,
        "switch_ports": switch_ports,
        "host_ports": host_ports,
        "ports_per_switch": ({"min": min(sw_ports), "max": max(sw_ports)} if sw_ports else None),
        "radix": max(sw_ports) if sw_ports else 0,
        "diameter": int(dia[0]),
        "mean_distance": float(mean[0]),
        "bisection_bandwidth": None if bis is None else float(bis),
        "bisection_ratio": (None if bis is None or full == 0 else float(bis) / full),
        "host_bandwidth": inj,
        "link_bandwidth": {"min": min(bws), "max": max(bws)},
        "link_latency": {"min": min(lats), "max": max(lats)},
        "groups": {"level": level, "count": int(len(sizes)),
                   "min_size": int(sizes.min()) if len(sizes) else 0,
                   "max_size": int(sizes.max()) if len(sizes) else 0,
                   "levels": topo.group_levels()},
        "cost": {"total": cost_ports + cost_nics + cost_cables, "switch_ports": cost_ports,
                 "host_ports": cost_nics, "cables": cost_cables,
                 "prices": {"port_cost": port_cost, "nic_port_cost": nic_port_cost,
                            "cable_cost": cable_cost}},
        "methods": methods,
    }
    return out


def _price(v, name):
    from ..errors import InvalidArgument

    try:
        x = float(v)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{name} must be a number >= 0, got {v!r}") from None
    if not math.isfinite(x) or x < 0:
        raise InvalidArgument(f"{name} must be a finite number >= 0, got {v!r}")
    return x


def _jsonable(d):
    out = {}
    for k, v in d.items():
        if isinstance(v, (list, tuple)):
            v = list(v)
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def format_describe(d) -> str:
    """The text ``collectives topo describe`` prints."""
    from ..units import format_bandwidth, format_time

    def num(x):
        return f"{x:,}" if isinstance(x, int) else str(x)

    lines = [f"{d['name']}" + (f"  ({d['family']})" if d.get("family") else "")]
    rows = [
        ("hosts", num(d["hosts"])),
        ("switches", num(d["switches"]) + (f" (+{d['nics']} NICs)" if d["nics"] else "")),
        ("links", f"{d['links']:,} ({d['cables']:,} cables)"),
        ("ports", f"{d['ports']:,} ({d['switch_ports']:,} on switches, {d['host_ports']:,} on hosts)"),
        ("radix", (f"{d['radix']} (per switch {d['ports_per_switch']['min']}-"
                   f"{d['ports_per_switch']['max']})") if d["ports_per_switch"] else "-"),
        ("diameter", f"{d['diameter']} hops"),
        ("mean distance", f"{d['mean_distance']:.3f} hops"),
        ("bisection", "not computed" if d["bisection_bandwidth"] is None else
         f"{format_bandwidth(d['bisection_bandwidth'])} "
         f"({format_bandwidth(d['bisection_bandwidth'], bits=True)}), "
         f"ratio {d['bisection_ratio']:.3g}"),
        ("host bandwidth", format_bandwidth(d["host_bandwidth"], bits=True)),
        ("link bandwidth", _span(d["link_bandwidth"], lambda x: format_bandwidth(x, bits=True))),
        ("link latency", _span(d["link_latency"], format_time)),
        ("groups", f"{d['groups']['count']:,} by {d['groups']['level']} "
                   f"(size {d['groups']['min_size']}"
                   + (f"-{d['groups']['max_size']}" if d['groups']['max_size'] != d['groups']['min_size'] else "")
                   + f"; levels: {', '.join(d['groups']['levels'])})"),
        ("cost", f"{d['cost']['total']:,.0f} = {d['switch_ports']:,} switch ports x "
                 f"{d['cost']['prices']['port_cost']:g} + {d['host_ports']:,} host ports x "
                 f"{d['cost']['prices']['nic_port_cost']:g} + {d['cables']:,} cables x "
                 f"{d['cost']['prices']['cable_cost']:g}"),
    ]
    w = max(len(k) for k, _ in rows)
    lines += [f"  {k:<{w}}  {v}" for k, v in rows]
    lines.append("  methods:")
    for k, v in d["methods"].items():
        lines.append(f"    {k}: {v}")
    return "\n".join(lines)


def _span(d, fmt):
    return fmt(d["min"]) if d["min"] == d["max"] else f"{fmt(d['min'])} - {fmt(d['max'])}"
