"""``collectives bench``: an nccl-tests / OSU style sweep against the MPI library's own collectives.

Run under a launcher (``mpiexec -n 64 collectives bench ...``) or let it start
one itself (``collectives bench -n 4``; by default as many ranks as this
machine has cores, at least 2). Rank 0 prints; every row is also appended to
``--output`` as it is measured, so a long run survives a dead terminal.

The timing loop is :func:`sweep`, which the scripts in ``bench/`` call too:
each algorithm in its own loop by default, or, with ``interleave=True``
(``--interleave``), every algorithm and native MPI called in turn in each
iteration so that load on a shared machine falls on all of them alike.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
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
    p.add_argument("--persistent", action="store_true",
                   help="time each algorithm (and auto) as a persistent request, bound once and then "
                        "started and waited every call (comm.allreduce_init ...), beside native MPI; "
                        "adds a row 'mpi-persistent' for the MPI library's own persistent collective")
    p.add_argument("--interleave", action="store_true",
                   help="per size, call every algorithm and native MPI in turn in each iteration "
                        "(load on a shared machine then hits all alike) instead of one loop each")
    p.add_argument("--emulate", default=None, metavar="SPEC",
                   help="emulate this topology (spec or file); shows the model's prediction")
    p.add_argument("--format", "-f", default="table", choices=["table", "osu", "csv", "json", "markdown"],
                   help="table (nccl-tests style), osu, csv, json, or markdown (time and ratio to "
                        "native per algorithm, one table per collective)")
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
    sizes = parse_sizes(args.sizes)
    dtype = check_options(collectives, args.algorithms, args.dtype, args.op, args.iters,
                          args.warmup, flag="--")
    if args.nranks is not None and args.nranks < 1:
        raise InvalidArgument(f"-n {args.nranks}: the rank count must be at least 1")
    if not (args.timeout > 0 and math.isfinite(args.timeout)):
        raise InvalidArgument(f"--timeout {args.timeout:g}: give the seconds after which a call counts "
                              "as hung, a finite number above 0 (default 60)")
    for what, path in (("--output", args.output), ("--plot", args.plot)):
        if path:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
                raise InvalidArgument(f"{what} {path}: the folder {folder} does not exist or is not writable")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise InvalidArgument('--plot needs matplotlib: pip install matplotlib (the plot extra)') from None

    if not args.no_spawn and not under_launcher():
        n = args.nranks or max(2, os.cpu_count() or 2)
        if n > 256:
            raise InvalidArgument(f"-n {n}: this machine cannot start that many ranks sensibly; "
                                  "run under your cluster's launcher instead")
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
        return run_forwarding_output(cmd, env)
    return _run(args, collectives, sizes, dtype)


#: lines the launcher itself prints on standard output (MPICH's hydra: "[mpiexec@host] ...")
_LAUNCHER_LINE = re.compile(r"^\[(mpiexec|mpirun|proxy)[@:][^\]]*\]")


def run_forwarding_output(cmd, env) -> int:
    """Run the launcher; pass the ranks' standard output through, the launcher's own lines
    (such as MPICH's "Sending Ctrl-C to processes as requested") to standard error, so that
    a CSV or JSON sweep on standard output stays parseable."""
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, bufsize=1)
    except OSError as exc:
        raise CollectivesError(f"could not start {cmd[0]}: {exc}") from None
    try:
        for line in proc.stdout:
            stream = sys.stderr if _LAUNCHER_LINE.match(line) else sys.stdout
            stream.write(line)
            stream.flush()
    except KeyboardInterrupt:
        # the launcher got the interrupt too (same process group) and ends the ranks
        for line in proc.stdout:
            if not _LAUNCHER_LINE.match(line):
                sys.stdout.write(line)
        proc.wait()
        raise
    except BrokenPipeError:
        proc.terminate()
        proc.wait()
        raise
    return proc.wait()


def check_options(collectives, algorithms, dtype, op, iters, warmup, *, flag=""):
    """Check a sweep's options before any rank starts; returns the dtype as a numpy dtype.

    ``flag`` prefixes the option names in messages (``"--"`` for the command line).

    Raises
    ------
    InvalidArgument
        An unknown collective, algorithm, dtype or op, avg on an integer dtype,
        ``iters < 1`` or ``warmup < 0``.
    """
    from . import dtypes as _dt

    for c in collectives:
        if c not in COLLECTIVES:
            raise InvalidArgument(f"unknown collective {c!r}: accepted are {', '.join(COLLECTIVES)}")
    dt = _dt.normalize_dtype(dtype, f"{flag}dtype")
    if op not in ("sum", "prod", "min", "max", "avg"):
        raise InvalidArgument(f"unknown {flag}op {op!r}: accepted are sum, prod, min, max, avg")
    if iters is not None and iters < 1:
        raise InvalidArgument(f"{flag}iters must be at least 1")
    if warmup < 0:
        raise InvalidArgument(f"{flag}warmup must be 0 or more")
    if op == "avg" and not _dt.is_floating(dt):
        raise InvalidArgument(f"{flag}op avg needs a floating {flag}dtype, not {dtype}: use sum, "
                              "or a float dtype")
    _check_algorithms(collectives, algorithms)
    return dt


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


def _algorithms_for(collective, wanted, persistent=False):
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
    if persistent:
        out.insert(1, "mpi-persistent")
    return out


def _fill(a: np.ndarray, rank: int):
    """Small integers: every dtype holds them, sums stay exact, so --check can demand equality."""
    n = a.size
    vals = (np.arange(n, dtype=np.int64) + rank) % 3
    a[...] = vals.reshape(a.shape).astype(a.dtype)


def _counts(collective, size, itemsize, n):
    """Elements per rank for a sweep point: all-to-all needs a multiple of the rank count,
    reduce-scatter at least one element per rank."""
    count = max(1, size // itemsize)
    if collective == "alltoall":
        count = max(n, count - count % n)
    if collective == "reduce_scatter":
        count = max(n, count)
    return count


def sweep(comm, collectives, sizes, *, algorithms="all", dtype="float32", op="sum", iters=None,
          warmup=2, budget=0.25, check=False, inplace=True, interleave=False, on_row=None,
          on_point=None, persistent=False):
    """Time each collective's algorithms against native MPI over a range of sizes.

    The one timing loop behind ``collectives bench`` and the scripts in ``bench/``.
    Collective: every rank of ``comm`` calls it with the same arguments, and
    every rank gets the same rows.

    Parameters
    ----------
    comm : Communicator
        The communicator to measure; with ``emulate=True`` the rows carry the
        model's prediction as well.
    collectives : sequence of str
        Any of "allreduce", "alltoall", "reduce_scatter", "allgather", "broadcast".
    sizes : sequence of int
        Bytes per rank (rounded down to whole elements; all-to-all to a
        multiple of the rank count).
    algorithms : str
        "all" or a comma list of algorithm names ("auto" and "mpi" included);
        native MPI ("mpi") is always measured.
    dtype, op : str
        Element type and reduction op.
    iters : int, optional
        Timed calls per algorithm and size; by default as many as fit in
        ``budget`` seconds (3 to 1000).
    warmup : int
        Untimed calls per algorithm and size.
    budget : float
        Seconds of timed work per algorithm and size when ``iters`` is None.
    check : bool
        Compare every algorithm's result with native MPI's (bit for bit) and
        count the wrong elements in ``"wrong"``.
    inplace : bool
        Also time in-place all-reduce (``"inplace_*"`` keys).
    interleave : bool
        False: each algorithm is timed in its own loop, one after the other.
        True: every iteration calls each algorithm once, native MPI first, so
        load from other processes on a shared machine falls on all of them
        alike; every row of a size then has the same ``iters``.
    on_row : callable, optional
        Called with each row as soon as it is measured (on every rank).
    on_point : callable, optional
        Called with ``(collective, algorithm, nbytes)`` before each algorithm
        is prepared (progress reporting).
    persistent : bool
        Time every algorithm but native MPI as a persistent request bound once
        and started and waited per call (:meth:`Communicator.allreduce_init`
        and friends), plus an "mpi-persistent" row: the MPI library's own
        persistent collective (``MPI_Allreduce_init``, where the MPI has it).

    Returns
    -------
    list of dict
        One row per collective, size and algorithm: collective, algorithm,
        bytes, count, dtype, op, ranks, auto_choice, iters, interleaved,
        time_us (median over iterations of the slowest rank), algbw and busbw
        (GB/s), wrong (and first_wrong_index when not 0); in-place all-reduce
        adds inplace_time_us, inplace_iters, inplace_algbw, inplace_busbw and
        inplace_wrong; emulation adds predicted_us and measured_over_predicted.

    Raises
    ------
    InvalidArgument
        As :func:`check_options`, before any message is sent.
    """
    dtype = check_options(collectives, algorithms, dtype, op, iters, warmup)
    base = comm.mpi_comm
    rank, n = comm.rank, comm.size
    itemsize = dtype.itemsize
    timing = dict(iters=iters, warmup=warmup, budget=budget)
    rows = []
    for coll in collectives:
        for size in sizes:
            count = _counts(coll, size, itemsize, n)
            x = np.empty(count, dtype=dtype)
            _fill(x, rank)
            ref = _reference(comm, coll, x, op) if check else None
            nbytes = int(count * itemsize)
            choice = comm.plan(coll, nbytes).algorithm
            point = []          # (row, key, fn) of every timed call at this size
            for alg in _algorithms_for(coll, algorithms, persistent):
                if on_point:
                    on_point(coll, alg, nbytes)
                row = {"collective": coll, "algorithm": alg, "bytes": nbytes, "count": int(count),
                       "dtype": str(dtype), "op": op if coll in REDUCING else "none", "ranks": n,
                       "auto_choice": choice, "interleaved": bool(interleave)}
                variants = [("", False)]
                if inplace and coll == "allreduce":    # broadcast is always in place
                    variants.append(("inplace_", True))
                calls = []
                for prefix, in_place in variants:
                    fn, wrong, where = _prepare(comm, coll, alg, x, op, ref, in_place, persistent)
                    row[prefix + "wrong"] = wrong
                    if where is not None:
                        row.setdefault("first_wrong_index", where)
                    calls.append((row, prefix + "time_us", fn))
                if interleave:
                    point += calls
                    continue
                for call in calls:
                    _time_calls(base, [call], **timing)
                rows.append(_finish_row(comm, row, n))
                if on_row:
                    on_row(row)
            if point:
                _time_calls(base, point, **timing)
                for row in {id(r): r for r, _, _ in point}.values():   # each row once, in order
                    rows.append(_finish_row(comm, row, n))
                    if on_row:
                        on_row(row)
    return rows


def _finish_row(comm, row, n):
    """Add bandwidths and, under emulation, the model's prediction to a timed row."""
    coll, alg = row["collective"], row["algorithm"]
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
    return row


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
    out_file = open(args.output, "a") if (args.output and rank == 0) else None
    persistent = bool(getattr(args, "persistent", False))
    total = len(sizes) * sum(len(_algorithms_for(c, args.algorithms, persistent)) for c in collectives)
    progress = _Progress(total, enabled=(rank == 0))
    last_coll = [None]

    def show(row):
        if rank != 0:
            return
        progress.clear()
        if args.format == "table" and row["collective"] != last_coll[0]:
            print(f"# {row['collective']}", flush=True)
            last_coll[0] = row["collective"]
        _print_row(args, row)
        if out_file:
            out_file.write(json.dumps(row) + "\n")
            out_file.flush()

    if rank == 0:
        _print_header(args, n, dtype)
    rows = sweep(comm, collectives, sizes, algorithms=args.algorithms, dtype=dtype, op=args.op,
                 iters=args.iters, warmup=args.warmup, budget=args.budget, check=args.check,
                 inplace=not args.no_inplace, interleave=args.interleave, on_row=show,
                 on_point=lambda c, a, b: progress.update(f"{c} {a} {b} B"), persistent=persistent)
    progress.done()
    if rank == 0:
        _print_footer(args, rows)
        if args.plot:
            _plot(rows, args.plot, n)
        if args.format == "json":
            print(json.dumps(rows, indent=1))
        elif args.format == "markdown":
            print(markdown_table(rows))
    if out_file:
        out_file.close()
    comm.free()
    wrong_total = sum(r.get("wrong", 0) + r.get("inplace_wrong", 0) for r in rows)
    if args.check and wrong_total:
        if rank == 0:
            first = next(r for r in rows if r.get("wrong") or r.get("inplace_wrong"))
            print(f"collectives bench: {wrong_total} wrong elements; first: {first['collective']} "
                  f"{first['algorithm']} count {first['count']} at index {first['first_wrong_index']}",
                  file=sys.stderr)
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


def _persistent_fn(comm, coll, alg, x, op, inplace):
    """A persistent request of ``alg`` bound once; the call to time starts and waits it."""
    work = x.copy()
    if coll == "broadcast":
        req = comm.broadcast_init(work, root=0, algorithm=alg)
    else:
        out = work if (inplace and coll == "allreduce") else \
            np.empty_like(np.asarray(_call(comm, coll, alg, x, op, None)))
        kwargs = {"op": op} if coll in REDUCING else {}
        req = getattr(comm, coll + "_init")(work, out=out, algorithm=alg, **kwargs)

    def run():
        req.start()
        return req.wait()

    return run


def _prepare(comm, coll, alg, x, op, ref, inplace, persistent=False):
    """The call to time for one algorithm, and its wrong elements against ``ref`` (on fresh data).

    Returns ``(fn, wrong, first_wrong_index)``; with ``ref`` None nothing is checked.
    """
    wrong, where = 0, None
    native_ok = alg == "mpi" and x.dtype.name not in ("float16", "bfloat16") and op != "avg"
    use_persistent = persistent and alg != "mpi"
    if use_persistent:
        alg = "mpi" if alg == "mpi-persistent" else alg
        fn = _persistent_fn(comm, coll, alg, x, op, inplace)
    elif native_ok:
        fn = _native_fn(comm.mpi_comm, coll, x, op, inplace)
    else:
        work = x.copy() if inplace else None
        if inplace and coll == "allreduce":
            fn = lambda: comm.allreduce(work, op=op, algorithm=alg, out=work)  # noqa: E731
        elif coll == "broadcast":
            buf = x.copy()
            fn = lambda: comm.broadcast(buf, root=0, algorithm=alg)  # noqa: E731
        else:
            # the output is allocated once, as nccl-tests and the native baseline do
            out = np.empty_like(np.asarray(_call(comm, coll, alg, x, op, None)))
            fn = lambda: _call(comm, coll, alg, x, op, out)  # noqa: E731
    if ref is not None:
        if use_persistent:
            y = fn()   # the first run, on a fresh copy of x
        elif inplace and coll == "allreduce":
            y = x.copy()
            comm.allreduce(y, op=op, algorithm=alg, out=y)
        else:
            y = _call(comm, coll, alg, x, op, None)
        diff = np.flatnonzero(np.asarray(y).view(f"u{x.dtype.itemsize}") !=
                              np.asarray(ref).view(f"u{x.dtype.itemsize}"))
        wrong = int(comm.mpi_comm.allreduce(int(diff.size)))
        if diff.size:
            where = int(diff[0])
    return fn, wrong, where


def time_interleaved(fns, iters, *, barrier, slowest=None) -> np.ndarray:
    """Seconds taken by each call of each function: an array of shape ``(iters, len(fns))``.

    The one timing loop of the benchmarks. Every iteration calls each function
    once, in turn, each right after ``barrier()``, so that a burst of load from
    other processes falls on all of them alike; with one function it is a plain
    timing loop.

    Parameters
    ----------
    fns : sequence of callable
        The calls to time (no arguments).
    iters : int
        Iterations.
    barrier : callable
        Called before every timed call (``comm.Barrier``; a no-op on one process).
    slowest : callable, optional
        Turns this rank's array into the one to report, for example the
        element-wise maximum over ranks; None keeps this rank's own times.
    """
    times = np.empty((iters, len(fns)))
    for i in range(iters):
        for j, fn in enumerate(fns):
            barrier()
            t0 = time.perf_counter()
            fn()
            times[i, j] = time.perf_counter() - t0
    return slowest(times) if slowest else times


def _time_calls(base, calls, *, iters, warmup, budget):
    """Time each ``(row, key, fn)`` and store in ``row[key]`` the median over iterations of the
    slowest rank's time, in microseconds, and the iteration count under the matching ``iters``
    key; several calls are timed interleaved (:func:`time_interleaved`)."""
    fns = [fn for _, _, fn in calls]

    def slowest(times):
        worst = np.empty_like(times)
        base.Allreduce(times, worst, op=_max())
        return worst

    for fn in fns:
        for _ in range(warmup):
            fn()
    if iters is None:
        one = float(time_interleaved(fns, 1, barrier=base.Barrier, slowest=slowest).max())
        iters = int(max(3, min(1000, budget / max(one, 1e-7))))
    medians = np.median(time_interleaved(fns, iters, barrier=base.Barrier, slowest=slowest), axis=0)
    for (row, key, _), t in zip(calls, medians):
        row[key] = float(t) * 1e6
        row[key.replace("time_us", "iters")] = iters


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
        if getattr(args, "persistent", False):
            print("# persistent: every algorithm but mpi is a persistent request started and waited per "
                  "call; mpi-persistent is the MPI library's own (MPI_*_init where it has one)")
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


def markdown_table(rows) -> str:
    """Markdown tables of a sweep's rows, one per collective: per size the native MPI time and
    each algorithm's time with its ratio to native (below 1 is faster), and auto's choice."""
    from .units import format_bytes

    out = []
    for coll in dict.fromkeys(r["collective"] for r in rows):
        sub = [r for r in rows if r["collective"] == coll]
        algs = [a for a in dict.fromkeys(r["algorithm"] for r in sub) if a != "mpi"]
        by_size = {}
        for r in sub:
            by_size.setdefault(r["bytes"], {})[r["algorithm"]] = r
        out.append(f"| {coll} size | native (us) | " + " | ".join(algs) + " | auto picks |")
        out.append("|---:|---:|" + "---:|" * len(algs) + "---|")
        for nbytes, got in by_size.items():
            native = got.get("mpi")
            cells = []
            for a in algs:
                r = got.get(a)
                if r is None:
                    cells.append("")
                elif native:
                    cells.append(f"{r['time_us']:.1f} ({r['time_us'] / native['time_us']:.2f}x)")
                else:
                    cells.append(f"{r['time_us']:.1f}")
            choice = next(iter(got.values()))["auto_choice"]
            native_cell = f"{native['time_us']:.1f}" if native else ""
            out.append(f"| {format_bytes(nbytes)} | {native_cell} | " + " | ".join(cells)
                       + f" | {choice} |")
        out.append("")
    return "\n".join(out)


def _plot(rows, path, n):
    import matplotlib   # main() checked that it is installed before any rank started

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
