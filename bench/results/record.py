"""Record a results file for the documentation from one ``collectives bench`` sweep.

    python bench/results/record.py -n 2 -s 8:64M:8 -c allreduce,alltoall
    python bench/results/record.py --from rows.jsonl

Every argument this script does not know is passed to ``collectives bench``,
which appends its rows to a JSON-lines file (``--output``). The rows are then
grouped into one table per collective, every algorithm's time next to native
MPI's with the ratio, and written to ``bench/results/<collective>-<N>ranks.json``
with the commit, date, machine, MPI library and command that produced them, in
the format the documentation's results page renders.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NATIVE = {"allreduce": "MPI_Allreduce", "alltoall": "MPI_Alltoall", "reduce_scatter": "MPI_Reduce_scatter",
          "allgather": "MPI_Allgather", "broadcast": "MPI_Bcast"}


def _git(*args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def provenance(command: str) -> dict:
    """Where the numbers come from: commit, date, machine, MPI library, command."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = json.loads(subprocess.run(["collectives", "info", "--json"], capture_output=True, text=True,
                                     check=True).stdout)
    mpi = " ".join(str(info.get("mpi4py_mpi", "unknown MPI")).split())
    return {"commit": commit, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} CPUs, {cpu}, {platform.system()} {platform.machine()}",
            "mpi": f"{mpi}, mpi4py {info.get('mpi4py', '?')}", "command": command,
            "software": f"collectives {info.get('collectives', '?')}, Python {platform.python_version()}, "
                        f"numpy {info.get('numpy', '?')}"}


def tables(rows: list, facts: dict) -> dict:
    """One results document per collective: a row per size, a column per algorithm."""
    by_collective = defaultdict(list)
    for row in rows:
        by_collective[row["collective"]].append(row)
    out = {}
    for collective, crows in by_collective.items():
        ranks = crows[0]["ranks"]
        algorithms = [a for a in dict.fromkeys(r["algorithm"] for r in crows) if a != "mpi"]
        sizes = defaultdict(dict)
        for r in crows:
            sizes[r["bytes"]][r["algorithm"]] = r
        data = []
        for nbytes in sorted(sizes):
            cells = sizes[nbytes]
            if "mpi" not in cells:
                continue    # no baseline at this size: nothing to compare with
            native = cells["mpi"]["time_us"]
            row = {"bytes": nbytes, "native_us": native,
                   "auto_choice": next(iter(cells.values())).get("auto_choice", "")}
            for a in algorithms:
                if a in cells:
                    row[f"{a}_us"] = cells[a]["time_us"]
                    row[f"{a}_ratio"] = cells[a]["time_us"] / native if native > 0 else float("nan")
            data.append(row)
        name = NATIVE.get(collective, "native")
        columns = [{"label": "size", "cell": "{bytes:bytes}", "align": "right"},
                   {"label": f"native ({name}), µs", "cell": "{native_us:.1f}", "align": "right"}]
        columns += [{"label": a, "cell": "{%s_us:.1f} ({%s_ratio:.2f}x)" % (a, a), "align": "right"}
                    for a in algorithms]
        columns.append({"label": "auto picks", "cell": "{auto_choice}"})
        dtype = crows[0].get("dtype", "")
        out[f"{collective}-{ranks}ranks.json"] = {
            "title": f"{collective}: every algorithm against the MPI library's own, {ranks} ranks",
            "about": (f"{dtype} {crows[0].get('op', '')}; time of the slowest rank in µs (median over "
                      "iterations), in brackets the ratio to native MPI (below 1 is faster than native)."),
            **facts, "ranks": ranks, "columns": columns, "rows": data}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="other arguments go to collectives bench")
    parser.add_argument("--from", dest="source", metavar="JSONL",
                        help="convert rows an earlier 'collectives bench --output' wrote, instead of measuring")
    parser.add_argument("--dir", default=str(HERE), help="where to write the results files (default: here)")
    args, bench_args = parser.parse_known_args(argv)
    if args.source:
        path = Path(args.source)
        command = f"collectives bench ... --output {path.name} (converted by bench/results/record.py --from)"
    else:
        if "--output" in bench_args:
            parser.error("--output is chosen by this script; use --from to convert an existing file")
        path = Path(tempfile.mkdtemp()) / "rows.jsonl"
        cmd = ["collectives", "bench", *bench_args, "--output", str(path)]
        print("#", shlex.join(cmd), file=sys.stderr)
        status = subprocess.call(cmd)
        if status != 0:
            return status
        command = "python bench/results/record.py " + shlex.join(bench_args)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        print(f"record.py: {path} holds no rows", file=sys.stderr)
        return 1
    for name, doc in tables(rows, provenance(command)).items():
        target = Path(args.dir) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {target} ({len(doc['rows'])} rows)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
