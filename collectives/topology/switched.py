"""Switched trees: a single switch, a two-level leaf-spine, the k-ary fat-tree.

Host ids are ``"h0"``, ``"h1"``, ... numbered switch by switch, so the
default (linear) placement fills one leaf/edge switch before the next.
"""

from __future__ import annotations

import networkx as nx

from ..errors import TopologyError
from .core import (DEFAULT_BANDWIDTH, DEFAULT_LATENCY, Topology, as_bandwidth, as_count,
                   as_latency)

__all__ = ["star", "leaf_spine", "fat_tree"]


#: Latency of the internal host - NIC attachment of a multi-plane host (not a cable).
_ATTACH_LATENCY = 1e-9


def _switch_latency(value):
    return as_latency(value, "switch_latency", allow_zero=True)


def star(n, *, link_bandwidth=DEFAULT_BANDWIDTH, link_latency=DEFAULT_LATENCY,
         switch_latency=0.0):
    """``n`` hosts on one non-blocking switch: the flat cluster.

    Parameters
    ----------
    n : int
        Number of hosts, >= 1.
    link_bandwidth, link_latency : float or str
        Host link bandwidth (per direction) and latency.
    switch_latency : float or str
        Added per switch traversal (node attribute ``latency``), default 0.

    Returns
    -------
    Topology
        One switch ``"sw0"`` with ``n`` ports, diameter 2, bisection
        ``floor(n/2)`` host links.
    """
    n = as_count(n, "n", 1)
    bw, lat = as_bandwidth(link_bandwidth), as_latency(link_latency)
    G = nx.Graph(name=f"star:n={n}", family="star", group_level="switch",
                 params={"n": n, "link_bandwidth": bw, "link_latency": lat})
    G.add_node("sw0", kind="switch", tier="leaf", latency=_switch_latency(switch_latency))
    for i in range(n):
        G.add_node(f"h{i}", kind="host", index=i)
        G.add_edge(f"h{i}", "sw0", bandwidth=bw, latency=lat, cables=1)
    closed = {
        "diameter": (2 if n > 1 else 0, "closed form: 2"),
        "mean_distance": (2.0 if n > 1 else 0.0, "closed form: 2"),
        "bisection_bandwidth": ((n // 2) * bw, "closed form: floor(n/2) host links"),
    }
    return Topology(G, _closed=closed)


def leaf_spine(leaves, hosts_per_leaf, spines, *, link_bandwidth=DEFAULT_BANDWIDTH,
               link_latency=DEFAULT_LATENCY, uplink_bandwidth=None, uplink_latency=None,
               switch_latency=0.0):
    """A two-level folded Clos: every leaf links once to every spine.

    The common small-cluster form of a fat-tree (Al-Fares et al. 2008 with the
    core level removed): ``hosts_per_leaf`` hosts per leaf, one uplink from
    each leaf to each spine. The leaf's oversubscription is
    ``hosts_per_leaf * link_bandwidth / (spines * uplink_bandwidth)``.

    Parameters
    ----------
    leaves : int
        Number of leaf switches, >= 1.
    hosts_per_leaf : int
        Hosts under each leaf, >= 1.
    spines : int
        Number of spine switches, >= 1.
    link_bandwidth, link_latency : float or str
        Host links.
    uplink_bandwidth, uplink_latency : float or str, optional
        Leaf-spine links (default: the host link values).
    switch_latency : float or str
        Per switch traversal, default 0.

    Returns
    -------
    Topology
        ``leaves * hosts_per_leaf`` hosts, ``leaves + spines`` switches,
        diameter 4 (2 with one leaf); groups: one per leaf.
    """
    L = as_count(leaves, "leaves", 1)
    m = as_count(hosts_per_leaf, "hosts_per_leaf", 1)
    s = as_count(spines, "spines", 1)
    bw, lat = as_bandwidth(link_bandwidth), as_latency(link_latency)
    ubw = bw if uplink_bandwidth is None else as_bandwidth(uplink_bandwidth, "uplink_bandwidth")
    ulat = lat if uplink_latency is None else as_latency(uplink_latency, "uplink_latency")
    sl = _switch_latency(switch_latency)
    G = nx.Graph(name=f"leaf-spine:leaves={L},hosts={m},spines={s}", family="leaf-spine",
                 group_level="switch",
                 params={"leaves": L, "hosts_per_leaf": m, "spines": s, "link_bandwidth": bw,
                         "link_latency": lat, "uplink_bandwidth": ubw, "uplink_latency": ulat})
    for j in range(s):
        G.add_node(f"spine{j}", kind="switch", tier="spine", latency=sl)
    h = 0
    for i in range(L):
        leaf = f"leaf{i}"
        G.add_node(leaf, kind="switch", tier="leaf", latency=sl)
        for _ in range(m):
            G.add_node(f"h{h}", kind="host", index=h, leaf=i)
            G.add_edge(f"h{h}", leaf, bandwidth=bw, latency=lat, cables=1)
            h += 1
        for j in range(s):
            G.add_edge(leaf, f"spine{j}", bandwidth=ubw, latency=ulat, cables=1)
    N = L * m
    G.graph["group_attrs"] = ["leaf"]
    per_leaf = min(m * bw, s * ubw)
    closed = {
        "diameter": ((4 if L > 1 else 2) if N > 1 else 0, "closed form: 4 (2 with one leaf)"),
        "mean_distance": ((2 * (m - 1) + 4 * (N - m)) / (N - 1) if N > 1 else 0.0,
                          "closed form: 2 under one leaf, 4 across leaves"),
    }
    if L == 1:
        closed["bisection_bandwidth"] = ((m // 2) * bw, "closed form: floor(n/2) host links")
    elif L % 2 == 0:
        closed["bisection_bandwidth"] = (L // 2 * per_leaf,
                                         "closed form: leaves/2 * min(hosts*bw, spines*uplink_bw)")
    else:
        closed["bisection_bandwidth"] = ((L - 1) // 2 * per_leaf + (m // 2) * bw,
                                         "balanced cut with one leaf split (an upper bound: "
                                         "odd leaf count)")
    return Topology(G, _closed=closed)


def fat_tree(k, oversubscription=1, *, planes=1, link_bandwidth=DEFAULT_BANDWIDTH,
             link_latency=DEFAULT_LATENCY, switch_latency=0.0):
    """The three-level k-ary fat-tree of Al-Fares, Loukissas & Vahdat (SIGCOMM 2008).

    ``k`` pods, each with ``k/2`` edge and ``k/2`` aggregation switches of
    radix ``k``; ``(k/2)**2`` core switches; ``k/2`` hosts per edge switch.
    Core switch ``c{j}_{i}`` links to aggregation switch ``j`` of every pod.

    Oversubscription thins the edge uplinks: with ratio ``r`` each edge switch
    keeps its ``k/2`` hosts but has ``u = k/(2r)`` uplinks, to the ``u``
    aggregation switches of its pod (so each pod has ``u`` aggregation
    switches and there are ``u * k/2`` core switches). ``r`` must divide
    ``k/2``.

    With ``planes=P`` the switch fabric is built ``P`` times (a multi-plane
    fat-tree, as in the multi-plane networks of Alibaba HPN, Qian et al.,
    SIGCOMM 2024, and DeepSeek-V3's eight-plane cluster, DeepSeek-AI 2024):
    every host has one port into each plane, to the same edge position, and
    a flow spreads evenly over the planes. The ports are a NIC node
    ``"h{i}nic"`` (``kind="nic"``) that the host hangs off through an
    internal link (``kind="attach"``, ``P * link_bandwidth``, 1 ns); planes
    meet only there. Switch ids of plane ``q > 0`` are prefixed ``"p{q}."``;
    switches carry ``plane``.

    Parameters
    ----------
    k : int
        Switch radix, even, >= 2.
    oversubscription : int
        Edge-level ratio ``hosts : uplinks``, 1 (non-blocking, the default)
        or a divisor of ``k/2``.
    planes : int
        Independent switch planes, >= 1 (default 1); each host link has
        ``link_bandwidth``, so a host injects ``planes * link_bandwidth``.
    link_bandwidth, link_latency : float or str
        Every link (host, edge-aggregation, aggregation-core).
    switch_latency : float or str
        Per switch traversal, default 0.

    Returns
    -------
    Topology
        ``k**3/4`` hosts; ``5k**2/4`` switches when ``r = 1``; diameter 6
        hops host to host (4 inside a pod, 2 under one edge switch);
        bisection ``k**3/(8r)`` links (each count times ``planes``). Host
        attributes ``pod`` and ``edge``; the default groups are the hosts of
        one edge switch.
    """
    k = as_count(k, "k", 2)
    if k % 2:
        raise TopologyError(f"fat_tree k={k}: k must be even (each switch splits its k ports "
                            "half down, half up)")
    half = k // 2
    r = oversubscription
    if isinstance(r, float) and r.is_integer():
        r = int(r)
    if isinstance(r, bool) or not isinstance(r, int) or r < 1 or half % r:
        divisors = [d for d in range(1, half + 1) if half % d == 0]
        raise TopologyError(f"fat_tree k={k}: oversubscription {oversubscription!r} must be an "
                            f"integer dividing k/2={half}; valid: {divisors}")
    u = half // r
    NP = as_count(planes, "planes", 1)
    bw, lat = as_bandwidth(link_bandwidth), as_latency(link_latency)
    sl = _switch_latency(switch_latency)
    name = (f"fat-tree:k={k}" + (f",oversubscription={r}" if r != 1 else "")
            + (f",planes={NP}" if NP != 1 else ""))
    params = {"k": k, "oversubscription": r, "link_bandwidth": bw, "link_latency": lat}
    if NP != 1:
        params["planes"] = NP
    # with planes, hosts hang off NICs: the natural groups are the hosts of one edge position
    G = nx.Graph(name=name, family="fat-tree", group_level="switch" if NP == 1 else "edge",
                 params=params)
    G.graph["group_attrs"] = ["edge", "pod"]
    for q in range(NP):
        pre = f"p{q}." if q else ""
        for j in range(u):
            for i in range(half):
                G.add_node(f"{pre}c{j}_{i}", kind="switch", tier="core", plane=q, latency=sl)
        h = 0
        for p in range(k):
            for j in range(u):
                agg = f"{pre}a{p}_{j}"
                G.add_node(agg, kind="switch", tier="aggregation", pod=p, plane=q, latency=sl)
                for i in range(half):
                    G.add_edge(agg, f"{pre}c{j}_{i}", bandwidth=bw, latency=lat, cables=1)
            for e in range(half):
                edge = f"{pre}e{p}_{e}"
                G.add_node(edge, kind="switch", tier="edge", pod=p, plane=q, latency=sl)
                for j in range(u):
                    G.add_edge(edge, f"{pre}a{p}_{j}", bandwidth=bw, latency=lat, cables=1)
                for _ in range(half):
                    if NP == 1:
                        G.add_node(f"h{h}", kind="host", index=h, pod=p, edge=p * half + e)
                        G.add_edge(f"h{h}", edge, bandwidth=bw, latency=lat, cables=1)
                    else:
                        nic = f"h{h}nic"
                        if q == 0:
                            G.add_node(f"h{h}", kind="host", index=h, pod=p, edge=p * half + e)
                            G.add_node(nic, kind="nic")
                            G.add_edge(f"h{h}", nic, bandwidth=NP * bw, latency=_ATTACH_LATENCY,
                                       cables=1, kind="attach")
                        G.add_edge(nic, edge, bandwidth=bw, latency=lat, cables=1)
                    h += 1
    N = h
    m, P = half, half * half
    closed = {
        "diameter": (6 if k > 2 or N > 1 else 0,
                     "closed form: 6 (host-edge-aggregation-core-aggregation-edge-host)"),
        "mean_distance": ((2 * (m - 1) + 4 * (P - m) + 6 * (N - P)) / (N - 1),
                          "closed form: 2 under one edge switch, 4 within a pod, 6 across pods"),
        "bisection_bandwidth": (NP * (k ** 3 // 8 / r * bw if k > 2 else bw),
                                "closed form: k^3/(8r) links per plane (Al-Fares et al. 2008)"),
    }
    if k == 2:
        closed["diameter"] = (6, "closed form: 6")
        closed["mean_distance"] = (6.0, "closed form: 6")
    if NP > 1:               # the host - NIC attachment adds a hop at each end
        for key in ("diameter", "mean_distance"):
            v, how = closed[key]
            closed[key] = (v + 2, how + ", plus 2 for the host - NIC attachments")
    return Topology(G, _closed=closed)
