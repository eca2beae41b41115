"""The dragonfly of Kim, Dally, Scott & Abts (ISCA 2008).

``g`` groups of ``a`` routers; the routers of a group form a full mesh of
local links; each router has ``p`` hosts and ``h`` global links to other
groups. With one global link between every pair of groups there are at most
``g = a*h + 1`` groups. Global-link arrangements follow Camarero, Vallejo &
Beivide, "Topological characterization of Hamming and dragonfly networks and
its implications on routing", ACM TACO 11(4), 2014:

- ``"absolute"`` (also called consecutive): global port ``j`` (0 <= j < a*h,
  port ``j`` on router ``j // h``) of group ``i`` goes to group ``j`` if
  ``j < i`` else ``j + 1``;
- ``"relative"``: port ``j`` of group ``i`` goes to group ``(i + j + 1) mod g``;
- ``"circulant"``: ports alternate offsets ``+1, -1, +2, -2, ...`` (mod g).

With fewer than ``a*h + 1`` groups the port -> target-group sequence repeats
(port ``j`` uses slot ``j mod (g - 1)``), so groups are joined by several
global links; ports left without a partner stay unused. Two global cables
between the same router pair become one edge with ``cables=2``.
"""

from __future__ import annotations

import networkx as nx

from ..errors import TopologyError
from .core import (DEFAULT_BANDWIDTH, DEFAULT_LATENCY, Topology, add_link, as_bandwidth,
                   as_count, as_latency)

__all__ = ["dragonfly", "ARRANGEMENTS"]

ARRANGEMENTS = ("absolute", "relative", "circulant")


def _targets(arrangement, i, g, ports):
    """Target group of each global port of group ``i``."""
    if g == 1:
        return []
    out = []
    if arrangement == "absolute":
        for j in range(ports):
            s = j % (g - 1)
            out.append(s if s < i else s + 1)
    elif arrangement == "relative":
        for j in range(ports):
            out.append((i + 1 + j % (g - 1)) % g)
    else:  # circulant
        offsets = []
        seen = set()
        m = 1
        while len(offsets) < g - 1:
            for o in (m, -m):
                r = o % g
                if r and r not in seen:
                    seen.add(r)
                    offsets.append(r)
            m += 1
        for j in range(ports):
            out.append((i + offsets[j % (g - 1)]) % g)
    return out


