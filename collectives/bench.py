"""``collectives bench``: an nccl-tests / OSU style sweep against the MPI library's own collectives.

Run under a launcher (``mpiexec -n 64 collectives bench ...``) or let it start
one itself (``collectives bench -n 4``; by default as many ranks as this
machine has cores, at least 2). Rank 0 prints; every row is also appended to
``--output`` as it is measured, so a long run survives a dead terminal.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

from .algorithms import COLLECTIVES
from .busbw import busbw_factor
from .errors import CollectivesError, InvalidArgument

REDUCING = ("allreduce", "reduce_scatter")
DEFAULT_SIZES = "4:64M:4"


def add_arguments(p) -> None:
    p.add_argument("-n", "--nranks", type=int, default=None,
                   help="ranks to start when not already under mpiexec (default: CPU count, at least 2)")
    p.add_argument("--collective", "-c", default="allreduce,alltoall",
                   help="comma list of allreduce, alltoall, reduce_scatter, allgather, broadcast")
    p.add_argument("--algorithms", "-a", default="all",
                   help="'all' or a comma list; native MPI is always measured as the baseline")
    p.add_argument("--sizes", "-s", default=DEFAULT_SIZES,
                   help="message sizes in bytes per rank: 'MIN:MAX' doubling, 'MIN:MAX:FACTOR', or a "
                        "comma list (K/M/G are powers of 1024); default %(default)s")
    p.add_argument("--dtype", "-d", default="float32", help="element type (default %(default)s)")
    p.add_argument("--op", "-o", default="sum", help="reduction op: sum, prod, min, max, avg")
    p.add_argument("--iters", type=int, default=None,
                   help="timed iterations per point (default: as many as fit in --budget)")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations per point")
    p.add_argument("--budget", type=float, default=0.25,
                   help="seconds of timed work per point when --iters is not given (default %(default)s)")
    p.add_argument("--check", action="store_true",
                   help="count wrong elements against native MPI; exit non-zero on any")
    p.add_argument("--no-inplace", action="store_true", help="measure out-of-place calls only")
    p.add_argument("--emulate", default=None, metavar="SPEC",
                   help="emulate this topology (spec or file); shows the model's prediction")
    p.add_argument("--format", "-f", default="table", choices=["table", "osu", "csv", "json"])
    p.add_argument("--output", default=None, help="also append every result, as JSON lines, to this file")
    p.add_argument("--plot", default=None, metavar="PNG", help="draw busbw against size (plot extra)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a call is declared hung")
    p.add_argument("--no-spawn", action="store_true", help=argparse.SUPPRESS)


def parse_sizes(text: str) -> list[int]:
    from .units import parse_size_range

    sizes = parse_size_range(text, name="--sizes")
    if not sizes:
        raise InvalidArgument(f"--sizes {text!r} gives no sizes")
    return sizes


def main(args) -> int:
    from .launcher import mpiexec_command, under_launcher

    # check everything a user can get wrong before starting ranks
    collectives = [c.strip() for c in args.collective.split(",") if c.strip()]
    for c in collectives:
        if c not in COLLECTIVES:
            raise InvalidArgument(f"unknown collective {c!r}: accepted are {', '.join(COLLECTIVES)}")
    sizes = parse_sizes(args.sizes)
    from . import dtypes as _dt

    dtype = _dt.normalize_dtype(args.dtype, "--dtype")
    if args.op not in ("sum", "prod", "min", "max", "avg"):
        raise InvalidArgument(f"unknown --op {args.op!r}: accepted are sum, prod, min, max, avg")
    if args.iters is not None and args.iters < 1:
        raise InvalidArgument("--iters must be at least 1")
    if args.warmup < 0:
        raise InvalidArgument("--warmup must be 0 or more")
    if args.op == "avg" and not _dt.is_floating(dtype):
        raise InvalidArgument(f"--op avg needs a floating --dtype, not {args.dtype}: use sum, or a float dtype")
    if args.nranks is not None and args.nranks < 1:
        raise InvalidArgument(f"-n {args.nranks}: the rank count must be at least 1")
    _check_algorithms(collectives, args.algorithms)
    for what, path in (("--output", args.output), ("--plot", args.plot)):
        if path:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
                raise InvalidArgument(f"{what} {path}: the folder {folder} does not exist or is not writable")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise InvalidArgument('--plot needs matplotlib: pip install "collectives[plot]"') from None

    if not args.no_spawn and not under_launcher():
        n = args.nranks or max(2, os.cpu_count() or 2)
        if n > 256:
            raise InvalidArgument(f"-n {n}: this machine cannot start that many ranks sensibly; "
                                  "run under your cluster's launcher instead")
        if n < 1:
            raise InvalidArgument(f"-n {n}: the rank count must be at least 1")
        if args.emulate:
            from .topology import resolve

            hosts = len(resolve(args.emulate).hosts)
            if hosts < n:
                raise InvalidArgument(f"--emulate {args.emulate}: the topology has {hosts} hosts, fewer "
                                      f"than the {n} ranks to run; pick a larger one or fewer ranks")
        argv = list(getattr(args, "argv", None) or sys.argv[1:])
        # the ranks must import this same installed package, never a source tree that happens
        # to be the current directory (python -m/-c put the current directory first on sys.path)
        pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        launcher = ("import sys; del sys.path[0]; from collectives.cli import main; "
                    "sys.exit(main(sys.argv[1:]))")
        cmd = mpiexec_command(n, [sys.executable, "-c", launcher] + argv + ["--no-spawn"])
        print(f"# starting {n} ranks: {' '.join(cmd[:3])} ...", file=sys.stderr)
        try:
            return subprocess.call(cmd, env=env)
        except OSError as exc:
            raise CollectivesError(f"could not start {cmd[0]}: {exc}") from None
    return _run(args, collectives, sizes, dtype)


def _check_algorithms(collectives, wanted):
    """Every name in --algorithms must be an algorithm of at least one requested collective."""
    from . import algorithms as _alg

    if wanted == "all":
        return
    names = [a.strip() for a in wanted.split(",") if a.strip()]
    if not names:
        raise InvalidArgument("--algorithms is empty: give 'all' or a comma list")
    known = {"auto", "mpi"}
    for c in collectives:
        known.update(_alg.algorithm_names(c))
    unknown = [a for a in names if a not in known]
    if unknown:
        per = "; ".join(f"{c}: {', '.join(_alg.algorithm_names(c))}" for c in collectives)
        raise InvalidArgument(f"unknown algorithm(s) {', '.join(unknown)} for {', '.join(collectives)} "
                              f"(accepted: all, auto, mpi; {per})")


def _algorithms_for(collective, wanted):
    from . import algorithms as _alg

    names = list(_alg.algorithm_names(collective))
    if wanted == "all":
        chosen = names
    else:
        chosen = [a.strip() for a in wanted.split(",") if a.strip()]
        chosen = [a for a in chosen if a in names or a in ("auto", "mpi")]
    out = ["mpi"] + [a for a in chosen if a not in ("mpi", "auto")]
    if wanted == "all" or "auto" in wanted.split(","):
        out.append("auto")
    return out


def _fill(a: np.ndarray, rank: int):
    """Small integers: every dtype holds them, sums stay exact, so --check can demand equality."""
    n = a.size
    vals = (np.arange(n, dtype=np.int64) + rank) % 3
    a[...] = vals.reshape(a.shape).astype(a.dtype)


def _run(args, collectives, sizes, dtype) -> int:
    from mpi4py import MPI

    from .communicator import Communicator

    world = MPI.COMM_WORLD
    rank, n = world.Get_rank(), world.Get_size()
    topology = None
    if args.emulate:
        from .topology import resolve

        topology = resolve(args.emulate)
    comm = Communicator(world, topology=topology, emulate=bool(args.emulate), timeout=args.timeout)
    base = comm.mpi_comm
    itemsize = dtype.itemsize
    out_file = open(args.output, "a") if (args.output and rank == 0) else None
    rows = []
    plan = []
    for coll in collectives:
        for size in sizes:
            count = max(1, size // itemsize)
            if coll in ("alltoall",):
                count = max(n, count - count % n)
            if coll == "reduce_scatter":
                count = max(n, count)
            plan.append((coll, size, count))
    total = sum(len(_algorithms_for(c, args.algorithms)) for c, _, _ in plan)
    progress = _Progress(total, enabled=(rank == 0))
    wrong_total = 0
    first_wrong = None
    last_coll = [None]
    if rank == 0:
        _print_header(args, n, dtype)
    for coll, size, count in plan:
        x = np.empty(count, dtype=dtype)
        _fill(x, rank)
        ref = _reference(comm, coll, x, args.op) if args.check else None
        choice = comm.plan(coll, count * itemsize).algorithm
        for alg in _algorithms_for(coll, args.algorithms):
            progress.update(f"{coll} {alg} {count * itemsize} B")
            row = {"collective": coll, "algorithm": alg, "bytes": int(count * itemsize),
                   "count": int(count), "dtype": str(dtype), "op": args.op if coll in REDUCING else "none",
                   "ranks": n, "auto_choice": choice}
            t_out, wrong, where = _time_call(comm, base, coll, alg, x, args, ref, inplace=False)
            row["time_us"] = t_out * 1e6
            row["wrong"] = wrong
            if where is not None and first_wrong is None:
                first_wrong = (coll, alg, count, where)
            wrong_total += wrong
            if not args.no_inplace and coll == "allreduce":   # broadcast is always in place
                t_in, wrong_in, where = _time_call(comm, base, coll, alg, x, args, ref, inplace=True)
                row["inplace_time_us"] = t_in * 1e6
                row["inplace_wrong"] = wrong_in
                wrong_total += wrong_in
                if where is not None and first_wrong is None:
                    first_wrong = (coll, alg, count, where)
            factor = busbw_factor(coll, n)
            for key in ("time_us", "inplace_time_us"):
                if key in row:
                    algbw = row["bytes"] / (row[key] * 1e-6) / 1e9 if row[key] > 0 else 0.0
                    prefix = "" if key == "time_us" else "inplace_"
                    row[prefix + "algbw"] = algbw
                    row[prefix + "busbw"] = algbw * factor
            if comm.emulate and alg != "mpi":   # the MPI library's own collective runs on the real links
                row["predicted_us"] = comm.predict(coll, alg, row["bytes"]) * 1e6
                row["measured_over_predicted"] = row["time_us"] / row["predicted_us"]
            rows.append(row)
            if rank == 0:
                progress.clear()
                if args.format == "table" and coll != last_coll[0]:
                    print(f"# {coll}", flush=True)
                    last_coll[0] = coll
                _print_row(args, row)
                if out_file:
                    out_file.write(json.dumps(row) + "\n")
                    out_file.flush()
    progress.done()
    if rank == 0:
        _print_footer(args, rows)
        if args.plot:
            _plot(rows, args.plot, n)
        if args.format == "json":
            print(json.dumps(rows, indent=1))
    if out_file:
        out_file.close()
    comm.free()
    if args.check and wrong_total:
        if rank == 0:
            coll, alg, count, where = first_wrong
            print(f"collectives bench: {wrong_total} wrong elements; first: {coll} {alg} count {count} "
                  f"at index {where}", file=sys.stderr)
        return 1
    return 0


def _reference(comm, coll, x, op):
    return _call(comm, coll, "mpi", x, op, None)


def _call(comm, coll, alg, x, op, out):
    if coll == "allreduce":
        return comm.allreduce(x, op=op, algorithm=alg, out=out)
    if coll == "alltoall":
        return comm.alltoall(x, algorithm=alg, out=out)
    if coll == "reduce_scatter":
        return comm.reduce_scatter(x, op=op, algorithm=alg, out=out)
    if coll == "allgather":
        return comm.allgather(x, algorithm=alg, out=out)
    if coll == "broadcast":
        y = x.copy() if out is None else out
        return comm.broadcast(y, root=0, algorithm=alg)
    raise InvalidArgument(coll)


def _native_fn(base, coll, x, op, inplace):
    """The MPI library's own blocking collective through mpi4py, for the baseline row."""
    from mpi4py import MPI

    mop = {"sum": MPI.SUM, "prod": MPI.PROD, "min": MPI.MIN, "max": MPI.MAX, "avg": MPI.SUM}[op]
    n = base.Get_size()
    if coll == "allreduce":
        out = x.copy()
        if inplace:
            return lambda: base.Allreduce(MPI.IN_PLACE, out, op=mop)
        return lambda: base.Allreduce(x, out, op=mop)
    if coll == "alltoall":
        out = np.empty_like(x)
        return lambda: base.Alltoall(x, out)
    if coll == "reduce_scatter":
        from .communicator import block_sizes

        counts = [int(c) for c in block_sizes(x.size, n)]
        out = np.empty(counts[base.Get_rank()], dtype=x.dtype)
        return lambda: base.Reduce_scatter(x, out, counts, op=mop)
    if coll == "allgather":
        out = np.empty(x.size * n, dtype=x.dtype)
        return lambda: base.Allgather(x, out)
    if coll == "broadcast":
        buf = x.copy()
        return lambda: base.Bcast(buf, root=0)
    raise InvalidArgument(coll)


