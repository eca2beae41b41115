"""Our model against SimGrid's SMPI on the same graphs: agreement, algorithm choice, speed.

For every case of a grid (topology family x rank count x collective x SMPI
algorithm x size) this runs the MPI benchmark ``coll_bench.c`` under
``smpirun`` on a platform written from our topology (``platform.py``) and
prices the matching algorithm with ``collectives.model.predict`` with every
host term off (``cl.model.HOST_TERMS_OFF``: no per-message overhead, no
reduction or copy cost: SMPI is told not to simulate computation). It
writes a JSON file of rows and a summary:

- the share of cases where our time is within 20% of SMPI's;
- wherever SMPI puts two algorithms more than 20% apart, whether our model
  names the same faster one;
- which SMPI Rabenseifner order our rhd matches;
- our speed-up over SMPI in wall time.

    python bench/smpi/compare.py                      # the default grid
    python bench/smpi/compare.py --ranks 16 --sizes 8KiB 4MiB --families flat

Needs SimGrid's ``smpicc`` and ``smpirun`` on PATH (Debian: ``apt-get install
libsimgrid-dev simgrid``); see bench/smpi/README.md for the options chosen.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform as _platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import collectives as cl
from collectives.algorithms import algorithm_names, algorithm_params

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from platform_writer import write_platform  # noqa: E402

REPO = HERE.parent.parent
DEFAULT_OUT = REPO / "bench" / "results" / "smpi_agreement.json"

#: SimGrid options that make SMPI a plain max-min flow model, like ours (README, "Options").
SMPI_OPTIONS = [
    "--cfg=network/model:CM02",           # max-min sharing, no size-dependent correction factors
    "--cfg=network/latency-factor:1",      # CM02's own values, stated so nothing overrides them
    "--cfg=network/bandwidth-factor:1",
    "--cfg=network/weight-S:0",            # fair shares, not RTT-weighted ones
    "--cfg=network/TCP-gamma:0",           # no TCP window cap on a flow's rate
    "--cfg=network/crosstraffic:0",        # no ACK traffic on the reverse direction
    "--cfg=network/loopback-bw:1e15",      # local copies (Bruck's rotations, self-blocks)
    "--cfg=network/loopback-lat:0",        # free, as in the model without host terms
    "--cfg=smpi/simulate-computation:no",  # reductions and packing take no simulated time
    "--cfg=smpi/host-speed:1Gf",           # unused once computation is not simulated
    "--cfg=smpi/wtime:0",                  # MPI_Wtime itself costs no simulated time
    "--cfg=smpi/allgather:rdb",            # rab1's all-gather: recursive doubling
    "--log=root.thres:warning",
]

#: SMPI algorithm -> (our algorithm, our parameters when the registry has them).
ALGORITHMS = {
    "allreduce": {
        "lr": ("ring", {}),                               # logical ring RS + AG
        "rab_rdb": ("rhd", {"pairing": "near-first"}),    # MPICH: halving nearest-first
        "rab1": ("rhd", {"pairing": "far-first"}),        # halving farthest-first + rdb AG
    },
    "alltoall": {
        "pair": ("pairwise", {}),                         # xor partners (powers of two)
        "bruck": ("bruck", {}),
    },
}

#: What an algorithm of ours does when the registry does not take the parameter
#: (our rhd before it had a pairing order: round j pairs v with v xor p/2^(j+1)).
IMPLICIT = {("allreduce", "rhd"): {"pairing": "far-first"}}

SIZES = ["8KiB", "256KiB", "4MiB", "16MiB", "64MiB"]
RANKS = [16, 64, 256]
FAMILIES = ["flat", "fat-tree", "dragonfly"]


def topology_for(family, ranks):
    """The topology of one grid point: ``ranks`` ranks placed linearly on it.

    flat: ``star(ranks)``. fat-tree: a 2-level leaf-spine, 8 hosts per leaf
    and 4 spines (2:1 oversubscribed at the leaves, so placement and
    algorithm matter). dragonfly: balanced-ish Kim et al. networks with at
    least ``ranks`` hosts, ranks filling whole groups.
    """
    T = cl.topology
    if family == "flat":
        return T.star(ranks)
    if family == "fat-tree":
        if ranks % 8:
            raise SystemExit(f"fat-tree needs a multiple of 8 ranks, got {ranks}")
        return T.leaf_spine(ranks // 8, 8, 4)
    if family == "dragonfly":
        shapes = {16: (2, 2, 2), 32: (2, 2, 2), 64: (4, 2, 2), 128: (4, 4, 2), 256: (4, 4, 4),
                  512: (8, 4, 4), 1024: (8, 4, 4)}
        if ranks not in shapes:
            raise SystemExit(f"dragonfly: no shape for {ranks} ranks (have {sorted(shapes)})")
        a, p, h = shapes[ranks]
        return T.dragonfly(a, p, h)
    raise SystemExit(f"unknown family {family!r}: expected one of {', '.join(FAMILIES)}")


# ---------------------------------------------------------------------- SMPI
def simgrid_version():
    try:
        out = subprocess.run(["smpirun", "-version"], capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def build_benchmark(workdir):
    """Compile coll_bench.c with smpicc into ``workdir``; return the binary's path."""
    exe = Path(workdir) / "coll_bench"
    subprocess.run(["smpicc", "-O2", "-o", str(exe), str(HERE / "coll_bench.c")], check=True)
    return exe


