"""Scale of the model: predict on the 16,512-host dragonfly and the 9,826-host fat-tree.

    python bench/bench_model.py            # prints a table (topology build excluded, first call
                                           # includes routing; 'again' is a cached second call)
    pytest bench/bench_model.py            # the same, as plain tests with a 10 s bound

Targets (issue 5): each prediction under 10 s (aim 1 s).
"""

import time

import pytest

from collectives import topology as T
from collectives.model import predict

CASES = [("allreduce", "ring", 256 << 20), ("allreduce", "rhd", 256 << 20),
         ("alltoall", "pairwise", None), ("alltoall", "bruck", None)]
TOPOS = {"dragonfly:a=16,p=8,h=8": lambda: T.dragonfly(16, 8, 8),
         "fat-tree:k=34": lambda: T.fat_tree(34)}


def _nbytes(coll, n, p):
    return n if n is not None else p * 4 * 1024       # all-to-all: 4 KiB blocks


def run():
    rows = []
    for name, make in TOPOS.items():
        t0 = time.perf_counter()
        topo = make()
        build = time.perf_counter() - t0
        p = len(topo.hosts)
        for coll, alg, n in CASES:
            nb = _nbytes(coll, n, p)
            t0 = time.perf_counter()
            pred = predict(coll, alg, nb, topo)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            predict(coll, alg, nb, topo)
            again = time.perf_counter() - t0
            rows.append((name, p, build, coll, alg, nb, pred, first, again))
    return rows


@pytest.mark.parametrize("name", list(TOPOS))
def test_scale(name):
    topo = TOPOS[name]()
    p = len(topo.hosts)
    for coll, alg, n in CASES:
        t0 = time.perf_counter()
        predict(coll, alg, _nbytes(coll, n, p), topo)
        assert time.perf_counter() - t0 < 10.0


if __name__ == "__main__":
    print(f"{'topology':24} {'hosts':>6} {'build':>7} {'collective':10} {'algorithm':9} "
          f"{'bytes':>10} {'predicted':>11} {'first':>7} {'again':>7}")
    for name, p, build, coll, alg, nb, pred, first, again in run():
        print(f"{name:24} {p:6d} {build:6.2f}s {coll:10} {alg:9} {nb:10d} {pred:10.4g}s "
              f"{first:6.2f}s {again:6.2f}s")
