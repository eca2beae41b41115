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
#: design families the what-if command sizes by itself
DESIGNS = ("full-mesh", "fat-tree", "dragonfly", "torus", "rail-optimized", "rail-only",
           "scaleup-torus")
WORKLOAD_DESIGNS = ("rail-optimized", "fat-tree", "dragonfly", "torus", "full-mesh")
_DESIGN_ALIASES = {"mesh": "full-mesh", "fullmesh": "full-mesh", "full_mesh": "full-mesh",
                   "fattree": "fat-tree", "fat_tree": "fat-tree", "df": "dragonfly",
                   "rail": "rail-optimized", "rail_optimized": "rail-optimized",
                   "railoptimized": "rail-optimized", "rail_only": "rail-only",
                   "railonly": "rail-only", "scaleup_torus": "scaleup-torus",
                   "sutorus": "scaleup-torus"}
#: accelerators per scale-up node when the command sizes a rail or scale-up-torus design
NODE_SIZE = 8


def add_parser(sub):
    p = sub.add_parser("plan", help="decision table: the planner's choice per message size",
                       description="Price every algorithm in the model for each size and print the "
                                   "planner's choice, like the tuning files of MPICH and Open MPI.")
    p.add_argument("--topology", "-t", required=True, help="topology spec or file, e.g. fat-tree:k=8")
    p.add_argument("--ranks", "-n", type=int, default=None, help="ranks (default: every host)")
    p.add_argument("--sizes", "-s", default="8:1G", help="sizes per rank, e.g. 8:1G or 1K,1M (default 8:1G)")
    p.add_argument("--collective", "-c", default="allreduce", help="collective (default allreduce)")
    p.add_argument("--placement", default=None, help="linear (default), round-robin or random")
    p.add_argument("--routing", default=None,
                   help="ecmp, or for dragonflies minimal (default), valiant or adaptive")
    _model_args(p)
    p.add_argument("--format", "-f", choices=("table", "json", "csv"), default="table")
    p.add_argument("-o", "--output", default=None, help="write to FILE instead of stdout")
    p.add_argument("--explain", action="store_true", help="print every candidate for each size")
    p.set_defaults(func=plan_main)

    w = sub.add_parser("whatif", help="what-if study: size network designs, price a training step "
                                      "or collectives on each",
                       description="Two modes. With --workload: sizes each design for "
                                   "--accelerators at an equal budget (--budget injection=... or "
                                   "cost=...) and prints one row per design: the training step's "
                                   "time and breakdown, tokens/s, MFU, capital cost, watts, "
                                   "switches, cables and network cost per million tokens. Without "
                                   "it (--ranks): per design, collective and size, the predicted "
                                   "time, algbw and busbw (nccl-tests definitions), the planner's "
                                   "algorithm, switches, cables, ports per endpoint and bisection "
                                   "bandwidth. Sizing: full mesh of N; the smallest fat-tree k "
                                   "(even) with k^3/4 >= N; the smallest balanced dragonfly "
                                   "a=2p=2h with a*p*(a*h+1) >= N; a 3-D torus (per-collective "
                                   "mode: the smallest c^3 >= N, c even; workload mode: the most "
                                   "cubic a*b*c = N); rail designs and the torus of scale-up "
                                   "domains: nodes of 8 accelerators. Dragonflies use adaptive "
                                   "routing unless --routing says otherwise.")
    w.add_argument("--ranks", "-n", type=int, default=None,
                   help="ranks of the per-collective study")
    w.add_argument("--topologies", "--designs", "-t", dest="topologies", default=None,
                   help=f"design families ({', '.join(DESIGNS)}) or explicit specs such as "
                        "fat-tree:k=32,oversub=2, comma separated (default per-collective: "
                        "full-mesh,fat-tree,dragonfly; workload: "
                        f"{','.join(WORKLOAD_DESIGNS)})")
    w.add_argument("--collectives", "-c", default="allreduce,alltoall")
    w.add_argument("--sizes", "-s", default="1K,1M,64M,1G")
    w.add_argument("--link-bandwidth", default=None,
                   help="every network link, unless --budget sizes them (default 100Gbps)")
    w.add_argument("--link-latency", default=None, help="every link (default 500ns)")
    w.add_argument("--routing", default=None,
                   help="dragonfly routing: adaptive (default), minimal or valiant")
    wl = w.add_argument_group("training-step study (--workload)")
    wl.add_argument("--workload", default=None,
                    help="a model preset (collectives.workload.PRESETS, e.g. llama3-405b)")
    wl.add_argument("--layout", default=None,
                    help="e.g. tp=8,pp=16 (dp from --accelerators), ep=, order=")
    wl.add_argument("--accelerators", type=int, default=None, help="accelerators (= ranks)")
    wl.add_argument("--budget", default="injection=400Gbps",
                    help="injection=BANDWIDTH per accelerator (default 400Gbps) or cost=AMOUNT "
                         "(capital, e.g. 250M)")
    wl.add_argument("--global-batch", type=int, default=None,
                    help="sequences per step (default: 2048 rounded up to a multiple of "
                         "dp x micro-batch)")
    wl.add_argument("--micro-batch", type=int, default=1)
    wl.add_argument("--accelerator", default="h100",
                    help="h100 (default), a100, mi300x, free (compute costs nothing) or peak FLOP/s")
    wl.add_argument("--efficiency", type=float, default=None, help="achieved fraction of peak")
    wl.add_argument("--sharding", default="none", help="dp sharding: none, zero1, zero2, fsdp")
    wl.add_argument("--prices", default=None, help="price list (JSON), default: built in")
    wl.add_argument("--lifetime-years", type=float, default=4.0,
                    help="years the network's capital is spread over (default 4)")
    wl.add_argument("--energy-price", type=float, default=0.10,
                    help="per kWh, in the price list's currency (default 0.10)")
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
def size_design(family, N, bw, lat, spec_bandwidth=None, spec_latency=None):
    """(spec label, Topology or VirtualFullMesh) of the smallest ``family`` design for N endpoints.

    A family name is sized with links of ``bw``/``lat``; an explicit spec or
    file is built as given, with ``spec_bandwidth``/``spec_latency`` (the
    user's ``--link-bandwidth``/``--link-latency``) applied unless the spec
    sets ``bw=``/``lat=`` itself."""
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
    t = build_design(family, spec_bandwidth, spec_latency)
    return getattr(t, "name", family), t


