"""Counts beyond MPI's int limit are split, never truncated (2^31 + 5 one-byte elements)."""

import numpy as np
import pytest

pytestmark = pytest.mark.mpi(ranks=[2])

BIG = (1 << 31) + 5


def test_allreduce_beyond_int_limit_in_place(comm):
    x = np.ones(BIG, dtype=np.uint8)
    x[-3:] = 2 + comm.rank               # the tail past 2^31 must be reduced too
    comm.allreduce(x, algorithm="ring", out=x, timeout=300)
    assert x[0] == 2 and x[(1 << 31) - 1] == 2
    assert list(x[-3:]) == [5, 5, 5]
    assert np.count_nonzero(x != 2) == 3
    del x


def _mpi_before_4():
    from mpi4py import MPI

    return MPI.Get_version() < (4, 0)


def test_native_path_beyond_int_limit(comm):
    if _mpi_before_4():
        # Open MPI 5.0 implements MPI 3.1: it has no large-count (MPI_Ibcast_c) calls, so the core
        # refuses a native call beyond 2^31-1 elements instead of truncating it (our own
        # algorithms, above, split such counts on every MPI)
        pytest.skip("this MPI is older than MPI 4: no large-count native collectives")
    x = np.zeros(BIG, dtype=np.uint8)
    if comm.rank == 0:
        x[-1] = 7
    comm.broadcast(x, root=0, algorithm="mpi", timeout=300)   # MPI-4 large-count call
    assert x[-1] == 7 and x[0] == 0
