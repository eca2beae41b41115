"""Every algorithm against numpy, through the reference interpreter (no MPI needed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectives import interpreter
from collectives.algorithms import ALGORITHMS, COLLECTIVES, algorithm_names, build_schedule
from collectives.errors import CollectivesError, InvalidArgument, InvalidType

# the equal-block collectives (alltoallv's uneven blocks: tests/test_alltoallv.py)
ALL = [(c, a) for c in COLLECTIVES for a in ALGORITHMS[c]]
IDS = [f"{c}-{a}" for c, a in ALL]
RANKS = list(range(1, 10)) + [16, 17, 31]


def counts_for(collective, p):
    """Element counts of one rank's buffer (for all-to-all: counts per block times p)."""
    base = [0, 1, 7, max(p - 1, 0), 1000] + ([65537] if p <= 9 else [])
    if collective == "alltoall":
        return [b * p for b in (0, 1, 7, max(p - 1, 0), 100)] + ([p * 4099] if p <= 9 else [])
    if collective == "allgather" and p > 9:
        return [0, 1, 7, p - 1, 1000]
    return base


def int_data(rng, p, n, dtype=np.float64):
    return [rng.integers(-3, 4, n).astype(dtype) for _ in range(p)]


def run_checked(s, xs, op="sum", **kw):
    """Run and compare with numpy; return the outputs."""
    got = interpreter.run(s, xs, op, **kw)
    exp = interpreter.expected(s.collective, xs, op, root=s.params.get("root", 0))
    for r in range(s.nranks):
        assert got[r].shape == exp[r].shape, (s.describe(), r)
        assert np.array_equal(got[r], exp[r]), f"{s.describe()}: rank {r} differs from numpy"
    return got


@pytest.mark.parametrize("p", RANKS)
@pytest.mark.parametrize("collective,algorithm", ALL, ids=IDS)
def test_against_numpy(collective, algorithm, p):
    rng = np.random.default_rng(p)
    ops = ["sum", "max"] if p <= 9 else ["sum"]
    for n in counts_for(collective, p):
        s = build_schedule(collective, algorithm, p, n)
        xs = int_data(rng, p, n)
        for op in ops if s.reduces else ["sum"]:
            run_checked(s, xs, op)
        if collective == "allreduce" and p <= 9:
            run_checked(s, xs, "min", in_place=True)


@pytest.mark.parametrize("p", [2, 3, 5, 8, 9, 17])
@pytest.mark.parametrize("collective,algorithm",
                         [(c, a) for c, a in ALL if c in ("allreduce", "reduce_scatter")],
                         ids=[i for (c, a), i in zip(ALL, IDS) if c in ("allreduce", "reduce_scatter")])
def test_floats_bitwise_identical_and_deterministic(collective, algorithm, p):
    """Random floats: every rank holds the same bits, and a second run gives the same bits."""
    rng = np.random.default_rng(100 + p)
    for n in (7, 1000, 4099):
        xs = [rng.standard_normal(n).astype(np.float32) * (10.0 ** rng.integers(-3, 4, n)).astype(np.float32) for _ in range(p)]
        s = build_schedule(collective, algorithm, p, n)
        a = interpreter.run(s, xs, "sum")
        b = interpreter.run(build_schedule(collective, algorithm, p, n), xs, "sum")
        for r in range(p):
            assert a[r].tobytes() == b[r].tobytes()
        ref = np.sum(np.stack(xs).astype(np.float64), axis=0)
        if collective == "allreduce":
            for r in range(1, p):
                assert a[r].tobytes() == a[0].tobytes(), f"rank {r} differs from rank 0"
            np.testing.assert_allclose(a[0], ref, rtol=1e-4, atol=1e-3 * np.abs(xs).max())
        else:
            np.testing.assert_allclose(np.concatenate(a), ref, rtol=1e-4, atol=1e-3 * np.abs(xs).max())


def test_tree_chunks_and_uneven_groups():
    rng = np.random.default_rng(7)
    for p in (2, 3, 6, 7, 12):
        for chunk in (1, 3, 50):
            s = build_schedule("allreduce", "tree", p, 301, chunk=chunk)
            run_checked(s, int_data(rng, p, 301), "sum")
    for groups in ([[0, 4], [1, 2, 3, 5, 6]], [2, 0, 1, 0, 2, 2, 1], [[0], [1], [2, 3, 4, 5, 6]],
                   1, 7, [[6, 5, 4], [3, 2, 1, 0]]):
        for n in (0, 1, 13, 1000):
            run_checked(build_schedule("allreduce", "hierarchical", 7, n, groups=groups),
                        int_data(rng, 7, n), "sum")
            run_checked(build_schedule("alltoall", "hierarchical", 7, n * 7, groups=groups),
                        int_data(rng, 7, n * 7))


