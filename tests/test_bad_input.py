"""Bad arguments are refused on the calling rank, before any message, and the communicator goes on working.

Every rank makes the same bad calls, so a call that wrongly sent a message
would leave the ranks out of step and the check afterwards would time out.
"""

import numpy as np
import pytest

import collectives as cl

pytestmark = pytest.mark.mpi(ranks=[1, 2, 3])


def _works(comm):
    x = np.arange(5, dtype=np.float64)
    assert np.array_equal(comm.allreduce(x, timeout=30), x * comm.size)


def test_unknown_op_and_algorithm(comm):
    x = np.ones(4, dtype=np.float32)
    with pytest.raises(cl.InvalidArgument, match="unknown op 'mean'.*sum, prod, min, max, avg"):
        comm.allreduce(x, op="mean")
    with pytest.raises(cl.InvalidType, match="op must be"):
        comm.allreduce(x, op=3)
    with pytest.raises(cl.InvalidArgument, match="unknown allreduce algorithm 'bogus'.*ring"):
        comm.allreduce(x, algorithm="bogus")
    with pytest.raises(ValueError):  # also a plain ValueError for numpy-style callers
        comm.alltoall(np.ones(comm.size), algorithm="ring-of-fire")
    _works(comm)


def test_avg_on_integers_refused(comm):
    with pytest.raises(cl.InvalidArgument, match="'avg' needs a floating dtype"):
        comm.allreduce(np.ones(4, dtype=np.int32), op="avg")
    with pytest.raises(cl.InvalidArgument, match="'avg' needs a floating dtype"):
        comm.reduce_scatter(np.ones(4, dtype=np.uint8), op="avg")
    _works(comm)


def test_non_contiguous_misaligned_object_and_unsupported_dtypes(comm):
    x = np.arange(20, dtype=np.float32)
    with pytest.raises(cl.InvalidArgument, match="not C-contiguous"):
        comm.allreduce(x[::2])
    raw = np.zeros(4 * 10 + 1, dtype=np.uint8)
    misaligned = raw[1:].view(np.float32)
    with pytest.raises(cl.InvalidArgument, match="misaligned"):
        comm.allreduce(misaligned)
    with pytest.raises(cl.InvalidType, match="Python objects"):
        comm.allreduce(np.array([1, "a"], dtype=object))
    with pytest.raises(cl.InvalidType, match="complex128.*not supported"):
        comm.allreduce(np.ones(3, dtype=np.complex128))
    with pytest.raises(cl.InvalidType, match="must be a numpy array"):
        comm.allreduce([1.0, 2.0])
    _works(comm)


def test_bad_out(comm):
    x = np.ones(8, dtype=np.float32)
    with pytest.raises(cl.InvalidType, match="out has dtype float64"):
        comm.allreduce(x, out=np.empty(8, dtype=np.float64))
    with pytest.raises(cl.InvalidArgument, match=r"out has shape \(7,\)"):
        comm.allreduce(x, out=np.empty(7, dtype=np.float32))
    ro = np.empty(8, dtype=np.float32)
    ro.flags.writeable = False
    with pytest.raises(cl.InvalidArgument, match="read-only"):
        comm.allreduce(x, out=ro)
    with pytest.raises(cl.InvalidArgument, match="partially overlaps"):
        big = np.ones(16, dtype=np.float32)
        comm.allreduce(big[:8], out=big[4:12])
    with pytest.raises(cl.InvalidArgument, match="out has shape"):
        comm.allgather(x, out=np.empty(8 * comm.size + 1, dtype=np.float32))
    _works(comm)


def test_alltoall_blocks_and_broadcast_root(comm):
    p = comm.size
    with pytest.raises(cl.InvalidArgument, match=f"comm.size={p} equal blocks"):
        comm.alltoall(np.ones(p * 3 + 1, dtype=np.float32)) if p > 1 else \
            comm.alltoall(np.ones((), dtype=np.float32))
    with pytest.raises(cl.InvalidArgument, match="root=.* out of range"):
        comm.broadcast(np.ones(3), root=p)
    with pytest.raises(cl.InvalidArgument, match="root=-1 is out of range"):
        comm.broadcast(np.ones(3), root=-1)
    with pytest.raises(cl.InvalidType, match="root must be an int"):
        comm.broadcast(np.ones(3), root="0")
    ro = np.ones(3)
    ro.flags.writeable = False
    with pytest.raises(cl.InvalidArgument, match="read-only"):
        comm.broadcast(ro)
    _works(comm)


def test_bad_timeout(comm):
    with pytest.raises(cl.InvalidArgument, match="positive number of seconds"):
        comm.allreduce(np.ones(3), timeout=-1)
    with pytest.raises(cl.InvalidType, match="number of seconds"):
        comm.allreduce(np.ones(3), timeout="soon")
    _works(comm)


def test_nothing_written_on_refusal(comm):
    x = np.ones(6, dtype=np.float32)
    out = np.full(6, 42.0, dtype=np.float32)
    with pytest.raises(cl.CollectivesError):
        comm.allreduce(x, op="median", out=out)
    assert np.all(out == 42.0)
    _works(comm)


def test_bad_profile_is_refused_when_the_communicator_is_made(comm, monkeypatch, tmp_path):
    from mpi4py import MPI

    bad = tmp_path / f"profile{comm.rank}.json"
    bad.write_text('{"format": "something else"}')
    monkeypatch.setenv("COLLECTIVES_PROFILE", str(bad))
    with pytest.raises(cl.ModelError, match="not a collectives profile"):
        cl.Communicator(MPI.COMM_WORLD)
    monkeypatch.setenv("COLLECTIVES_PROFILE", str(tmp_path / "missing.json"))
    with pytest.raises(cl.TopologyFileError, match="collectives calibrate"):
        cl.Communicator(MPI.COMM_WORLD)
    monkeypatch.delenv("COLLECTIVES_PROFILE")
    _works(comm)
