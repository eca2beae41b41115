"""DDP's buckets through collectives.torch.persistent_allreduce_hook, against DDP's default and gloo.

    mpiexec -n 2 python bench/bench_torch_hook.py                 # everything, a few minutes
    mpiexec -n 2 python bench/bench_torch_hook.py --quick         # fewer rounds and steps
    mpiexec -n 2 python bench/bench_torch_hook.py --json raw.json # the raw figures
    mpiexec -n 2 python bench/bench_torch_hook.py --split         # and part 4
    python bench/bench_torch_hook.py --record raw.json            # -> bench/results/torch-hook-*.json

Three parts, each interleaved (the runs take turns round by round, so load from
other processes falls on all of them alike):

1. DDP step time of examples/ddp_train.py's MLP, for a small model cut into
   many small buckets and a larger one in a few large buckets: DDP's built-in
   all-reduce over "collectives", the persistent hook over "collectives", and
   gloo.
2. One bucket's all-reduce: the hook (``state.allreduce(bucket)`` and a wait on
   its future) against ``dist.all_reduce(t, group=pg, async_op=True).wait()``
   and its ``get_future().wait()`` (what DDP's built-in path waits on), torch's
   dispatch included.
3. The asynchronous path: ``dist.all_reduce(t, async_op=True).wait()`` as the
   backend runs it by default (the progress thread), against a group with
   ``Options(requests=True)``, whose all-reduce starts a ``Communicator.iallreduce``
   request in the calling thread and whose ``Work.wait()`` drives it (no thread
   hand-over); and the blocking call on each.
4. With ``--split``, the two costs that decide part 3, on one process's clock: starting
   ``Communicator.iallreduce`` on a torch tensor (until it returns), against a
   round trip of a no-op through a progress thread (the hand-over it saves).

Times are medians over rounds of the mean of a batch of calls (rank 0's clock,
after a barrier on the gloo group); the per-call tables also give the ratio of
the fastest batches, the ones least disturbed on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

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


class _Bucket:
    """What the hook reads of a GradBucket (torch gives GradBucket no Python constructor)."""

    def __init__(self, tensor):
        self._tensor = tensor

    def index(self):
        return 0

    def buffer(self):
        return self._tensor

    def is_last(self):
        return True


def bench_ddp(configs, runs, rounds, steps, warmup):
    """{config: {run: median step seconds}}; runs take turns within each round."""
    out = {}
    for cname, cfg in configs.items():
        samples = {name: [] for name in runs}
        for _ in range(rounds):
            for name, (group, hook) in runs.items():
                _, times = ddp_train.train(group, steps=steps, warmup=warmup, persistent_hook=hook,
                                           **cfg)
                samples[name].extend(times)
        out[cname] = {name: statistics.median(v) for name, v in samples.items()}
    return out


def bench_calls(calls, sizes, reps, budget, barrier, sync_group):
    """{size: {name: median seconds per call}} for calls[name](tensor) -> a waitable."""
    out = {}
    for nbytes in sizes:
        x = torch.ones(max(1, nbytes // 4), dtype=torch.float32)
        makers = {name: make(x) for name, make in calls.items()}
        first = next(iter(makers.values()))
        t = float(time_interleaved([first], 2, barrier=barrier).max())
        box = torch.tensor([int(max(1, min(500, budget / max(t, 1e-7))))], dtype=torch.int64)
        dist.broadcast(box, src=0, group=sync_group)
        iters = int(box.item())

        def batch(fn):
            def run():
                for _ in range(iters):
                    fn()
            return run
        time_interleaved([batch(fn) for fn in makers.values()], 1, barrier=barrier)   # warm-up
        times = time_interleaved([batch(fn) for fn in makers.values()], reps, barrier=barrier) / iters
        out[nbytes] = {name: float(np.median(times[:, j])) for j, name in enumerate(makers)}
        # the fastest batch too: on a shared machine it is the one least disturbed by other jobs
        out[nbytes].update({f"{name} (min)": float(times[:, j].min()) for j, name in enumerate(makers)})
    return out


def record(result, command):
    """The results page's tables (bench/results/torch-hook-*.json) from one run."""
    sys.path.insert(0, os.path.join(HERE, "results"))
    from record import provenance

    # the raw file's own name does not matter to a reader: call it raw.json
    words = command.split()
    if "--json" in words:
        words[words.index("--json") + 1] = "raw.json"
    facts = provenance(" ".join(words))
    facts["software"] = f"torch {torch.__version__}, " + facts.get("software", "")
    loaded = (f"The 2-core machine was shared with other jobs (load average {result['load_average']:.1f} "
              "at the start), so single cells move by tens of percent between runs; the runs "
              "took turns, so the ratios within a row are the steadier figures.")

    def write(name, title, about, columns, rows):
        doc = {"title": title, "about": about, **facts, "provenance": loaded,
               "ranks": result["ranks"], "columns": columns, "rows": rows}
        with open(os.path.join(HERE, "results", name), "w") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")

    if result["ddp"]:
        rows = []
        for cname, row in result["ddp"].items():
            for name, t in row.items():
                rows.append({"model": cname, "run": name, "step_ms": t * 1e3,
                             "gloo_over_run": row["gloo"] / t})
        write("torch-hook-ddp.json", "DDP step: the persistent hook against DDP's all-reduce and gloo",
              f"examples/ddp_train.py's MLP, float32, median of {result['steps']} steps per run "
              "(rounds interleaved).",
              [{"label": "model", "cell": "{model}"}, {"label": "run", "cell": "{run}"},
               {"label": "step (ms)", "cell": "{step_ms:.2f}", "align": "right"},
               {"label": "gloo / run", "cell": "{gloo_over_run:.2f}", "align": "right"}], rows)
    if result["bucket"]:
        rows = [{"size": format_bytes(int(n)), "hook_us": v["hook"] * 1e6,
                 "dist_us": v["dist.all_reduce"] * 1e6, "future_us": v["dist future"] * 1e6,
                 "ratio": v["dist future"] / v["hook"],
                 "ratio_min": v["dist future (min)"] / v["hook (min)"]}
                for n, v in result["bucket"].items()]
        write("torch-hook-bucket.json", "One bucket's all-reduce: the hook against dist.all_reduce",
              "float32; the hook's start and a wait on its future, against dist.all_reduce(async_op=True) "
              "on the same group waited by wait() and by get_future().wait() (DDP's built-in path waits "
              f"on the future); median of {result['reps']} batches.",
              [{"label": "size", "cell": "{size}"},
               {"label": "hook (us)", "cell": "{hook_us:.1f}", "align": "right"},
               {"label": "dist wait() (us)", "cell": "{dist_us:.1f}", "align": "right"},
               {"label": "dist future (us)", "cell": "{future_us:.1f}", "align": "right"},
               {"label": "dist future / hook", "cell": "{ratio:.2f}", "align": "right"},
               {"label": "same, fastest batches", "cell": "{ratio_min:.2f}", "align": "right"}], rows)
    if result["async"]:
        rows = [{"size": format_bytes(int(n)), "thread_us": v["thread"] * 1e6,
                 "request_us": v["request"] * 1e6, "ratio": v["thread"] / v["request"],
                 "ratio_min": v["thread (min)"] / v["request (min)"],
                 "blocking_us": v["blocking"] * 1e6, "blocking_req_us": v["blocking request"] * 1e6}
                for n, v in result["async"].items()]
        write("torch-hook-async.json",
              "dist.all_reduce(async_op=True).wait(): the progress thread against a request driven by wait()",
              "float32; the backend's default (the operation queued to its progress thread) against a "
              "group with Options(requests=True) (Communicator.iallreduce started in the calling "
              "thread, driven by Work.wait()); and the blocking call on each; median of "
              f"{result['reps']} batches.",
              [{"label": "size", "cell": "{size}"},
               {"label": "thread (us)", "cell": "{thread_us:.1f}", "align": "right"},
               {"label": "request (us)", "cell": "{request_us:.1f}", "align": "right"},
               {"label": "thread / request", "cell": "{ratio:.2f}", "align": "right"},
               {"label": "same, fastest batches", "cell": "{ratio_min:.2f}", "align": "right"},
               {"label": "blocking (us)", "cell": "{blocking_us:.1f}", "align": "right"},
               {"label": "blocking, requests (us)", "cell": "{blocking_req_us:.1f}", "align": "right"}],
              rows)
    if result.get("split"):
        rows = [{"part": name, "median_us": med * 1e6, "min_us": low * 1e6}
                for name, (med, low) in result["split"].items()]
        write("torch-hook-split.json", "What a request in the calling thread saves and what it costs",
              "Rank 0's clock: Communicator.iallreduce on a torch tensor, from the call until it returns "
              "(the wait not timed), against a no-op's round trip through a progress thread (the "
              "hand-over a request would save); 400 calls each.",
              [{"label": "part", "cell": "{part}"},
               {"label": "median (us)", "cell": "{median_us:.1f}", "align": "right"},
               {"label": "fastest (us)", "cell": "{min_us:.1f}", "align": "right"}], rows)


