"""Persistent collectives (comm.allreduce_init and friends) on 1 to 4 ranks.

A persistent request gives the same bits as the plain call run after run, lives
through 10,000 restarts without growing memory, refuses a bound buffer that
changed, refuses a second start before a wait, and times out naming its collective.
"""

import resource
import tracemalloc

import numpy as np
import pytest

import collectives as cl

pytestmark = pytest.mark.mpi(ranks=[1, 2, 3, 4])

COLLECTIVES = ("allreduce", "alltoall", "reduce_scatter", "allgather", "broadcast")


def _algorithms(collective):
    from collectives.algorithms import algorithm_names

    return ["auto", "mpi"] + list(algorithm_names(collective))


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


def _out_shape(comm, collective, n):
    from collectives.communicator import block_sizes

    if collective == "reduce_scatter":
        return (int(block_sizes(n, comm.size)[comm.rank]),)
    if collective == "allgather":
        return (n * comm.size,)
    return (n,)


def _init(comm, collective, x, out, algorithm):
    if collective == "broadcast":
        return comm.broadcast_init(x, root=comm.size - 1, algorithm=algorithm)
    if collective in ("allreduce", "reduce_scatter"):
        return getattr(comm, collective + "_init")(x, out=out, op="sum", algorithm=algorithm)
    return getattr(comm, collective + "_init")(x, out=out, algorithm=algorithm)


def _plain(comm, collective, x, algorithm):
    if collective == "broadcast":
        return comm.broadcast(x.copy(), root=comm.size - 1, algorithm=algorithm)
    return getattr(comm, collective)(x, algorithm=algorithm)


@pytest.mark.parametrize("collective", COLLECTIVES)
def test_same_bits_as_the_plain_call_run_after_run(comm, collective):
    for algorithm in _algorithms(collective):
        for count in ((0, 5, 30_000) if algorithm in ("auto", "mpi") else (5, 30_000)):
            n = count * comm.size if collective == "alltoall" else count
            x = np.empty(n, dtype=np.float64)
            out = None if collective == "broadcast" else np.empty(_out_shape(comm, collective, n))
            op = _init(comm, collective, x, out, algorithm)
            with op:
                for run in range(2):
                    # new data every run, in the bound buffer
                    x[...] = np.random.default_rng(run * 100 + comm.rank).standard_normal(n)
                    want = _plain(comm, collective, x, algorithm)
                    op.start()
                    got = op.wait()
                    assert got is (x if collective == "broadcast" else out)
                    np.testing.assert_array_equal(_bits(got), _bits(want),
                                                  err_msg=f"{algorithm} {count} run {run}")


def test_mpi_algorithm_uses_the_mpi_persistent_request_where_there_is_one(comm):
    from collectives import _executor

    x, y = np.ones(4), np.empty(4)
    with comm.allreduce_init(x, out=y, algorithm="mpi") as op:
        assert op.persistent_mpi == _executor.have_persistent()
        op.start().wait()
        assert np.all(y == comm.size)
    with comm.allreduce_init(x, out=y, algorithm="ring") as op:
        assert not op.persistent_mpi   # our precompiled program


def test_in_place_and_avg(comm):
    x = np.arange(100, dtype=np.float32) + comm.rank
    with comm.allreduce_init(x, out=x, op="avg", algorithm="ring") as op:
        for _ in range(3):
            x[...] = np.arange(100, dtype=np.float32) + comm.rank
            want = comm.allreduce(x, op="avg", algorithm="ring")
            op.start().wait()
            np.testing.assert_array_equal(x, want)
    h = np.full(64, 1000.0 + comm.rank, dtype=np.float16)
    hy = np.empty_like(h)
    with comm.allreduce_init(h, out=hy, op="avg") as op:
        op.start().wait()
        np.testing.assert_array_equal(_bits(hy), _bits(comm.allreduce(h, op="avg")))
    blocks = np.arange(4 * comm.size, dtype=np.int64) + 10 * comm.rank
    with comm.alltoall_init(blocks, out=blocks, algorithm="pairwise") as op:
        start = blocks.copy()
        want = comm.alltoall(start, algorithm="pairwise")
        op.start().wait()
        np.testing.assert_array_equal(blocks, want)


@pytest.mark.mpi(ranks=[1, 2])   # 10,000 runs of 3-4 ranks on this 2-core machine take minutes
@pytest.mark.parametrize("algorithm", ["mpi", "ring"])
def test_ten_thousand_restarts_do_not_grow_memory(comm, algorithm):
    x = np.ones(2, dtype=np.float32)   # 8 bytes
    y = np.empty_like(x)
    op = comm.allreduce_init(x, out=y, algorithm=algorithm)
    for _ in range(1000):   # warm-up: caches, MPI's own first-use allocations
        op.start().wait()
    tracemalloc.start()
    before_py = tracemalloc.take_snapshot()
    rss_before = _rss_kib()
    for _ in range(10_000):
        op.start()
        op.wait()
    rss_after = _rss_kib()
    after_py = tracemalloc.take_snapshot()
    tracemalloc.stop()
    op.free()
    grown = sum(s.size_diff for s in after_py.compare_to(before_py, "filename"))
    # tolerance: tracemalloc's own bookkeeping and interned objects (a leak of one small
    # object per start would be >= 10,000 x 32 bytes = 312 KiB); RSS moves in pages
    assert grown < 64 * 1024, f"Python memory grew by {grown} bytes over 10,000 restarts"
    assert rss_after - rss_before < 2048, f"RSS grew by {rss_after - rss_before} KiB over 10,000 restarts"
    assert np.all(y == comm.size)


