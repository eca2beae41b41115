"""Reduction kernel throughput against numpy / ml_dtypes (issue 2's targets).

Two ways to run it:

    python bench/bench_kernels.py            # markdown table, medians of several runs
    pytest bench/bench_kernels.py            # pytest-benchmark suite

Measures ``reduce_into(a, b, "sum")`` on 64 MiB destination arrays against
``np.add(a, b, out=a)`` on the same arrays in the same run (for bfloat16 that is
ml_dtypes' own add). Throughput is bytes of dst per second (GiB/s).
Targets: float32/float64 >= 0.9x numpy, float16 >= 10x numpy, bfloat16 >= 10x ml_dtypes.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

try:
    import collectives._kernels as K
except ImportError:  # running from a checkout without installing: use the tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import collectives._kernels as K

import ml_dtypes

from collectives.bench import time_interleaved

NBYTES = 64 << 20
GiB = float(1 << 30)

# dtype name -> (numpy dtype, reference label, target ratio)
CASES = {
    "float32": (np.dtype(np.float32), "numpy", 0.9),
    "float64": (np.dtype(np.float64), "numpy", 0.9),
    "float16": (np.dtype(np.float16), "numpy", 10.0),
    "bfloat16": (np.dtype(ml_dtypes.bfloat16), "ml_dtypes", 10.0),
}


def make_arrays(name, nbytes=NBYTES, seed=0):
    dt = CASES[name][0]
    n = nbytes // dt.itemsize
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1.0, 1.0, n).astype(np.float32).astype(dt)
    b = rng.uniform(-1.0, 1.0, n).astype(np.float32).astype(dt)
    return a, b


def ours(a, b):
    K.reduce_into(a, b, "sum")


def portable(a, b):
    K._reduce_into_isa(a, b, "sum", 0)


def reference(a, b):
    np.add(a, b, out=a)


def measure(name, rounds=5, budget=0.3, nbytes=NBYTES):
    """Medians (GiB/s) of ours, the reference and the portable path, timed interleaved.

    Every iteration calls each once, in turn (``collectives.bench.time_interleaved``); as many
    iterations as give the slowest about ``rounds * budget`` seconds (3 to 50 per round).
    """
    a, b = make_arrays(name, nbytes)
    fns = {"ours": ours, "reference": reference, "portable": portable}
    calls = [lambda fn=fn: fn(a, b) for fn in fns.values()]
    for call in calls:      # warm up: pages touched, caches and clocks settled
        call()
    slowest = float(time_interleaved(calls, 1, barrier=_no_barrier).max())
    iters = int(min(50 * rounds, max(3 * rounds, rounds * budget / max(slowest, 1e-9))))
    times = time_interleaved(calls, iters, barrier=_no_barrier)
    return {key: a.nbytes / float(np.median(times[:, j])) / GiB for j, key in enumerate(fns)}


def _no_barrier():
    """One process: nothing to wait for."""


def table(rounds=5, budget=0.3, names=None):
    rows = ["| dtype | collectives GiB/s | reference | reference GiB/s | ratio | target | portable path GiB/s |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    ok = True
    for name in names or CASES:
        _, ref_label, target = CASES[name]
        r = measure(name, rounds, budget)
        ratio = r["ours"] / r["reference"]
        ok &= ratio >= target
        rows.append(f"| {name} | {r['ours']:.1f} | {ref_label} | {r['reference']:.2f} | "
                    f"{ratio:.2f}x {'✓' if ratio >= target else '✗'} | {target:g}x | {r['portable']:.1f} |")
    return "\n".join(rows), ok


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5,
                   help="the slowest implementation runs about rounds x budget seconds (default 5)")
    p.add_argument("--budget", type=float, default=0.3, help="seconds per round (default 0.3)")
    p.add_argument("--dtype", action="append", choices=list(CASES), help="only these dtypes")
    args = p.parse_args(argv)
    print(f"reduce_into(a, b, 'sum') on {NBYTES >> 20} MiB arrays, kernels: {K.kernel_isa()}, "
          f"numpy {np.__version__}, ml_dtypes {ml_dtypes.__version__}; medians, GiB/s of dst\n")
    text, ok = table(args.rounds, args.budget, args.dtype)
    print(text)
    return 0 if ok else 1


# ---- pytest-benchmark suite ---------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:
    @pytest.fixture(scope="module", params=list(CASES))
    def arrays(request):
        return request.param, make_arrays(request.param)

    @pytest.mark.parametrize("impl", ["collectives", "reference"])
    def test_sum_64mib(benchmark, arrays, impl):
        name, (a, b) = arrays
        fn = ours if impl == "collectives" else reference
        benchmark.group = f"sum {name} 64MiB"
        benchmark.extra_info["GiB_of_dst"] = a.nbytes / GiB
        benchmark(fn, a, b)


if __name__ == "__main__":
    sys.exit(main())