_TIME = re.compile(r"\btime=(\S+)")


def run_smpi(exe, platform, hostfile, ranks, collective, algorithm, nbytes, timeout):
    """One smpirun; returns (simulated seconds or None, wall seconds, status text)."""
    cmd = ["smpirun", "-no-privatize", "-np", str(ranks), "-platform", str(platform),
           "-hostfile", str(hostfile), *SMPI_OPTIONS, f"--cfg=smpi/{collective}:{algorithm}",
           str(exe), collective, str(nbytes)]
    t0 = time.perf_counter()
    # own session, so a timeout ends smpirun and the simulation it started, nothing else
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, time.perf_counter() - t0, f"timeout after {timeout:g} s"
    wall = time.perf_counter() - t0
    m = _TIME.search(out)
    if proc.returncode != 0 or m is None:
        tail = (err or out).strip().splitlines()[-3:]
        return None, wall, f"smpirun exit {proc.returncode}: {' | '.join(tail)}"
    return float(m.group(1)), wall, "ok"


# ---------------------------------------------------------------------- ours
def predict(collective, algorithm, params, nbytes, topo, ranks):
    """Our time with the parameters our registry knows (the others are dropped and the
    row shows what was used); returns (seconds, wall seconds, parameters used)."""
    known = algorithm_params(collective, algorithm)
    used = {k: v for k, v in params.items() if k in known}
    t0 = time.perf_counter()
    t = cl.model.predict(collective, algorithm, nbytes, topo, ranks=ranks, **cl.model.HOST_TERMS_OFF,
                         **used)
    return t, time.perf_counter() - t0, used


# ---------------------------------------------------------------------- summary
def exact_counterpart(row):
    """True when our priced configuration is SMPI's algorithm: every parameter the
    mapping asks for (rhd's pairing order) was known to our registry."""
    ours, wanted = ALGORITHMS[row["collective"]][row["smpi_algorithm"]]
    used = row.get("our_params") or {}
    implicit = IMPLICIT.get((row["collective"], ours), {})
    return all(used[k] == v if k in used else implicit.get(k) == v for k, v in wanted.items())


def _agreement(rows, tolerance):
    within = sum(abs(r["ratio"] - 1) <= tolerance for r in rows)
    return {"cases": len(rows), "within_20pct": within,
            "share": within / len(rows) if rows else None}


