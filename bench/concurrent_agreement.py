"""Concurrent communicators on emulated links against the model: a layout with two busy dimensions.

    python bench/concurrent_agreement.py                 # 2 ranks, 64 KiB to 4 MiB
    python bench/concurrent_agreement.py --sizes 64K,1M --repeats 5 --output /tmp/c.json

The layout is ``comm.layout(dp=2, ep=2)`` on 2 ranks: the expert-parallel group
is carved out of the data-parallel one, so both groups hold the same two ranks
and their traffic shares the same links (a star of 1 GB/s, 20 us links by
default; ``--links``). Two case sets, each timed interleaved with the same
calls run one after the other (the baseline), median over ``--repeats`` of the
slowest rank, lowest of ``--batches`` batches:

* ``pair``: one data-parallel all-reduce (ring) and one expert-parallel
  all-to-all (pairwise) of the same size at once inside ``mesh.overlap``, as
  non-blocking requests completed by ``cl.wait_all`` ("requests") and as two
  threads ("threads"). Priced by the joint model
  (:func:`collectives.model.joint.joint_call_times`: the end of the slower
  call), next to what pricing each call alone would give. The workload layer
  cannot express this step: in a training step a gradient bucket starts only
  once a layer's backward pass is done, and the expert all-to-alls come as
  dispatch/combine pairs, the forward's without any gradient traffic beside
  them, so no phase of ``cl.workload.simulate`` is one all-reduce starting
  with one all-to-all.
* ``step``: the communication of a whole training step of a small
  mixture-of-experts model (2 layers, hidden 256, 2 experts, top-2, free
  compute) on ``Layout(dp=2, ep=2)``, replayed on the mesh: the forward and
  backward expert all-to-alls in order, and the data-parallel gradient buckets
  as non-blocking requests launched as their layers' backward passes end,
  each declared with ``mesh.overlap`` beside the all-to-alls it runs with.
  The all-to-all size is set by the sequence length. Priced by
  ``cl.workload.simulate`` for the same step on the same topology; the
  baseline (buckets after the backward pass) by simulate's own phases.

Workers only measure; the parent prices, so ``--from FILE`` re-prices an old
measurement. Writes ``bench/results/concurrent-agreement.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# the single-call agreement's machine facts and emulated host terms, shared with it
sys.path.insert(0, str(HERE))
from emulation_agreement import _cores, _load, _spec, host_terms  # noqa: E402
DEFAULT_LINKS = "bw=1GB/s,lat=20us"
TARGET = 0.20
PAIR_MODES = ("requests", "threads")

# the small mixture-of-experts model of the "step" cases: hidden 256, top-2 of 2 experts,
# so one all-to-all moves seq_len * 2 * 256 * 2 bytes (bf16) per rank
HIDDEN, EXPERTS, TOP_K, ITEMSIZE = 256, 2, 2, 2




def toy_step(nbytes: int):
    """The training step whose expert all-to-all moves ``nbytes`` per rank (a multiple of 1 KiB)."""
    import collectives as cl

    W = cl.workload
    seq_len = max(nbytes // (TOP_K * HIDDEN * ITEMSIZE), 1)
    model = W.Model(name="toy-moe", layers=2, hidden=HIDDEN, ffn=2 * HIDDEN, heads=2, kv_heads=2,
                    vocab=64, seq_len=seq_len, experts=EXPERTS, experts_per_token=TOP_K,
                    tied_embeddings=True)
    dense_layer = model.layer_params(0)[0] * ITEMSIZE
    # one bucket per layer's dense gradients, so the first starts while the second layer's
    # backward all-to-alls still run
    return W.TrainingStep(model, W.Layout(dp=2, ep=2), global_batch=2, micro_batch=1,
                          accelerator=W.Accelerator(flops=float("inf")), bucket_bytes=dense_layer)


# ---------------------------------------------------------------------- worker (under mpiexec)
def _buffers(nbytes, size):
    import numpy as np

    count = nbytes // 4 - (nbytes // 4) % size
    x = np.ones(count, dtype=np.float32)
    return x, np.empty_like(x)


def pair_calls(mesh, nbytes):
    """(sequential, requests, threads): one dp all-reduce and one ep all-to-all of ``nbytes``."""
    import collectives as cl

    dp, ep = mesh["dp"], mesh["ep"]
    g, go = _buffers(nbytes, dp.size)
    a, ao = _buffers(nbytes, ep.size)
    declared = dict(dp=("allreduce", g.nbytes, "float32", "ring"),
                    ep=("alltoall", a.nbytes, "float32", "pairwise"))

    def sequential():
        dp.allreduce(g, out=go, algorithm="ring")
        ep.alltoall(a, out=ao, algorithm="pairwise")

    def requests():
        with mesh.overlap(**declared):
            cl.wait_all([dp.iallreduce(g, out=go, algorithm="ring"),
                         ep.ialltoall(a, out=ao, algorithm="pairwise")])

    def threads():
        with mesh.overlap(**declared):
            th = threading.Thread(target=dp.allreduce, args=(g,), kwargs=dict(out=go, algorithm="ring"))
            th.start()
            ep.alltoall(a, out=ao, algorithm="pairwise")
            th.join()

    return sequential, requests, threads


class ReplayPlan:
    """What :func:`replay` runs, made once before the timing: the step's calls bound to their
    Communicator, buffers and the workload's algorithm, and the overlap declaration of each
    bucket beside the backward collective it runs with. Building the workload's programs is
    the model's bookkeeping (about 0.2 ms a step here), not what a training loop does."""

    def __init__(self, mesh, step, buffers):
        from collectives.workload import DEFAULT_ALGORITHMS
        from collectives.workload.step import Collective, Compute, Ready

        def bind(c, nonblocking):
            x, out = buffers[c.dim, c.nbytes]
            fn = getattr(mesh[c.dim], ("i" if nonblocking else "") + c.collective)
            alg = DEFAULT_ALGORITHMS[c.collective]
            return lambda: fn(x, out=out, algorithm=alg)

        forward, backward = step.forward_program(0), step.backward_program(0)
        for item in forward + backward:
            if isinstance(item, Compute) and item.seconds:
                raise ValueError("replay needs free compute (Accelerator(flops=inf))")
        calls = lambda items: [bind(i, False) for i in items if isinstance(i, Collective)]  # noqa: E731
        self.earlier = calls(forward + backward) * (step.num_microbatches - 1)
        self.forward = calls(forward)
        self.backward_blocking = calls(backward)
        buckets = [b.collective for b in step.gradient_buckets(0)]
        self.after = [b.after for b in step.gradient_buckets(0)]
        self.buckets_blocking = [bind(c, False) for c in buckets]
        self.buckets = [bind(c, True) for c in buckets]
        # the backward as ("ready", layer) and ("call", start) items; per position and bucket,
        # the overlap block declared when the bucket starts there (None: no collective follows)
        self.backward = []
        collective_at = [i for i, item in enumerate(backward) if isinstance(item, Collective)]
        for item in backward:
            if isinstance(item, Ready):
                self.backward.append(("ready", item.layer))
            elif isinstance(item, Collective):
                self.backward.append(("call", bind(item, True)))
            else:
                self.backward.append(("compute", None))
        self.declared = {}
        for position in range(len(backward) + 1):
            upcoming = [backward[i] for i in collective_at if i > position]
            for k, c in enumerate(buckets):
                if upcoming:
                    f = upcoming[0]
                    self.declared[position, k] = {c.dim: (c.collective, c.nbytes, "float32", "ring"),
                                                  f.dim: (f.collective, f.nbytes, "float32", "pairwise")}
                else:
                    self.declared[position, k] = None
        self.mesh = mesh