def _rss_kib():
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() // 1024


def test_refuses_a_buffer_that_changed(comm):
    x = np.ones(16)
    y = np.empty(16)
    op = comm.allreduce_init(x, out=y)
    op.start().wait()
    x.resize(1 << 16, refcheck=False)   # as torch's resize_: the memory moves
    with pytest.raises(cl.InvalidArgument, match="changed"):
        op.start()
    x.resize(16, refcheck=False)
    op.free()
    # nothing was sent: every rank is still in step
    assert np.all(comm.allreduce(np.ones(3)) == comm.size)


def test_refuses_a_resized_torch_tensor(comm):
    torch = pytest.importorskip("torch")
    t = torch.ones(16)
    with comm.allreduce_init(t, out=t) as op:
        op.start().wait()
        # torch itself refuses to resize a storage it shared with the request ...
        with pytest.raises(RuntimeError, match="not resizable"):
            t.resize_(1 << 16)
        # ... but the tensor can be pointed at other, larger memory: start refuses that
        t.set_(torch.ones(1 << 16))
        with pytest.raises(cl.InvalidArgument, match="changed"):
            op.start()


def test_start_twice_free_and_broken(comm):
    x, y = np.ones(1000), np.empty(1000)
    op = comm.allreduce_init(x, out=y, algorithm="ring")
    with pytest.raises(cl.RequestError):
        op.wait()          # never started
    op.start()
    if comm.size > 1:
        with pytest.raises(cl.RequestError, match="still in flight"):
            op.start()
    op.wait()
    op.free()
    with pytest.raises(cl.RequestError, match="freed"):
        op.start()
    from mpi4py import MPI

    c = cl.Communicator(MPI.COMM_WORLD)
    op = c.allreduce_init(x, out=y)
    c.free()
    with pytest.raises(cl.CommunicatorBroken):
        op.start()


@pytest.mark.mpi(ranks=[2, 3])
@pytest.mark.parametrize("algorithm", ["ring", "mpi"])
def test_times_out_naming_its_collective(comm, algorithm):
    from mpi4py import MPI

    c = cl.Communicator(MPI.COMM_WORLD, timeout=1.0)
    x, y = np.ones(20_000, dtype=np.float32), np.empty(20_000, dtype=np.float32)
    op = c.reduce_scatter_init(x, out=np.empty(_out_shape(c, "reduce_scatter", 20_000), np.float32),
                               algorithm=algorithm) if algorithm == "ring" else \
        c.allreduce_init(x, out=y, algorithm=algorithm)
    name = "reduce_scatter" if algorithm == "ring" else "allreduce"
    if comm.rank != 0:   # rank 0 never starts
        op.start()
        with pytest.raises(cl.CollectiveTimeout) as info:
            op.wait()
        assert info.value.collective == name and name in str(info.value)
        with pytest.raises(cl.CommunicatorBroken):
            op.start()
    comm.barrier()


def test_bad_input_refused_at_init(comm):
    x = np.ones(10, dtype=np.float32)
    with pytest.raises(cl.InvalidArgument):
        comm.allreduce_init(x, op="bogus")
    with pytest.raises(cl.InvalidArgument):
        comm.allreduce_init(x, out=np.empty(11, dtype=np.float32))
    with pytest.raises(cl.InvalidType):
        comm.allgather_init(x, out=np.empty(10 * comm.size, dtype=np.int8))
    with pytest.raises(cl.InvalidArgument):
        comm.broadcast_init(x, root=-1)
    with pytest.raises(cl.InvalidArgument):
        comm.reduce_scatter_init(np.ones(()))
    assert np.all(comm.allreduce(x) == comm.size)


@pytest.mark.mpi(ranks=[2, 3])
def test_bench_persistent_mode_gives_right_results(comm):
    from collectives.bench import sweep

    rows = sweep(comm, ["allreduce", "alltoall", "broadcast"], [8, 4096], algorithms="all", iters=3,
                 warmup=1, check=True, persistent=True)
    assert {r["algorithm"] for r in rows} >= {"mpi", "mpi-persistent", "auto"}
    wrong = [(r["collective"], r["algorithm"], r["bytes"]) for r in rows
             if r.get("wrong") or r.get("inplace_wrong")]
    assert not wrong, f"wrong results: {wrong}"
