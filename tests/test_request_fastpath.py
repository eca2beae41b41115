"""The non-blocking fast path: a repeat ``iallreduce``/``ialltoall`` of a remembered shape starts
in compiled code on a pooled execution. It must give the checked request's bits, refuse every
bad input the checked path refuses (same exception types, before any message) after the shape
was remembered, and never let two requests in flight share an execution.

Every rank makes the same calls, so a refused call that wrongly sent a message would leave
the ranks out of step and the next good call would fail or time out.
"""

import gc
import warnings

import numpy as np
import pytest

import collectives as cl
from collectives._executor import FastRequest

pytestmark = pytest.mark.mpi(ranks=[1, 2, 3])


def _data(rank, n, dtype=np.float32):
    return (np.arange(n) % 7 + rank).astype(dtype)


def _warm(comm, x, out=None, collective="allreduce"):
    """Run the call twice: the first (checked) call remembers its shape, the second is fast."""
    start = getattr(comm, "i" + collective)
    for _ in range(2):
        start(x, out=out, algorithm="mpi").wait()
    return start(x, out=out, algorithm="mpi")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.float16])
def test_fast_requests_give_the_blocking_calls_bits(comm, dtype):
    x = _data(comm.rank, 37, dtype)
    want = comm.allreduce(x, algorithm="mpi")
    for out in (None, np.empty_like(x)):
        req = _warm(comm, x, out=out)
        assert isinstance(req, FastRequest) and isinstance(req, cl.Request)
        got = req.wait()
        assert got is out if out is not None else got is not x
        assert req.done and req.test() and req.wait() is got
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    y = x.copy()
    req = _warm(comm, y, out=y)
    assert req.wait() is y
    # the third in-place call reduced the result of the second: compare with the same chain
    z = x.copy()
    for _ in range(3):
        comm.allreduce(z, out=z, algorithm="mpi")
    np.testing.assert_array_equal(y.view(np.uint8), z.view(np.uint8))
    blocks = _data(comm.rank, 3 * comm.size, dtype)
    req = _warm(comm, blocks, collective="alltoall")
    assert isinstance(req, FastRequest)
    np.testing.assert_array_equal(req.wait(), comm.alltoall(blocks, algorithm="mpi"))


def test_two_requests_of_one_shape_never_share_an_execution(comm):
    x1 = _data(comm.rank, 16)
    x2 = _data(comm.rank + 10, 16)
    o1, o2, o3 = np.empty_like(x1), np.empty_like(x2), np.empty_like(x1)
    _warm(comm, x1, out=o1).wait()
    reqs = [comm.iallreduce(x, out=o, algorithm="mpi") for x, o in ((x1, o1), (x2, o2), (x1, o3))]
    live = [r._execution for r in reqs if not r.done]
    assert len({id(e) for e in live}) == len(live)
    assert all(isinstance(r, FastRequest) for r in reqs)
    # completed in reverse order: each result is its own call's
    for r in reversed(reqs[:2]):
        r.wait()
    reqs[2].wait()
    want2 = comm.allreduce(x2, algorithm="mpi")
    np.testing.assert_array_equal(o1, comm.allreduce(x1, algorithm="mpi"))
    np.testing.assert_array_equal(o2, want2)
    np.testing.assert_array_equal(o3, o1)
    # many of one shape at once, waited together
    outs = [np.empty_like(x1) for _ in range(8)]
    reqs = [comm.iallreduce(x2, out=o, algorithm="mpi") for o in outs]
    assert cl.wait_all(reqs) == outs
    for o in outs:
        np.testing.assert_array_equal(o, want2)
    assert cl.test_all(reqs)