def replay(plan: ReplayPlan, concurrent: bool):
    """The communication of the plan's step (stage 0, free compute) on its mesh.

    Concurrent: the gradient buckets are non-blocking requests, each started once the
    backward pass of its layer is done and the previous bucket is complete, and
    declared with ``mesh.overlap`` beside the next backward collective, which starts with
    it; the block ends when either is done (a later call is priced alone).
    Sequential: the buckets after the backward pass.
    """
    for call in plan.earlier:
        call()
    for call in plan.forward:
        call()
    if not concurrent:
        for call in plan.backward_blocking:
            call()
        for call in plan.buckets_blocking:
            call()
        return
    mesh, buckets, after = plan.mesh, plan.buckets, plan.after
    ready: set = set()
    # the running bucket, its overlap block, and the call declared beside it ("next": not
    # started yet); the block is left when either of the two is done, so no later call is
    # priced as if it started with the bucket
    state = {"next": 0, "request": None, "overlap": None, "partner": None}

    def leave_overlap():
        if state["overlap"] is not None:
            state["overlap"].__exit__(None, None, None)
            state["overlap"] = state["partner"] = None

    def move_buckets(position):
        req = state["request"]
        if req is not None and req.test():
            state["request"] = None
            leave_overlap()
        k = state["next"]
        if state["request"] is None and k < len(buckets) and after[k] in ready:
            declared = plan.declared[position, k]
            if declared is not None:
                cm = mesh.overlap(**declared)
                cm.__enter__()
                state["overlap"], state["partner"] = cm, "next"
            state["request"] = buckets[k]()
            state["next"] = k + 1

    for position, (kind, what) in enumerate(plan.backward):
        if kind == "ready":
            ready.add(what)
            move_buckets(position)
        elif kind == "call":
            req = what()
            if state["partner"] == "next":
                state["partner"] = req
            while not req.test():
                move_buckets(position)
            if state["partner"] is req:
                leave_overlap()
    while state["request"] is not None or state["next"] < len(buckets):
        move_buckets(len(plan.backward))


