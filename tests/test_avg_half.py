"""op="avg" on float16 and bfloat16: the average of values near the top of the range is exact.

A half-precision sum of p values near the dtype's maximum overflows to inf; the
average itself is representable, and every rank must get the same one.
"""

import numpy as np
import pytest

import collectives as cl
from collectives import dtypes as _dt

pytestmark = pytest.mark.mpi(ranks=[2, 3, 4])

HALF = ["float16", "bfloat16"]
TOP = {"float16": 60000.0, "bfloat16": 3.0e38}   # 2 * TOP overflows the dtype (bfloat16: float32 too)


def _dtype(name):
    return _dt.bfloat16_dtype() if name == "bfloat16" else np.dtype(name)


def _eps(name):
    import ml_dtypes

    return float(ml_dtypes.finfo(_dtype(name)).eps)


def _algorithms(collective):
    return ["mpi"] + list(cl.algorithms.algorithm_names(collective))


def _same_on_every_rank(comm, y):
    everyone = comm.mpi_comm.allgather(y.view(np.uint16).tobytes())
    assert all(b == everyone[0] for b in everyone), "ranks got different averages"


@pytest.mark.parametrize("name", HALF)
def test_allreduce_avg_near_the_top_is_exact(comm, name):
    dt = _dtype(name)
    x = np.full(1000, TOP[name], dtype=dt)
    for algorithm in _algorithms("allreduce"):
        y = comm.allreduce(x, op="avg", algorithm=algorithm)
        assert y.dtype == dt
        assert np.array_equal(y.astype(np.float64), x.astype(np.float64)), algorithm
        _same_on_every_rank(comm, y)


@pytest.mark.parametrize("name", HALF)
def test_allreduce_avg_of_different_values_is_the_rounded_mean(comm, name):
    dt = _dtype(name)
    top = TOP[name]
    rng = np.random.default_rng(7)
    # every rank's values, drawn from one seed: the true mean is known everywhere
    values = rng.uniform(0.5 * top, top, size=(comm.size, 257)).astype(dt)
    want = values.astype(np.float64).mean(axis=0).astype(dt)
    for algorithm in _algorithms("allreduce"):
        y = comm.allreduce(values[comm.rank], op="avg", algorithm=algorithm)
        assert np.all(np.isfinite(y.astype(np.float64))), algorithm
        # within one unit in the last place of the correctly rounded mean
        got, ref = y.astype(np.float64), want.astype(np.float64)
        ulp = _eps(name) * 2.0 ** np.floor(np.log2(ref))
        assert np.all(np.abs(got - ref) <= ulp), algorithm
        _same_on_every_rank(comm, y)


@pytest.mark.parametrize("name", HALF)
def test_in_place_and_reduce_scatter_avg(comm, name):
    dt = _dtype(name)
    x = np.full(3 * comm.size + 1, TOP[name], dtype=dt)
    comm.allreduce(x, op="avg", out=x)
    assert np.array_equal(x.astype(np.float64), np.full(x.size, float(np.asarray(TOP[name], dtype=dt))))
    for algorithm in _algorithms("reduce_scatter"):
        block = comm.reduce_scatter(x, op="avg", algorithm=algorithm)
        assert block.dtype == dt and block.size == np.array_split(x, comm.size)[comm.rank].size
        assert np.array_equal(block.astype(np.float64), x[:block.size].astype(np.float64)), algorithm


def test_validated_half_avg(comm):
    from mpi4py import MPI

    c = cl.Communicator(MPI.COMM_WORLD, validate=True)
    try:
        y = c.allreduce(np.full(8, 60000.0, dtype=np.float16), op="avg")
        assert np.array_equal(y, np.full(8, 60000.0, dtype=np.float16))
        # a rank that averages float32 while the others average float16 is caught
        x = np.ones(8, dtype=np.float32 if c.rank == 0 else np.float16)
        with pytest.raises(cl.MismatchError, match="dtype"):
            c.allreduce(x, op="avg")
    finally:
        c.free()