def _time_call(comm, base, coll, alg, x, args, ref, inplace):
    wrong, where = 0, None
    native_ok = alg == "mpi" and x.dtype.name not in ("float16", "bfloat16") and args.op != "avg"
    if native_ok:
        fn = _native_fn(base, coll, x, args.op, inplace)
    else:
        work = x.copy() if inplace else None
        if inplace and coll == "allreduce":
            fn = lambda: comm.allreduce(work, op=args.op, algorithm=alg, out=work)  # noqa: E731
        elif coll == "broadcast":
            buf = x.copy()
            fn = lambda: comm.broadcast(buf, root=0, algorithm=alg)  # noqa: E731
        else:
            # the output is allocated once, as nccl-tests and the native baseline do
            out = np.empty_like(np.asarray(_call(comm, coll, alg, x, args.op, None)))
            fn = lambda: _call(comm, coll, alg, x, args.op, out)  # noqa: E731
    # correctness first, on fresh data
    if args.check and ref is not None:
        if inplace and coll == "allreduce":
            y = x.copy()
            comm.allreduce(y, op=args.op, algorithm=alg, out=y)
        else:
            y = _call(comm, coll, alg, x, args.op, None)
        diff = np.flatnonzero(np.asarray(y).view(f"u{x.dtype.itemsize}") !=
                              np.asarray(ref).view(f"u{x.dtype.itemsize}"))
        wrong = int(comm.mpi_comm.allreduce(int(diff.size)))
        if diff.size:
            where = int(diff[0])
    for _ in range(args.warmup):
        fn()
    iters = args.iters
    if iters is None:
        base.Barrier()
        t0 = time.perf_counter()
        fn()
        one = base.allreduce(time.perf_counter() - t0, op=_max())
        iters = int(max(3, min(1000, args.budget / max(one, 1e-7))))
    times = np.empty(iters)
    for i in range(iters):
        base.Barrier()
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    worst = np.empty_like(times)
    base.Allreduce(times, worst, op=_max())
    return float(np.median(worst)), wrong, where