def test_refusals_stay_after_the_shape_was_remembered(comm):
    x = np.ones(8, dtype=np.float32)
    out = np.empty(8, dtype=np.float32)
    for _ in range(2):
        comm.iallreduce(x, out=out, algorithm="mpi").wait()
        comm.iallreduce(x, algorithm="mpi").wait()
        comm.iallreduce(out, out=out, algorithm="mpi").wait()
    assert isinstance(comm.iallreduce(x, out=out, algorithm="mpi"), FastRequest)
    comm.barrier()
    raw = np.zeros(4 * 8 + 1, dtype=np.uint8)
    misaligned = raw[1:].view(np.float32)
    with pytest.raises(cl.InvalidArgument, match="misaligned"):
        comm.iallreduce(misaligned, out=out, algorithm="mpi")
    with pytest.raises(cl.InvalidArgument, match="not C-contiguous"):
        comm.iallreduce(np.ones((8, 2), dtype=np.float32)[:, 0], out=out, algorithm="mpi")
    ro = np.empty(8, dtype=np.float32)
    ro.flags.writeable = False
    with pytest.raises(cl.InvalidArgument, match="read-only"):
        comm.iallreduce(x, out=ro, algorithm="mpi")
    rx = x.copy()
    rx.flags.writeable = False
    with pytest.raises(cl.InvalidArgument, match="read-only"):
        comm.iallreduce(rx, out=rx, algorithm="mpi")
    with pytest.raises(cl.InvalidType, match="out has dtype int32"):
        comm.iallreduce(x, out=np.empty(8, dtype=np.int32), algorithm="mpi")
    with pytest.raises(cl.InvalidArgument, match=r"out has shape \(2, 4\)"):
        comm.iallreduce(x, out=np.empty((2, 4), dtype=np.float32), algorithm="mpi")
    big = np.ones(16, dtype=np.float32)
    with pytest.raises(cl.InvalidArgument, match="partially overlaps"):
        comm.iallreduce(big[:8], out=big[4:12], algorithm="mpi")
    with pytest.raises(cl.InvalidArgument, match="unknown op 'SUM2'"):
        comm.iallreduce(x, op="SUM2", out=out, algorithm="mpi")
    with pytest.raises(cl.InvalidType):
        comm.iallreduce(x, op=3, out=out, algorithm="mpi")
    with pytest.raises(cl.InvalidArgument, match="unknown allreduce algorithm 'mpii'"):
        comm.iallreduce(x, out=out, algorithm="mpii")
    if comm.size > 1:
        with pytest.raises(cl.InvalidArgument, match="equal blocks"):
            comm.ialltoall(np.ones(comm.size * 2 + 1, dtype=np.float32), algorithm="mpi")
    # a bad wait timeout is refused by the fast request as by the checked one (a request
    # already complete returns its result whatever the timeout, as the checked one does)
    req = comm.iallreduce(x, out=out, algorithm="mpi")
    if not req.done:
        with pytest.raises(cl.InvalidArgument, match="positive number of seconds"):
            req.wait(timeout=-1.0)
        with pytest.raises(cl.InvalidType, match="number of seconds"):
            req.wait(timeout="soon")
    assert req.wait(timeout=30) is out
    # nothing was sent by the refused calls: the next ones match up on every rank
    assert np.all(comm.iallreduce(x, out=out, algorithm="mpi").wait() == comm.size)


def test_a_freed_or_broken_communicator_is_refused(comm):
    x = np.ones(4, dtype=np.float64)
    dup = cl.Communicator(comm.mpi_comm)
    _warm(dup, x).wait()
    dup._broken = "a test broke it"
    with pytest.raises(cl.CommunicatorBroken, match="a test broke it"):
        dup.iallreduce(x, algorithm="mpi")
    dup._broken = None
    dup.free()
    with pytest.raises(cl.CommunicatorBroken, match="freed"):
        dup.iallreduce(x, algorithm="mpi")
    v = cl.Communicator(comm.mpi_comm, validate=True)
    for _ in range(3):   # validate: every call is the checked one, with its fingerprint
        assert not isinstance(v.iallreduce(x, algorithm="mpi"), FastRequest) or comm.size == 1
    v.free()
    assert np.all(comm.allreduce(x, algorithm="mpi") == comm.size)


def test_avg_and_in_place_alltoall_stay_on_the_checked_path(comm):
    x = _data(comm.rank, 8, np.float32)
    for _ in range(3):
        req = comm.iallreduce(x, op="avg", algorithm="mpi")
        assert not isinstance(req, FastRequest)
        np.testing.assert_array_equal(req.wait(), comm.allreduce(x, op="avg", algorithm="mpi"))
    blocks = _data(comm.rank, 2 * comm.size)
    want = comm.alltoall(blocks, algorithm="mpi")
    for _ in range(3):
        y = blocks.copy()
        req = comm.ialltoall(y, out=y, algorithm="mpi")
        assert not isinstance(req, FastRequest)
        np.testing.assert_array_equal(req.wait(), want)


def test_a_dropped_fast_request_is_waited_for_with_a_warning(comm):
    x = np.ones(64, dtype=np.float64)
    _warm(comm, x).wait()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(50):   # some are still in flight when dropped on more than one rank
            comm.iallreduce(x, algorithm="mpi")
        gc.collect()
    assert all(issubclass(w.category, ResourceWarning) for w in seen)
    assert np.all(comm.allreduce(x, algorithm="mpi") == comm.size)


@pytest.mark.mpi(ranks=[2])
def test_a_fast_request_that_cannot_complete_times_out_naming_its_collective(comm):
    from mpi4py import MPI

    c = cl.Communicator(MPI.COMM_WORLD, timeout=None)
    x = np.ones(4)
    _warm(c, x).wait()
    if comm.rank == 0:
        req = c.iallreduce(x, algorithm="mpi")
        assert isinstance(req, FastRequest)
        with pytest.raises(cl.CollectiveTimeout, match="allreduce"):
            req.wait(timeout=0.3)
        with pytest.raises(cl.CollectiveTimeout):   # a failed request keeps failing
            req.test()
        with pytest.raises(cl.CommunicatorBroken):
            c.iallreduce(x, algorithm="mpi")
    comm.barrier()
