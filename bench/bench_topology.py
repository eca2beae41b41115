"""Build and describe large topologies (issue 4's targets: < 10 s and < 2 GiB each).

Two ways to run it:

    python bench/bench_topology.py           # a markdown table; each case in a fresh process
    pytest bench/bench_topology.py           # pytest-benchmark suite

Cases: a 16,512-host dragonfly (a=16, p=8, h=8, 129 groups) and a 9,826-host
fat-tree (k=34) are the targets; a 16,384-host 3-D torus and a 16,384-device
multi-node system are reported for comparison. For each: the time to build the
Topology, the time of ``describe()`` (closed forms where they exist, exact BFS
over the switches otherwise; no min-cut), the time to route 1,000 random host
pairs (``Router.link_fractions``), the peak resident set size of the process
(``ru_maxrss``, interpreter and imports included) and, in a second run, the
peak of Python allocations (``tracemalloc``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

try:
    import collectives.topology as T
except ImportError:  # running from a checkout without installing: use the tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import collectives.topology as T

CASES = {
    "dragonfly a=16,p=8,h=8": ("dragonfly:a=16,p=8,h=8", True),
    "fat-tree k=34": ("fat-tree:k=34", True),
    "torus 32x32x16": ("torus:32x32x16", False),
    "multi-node 1024x16 on fat-tree k=16": ("multi-node:nodes=1024,devices=16,inter=(fat-tree:k=16)",
                                            False),
}
TIME_LIMIT = 10.0
MEM_LIMIT = 2 << 30


def run_case(spec, routes=1000, trace=False):
    """Build, describe and route; returns a dict of measurements."""
    import random
    import tracemalloc

    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    topo = T.from_spec(spec)
    t1 = time.perf_counter()
    d = topo.describe()
    t2 = time.perf_counter()
    rng = random.Random(0)
    router = topo.router()
    for _ in range(routes):
        a, b = rng.sample(topo.hosts, 2)
        router.link_fractions(a, b)
    t3 = time.perf_counter()
    out = {"spec": spec, "hosts": d["hosts"], "switches": d["switches"], "links": d["links"],
           "diameter": d["diameter"], "mean_distance": d["mean_distance"],
           "bisection_bandwidth": d["bisection_bandwidth"],
           "build_s": t1 - t0, "describe_s": t2 - t1, "routes_s": t3 - t2,
           "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if trace:
        out["traced_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out


def _child(spec, trace):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", spec] + (["--trace"] if trace else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        trace = "--trace" in argv
        print(json.dumps(run_case(argv[1], routes=0 if trace else 1000, trace=trace)))
        return 0
    print("| topology | hosts | switches | links | diameter | mean dist | build | describe "
          "| 1000 routes | peak RSS | traced peak |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ok = True
    for label, (spec, target) in CASES.items():
        r = _child(spec, False)
        tr = _child(spec, True)     # tracemalloc slows Python down: a separate run
        total = r["build_s"] + r["describe_s"]
        if target and (total > TIME_LIMIT or r["maxrss"] > MEM_LIMIT):
            ok = False
        print(f"| {label}{' (target)' if target else ''} | {r['hosts']:,} | {r['switches']:,} "
              f"| {r['links']:,} | {r['diameter']} | {r['mean_distance']:.3f} "
              f"| {r['build_s']:.2f} s | {r['describe_s']:.2f} s | {r['routes_s']:.2f} s "
              f"| {r['maxrss'] / 2**20:.0f} MiB | {tr['traced_peak'] / 2**20:.0f} MiB |")
    print()
    print(f"targets (build + describe < {TIME_LIMIT:g} s, peak RSS < 2 GiB): "
          f"{'met' if ok else 'MISSED'}")
    return 0 if ok else 1


# ---------------------------------------------------------------- pytest-benchmark
def _bench(benchmark, spec):
    def go():
        topo = T.from_spec(spec)
        return topo.describe()

    d = benchmark.pedantic(go, rounds=1, iterations=1)
    assert benchmark.stats.stats.max < TIME_LIMIT
    return d


def test_dragonfly_16k(benchmark):
    d = _bench(benchmark, "dragonfly:a=16,p=8,h=8")
    assert d["hosts"] == 16512 and d["diameter"] == 5


def test_fat_tree_k34(benchmark):
    d = _bench(benchmark, "fat-tree:k=34")
    assert d["hosts"] == 9826 and d["switches"] == 1445 and d["diameter"] == 6


def test_dragonfly_routes(benchmark):
    topo = T.from_spec("dragonfly:a=16,p=8,h=8")
    router = topo.router()
    hosts = topo.hosts

    def go():
        for i in range(0, 16000, 16):
            router.link_fractions(hosts[i], hosts[-1 - i])
    benchmark.pedantic(go, rounds=1, iterations=1)


if __name__ == "__main__":
    sys.exit(main())