def summarize(rows, tolerance=0.2):
    done = [r for r in rows if r["smpi_time"] is not None and r["our_time"] is not None]
    within = [r for r in done if abs(r["ratio"] - 1) <= tolerance]
    exact = [r for r in done if exact_counterpart(r)]
    by = {}
    for r in done:
        k = f'{r["family"]}/{r["collective"]}/{r["smpi_algorithm"]}'
        n, w = by.get(k, (0, 0))
        by[k] = (n + 1, w + (abs(r["ratio"] - 1) <= tolerance))

    # faster-algorithm agreement, per (family, ranks, collective, size)
    groups = {}
    for r in done:
        groups.setdefault((r["family"], r["ranks"], r["collective"], r["nbytes"]), []).append(r)
    tally = {"exact_counterparts": [0, 0, []], "all": [0, 0, []]}
    blind = []
    for key, rs in sorted(groups.items()):
        for i in range(len(rs)):
            for j in range(i + 1, len(rs)):
                a, b = rs[i], rs[j]
                hi, lo = max(a["smpi_time"], b["smpi_time"]), min(a["smpi_time"], b["smpi_time"])
                if hi <= (1 + tolerance) * lo:
                    continue
                pair = (f'{key[0]}/p={key[1]}/{key[2]}/{key[3]}B: '
                        f'{a["smpi_algorithm"]} vs {b["smpi_algorithm"]}')
                if (a["our_algorithm"], a["our_params"]) == (b["our_algorithm"], b["our_params"]):
                    blind.append(pair)      # one of our configurations stands for both
                    continue
                same = (a["smpi_time"] < b["smpi_time"]) == (a["our_time"] < b["our_time"])
                kinds = ["all"] + (["exact_counterparts"]
                                   if exact_counterpart(a) and exact_counterpart(b) else [])
                for k in kinds:
                    t = tally[k]
                    t[0] += 1
                    t[1] += same
                    if not same:
                        t[2].append(pair)

    # which SMPI Rabenseifner order our rhd (as priced) matches
    order = {}
    for alg in ("rab_rdb", "rab1"):
        rs = [r for r in done if r["smpi_algorithm"] == alg]
        if rs:
            order[alg] = {"cases": len(rs),
                          "within_20pct": sum(abs(r["ratio"] - 1) <= tolerance for r in rs),
                          "median_ratio": _median([r["ratio"] for r in rs]),
                          "our_params": sorted({json.dumps(r["our_params"]) for r in rs})}

    smpi_wall = sum(r["smpi_wall"] for r in done)
    our_wall = sum(r["our_wall"] for r in done)
    return {
        "cases": len(rows),
        "compared": len(done),
        "within_20pct": len(within),
        "share_within_20pct": len(within) / len(done) if done else None,
        "median_abs_error": _median([abs(r["ratio"] - 1) for r in done]),
        "exact_counterparts": _agreement(exact, tolerance),
        "not_implemented_by_us": sorted({f'{r["collective"]}/{r["smpi_algorithm"]}' for r in done
                                         if not exact_counterpart(r)}),
        "worst": sorted(({"case": r["case"], "ratio": r["ratio"]} for r in done),
                        key=lambda d: -abs(d["ratio"] - 1))[:8],
        "by_family_algorithm": {k: {"cases": n, "within_20pct": w} for k, (n, w) in sorted(by.items())},
        "faster_algorithm": {
            **{k: {"pairs_smpi_20pct_apart": n, "same_choice": a, "disagreements": d}
               for k, (n, a, d) in tally.items()},
            "one_model_for_both": blind},
        "rhd_order": order,
        "wall": {"smpi_s": smpi_wall, "ours_s": our_wall,
                 "speedup": smpi_wall / our_wall if our_wall else None},
    }


