"""Write one of our topologies as a SimGrid platform file (XML, DTD version 4.1).

The platform has the same hosts, the same switches (as SimGrid routers) and
the same links as the :class:`collectives.topology.Topology`, each link with
its bandwidth and latency and ``sharing_policy="SPLITDUPLEX"`` (each direction
its own capacity, as in our model). Routes are written explicitly in one
``Full`` zone, taken from our own router (:meth:`Topology.router`), so SMPI
moves every message over the links our model puts it on:

- ECMP families (star, leaf-spine, fat-tree): the shortest paths;
- dragonfly: Kim et al.'s minimal routing, as the model uses.

SimGrid routes a pair of hosts over one path. Where our router spreads a
flow evenly over several equal-cost paths, the writer keeps one of them:
path ``d mod k`` of the ``k`` paths sorted by link ids, ``d`` the index of the
destination host (destination-mod-k, what fat-tree switches do). For the
shift and xor patterns of ring, recursive halving, pairwise and Bruck this
loads the parallel links about as evenly as the split does (on the grid's
leaf-spine SMPI's pairwise comes out at most 2% slower than ours);
``info["multipath_pairs"]`` counts the pairs where the choice was made.

A star (``star(n)``, one non-blocking switch) is written as SimGrid's own
``<cluster>`` without a backbone instead (``cluster=True``, the default): each
host gets a private SPLITDUPLEX link to a crossbar that never limits, which is
exactly our star, and SimGrid routes it without a table, so 1024 hosts cost
nothing to parse (a table would have a million routes). The switch then is
not a router of its own: the cluster's crossbar stands for it.

SimGrid's other zones were not used: the dragonfly
zone wires chassis and blades in rows and columns (not our full mesh of
routers per group, nor our global-link arrangement), and the fat-tree zone
takes one switch radix per level with parallel links, which our leaf-spine
builder does not make. Explicit routes match our graph exactly for every
family; they cost ``ranks**2`` route entries (a 17 MB file for 256 ranks on a
dragonfly, which SMPI reads in seconds).

Usage::

    python bench/smpi/platform_writer.py "dragonfly:a=4,p=2,h=2" out.xml --ranks 64

(see ``--help``), or :func:`write_platform` from Python.
"""

from __future__ import annotations

import argparse
import sys
from xml.sax.saxutils import quoteattr

import collectives as cl
from collectives.errors import TopologyError

__all__ = ["write_platform", "platform_xml", "link_name", "HOST_SPEED"]

#: Every host's CPU speed. Computation is not simulated in our comparison
#: (``smpi/simulate-computation:no``), so the value never enters a time.
HOST_SPEED = "1Gf"


def link_name(topo, edge_index):
    """The SimGrid id of undirected edge ``edge_index`` of ``topo``: ``"u--v"``."""
    u, v = topo.edges[edge_index]
    return f"{u}--{v}"


def _routes(topo, hosts, routing):
    """``{(a, b): [directed link ids]}`` for every ordered pair of distinct hosts,
    and the number of pairs that had more than one equal-cost path."""
    router = topo.router(routing)
    index = {h: i for i, h in enumerate(topo.hosts)}
    routes, multipath = {}, 0
    for a in hosts:
        for b in hosts:
            if a == b:
                continue
            paths, _ = router.link_paths(a, b)
            if len(paths) > 1:
                multipath += 1
                paths = sorted(paths, key=lambda p: tuple(p.tolist()))
            routes[a, b] = paths[index[b] % len(paths)].tolist()
    return routes, multipath


def _check(topo):
    for n in topo.switches + topo.nics:
        lat = topo.graph.nodes[n].get("latency", 0.0) or 0.0
        if lat:
            raise TopologyError(f"switch {n!r} has latency {lat} s: SimGrid routers have none; "
                                "build the topology with switch_latency=0 (the default) or fold "
                                "it into the link latencies")


def _is_star(topo):
    """One switch, every host hung off it by a link of the same bandwidth and latency,
    and host ids h0..h{n-1} in order (what a SimGrid cluster names its hosts)."""
    if len(topo.switches) != 1 or topo.nics or topo.graph.number_of_edges() != len(topo.hosts):
        return False
    if list(topo.hosts) != [f"h{i}" for i in range(len(topo.hosts))]:
        return False
    links = topo.links
    return bool((links.bandwidth == links.bandwidth[0]).all() and
                (links.latency == links.latency[0]).all())


def _cluster_xml(topo):
    links = topo.links
    bw, lat = float(links.bandwidth[0]), float(links.latency[0])
    n = len(topo.hosts)
    xml = "\n".join([
        "<?xml version='1.0'?>",
        '<!DOCTYPE platform SYSTEM "https://simgrid.org/simgrid.dtd">',
        f"<!-- {topo.name}: written by bench/smpi/platform_writer.py from collectives.topology; "
        f"the cluster's crossbar (no backbone) is switch {topo.switches[0]} -->",
        '<platform version="4.1">',
        f'<cluster id="net" prefix="h" suffix="" radical="0-{n - 1}" speed="{HOST_SPEED}" '
        f'bw="{bw!r}Bps" lat="{lat!r}s" sharing_policy="SPLITDUPLEX"/>',
        "</platform>", ""])
    info = {"topology": topo.name, "hosts": n, "routers": 0, "links": n,
            "routes": 0, "multipath_pairs": 0, "zone": "cluster"}
    return xml, info


