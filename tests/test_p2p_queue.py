"""Point-to-point requests with several receives queued at once (the pattern of pipeline
schedules such as 1F1B): results, matching order, cl.wait_all over them, and the failures
(deadline, a message that does not fit) of one request among several."""

import numpy as np
import pytest

import collectives as cl
from collectives import CollectiveTimeout, InvalidArgument, InvalidType, MismatchError

pytestmark = pytest.mark.mpi(ranks=[2, 3, 4])


def test_one_f_one_b_pattern_two_irecvs_two_isends(comm):
    """Each stage keeps a forward and a backward receive posted beside its two sends."""
    p, r = comm.size, comm.rank
    nxt, prv = (r + 1) % p, (r - 1) % p
    fwd_in = np.zeros(64, dtype=np.float32)
    bwd_in = np.zeros(64, dtype=np.float32)
    for step in range(6):
        reqs = [comm.irecv(fwd_in, prv, tag=1), comm.irecv(bwd_in, nxt, tag=2),
                comm.isend(np.full(64, 100 * r + step, dtype=np.float32), nxt, tag=1),
                comm.isend(np.full(64, -100 * r - step, dtype=np.float32), prv, tag=2)]
        got = cl.wait_all(reqs)
        assert got[0] == (prv, 1, 64) and got[1] == (nxt, 2, 64)
        assert got[2] is None and got[3] is None
        assert (fwd_in == 100 * prv + step).all() and (bwd_in == -100 * nxt - step).all()
        assert all(req.test() for req in reqs)


def test_queued_receives_waited_out_of_order_with_any_source(comm):
    p, r = comm.size, comm.rank
    if r == 0:
        outs = [np.zeros(3, dtype=np.int64) for _ in range(2 * (p - 1))]
        reqs = [comm.irecv(o, "any", tag=4) for o in outs[:p - 1]]
        reqs += [comm.irecv(o, src, tag=5) for src, o in zip(range(1, p), outs[p - 1:])]
        for req in reversed(reqs):   # the last posted first: the others still match in turn
            req.wait()
        any_sources = sorted(req.status.source for req in reqs[:p - 1])
        assert any_sources == list(range(1, p))
        for req, o in zip(reqs, outs):
            assert o.tolist() == [req.status.source * 10 + req.status.tag] * 3
    else:
        comm.send(np.full(3, 10 * r + 5, dtype=np.int64), 0, tag=5)
        comm.send(np.full(3, 10 * r + 4, dtype=np.int64), 0, tag=4)


def test_same_source_and_tag_match_in_posting_order(comm):
    if comm.rank == 0:
        for k in range(4):
            comm.send(np.full(2, k, dtype=np.int32), 1, tag=3)
    elif comm.rank == 1:
        outs = [np.zeros(2, dtype=np.int32) for _ in range(4)]
        reqs = [comm.irecv(outs[0], "any", tag=3), comm.irecv(outs[1], 0, tag=3),
                comm.irecv(outs[2], "any", tag=3), comm.irecv(outs[3], 0, tag=3)]
        statuses = cl.wait_all(reqs[::-1])[::-1]
        assert [int(o[0]) for o in outs] == [0, 1, 2, 3]
        assert [s.source for s in statuses] == [0, 0, 0, 0]
    comm.barrier()


def test_blocking_recv_behind_queued_receive_and_send_to_self(comm):
    r = comm.rank
    first = np.zeros(4)
    queued = comm.irecv(first, r, tag=8)      # not matched yet: nothing sent to self so far
    mine = comm.isend(np.full(4, 2.0), r, tag=9)
    out = np.zeros(4)
    assert comm.recv(out, r, tag=9) == (r, 9, 4)
    mine.wait()
    comm.send(np.full(4, 1.0), r, tag=8)       # a blocking send with a queued receive of its own
    assert queued.wait() == (r, 8, 4)
    assert (first == 1).all() and (out == 2).all()


def test_one_missing_sender_among_queued_receives_times_out(comm):
    if comm.rank == 1:
        late = comm.irecv(np.zeros(2), 0, tag=21)
        fine = comm.irecv(np.zeros(2), 0, tag=20)
        with pytest.raises(CollectiveTimeout) as info:
            late.wait(timeout=0.3)
        assert "rank 0" in str(info.value) and "tag 21" in str(info.value)
        assert info.value.peers == (0,)
        assert fine.wait() == (0, 20, 2)     # the other receive was not disturbed
        comm.send(np.ones(1), 0, tag=22)      # an unmatched receive posts nothing: still usable
    elif comm.rank == 0:
        comm.send(np.ones(2), 1, tag=20)
        out = np.zeros(1)
        comm.recv(out, 1, tag=22)
        assert out[0] == 1
    comm.barrier()
    assert comm.allreduce(np.ones(2)).tolist() == [comm.size] * 2


