"""Failure behaviour: a rank that skips a call, mismatched arguments, a broken communicator.

Each test is bounded in time: the library's deadlines end it, never the harness.
"""

import time

import numpy as np
import pytest

import collectives as cl

pytestmark = pytest.mark.mpi(ranks=[2, 3, 4])


@pytest.mark.parametrize("algorithm", ["ring", "rhd", "tree", "mpi"])
def test_rank_that_skips_a_collective_gives_timeouts(comm, algorithm):
    from mpi4py import MPI

    p = comm.size
    skipper = p - 1
    timeout = 1.5
    x = np.ones(100_000, dtype=np.float32)
    c = cl.Communicator(MPI.COMM_WORLD, timeout=timeout)
    if comm.rank != skipper:
        t0 = time.monotonic()
        with pytest.raises(cl.CollectiveTimeout) as info:
            c.allreduce(x, algorithm=algorithm)
        took = time.monotonic() - t0
        assert took < timeout + 1.0, f"raised after {took:.2f} s"
        err = info.value
        assert err.collective == "allreduce" and err.algorithm == algorithm
        text = str(err)
        assert "allreduce" in text and "timed out" in text and "step" in text
        if algorithm != "mpi":
            assert err.peers, "the error must name the rank(s) still awaited"
            if p == 2:
                assert err.peers == (skipper,) and f"rank(s) {skipper}" in text
        # broken from now on: refuses at once
        t0 = time.monotonic()
        with pytest.raises(cl.CommunicatorBroken, match="failed earlier"):
            c.allreduce(x)
        assert time.monotonic() - t0 < 0.5
    # line the ranks up again on the harness' own communicator before the next test
    comm.mpi_comm.Barrier()


def test_validate_catches_mismatched_counts_dtypes_ops(comm):
    from mpi4py import MPI

    c = cl.Communicator(MPI.COMM_WORLD, validate=True, timeout=20)
    odd = comm.rank == comm.size - 1
    with pytest.raises(cl.MismatchError, match=f"rank\\(s\\) {comm.size - 1} called with arguments"):
        c.allreduce(np.ones(10 if not odd else 11, dtype=np.float32))
    with pytest.raises(cl.MismatchError, match="dtype=float64"):
        c.allreduce(np.ones(10, dtype=np.float32 if not odd else np.float64))
    with pytest.raises(cl.MismatchError, match="op=max"):
        c.allreduce(np.ones(10, dtype=np.float32), op="sum" if not odd else "max")
    with pytest.raises(cl.MismatchError, match="collective=alltoall"):
        x = np.ones(comm.size * 2, dtype=np.float32)
        c.alltoall(x) if odd else c.allgather(x)
    # still usable: validation refused before any data moved
    y = c.allreduce(np.ones(10, dtype=np.float32))
    assert np.all(y == comm.size)


def test_validate_through_environment(comm, monkeypatch):
    from mpi4py import MPI

    monkeypatch.setenv("COLLECTIVES_VALIDATE", "1")
    c = cl.Communicator(MPI.COMM_WORLD, timeout=20)
    assert c.validate
    with pytest.raises(cl.MismatchError):
        c.broadcast(np.ones(4), root=0 if comm.rank else min(1, comm.size - 1))


def test_timeout_from_environment(comm, monkeypatch):
    from mpi4py import MPI

    monkeypatch.setenv("COLLECTIVES_TIMEOUT", "2.5")
    c = cl.Communicator(MPI.COMM_WORLD)
    assert c.timeout == 2.5
    monkeypatch.setenv("COLLECTIVES_TIMEOUT", "soon")
    with pytest.raises(cl.InvalidArgument, match="COLLECTIVES_TIMEOUT"):
        cl.Communicator(MPI.COMM_WORLD)