def platform_xml(topology, hosts=None, routing=None, cluster=True):
    """The platform file's text and a summary of what it holds.

    Parameters
    ----------
    topology : Topology or str
        A topology or a spec such as ``"leaf-spine:leaves=4,hosts=8,spines=4"``.
    hosts : list of str, optional
        The hosts that get routes (those ranks run on); default every host.
        All hosts, switches and links are written regardless.
    routing : str, optional
        Our routing mode (``"ecmp"``, ``"minimal"``, ``"valiant"``); default
        the family's, as in the model.
    cluster : bool
        Write a star as a SimGrid ``<cluster>`` (routes implicit, every host
        routed); False writes it as any other graph.

    Returns
    -------
    xml : str
    info : dict
        ``hosts``, ``routers``, ``links`` (undirected, each SPLITDUPLEX),
        ``routes`` (ordered host pairs written), ``multipath_pairs``, ``zone``
        (``"full"`` or ``"cluster"``).

    Raises
    ------
    collectives.errors.TopologyError
        A switch with a latency of its own (SimGrid routers have none), a host
        not in the topology, or valiant routing (it spreads every flow over
        every intermediate group; one path per pair cannot express it).
    """
    topo = cl.topology.resolve(topology) if isinstance(topology, str) else topology
    _check(topo)
    if routing == "valiant":
        raise TopologyError("valiant routing spreads each flow over all intermediate groups; a "
                            "SimGrid route is one path: use minimal routing")
    hosts = list(topo.hosts) if hosts is None else list(hosts)
    known = set(topo.hosts)
    for h in hosts:
        if h not in known:
            raise TopologyError(f"host {h!r} is not a host of {topo.name}")
    if cluster and _is_star(topo):
        return _cluster_xml(topo)
    routes, multipath = _routes(topo, hosts, routing)
    links = topo.links
    out = ["<?xml version='1.0'?>",
           '<!DOCTYPE platform SYSTEM "https://simgrid.org/simgrid.dtd">',
           f"<!-- {topo.name}: written by bench/smpi/platform_writer.py from collectives.topology -->",
           '<platform version="4.1">',
           f'<zone id="net" routing="Full">']
    for h in topo.hosts:
        out.append(f'  <host id={quoteattr(str(h))} speed="{HOST_SPEED}"/>')
    routers = topo.switches + topo.nics
    for n in routers:
        out.append(f"  <router id={quoteattr(str(n))}/>")
    for e in range(len(topo.edges)):
        # both directions of one edge have the same bandwidth and latency
        bw, lat = float(links.bandwidth[2 * e]), float(links.latency[2 * e])
        out.append(f"  <link id={quoteattr(link_name(topo, e))} bandwidth=\"{bw!r}Bps\" "
                   f"latency=\"{lat!r}s\" sharing_policy=\"SPLITDUPLEX\"/>")
    names = [link_name(topo, e) for e in range(len(topo.edges))]
    for (a, b), ids in routes.items():
        out.append(f"  <route src={quoteattr(str(a))} dst={quoteattr(str(b))} symmetrical=\"NO\">")
        for lid in ids:
            # link 2e runs u -> v of edge e = (u, v): SimGrid's UP half; 2e + 1 the DOWN half
            direction = "UP" if lid % 2 == 0 else "DOWN"
            out.append(f"    <link_ctn id={quoteattr(names[lid // 2])} direction=\"{direction}\"/>")
        out.append("  </route>")
    out += ["</zone>", "</platform>", ""]
    info = {"topology": topo.name, "hosts": len(topo.hosts), "routers": len(routers),
            "links": len(topo.edges), "routes": len(routes), "multipath_pairs": multipath,
            "zone": "full"}
    return "\n".join(out), info


def write_platform(topology, path, hosts=None, routing=None, hostfile=None, cluster=True):
    """Write the platform of ``topology`` to ``path`` (see :func:`platform_xml`).

    ``hostfile``, if given, receives the routed hosts one per line, in order:
    rank ``i`` runs on line ``i`` (smpirun's ``-hostfile``). Returns the info dict.
    """
    xml, info = platform_xml(topology, hosts, routing, cluster)
    with open(path, "w") as f:
        f.write(xml)
    if hostfile is not None:
        topo = cl.topology.resolve(topology) if isinstance(topology, str) else topology
        with open(hostfile, "w") as f:
            f.write("\n".join(map(str, topo.hosts if hosts is None else hosts)) + "\n")
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write a SimGrid platform file for one of our "
                                             "topologies (explicit routes from our router).")
    ap.add_argument("topology", help='a spec such as "dragonfly:a=4,p=2,h=2" or a topology file')
    ap.add_argument("output", help="platform XML to write")
    ap.add_argument("--ranks", type=int, default=None,
                    help="route only the first RANKS hosts (linear placement); default all")
    ap.add_argument("--hostfile", default=None, help="also write an smpirun hostfile")
    ap.add_argument("--routing", default=None, help="ecmp or minimal (default: the family's)")
    ap.add_argument("--no-cluster", action="store_true",
                    help="write a star with explicit routes, not as a SimGrid <cluster>")
    args = ap.parse_args(argv)
    topo = cl.topology.resolve(args.topology)
    hosts = topo.hosts if args.ranks is None else topo.hosts[:args.ranks]
    info = write_platform(topo, args.output, hosts, args.routing, args.hostfile,
                          cluster=not args.no_cluster)
    print(" ".join(f"{k}={v}" for k, v in info.items()))


if __name__ == "__main__":
    sys.exit(main())