def _time_interleaved(world, fns, repeats, batches):
    """Per function, the lowest batch median of the slowest rank and its fastest run; the
    functions alternate, so a burst of load falls on all of them alike."""
    import numpy as np
    from mpi4py import MPI

    for fn in fns:
        fn()
        fn()
    best = [float("inf")] * len(fns)
    fastest = [float("inf")] * len(fns)
    for _ in range(batches):
        times = np.empty((len(fns), repeats))
        for i in range(repeats):
            for k, fn in enumerate(fns):
                world.Barrier()
                t0 = time.perf_counter()
                fn()
                times[k, i] = time.perf_counter() - t0
        worst = np.empty_like(times)
        world.Allreduce(times, worst, op=MPI.MAX)
        for k in range(len(fns)):
            best[k] = min(best[k], float(np.median(worst[k])))
            fastest[k] = min(fastest[k], float(worst[k].min()))
    return best, fastest


def worker(args) -> int:
    import numpy as np
    from mpi4py import MPI

    import collectives as cl
    from collectives.units import parse_size_range

    world = MPI.COMM_WORLD
    spec = _spec(world.Get_size(), args.links)
    emu = cl.Communicator(world, topology=cl.topology.resolve(spec), emulate=True, timeout=120)
    mesh = emu.layout(dp=world.Get_size(), ep=world.Get_size())
    host = {"cores": float(mesh["dp"]._emulated_host["cores"]), "segment_bytes": emu.segment_bytes}
    rows = []
    sizes = parse_size_range(args.sizes)

    def held():
        # the core counts every held step once, in whichever Communicator asks first
        steps = late = 0
        for dim in ("dp", "ep"):
            h = mesh[dim].emulation_health()
            steps, late = steps + h["held_steps"], late + h["late_steps"]
        return steps, late

    def late_share(before):
        steps, late = held()
        return world.allreduce((late - before[1]) / max(steps - before[0], 1), op=MPI.MAX)

    for nbytes in sizes if "pair" in args.cases else ():
        seq, req, thr = pair_calls(mesh, nbytes)
        before = held()
        (t_seq, t_req, t_thr), fast = _time_interleaved(world, [seq, req, thr], args.repeats, args.batches)
        share = late_share(before)
        for mode, t, f in zip(PAIR_MODES, (t_req, t_thr), fast[1:]):
            rows.append({"case": "pair", "mode": mode, "bytes": nbytes - nbytes % (4 * world.Get_size()),
                         "measured_s": t, "fastest_s": f, "sequential_s": t_seq, "late_share": share})
    for nbytes in sizes if "step" in args.cases else ():
        step = toy_step(nbytes)
        buffers = {}
        for c in ([i for i in step.forward_program(0) + step.backward_program(0) if hasattr(i, "nbytes")]
                  + [b.collective for b in step.gradient_buckets(0)]):
            buffers.setdefault((c.dim, c.nbytes), _buffers(c.nbytes, world.Get_size()))
        plan = ReplayPlan(mesh, step, buffers)
        before = held()
        (t_seq, t_con), fast = _time_interleaved(world, [lambda: replay(plan, False),
                                                         lambda: replay(plan, True)],
                                                 args.repeats, args.batches)
        rows.append({"case": "step", "mode": "requests", "bytes": step.dispatch_bytes,
                     "seq_len": step.model.seq_len, "measured_s": t_con, "fastest_s": fast[1],
                     "sequential_s": t_seq, "late_share": late_share(before)})
    if world.Get_rank() == 0:
        with open(args.worker, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({**r, "ranks": world.Get_size(), "topology": spec, **host}) + "\n")
    mesh.free()
    emu.free()
    return 0



