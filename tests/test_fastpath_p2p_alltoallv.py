"""The compiled fast paths of blocking send/recv and of alltoallv with remembered counts: the
checked path's results, and every refusal of bad input kept (same exception types, before
any message) once a call shape has been seen.

Every rank makes the same calls, so a refused call that wrongly sent a message would leave
the ranks out of step and the next good call would fail or time out.
"""

import numpy as np
import pytest

import collectives as cl
from collectives import InvalidArgument, InvalidType, MismatchError

pytestmark = pytest.mark.mpi(ranks=[1, 2, 3])


def _ring(comm, x, out, tag=0):
    """Send x to the next rank and receive the previous rank's into out (no deadlock: even
    ranks send first)."""
    p, r = comm.size, comm.rank
    if p == 1:
        return None
    if r % 2 == 0:
        comm.send(x, (r + 1) % p, tag=tag)
        status = comm.recv(out, (r - 1) % p, tag=tag)
    else:
        status = comm.recv(out, (r - 1) % p, tag=tag)
        comm.send(x, (r + 1) % p, tag=tag)
    return status


@pytest.mark.mpi(ranks=[2, 3])
def test_repeat_send_recv_deliver_and_report_status(comm):
    p, r = comm.size, comm.rank
    out = np.empty(5, dtype=np.float32)
    for i in range(5):
        x = np.full(5, 10 * r + i, dtype=np.float32)
        status = _ring(comm, x, out, tag=3)
        assert status == ((r - 1) % p, 3, 5) and int(status) == (r - 1) % p
        assert isinstance(status, cl.p2p.RecvStatus)
        assert np.all(out == 10 * ((r - 1) % p) + i)
    # any source, and a message shorter than out is counted
    if r == 0:
        for _ in range(p - 1):
            status = comm.recv(out, "any", tag=4)
            assert out[0] == status.source and status.count == 2
    else:
        comm.send(np.full(2, r, dtype=np.float32), 0, tag=4)
    comm.barrier()


def test_send_recv_refusals_stay_after_good_calls(comm):
    p = comm.size
    x = np.zeros(4)
    out = np.zeros(4)
    for _ in range(2):
        _ring(comm, x, out)
    for bad in (-1, p, 1.0, "1", True, np.int64(p)):
        with pytest.raises((InvalidArgument, InvalidType)):
            comm.send(x, bad)
        with pytest.raises((InvalidArgument, InvalidType)):
            comm.recv(out, bad)
    for tag in (-1, 2 ** 40, 1.5, True, np.int32(-2)):
        with pytest.raises((InvalidArgument, InvalidType)):
            comm.send(x, 0, tag=tag)
        with pytest.raises((InvalidArgument, InvalidType)):
            comm.recv(out, 0, tag=tag)
    with pytest.raises(InvalidType):
        comm.recv(out, "anyone")
    readonly = np.zeros(4)
    readonly.setflags(write=False)
    with pytest.raises(InvalidArgument, match="read-only"):
        comm.recv(readonly, 0)
    with pytest.raises(InvalidArgument, match="not C-contiguous"):
        comm.send(np.zeros((4, 2))[:, 0], 0)
    with pytest.raises(InvalidArgument, match="not C-contiguous"):
        comm.recv(np.zeros((4, 2))[:, 0], 0)
    with pytest.raises(InvalidType):
        comm.send(np.array([object()]), 0)
    for timeout in (-1, 0, float("nan")):
        with pytest.raises(InvalidArgument):
            comm.send(x, 0, timeout=timeout)
        with pytest.raises(InvalidArgument):
            comm.recv(out, 0, timeout=timeout)
    with pytest.raises(InvalidType):
        comm.recv(out, 0, timeout="soon")
    comm.barrier()
    if p > 1:
        # a message that does not fit is still a clear error on the receiver after good calls
        if comm.rank == 0:
            comm.send(np.zeros(8), 1, tag=11)
            comm.send(np.zeros(3, dtype=np.uint8), 1, tag=12)
        elif comm.rank == 1:
            with pytest.raises(MismatchError, match="64 bytes"):
                comm.recv(np.zeros(4), 0, tag=11)
            with pytest.raises(MismatchError, match="whole number"):
                comm.recv(np.zeros(4, dtype=np.float32), 0, tag=12)
        comm.barrier()
    assert comm.allreduce(np.ones(3)).tolist() == [p] * 3


@pytest.mark.mpi(ranks=[2])
def test_a_missing_sender_still_times_out_naming_peer_and_tag(comm):
    out = np.zeros(2)
    _ring(comm, np.ones(2), out, tag=5)
    if comm.rank == 0:
        with pytest.raises(cl.CollectiveTimeout, match="rank 1.*tag 9"):
            comm.recv(out, 1, tag=9, timeout=0.3)
    comm.barrier()


