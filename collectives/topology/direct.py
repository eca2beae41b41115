"""Direct-connect topologies: hosts link to hosts, no switches.

Every host is also a router. Host ids are ``"h0"``, ``"h1"``, ... in rank
order. The closed-form metrics follow Dally & Towles, *Principles and
Practices of Interconnection Networks* (2004), chapters 3 and 5.
"""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np

from ..errors import TopologyError
from .core import (DEFAULT_BANDWIDTH, DEFAULT_LATENCY, Topology, add_link, as_bandwidth,
                   as_count, as_latency)

__all__ = ["full_mesh", "ring", "torus", "hypercube"]


def _ring_sum(n: int) -> int:
    """Sum of ring distances from one node to all others on a ring of n nodes."""
    return n * n // 4


def _host_graph(n, family, params):
    G = nx.Graph(name=f"{family}", family=family, params=params, group_level="host")
    for i in range(n):
        G.add_node(f"h{i}", kind="host", index=i)
    return G


def full_mesh(n, *, link_bandwidth=DEFAULT_BANDWIDTH, link_latency=DEFAULT_LATENCY):
    """Every pair of ``n`` hosts joined by its own link (a complete graph K_n).

    The all-to-all wiring of a single accelerator node (NVLink/xGMI meshes)
    and of small direct-connect clusters.

    Parameters
    ----------
    n : int
        Number of hosts, >= 2.
    link_bandwidth : float or str
        Bandwidth of each link, per direction (bytes/s or ``"100Gbps"``).
    link_latency : float or str
        Latency of each link (s or ``"500ns"``).

    Returns
    -------
    Topology
        ``n`` hosts, ``n(n-1)/2`` links, diameter 1, bisection
        ``floor(n/2) * ceil(n/2)`` links.
    """
    n = as_count(n, "n", 2)
    bw, lat = as_bandwidth(link_bandwidth), as_latency(link_latency)
    G = _host_graph(n, "full-mesh", {"n": n, "link_bandwidth": bw, "link_latency": lat})
    G.graph["name"] = f"full-mesh:n={n}"
    for i, j in itertools.combinations(range(n), 2):
        G.add_edge(f"h{i}", f"h{j}", bandwidth=bw, latency=lat, cables=1)
    closed = {
        "diameter": (1, "closed form: 1"),
        "mean_distance": (1.0, "closed form: 1"),
        "bisection_bandwidth": ((n // 2) * ((n + 1) // 2) * bw,
                                "closed form: floor(n/2)*ceil(n/2) links"),
    }
    return Topology(G, _closed=closed)


def ring(n, *, link_bandwidth=DEFAULT_BANDWIDTH, link_latency=DEFAULT_LATENCY):
    """``n`` hosts in a cycle, each linked to its two neighbours.

    Parameters
    ----------
    n : int
        Number of hosts, >= 2 (``ring(2)`` is a single link).
    link_bandwidth, link_latency : float or str
        Per link, per direction.

    Returns
    -------
    Topology
        ``n`` links (1 for n=2), diameter ``floor(n/2)``, bisection 2 links.
    """
    n = as_count(n, "n", 2)
    return _torus((n,), "ring", f"ring:n={n}", {"n": n}, link_bandwidth, link_latency)


def torus(dims, *, link_bandwidth=DEFAULT_BANDWIDTH, link_latency=DEFAULT_LATENCY):
    """A k-ary n-cube with wrap-around links in every dimension (mixed radix allowed).

    Follows Dally & Towles (2004), ch. 5: host ``(x_0, ..., x_{D-1})`` links to
    ``x_i +- 1 mod k_i`` in each dimension. A dimension of size 2 has one link
    between the pair (no doubled wrap-around link).

    Parameters
    ----------
    dims : sequence of int or str
        Sizes of the dimensions, each >= 2, e.g. ``(4, 4, 4)`` or ``"4x4x4"``.
    link_bandwidth, link_latency : float or str
        Per link, per direction.

    Returns
    -------
    Topology
        ``prod(dims)`` hosts with ``coord`` attributes; diameter
        ``sum(floor(k_i/2))``; bisection ``2 * N / k_max`` links when the largest
        dimension is even and > 2 (``N/2`` when all dimensions are 2).
    """
    if isinstance(dims, str):
        try:
            dims = [int(x) for x in dims.lower().split("x")]
        except ValueError:
            raise TopologyError(f"torus dims {dims!r}: expected sizes such as '4x4x4'") from None
    try:
        dims = tuple(dims)
    except TypeError:
        dims = (dims,)
    if not dims:
        raise TopologyError("torus needs at least one dimension")
    dims = tuple(as_count(k, "torus dimension size", 2) for k in dims)
    spec = "torus:" + "x".join(map(str, dims))
    return _torus(dims, "torus", spec, {"dims": list(dims)}, link_bandwidth, link_latency)


def _torus(dims, family, name, params, link_bandwidth, link_latency):
    bw, lat = as_bandwidth(link_bandwidth), as_latency(link_latency)
    N = math.prod(dims)
    if N > 10_000_000:
        raise TopologyError(f"{name} has {N} hosts; the limit is 10,000,000")
    params = dict(params, link_bandwidth=bw, link_latency=lat)
    G = _host_graph(N, family, params)
    G.graph["name"] = name
    coords = list(itertools.product(*[range(k) for k in dims]))
    strides = [math.prod(dims[i + 1:]) for i in range(len(dims))]
    for i, c in enumerate(coords):
        G.nodes[f"h{i}"]["coord"] = c
    for i, c in enumerate(coords):
        for d, k in enumerate(dims):
            j = i + (((c[d] + 1) % k) - c[d]) * strides[d]
            if k == 2 and c[d] == 1:
                continue               # the pair is already linked from coordinate 0
            add_link(G, f"h{i}", f"h{j}", bw, lat)
    kmax = max(dims)
    diameter = sum(k // 2 for k in dims)
    mean = sum((N // k) * _ring_sum(k) for k in dims) / (N - 1) if N > 1 else 0.0
    closed = {
        "diameter": (diameter, "closed form: sum(floor(k_i/2))"),
        "mean_distance": (mean, "closed form: sum over dimensions of the mean ring distance"),
    }
    if kmax == 2:
        closed["bisection_bandwidth"] = (N // 2 * bw, "closed form: N/2 links (all dimensions 2)")
    elif kmax % 2 == 0:
        closed["bisection_bandwidth"] = (2 * (N // kmax) * bw,
                                         "closed form: 2*N/k_max links (Dally & Towles)")
    else:
        closed["bisection_bandwidth"] = (lambda t: _best_dimension_cut(t, dims),
                                         "smallest cut over balanced splits across one dimension "
                                         "(an upper bound: the largest dimension is odd)")
    return Topology(G, _closed=closed)


def _best_dimension_cut(topo, dims):
    from .metrics import cut_bandwidth

    N = len(topo.hosts)
    coords = np.array([topo.graph.nodes[h]["coord"] for h in topo.hosts])
    best = math.inf
    for d in range(len(dims)):
        order = np.lexsort(tuple(coords[:, e] for e in reversed(range(len(dims))) if e != d)
                           + (coords[:, d],))
        side = {topo.hosts[i] for i in order[: N // 2].tolist()}
        best = min(best, cut_bandwidth(topo, side))
    return best


def hypercube(d, *, link_bandwidth=DEFAULT_BANDWIDTH, link_latency=DEFAULT_LATENCY):
    """The binary d-cube: ``2**d`` hosts, host ``i`` linked to ``i ^ (1 << b)``.

    Parameters
    ----------
    d : int
        Dimension, >= 1 (``2**d`` hosts).
    link_bandwidth, link_latency : float or str
        Per link, per direction.

    Returns
    -------
    Topology
        ``d * 2**(d-1)`` links, diameter ``d``, mean distance
        ``d * 2**(d-1) / (2**d - 1)``, bisection ``2**(d-1)`` links.
    """
    d = as_count(d, "d", 1)
    if d > 23:
        raise TopologyError(f"hypercube d={d} has 2**{d} hosts; the limit is d=23")
    bw, lat = as_bandwidth(link_bandwidth), as_latency(link_latency)
    N = 1 << d
    G = _host_graph(N, "hypercube", {"d": d, "link_bandwidth": bw, "link_latency": lat})
    G.graph["name"] = f"hypercube:d={d}"
    for i in range(N):
        for b in range(d):
            j = i ^ (1 << b)
            if j > i:
                G.add_edge(f"h{i}", f"h{j}", bandwidth=bw, latency=lat, cables=1)
    closed = {
        "diameter": (d, "closed form: d"),
        "mean_distance": (d * (N // 2) / (N - 1), "closed form: d*2^(d-1)/(2^d-1)"),
        "bisection_bandwidth": ((N // 2) * bw, "closed form: 2^(d-1) links"),
    }
    return Topology(G, _closed=closed)
