"""``collectives plan``, ``collectives whatif`` and ``collectives calibrate``."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time

from ..errors import InvalidArgument

COLLECTIVE_ALIASES = {"allreduce": "allreduce", "all-reduce": "allreduce",
                      "alltoall": "alltoall", "all-to-all": "alltoall",
                      "reduce_scatter": "reduce_scatter", "reduce-scatter": "reduce_scatter",
                      "reducescatter": "reduce_scatter", "allgather": "allgather",
                      "all-gather": "allgather", "broadcast": "broadcast", "bcast": "broadcast"}

FAMILIES = ("full-mesh", "fat-tree", "dragonfly", "torus")


def add_parser(sub):
    p = sub.add_parser("plan", help="decision table: the planner's choice per message size",
                       description="Price every algorithm in the model for each size and print the "
                                   "planner's choice, like the tuning files of MPICH and Open MPI.")
    p.add_argument("--topology", "-t", required=True, help="topology spec or file, e.g. fat-tree:k=8")
    p.add_argument("--ranks", "-n", type=int, default=None, help="ranks (default: every host)")
    p.add_argument("--sizes", "-s", default="8:1G", help="sizes per rank, e.g. 8:1G or 1K,1M (default 8:1G)")
    p.add_argument("--collective", "-c", default="allreduce", help="collective (default allreduce)")
    p.add_argument("--placement", default=None, help="linear (default), round-robin or random")
    p.add_argument("--routing", default=None, help="ecmp, minimal or valiant (dragonfly)")
    _model_args(p)
    p.add_argument("--format", "-f", choices=("table", "json", "csv"), default="table")
    p.add_argument("-o", "--output", default=None, help="write to FILE instead of stdout")
    p.add_argument("--explain", action="store_true", help="print every candidate for each size")
    p.set_defaults(func=plan_main)

    w = sub.add_parser("whatif", help="what-if study: size network designs for N ranks, price collectives",
                       description="Sizes each topology family for the rank count and reports, per "
                                   "design, collective and size: predicted time, algbw and busbw "
                                   "(nccl-tests definitions), the planner's algorithm, switches, "
                                   "cables, ports per endpoint and bisection bandwidth. Sizing: "
                                   "full mesh of N; the smallest fat-tree k (even) with k^3/4 >= N; "
                                   "the smallest balanced dragonfly a=2p=2h with a*p*(a*h+1) >= N; "
                                   "the smallest 3-D torus c^3 >= N (c even).")
    w.add_argument("--ranks", "-n", type=int, required=True)
    w.add_argument("--topologies", "-t", default="full-mesh,fat-tree,dragonfly",
                   help=f"families ({', '.join(FAMILIES)}) or explicit specs, comma separated")
    w.add_argument("--collectives", "-c", default="allreduce,alltoall")
    w.add_argument("--sizes", "-s", default="1K,1M,64M,1G")
    w.add_argument("--link-bandwidth", default="100Gbps", help="every link (default 100Gbps)")
    w.add_argument("--link-latency", default="500ns", help="every link (default 500ns)")
    w.add_argument("--routing", default=None, help="dragonfly routing: minimal (default) or valiant")
    _model_args(w)
    w.add_argument("--format", "-f", choices=("table", "csv", "json", "markdown"), default="table")
    w.add_argument("-o", "--output", default=None)
    w.add_argument("--plot", default=None, help="write a PNG plot (needs matplotlib)")
    w.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    w.set_defaults(func=whatif_main)

    c = sub.add_parser("calibrate", help="fit the model's alpha/beta/gamma on this machine (under mpiexec)",
                       description="Ping-pong inside and between nodes and time the reduction kernel; "
                                   "fit the model constants; write a profile for COLLECTIVES_PROFILE. "
                                   "Run as: mpiexec -n 2 collectives calibrate -o profile.json")
    c.add_argument("-o", "--output", default="collectives-profile.json")
    c.add_argument("--sizes", default=None, help="ping-pong sizes (default 8:4M by 8)")
    c.add_argument("--iters", type=int, default=20)
    c.set_defaults(func=calibrate_main)


def _model_args(p):
    p.add_argument("--overhead", default=None, help="per message, e.g. 1us (default 1us)")
    p.add_argument("--reduce-bandwidth", default=None, help="e.g. 8GB/s or inf (default 8GB/s)")
    p.add_argument("--switch-latency", default=None, help="per switch traversal (default 0)")


def _model_kw(args):
    from ..units import parse_bandwidth, parse_time

    kw = {}
    if args.overhead is not None:
        kw["overhead"] = parse_time(args.overhead, name="--overhead")
    if args.reduce_bandwidth is not None:
        rb = args.reduce_bandwidth.strip().lower()
        kw["reduce_bandwidth"] = float("inf") if rb in ("inf", "none") else \
            parse_bandwidth(args.reduce_bandwidth, name="--reduce-bandwidth")
    if args.switch_latency is not None:
        kw["switch_latency"] = parse_time(args.switch_latency, name="--switch-latency")
    if getattr(args, "routing", None):
        kw["routing"] = args.routing
    return kw


def _collective(name):
    c = COLLECTIVE_ALIASES.get(name.strip().lower())
    if c is None:
        raise InvalidArgument(f"unknown collective {name!r}: accepted are "
                              "allreduce, alltoall, reduce_scatter, allgather, broadcast")
    return c


def _write(text, output):
    if output:
        try:
            with open(output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            from ..errors import TopologyFileError
            raise TopologyFileError(f"cannot write {output!r}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)


def _table(headers, rows):
    w = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
         for i, h in enumerate(headers)]
    out = ["  ".join(str(h).ljust(w[i]) for i, h in enumerate(headers)),
           "  ".join("-" * x for x in w)]
    for r in rows:
        out.append("  ".join(str(v).rjust(w[i]) if isinstance(v, str) and v[:1].isdigit()
                             else str(v).ljust(w[i]) for i, v in enumerate(r)))
    return "\n".join(out) + "\n"


def _markdown(headers, rows):
    out = ["| " + " | ".join(map(str, headers)) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _csv(headers, rows):
    buf = io.StringIO()
    wr = csv.writer(buf)
    wr.writerow(headers)
    wr.writerows(rows)
    return buf.getvalue()


# ---------------------------------------------------------------------- plan
def plan_main(args) -> int:
    from ..busbw import busbw_factor
    from ..planner import choose
    from ..units import format_bandwidth, format_bytes, format_time, parse_size_range
    from .simulate import _num_hosts, resolve_topology

    coll = _collective(args.collective)
    sizes = parse_size_range(args.sizes)
    topo = resolve_topology(args.topology)
    ranks = args.ranks or _num_hosts(topo)
    kw = _model_kw(args)
    if args.placement:
        kw["placement"] = args.placement
    rows = []
    plans = []
    for n in sizes:
        itemsize = 4 if n % 4 == 0 else 1
        if coll == "alltoall" and (n // itemsize) % ranks:
            n = max(ranks * itemsize, (n // (ranks * itemsize)) * ranks * itemsize)
        pl = choose(coll, n, topo, ranks, itemsize=itemsize, **kw)
        plans.append(pl)
        runner = sorted((c for c in pl.candidates if c.time is not None and c.executable),
                        key=lambda c: c.time)
        second = runner[1] if len(runner) > 1 else None
        algbw = n / pl.predicted_time if pl.predicted_time else float("inf")
        rows.append((n, pl, algbw, algbw * busbw_factor(coll, ranks), second))
    if args.format == "json":
        rules = []
        for n, pl, *_ in rows:
            if rules and rules[-1]["algorithm"] == pl.algorithm and rules[-1]["label"] == pl.label:
                rules[-1]["max_bytes"] = n
            else:
                rules.append({"min_bytes": n, "max_bytes": n, "algorithm": pl.algorithm,
                              "label": pl.label})
        doc = {"collective": coll, "topology": topo.name, "ranks": ranks,
               "model": {k: (v if not isinstance(v, float) or math.isfinite(v) else "inf")
                         for k, v in kw.items() if k != "placement"},
               "placement": args.placement or "linear", "rules": rules,
               "sizes": [{"bytes": n, "algorithm": pl.algorithm, "label": pl.label,
                          "time": pl.predicted_time, "algbw": a, "busbw": b,
                          "runner_up": s.label if s else None,
                          "runner_up_time": s.time if s else None}
                         for n, pl, a, b, s in rows]}
        _write(json.dumps(doc, indent=2) + "\n", args.output)
        return 0
    headers = ["size", "algorithm", "time", "algbw", "busbw", "runner-up", "its time"]
    if args.format == "csv":
        body = [(n, pl.label, f"{pl.predicted_time:.6e}", f"{a:.6e}", f"{b:.6e}",
                 s.label if s else "", f"{s.time:.6e}" if s else "") for n, pl, a, b, s in rows]
        _write(_csv(["bytes", "algorithm", "time_s", "algbw_Bps", "busbw_Bps", "runner_up",
                     "runner_up_time_s"], body), args.output)
        return 0
    body = [(format_bytes(n), pl.label, format_time(pl.predicted_time), format_bandwidth(a),
             format_bandwidth(b), s.label if s else "-", format_time(s.time) if s else "-")
            for n, pl, a, b, s in rows]
    text = (f"# {coll} on {ranks} ranks of {topo.name}"
            f"{' (' + args.placement + ' placement)' if args.placement else ''}\n" + _table(headers, body))
    if args.explain:
        text += "\n" + "\n\n".join(pl.explain() for pl in plans) + "\n"
    _write(text, args.output)
    return 0


# ---------------------------------------------------------------------- whatif
def size_design(family, N, bw, lat):
    """(spec label, Topology or VirtualFullMesh) of the smallest ``family`` design for N endpoints."""
    from .. import topology as T
    from .network import VirtualFullMesh

    if family in ("full-mesh", "mesh", "fullmesh"):
        if N <= 2048:
            return f"full-mesh:n={N}", T.full_mesh(N, link_bandwidth=bw, link_latency=lat)
        return f"full-mesh:n={N}", VirtualFullMesh(N, bw, lat)
    if family in ("fat-tree", "fattree"):
        k = 2
        while k ** 3 // 4 < N:
            k += 2
        return f"fat-tree:k={k}", T.fat_tree(k, link_bandwidth=bw, link_latency=lat)
    if family in ("dragonfly", "df"):
        p = 1
        while (2 * p) * p * ((2 * p) * p + 1) < N:
            p += 1
        return (f"dragonfly:a={2 * p},p={p},h={p}",
                T.dragonfly(2 * p, p, p, link_bandwidth=bw, link_latency=lat))
    if family == "torus":
        c = 2
        while c ** 3 < N:
            c += 2
        return f"torus:{c}x{c}x{c}", T.torus((c, c, c), link_bandwidth=bw, link_latency=lat)
    from .simulate import resolve_topology

    t = resolve_topology(family)
    return getattr(t, "name", family), t


def _metrics(topo, N):
    d = topo.describe()
    hosts = d["hosts"]
    ports = d.get("ports")
    if d.get("switches", 0) == 0:
        per_ep = d.get("ports_per_host") or (2 * d["links"] / hosts)
    else:
        per_ep = ports / hosts if ports else None
    return {"hosts": hosts, "switches": d.get("switches", 0), "cables": d.get("cables"),
            "ports_per_endpoint": per_ep, "bisection_bandwidth": d.get("bisection_bandwidth"),
            "unused_hosts": hosts - N}


class _Progress:
    def __init__(self, total, enabled):
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.enabled = enabled and total > 1

    def step(self, what):
        self.done += 1
        if not self.enabled:
            return
        frac = self.done / self.total
        bar = "#" * int(30 * frac)
        el = time.perf_counter() - self.t0
        sys.stderr.write(f"\r[{bar:<30}] {self.done}/{self.total} {el:5.1f}s {what[:40]:<40}")
        sys.stderr.flush()
        if self.done == self.total:
            sys.stderr.write("\n")


def whatif(ranks, families, collectives, sizes, *, link_bandwidth=12.5e9, link_latency=500e-9,
           progress=False, **model):
    """The what-if study as a list of row dicts (see ``collectives whatif --help``)."""
    from ..busbw import busbw_factor
    from ..planner import choose

    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 2:
        raise InvalidArgument(f"--ranks must be an integer >= 2, got {ranks!r}")
    designs = [size_design(f.strip(), ranks, link_bandwidth, link_latency) for f in families]
    prog = _Progress(len(designs) * len(collectives) * len(sizes), progress)
    rows = []
    for label, topo in designs:
        m = _metrics(topo, ranks)
        mp = dict(model)
        if mp.get("routing") in ("minimal", "valiant") and getattr(topo, "family", None) != "dragonfly":
            # dragonfly routing modes apply to the dragonfly designs; the others keep ECMP
            mp.pop("routing")
        elif mp.get("routing") and getattr(topo, "family", None) == "dragonfly":
            label = f"{label} ({mp['routing']} routing)"
        for coll in collectives:
            for n in sizes:
                if coll == "alltoall":
                    n = max(ranks * 4, (n // (ranks * 4)) * ranks * 4)
                elif n % 4:
                    n -= n % 4
                pl = choose(coll, n, topo, ranks, itemsize=4, **mp)
                t = pl.predicted_time
                algbw = n / t if t else float("inf")
                rows.append({"design": label, "collective": coll, "bytes": n, "time": t,
                             "algbw": algbw, "busbw": algbw * busbw_factor(coll, ranks),
                             "algorithm": pl.label, **m})
                prog.step(f"{label} {coll} {n}")
    return rows


def whatif_main(args) -> int:
    from ..units import (format_bandwidth, format_bytes, format_time, parse_bandwidth,
                         parse_size_range, parse_time)

    fams = [f for f in args.topologies.split(",") if f.strip()]
    colls = [_collective(c) for c in args.collectives.split(",") if c.strip()]
    sizes = parse_size_range(args.sizes)
    bw = parse_bandwidth(args.link_bandwidth, name="--link-bandwidth")
    lat = parse_time(args.link_latency, name="--link-latency")
    kw = _model_kw(args)
    rows = whatif(args.ranks, fams, colls, sizes, link_bandwidth=bw, link_latency=lat,
                  progress=not args.no_progress and sys.stderr.isatty(), **kw)
    keys = ["design", "collective", "bytes", "time", "algbw", "busbw", "algorithm", "switches",
            "cables", "ports_per_endpoint", "bisection_bandwidth", "hosts"]
    if args.format == "json":
        text = json.dumps({"ranks": args.ranks, "link_bandwidth": bw, "link_latency": lat,
                           "rows": rows}, indent=2) + "\n"
    elif args.format == "csv":
        text = _csv(keys, [[r[k] for k in keys] for r in rows])
    else:
        headers = ["design", "collective", "size", "time", "algbw", "busbw", "algorithm",
                   "switches", "cables", "ports/endpoint", "bisection"]
        body = [(r["design"], r["collective"], format_bytes(r["bytes"]), format_time(r["time"]),
                 format_bandwidth(r["algbw"]), format_bandwidth(r["busbw"]), r["algorithm"],
                 f"{r['switches']:,}", f"{r['cables']:,}", f"{r['ports_per_endpoint']:,.4g}",
                 format_bandwidth(r["bisection_bandwidth"])) for r in rows]
        head = (f"# what-if: {args.ranks} ranks, links {format_bandwidth(bw, bits=True)} "
                f"{format_time(lat)}\n")
        text = head + (_markdown(headers, body) if args.format == "markdown" else _table(headers, body))
    _write(text, args.output)
    if args.plot:
        _plot(rows, args.plot)
    return 0


def _plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidArgument("--plot needs matplotlib: pip install 'collectives[plot]' "
                              "or pip install matplotlib") from None
    colls = sorted({r["collective"] for r in rows})
    fig, axes = plt.subplots(1, len(colls), figsize=(6 * len(colls), 4.5), squeeze=False)
    for ax, c in zip(axes[0], colls):
        for d in dict.fromkeys(r["design"] for r in rows):
            pts = [(r["bytes"], r["busbw"] / 1e9) for r in rows if r["design"] == d and r["collective"] == c]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=d)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bytes per rank")
        ax.set_ylabel("bus bandwidth (GB/s)")
        ax.set_title(c)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# ---------------------------------------------------------------------- calibrate
def calibrate_main(args) -> int:
    from .calibrate import main

    return main(args)