def test_wait_all_times_out_naming_the_receive_left(comm):
    if comm.rank == 0:
        got = np.zeros(1)
        reqs = [comm.irecv(got, 1, tag=31), comm.irecv(np.zeros(1), 1, tag=32)]
        with pytest.raises(CollectiveTimeout, match="tag 32"):
            cl.wait_all(reqs, timeout=0.3)
        assert reqs[0].test() and got[0] == 7
    elif comm.rank == 1:
        comm.send(np.full(1, 7.0), 0, tag=31)
    comm.barrier()


def test_message_that_does_not_fit_fails_only_its_own_request(comm):
    if comm.rank == 0:
        comm.send(np.zeros(8, dtype=np.float64), 1, tag=41)   # too long for its receive
        comm.send(np.arange(3, dtype=np.float64), 1, tag=42)
    elif comm.rank == 1:
        small = comm.irecv(np.zeros(2, dtype=np.float64), 0, tag=41)
        out = np.zeros(3)
        good = comm.irecv(out, 0, tag=42)
        assert good.wait() == (0, 42, 3)
        assert out.tolist() == [0.0, 1.0, 2.0]
        with pytest.raises(MismatchError, match="64 bytes"):
            small.wait()
    comm.barrier()
    assert comm.allreduce(np.ones(2)).tolist() == [comm.size] * 2


def test_wait_all_mixes_collective_and_p2p_requests(comm):
    p, r = comm.size, comm.rank
    out = np.zeros(5, dtype=np.float64)
    reqs = [comm.irecv(out, (r - 1) % p, tag=6),
            comm.iallreduce(np.full(5, r, dtype=np.float64), algorithm="ring"),
            comm.isend(np.full(5, r, dtype=np.float64), (r + 1) % p, tag=6)]
    status, total, sent = cl.wait_all(reqs)
    assert status.source == (r - 1) % p and sent is None
    assert (out == (r - 1) % p).all()
    assert (total == p * (p - 1) / 2).all()


def test_refusals_stay_after_good_queued_calls(comm):
    r = comm.rank
    x = np.ones(3)
    for _ in range(3):   # good calls first, so the compiled path has seen this shape
        req = comm.irecv(np.zeros(3), r, tag=1)
        comm.isend(x, r, tag=1).wait()
        req.wait()
    readonly = np.zeros(3)
    readonly.setflags(write=False)
    with pytest.raises(InvalidArgument):
        comm.irecv(readonly, r)
    for bad in (-1, comm.size, 1.0, "0"):
        with pytest.raises((InvalidArgument, InvalidType)):
            comm.isend(x, bad)
        with pytest.raises((InvalidArgument, InvalidType)):
            comm.irecv(np.zeros(3), bad)
    with pytest.raises((InvalidArgument, InvalidType)):
        comm.irecv(np.zeros(3), r, tag=-1)
    with pytest.raises(InvalidType):
        cl.wait_all([comm.isend(x, r, tag=2), np.ones(1)])
    with pytest.raises(InvalidArgument):
        cl.wait_all([comm.irecv(np.zeros(3), r, tag=2)], timeout=-1)
    # the two requests left above are still usable: the queued receive takes the first message
    comm.send(x, r, tag=2)
    out = np.zeros(3)
    assert comm.recv(out, r, tag=2) == (r, 2, 3)
    comm.barrier()
    assert comm.allreduce(np.ones(1)).tolist() == [comm.size]


def test_a_request_listed_twice_is_completed_once(comm):
    """cl.wait_all([s, s]): MPI frees a request at its completion, so it may be tested once only."""
    p, r = comm.size, comm.rank
    nxt, prv = (r + 1) % p, (r - 1) % p
    a, b = np.zeros(8, dtype=np.int64), np.zeros(8, dtype=np.int64)
    for step in range(3):
        ra, rb = comm.irecv(a, prv, tag=6), comm.irecv(b, prv, tag=7)
        sa = comm.isend(np.full(8, 10 * r + step, dtype=np.int64), nxt, tag=6)
        sb = comm.isend(np.full(8, -10 * r - step, dtype=np.int64), nxt, tag=7)
        got = cl.wait_all([sa, ra, sa, rb, ra, sb, sb])
        assert got[1] == got[4] == (prv, 6, 8) and got[3] == (prv, 7, 8)
        assert got[0] is got[2] is got[5] is got[6] is None
        assert (a == 10 * prv + step).all() and (b == -10 * prv - step).all()
    comm.barrier()


def test_a_request_of_a_freed_communicator_refuses_to_wait(comm):
    """Waiting after free() raises the library's error instead of touching a freed communicator."""
    from mpi4py import MPI

    c = cl.Communicator(MPI.COMM_WORLD, timeout=30.0)
    queued = c.irecv(np.zeros(4), (comm.rank + 1) % comm.size, tag=8)   # only queued: nothing posted
    c.free()
    for attempt in (queued.wait, queued.test, lambda: cl.wait_all([queued])):
        with pytest.raises(cl.CommunicatorBroken, match="freed"):
            attempt()
    comm.barrier()
