"""The blocking-deadline path: a small native call with a deadline runs as the blocking
MPI call under the watchdog, which revokes the communicator at the deadline or on a
peer's notice (Open MPI with ULFM on: ``OMPI_MCA_mpi_ft_enable=1``).

Every test here is skipped where the path is not active (MPICH, Open MPI without ft).
"""

import contextlib
import os
import shutil
import tempfile
import time

import numpy as np
import pytest

import collectives as cl

pytestmark = pytest.mark.mpi(ranks=[2, 3])


def _need_path():
    from collectives import _executor

    if not _executor.blocking_deadline():
        pytest.skip("the blocking-deadline path is opt-in: it needs COLLECTIVES_BLOCKING_DEADLINE=1, "
                    "Open MPI with ULFM enabled (OMPI_MCA_mpi_ft_enable=1) and MPI_THREAD_MULTIPLE")
    return _executor


@contextlib.contextmanager
def _then_together(comm):
    """Meet every rank at the end of the test even when this one failed, and with a deadline
    (the fixture's 60 s, not MPI's unbounded barrier): a rank whose assertion failed used
    to skip the barrier and leave its peers waiting in it until the batch was killed."""
    try:
        yield
    finally:
        comm.barrier()


def _small_input(collective, size, dtype=np.float64):
    n = 8 * size if collective == "alltoall" else 16   # 128-192 B at 2-3 ranks: within the path's 256 B
    return np.arange(1, n + 1, dtype=dtype)


@pytest.mark.parametrize("collective", ["allreduce", "alltoall"])
def test_silent_peer_gives_a_timeout_naming_the_collective(comm, collective):
    from mpi4py import MPI

    _need_path()
    silent = comm.size - 1
    timeout = 1.0
    c = cl.Communicator(MPI.COMM_WORLD, timeout=timeout)
    x = _small_input(collective, comm.size)
    with _then_together(comm):
        # everyone is up and connected; a first call can take over a second on a loaded
        # machine (imports, planning), so it gets a generous deadline of its own
        getattr(c, collective)(x, timeout=60.0)
        if comm.rank != silent:
            # the error type says the deadline ended the call (no wall-clock bound: a loaded
            # machine may take longer to get there)
            with pytest.raises(cl.CollectiveTimeout) as info:
                getattr(c, collective)(x)
            err = info.value
            assert err.collective == collective and err.algorithm == "mpi"
            assert collective in str(err) and "timed out" in str(err)
            with pytest.raises(cl.CommunicatorBroken, match="failed earlier"):
                getattr(c, collective)(x)
        else:
            time.sleep(timeout + 0.5)


@pytest.mark.parametrize("collective", ["allreduce", "alltoall"])
@pytest.mark.parametrize("size", ["smallest", "largest"])
def test_a_silent_peer_that_makes_no_mpi_progress_still_ends_the_call(comm, collective, size):
    """The revoke alone must end the call: the silent rank calls no MPI at all until every
    other rank has raised (a send the revoke cannot end would wait for it to progress)."""
    from mpi4py import MPI

    core = _need_path()
    silent = comm.size - 1
    if size == "smallest":
        n = comm.size
    else:   # the whole input at the path's limit
        n = core.BLOCKING_DEADLINE_MAX_BYTES // 8
        n -= n % comm.size
    x = np.arange(n, dtype=np.float64)
    flags = comm.mpi_comm.bcast(tempfile.mkdtemp(prefix="cl-silent-") if comm.rank == 0 else None)
    c = cl.Communicator(MPI.COMM_WORLD, timeout=1.0)
    with _then_together(comm):
        getattr(c, collective)(x, timeout=60.0)
        if comm.rank != silent:
            with pytest.raises(cl.CollectiveTimeout):
                getattr(c, collective)(x)
            open(os.path.join(flags, f"ended{comm.rank}"), "w").close()
        else:
            # no MPI call here: wait (up to a generous 60 s) for the others to have ended
            want = {f"ended{r}" for r in range(comm.size) if r != silent}
            until = time.monotonic() + 60.0
            while not want <= set(os.listdir(flags)) and time.monotonic() < until:
                time.sleep(0.05)
            missing = want - set(os.listdir(flags))
            assert not missing, f"the revoke did not end the call on {sorted(missing)}"
    if comm.rank == 0:
        shutil.rmtree(flags, ignore_errors=True)


def test_peer_notice_gives_peer_failure_naming_the_rank(comm):
    from mpi4py import MPI

    _need_path()
    c = cl.Communicator(MPI.COMM_WORLD, timeout=60.0)
    x = _small_input("allreduce", comm.size)
    with _then_together(comm):
        c.allreduce(x)
        if comm.rank == 1:
            time.sleep(0.2)                          # the others are in the next call by now
            c._announce("left the job")
        else:
            # PeerFailure, not CollectiveTimeout: the notice, not the 60 s deadline, ended it
            with pytest.raises(cl.PeerFailure) as info:
                c.allreduce(x)
            assert info.value.rank == 1 and info.value.collective == "allreduce"
            assert "left the job" in str(info.value)


@pytest.mark.parametrize("collective", ["allreduce", "alltoall"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_results_are_the_bits_of_the_blocking_call(comm, collective, dtype):
    """Under the watchdog the call is MPI's blocking collective: the same bits as with no
    deadline; integer results also equal the non-blocking path's."""
    from mpi4py import MPI

    core = _need_path()
    rng = np.random.default_rng(comm.rank)
    n = 8 * comm.size if collective == "alltoall" else 32   # within the path's 256 B
    x = (rng.standard_normal(n) * 1000).astype(dtype)
    watched = cl.Communicator(MPI.COMM_WORLD, timeout=30.0)
    unbounded = cl.Communicator(MPI.COMM_WORLD, timeout=None)
    with _then_together(comm):
        got = getattr(watched, collective)(x, algorithm="mpi")
        want = getattr(unbounded, collective)(x, algorithm="mpi")
        assert got.tobytes() == want.tobytes()
        inplace = x.copy()
        getattr(watched, collective)(inplace, out=inplace, algorithm="mpi")
        assert inplace.tobytes() == want.tobytes()
        if np.issubdtype(dtype, np.integer):
            core.blocking_deadline(False)
            try:
                nonblocking = getattr(watched, collective)(x, algorithm="mpi")
            finally:
                core.blocking_deadline(True)
            assert nonblocking.tobytes() == want.tobytes()


def test_switching_the_path_off_and_on(comm):
    core = _need_path()
    assert core.blocking_deadline(False) is False
    assert core.blocking_deadline() is False
    assert core.blocking_deadline(True) is True
    assert core.BLOCKING_DEADLINE_MAX_BYTES == 256