# ---------------------------------------------------------------------- parent
def measure(args) -> list:
    path = Path(tempfile.mkdtemp()) / "rows.jsonl"
    cmd = ["mpiexec", "-n", str(args.ranks), sys.executable, str(Path(__file__).resolve()),
           "--worker", str(path), "--sizes", args.sizes, "--repeats", str(args.repeats),
           "--batches", str(args.batches), "--links", args.links, "--cases", args.cases]
    print("#", shlex.join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pair_prediction(row) -> dict:
    """The joint model of one pair case, with the host terms the emulated run priced with."""
    import numpy as np

    from collectives.algorithms import build_schedule
    from collectives.model.joint import joint_call_times

    p = row["ranks"]
    count = row["bytes"] // 4
    hosts = np.arange(p)
    parts = [(build_schedule("allreduce", "ring", p, count), hosts),
             (build_schedule("alltoall", "pairwise", p, count), hosts)]

    def host(n):   # every rank of every part on this one machine, as the emulation prices them
        return {**host_terms(n, row["cores"], row.get("profile")), "segment_bytes": row["segment_bytes"]}

    joint = joint_call_times(parts, row["topology"], itemsize=4, **host(2 * p))
    alone = [float(joint_call_times([part], row["topology"], itemsize=4, **host(p))[0]) for part in parts]
    return {"predicted_s": float(joint.max()), "alone_s": max(alone),
            "predicted_sequential_s": sum(alone)}


def replay_holds(step, row, concurrent: bool = True) -> float:
    """What the emulated links hold :func:`replay` (concurrent) to: the same decisions as the
    replay, each call lasting what the joint model gives it (:func:`joint_call_times` of a
    bucket and the call declared beside it, which starts with it, else alone). No new pricing: this
    only orders the joint model's call times as the replay orders the calls."""
    import numpy as np

    from collectives.algorithms import build_schedule
    from collectives.model.joint import joint_call_times
    from collectives.workload import DEFAULT_ALGORITHMS
    from collectives.workload.step import Collective, Ready

    p, hosts = row["ranks"], np.arange(row["ranks"])

    def part(c):
        return build_schedule(c.collective, DEFAULT_ALGORITHMS[c.collective], p, c.nbytes // 4), hosts

    def price(calls):
        machines = {**host_terms(p * len(calls), row["cores"], row.get("profile")),
                    "segment_bytes": row["segment_bytes"]}
        return joint_call_times([part(c) for c in calls], row["topology"], itemsize=4, **machines)

    forward, backward = step.forward_program(0), step.backward_program(0)
    buckets = step.gradient_buckets(0)
    if not concurrent:        # every call alone, one after the other
        calls = [i for i in (forward + backward) * step.num_microbatches if isinstance(i, Collective)]
        return float(sum(price([c])[0] for c in calls + [b.collective for b in buckets]))
    t = 0.0
    for item in (forward + backward) * (step.num_microbatches - 1) + forward:
        if isinstance(item, Collective):
            t += price([item])[0]
    ready, k = set(), 0
    bucket_end, partner = -1.0, None      # the running bucket's end, and where its partner is

    def start_buckets(now, position):
        nonlocal k, bucket_end, partner
        while k < len(buckets) and buckets[k].after in ready and bucket_end <= now:
            upcoming = [i for i in range(position + 1, len(backward))
                        if isinstance(backward[i], Collective)]
            c = buckets[k].collective
            partner = upcoming[0] if upcoming else None
            took = price([c, backward[partner]])[0] if partner is not None else price([c])[0]
            bucket_end, k = max(now, bucket_end) + took, k + 1
            now = bucket_end if not upcoming else now
            if upcoming:
                break

    for position, item in enumerate(backward):
        if isinstance(item, Ready):
            ready.add(item.layer)
            start_buckets(t, position)
        elif isinstance(item, Collective):
            # only the call declared beside the bucket, which starts with it, is priced with it
            beside = position == partner and bucket_end > t
            took = price([buckets[k - 1].collective, item])[1] if beside else price([item])[0]
            end = t + took
            if bucket_end < end:          # a bucket done during this call lets the next one start
                start_buckets(max(bucket_end, t), position)
            t = end
    while k < len(buckets):
        start_buckets(max(t, bucket_end), len(backward))
        t = max(t, bucket_end)
    return float(max(t, bucket_end))


def cpu_host(row) -> dict:
    """``cl.workload.simulate``'s CPU-host terms of the emulated run: every rank on this one
    machine, its cores, the executor's segments and the emulated links' per-call cost."""
    import numpy as np

    if row.get("profile"):
        # a calibration profile's host constants, the emulated per-call cost included, as the
        # joint model of the run takes them (host_terms)
        return {"host": "cpu", **host_terms(row["ranks"], row["cores"], row["profile"]),
                "segment_bytes": row["segment_bytes"]}
    return {"emulated": True, "machines": np.zeros(row["ranks"], dtype=np.int64),
            "cores": row["cores"], "segment_bytes": row["segment_bytes"]}


def step_prediction(row) -> dict:
    import collectives as cl

    step = toy_step(row["bytes"])
    r = cl.workload.simulate(step, row["topology"])
    cpu = cl.workload.simulate(step, row["topology"], **cpu_host(row))
    no_sharing = cl.workload.simulate(step, row["topology"], joint=False, **cpu_host(row)).time
    return {"predicted_s": replay_holds(step, row), "simulate_s": r.time, "simulate_cpu_s": cpu.time,
            "alone_s": no_sharing, "predicted_sequential_s": replay_holds(step, row, concurrent=False)}


def price(rows: list) -> list:
    out = []
    for r in rows:
        pred = pair_prediction(r) if r["case"] == "pair" else step_prediction(r)
        extra = ({"ratio_simulate": r["measured_s"] / pred["simulate_s"],
                  "ratio_simulate_cpu": r["measured_s"] / pred["simulate_cpu_s"]}
                 if "simulate_s" in pred else {})
        if extra and "fastest_s" in r:
            extra["fastest_simulate_cpu"] = r["fastest_s"] / pred["simulate_cpu_s"]
        out.append({**r, **pred, "ratio": r["measured_s"] / pred["predicted_s"], **extra,
                    "ratio_sequential": r["sequential_s"] / pred["predicted_sequential_s"]})
    return out


def document(rows: list, command: str, cores: int, load: str, busy: float) -> dict:
    sys.path.insert(0, str(RESULTS))
    from record import provenance

    facts = provenance(command)
    within = sum(abs(r["ratio"] - 1) <= TARGET for r in rows)
    steps = [r for r in rows if "ratio_simulate_cpu" in r]
    within_sim, n_sim = sum(abs(r["ratio_simulate_cpu"] - 1) <= TARGET for r in steps), len(steps)
    if busy > 1.5 * (os.cpu_count() or 1) or max(r["late_share"] for r in rows) > 0.1:
        load += (". The machine was busy with other work, so emulated steps ended late (see "
                 "late_share): these ratios measure that load; re-run the command on a quiet machine")
    columns = [{"label": "case", "cell": "{case}"},
               {"label": "concurrent", "cell": "{mode}"},
               {"label": "all-to-all size", "cell": "{bytes:bytes}", "align": "right"},
               {"label": "measured", "cell": "{measured_s:time}", "align": "right"},
               {"label": "joint model", "cell": "{predicted_s:time}", "align": "right"},
               {"label": "measured / joint", "cell": "{ratio:.2f}", "align": "right"},
               {"label": "simulate, CPU host", "cell": "{simulate_cpu_s:time}", "align": "right"},
               {"label": "measured / simulate CPU", "cell": "{ratio_simulate_cpu:.2f}", "align": "right"},
               {"label": "fastest / simulate CPU", "cell": "{fastest_simulate_cpu:.2f}", "align": "right"},
               {"label": "simulate, accelerator", "cell": "{simulate_s:time}", "align": "right"},
               {"label": "measured / simulate accelerator", "cell": "{ratio_simulate:.2f}",
                "align": "right"},
               {"label": "priced alone", "cell": "{alone_s:time}", "align": "right"},
               {"label": "one after the other", "cell": "{sequential_s:time}", "align": "right"},
               {"label": "its measured / joint", "cell": "{ratio_sequential:.2f}", "align": "right"},
               {"label": "late steps", "cell": "{late_share:.0%}", "align": "right"}]
    return {
        "title": "concurrent communicators on emulated links: dp=2 x ep=2 on 2 ranks, measured / predicted",
        "about": (f"comm.layout(dp=2, ep=2) on a star of {rows[0]['topology'].split(',', 1)[1]} links, "
                  "both groups on the same two ranks. pair: a dp all-reduce (ring) and an ep "
                  "all-to-all (pairwise) of the given size at once (non-blocking requests in "
                  "mesh.overlap, or two threads); step: a 2-layer mixture-of-experts training step "
                  "(free compute) replayed with its gradient buckets as requests beside the backward "
                  "all-to-alls. 'joint model': what the emulated links hold the run to "
                  "(collectives.model.joint.joint_call_times, host terms of this machine; for a step, "
                  "its calls' joint times in the replay's order); 'simulate, CPU host': "
                  "cl.workload.simulate of the same step and topology with this machine's host terms "
                  "(emulated=True, every rank on one machine of its cores, the executor's segments); "
                  "'simulate, accelerator': the same without host terms (copies and per-call cost "
                  "left out). 'priced alone' is the prediction without the traffic sharing links "
                  "(pair: the slower call priced alone; step: the CPU-host simulate(joint=False)); "
                  "'fastest' is the fastest run instead of the median; the last columns are "
                  "the same calls one after the other, interleaved with the concurrent runs; 'late "
                  "steps' the share of held steps that ended more than 50 us after their modelled "
                  "time (above 10% the machine did not keep to the model). Slowest "
                  f"rank, median over repeats, lowest of the batches. {within} of {len(rows)} cases "
                  f"within {TARGET:.0%} of the joint model, {within_sim} of {n_sim} steps within "
                  f"{TARGET:.0%} of the CPU-host simulate. Load while measuring: {load}."),
        **facts, "target": TARGET, "within": within, "cases": len(rows), "within_simulate": within_sim,
        "columns": columns, "rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", type=int, default=2, help="ranks (default 2; dp = ep = ranks)")
    p.add_argument("--sizes", default="64K,256K,1M,4M", help="bytes per rank (default 64K,256K,1M,4M)")
    p.add_argument("--cases", default="pair,step", help="case sets (default pair,step)")
    p.add_argument("--repeats", type=int, default=15, help="timed runs per batch (default 15)")
    p.add_argument("--batches", type=int, default=3, help="batches per case (default 3)")
    p.add_argument("--links", default=DEFAULT_LINKS, help=f"link constants (default {DEFAULT_LINKS})")
    p.add_argument("--output", default=str(RESULTS / "concurrent-agreement.json"))
    p.add_argument("--from", dest="source", help="re-price rows measured earlier (a results file)")
    p.add_argument("--profile", help="price with the host constants of a calibration profile "
                                     "(mpiexec -n N collectives calibrate -o FILE) instead of the defaults")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    cores = _cores()
    if args.profile:
        from collectives.model.calibrate import load_profile

        load_profile(args.profile)   # a bad file fails before any measuring
    started = time.time()
    if args.source:
        old = json.loads(Path(args.source).read_text(encoding="utf-8"))
        keep = ("case", "mode", "bytes", "seq_len", "measured_s", "fastest_s", "sequential_s", "ranks",
                "late_share", "topology", "cores", "segment_bytes")
        rows = [{k: r[k] for k in keep if k in r} for r in old["rows"]]
        load = old.get("load", "unknown").split(". The machine was busy")[0] + " (re-priced)"
        busy = old.get("load_1min", 0.0)
        command = old["command"]
    else:
        busy = os.getloadavg()[0]
        load_before = _load()
        rows = measure(args)
        load = f"{load_before} before, {_load()} after"
        given = argv if argv is not None else sys.argv[1:]
        command = "python bench/concurrent_agreement.py " + shlex.join(given)
    if args.source and args.profile:
        command += " --profile " + shlex.quote(args.profile)
    for r in rows:
        r["profile"] = args.profile
    priced = price(rows)
    doc = document(priced, command.strip(), cores, load, busy)
    doc["load"], doc["load_1min"] = load, busy
    if args.source:
        doc["priced_at_commit"] = doc["commit"]
        doc["commit"], doc["date"] = old["commit"], old["date"]
        doc["commit_note"] = f"measured at this commit, priced at {doc['priced_at_commit']}"
    Path(args.output).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for r in priced:
        sim = (f"simulate cpu {r['ratio_simulate_cpu']:.2f} (accelerator {r['ratio_simulate']:.2f})  "
               if "ratio_simulate" in r else "")
        print(f"{r['case']:5} {r['mode']:8} {r['bytes']:>8} B  measured {r['measured_s'] * 1e3:8.3f} ms  "
              f"joint {r['predicted_s'] * 1e3:8.3f} ms  ratio {r['ratio']:.2f}  {sim}"
              f"fastest {r['fastest_s'] / r['predicted_s']:.2f}  "
              f"(one after the other {r['ratio_sequential']:.2f})", file=sys.stderr)
    worst = max(priced, key=lambda r: abs(r["ratio"] - 1))
    print(f"wrote {args.output}: {doc['within']} of {doc['cases']} within {TARGET:.0%}; worst "
          f"{worst['ratio']:.2f} ({worst['case']} {worst['mode']}, {worst['bytes']} B); "
          f"{time.time() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