def markdown_table(rows):
    """Ours / SMPI per case as a markdown table: one line per (family, ranks, algorithm),
    one column per size; SMPI's time in brackets."""
    from collectives.units import format_bytes, format_time

    sizes = sorted({r["nbytes"] for r in rows})
    lines = ["| family | ranks | SMPI algorithm | ours | " +
             " | ".join(format_bytes(n) for n in sizes) + " |",
             "| --- | --- | --- | --- |" + " --- |" * len(sizes)]
    keys = []
    for r in rows:
        k = (r["family"], r["ranks"], r["collective"], r["smpi_algorithm"])
        if k not in keys:
            keys.append(k)
    for fam, p, coll, alg in keys:
        cells = []
        for n in sizes:
            r = next((r for r in rows if (r["family"], r["ranks"], r["collective"],
                                          r["smpi_algorithm"], r["nbytes"]) ==
                      (fam, p, coll, alg, n)), None)
            if r is None or r.get("ratio") is None:
                cells.append("-")
            else:
                cells.append(f'{r["ratio"]:.2f} ({format_time(r["smpi_time"], digits=3)})')
        first = next(r for r in rows if (r["family"], r["ranks"], r["collective"],
                                         r["smpi_algorithm"]) == (fam, p, coll, alg))
        ours = f"`{ALGORITHMS[coll][alg][0]}`"
        params = first.get("our_params") or {}
        if params:
            ours += " " + ",".join(f"{k}={v}" for k, v in params.items())
        if not exact_counterpart(first):
            ours += " (not the same algorithm)"
        lines.append(f"| {fam} | {p} | {coll} `{alg}` | {ours} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _median(xs):
    xs = sorted(xs)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def command_line(argv):
    """The command as run, with local directories left out (they mean nothing elsewhere)."""
    out, skip = ["python", "bench/smpi/compare.py"], None
    for a in argv:
        if skip:
            p = Path(a).resolve()
            out.append(str(p.relative_to(REPO)) if p.is_relative_to(REPO) else f"<{skip}>")
            skip = None
        elif a in ("--workdir", "--out"):
            out.append(a)
            skip = a.lstrip("-")
        else:
            out.append(a)
    return " ".join(out)


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


# ---------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", nargs="+", default=FAMILIES, choices=FAMILIES)
    ap.add_argument("--ranks", nargs="+", type=int, default=RANKS)
    ap.add_argument("--sizes", nargs="+", default=SIZES, help="per-rank buffer sizes, e.g. 8KiB 4MiB")
    ap.add_argument("--collectives", nargs="+", default=list(ALGORITHMS), choices=list(ALGORITHMS))
    ap.add_argument("--smpi-algorithms", nargs="+", default=None, metavar="NAME",
                    help="only these SMPI algorithms (default: all of the collectives chosen)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per smpirun (default 300)")
    ap.add_argument("--max-run-bytes", default="4GiB",
                    help="skip cases with ranks x size above this (SMPI's algorithms allocate "
                         "real temporary buffers of the message size per rank; default 4GiB)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="JSON to write (default %(default)s)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the rows already in --out and run only the cases it lacks")
    ap.add_argument("--summarize", metavar="JSON", default=None,
                    help="only recompute the summary of an existing results file, in place")
    ap.add_argument("--reprice", metavar="JSON", default=None,
                    help="re-price our side of every row of an existing results file with the "
                         "current model, in place (SMPI's times are kept: SMPI is deterministic; "
                         "so are the wall times of the run that measured them)")
    ap.add_argument("--table", metavar="JSON", default=None,
                    help="print the ratios of a results file as a markdown table")
    ap.add_argument("--workdir", default=None, help="where platforms and the binary go "
                                                    "(default: a temporary directory)")
    args = ap.parse_args(argv)
    if args.table:
        with open(args.table) as f:
            print(markdown_table(json.load(f)["rows"]))
        return
    if args.reprice:
        with open(args.reprice) as f:
            data = json.load(f)
        topos = {}
        changed = 0
        for r in data["rows"]:
            if r.get("status") != "ok" or r.get("smpi_time") is None:
                continue
            key = (r["family"], r["ranks"])
            if key not in topos:
                topos[key] = topology_for(*key)
            t, _, _ = predict(r["collective"], r["our_algorithm"], r["our_params"] or {},
                              r["nbytes"], topos[key], r["ranks"])
            changed += t != r["our_time"]
            # the wall times stay those of the measured run: a re-price is no timing run
            r.update(our_time=t, ratio=t / r["smpi_time"])
        data["summary"] = summarize(data["rows"])
        data["meta"]["summary_commit"] = git_commit()
        data["meta"]["model_params"] = {k: (v if math.isfinite(v) else "inf")
                                        for k, v in cl.model.HOST_TERMS_OFF.items()}
        data["meta"].setdefault("notes", []).append(
            f"our side re-priced at commit {git_commit()[:12]} with --reprice ({changed} of "
            f"{len(data['rows'])} times changed); SMPI times and both wall times as measured")
        with open(args.reprice, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        print(json.dumps({k: data["summary"][k] for k in ("compared", "within_20pct", "worst")}, indent=1))
        return
    if args.summarize:
        with open(args.summarize) as f:
            data = json.load(f)
        data["summary"] = summarize(data["rows"])
        data["meta"]["summary_commit"] = git_commit()
        with open(args.summarize, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        print(json.dumps(data["summary"], indent=1))
        return

    for tool in ("smpicc", "smpirun"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install SimGrid (apt-get install libsimgrid-dev "
                             "simgrid); see bench/smpi/README.md")
    sizes = [int(cl.units.parse_size(s, name="size")) for s in args.sizes]
    cap = int(cl.units.parse_size(args.max_run_bytes, name="--max-run-bytes"))
    for coll in args.collectives:
        names = algorithm_names(coll)
        for ours, _ in ALGORITHMS[coll].values():
            if ours not in names:
                raise SystemExit(f"our registry has no {coll} algorithm {ours!r} ({names})")

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="smpi-"))
    workdir.mkdir(parents=True, exist_ok=True)
    exe = build_benchmark(workdir)
    meta = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": git_commit(),
        "simgrid": simgrid_version(),
        "command": command_line(sys.argv[1:] if argv is None else argv),
        "smpi_options": SMPI_OPTIONS,
        "model_params": {k: (v if math.isfinite(v) else "inf") for k, v in cl.model.HOST_TERMS_OFF.items()},
        "machine": {"cpus": os.cpu_count(), "python": _platform.python_version(),
                    "load_average_at_start": list(os.getloadavg()),
                    "note": "shared with other jobs: wall times are indicative"},
        "algorithms": {c: {s: {"ours": o, "params": p} for s, (o, p) in a.items()}
                       for c, a in ALGORITHMS.items()},
    }
    rows = []
    if args.resume and Path(args.out).exists():
        with open(args.out) as f:
            previous = json.load(f)
        rows = [r for r in previous["rows"] if r.get("status") == "ok"]
        meta["earlier_runs"] = previous["meta"].get("earlier_runs", []) + [
            {k: previous["meta"].get(k) for k in ("date", "commit", "command")}]
        meta["platforms"] = previous["meta"].get("platforms", {})
    done_cases = {r["case"] for r in rows}

    def save():
        out = {"meta": meta, "summary": summarize(rows), "rows": rows}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")

    for ranks in sorted(args.ranks):
        for family in args.families:
            topo = topology_for(family, ranks)
            hosts = topo.hosts[:ranks]
            plat = workdir / f"{family}-{ranks}.xml"
            hostfile = workdir / f"{family}-{ranks}.hosts"
            info = write_platform(topo, plat, hosts, hostfile=hostfile)
            meta.setdefault("platforms", {})[f"{family}/{ranks}"] = info
            for coll in args.collectives:
                for smpi_alg, (ours, params) in ALGORITHMS[coll].items():
                    if args.smpi_algorithms and smpi_alg not in args.smpi_algorithms:
                        continue
                    for nbytes in sizes:
                        case = f"{family}/p={ranks}/{coll}/{smpi_alg}/{cl.units.format_bytes(nbytes)}"
                        if case in done_cases:
                            continue
                        row = {"case": case, "family": family, "topology": topo.name,
                               "ranks": ranks, "collective": coll, "smpi_algorithm": smpi_alg,
                               "our_algorithm": ours, "nbytes": nbytes}
                        if ranks * nbytes > cap:
                            row.update(status=f"skipped: ranks x size above --max-run-bytes "
                                              f"{args.max_run_bytes}", smpi_time=None,
                                       our_time=None, our_params={})
                            rows.append(row)
                            continue
                        t_ours, w_ours, used = predict(coll, ours, params, nbytes, topo, ranks)
                        t_smpi, w_smpi, status = run_smpi(exe, plat, hostfile, ranks, coll,
                                                          smpi_alg, nbytes, args.timeout)
                        row.update(our_params=used, smpi_time=t_smpi, our_time=t_ours,
                                   ratio=(t_ours / t_smpi) if t_smpi else None,
                                   smpi_wall=w_smpi, our_wall=w_ours, status=status)
                        rows.append(row)
                        r = row["ratio"]
                        print(f"{case:48s} smpi {t_smpi if t_smpi is not None else float('nan'):.4e} s"
                              f"  ours {t_ours:.4e} s  ratio {r if r else float('nan'):.3f}"
                              f"  wall {w_smpi:6.2f} s / {w_ours * 1e3:7.2f} ms  {status}",
                              flush=True)
                        save()
    save()
    s = summarize(rows)
    print(json.dumps({k: s[k] for k in ("compared", "share_within_20pct", "faster_algorithm",
                                        "rhd_order", "wall")}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
