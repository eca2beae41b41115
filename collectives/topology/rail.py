"""Designs built from scale-up domains: rail-optimized and rail-only networks,
and a 3-D torus of scale-up domains.

Every design here groups its accelerators into *nodes* (scale-up domains) of
``g`` accelerators. A node is modelled as one node switch ``"n{i}sw"``
(``tier="node"``, an NVSwitch/NVLink-like crossbar) with one link per
accelerator at the scale-up bandwidth and latency; the accelerators are the
hosts ``"n{i}d{k}"`` (attributes ``node``, ``device``, ``index``). The node's
NICs are the links from its node switch into the network, tagged
``kind="nic"``: NIC ``r`` of every node goes to rail ``r``. Because a node's
accelerators reach every NIC of the node through the node switch, a flow may
leave through any rail (what NCCL's PXN does); when every accelerator of a
node sends at once -- the usual collective step -- this carries the same
traffic per rail as strict rail affinity.

Edges carry ``kind``: ``"scaleup"`` (accelerator - node switch), ``"nic"``
(node switch - leaf or rail switch), ``"uplink"`` (leaf - spine) or
``"torus"`` (between node switches).
"""

from __future__ import annotations

import math

import networkx as nx

from ..errors import TopologyError
from .core import DEFAULT_LATENCY, Topology, add_link, as_bandwidth, as_count, as_latency

__all__ = ["rail_optimized", "rail_only", "scaleup_torus"]

#: Scale-up defaults: NVLink 4 of an H100 SXM node, 900 GB/s both directions
#: (NVIDIA H100 Tensor Core GPU datasheet, 2023), i.e. 450 GB/s per direction.
SCALEUP_BANDWIDTH = "450GB/s"
SCALEUP_LATENCY = "250ns"
NETWORK_BANDWIDTH = "400Gbps"     # one ConnectX-7 / NDR port per accelerator


def _nodes(G, nodes, g, sbw, slat, sl):
    """Add ``nodes`` scale-up domains of ``g`` accelerators to G."""
    for i in range(nodes):
        sw = f"n{i}sw"
        G.add_node(sw, kind="switch", tier="node", node=i, latency=sl)
        for k in range(g):
            h = f"n{i}d{k}"
            G.add_node(h, kind="host", node=i, device=k, index=i * g + k)
            G.add_edge(h, sw, bandwidth=sbw, latency=slat, cables=1, kind="scaleup")
    return [f"n{i}d{k}" for i in range(nodes) for k in range(g)]


def _common(nodes, g, rails, scaleup_bandwidth, scaleup_latency, link_bandwidth, link_latency,
            switch_latency):
    nodes = as_count(nodes, "nodes", 1)
    g = as_count(g, "accelerators_per_node", 1)
    rails = g if rails is None else as_count(rails, "rails", 1)
    sbw = as_bandwidth(scaleup_bandwidth, "scaleup_bandwidth")
    slat = as_latency(scaleup_latency, "scaleup_latency")
    bw, lat = as_bandwidth(link_bandwidth), as_latency(link_latency)
    sl = as_latency(switch_latency, "switch_latency", allow_zero=True)
    return nodes, g, rails, sbw, slat, bw, lat, sl