def dragonfly(a, p, h, groups=None, arrangement="absolute", *,
              link_bandwidth=DEFAULT_BANDWIDTH, link_latency=DEFAULT_LATENCY,
              local_bandwidth=None, local_latency=None,
              global_bandwidth=None, global_latency=None, switch_latency=0.0):
    """A dragonfly network (Kim et al. 2008).

    Parameters
    ----------
    a : int
        Routers per group (a full mesh of local links), >= 1.
    p : int
        Hosts per router, >= 1.
    h : int
        Global links per router, >= 1.
    groups : int, optional
        Number of groups ``g``, 1 < g <= a*h + 1 (default ``a*h + 1``, the
        maximum size; one global link per pair of groups).
    arrangement : {"absolute", "relative", "circulant"}
        How global ports are wired (see the module docstring).
    link_bandwidth, link_latency : float or str
        Host links (and the default for local and global links).
    local_bandwidth, local_latency : float or str, optional
        Router-router links inside a group.
    global_bandwidth, global_latency : float or str, optional
        Links between groups (typically long optical cables).
    switch_latency : float or str
        Per router traversal, default 0.

    Returns
    -------
    Topology
        ``a*p*g`` hosts, ``a*g`` routers (``"g{group}r{i}"``, attributes
        ``group`` and ``router``); edges carry ``kind`` = ``"host"``,
        ``"local"`` or ``"global"``. Default groups: the hosts of one
        dragonfly group; levels ``"router"`` and ``"switch"`` give the hosts
        of one router. Balanced (Kim et al.): ``a = 2p = 2h``.
    """
    a = as_count(a, "a", 1)
    p = as_count(p, "p", 1)
    h = as_count(h, "h", 1)
    gmax = a * h + 1
    g = gmax if groups is None else groups
    if isinstance(g, bool) or not isinstance(g, int) or not 2 <= g <= gmax:
        raise TopologyError(f"dragonfly a={a}, h={h}: groups={groups!r} is impossible; a group "
                            f"has a*h={a * h} global links, so 2 <= groups <= a*h+1 = {gmax}")
    if arrangement not in ARRANGEMENTS:
        raise TopologyError(f"dragonfly arrangement {arrangement!r}: expected one of "
                            f"{', '.join(ARRANGEMENTS)}")
    bw, lat = as_bandwidth(link_bandwidth), as_latency(link_latency)
    lbw = bw if local_bandwidth is None else as_bandwidth(local_bandwidth, "local_bandwidth")
    llat = lat if local_latency is None else as_latency(local_latency, "local_latency")
    gbw = bw if global_bandwidth is None else as_bandwidth(global_bandwidth, "global_bandwidth")
    glat = lat if global_latency is None else as_latency(global_latency, "global_latency")
    sl = as_latency(switch_latency, "switch_latency", allow_zero=True)
    name = f"dragonfly:a={a},p={p},h={h}" + (f",g={g}" if g != gmax else "") + \
        (f",arrangement={arrangement}" if arrangement != "absolute" else "")
    G = nx.Graph(name=name, family="dragonfly", group_level="group",
                 params={"a": a, "p": p, "h": h, "groups": g, "arrangement": arrangement,
                         "link_bandwidth": bw, "link_latency": lat,
                         "local_bandwidth": lbw, "local_latency": llat,
                         "global_bandwidth": gbw, "global_latency": glat})
    G.graph["group_attrs"] = ["router", "group"]
    hid = 0
    for grp in range(g):
        for r in range(a):
            G.add_node(f"g{grp}r{r}", kind="switch", tier="router", group=grp, router=r,
                       latency=sl)
        for r in range(a):
            rid = f"g{grp}r{r}"
            for _ in range(p):
                G.add_node(f"h{hid}", kind="host", index=hid, group=grp, router=grp * a + r)
                G.add_edge(f"h{hid}", rid, bandwidth=bw, latency=lat, cables=1, kind="host")
                hid += 1
        for r in range(a):
            for s in range(r + 1, a):
                G.add_edge(f"g{grp}r{r}", f"g{grp}r{s}", bandwidth=lbw, latency=llat, cables=1,
                           kind="local")
    # ports[i][t] = global ports of group i that point at group t, in port order
    ports = [dict() for _ in range(g)]
    for i in range(g):
        for j, t in enumerate(_targets(arrangement, i, g, a * h)):
            ports[i].setdefault(t, []).append(j)
    for i in range(g):
        for t, mine in ports[i].items():
            if t <= i:
                continue
            theirs = ports[t].get(i, [])
            for pi, pt in zip(mine, theirs):
                add_link(G, f"g{i}r{pi // h}", f"g{t}r{pt // h}", gbw, glat, kind="global")
    closed = {
        "bisection_bandwidth": (_group_halving_cut,
                                "cut between two halves of the groups, hosts balanced "
                                "(Kim et al. 2008), or a spectral bisection if smaller "
                                "(up to 5,000 nodes); an upper bound on the bisection"),
    }
    if g == gmax and a >= 2:
        closed["diameter"] = (5, "closed form: 5 (host, local, global, local, host; "
                                 "one global link per group pair)")
    elif g == gmax:
        closed["diameter"] = (3, "closed form: 3 (one router per group)")
    return Topology(G, _closed=closed)


def _group_halving_cut(topo):
    from .metrics import cut_bandwidth, spectral_cut

    # hosts are numbered group by group: the first half of them is the first half of the groups
    N = len(topo.hosts)
    cut = cut_bandwidth(topo, set(topo.hosts[: N // 2]))
    if topo.graph.number_of_nodes() <= 5000:
        cut = min(cut, spectral_cut(topo))
    return cut
