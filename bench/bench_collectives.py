"""Our algorithms against the MPI library's own all-reduce and all-to-all, in the same run.

Script mode (the measured-results tables):

    mpiexec -n 2 python bench/bench_collectives.py [--sizes 8:64M:8] [--budget 0.25] [--memory]

A thin caller of ``collectives bench``'s timing loop (``collectives.bench.sweep``)
in its interleaved mode: for every size each iteration calls native MPI
(mpi4py's blocking Allreduce/Alltoall on the same duplicated communicator),
each algorithm and "auto" in turn, so that load on a shared machine hits them
alike. It prints the median time of the slowest rank and the ratio to native
as markdown; ``collectives bench --interleave --format markdown`` prints the
same. ``--memory`` adds the peak extra memory of one 256 MiB in-place
all-reduce per algorithm.

pytest-benchmark mode (the executor's hot paths, on one rank):

    pytest bench/bench_collectives.py
"""

from __future__ import annotations

import argparse
import resource
import sys

import numpy as np


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
    from mpi4py import MPI

    import collectives as cl
    from collectives.bench import markdown_table, sweep
    from collectives.units import format_bytes, parse_size_range

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="8:64M:8")
    ap.add_argument("--budget", type=float, default=0.25,
                    help="seconds of timed work per algorithm and size (default %(default)s)")
    ap.add_argument("--collectives", default="allreduce,alltoall")
    ap.add_argument("--memory", action="store_true")
    args = ap.parse_args(argv)
    comm = cl.Communicator(MPI.COMM_WORLD)

    def done(row):
        if comm.rank == 0 and row["algorithm"] == "mpi":
            print(f"# {row['collective']} {row['bytes']} B", file=sys.stderr, flush=True)

    rows = sweep(comm, args.collectives.split(","), parse_size_range(args.sizes), budget=args.budget,
                 inplace=False, interleave=True, on_row=done)
    if comm.rank == 0:
        print(f"{comm.size} ranks; median time of the slowest rank in us; (ratio to native MPI)\n")
        print(markdown_table(rows))
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


def test_small_alltoall_fast_path(benchmark):
    """A repeat 8-byte all-to-all with a preallocated output: the compiled fast path."""
    comm = _comm()
    x = np.ones(2 * comm.size, dtype=np.float32)
    out = np.empty_like(x)
    benchmark(lambda: comm.alltoall(x, algorithm="mpi", out=out))


def test_small_allreduce_auto_in_place(benchmark):
    """A repeat 8-byte in-place all-reduce with "auto" (on one rank "auto" is the one-rank copy;
    at 2+ ranks it is the MPI library's own collective through the fast path)."""
    comm = _comm()
    x = np.ones(2, dtype=np.float32)
    comm.allreduce(x, out=x)   # the plan is made once, outside the timing
    benchmark(lambda: comm.allreduce(x, out=x))


def test_mpi4py_small_allreduce(benchmark):
    """The baseline of the two above: mpi4py's blocking Allreduce on the same buffers."""
    from mpi4py import MPI

    comm = _comm()
    x = np.ones(16, dtype=np.float32)
    out = np.empty_like(x)
    benchmark(lambda: comm.mpi_comm.Allreduce(x, out, op=MPI.SUM))


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