def _max():
    from mpi4py import MPI

    return MPI.MAX


class _Progress:
    """A progress line on stderr for sweeps that last more than a few seconds."""

    def __init__(self, total, enabled):
        self.total, self.done_count, self.enabled = total, 0, enabled
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.shown = False
        self.last = 0.0

    def update(self, what):
        self.done_count += 1
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < 3.0:
            return
        if not self.tty and now - self.last < 10.0:
            return
        self.last = now
        width = 30
        filled = int(width * (self.done_count - 1) / max(1, self.total))
        eta = (now - self.start) / max(1, self.done_count - 1) * (self.total - self.done_count + 1)
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done_count}/{self.total} "
                f"{what} (about {eta:.0f} s left)")
        if self.tty:
            sys.stderr.write("\r" + line[:110].ljust(110))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
        self.shown = True

    def clear(self):
        if self.enabled and self.shown and self.tty:
            sys.stderr.write("\r" + " " * 110 + "\r")
            sys.stderr.flush()

    def done(self):
        self.clear()


_TABLE_COLS = [("size(B)", "bytes", "{:>12d}"), ("count", "count", "{:>11d}"), ("type", "dtype", "{:>8s}"),
               ("redop", "op", "{:>5s}"), ("algorithm", "algorithm", "{:>17s}"),
               ("time(us)", "time_us", "{:>10.1f}"), ("algbw", "algbw", "{:>7.2f}"),
               ("busbw", "busbw", "{:>7.2f}"), ("#wrong", "wrong", "{:>6d}"),
               ("in-place(us)", "inplace_time_us", "{:>12.1f}"), ("algbw", "inplace_algbw", "{:>7.2f}"),
               ("busbw", "inplace_busbw", "{:>7.2f}"), ("#wrong", "inplace_wrong", "{:>6d}"),
               ("auto", "auto_choice", "{:>12s}")]


