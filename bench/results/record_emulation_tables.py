"""Re-measure emulation-accuracy.json and emulation-designs.json with the commands in their "command" fields.

    python bench/results/record_emulation_tables.py [OUTPUT_DIR] [accuracy] [designs]

Runs ``collectives bench --emulate`` for each row's ranks and design (about a
minute in all), and writes the two tables (default: next to this script) with
this commit, the machine and the load before and after. Measure on a quiet
machine: the 4-rank rows share 2 cores here, and other load shows up as
measured / predicted well above 1.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

R = Path(__file__).resolve().parent
sys.path.insert(0, str(R))
from record import provenance  # noqa: E402

args = sys.argv[1:]
out_dir = args.pop(0) if args and args[0] not in ("accuracy", "designs") else str(R)
which = args or ["accuracy", "designs"]
work = tempfile.mkdtemp()
PROVENANCE = ("Measured with the command below (RANKS and SPEC as in each row) by "
              "bench/results/record_emulation_tables.py on this development machine while it was shared with "
              "other work; predicted is Communicator.predict on the emulated links: this machine's host terms "
              "(its ranks share its cores and memory) and the emulated per-call cost.")


def run(ranks, spec, colls, sizes):
    """Rows of one ``collectives bench --emulate`` run (JSON lines)."""
    path = f"{work}/b-{ranks}-{spec.split(':')[0]}-{colls.replace(',', '')}.json"
    cmd = ["collectives", "bench", "-n", str(ranks), "--emulate", f"{spec},bw=1GB/s,lat=20us", "-s", sizes,
           "-c", colls, "--no-inplace", "-f", "json", "--output", path]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [json.loads(line) for line in open(path) if line.strip()]


def load():
    """The load average, as the results files state it."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


if "accuracy" in which:
    doc = json.load(open(f"{R}/emulation-accuracy.json"))
    before = load()
    rows = []
    for ranks, spec in ((2, "star:n=2"), (4, "fat-tree:k=4")):
        res = run(ranks, spec, "allreduce", "64K,1M,8M")
        for nb in (65536, 1048576, 8388608):
            rs = [r["measured_over_predicted"] for r in res if r["bytes"] == nb and r["algorithm"] in ("ring", "rhd", "tree", "hierarchical")]
            rows.append({"ranks": ranks, "topology": spec, "algorithms": "ring, rhd, tree, hierarchical", "bytes": nb,
                         "ratio_min": round(min(rs), 2), "ratio_max": round(max(rs), 2)})
    doc.update(provenance(doc["command"]))
    doc["provenance"] = PROVENANCE
    doc["rows"] = rows
    doc["commit_note"] = (f"Measured with the command below at this commit, RANKS and SPEC as in each row; "
                          f"{before} before, {load()} after (the machine was shared with other work).")
    Path(out_dir, "emulation-accuracy.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print("accuracy", rows)

if "designs" in which:
    doc = json.load(open(f"{R}/emulation-designs.json"))
    before = load()
    rows = []
    for spec in ("full-mesh:n=4", "fat-tree:k=4", "dragonfly:a=2,p=1,h=1"):
        res = run(4, spec, "allreduce,alltoall", "64K:4M:8")
        for coll in ("allreduce", "alltoall"):
            native = [r["time_us"] for r in res if r["collective"] == coll and r["algorithm"] == "mpi" and r["bytes"] == 4194304]
            for r in res:
                if r["collective"] != coll or r["bytes"] != 4194304 or r["algorithm"] == "mpi":
                    continue
                rows.append({"design": spec, "collective": coll, "bytes": 4194304, "algorithm": r["algorithm"],
                             "time_s": r["time_us"] * 1e-6, "measured_over_predicted": round(r["measured_over_predicted"], 2),
                             "native_real_links_s": native[0] * 1e-6 if native else None})
    doc.update(provenance(doc["command"]))
    doc["provenance"] = PROVENANCE
    doc["rows"] = rows
    doc["commit_note"] = (f"Measured with the command below at this commit (4 ranks on this 2-core machine); "
                          f"{before} before, {load()} after (the machine was shared with other work).")
    Path(out_dir, "emulation-designs.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print("designs", [(r["design"][:9], r["collective"][:5], r["algorithm"], r["measured_over_predicted"]) for r in rows])