def rail_optimized(nodes, accelerators_per_node=8, *, rails=None, nodes_per_leaf=None,
                   oversubscription=1, spines=None, scaleup_bandwidth=SCALEUP_BANDWIDTH,
                   scaleup_latency=SCALEUP_LATENCY, link_bandwidth=NETWORK_BANDWIDTH,
                   link_latency=DEFAULT_LATENCY, switch_latency=0.0):
    """A rail-optimized two-tier network of scale-up nodes.

    The design of NVIDIA's DGX SuperPOD reference architecture (DGX H100
    SuperPOD, 2023) and of Meta's RoCE training clusters (Gangidi et al., "RDMA
    over Ethernet for Distributed AI Training at Meta Scale", SIGCOMM 2024):
    NIC ``r`` of every node links to a leaf of rail ``r``; each rail has
    ``ceil(nodes / nodes_per_leaf)`` leaves (a leaf serves one "scalable
    unit" of ``nodes_per_leaf`` nodes on its rail); every leaf has
    ``nodes_per_leaf / oversubscription`` uplinks spread evenly over one
    spine tier shared by all rails. Same-rail traffic inside a scalable unit
    turns at the leaf; anything else crosses a spine.

    Parameters
    ----------
    nodes : int
        Scale-up domains, >= 1.
    accelerators_per_node : int
        Accelerators ``g`` per node (8 in a DGX/HGX node), >= 1.
    rails : int, optional
        NICs per node, one rail each (default ``g``: one NIC per accelerator).
    nodes_per_leaf : int, optional
        Down ports of a leaf (nodes of one scalable unit); default
        ``min(nodes, 32)`` (a SuperPOD scalable unit).
    oversubscription : int
        Leaf down : up ratio, a divisor of ``nodes_per_leaf`` (default 1).
    spines : int, optional
        Spine switches; must divide the uplinks per leaf (default: one spine
        per leaf uplink).
    scaleup_bandwidth, scaleup_latency : float or str
        Accelerator - node switch links (default 450 GB/s, 250 ns).
    link_bandwidth, link_latency : float or str
        NIC and leaf-spine links (default 400 Gb/s, 500 ns).
    switch_latency : float or str
        Per switch traversal (leaf, spine and node switch), default 0.

    Returns
    -------
    Topology
        ``nodes * g`` hosts; ``nodes + rails * leaves + spines`` switches
        (``leaves`` per rail); groups: the accelerators of one node (level
        ``"node"``); level ``"unit"`` gives a scalable unit.
    """
    nodes, g, rails, sbw, slat, bw, lat, sl = _common(
        nodes, accelerators_per_node, rails, scaleup_bandwidth, scaleup_latency,
        link_bandwidth, link_latency, switch_latency)
    m = min(nodes, 32) if nodes_per_leaf is None else as_count(nodes_per_leaf, "nodes_per_leaf", 1)
    r = oversubscription
    if isinstance(r, float) and r.is_integer():
        r = int(r)
    if isinstance(r, bool) or not isinstance(r, int) or r < 1 or m % r:
        valid = [d for d in range(1, m + 1) if m % d == 0]
        raise TopologyError(f"rail_optimized nodes_per_leaf={m}: oversubscription "
                            f"{oversubscription!r} must be an integer dividing it; valid: {valid}")
    up = m // r
    S = up if spines is None else as_count(spines, "spines", 1)
    if up % S:
        valid = [d for d in range(1, up + 1) if up % d == 0]
        raise TopologyError(f"rail_optimized: {S} spines cannot share the {up} uplinks of a leaf "
                            f"evenly; valid spine counts: {valid}")
    per = up // S
    L = -(-nodes // m)
    name = (f"rail-optimized:nodes={nodes},g={g}" + (f",rails={rails}" if rails != g else "")
            + (f",leaf={m}" if nodes_per_leaf is not None else "")
            + (f",oversubscription={r}" if r != 1 else "")
            + (f",spines={S}" if spines is not None else ""))
    G = nx.Graph(name=name, family="rail-optimized", group_level="node",
                 group_attrs=["node", "unit"],
                 params={"nodes": nodes, "accelerators_per_node": g, "rails": rails,
                         "nodes_per_leaf": m, "oversubscription": r, "spines": S,
                         "scaleup_bandwidth": sbw, "scaleup_latency": slat,
                         "link_bandwidth": bw, "link_latency": lat})
    hosts = _nodes(G, nodes, g, sbw, slat, sl)
    for h in hosts:
        G.nodes[h]["unit"] = G.nodes[h]["node"] // m
    for j in range(S):
        G.add_node(f"spine{j}", kind="switch", tier="spine", latency=sl)
    for q in range(rails):
        for u in range(L):
            leaf = f"r{q}l{u}"
            G.add_node(leaf, kind="switch", tier="leaf", rail=q, unit=u, latency=sl)
            for j in range(S):
                G.add_edge(leaf, f"spine{j}", bandwidth=per * bw, latency=lat, cables=per,
                           kind="uplink")
    for i in range(nodes):
        for q in range(rails):
            add_link(G, f"n{i}sw", f"r{q}l{i // m}", bw, lat, kind="nic")
    if nodes == 1:
        dia = 2 if g > 1 else 0
    else:
        dia = 4 if L == 1 else 6
    closed = {"diameter": (dia, "closed form: 2 in a node, 4 in a scalable unit, 6 across units")}
    return Topology(G, hosts, _closed=closed)


def rail_only(nodes, accelerators_per_node=8, *, rails=None, scaleup_bandwidth=SCALEUP_BANDWIDTH,
              scaleup_latency=SCALEUP_LATENCY, link_bandwidth=NETWORK_BANDWIDTH,
              link_latency=DEFAULT_LATENCY, switch_latency=0.0):
    """A rail-only network: one switch per rail and no spine.

    Wang, Ghobadi et al., "How to Build Low-cost Networks for Large Language
    Models (without Sacrificing Performance)", arXiv:2307.12169 (2023): the
    rails of a rail-optimized network are kept and the spine removed, so two
    accelerators on different rails only talk through a scale-up domain
    (here the node switch forwards from the sending accelerator to the NIC of
    the right rail). Each rail is modelled as one non-blocking switch
    ``"rail{r}"`` with a port per node (a rail wider than one switch's radix
    stands for a non-blocking Clos; its ports are priced as such).

    Parameters
    ----------
    nodes : int
        Scale-up domains, >= 1.
    accelerators_per_node : int
        Accelerators per node, >= 1.
    rails : int, optional
        NICs per node (default: one per accelerator).
    scaleup_bandwidth, scaleup_latency : float or str
        Accelerator - node switch links (default 450 GB/s, 250 ns).
    link_bandwidth, link_latency : float or str
        NIC links (default 400 Gb/s, 500 ns).
    switch_latency : float or str
        Per switch traversal, default 0.

    Returns
    -------
    Topology
        ``nodes * g`` hosts, ``nodes + rails`` switches, diameter 4 between
        nodes; groups: one per node.
    """
    nodes, g, rails, sbw, slat, bw, lat, sl = _common(
        nodes, accelerators_per_node, rails, scaleup_bandwidth, scaleup_latency,
        link_bandwidth, link_latency, switch_latency)
    name = f"rail-only:nodes={nodes},g={g}" + (f",rails={rails}" if rails != g else "")
    G = nx.Graph(name=name, family="rail-only", group_level="node", group_attrs=["node"],
                 params={"nodes": nodes, "accelerators_per_node": g, "rails": rails,
                         "scaleup_bandwidth": sbw, "scaleup_latency": slat,
                         "link_bandwidth": bw, "link_latency": lat})
    hosts = _nodes(G, nodes, g, sbw, slat, sl)
    if nodes > 1:
        for q in range(rails):
            G.add_node(f"rail{q}", kind="switch", tier="rail", rail=q, latency=sl)
            for i in range(nodes):
                G.add_edge(f"n{i}sw", f"rail{q}", bandwidth=bw, latency=lat, cables=1, kind="nic")
    closed = {
        "diameter": ((4 if nodes > 1 else 2) if nodes * g > 1 else 0,
                     "closed form: 2 in a node, 4 between nodes"),
        "bisection_bandwidth": ((nodes // 2) * rails * bw if nodes > 1 else (g // 2) * sbw,
                                "closed form: floor(nodes/2) nodes x rails NIC links"
                                if nodes > 1 else "closed form: floor(g/2) scale-up links"),
    }
    return Topology(G, hosts, _closed=closed)


def scaleup_torus(dims, accelerators_per_node=8, *, scaleup_bandwidth=SCALEUP_BANDWIDTH,
                  scaleup_latency=SCALEUP_LATENCY, link_bandwidth=NETWORK_BANDWIDTH,
                  link_latency=DEFAULT_LATENCY, cables_per_link=1, switch_latency=0.0):
    """A torus (3-D or any dimension) whose vertices are scale-up domains.

    The arrangement of Google's TPU v4 (Jouppi et al., "TPU v4: An Optically
    Reconfigurable Supercomputer", ISCA 2023) and of AWS Trn2 UltraServers,
    read at the level of a scale-up domain: each node switch links to its
    ``+-1`` neighbours in every dimension with wrap-around (Dally & Towles
    2004, ch. 5; a dimension of size 2 has one link between the pair).

    Parameters
    ----------
    dims : sequence of int or str
        Torus dimensions in nodes, each >= 2 (``(4, 4, 4)`` or ``"4x4x4"``).
    accelerators_per_node : int
        Accelerators per scale-up domain, >= 1.
    scaleup_bandwidth, scaleup_latency : float or str
        Accelerator - node switch links.
    link_bandwidth, link_latency : float or str
        Each torus link between two node switches (all its cables together),
        per direction.
    cables_per_link : int
        Physical cables bundled in a torus link (for counting and pricing).
    switch_latency : float or str
        Per node switch traversal, default 0.

    Returns
    -------
    Topology
        ``prod(dims) * g`` hosts, ``prod(dims)`` switches (``coord``
        attribute), diameter ``sum(floor(k/2)) + 2``; groups: one per node.
    """
    if isinstance(dims, str):
        try:
            dims = [int(x) for x in dims.lower().split("x")]
        except ValueError:
            raise TopologyError(f"scaleup_torus dims {dims!r}: expected sizes such as "
                                "'4x4x4'") from None
    try:
        dims = tuple(dims)
    except TypeError:
        dims = (dims,)
    if not dims:
        raise TopologyError("scaleup_torus needs at least one dimension")
    dims = tuple(as_count(k, "torus dimension size", 2) for k in dims)
    N = math.prod(dims)
    nodes, g, _, sbw, slat, bw, lat, sl = _common(
        N, accelerators_per_node, None, scaleup_bandwidth, scaleup_latency,
        link_bandwidth, link_latency, switch_latency)
    c = as_count(cables_per_link, "cables_per_link", 1)
    shape = "x".join(map(str, dims))
    G = nx.Graph(name=f"scaleup-torus:{shape},g={g}", family="scaleup-torus", group_level="node",
                 group_attrs=["node"],
                 params={"dims": list(dims), "accelerators_per_node": g,
                         "scaleup_bandwidth": sbw, "scaleup_latency": slat,
                         "link_bandwidth": bw, "link_latency": lat, "cables_per_link": c})
    hosts = _nodes(G, N, g, sbw, slat, sl)
    strides = [math.prod(dims[i + 1:]) for i in range(len(dims))]
    for i in range(N):
        coord = tuple((i // strides[d]) % dims[d] for d in range(len(dims)))
        G.nodes[f"n{i}sw"]["coord"] = coord
        for d, k in enumerate(dims):
            if k == 2 and coord[d] == 1:
                continue              # the pair is already linked from coordinate 0
            j = i + (((coord[d] + 1) % k) - coord[d]) * strides[d]
            G.add_edge(f"n{i}sw", f"n{j}sw", bandwidth=bw, latency=lat, cables=c, kind="torus")
    kmax = max(dims)
    closed = {"diameter": (sum(k // 2 for k in dims) + 2, "closed form: sum(floor(k_i/2)) + 2")}
    if kmax % 2 == 0:
        cut = N // 2 if kmax == 2 else 2 * (N // kmax)
        closed["bisection_bandwidth"] = (cut * bw, "closed form: 2*N/k_max torus links "
                                                   "(N/2 when every dimension is 2)")
    return Topology(G, hosts, _closed=closed)
