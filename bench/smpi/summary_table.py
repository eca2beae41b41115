"""Turn bench/results/smpi_agreement.json into the results-table file the docs render.

    python bench/smpi/summary_table.py            # writes bench/results/smpi-summary.json
"""

import json
import os
import statistics
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "..", "results")


def main(argv=None):
    src = os.path.join(RESULTS, "smpi_agreement.json")
    with open(src) as fh:
        data = json.load(fh)
    groups = defaultdict(list)
    for row in data["rows"]:
        if row.get("status") == "ok":
            groups[(row["family"], row["collective"], row["smpi_algorithm"])].append(row)
    rows = []
    for (family, collective, smpi_alg), rs in sorted(groups.items()):
        ratios = [r["ratio"] for r in rs]
        ours = rs[0]["our_algorithm"] + "".join(f"({k}={v})" for k, v in rs[0]["our_params"].items())
        rows.append({"family": family, "collective": collective, "smpi": smpi_alg, "ours": ours,
                     "ranks": ", ".join(str(p) for p in sorted({r["ranks"] for r in rs})),
                     "cases": len(rs), "within": sum(abs(x - 1) <= 0.2 for x in ratios),
                     "median": statistics.median(ratios), "worst": max(ratios, key=lambda x: abs(x - 1))})
    meta, summary = data["meta"], data["summary"]
    table = {
        "title": "the model against SimGrid SMPI (MPICH's own collective code) on the same graphs",
        "about": (f"ratio = our predicted time / SMPI's simulated time; {summary['within_20pct']} of "
                  f"{summary['cases']} cases within 20%; where SMPI sees two algorithms more than 20% "
                  f"apart, the model picks the same faster one in "
                  f"{summary['faster_algorithm']['all']['same_choice']} of "
                  f"{summary['faster_algorithm']['all']['pairs_smpi_20pct_apart']}; the model took "
                  f"{summary['wall']['ours_s']:.1f} s for what SMPI took "
                  f"{summary['wall']['smpi_s']:.0f} s ({summary['wall']['speedup']:.0f}x). "
                  "Sizes 8 KiB to 64 MiB per rank; SMPI set up as a plain max-min model "
                  "(bench/smpi/README.md)."),
        "commit": meta["commit"][:12], "date": meta["date"], "kind": "model vs simulator",
        "machine": "the development VM (2 cores, shared): simulated times do not depend on load",
        "mpi": meta.get("simgrid", "SimGrid"),
        "command": "python bench/smpi/compare.py (see bench/smpi/README.md), then "
                   "python bench/smpi/summary_table.py",
        "provenance": "; ".join(meta.get("notes", [])) or "bench/results/smpi_agreement.json",
        "columns": [
            {"label": "network", "cell": "{family}"}, {"label": "collective", "cell": "{collective}"},
            {"label": "SMPI", "cell": "{smpi}"}, {"label": "ours", "cell": "{ours}"},
            {"label": "ranks", "cell": "{ranks}"}, {"label": "cases", "cell": "{cases}", "align": "right"},
            {"label": "within 20%", "cell": "{within}", "align": "right"},
            {"label": "median ratio", "cell": "{median:.3f}", "align": "right"},
            {"label": "worst ratio", "cell": "{worst:.2f}", "align": "right"}],
        "rows": rows,
    }
    out = os.path.join(RESULTS, "smpi-summary.json")
    with open(out, "w") as fh:
        json.dump(table, fh, indent=1)
    print(f"wrote {out}: {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