def _print_header(args, n, dtype):
    from . import __version__

    if args.format == "table":
        print(f"# collectives {__version__} bench: {n} ranks, dtype {dtype}, op {args.op}; "
              "times are medians over iterations of the slowest rank; bandwidths in GB/s "
              "(busbw: nccl-tests factors)")
        if args.emulate:
            print(f"# emulating {args.emulate}: predicted(us) is the model's time, ratio = measured/predicted")
        cols = [c for c, _, _ in _TABLE_COLS]
        if args.emulate:
            cols += ["predicted(us)", "ratio"]
        widths = [len(f.format(0) if "d}" in f or "f}" in f else f.format("")) for _, _, f in _TABLE_COLS]
        if args.emulate:
            widths += [13, 6]
        print(" ".join(c.rjust(w) for c, w in zip(cols, widths)))
    elif args.format == "osu":
        print("# OSU-style latency: Size  Avg Latency(us) per algorithm")
        print(f"# {'Size':>10s} {'Algorithm':>12s} {'Avg Latency(us)':>16s}")
    elif args.format == "csv":
        print("collective,algorithm,bytes,count,dtype,op,ranks,time_us,algbw,busbw,wrong,"
              "inplace_time_us,inplace_algbw,inplace_busbw,inplace_wrong,auto_choice,predicted_us")


