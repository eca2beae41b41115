"""Every algorithm against the MPI library's own collective, on 1 to 4 ranks.

Data are small integers in every dtype, so any summation order gives the exact
same answer and results can be compared bit for bit with MPI's; random floats
check that every rank holds bitwise the same result, run after run.
"""

import numpy as np
import pytest

from collectives.dtypes import SUPPORTED_DTYPES, normalize_dtype

pytestmark = pytest.mark.mpi(ranks=[1, 2, 3, 4])

COUNTS = lambda p: sorted({0, 1, 7, max(p - 1, 0), 1000, 65537})  # noqa: E731
OPS = ["sum", "prod", "min", "max", "avg"]


def _algorithms(collective):
    from collectives.algorithms import algorithm_names

    return ["mpi"] + list(algorithm_names(collective))


def _data(count, dtype, rank, op, salt=0):
    dtype = normalize_dtype(dtype)
    i = np.arange(count, dtype=np.int64)
    if op == "prod":
        v = 1 + ((i + rank + salt) % 7 == 0)          # ones and twos: products stay small
    else:
        v = (i * 7 + rank * 3 + salt) % 5
    return v.astype(dtype)


def _mpi_reference(comm, x, op, collective):
    """The MPI library's own answer, computed through mpi4py on the world communicator."""
    from mpi4py import MPI

    world = comm.mpi_comm
    p = world.Get_size()
    # float16/bfloat16 have no MPI type: gather as float64 and reduce with numpy (exact on these data)
    wide = x.astype(np.float64) if x.dtype.name in ("float16", "bfloat16") else x
    mop = {"sum": MPI.SUM, "avg": MPI.SUM, "prod": MPI.PROD, "min": MPI.MIN, "max": MPI.MAX}[op]
    full = np.empty_like(wide)
    world.Allreduce(wide, full, op=mop)
    full = full.astype(x.dtype)
    if op == "avg":
        full = (full / np.asarray(p, dtype=x.dtype)).astype(x.dtype)
    return full


def _same_on_all_ranks(comm, y):
    import hashlib

    digest = hashlib.sha1(np.ascontiguousarray(y).view(np.uint8).tobytes()).hexdigest()
    everyone = comm.mpi_comm.allgather(digest)
    assert len(set(everyone)) == 1, f"ranks hold different results: {everyone}"


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint8)


@pytest.mark.parametrize("inplace", [False, True], ids=["out-of-place", "in-place"])
def test_allreduce_matches_mpi(comm, inplace):
    p = comm.size
    references = {}   # MPI's answer once per case, not once per algorithm: a third of the calls
    for alg in _algorithms("allreduce"):
        for dtype in SUPPORTED_DTYPES:
            for op in OPS:
                if op == "avg" and dtype not in ("float16", "bfloat16", "float32", "float64"):
                    continue
                for count in COUNTS(p):
                    if count == 65537 and op != "sum" and dtype not in ("float32", "int16"):
                        continue  # the large count: every dtype with sum, every op with two dtypes
                    x = _data(count, dtype, comm.rank, op)
                    if (dtype, op, count) not in references:
                        references[dtype, op, count] = _mpi_reference(comm, x, op, "allreduce")
                    want = references[dtype, op, count]
                    if inplace:
                        y = x.copy()
                        got = comm.allreduce(y, op=op, algorithm=alg, out=y)
                        assert got is y
                    else:
                        x_before = x.copy()
                        got = comm.allreduce(x, op=op, algorithm=alg)
                        assert np.array_equal(_bits(x), _bits(x_before)), "input was modified"
                    assert got.dtype == x.dtype and got.shape == x.shape
                    assert np.array_equal(_bits(got), _bits(want)), (
                        f"{alg} {dtype} {op} count={count}: "
                        f"first difference at {np.flatnonzero(got != want)[:5]}")


def test_allreduce_random_floats_identical_everywhere_and_repeatable(comm):
    rng = np.random.default_rng(1234 + comm.rank)
    for alg in _algorithms("allreduce"):
        for dtype in ("float16", "bfloat16", "float32", "float64"):
            from collectives.dtypes import normalize_dtype

            dt = normalize_dtype(dtype)
            for count in (1, 1000, 65537, 300_001):
                x = rng.standard_normal(count).astype(dt)
                y1 = comm.allreduce(x, algorithm=alg)
                y2 = comm.allreduce(x, algorithm=alg)
                assert np.array_equal(_bits(y1), _bits(y2)), f"{alg} {dtype}: not repeatable"
                _same_on_all_ranks(comm, y1)
                want = _mpi_reference(comm, x.astype(np.float64), "sum", "allreduce")
                tol = {"float16": 5e-2, "bfloat16": 2e-1, "float32": 1e-4, "float64": 1e-10}[dtype]
                assert np.allclose(y1.astype(np.float64), want, atol=tol * comm.size, rtol=tol)


def test_alltoall_matches_mpi(comm):
    p = comm.size
    for alg in _algorithms("alltoall"):
        for dtype in SUPPORTED_DTYPES:
            for block in (0, 1, 3, 250, 16385):
                x = (np.arange(block * p, dtype=np.int64) + 1000 * comm.rank).astype(normalize_dtype(dtype))
                want = np.empty_like(x)
                xs = x.view(np.uint8)
                wb = want.view(np.uint8)
                comm.mpi_comm.Alltoall(xs, wb)
                got = comm.alltoall(x, algorithm=alg)
                assert np.array_equal(_bits(got), _bits(want)), f"{alg} {dtype} block={block}"
                out = np.empty_like(x)
                assert comm.alltoall(x, algorithm=alg, out=out) is out
                assert np.array_equal(_bits(out), _bits(want))
                # in place: out is x
                y = x.copy()
                comm.alltoall(y, algorithm=alg, out=y)
                assert np.array_equal(_bits(y), _bits(want)), f"{alg} in place"