def test_broadcast_roots():
    rng = np.random.default_rng(3)
    for name in algorithm_names("broadcast"):
        for p in (1, 2, 5, 8, 11):
            for root in sorted({0, p // 2, p - 1}):
                for n in (0, 1, 100):
                    run_checked(build_schedule("broadcast", name, p, n, root=root), int_data(rng, p, n))


def test_scratch_stays_small():
    """All-reduce scratch is at most a block; nothing keeps a second copy of the message."""
    for p in (2, 5, 8, 17):
        n = 100000
        for a in algorithm_names("allreduce"):
            assert build_schedule("allreduce", a, p, n).tmp_count <= -(-n // p)
        assert build_schedule("reduce_scatter", "ring", p, n).tmp_count <= 2 * -(-n // p)
        assert build_schedule("alltoall", "pairwise", p, n * p).tmp_count == 0


# ---- hypothesis ----------------------------------------------------------------------------------

DTYPES = [np.float32, np.float64, np.int32, np.int64, np.uint8, np.int8]


@settings(max_examples=60, deadline=None)
@given(alg=st.sampled_from(ALL), p=st.integers(1, 12), n=st.integers(0, 300),
       dtype=st.sampled_from(DTYPES), op=st.sampled_from(["sum", "prod", "min", "max"]),
       seed=st.integers(0, 2 ** 16), in_place=st.booleans())
def test_property(alg, p, n, dtype, op, seed, in_place):
    collective, algorithm = alg
    rng = np.random.default_rng(seed)
    count = n * p if collective == "alltoall" else n
    params = {}
    if collective == "broadcast":
        params["root"] = int(rng.integers(0, p))
    s = build_schedule(collective, algorithm, p, count, **params)
    lo = -2 if np.dtype(dtype).kind != "u" else 0
    xs = [rng.integers(lo, 3, count).astype(dtype) for _ in range(p)]
    with np.errstate(over="ignore"):
        got = run_checked(s, xs, op, in_place=in_place and collective == "allreduce")
    if collective in ("allreduce", "allgather", "broadcast"):
        for r in range(1, p):
            assert got[r].tobytes() == got[0].tobytes()


# ---- bad input -------------------------------------------------------------------------------------

def test_bad_input():
    with pytest.raises(InvalidArgument, match="unknown allreduce algorithm 'nope'.*ring.*tree"):
        build_schedule("allreduce", "nope", 4, 10)
    with pytest.raises(InvalidArgument, match="handled by the Communicator"):
        build_schedule("allreduce", "mpi", 4, 10)
    with pytest.raises(InvalidArgument, match="unknown collective 'gather'.*allreduce"):
        build_schedule("gather", "ring", 4, 10)
    with pytest.raises(InvalidArgument, match="not divisible"):
        build_schedule("alltoall", "pairwise", 4, 10)
    with pytest.raises(InvalidArgument, match="does not take 'chunk'"):
        build_schedule("allreduce", "ring", 4, 10, chunk=3)
    with pytest.raises(InvalidArgument, match="chunk"):
        build_schedule("allreduce", "tree", 4, 10, chunk=0)
    with pytest.raises(InvalidArgument, match="root=4 is out of range"):
        build_schedule("broadcast", "binomial", 4, 10, root=4)
    with pytest.raises(InvalidType):
        build_schedule("broadcast", "binomial", 4, 10, root="0")
    with pytest.raises(InvalidArgument, match="nranks must be at least 1"):
        build_schedule("allreduce", "ring", 0, 10)
    with pytest.raises(InvalidArgument, match="count must be at least 0"):
        build_schedule("allreduce", "ring", 2, -1)
    with pytest.raises(InvalidType):
        build_schedule("allreduce", "ring", 2, 1.5)
    with pytest.raises(InvalidArgument, match="partition"):
        build_schedule("allreduce", "hierarchical", 4, 10, groups=[[0, 1], [1, 2, 3]])
    with pytest.raises(InvalidArgument, match="one entry per rank"):
        build_schedule("allreduce", "hierarchical", 4, 10, groups=np.array([0, 0, 1]))
    for err in (InvalidArgument, InvalidType):
        assert issubclass(err, CollectivesError)
