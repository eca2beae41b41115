"""Emulated links against the model: every all-reduce and all-to-all algorithm, measured and predicted.

    python bench/emulation_agreement.py                  # 2 and 4 ranks, 64 KiB to 4 MiB
    python bench/emulation_agreement.py --ranks 2 --sizes 64K,1M --repeats 5 --output /tmp/e.json

For each rank count the script launches itself under ``mpiexec``: the ranks
build a Communicator on emulated links (a star of 1 GB/s, 20 us links by
default; ``--links``), and for every algorithm and size time the slowest
rank over ``--repeats`` calls (after two warm-up calls), in ``--batches``
batches of which the lowest median counts (a burst of other load on the
machine holds one batch back, not all of them). The parent then prices the
same cases with :func:`collectives.model.predict`, host terms included: the
ranks all run on this one machine, so they share its cores and its memory
bandwidth (``machines=`` every rank on machine 0, ``cores=`` the cores this
process may use), and each call pays the emulation's own per-call cost
(``call_overhead=`` the model's plus ``cl.model.EMULATION_CALL_OVERHEAD``). It writes ``bench/results/emulation-agreement.json``, the
table of the documentation's results page, and prints the worst ratio.

Each row also says how late the emulation ran, per timed call on its latest
rank: ``late_per_call_s`` (the lateness of the held steps summed) and
``data_late_per_call_s`` (the part by which the messages themselves were
complete only after their modelled time; the rest is late wake-ups), from
``Communicator.emulation_health()``.

Nothing is compared inside the MPI job: the workers only measure, so a
change to the model re-prices an old measurement with ``--from FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
COLLECTIVES = ("allreduce", "alltoall")
DEFAULT_LINKS = "bw=1GB/s,lat=20us"
TARGET = 0.15


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _spec(ranks: int, links: str) -> str:
    return f"star:n={ranks},{links}"


# ---------------------------------------------------------------------- worker (under mpiexec)
def _lateness(world, before, after) -> dict:
    """Where a case's held steps ended after the model, per timed call, on its latest rank.

    ``late_per_call_s``: lateness summed over a call's held steps; ``data_late_per_call_s``:
    the part by which the messages themselves were complete only after their modelled time
    (the transfer, or the rank getting a core to see it); the rest is waking from holds late.
    """
    from mpi4py import MPI

    calls = max(after["calls"] - before["calls"], 1)
    mine = [(after[k] - before[k]) / calls for k in ("late_total", "data_late_total", "held_steps")]
    worst = world.allreduce(mine[0], op=MPI.MAX)
    data = world.allreduce(mine[1], op=MPI.MAX)
    return {"late_per_call_s": worst, "data_late_per_call_s": data, "held_per_call": mine[2]}


def worker(args) -> int:
    import numpy as np
    from mpi4py import MPI

    import collectives as cl
    from collectives import algorithms as A
    from collectives.units import parse_size_range

    world = MPI.COMM_WORLD
    spec = _spec(world.Get_size(), args.links)
    comm = cl.Communicator(world, topology=cl.topology.resolve(spec), emulate=True, timeout=120)
    sizes = parse_size_range(args.sizes)
    rows = []
    for collective in COLLECTIVES:
        for alg in A.algorithm_names(collective):
            for nbytes in sizes:
                count = nbytes // 4 - (nbytes // 4) % world.Get_size()
                x = np.ones(count, dtype=np.float32)
                out = np.empty_like(x)
                call = getattr(comm, collective)

                def once():
                    call(x, out=out, algorithm=alg)

                once()
                once()
                before = comm.emulation_health()
                medians = []
                for _ in range(args.batches):
                    times = np.empty(args.repeats)
                    for i in range(args.repeats):
                        world.Barrier()
                        t0 = time.perf_counter()
                        once()
                        times[i] = time.perf_counter() - t0
                    worst = np.empty_like(times)
                    world.Allreduce(times, worst, op=MPI.MAX)
                    medians.append(float(np.median(worst)))
                groups = comm.groups.tolist() if "groups" in A.get(collective, alg).needs else None
                rows.append({"collective": collective, "algorithm": alg, "ranks": world.Get_size(),
                             "bytes": count * 4, "measured_s": min(medians), "batches_s": medians,
                             "groups": groups, **_lateness(world, before, comm.emulation_health())})
    health = comm.emulation_health()
    late = world.allreduce(health["late_steps"] / max(health["held_steps"], 1), op=MPI.MAX)
    if world.Get_rank() == 0:
        with open(args.worker, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({**r, "late_share": late, "topology": spec}) + "\n")
    comm.free()
    return 0


# ---------------------------------------------------------------------- parent
def measure(ranks: int, args) -> list:
    path = Path(tempfile.mkdtemp()) / f"rows-{ranks}.jsonl"
    cmd = ["mpiexec", "-n", str(ranks), sys.executable, str(Path(__file__).resolve()),
           "--worker", str(path), "--sizes", args.sizes, "--repeats", str(args.repeats),
           "--batches", str(args.batches), "--links", args.links]
    print("#", shlex.join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def host_terms(ranks: int, cores: int, profile=None) -> dict:
    """The model constants that describe this machine for an emulation: every rank on it.

    An emulated call also pays its holds' bookkeeping once per call
    (``cl.model.EMULATION_CALL_OVERHEAD`` on top of ``call_overhead``). With a
    calibration ``profile`` (``collectives calibrate``; a path or a loaded
    Profile) the host constants it measured replace the model's defaults:
    copy, cache and memory bandwidths, the reduce bandwidth, the per-call
    costs and, from a run with more ranks than cores, ``core_wait``. Its links
    are not used: the emulated links are the topology's.
    """
    import math

    import numpy as np

    import collectives as cl
    from collectives.model.calibrate import Profile, load_profile

    host = {}
    terms = {"machines": np.zeros(ranks, dtype=np.int64), "cores": cores}
    if profile is not None:
        if not isinstance(profile, Profile):
            profile = load_profile(profile)
        host = dict(profile.host)
        terms["reduce_bandwidth"] = profile.reduce_bandwidth
        if math.isfinite(profile.copy_bandwidth):
            terms["copy_bandwidth"] = profile.copy_bandwidth
        terms.update({k: v for k, v in host.items()
                      if k not in ("call_overhead", "emulated_call_overhead")})
    terms["call_overhead"] = (host.get("call_overhead", cl.model.DEFAULTS["call_overhead"])
                              + host.get("emulated_call_overhead", cl.model.EMULATION_CALL_OVERHEAD))
    return terms


def price(rows: list, cores: int, profile=None) -> list:
    import collectives as cl

    out = []
    for r in rows:
        kw = host_terms(r["ranks"], cores, profile)
        if r.get("groups") is not None:
            kw["groups"] = r["groups"]
        predicted = cl.model.predict(r["collective"], r["algorithm"], r["bytes"], r["topology"],
                                     ranks=r["ranks"], **kw)
        network = cl.model.predict(r["collective"], r["algorithm"], r["bytes"], r["topology"],
                                   ranks=r["ranks"], **cl.model.HOST_TERMS_OFF)
        out.append({**{k: v for k, v in r.items() if k not in ("batches_s", "groups")},
                    "predicted_s": predicted, "network_s": network,
                    "ratio": r["measured_s"] / predicted if predicted > 0 else float("nan"),
                    "ratio_network": r["measured_s"] / network if network > 0 else float("nan")})
    return out


def document(rows: list, command: str, cores: int, load: str, busy: float, profile=None) -> dict:
    sys.path.insert(0, str(RESULTS))
    from record import provenance

    facts = provenance(command)
    within = sum(abs(r["ratio"] - 1) <= TARGET for r in rows)
    if busy > 1.5 * (os.cpu_count() or 1):
        load += (". The machine was busy with other work (load well above its CPUs), so the "
                 "ranks waited for cores the model does not know about: these ratios measure "
                 "that load; re-run the command on a quiet machine")
    columns = [{"label": "ranks", "cell": "{ranks}", "align": "right"},
               {"label": "collective", "cell": "{collective}"},
               {"label": "algorithm", "cell": "{algorithm}"},
               {"label": "size", "cell": "{bytes:bytes}", "align": "right"},
               {"label": "measured", "cell": "{measured_s:time}", "align": "right"},
               {"label": "predicted", "cell": "{predicted_s:time}", "align": "right"},
               {"label": "measured / predicted", "cell": "{ratio:.2f}", "align": "right"},
               {"label": "without host terms", "cell": "{ratio_network:.2f}", "align": "right"}]
    return {
        "title": "emulated links: measured / predicted time, every all-reduce and all-to-all algorithm",
        "about": (f"A star of {rows[0]['topology'].split(',', 1)[1]} links, float32, time of the slowest "
                  "rank (median over repeats, lowest of the batches) against cl.model.predict with "
                  f"the host terms of this machine ({cores} cores shared by every rank; "
                  + (f"host constants from the calibration profile {Path(profile).name}"
                     if profile else "the model's default host constants") + "). "
                  f"{within} of {len(rows)} cases within {TARGET:.0%}; the last column is the "
                  f"ratio to the network-only model (host terms off). Load while measuring: {load}."),
        **facts, "target": TARGET, "within": within, "cases": len(rows),
        "columns": columns, "rows": rows}


def _load() -> str:
    try:
        one, five, _ = os.getloadavg()
        return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"
    except OSError:
        return "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", default="2,4", help="rank counts (default 2,4)")
    p.add_argument("--sizes", default="64K,256K,1M,4M", help="bytes per rank (default 64K,256K,1M,4M)")
    p.add_argument("--repeats", type=int, default=15, help="timed calls per batch (default 15)")
    p.add_argument("--batches", type=int, default=3, help="batches per case (default 3)")
    p.add_argument("--links", default=DEFAULT_LINKS, help=f"link constants (default {DEFAULT_LINKS})")
    p.add_argument("--output", default=str(RESULTS / "emulation-agreement.json"))
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
        rows = [{k: r[k] for k in ("collective", "algorithm", "ranks", "bytes", "measured_s",
                                   "late_share", "topology")} | {"groups": r.get("groups")}
                for r in old["rows"]]
        load = old.get("load", "unknown").split(". The machine was busy")[0] + " (re-priced)"
        busy = old.get("load_1min", 0.0)
        command = old["command"]
    else:
        busy = os.getloadavg()[0]
        load_before = _load()
        rows = []
        for ranks in [int(x) for x in args.ranks.split(",")]:
            rows += measure(ranks, args)
        load = f"{load_before} before, {_load()} after"
        given = argv if argv is not None else sys.argv[1:]
        command = "python bench/emulation_agreement.py " + shlex.join(given)
    priced = price(rows, cores, args.profile)
    if args.source and args.profile:
        command += " --profile " + shlex.quote(args.profile)
    doc = document(priced, command.strip(), cores, load, busy, args.profile)
    doc["load"], doc["load_1min"] = load, busy
    if args.source:
        # a re-price keeps when and at which commit the times were measured
        doc["priced_at_commit"] = doc["commit"]
        doc["commit"], doc["date"] = old["commit"], old["date"]
        doc["commit_note"] = f"measured at this commit, priced at {doc['priced_at_commit']}"
    Path(args.output).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    worst = max(priced, key=lambda r: abs(r["ratio"] - 1))
    print(f"wrote {args.output}: {doc['within']} of {doc['cases']} within {TARGET:.0%}; worst "
          f"{worst['ratio']:.2f} ({worst['ranks']} ranks, {worst['collective']} {worst['algorithm']}, "
          f"{worst['bytes']} B); {time.time() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