def test_alltoall_2d_blocks(comm):
    p = comm.size
    x = np.arange(p * 3 * 4, dtype=np.float32).reshape(p * 3, 4) + 100 * comm.rank
    want = np.empty_like(x)
    comm.mpi_comm.Alltoall(x, want)
    for alg in _algorithms("alltoall"):
        assert np.array_equal(comm.alltoall(x, algorithm=alg), want)


def test_reduce_scatter_matches_mpi(comm):
    from mpi4py import MPI

    p = comm.size
    references = {}
    for alg in _algorithms("reduce_scatter"):
        for dtype in ("int8", "uint16", "int32", "int64", "float16", "bfloat16", "float32", "float64"):
            for op in ("sum", "max", "avg"):
                for count in COUNTS(p):
                    x = _data(count, dtype, comm.rank, op)
                    ref_op = op if op != "avg" else "sum"
                    if (dtype, ref_op, count) not in references:
                        references[dtype, ref_op, count] = _mpi_reference(comm, x, ref_op, "allreduce")
                    full = references[dtype, ref_op, count]
                    if op == "avg":
                        if not (np.issubdtype(x.dtype, np.floating) or x.dtype.name == "bfloat16"):
                            continue
                        full = (full / np.asarray(p, dtype=x.dtype)).astype(x.dtype)
                    want = np.array_split(full, p)[comm.rank]
                    got = comm.reduce_scatter(x, op=op, algorithm=alg)
                    assert np.array_equal(_bits(got), _bits(want)), f"{alg} {dtype} {op} count={count}"
    del MPI


def test_allgather_matches_mpi(comm):
    p = comm.size
    for alg in _algorithms("allgather"):
        for dtype in ("uint8", "int16", "float16", "float32", "float64", "int64"):
            for count in COUNTS(p):
                x = (np.arange(count) + 7 * comm.rank).astype(normalize_dtype(dtype))
                want = np.empty(count * p, dtype=x.dtype)
                comm.mpi_comm.Allgather(x.view(np.uint8), want.view(np.uint8))
                got = comm.allgather(x, algorithm=alg)
                assert np.array_equal(_bits(got), _bits(want)), f"{alg} {dtype} count={count}"


def test_broadcast_matches_mpi(comm):
    p = comm.size
    for alg in _algorithms("broadcast"):
        for root in sorted({0, p - 1, p // 2}):
            for count in COUNTS(p):
                for dtype in ("uint8", "float32", "bfloat16", "int64"):
                    x = (np.arange(count) * 3 + 11 * comm.rank).astype(normalize_dtype(dtype))
                    want = x.copy()
                    comm.mpi_comm.Bcast(want.view(np.uint8), root=root)
                    got = comm.broadcast(x, root=root, algorithm=alg)
                    assert got is x
                    assert np.array_equal(_bits(x), _bits(want)), f"{alg} root={root} count={count}"


def test_barrier_and_auto(comm):
    comm.barrier()
    comm.barrier(timeout=30)
    x = np.ones(10, dtype=np.float32)
    assert np.array_equal(comm.allreduce(x), np.full(10, comm.size, dtype=np.float32))
    plan = comm.plan("allreduce", 1 << 20)
    assert plan.algorithm in _algorithms("allreduce")
    assert "allreduce" in plan.explain()


def test_buffer_protocol_and_dlpack_without_copies(comm):
    import array

    p = comm.size
    # array.array and bytearray through the buffer protocol, written in place
    buf = array.array("d", [1.0 + comm.rank] * 10)
    out = array.array("d", [0.0] * 10)
    comm.allreduce(buf, out=out)
    assert list(out) == [float(sum(1 + r for r in range(p)))] * 10
    raw = bytearray(range(4 * p))
    got = comm.alltoall(raw)
    assert isinstance(got, np.ndarray) and got.size == 4 * p
    # a DLPack producer that is not numpy: the result lands in the producer's memory
    torch = pytest.importorskip("torch")
    t = torch.full((5, 3), float(comm.rank), dtype=torch.float32)
    y = comm.allreduce(t)
    assert isinstance(y, torch.Tensor) and y.shape == (5, 3)
    assert torch.all(y == sum(range(p)))
    comm.allreduce(t, out=t)
    assert torch.all(t == sum(range(p)))
    b = torch.ones(7, dtype=torch.bfloat16) * (comm.rank + 1)
    assert torch.all(comm.allreduce(b, op="max") == p)
    with pytest.raises(ValueError, match="non-contiguous"):
        comm.allreduce(torch.ones(4, 4).t())


@pytest.mark.parametrize("pairing", ["far-first", "near-first"])
def test_rhd_pairing_orders_match_mpi(comm, pairing):
    """Both Rabenseifner pairing orders give MPI's sums, bitwise identical on every rank."""
    from mpi4py import MPI

    rng = np.random.default_rng(7)
    for count in COUNTS(comm.size):
        for dtype in ("int32", "float64"):
            x = _data(count, dtype, comm.rank, "sum")
            want = np.empty_like(x)
            comm.mpi_comm.Allreduce(x, want, op=MPI.SUM)
            got = comm.allreduce(x, algorithm=f"rhd(pairing={pairing})")
            assert np.array_equal(_bits(got), _bits(want)), (count, dtype)
        noisy = rng.standard_normal(1001).astype(np.float32) + comm.rank
        _same_on_all_ranks(comm, comm.allreduce(noisy, algorithm=f"rhd(pairing={pairing})"))
