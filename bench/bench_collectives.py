"""Our algorithms against the MPI library's own all-reduce and all-to-all, in the same run.

Script mode (the README's table):

    mpiexec -n 2 python bench/bench_collectives.py [--sizes 8:64M] [--repeat 5] [--memory]

For every size it times native MPI (mpi4py's blocking Allreduce/Alltoall on
the same duplicated communicator), each algorithm and "auto", interleaved
round by round so that load on a shared machine hits them alike, and prints
the median time of the slowest rank and the ratio to native. ``--memory``
adds the peak extra memory of one 256 MiB in-place all-reduce per algorithm.

pytest-benchmark mode (the executor's hot paths, on one rank):

    pytest bench/bench_collectives.py
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np


def _median_max(comm, fn, iters):
    from mpi4py import MPI

    times = np.empty(iters)
    for i in range(iters):
        comm.Barrier()
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    worst = np.empty_like(times)
    comm.Allreduce(times, worst, op=MPI.MAX)
    return worst


def sweep(sizes, repeat, collectives=("allreduce", "alltoall")):
    from mpi4py import MPI

    import collectives as cl
    from collectives.algorithms import algorithm_names

    comm = cl.Communicator(MPI.COMM_WORLD)
    base = comm.mpi_comm
    p = comm.size
    rows = []
    for coll in collectives:
        algs = ["native"] + list(algorithm_names(coll)) + ["auto"]
        for size in sizes:
            count = max(p, size // 4)
            count -= count % p
            x = np.ones(count, dtype=np.float32)
            out = np.empty_like(x)
            if coll == "allreduce":
                fns = {"native": lambda: base.Allreduce(x, out, op=MPI.SUM)}
                for a in algs[1:]:
                    fns[a] = (lambda a=a: comm.allreduce(x, algorithm=a, out=out))
            else:
                fns = {"native": lambda: base.Alltoall(x, out)}
                for a in algs[1:]:
                    fns[a] = (lambda a=a: comm.alltoall(x, algorithm=a, out=out))
            for fn in fns.values():           # warm up: page faults, schedules, MPI connections
                fn()
                fn()
            iters = max(3, min(200, int(0.05 / max(_once(base, fns["native"]), 1e-6))))
            samples = {a: [] for a in algs}
            for _ in range(repeat):
                for a in algs:
                    samples[a].append(_median_max(base, fns[a], iters))
            med = {a: float(np.median(np.concatenate(samples[a]))) for a in algs}
            auto_choice = comm.plan(coll, count * 4).algorithm
            rows.append((coll, count * 4, med, auto_choice))
            if comm.rank == 0:
                print(f"# {coll} {count * 4} B done", file=sys.stderr, flush=True)
    return comm, rows


def _once(base, fn):
    base.Barrier()
    t0 = time.perf_counter()
    fn()
    return base.allreduce(time.perf_counter() - t0, op=_max())


def _max():
    from mpi4py import MPI

    return MPI.MAX


def memory_report(comm, nbytes=256 << 20):
    """Peak extra memory of one in-place all-reduce of nbytes, per algorithm (rank 0's view)."""
    from collectives.algorithms import algorithm_names

    x = np.ones(nbytes // 4, dtype=np.float32)
    out = {}
    for a in ["mpi"] + list(algorithm_names("allreduce")):
        comm.allreduce(x[:1024], algorithm=a)        # load code paths first
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        comm._scratch = np.empty(0, dtype=np.uint8)   # measure what this call allocates
        comm._tmp = np.empty(0, dtype=np.uint8)
        comm.allreduce(x, algorithm=a, out=x)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        scratch = comm._scratch.nbytes + comm._tmp.nbytes
        out[a] = (max(0, after - before), scratch)
        comm._calls.clear()
    return out


def main(argv=None):
    from collectives.units import format_bytes, parse_size_range

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="8:64M:8")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--collectives", default="allreduce,alltoall")
    ap.add_argument("--memory", action="store_true")
    args = ap.parse_args(argv)
    comm, rows = sweep(parse_size_range(args.sizes), args.repeat, args.collectives.split(","))
    if comm.rank == 0:
        print(f"{comm.size} ranks; median time of the slowest rank in us; (ratio to native MPI)\n")
        for coll in dict.fromkeys(r[0] for r in rows):
            algs = [a for a in rows[0][2] if a != "native"] if coll == rows[0][0] else None
            sub = [r for r in rows if r[0] == coll]
            algs = [a for a in sub[0][2] if a != "native"]
            print(f"| {coll} size | native | " + " | ".join(algs) + " | auto picks |")
            print("|---:|---:|" + "---:|" * len(algs) + "---|")
            for _, nbytes, med, choice in sub:
                cells = [f"{med[a] * 1e6:.1f} ({med[a] / med['native']:.2f}x)" for a in algs]
                print(f"| {format_bytes(nbytes)} | {med['native'] * 1e6:.1f} | " + " | ".join(cells)
                      + f" | {choice} |")
            print()
    if args.memory:
        report = memory_report(comm)
        if comm.rank == 0:
            print("| all-reduce of 256 MiB in place | peak RSS growth | executor scratch |")
            print("|---|---:|---:|")
            for a, (rss, scratch) in report.items():
                print(f"| {a} | {format_bytes(rss)} | {format_bytes(scratch)} |")
    comm.free()


# ---- pytest-benchmark: the executor's hot paths on one rank ------------------------------

def _comm():
    import collectives as cl

    return cl.Communicator()


def test_small_allreduce_call_overhead(benchmark):
    comm = _comm()
    x = np.ones(16, dtype=np.float32)
    out = np.empty_like(x)
    benchmark(lambda: comm.allreduce(x, algorithm="ring", out=out))


def test_native_small_allreduce(benchmark):
    comm = _comm()
    x = np.ones(16, dtype=np.float32)
    out = np.empty_like(x)
    benchmark(lambda: comm.allreduce(x, algorithm="mpi", out=out))


def test_schedule_build_ring_1024_ranks(benchmark):
    from collectives.algorithms import build_schedule

    benchmark(lambda: build_schedule("allreduce", "ring", 1024, 1 << 20).program(7))


def test_alltoall_pairwise_4mib(benchmark):
    comm = _comm()
    x = np.ones(1 << 20, dtype=np.float32)
    out = np.empty_like(x)
    benchmark(lambda: comm.alltoall(x, algorithm="pairwise", out=out))


if __name__ == "__main__":
    main()
