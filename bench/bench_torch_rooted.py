"""torch.distributed gather and scatter over "collectives": the direct executor step against
the all-to-all-v route it replaced, and gloo, in the same processes and run.

    mpiexec -n 2 python bench/bench_torch_rooted.py [--sizes 8,1K,64K,1M] [--iters 200]

Each timed call is one ``dist.gather`` (or ``dist.scatter``) to root 0 of ``size`` bytes
per rank, right after a barrier; the variants take turns call by call
(``collectives.bench.time_interleaved``), so load on a shared machine falls on all alike.
The table shows the median of the slowest rank in microseconds and the ratio of the
all-to-all-v route to the direct step (above 1: the direct step is faster).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.distributed as dist

import collectives.torch as ct
from collectives.bench import time_interleaved
from collectives.units import format_bytes, parse_size


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8,1K,64K,1M")
    ap.add_argument("--iters", type=int, default=200)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ct.init_process_group("collectives")
    rank, p = dist.get_rank(), dist.get_world_size()
    gloo = dist.new_group(backend="gloo")
    from mpi4py import MPI

    world = MPI.COMM_WORLD.Dup()
    impl = ct.ProcessGroupCollectives   # the route is swapped on the class, call by call

    def slowest(times):
        worst = np.empty_like(times)
        world.Allreduce(times, worst, op=MPI.MAX)
        return worst

    direct = impl._rooted
    via_alltoallv = impl._rooted_alltoallv
    if rank == 0:
        print(f"{p} ranks; median us of the slowest rank\n\n| op | size | direct | all-to-all-v route "
              "| route / direct | gloo |\n|---|---|---|---|---|---|", flush=True)
    for text in args.sizes.split(","):
        nbytes = parse_size(text)
        n = max(1, nbytes // 4)
        x = torch.ones(n)
        outs = [torch.empty(n) for _ in range(p)] if rank == 0 else None
        ins = [torch.ones(n) for _ in range(p)] if rank == 0 else None
        out = torch.empty(n)

        def run(op, route, group=None):
            def call():
                impl._rooted = route
                if op == "gather":
                    dist.gather(x, outs, dst=0, group=group)
                else:
                    dist.scatter(out, ins, src=0, group=group)
                impl._rooted = direct
            return call

        for op in ("gather", "scatter"):
            fns = [run(op, direct), run(op, via_alltoallv), run(op, direct, gloo)]
            for fn in fns:
                for _ in range(5):
                    fn()
            med = np.median(time_interleaved(fns, args.iters, barrier=world.Barrier, slowest=slowest),
                            axis=0) * 1e6
            if rank == 0:
                print(f"| {op} | {format_bytes(nbytes)} | {med[0]:.1f} | {med[1]:.1f} | {med[1] / med[0]:.2f}x "
                      f"| {med[2]:.1f} |", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
