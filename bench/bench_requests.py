"""Persistent and non-blocking all-reduce against the MPI library's own blocking call.

Script mode (the figures of docs/guide/nonblocking.md):

    mpiexec -n 2 python bench/bench_requests.py [--sizes 8:4K:8] [--iters 2000]

For every size, each iteration calls, in turn and each right after a barrier
(``collectives.bench.time_interleaved``): native ``MPI_Allreduce`` through
mpi4py on the same buffers, a persistent all-reduce started and waited
(``allreduce_init`` with "mpi", i.e. MPI-4's ``MPI_Allreduce_init``, and with
"auto", the executor's precompiled program), the blocking ``comm.allreduce``
``comm.iallreduce(...).wait()`` and, as the floor of any non-blocking call,
mpi4py's own ``Iallreduce`` + ``Wait``. It prints the median time of the slowest
rank and the ratio to native as markdown. ``--ring`` times ``iallreduce(algorithm="ring")``
+ ``wait`` instead, on a pooled execution and on a fresh one per call.

pytest-benchmark mode (one rank, the per-call cost of the Python layer):

    pytest bench/bench_requests.py
"""

from __future__ import annotations

import argparse

import numpy as np


def variants(comm, x, y):
    """name -> (call to time, cleanup) for one size; every call leaves its result in ``y``."""
    from mpi4py import MPI

    base = comm.mpi_comm
    calls = {"native MPI_Allreduce": (lambda: base.Allreduce(x, y, op=MPI.SUM), None)}
    for algorithm in ("mpi", "auto"):
        op = comm.allreduce_init(x, out=y, algorithm=algorithm)

        def run(op=op):
            op.start()
            op.wait()

        label = f"persistent {algorithm}" + (" (MPI_Allreduce_init)" if op.persistent_mpi else
                                             f" ({op.algorithm})")
        calls[label] = (run, op.free)
    calls["blocking auto"] = (lambda: comm.allreduce(x, out=y), None)
    calls["iallreduce auto + wait"] = (lambda: comm.iallreduce(x, out=y).wait(), None)
    # the floor a non-blocking call can reach: the MPI library's own, through mpi4py
    calls["mpi4py Iallreduce + Wait"] = (lambda: base.Iallreduce(x, y, op=MPI.SUM).Wait(), None)
    return calls


def ring_variants(comm, x, y):
    """name -> (call, cleanup): ``iallreduce(algorithm="ring")`` + ``wait`` on a pooled
    execution of its shape, and the same with the pool off (a fresh execution and scratch per
    call, as before pooling), beside native ``MPI_Allreduce``."""
    from mpi4py import MPI

    from collectives import requests

    base = comm.mpi_comm
    per_shape = requests._POOLED_PER_SHAPE

    def pooled():
        requests._POOLED_PER_SHAPE = per_shape
        comm.iallreduce(x, out=y, algorithm="ring").wait()

    def fresh():
        requests._POOLED_PER_SHAPE = 0
        comm.__dict__.pop("_program_pools", None)
        comm.iallreduce(x, out=y, algorithm="ring").wait()
        requests._POOLED_PER_SHAPE = per_shape

    return {"native MPI_Allreduce": (lambda: base.Allreduce(x, y, op=MPI.SUM), None),
            "iallreduce ring, pooled": (pooled, None),
            "iallreduce ring, fresh execution": (fresh, None)}


def measure(comm, sizes, iters, repeats=3, variants=variants):
    """Rows of (size, {label: median us}): the median over ``repeats`` interleaved runs of
    the median time of the slowest rank."""
    from mpi4py import MPI

    from collectives.bench import time_interleaved

    base = comm.mpi_comm

    def slowest(times):
        worst = np.empty_like(times)
        base.Allreduce(times, worst, op=MPI.MAX)
        return worst

    rows = []
    for nbytes in sizes:
        x = np.full(max(1, nbytes // 4), 1.0 + comm.rank, dtype=np.float32)
        y = np.empty_like(x)
        calls = variants(comm, x, y)
        fns = [fn for fn, _ in calls.values()]
        for fn in fns:                 # warm-up
            for _ in range(50):
                fn()
        runs = [np.median(time_interleaved(fns, iters, barrier=base.Barrier, slowest=slowest), axis=0)
                for _ in range(repeats)]
        med = np.median(np.array(runs), axis=0) * 1e6
        rows.append((int(x.nbytes), dict(zip(calls, med.tolist()))))
        for _, free in calls.values():
            if free:
                free()
    return rows


def markdown(rows, nranks):
    labels = list(rows[0][1])
    lines = [f"{nranks} ranks; median us of the slowest rank (ratio to native MPI_Allreduce)", "",
             "| size | " + " | ".join(labels) + " |", "|---:|" + "---:|" * len(labels)]
    for nbytes, times in rows:
        native = times[labels[0]]
        cells = [f"{times[k]:.2f}" if k == labels[0] else f"{times[k]:.2f} ({times[k] / native:.2f}x)"
                 for k in labels]
        lines.append(f"| {nbytes} B | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    import collectives as cl
    from collectives.units import parse_size_range

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="8:4K:8")
    ap.add_argument("--iters", type=int, default=2000, help="interleaved iterations per run")
    ap.add_argument("--repeats", type=int, default=3, help="runs per size (their median is shown)")
    ap.add_argument("--ring", action="store_true",
                    help="iallreduce on the executor's ring program, pooled and not, instead")
    args = ap.parse_args(argv)
    comm = cl.Communicator()
    rows = measure(comm, parse_size_range(args.sizes), args.iters, args.repeats,
                   variants=ring_variants if args.ring else variants)
    if comm.rank == 0:
        print(markdown(rows, comm.size))
    comm.free()


# ---- pytest-benchmark: the Python layer's cost per start, on one rank -------------------------

def _comm():
    import collectives as cl

    return cl.Communicator()


def test_persistent_allreduce_start_wait_mpi(benchmark):
    comm = _comm()
    x = np.ones(2, dtype=np.float32)
    y = np.empty_like(x)
    op = comm.allreduce_init(x, out=y, algorithm="mpi")
    benchmark(lambda: op.start().wait())
    op.free()


def test_persistent_allreduce_start_wait_program(benchmark):
    comm = _comm()
    x = np.ones(2, dtype=np.float32)
    y = np.empty_like(x)
    op = comm.allreduce_init(x, out=y, algorithm="ring")
    benchmark(lambda: op.start().wait())
    op.free()


def test_iallreduce_wait(benchmark):
    comm = _comm()
    x = np.ones(2, dtype=np.float32)
    y = np.empty_like(x)
    benchmark(lambda: comm.iallreduce(x, out=y, algorithm="ring").wait())


def test_blocking_allreduce_for_comparison(benchmark):
    comm = _comm()
    x = np.ones(2, dtype=np.float32)
    y = np.empty_like(x)
    benchmark(lambda: comm.allreduce(x, out=y, algorithm="ring"))


if __name__ == "__main__":
    main()
