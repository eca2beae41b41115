"""The compiled fast path for repeat small calls: same results as the checked path, and every
refusal of bad input kept, before any message, once a call shape has been remembered.

Every rank makes the same calls, so a refused call that wrongly sent a message would leave
the ranks out of step and the next good call would fail or time out.
"""

import numpy as np
import pytest

import collectives as cl

pytestmark = pytest.mark.mpi(ranks=[1, 2, 3])


def _fast(comm, collective):
    return len(comm._fast[collective])


def _data(rank, n, dtype=np.float32):
    return (np.arange(n) % 7 + rank).astype(dtype)


@pytest.mark.parametrize("algorithm", ["mpi", "auto"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.float16])
def test_repeat_allreduce_gives_the_checked_paths_bits(comm, algorithm, dtype):
    x = _data(comm.rank, 6, dtype)
    everyone = [_data(r, 6, dtype) for r in range(comm.size)]
    expect = sum(everyone).astype(dtype)
    first = comm.allreduce(x, algorithm=algorithm)          # checked path, remembered
    if algorithm == "mpi" or comm.size > 1:   # on one rank "auto" is the default schedule
        assert _fast(comm, "allreduce") >= 1
    for _ in range(3):                                      # fast path: new output
        again = comm.allreduce(x, algorithm=algorithm)
        assert again is not first and again.dtype == x.dtype and again.shape == x.shape
        assert np.array_equal(again.view(np.uint8), first.view(np.uint8))
    out = np.empty_like(x)
    for _ in range(3):                                      # preallocated output
        assert comm.allreduce(x, out=out, algorithm=algorithm) is out
        assert np.array_equal(out, expect)
    y = x.copy()
    assert comm.allreduce(y, out=y, algorithm=algorithm) is y   # in place
    y[:] = x
    assert comm.allreduce(y, out=y, algorithm=algorithm) is y
    assert np.array_equal(y, expect)
    for op in ("max", "min"):
        for _ in range(2):
            got = comm.allreduce(x, op=op, out=out, algorithm=algorithm)
            assert np.array_equal(got, getattr(np, op)(everyone, axis=0))


def test_repeat_alltoall_and_2d_shapes(comm):
    p = comm.size
    x = (np.arange(4 * p, dtype=np.int64) + 100 * comm.rank).reshape(2 * p, 2)
    out = np.empty_like(x)
    for _ in range(3):
        assert comm.alltoall(x, out=out, algorithm="mpi") is out
        for i in range(p):
            assert np.array_equal(out[2 * i:2 * i + 2], x[2 * comm.rank:2 * comm.rank + 2] - 100 * comm.rank
                                  + 100 * i)
    assert _fast(comm, "alltoall") >= 1
    # in place is the checked path's (it copies the blocks still to be sent): same answer
    y = x.copy()
    assert comm.alltoall(y, out=y, algorithm="mpi") is y
    assert np.array_equal(y, out)
    y = x.copy()
    assert comm.alltoall(y, out=y, algorithm="mpi") is y
    assert np.array_equal(y, out)


def test_refusals_stay_after_the_shape_was_remembered(comm):
    x = np.ones(8, dtype=np.float32)
    out = np.empty(8, dtype=np.float32)
    for _ in range(2):
        comm.allreduce(x, out=out, algorithm="mpi")
        comm.allreduce(x, algorithm="mpi")
        comm.allreduce(out, out=out, algorithm="mpi")
    raw = np.zeros(4 * 8 + 1, dtype=np.uint8)
    misaligned = raw[1:].view(np.float32)
    with pytest.raises(cl.InvalidArgument, match="misaligned"):
        comm.allreduce(misaligned, out=out, algorithm="mpi")
    with pytest.raises(cl.InvalidArgument, match="not C-contiguous"):
        comm.allreduce(np.ones((8, 2), dtype=np.float32)[:, 0], out=out, algorithm="mpi")
    ro = np.empty(8, dtype=np.float32)
    ro.flags.writeable = False
    with pytest.raises(cl.InvalidArgument, match="read-only"):
        comm.allreduce(x, out=ro, algorithm="mpi")
    rx = x.copy()
    rx.flags.writeable = False
    with pytest.raises(cl.InvalidArgument, match="read-only"):
        comm.allreduce(rx, out=rx, algorithm="mpi")
    with pytest.raises(cl.InvalidType, match="out has dtype int32"):
        comm.allreduce(x, out=np.empty(8, dtype=np.int32), algorithm="mpi")
    with pytest.raises(cl.InvalidArgument, match=r"out has shape \(2, 4\)"):
        comm.allreduce(x, out=np.empty((2, 4), dtype=np.float32), algorithm="mpi")
    big = np.ones(16, dtype=np.float32)
    with pytest.raises(cl.InvalidArgument, match="partially overlaps"):
        comm.allreduce(big[:8], out=big[4:12], algorithm="mpi")
    with pytest.raises(cl.InvalidArgument, match="positive number of seconds"):
        comm.allreduce(x, out=out, algorithm="mpi", timeout=-1.0)
    with pytest.raises(cl.InvalidArgument, match="positive number of seconds"):
        comm.allreduce(x, out=out, algorithm="mpi", timeout=float("nan"))
    with pytest.raises(cl.InvalidType, match="number of seconds"):
        comm.allreduce(x, out=out, algorithm="mpi", timeout="soon")
    with pytest.raises(cl.InvalidArgument, match="unknown op 'SUM2'"):
        comm.allreduce(x, op="SUM2", out=out, algorithm="mpi")
    with pytest.raises(cl.InvalidArgument, match="unknown allreduce algorithm 'mpii'"):
        comm.allreduce(x, out=out, algorithm="mpii")
    # the same shape still works, and a good deadline is taken
    assert np.all(comm.allreduce(x, out=out, algorithm="mpi", timeout=30) == comm.size)
    assert np.all(comm.allreduce(x, out=out, algorithm="mpi", timeout=30.0) == comm.size)


def test_a_changed_communicator_is_refused(comm):
    x = np.ones(4, dtype=np.float64)
    for _ in range(2):
        comm.allreduce(x, algorithm="mpi")
    dup = cl.Communicator(comm.mpi_comm)
    for _ in range(2):
        dup.allreduce(x, algorithm="mpi")
        dup.alltoall(np.ones(2 * dup.size), algorithm="mpi")
    dup.free()
    with pytest.raises(cl.CommunicatorBroken, match="freed"):
        dup.allreduce(x, algorithm="mpi")
    with pytest.raises(cl.CommunicatorBroken, match="freed"):
        dup.alltoall(np.ones(2 * comm.size), algorithm="mpi")
    other = cl.Communicator(comm.mpi_comm)
    for _ in range(2):
        other.allreduce(x, algorithm="mpi")
    other._broken = "a test broke it"
    with pytest.raises(cl.CommunicatorBroken, match="a test broke it"):
        other.allreduce(x, algorithm="mpi")
    other._broken = None
    other.free()
    assert np.all(comm.allreduce(x, algorithm="mpi") == comm.size)


def test_validate_still_checks_every_call(comm):
    v = cl.Communicator(comm.mpi_comm, validate=True)
    x = np.ones(4, dtype=np.float32)
    for _ in range(2):
        v.allreduce(x, algorithm="mpi")
    assert len(v._fast["allreduce"]) == 0
    v.free()


def test_avg_is_divided_on_every_call(comm):
    x = np.full(4, 2.0, dtype=np.float32)
    out = np.empty_like(x)
    for _ in range(3):
        assert np.all(comm.allreduce(x, op="avg", out=out, algorithm="mpi") == 2.0)
