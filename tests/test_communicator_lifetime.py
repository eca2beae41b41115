"""Communicators that are dropped without free() give their MPI duplicates back."""

import gc

import numpy as np
import pytest
from mpi4py import MPI

import collectives as cl
from collectives import communicator


@pytest.mark.mpi(ranks=[1, 2])
def test_dropped_communicators_are_freed_at_the_next_safe_point(comm):
    # __del__ may run inside any MPI call of this thread, so it only hands its duplicates on;
    # the next Communicator (or free(), or exit) frees them
    for _ in range(10):
        c = cl.Communicator(MPI.COMM_WORLD)
        assert communicator._DEFERRED_FREES == []
        c.allreduce(np.ones(2))
        dups = [c._comm, c._notice, c._p2p]
        del c
        gc.collect()
        assert all(any(d is q for q in communicator._DEFERRED_FREES) for d in dups if d is not None)
    last = cl.Communicator(MPI.COMM_WORLD)
    assert communicator._DEFERRED_FREES == []
    np.testing.assert_array_equal(last.allreduce(np.ones(3)), np.full(3, float(comm.size)))
    last.free()