def bench_split(comm, sizes, iters, barrier):
    """{name: (median, min) seconds}: starting an iallreduce on a torch tensor (until it returns;
    the wait is not timed), and a no-op's round trip through a progress thread."""
    from collectives.torch._progress import Progress

    out = {}
    for nbytes in sizes:
        x = torch.ones(max(1, nbytes // 4))
        times = []
        for _ in range(iters):
            barrier()
            t0 = time.perf_counter()
            request = comm.iallreduce(x, out=x)
            times.append(time.perf_counter() - t0)
            request.wait()
        out[f"iallreduce start, {format_bytes(nbytes)}"] = (statistics.median(times), min(times))
    progress = Progress("bench", async_op=True)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        progress.submit(lambda: []).wait()
        times.append(time.perf_counter() - t0)
    progress.close()
    out["progress thread round trip (no-op)"] = (statistics.median(times), min(times))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--budget", type=float, default=0.03, help="seconds per timed batch")
    ap.add_argument("--no-ddp", action="store_true")
    ap.add_argument("--no-calls", action="store_true")
    ap.add_argument("--split", action="store_true", help="also part 4 (the costs behind part 3)")
    ap.add_argument("--json", default=None, help="write the raw results here (rank 0)")
    ap.add_argument("--record", metavar="RAW", default=None,
                    help="no run: write the docs' results files bench/results/torch-hook-*.json "
                    "from a --json file (outside mpiexec)")
    args = ap.parse_args(argv)
    if args.record:
        with open(args.record) as fh:
            raw = json.load(fh)
        record(raw, raw["command"])
        return
    if args.quick:
        args.rounds, args.steps, args.reps = 2, 8, 3

    torch.set_num_threads(1)
    ct.init_process_group("collectives")
    rank, world = dist.get_rank(), dist.get_world_size()
    gloo = dist.new_group(backend="gloo")
    cl = dist.group.WORLD
    say = print if rank == 0 else (lambda *a, **k: None)
    load = os.getloadavg()[0]
    say(f"# persistent DDP hook: torch {torch.__version__}, {world} ranks, {os.cpu_count()} cores, "
        f"load average {load:.1f} at the start\n")
    result = {"ranks": world, "load_average": load, "ddp": {}, "bucket": {}, "async": {},
              "steps": args.rounds * args.steps, "reps": args.reps,
              "command": " ".join(["mpiexec", "-n", str(world), "python", "bench/bench_torch_hook.py"]
                                  + [a for a in (argv if argv is not None else sys.argv[1:])])}

    if args.split:
        split = bench_split(cl.comm, [8, 4096, 1 << 20], 400, lambda: dist.barrier(group=gloo))
        say("## What a request saves and what it costs (one process's clock)\n")
        say("| part | median (us) | fastest (us) |")
        say("|---|---|---|")
        for name, (med, low) in split.items():
            say(f"| {name} | {med * 1e6:.1f} | {low * 1e6:.1f} |")
        say("")
        result["split"] = split

    if not args.no_ddp:
        configs = {
            "many small buckets (MLP 64-256x3-8, 0.2 M params, bucket_cap_mb 0.02)":
                dict(hidden=256, depth=4, batch=32, bucket_cap_mb=0.02),
            "few large buckets (MLP 64-1024x3-8, 2.2 M params, bucket_cap_mb 4)":
                dict(hidden=1024, depth=4, batch=64, bucket_cap_mb=4.0),
        }
        runs = {"collectives, DDP's all-reduce": (cl, False),
                "collectives, persistent hook": (cl, True),
                "gloo": (gloo, False)}
        res = bench_ddp(configs, runs, args.rounds, args.steps, 3)
        for cname, row in res.items():
            say(f"## DDP step: {cname}, median of {args.rounds * args.steps} steps\n")
            say("| run | step (ms) | gloo / run |")
            say("|---|---|---|")
            for name, t in row.items():
                say(f"| {name} | {t * 1e3:.2f} | {row['gloo'] / t:.2f} |")
            say("")
        result["ddp"] = res

    if not args.no_calls:
        def barrier():
            dist.barrier(group=gloo)
        sizes = [8, 64, 512, 4096, 32768, 262144, 1 << 20]
        hook_state = ct.PersistentAllreduce(cl)

        def via_hook(x):
            bucket = _Bucket(x)
            return lambda: hook_state.allreduce(bucket).wait()

        def via_dist(x):
            return lambda: dist.all_reduce(x, group=cl, async_op=True).wait()

        def via_dist_future(x):   # what DDP's built-in path waits on
            return lambda: dist.all_reduce(x, group=cl, async_op=True).get_future().wait()
        bucket = bench_calls({"hook": via_hook, "dist.all_reduce": via_dist,
                              "dist future": via_dist_future}, sizes, args.reps,
                             args.budget, barrier, gloo)
        say(f"## One bucket's all-reduce (float32), median of {args.reps} batches\n")
        say("| size | hook future (us) | dist.all_reduce async + wait (us) | + get_future().wait() (us) "
            "| dist future / hook | same, fastest batches |")
        say("|---|---|---|---|---|---|")
        for n, row in bucket.items():
            say(f"| {format_bytes(n)} | {row['hook'] * 1e6:.1f} | {row['dist.all_reduce'] * 1e6:.1f} | "
                f"{row['dist future'] * 1e6:.1f} | {row['dist future'] / row['hook']:.2f} | "
                f"{row['dist future (min)'] / row['hook (min)']:.2f} |")
        say("")
        result["bucket"] = {str(n): v for n, v in bucket.items()}
        hook_state.close()

        proto = dist.new_group(backend="collectives", pg_options=ct.Options(requests=True))

        def thread(x):
            return lambda: dist.all_reduce(x, group=cl, async_op=True).wait()

        def request(x):
            return lambda: dist.all_reduce(x, group=proto, async_op=True).wait()

        def blocking(x):
            return lambda: dist.all_reduce(x, group=cl)

        def blocking_request(x):
            return lambda: dist.all_reduce(x, group=proto)
        asy = bench_calls({"thread": thread, "request": request, "blocking": blocking,
                           "blocking request": blocking_request}, sizes,
                          args.reps, args.budget, barrier, gloo)
        say(f"## async_op=True + wait(): progress thread (default) vs a request driven by wait() "
            f"(Options(requests=True)), median of {args.reps} batches\n")
        say("| size | progress thread (us) | request in wait() (us) | thread / request "
            "| same, fastest batches | blocking call (us) | blocking, requests=True (us) |")
        say("|---|---|---|---|---|---|---|")
        for n, row in asy.items():
            say(f"| {format_bytes(n)} | {row['thread'] * 1e6:.1f} | {row['request'] * 1e6:.1f} | "
                f"{row['thread'] / row['request']:.2f} | "
                f"{row['thread (min)'] / row['request (min)']:.2f} | {row['blocking'] * 1e6:.1f} | "
                f"{row['blocking request'] * 1e6:.1f} |")
        say("")
        result["async"] = {str(n): v for n, v in asy.items()}

    if rank == 0 and args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)

    dist.barrier(group=gloo)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
