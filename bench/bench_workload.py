"""Scale of the workload layer: a mixture-of-experts training step on 16,384 accelerators.

    python bench/bench_workload.py [--preset deepseek-v3] [--layout pp=16,ep=64]
                                   [--accelerators 16384] [--k 42] [--global-batch 15360]
    pytest bench/bench_workload.py      # the same, as a plain test with a 60 s bound

Prints the time to build the fat-tree, the time to price the step (routing,
every max-min problem, the event simulation of the overlapping phases) and
the peak resident memory of the process (``resource.getrusage``).

Target (issue 12): one MoE preset on 16,384 accelerators across five designs
in under 60 s in all, memory under 8 GiB.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time


def run(preset="deepseek-v3", layout="pp=16,ep=64", accelerators=16384, k=42,
        global_batch=15360, micro_batch=1):
    from collectives import topology as T
    from collectives import workload as W

    lay = W.Layout.parse(layout, ranks=accelerators)
    step = W.TrainingStep(W.preset(preset), lay, global_batch=global_batch,
                          micro_batch=micro_batch)
    t0 = time.perf_counter()
    topo = T.fat_tree(k)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = W.simulate(step, topo)
    price = time.perf_counter() - t0
    t0 = time.perf_counter()
    hot = result.hottest_links(3)
    links = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024      # Linux: KiB
    return {"preset": preset, "layout": repr(lay), "hosts": len(topo.hosts), "build": build,
            "price": price, "links": links, "peak_bytes": peak, "result": result, "hot": hot}


def test_scale():
    r = run()
    assert r["price"] < 60.0
    assert r["peak_bytes"] < 8 << 30


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="deepseek-v3")
    ap.add_argument("--layout", default="pp=16,ep=64")
    ap.add_argument("--accelerators", type=int, default=16384)
    ap.add_argument("--k", type=int, default=42, help="fat-tree radix (k**3/4 hosts)")
    ap.add_argument("--global-batch", type=int, default=15360)
    ap.add_argument("--micro-batch", type=int, default=1)
    a = ap.parse_args(argv)
    r = run(a.preset, a.layout, a.accelerators, a.k, a.global_batch, a.micro_batch)
    res = r["result"]
    print(f"{r['preset']} {r['layout']} on fat-tree:k={a.k} ({r['hosts']} hosts)")
    print(f"build {r['build']:.1f} s, price {r['price']:.1f} s, hottest links {r['links']:.1f} s, "
          f"peak memory {r['peak_bytes'] / 2**30:.2f} GiB")
    print(res.explain())
    return 0


if __name__ == "__main__":
    sys.exit(main())