def _fmt(fmt, value):
    if value is None:
        return " " * len(fmt.format(0) if ("d}" in fmt or "f}" in fmt) else fmt.format(""))
    return fmt.format(value)


def _print_row(args, row):
    if args.format == "table":
        cells = []
        for _, key, fmt in _TABLE_COLS:
            v = row.get(key)
            if key in ("op", "dtype", "algorithm", "auto_choice"):
                v = "-" if v is None else str(v)
            cells.append(_fmt(fmt, v))
        if args.emulate:
            cells.append(_fmt("{:>13.1f}", row.get("predicted_us")))
            cells.append(_fmt("{:>6.2f}", row.get("measured_over_predicted")))
        print(" ".join(cells), flush=True)
    elif args.format == "osu":
        print(f"  {row['bytes']:>10d} {row['algorithm']:>12s} {row['time_us']:>16.2f}", flush=True)
    elif args.format == "csv":
        keys = ["collective", "algorithm", "bytes", "count", "dtype", "op", "ranks", "time_us", "algbw",
                "busbw", "wrong", "inplace_time_us", "inplace_algbw", "inplace_busbw", "inplace_wrong",
                "auto_choice", "predicted_us"]
        print(",".join("" if row.get(k) is None else str(row.get(k)) for k in keys), flush=True)


def _print_footer(args, rows):
    if args.format != "table" or not rows:
        return
    if args.emulate:
        print("# emulated links: measured / predicted, median over sizes (mpi runs on the real links)")
        by = {}
        for r in rows:
            if r.get("measured_over_predicted"):
                by.setdefault((r["collective"], r["algorithm"]), []).append(r["measured_over_predicted"])
        for (coll, alg), ratios in by.items():
            print(f"#   {coll:<14s} {alg:<13s} {float(np.median(ratios)):.2f}  "
                  f"(range {min(ratios):.2f} to {max(ratios):.2f})")
        return
    # the best of ours against native, per collective and size
    print("# ratio = our time / native MPI time (below 1 is faster than native)")
    by = {}
    for r in rows:
        by.setdefault((r["collective"], r["bytes"]), {})[r["algorithm"]] = r["time_us"]
    for (coll, nbytes), algs in by.items():
        native = algs.get("mpi")
        if not native:
            continue
        ours = {a: t for a, t in algs.items() if a not in ("mpi",)}
        if not ours:
            continue
        named = [(t, a) for a, t in ours.items() if a != "auto"]
        best = min(named) if named else None
        auto = ours.get("auto")
        parts = []
        if best:
            parts.append(f"best {best[1]} {best[0] / native:.2f}x")
        if auto:
            parts.append(f"auto {auto / native:.2f}x")
        print(f"#   {coll:<14s} {nbytes:>10d} B: " + ", ".join(parts))


def _plot(rows, path, n):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CollectivesError('--plot needs matplotlib: pip install "collectives[plot]"') from None
    colls = sorted({r["collective"] for r in rows})
    fig, axes = plt.subplots(1, len(colls), figsize=(6 * len(colls), 4.5), squeeze=False)
    for ax, coll in zip(axes[0], colls):
        algs = sorted({r["algorithm"] for r in rows if r["collective"] == coll})
        for alg in algs:
            pts = sorted((r["bytes"], r["busbw"]) for r in rows
                         if r["collective"] == coll and r["algorithm"] == alg)
            style = dict(color="black", linewidth=2.5, linestyle="--") if alg == "mpi" else {}
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3,
                    label="native MPI" if alg == "mpi" else alg, **style)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("message size per rank (bytes)")
        ax.set_ylabel("busbw (GB/s)")
        ax.set_title(f"{coll}, {n} ranks")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"# plot written to {path}")