def _counts(comm, salt):
    rng = np.random.default_rng(salt)
    counts = rng.integers(0, 4, size=(comm.size, comm.size))
    counts[:, 0] = 0 if comm.size > 1 else counts[:, 0]   # rank 0 receives nothing
    return counts[comm.rank].astype(np.int64), counts[:, comm.rank].astype(np.int64)


def _expected(comm, sc, rc, x):
    """What alltoallv must give: each rank's block for this one, through the checked path of
    a fresh Communicator (nothing remembered there)."""
    fresh = cl.Communicator(comm.mpi_comm)
    try:
        return fresh.alltoallv(x, sc, rc, algorithm="mpi")
    finally:
        fresh.free()


@pytest.mark.parametrize("algorithm", ["mpi", "pairwise", "auto"])
def test_repeat_alltoallv_follows_its_counts(comm, algorithm):
    sc, rc = _counts(comm, 1)
    x = (np.arange(int(sc.sum()) * 2, dtype=np.float64) + 100 * comm.rank).reshape(-1, 2)
    want = _expected(comm, sc, rc, x)
    out = np.empty_like(want)
    for counts in ((sc, rc), (sc.tolist(), rc.tolist()), (tuple(sc.tolist()), tuple(rc.tolist()))):
        for _ in range(3):
            assert comm.alltoallv(x, *counts, out=out, algorithm=algorithm) is out
            np.testing.assert_array_equal(out, want)
            np.testing.assert_array_equal(comm.alltoallv(x, *counts, algorithm=algorithm), want)
    assert len(comm._fast_alltoallv) >= 1
    # counts changed in place by the caller: the call follows the new counts, not the old ones
    sc2, rc2 = _counts(comm, 2)
    x2 = np.arange(int(sc2.sum()) * 2, dtype=np.float64).reshape(-1, 2) - comm.rank
    want2 = _expected(comm, sc2, rc2, x2)
    sc[:] = sc2
    rc[:] = rc2
    np.testing.assert_array_equal(comm.alltoallv(x2, sc, rc, algorithm=algorithm), want2)


def test_alltoallv_refusals_stay_after_the_counts_were_remembered(comm):
    p = comm.size
    sc = np.full(p, 2, dtype=np.int64)
    x = np.ones(2 * p, dtype=np.float32)
    out = np.empty(2 * p, dtype=np.float32)
    for _ in range(3):
        comm.alltoallv(x, sc, sc, out=out, algorithm="mpi")
        comm.alltoallv(x, sc.tolist(), sc.tolist(), out=out, algorithm="mpi")
    with pytest.raises(InvalidArgument):
        comm.alltoallv(x, [2.0] * p, [2] * p, out=out, algorithm="mpi")
    with pytest.raises(InvalidArgument):
        comm.alltoallv(x, [2] * p, [2.5] * p, out=out, algorithm="mpi")
    with pytest.raises(InvalidArgument):
        comm.alltoallv(x, sc.astype(np.float64), sc, out=out, algorithm="mpi")
    with pytest.raises(InvalidArgument, match="send_counts sum"):
        comm.alltoallv(np.ones(2 * p + 1, dtype=np.float32), sc, sc, out=out, algorithm="mpi")
    with pytest.raises(InvalidType, match="out has dtype"):
        comm.alltoallv(x, sc, sc, out=np.empty(2 * p, dtype=np.float64), algorithm="mpi")
    with pytest.raises(InvalidArgument, match="out has shape"):
        comm.alltoallv(x, sc, sc, out=np.empty(2 * p + 1, dtype=np.float32), algorithm="mpi")
    ro = np.empty(2 * p, dtype=np.float32)
    ro.flags.writeable = False
    with pytest.raises(InvalidArgument, match="read-only"):
        comm.alltoallv(x, sc, sc, out=ro, algorithm="mpi")
    with pytest.raises(InvalidArgument, match="overlaps"):
        comm.alltoallv(x, sc, sc, out=x, algorithm="mpi")
    raw = np.zeros(4 * 2 * p + 1, dtype=np.uint8)
    with pytest.raises(InvalidArgument, match="misaligned"):
        comm.alltoallv(raw[1:].view(np.float32), sc, sc, out=out, algorithm="mpi")
    with pytest.raises(InvalidArgument, match="positive number of seconds"):
        comm.alltoallv(x, sc, sc, out=out, algorithm="mpi", timeout=-1)
    with pytest.raises(InvalidArgument):
        comm.alltoallv(x, sc, sc, out=out, algorithm="no-such-algorithm")
    dup = cl.Communicator(comm.mpi_comm)
    for _ in range(2):
        dup.alltoallv(x, sc, sc, out=out, algorithm="mpi")
    dup.free()
    with pytest.raises(cl.CommunicatorBroken, match="freed"):
        dup.alltoallv(x, sc, sc, out=out, algorithm="mpi")
    # nothing was sent by the refused calls: the next one matches up on every rank
    assert np.all(comm.alltoallv(x, sc, sc, out=out, algorithm="mpi") == 1)
