"""``collectives topo``: describe, draw, export and route topologies.

::

    collectives topo describe SPEC|FILE [--json] [--port-cost X] [--cable-cost Y] [--nic-port-cost Z]
    collectives topo draw SPEC|FILE -o file.png          (needs: pip install matplotlib (the plot extra))
    collectives topo export SPEC|FILE -o file.{json,graphml,conf}
    collectives topo routes SPEC|FILE SRC DST [--routing ecmp|minimal|valiant]
    collectives topo families

User errors print one line to stderr and return exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import CollectivesError, InvalidArgument

__all__ = ["add_parser", "main"]

_EPILOG = """\
SPEC examples: fat-tree:k=8  dragonfly:a=4,p=2,h=2  full-mesh:n=16  torus:4x4x4
  hypercube:d=6  star:n=8  leaf-spine:leaves=4,hosts=8,spines=2  ring:n=8
  multi-node:nodes=4,devices=8,inter=(fat-tree:k=4)
options for every family: bw=100Gbps lat=500ns (see `collectives topo families`)
FILE: networkx node-link JSON, GraphML, or a Slurm topology.conf"""


def _price(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return v


def add_parser(subparsers) -> None:
    """Register the ``topo`` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser(
        "topo", help="describe, draw and export network topologies",
        description="Build a topology from a spec string or read it from a file, and print its "
                    "metrics, draw it or convert it.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="topo_action", metavar="ACTION")
    p.set_defaults(func=_guard(lambda args: _no_action(p)))

    d = sub.add_parser("describe", help="print hosts, switches, links, ports, diameter, "
                                        "bisection bandwidth and cost",
                       epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("topology", metavar="SPEC|FILE")
    d.add_argument("--json", action="store_true", help="print JSON (units: bytes, s, bytes/s)")
    d.add_argument("--port-cost", type=_price, default=None, metavar="X",
                   help="price of one switch port (default 500)")
    d.add_argument("--nic-port-cost", type=_price, default=None, metavar="X",
                   help="price of one host/NIC port (default 500)")
    d.add_argument("--cable-cost", type=_price, default=None, metavar="Y",
                   help="price of one cable (default 250)")
    d.add_argument("--sample", type=int, default=256, metavar="N",
                   help="BFS sources when an exact distance computation is too large (default 256)")
    d.set_defaults(func=_guard(_describe))

    dr = sub.add_parser("draw", help="draw a small topology to an image (needs matplotlib)")
    dr.add_argument("topology", metavar="SPEC|FILE")
    dr.add_argument("-o", "--output", required=True, help="image file (.png, .svg, .pdf)")
    dr.add_argument("--max-nodes", type=int, default=2000,
                    help="refuse to draw larger graphs (default 2000)")
    dr.set_defaults(func=_guard(_draw))

    e = sub.add_parser("export", help="write a topology as JSON, GraphML or topology.conf")
    e.add_argument("topology", metavar="SPEC|FILE")
    e.add_argument("-o", "--output", required=True,
                   help="output file; the format follows the extension (.json, .graphml, .conf)")
    e.add_argument("--format", choices=("json", "graphml", "slurm"), default=None)
    e.set_defaults(func=_guard(_export))

    r = sub.add_parser("routes", help="print the routes between two hosts")
    r.add_argument("topology", metavar="SPEC|FILE")
    r.add_argument("src")
    r.add_argument("dst")
    r.add_argument("--routing", choices=("ecmp", "minimal", "valiant"), default=None)
    r.add_argument("--max-paths", type=int, default=64, help="print at most this many (default 64)")
    r.set_defaults(func=_guard(_routes))

    f = sub.add_parser("families", help="list the spec families and their options")
    f.set_defaults(func=_guard(_families))


def _guard(fn):
    def run(args):
        try:
            return int(fn(args) or 0)
        except (CollectivesError, InvalidArgument) as exc:
            print(f"collectives topo: error: {exc}", file=sys.stderr)
            return 2
    return run


def _no_action(p):
    p.print_help()
    return 2


def _describe(args):
    from .metrics import format_describe
    from .spec import resolve

    topo = resolve(args.topology)
    d = topo.describe(port_cost=args.port_cost, cable_cost=args.cable_cost,
                      nic_port_cost=args.nic_port_cost, sample=max(1, args.sample))
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        print(format_describe(d))
    return 0


def _export(args):
    from .io import write
    from .spec import resolve

    topo = resolve(args.topology)
    write(topo, args.output, format=args.format)
    print(f"wrote {topo.name} ({len(topo.hosts)} hosts, {topo.graph.number_of_edges()} links) "
          f"to {args.output}")
    return 0


def _routes(args):
    from .spec import resolve

    topo = resolve(args.topology)
    router = topo.router(args.routing)
    n = router.num_paths(args.src, args.dst)
    print(f"{n} route(s) from {args.src} to {args.dst} ({router.mode})")
    routes = router.routes(args.src, args.dst, max_paths=max(n, 1)) if n <= 100_000 else []
    for path, w in routes[: args.max_paths]:
        print(f"  {w:.4f}  " + " - ".join(map(str, path)))
    if n > args.max_paths:
        print(f"  ... {n - args.max_paths} more")
    return 0


def _families(args):
    from .spec import FAMILIES

    for fam, (_, required, options) in FAMILIES.items():
        opts = [o for o in options if o not in required]
        print(f"{fam:<11} {','.join(f'{r}=' for r in required):<22} "
              f"options: {', '.join(opts + ['bw', 'lat'])}")
    return 0


#: switched networks with more hosts than this are drawn with each leaf's hosts folded into it
MAX_DRAWN_HOSTS = 64


def _torus_positions(topo):
    """Grid positions of a torus of any dimension: dims 0 and 1 span a 2-D slice, the slices of
    the remaining dims are laid side by side (then in rows), one empty column/row between them."""
    import math

    G = topo.graph
    dims = list(topo.params.get("dims") or [])
    nx0, ny0 = dims[0], dims[1] if len(dims) > 1 else 1
    slices = 1
    for d in dims[2:]:
        slices *= d
    per_row = max(1, math.ceil(math.sqrt(slices)))
    pos = {}
    for n in G:
        c = list(G.nodes[n]["coord"]) + [0, 0]
        rest = 0
        for d, k in zip(dims[2:], c[2:len(dims)]):
            rest = rest * d + k
        col, row = rest % per_row, rest // per_row
        pos[n] = (c[0] + col * (nx0 + 1), -(c[1] + row * (ny0 + 1)))
    return pos


def _neighbours_in_grid(pos, u, v):
    (x0, y0), (x1, y1) = pos[u], pos[v]
    return abs(x0 - x1) + abs(y0 - y1) <= 1.0 + 1e-9


def _layout(topo):
    """Node positions for ``topo draw`` and the edges worth drawing (None: all of them)."""
    import math

    import networkx as nx

    G = topo.graph
    fam = topo.family
    if fam in ("ring", "full-mesh"):
        return nx.circular_layout(G, scale=1.0), None
    if fam == "torus" and topo.params.get("dims"):
        pos = _torus_positions(topo)
        # wrap-around links would cross the whole slice, links between slices the whole
        # picture: they are left out (the title says so)
        edges = [(u, v) for u, v in G.edges() if _neighbours_in_grid(pos, u, v)]
        return pos, edges
    if fam == "dragonfly":
        # groups on a circle, routers on a small circle per group, hosts outside their router
        p = topo.params
        g, a = p["groups"], p["a"]
        pos, centre = {}, {}
        R = 1.0
        r = 0.55 * math.sin(math.pi / g) if g > 1 else 0.3
        for n, d in G.nodes(data=True):
            if d["kind"] == "switch":
                ga = 2 * math.pi * d["group"] / g
                ra = ga + 2 * math.pi * (d["router"] + 0.5) / a
                cx, cy = R * math.cos(ga), R * math.sin(ga)
                pos[n] = (cx + r * math.cos(ra), cy + r * math.sin(ra))
                centre[n] = (cx, cy)
        seen = {}
        for h in topo.hosts:
            rt = next(iter(G.adj[h]))
            (x, y), (cx, cy) = pos[rt], centre[rt]
            k = sum(1 for m in G.adj[rt] if G.nodes[m]["kind"] == "host")
            i = seen[rt] = seen.get(rt, -1) + 1
            ang = math.atan2(y - cy, x - cx) + 0.6 * (i - (k - 1) / 2) / max(k, 1)
            pos[h] = (x + 0.45 * r * math.cos(ang), y + 0.45 * r * math.sin(ang))
        return pos, None
    if topo.switched:
        return _layered(G, list(topo.hosts), topo.hop_levels()), None
    return nx.spring_layout(G, seed=0), None


def _layered(G, bottom, level):
    """Positions by layer: ``bottom`` (in order) on the ground, every other node at its
    ``level`` (hops from the hosts), ordered within its layer by the mean position of its
    neighbours one layer down."""
    layers = {}
    for n, lv in level.items():
        if n in G:
            layers.setdefault(lv, []).append(n)
    x = {h: float(i) for i, h in enumerate(bottom)}
    width = max(len(bottom) - 1, 1)
    pos = {h: (x[h], 0.0) for h in bottom}
    for lv in sorted(layers):
        nodes = [n for n in layers[lv] if n not in pos]
        if not nodes:
            continue

        def bary(n):
            xs = [x[m] for m in G.adj[n] if m in x and level.get(m, lv) < lv]
            return sum(xs) / len(xs) if xs else 0.0

        nodes.sort(key=lambda n: (bary(n), str(n)))
        step = width / max(len(nodes), 1)
        for i, n in enumerate(nodes):
            x[n] = (i + 0.5) * step if len(nodes) > 1 else width / 2
            pos[n] = (x[n], lv * width / max(len(layers), 2))
    return pos


def _folded(topo):
    """The graph without hosts, and each switch's number of attached hosts."""
    G = topo.graph
    hosts = set(topo.hosts)
    folded = G.subgraph([n for n in G if n not in hosts]).copy()
    attached = {n: sum(1 for m in G.adj[n] if m in hosts) for n in folded}
    return folded, attached


def _draw(args):
    from .spec import resolve

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidArgument('drawing needs matplotlib: pip install matplotlib (the plot extra)') from None
    import networkx as nx

    topo = resolve(args.topology)
    G = topo.graph
    if G.number_of_nodes() > args.max_nodes:
        raise InvalidArgument(f"{topo.name} has {G.number_of_nodes()} nodes; drawing is for small "
                              f"topologies (raise --max-nodes to try anyway)")
    title = topo.name
    if topo.switched and len(topo.hosts) > MAX_DRAWN_HOSTS and topo.family != "dragonfly":
        # a thousand host dots under their leaves is ink, not information: fold them in
        G, attached = _folded(topo)
        first_host = {}
        for i, h in enumerate(topo.hosts):
            for m in topo.graph.adj[h]:
                first_host.setdefault(m, i)
        leaves = sorted((n for n in G if attached[n]), key=lambda n: first_host.get(n, 0))
        pos = _layered(G, leaves, topo.hop_levels())
        edges = None
        title += f" (hosts folded into their switches: {len(topo.hosts)} in all)"
    else:
        attached = {}
        pos, edges = _layout(topo)
        if edges is not None and len(edges) < G.number_of_edges():
            dims = topo.params.get("dims") or []
            across = " and the links between slices (dims 3 on: slices left to right, then down)" \
                if len(dims) > 2 else ""
            title += (f"\n{G.number_of_edges() - len(edges)} links not drawn: the wrap-around "
                      f"links{across}")
    colors = {"host": "#4c72b0", "switch": "#dd8452", "nic": "#55a868"}
    fig, ax = plt.subplots(figsize=(10, 7))
    many = G.number_of_edges() > 500
    nx.draw_networkx_edges(G, pos, edgelist=edges, ax=ax, width=0.3 if many else 0.6,
                           alpha=0.25 if many else 0.5)
    for kind, color in colors.items():
        nodes = [n for n, k in G.nodes(data="kind") if k == kind]
        if nodes:
            sizes = [40 + 4 * attached.get(n, 0) if attached else (60 if kind == "host" else 120)
                     for n in nodes]
            nx.draw_networkx_nodes(G, pos, nodelist=nodes, node_color=color, ax=ax,
                                   node_size=sizes, label=kind)
    if G.number_of_nodes() <= 64:
        nx.draw_networkx_labels(G, pos, ax=ax, font_size=6)
    ax.set_aspect("equal" if topo.family in ("dragonfly", "ring", "full-mesh", "torus") else "auto")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    ax.axis("off")
    try:
        fig.savefig(args.output, dpi=150, bbox_inches="tight")
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot write {args.output!r}: {exc}") from None
    finally:
        plt.close(fig)
    print(f"wrote {args.output}")
    return 0


def main(argv=None) -> int:
    """Run ``collectives topo ...`` with ``argv`` the arguments after ``topo``."""
    parser = argparse.ArgumentParser(prog="collectives")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "topo":
        argv = ["topo"] + argv
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
