"""The "collectives" torch.distributed backend against gloo, in the same processes and run.

    mpiexec -n 2 python bench/bench_torch.py                 # all_reduce 1 KiB..64 MiB + DDP steps
    mpiexec -n 2 python bench/bench_torch.py --quick         # fewer sizes and repetitions
    mpiexec -n 2 python bench/bench_torch.py --algorithms mpi,ring   # forced algorithms as extra columns

Every rank makes the default group over "collectives" (algorithm "auto") and a
gloo group; extra groups force algorithms. Backends take turns size by size and
repetition by repetition, so load from other processes on a shared machine
falls on all of them alike (``collectives.bench.time_interleaved``, the loop
behind ``collectives bench``). Times are medians over repetitions of the mean of a
batch of calls (rank 0's clock, after a gloo barrier); ratios are gloo's time
over collectives' (above 1: collectives is faster).

The DDP part trains examples/ddp_train.py's MLP over each backend (same seed,
data, bucket size), and measures the overlap of gradient all-reduce with the
backward pass: the same training with the progress thread off
(``async_op=False``, every bucket reduced in the backward hook) and with no
all-reduce at all (``no_sync``, compute only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np
import torch
import torch.distributed as dist

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

import collectives.torch as ct  # noqa: E402
from collectives.bench import time_interleaved  # noqa: E402
from collectives.units import format_bytes  # noqa: E402
import ddp_train  # noqa: E402


def _batch(group, x, iters):
    """A call that runs ``iters`` all-reduces of ``x`` over ``group``."""
    def run():
        for _ in range(iters):
            dist.all_reduce(x, group=group)
    return run


def bench_allreduce(groups, sizes, reps, budget, sync_group):
    """{name: {size: median seconds per all-reduce}}, timed by the benchmarks' one loop."""
    def barrier():
        dist.barrier(group=sync_group)

    names = list(groups)
    out = {name: {} for name in groups}
    for nbytes in sizes:
        x = torch.ones(nbytes // 4, dtype=torch.float32)
        # iterations per batch from a first timing on gloo (all backends use the same count)
        t = float(time_interleaved([_batch(groups["gloo"], x, 1)], 2, barrier=barrier).max())
        box = torch.tensor([int(max(1, min(200, budget / max(t, 1e-6))))], dtype=torch.int64)
        dist.broadcast(box, src=0, group=sync_group)
        iters = int(box.item())
        # warm-up: plans, buffers, connections
        time_interleaved([_batch(groups[n], x, 1) for n in names], 1, barrier=barrier)
        times = time_interleaved([_batch(groups[n], x, iters) for n in names], reps,
                                 barrier=barrier) / iters
        for j, name in enumerate(names):
            out[name][nbytes] = float(np.median(times[:, j]))
    return out


def bench_ddp(groups, steps, warmup, rounds, dtype, hidden, depth, batch, bucket_mb):
    """{name: median step seconds over all rounds}."""
    samples = {name: [] for name in groups}
    for _ in range(rounds):
        for name, (g, no_sync) in groups.items():
            _, times = ddp_train.train(g, steps=steps, warmup=warmup, dtype=dtype, hidden=hidden,
                                       depth=depth, batch=batch, bucket_cap_mb=bucket_mb,
                                       no_sync=no_sync)
            samples[name].extend(times)
    return {name: statistics.median(v) for name, v in samples.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes, repetitions and steps")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--budget", type=float, default=0.05, help="seconds per timed batch")
    ap.add_argument("--algorithms", default="", help="extra forced algorithms, e.g. mpi,ring")
    ap.add_argument("--no-ddp", action="store_true")
    ap.add_argument("--no-allreduce", action="store_true")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--bucket-mb", type=float, default=1.0)
    ap.add_argument("--dtype", default="float32", choices=list(ddp_train.DTYPES))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    ct.init_process_group("collectives")
    rank, world = dist.get_rank(), dist.get_world_size()
    gloo = dist.new_group(backend="gloo")
    groups = {"collectives": dist.group.WORLD, "gloo": gloo}
    for algo in [a.strip() for a in args.algorithms.split(",") if a.strip()]:
        groups[f"collectives:{algo}"] = dist.new_group(
            backend="collectives", pg_options=ct.Options(algorithm=f"allreduce={algo}"))
    say = print if rank == 0 else (lambda *a, **k: None)
    say(f"# collectives vs gloo: torch {torch.__version__}, {world} ranks, "
        f"{os.cpu_count()} cores, torch threads per rank {args.threads}\n")

    if not args.no_allreduce:
        sizes = [1 << k for k in range(10, 27, 2)]        # 1 KiB .. 64 MiB, x4
        reps = args.reps
        if args.quick:
            sizes, reps = [1 << 10, 1 << 16, 1 << 20, 1 << 24], 3
        res = bench_allreduce(groups, sizes, reps, args.budget, gloo)
        names = list(groups)
        say(f"## all_reduce (float32, SUM), median of {reps} batches\n")
        head = "| size | " + " | ".join(f"{n} (us)" for n in names) + \
            " | " + " | ".join(f"gloo / {n}" for n in names if n != "gloo") + " |"
        say(head)
        say("|" + "---|" * (head.count("|") - 1))
        for nbytes in sizes:
            row = [format_bytes(nbytes)] + [f"{res[n][nbytes] * 1e6:.1f}" for n in names]
            row += [f"{res['gloo'][nbytes] / res[n][nbytes]:.2f}" for n in names if n != "gloo"]
            say("| " + " | ".join(row) + " |")
        say("")

    if not args.no_ddp:
        dtype = ddp_train.DTYPES[args.dtype]
        sync = dist.new_group(backend="collectives", pg_options=ct.Options(async_op=False))
        ddp_groups = {"collectives": (dist.group.WORLD, False), "gloo": (gloo, False),
                      "collectives, no progress thread": (sync, False),
                      "compute only (no_sync)": (dist.group.WORLD, True)}
        steps, rounds = (10, 2) if args.quick else (args.steps, args.rounds)
        res = bench_ddp(ddp_groups, steps, 3, rounds, dtype, args.hidden, args.depth, args.batch,
                        args.bucket_mb)
        n = sum(p.numel() for p in ddp_train.make_model(0, hidden=args.hidden, depth=args.depth).parameters())
        say(f"## DDP step time: MLP 64-{args.hidden}x{args.depth - 1}-8, {n / 1e6:.2f} M parameters "
            f"({args.dtype}), batch {args.batch} per rank, bucket_cap_mb {args.bucket_mb}, "
            f"median of {steps * rounds} steps\n")
        say("| run | step (ms) | gloo / run |")
        say("|---|---|---|")
        for name, t in res.items():
            say(f"| {name} | {t * 1e3:.2f} | {res['gloo'] / t:.2f} |")
        comm_sync = res["collectives, no progress thread"] - res["compute only (no_sync)"]
        hidden_part = res["collectives, no progress thread"] - res["collectives"]
        if comm_sync > 0:
            say(f"\nOverlap: all-reduce adds {comm_sync * 1e3:.2f} ms to a step when it runs in the "
                f"backward hook; the progress thread hides {hidden_part * 1e3:.2f} ms of it "
                f"({100 * hidden_part / comm_sync:.0f}%).")
    dist.barrier(group=gloo)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
