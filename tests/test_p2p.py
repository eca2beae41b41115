"""Point-to-point: send, recv, sendrecv, isend/irecv, any-source, zero-length, deadlines, bad input."""

import numpy as np
import pytest

from collectives import CollectiveTimeout, InvalidArgument, InvalidType, MismatchError

pytestmark = pytest.mark.mpi(ranks=[2, 3, 4])


def test_send_recv_every_pair(comm):
    p, r = comm.size, comm.rank
    for src in range(p):
        for dst in range(p):
            if src == dst:
                continue
            if r == src:
                comm.send(np.arange(1000, dtype=np.float64) + 10 * src + dst, dst, tag=src)
            elif r == dst:
                out = np.zeros(1000, dtype=np.float64)
                status = comm.recv(out, src, tag=src)
                assert (status.source, status.tag, status.count) == (src, src, 1000)
                assert int(status) == src
                np.testing.assert_array_equal(out, np.arange(1000) + 10 * src + dst)
        comm.barrier()


def test_large_message_and_zero_length(comm):
    r = comm.rank
    big = np.arange(3 << 18, dtype=np.float32)          # 3 MiB: the rendezvous path
    if r == 0:
        comm.send(big, 1, tag=1)
        comm.send(np.zeros(0, dtype=np.int32), 1, tag=2)
    elif r == 1:
        out = np.empty_like(big)
        comm.recv(out, 0, tag=1)
        np.testing.assert_array_equal(out, big)
        status = comm.recv(np.zeros(0, dtype=np.int32), 0, tag=2)
        assert status.count == 0 and status.source == 0


def test_any_source_gets_every_sender(comm):
    p, r = comm.size, comm.rank
    if r == 0:
        seen = set()
        for _ in range(p - 1):
            out = np.zeros(4, dtype=np.int64)
            status = comm.recv(out, "any", tag=5)
            assert out.tolist() == [status.source] * 4
            seen.add(status.source)
        assert seen == set(range(1, p))
    else:
        comm.send(np.full(4, r, dtype=np.int64), 0, tag=5)


def test_shorter_message_is_allowed_and_counted(comm):
    if comm.rank == 0:
        comm.send(np.arange(3, dtype=np.int16), 1)
    elif comm.rank == 1:
        out = np.full(8, -1, dtype=np.int16)
        assert comm.recv(out, 0).count == 3
        assert out.tolist() == [0, 1, 2, -1, -1, -1, -1, -1]


def test_nonblocking_many_in_flight_any_order(comm):
    p, r = comm.size, comm.rank
    right, left = (r + 1) % p, (r - 1) % p
    n = 8
    outs = [np.zeros(100 + k, dtype=np.int32) for k in range(n)]
    recvs = [comm.irecv(outs[k], left, tag=k) for k in range(n)]
    sends = [comm.isend(np.full(100 + k, 1000 * left + k, dtype=np.int32) * 0
                        + 1000 * r + k, right, tag=k) for k in range(n)]
    for req in reversed(recvs):          # completed in the reverse order of posting
        req.wait()
    for req in sends:
        req.wait()
        assert req.test()
    for k in range(n):
        assert (outs[k] == 1000 * left + k).all()


def test_same_tag_messages_arrive_in_order(comm):
    if comm.rank == 0:
        for k in range(5):
            comm.isend(np.full(2, k, dtype=np.int64), 1, tag=9).wait()
    elif comm.rank == 1:
        outs = [np.zeros(2, dtype=np.int64) for _ in range(5)]
        reqs = [comm.irecv(o, 0, tag=9) for o in outs]
        for req in reqs[::-1]:
            req.wait()
        assert [int(o[0]) for o in outs] == list(range(5))


def test_sendrecv_ring(comm):
    p, r = comm.size, comm.rank
    out = np.zeros(5, dtype=np.float32)
    status = comm.sendrecv(np.full(5, r, dtype=np.float32), (r + 1) % p, out, (r - 1) % p, send_tag=3)
    assert status.source == (r - 1) % p
    assert (out == (r - 1) % p).all()


def test_missing_sender_times_out_naming_peer_and_tag(comm):
    if comm.rank == 1:
        with pytest.raises(CollectiveTimeout) as info:
            comm.recv(np.zeros(3), 0, tag=42, timeout=0.3)
        assert "rank 0" in str(info.value) and "tag 42" in str(info.value)
        assert info.value.peers == (0,)
        # an unmatched receive posts nothing: the communicator stays usable
        comm.send(np.ones(1), 0, tag=43)
    elif comm.rank == 0:
        out = np.zeros(1)
        comm.recv(out, 1, tag=43)
        assert out[0] == 1
    comm.barrier()


def test_test_is_false_until_the_message_comes(comm):
    if comm.rank == 0:
        req = comm.irecv(np.zeros(2), 1, tag=7)
        assert not req.test()
        comm.barrier()
        req.wait()
        assert req.test()
    else:
        comm.barrier()
        if comm.rank == 1:
            comm.send(np.ones(2), 0, tag=7)


def test_bad_input_raises_before_any_message(comm):
    p = comm.size
    x = np.zeros(4)
    for bad in (-1, p, 1.0, "1", True):
        with pytest.raises((InvalidArgument, InvalidType)):
            comm.send(x, bad)
        with pytest.raises((InvalidArgument, InvalidType)):
            comm.irecv(np.zeros(4), bad)
    for tag in (-1, 2 ** 40, 1.5):
        with pytest.raises((InvalidArgument, InvalidType)):
            comm.isend(x, 0, tag=tag)
    readonly = np.zeros(4)
    readonly.setflags(write=False)
    with pytest.raises(InvalidArgument):
        comm.recv(readonly, 0)
    with pytest.raises(InvalidArgument):
        comm.send(x, 0, timeout=-1)
    comm.barrier()
    # a message that does not fit: a clear error on the receiver, the communicator still usable
    if comm.rank == 0:
        comm.send(np.zeros(8, dtype=np.float64), 1, tag=11)
        comm.send(np.zeros(3, dtype=np.uint8), 1, tag=12)
        comm.send(np.arange(2, dtype=np.float64), 1, tag=13)
    elif comm.rank == 1:
        with pytest.raises(MismatchError, match="64 bytes"):
            comm.recv(np.zeros(4, dtype=np.float64), 0, tag=11)
        with pytest.raises(MismatchError, match="whole number"):
            comm.recv(np.zeros(4, dtype=np.float32), 0, tag=12)
        out = np.zeros(2)
        comm.recv(out, 0, tag=13)
        assert out.tolist() == [0.0, 1.0]
    comm.barrier()
    assert comm.allreduce(np.ones(3)).tolist() == [p] * 3


def test_p2p_never_matches_collective_traffic(comm):
    # a pending any-source receive must not take a collective's message
    req = comm.irecv(np.zeros(16, dtype=np.float32), "any", tag=0)
    got = comm.allreduce(np.ones(16, dtype=np.float32), algorithm="ring")
    assert (got == comm.size).all()
    assert not req.test()
    comm.send(np.ones(16, dtype=np.float32), comm.rank)   # a message to oneself completes it
    req.wait()