# ---------------------------------------------------------------------- designs
def _split_top(text):
    """Split at commas outside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _names_design(piece):
    import os

    from ..topology.spec import is_spec

    head = piece.split(":", 1)[0].strip().lower()
    return (is_spec(piece) or head in DESIGNS or head in _DESIGN_ALIASES
            or os.path.exists(piece.strip()))


def split_designs(text) -> list:
    """The designs of a ``--topologies``/``--designs`` list.

    A comma starts a new design unless what follows is an option of the one
    before (``fat-tree:k=32,oversub=2,dragonfly`` is two designs).
    """
    out = []
    for piece in _split_top(text or ""):
        p = piece.strip()
        if not p:
            continue
        if out and "=" in p.split(":", 1)[0] and not _names_design(p):
            out[-1] += ("," if ":" in out[-1] else ":") + p
        else:
            out.append(p)
    return out


def _spec_keys(spec):
    body = spec.partition(":")[2]
    keys = set()
    for item in _split_top(body):
        k, eq, _ = item.partition("=")
        if eq:
            keys.add(k.strip().lower().replace("_", "-"))
    return keys


def _bw_text(bps):
    return f"{bps * 8 / 1e9:.12g}Gbps"


def build_design(spec, link_bandwidth=None, link_latency=None):
    """A Topology (or VirtualFullMesh) from an explicit spec or file, the given link
    bandwidth and latency applied unless the spec sets its own ``bw=``/``lat=``."""
    import os

    from .network import VirtualFullMesh
    from .simulate import _virtual_mesh_spec, resolve_topology

    text = spec.strip()
    if os.path.exists(text) or ":" not in text:
        return resolve_topology(text)
    keys = _spec_keys(text)
    extra = []
    if link_bandwidth is not None and "bw" not in keys:
        extra.append(f"bw={_bw_text(link_bandwidth)}")
    if link_latency is not None and "lat" not in keys:
        extra.append(f"lat={link_latency:.12g}s")
    head = text.split(":", 1)[0].strip().lower().replace("_", "-")
    if head in ("full-mesh", "fullmesh", "mesh"):
        vm = _virtual_mesh_spec("full-mesh:" + text.split(":", 1)[1])
        if vm is not None:           # too large to build as a graph
            opts = {k.strip().lower(): v.strip() for k, _, v in
                    (i.partition("=") for i in _split_top(text.split(":", 1)[1]))}
            from ..units import parse_bandwidth, parse_time

            bw = parse_bandwidth(opts["bw"]) if "bw" in opts else \
                (link_bandwidth if link_bandwidth is not None else vm.link_bandwidth)
            lat = parse_time(opts["lat"]) if "lat" in opts else \
                (link_latency if link_latency is not None else vm.link_latency)
            return VirtualFullMesh(vm.n, bw, lat)
    from ..topology import from_spec

    return from_spec(text + "".join("," + e for e in extra))


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


def whatif(ranks, families, collectives, sizes, *, link_bandwidth=None, link_latency=None,
           progress=False, **model):
    """The what-if study as a list of row dicts (see ``collectives whatif --help``).

    ``link_bandwidth``/``link_latency``: every link of the designs sized by
    family (default 100 Gb/s, 500 ns) and of explicit specs that do not set
    ``bw=``/``lat=`` (None: the spec's own default)."""
    from ..busbw import busbw_factor
    from ..planner import choose

    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 2:
        raise InvalidArgument(f"--ranks must be an integer >= 2, got {ranks!r}")
    bw = 12.5e9 if link_bandwidth is None else link_bandwidth
    lat = 500e-9 if link_latency is None else link_latency
    designs = [size_design(f.strip(), ranks, bw, lat, link_bandwidth, link_latency)
               for f in families]
    prog = _Progress(len(designs) * len(collectives) * len(sizes), progress)
    rows = []
    for label, topo in designs:
        m = _metrics(topo, ranks)
        mp = _design_routing(model, topo)
        if mp.get("routing") and getattr(topo, "family", None) == "dragonfly" and \
                model.get("routing"):
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


def _design_routing(model, topo):
    """Model parameters for one design: dragonfly routing modes (adaptive by default in
    what-if studies) apply to dragonflies only; the other designs keep ECMP."""
    mp = dict(model)
    dragon = getattr(topo, "family", None) == "dragonfly"
    if not dragon:
        if mp.get("routing") in ("minimal", "valiant", "adaptive"):
            mp.pop("routing")
    elif not mp.get("routing"):
        mp["routing"] = "adaptive"
    return mp


def whatif_main(args) -> int:
    from ..units import (format_bandwidth, format_bytes, format_time, parse_bandwidth,
                         parse_size_range, parse_time)

    if args.workload is not None:
        return whatif_workload_main(args)
    for flag, value in (("--layout", args.layout), ("--accelerators", args.accelerators)):
        if value is not None:
            raise InvalidArgument(f"{flag} belongs to the training-step study: add --workload "
                                  f"(a preset such as llama3-405b)")
    if args.ranks is None:
        raise InvalidArgument("whatif needs --ranks N (per-collective study) or --workload PRESET "
                              "with --layout and --accelerators (training-step study)")
    fams = split_designs(args.topologies or "full-mesh,fat-tree,dragonfly")
    colls = [_collective(c) for c in args.collectives.split(",") if c.strip()]
    sizes = parse_size_range(args.sizes)
    bw_given = None if args.link_bandwidth is None else \
        parse_bandwidth(args.link_bandwidth, name="--link-bandwidth")
    lat_given = None if args.link_latency is None else \
        parse_time(args.link_latency, name="--link-latency")
    bw = 12.5e9 if bw_given is None else bw_given
    lat = 500e-9 if lat_given is None else lat_given
    kw = _model_kw(args)
    rows = whatif(args.ranks, fams, colls, sizes, link_bandwidth=bw_given, link_latency=lat_given,
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


# ---------------------------------------------------------------------- whatif --workload
_AMOUNT_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}


def parse_budget(text):
    """``("injection", bytes/s)`` from ``"injection=400Gbps"`` or ``("cost", amount)``
    from ``"cost=250M"`` (suffixes k, M, B; a leading currency sign is ignored)."""
    import re

    from ..units import parse_bandwidth

    if not isinstance(text, str) or "=" not in text:
        raise InvalidArgument(f"--budget {text!r}: expected injection=BANDWIDTH (per accelerator, "
                              "e.g. injection=400Gbps) or cost=AMOUNT (capital, e.g. cost=250M)")
    key, _, val = (x.strip() for x in text.partition("="))
    key = key.lower()
    if key == "injection":
        try:
            return "injection", parse_bandwidth(val, name="--budget injection")
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
    if key == "cost":
        m = re.fullmatch(r"[$€£]?\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgG]?)", val)
        if not m or not float(m[1]) > 0:
            raise InvalidArgument(f"--budget cost={val!r}: expected an amount > 0 such as 250M, "
                                  "1.5B or 250000000")
        return "cost", float(m[1]) * _AMOUNT_SUFFIX[m[2].lower()]
    raise InvalidArgument(f"--budget {text!r}: unknown budget {key!r}; accepted are injection= "
                          "and cost=")


def _cubic(n):
    """The most cubic ``(a, b, c)`` with ``a*b*c == n`` and every factor >= 2, or None."""
    best = None
    a = 2
    while a * a * a <= n:
        if n % a == 0:
            m = n // a
            b = a
            while b * b <= m:
                if m % b == 0 and m // b >= b:
                    cand = (m // b, b, a)
                    if best is None or cand[0] - cand[2] < best[0] - best[2]:
                        best = cand
                b += 1
        a += 1
    return best


def _torus_dims(n):
    dims = _cubic(n)
    if dims is None or dims[0] > 4 * dims[2]:     # n prime or nearly so: the smallest cube
        c = 2
        while c ** 3 < n:
            c += 1
        dims = (c, c, c)
    return dims


def _degree(dims):
    return sum(1 if k == 2 else 2 for k in dims)


def _design_family(design):
    head = design.split(":", 1)[0].strip().lower()
    return _DESIGN_ALIASES.get(head, head)


def _check_design(design):
    import os

    from ..topology.spec import is_spec

    fam = _design_family(design)
    if ":" not in design and fam in DESIGNS:
        return
    if os.path.exists(design.strip()):
        return
    if ":" in design and is_spec(design):
        return
    raise InvalidArgument(f"--designs: unknown design {design!r}; accepted are the families "
                          f"{', '.join(DESIGNS)}, an explicit spec such as 'fat-tree:k=32,oversub=2' "
                          "or a topology file")


def _sized_spec(design, N, B):
    """The spec text of ``design`` for N accelerators, its links sized so that every
    accelerator injects ``B`` bytes/s in all (see ``collectives whatif --help``)."""
    fam = _design_family(design)
    bw = _bw_text
    if ":" not in design:
        if fam == "full-mesh":
            return f"full-mesh:n={N},bw={bw(B / (N - 1))}"
        if fam == "fat-tree":
            k = 2
            while k ** 3 // 4 < N:
                k += 2
            return f"fat-tree:k={k},bw={bw(B)}"
        if fam == "dragonfly":
            p = 1
            while (2 * p) * p * ((2 * p) * p + 1) < N:
                p += 1
            return f"dragonfly:a={2 * p},p={p},h={p},bw={bw(B)}"
        if fam == "torus":
            dims = _torus_dims(N)
            return f"torus:{'x'.join(map(str, dims))},bw={bw(B / _degree(dims))}"
        nodes = -(-N // NODE_SIZE)
        if fam in ("rail-optimized", "rail-only"):
            return f"{fam}:nodes={nodes},g={NODE_SIZE},bw={bw(B)}"
        if fam == "scaleup-torus":
            dims = _torus_dims(nodes)
            return (f"scaleup-torus:{'x'.join(map(str, dims))},g={NODE_SIZE},"
                    f"bw={bw(NODE_SIZE * B / _degree(dims))}")
    # an explicit spec: keep its size, set its network links from the budget
    if "bw" in _spec_keys(design):
        raise InvalidArgument(f"--designs {design!r} sets bw=, but --budget sizes the link "
                              "bandwidths of every design: drop bw= from the spec")
    probe = build_design(design)
    params = getattr(probe, "params", {}) or {}
    fam = getattr(probe, "family", None)
    if fam == "full-mesh":
        per = B / (probe.num_hosts - 1)
    elif fam in ("torus", "ring", "hypercube"):
        per = B / (probe.injection_bandwidth() / params["link_bandwidth"])
    elif fam == "fat-tree":
        per = B / params.get("planes", 1)
    elif fam in ("rail-optimized", "rail-only"):
        per = B * params["accelerators_per_node"] / params["rails"]
    elif fam == "scaleup-torus":
        per = B * params["accelerators_per_node"] / _degree(params["dims"])
    elif fam in ("dragonfly", "star", "leaf-spine"):
        per = B
    else:
        raise InvalidArgument(f"--designs {design!r}: --budget cannot size a "
                              f"{fam or 'loaded'} design; give one of {', '.join(DESIGNS)} "
                              "or a spec of those families")
    return design + f",bw={bw(per)}"


def _amortised(capital, watts, tps, years, energy_price):
    """Network cost per million tokens: capital over its lifetime plus energy."""
    if not tps > 0 or not math.isfinite(tps):
        return float("nan")
    per_second = capital / (years * 365.25 * 86400) + watts / 1000 * energy_price / 3600
    return per_second / tps * 1e6


def whatif_workload(workload, layout, accelerators, designs, *, budget="injection=400Gbps",
                    global_batch=None, micro_batch=1, accelerator="h100", efficiency=None,
                    sharding="none", prices=None, lifetime_years=4.0, energy_price=0.10,
                    link_latency=None, progress=False, notes=None, **model):
    """The training-step what-if study: one row dict per design.

    Parameters
    ----------
    workload : str
        A preset name (:data:`collectives.workload.PRESETS`).
    layout : str
        ``"tp=8,pp=16"`` and so on (:meth:`collectives.workload.Layout.parse`);
        dp defaults to ``accelerators / (tp * pp)``.
    accelerators : int
        Accelerators (ranks) of the job, every one of them used.
    designs : list of str
        Families (:data:`DESIGNS`), explicit specs or topology files.
    budget : str
        ``"injection=400Gbps"`` (every accelerator gets that much network
        bandwidth in all) or ``"cost=250M"`` (capital held equal: each design
        gets the largest injection its price allows).
    global_batch, micro_batch, accelerator, efficiency, sharding
        The training step (:class:`collectives.workload.TrainingStep`);
        global_batch defaults to 2048 sequences rounded up to a multiple of
        ``dp * micro_batch``.
    prices : str or dict, optional
        A price list file or dict (default: the built-in list).
    lifetime_years, energy_price : float
        Amortisation of the capital and price per kWh, for the cost per
        million tokens (network only).
    link_latency : float, optional
        Seconds per network link (default 500 ns).
    progress : bool
        A progress bar on stderr.
    notes : list, optional
        Receives one line per design left out because the budget cannot buy it.
    **model
        ``overhead=``, ``reduce_bandwidth=``, ``switch_latency=``, ``routing=``
        (dragonflies default to ``"adaptive"``).

    Raises
    ------
    collectives.errors.InvalidArgument
        An unknown preset or design, a layout that does not match the
        accelerators, a step the model cannot run (tp not dividing the heads,
        ...), a bad budget or price list, a budget no design can meet: all
        before any pricing.
    """
    from .. import workload as W
    from ..workload.cost import design_cost, inventory, load_prices, validate_prices

    model_ = W.preset(workload)
    if accelerators is not None and (isinstance(accelerators, bool) or
                                     not isinstance(accelerators, int) or accelerators < 2):
        raise InvalidArgument(f"--accelerators must be an integer >= 2, got {accelerators!r}")
    if layout is None:
        raise InvalidArgument("--layout is required with --workload, e.g. --layout tp=8,pp=16")
    try:
        lay = W.Layout.parse(layout, ranks=accelerators)
    except InvalidArgument as exc:
        raise InvalidArgument(f"--layout {layout!r} with --accelerators {accelerators}: "
                              f"{exc}") from None
    N = lay.size
    if accelerators is not None and N != accelerators:
        raise InvalidArgument(f"--layout {layout!r} has dp*tp*pp = {N} ranks but --accelerators "
                              f"is {accelerators}: they must be equal")
    if N < 2:
        raise InvalidArgument(f"--accelerators must be >= 2, the layout has {N} ranks")
    acc = W.accelerator(accelerator)
    if efficiency is not None:
        import dataclasses

        acc = dataclasses.replace(acc, efficiency=efficiency)
    if global_batch is None:
        per = lay.dp * micro_batch if isinstance(micro_batch, int) and micro_batch > 0 else 1
        global_batch = -(-2048 // per) * per
    try:
        step = W.TrainingStep(model_, lay, global_batch, micro_batch, accelerator=acc,
                              sharding=sharding)
    except InvalidArgument as exc:
        raise InvalidArgument(f"--workload {workload} with --layout {layout!r}, --global-batch "
                              f"{global_batch}, --micro-batch {micro_batch}: {exc}") from None
    if not designs:
        raise InvalidArgument("--designs is empty: give at least one design")
    for d in designs:
        _check_design(d)
    kind, amount = parse_budget(budget)
    if isinstance(prices, dict):
        price_list = validate_prices(prices)
    else:
        price_list = load_prices(prices)
    for name, v in (("--lifetime-years", lifetime_years), ("--energy-price", energy_price)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or \
                v < 0 or (name == "--lifetime-years" and v == 0):
            raise InvalidArgument(f"{name} must be a number {'> 0' if 'life' in name else '>= 0'}, "
                                  f"got {v!r}")
    lat_opt = "" if link_latency is None else f",lat={link_latency:.12g}s"

    # size every design (and, under a cost budget, find the injection it can buy)
    sized = []
    skipped = []
    ref = 50e9                                             # 400 Gb/s
    for d in designs:
        if kind == "injection":
            spec = _sized_spec(d, N, amount)
            sized.append((d, spec + lat_opt, amount))
            continue
        inv = inventory(build_design(_sized_spec(d, N, ref) + lat_opt))
        grid = [ref * 2 ** (e / 8) for e in range(-64, 49)]     # ~1.6 Gb/s .. 25.6 Tb/s
        lo, hi = -1, len(grid) - 1
        while lo < hi:                                    # largest grid point within budget
            mid = (lo + hi + 1) // 2
            if design_cost(inv, price_list, bandwidth_scale=grid[mid] / ref)["capital"] <= amount:
                lo = mid
            else:
                hi = mid - 1
        if lo < 0:
            least = design_cost(inv, price_list, bandwidth_scale=grid[0] / ref)["capital"]
            skipped.append((d, least))
            continue
        sized.append((d, _sized_spec(d, N, grid[lo]) + lat_opt, grid[lo]))
    if not sized:
        cheapest = min(skipped, key=lambda x: x[1])
        raise InvalidArgument(f"--budget {budget!r}: no design can be bought for "
                              f"{amount:,.0f} {price_list['currency']}; the cheapest, "
                              f"{cheapest[0]}, needs at least {cheapest[1]:,.0f} "
                              f"{price_list['currency']} for {N} accelerators")
    if notes is not None:
        for d, least in skipped:
            notes.append(f"{d}: left out, it needs at least {least:,.0f} "
                         f"{price_list['currency']} (budget {amount:,.0f})")
    built = [(d, build_design(spec), inj) for d, spec, inj in sized]
    for d, topo, _ in built:
        if topo.num_hosts < N:
            raise InvalidArgument(f"--designs {d!r} has {topo.num_hosts} hosts, fewer than the "
                                  f"{N} accelerators of the layout")

    prog = _Progress(len(built), progress)
    rows = []
    for d, topo, inj in built:
        mp = _design_routing(model, topo)
        cost = design_cost(topo, price_list)
        r = W.simulate(step, topo, **mp)
        b = r.breakdown
        rows.append({
            "design": d, "topology": getattr(topo, "name", d),
            "routing": mp.get("routing") or "ecmp", "injection": inj,
            "time": r.time, **{k: b.get(k, 0.0) for k in ("compute", "tp", "pp", "ep", "dp",
                                                          "bubble")},
            "tokens_per_second": r.tokens_per_second,
            "mfu": None if math.isnan(r.mfu) else r.mfu,
            "capital": cost["capital"], "watts": cost["watts"], "currency": cost["currency"],
            "switches": cost["switches"], "cables": cost["cables"]["total"],
            "cost_per_million_tokens": _amortised(cost["capital"], cost["watts"],
                                                  r.tokens_per_second, lifetime_years,
                                                  energy_price),
            "hosts": topo.num_hosts, "unused_hosts": topo.num_hosts - N,
        })
        prog.step(d)
    return rows, step


def _money(x):
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def whatif_workload_main(args) -> int:
    from ..units import format_bandwidth, format_time, parse_time

    if args.ranks is not None:
        raise InvalidArgument("--ranks belongs to the per-collective study; with --workload give "
                              "--accelerators")
    designs = split_designs(args.topologies or ",".join(WORKLOAD_DESIGNS))
    if args.link_bandwidth is not None:
        raise InvalidArgument("--link-bandwidth does not apply with --workload: --budget sizes "
                              "the links (e.g. --budget injection=400Gbps)")
    lat = None if args.link_latency is None else parse_time(args.link_latency,
                                                            name="--link-latency")
    acc = args.accelerator
    try:
        acc = float(acc)
    except ValueError:
        pass
    notes = []
    kw = _model_kw(args)
    rows, step = whatif_workload(
        args.workload, args.layout, args.accelerators, designs, budget=args.budget,
        global_batch=args.global_batch, micro_batch=args.micro_batch, accelerator=acc,
        efficiency=args.efficiency, sharding=args.sharding, prices=args.prices,
        lifetime_years=args.lifetime_years, energy_price=args.energy_price, link_latency=lat,
        progress=not args.no_progress and sys.stderr.isatty(), notes=notes, **kw)
    for n in notes:
        print(f"collectives: note: {n}", file=sys.stderr)
    lay = step.layout
    kind, amount = parse_budget(args.budget)
    cur = rows[0]["currency"]
    budget_text = (f"injection {format_bandwidth(amount, bits=True)} per accelerator"
                   if kind == "injection" else f"capital {_money(amount)} {cur}")
    head = (f"# what-if: {step.model.name}, dp={lay.dp} tp={lay.tp} pp={lay.pp} ep={lay.ep} on "
            f"{lay.size} accelerators ({step.accelerator.name or 'custom'}), global batch "
            f"{step.global_batch} x {step.model.seq_len} tokens, budget {budget_text}, prices "
            f"{cur} ({args.prices or 'built-in'}), network cost amortised over "
            f"{args.lifetime_years:g} years + energy at {args.energy_price:g}/kWh\n")
    keys = ["design", "topology", "routing", "injection", "time", "compute", "tp", "pp", "ep",
            "dp", "bubble", "tokens_per_second", "mfu", "capital", "watts", "switches", "cables",
            "cost_per_million_tokens"]
    if args.format == "json":
        doc = {"workload": step.to_dict(), "accelerators": lay.size, "budget": {kind: amount},
               "currency": cur, "prices": args.prices or "built-in",
               "lifetime_years": args.lifetime_years, "energy_price": args.energy_price,
               "notes": notes, "rows": [{k: (None if isinstance(v, float) and math.isnan(v)
                                             else v) for k, v in r.items()} for r in rows]}
        text = json.dumps(doc, indent=2) + "\n"
    elif args.format == "csv":
        text = _csv(keys, [[r[k] for k in keys] for r in rows])
    else:
        headers = ["design", "step", "compute", "tp", "pp", "ep", "dp", "bubble", "tokens/s",
                   "MFU", f"capital ({cur})", "watts", "switches", "cables", f"{cur}/Mtok",
                   "injection"]
        body = [(r["topology"] + (f" ({r['routing']})" if r["routing"] != "ecmp" else ""),
                 format_time(r["time"]), *(format_time(r[k]) for k in
                                           ("compute", "tp", "pp", "ep", "dp", "bubble")),
                 f"{r['tokens_per_second']:,.0f}",
                 "-" if r["mfu"] is None else f"{r['mfu']:.1%}", _money(r["capital"]),
                 f"{r['watts'] / 1e3:,.1f}k", f"{r['switches']:,}", f"{r['cables']:,}",
                 f"{r['cost_per_million_tokens']:.3g}",
                 format_bandwidth(r["injection"], bits=True)) for r in rows]
        text = head + (_markdown(headers, body) if args.format == "markdown"
                       else _table(headers, body))
    _write(text, args.output)
    if args.plot:
        _plot_workload(rows, args.plot, head.lstrip("# ").strip())
    return 0


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidArgument("--plot needs matplotlib: pip install matplotlib (the plot extra) "
                              "or pip install matplotlib") from None
    return plt


def _plot_workload(rows, path, title):
    """Stacked step-time bars per design beside their capital cost."""
    plt = _pyplot()
    names = [r["topology"] for r in rows]
    x = list(range(len(rows)))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(max(9, 2.2 * len(rows) + 5), 4.8),
                                  gridspec_kw={"width_ratios": [3, 2]})
    bottom = [0.0] * len(rows)
    for k in ("compute", "tp", "ep", "pp", "bubble", "dp"):
        vals = [r[k] for r in rows]
        ax.bar(x, vals, bottom=bottom, label=k)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("step time (s)")
    ax.set_title("step time and its exposed parts")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax2.bar(x, [r["capital"] / 1e6 for r in rows], color="gray")
    ax2.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    ax2.set_ylabel(f"network capital (M{rows[0]['currency']})")
    ax2.set_title("capital cost")
    ax2.grid(True, axis="y", alpha=0.3)
    import textwrap

    fig.suptitle(textwrap.fill(title, 170), fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        from ..errors import TopologyFileError
        raise TopologyFileError(f"cannot write {path!r}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def _plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidArgument("--plot needs matplotlib: pip install matplotlib (the plot extra) "
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
