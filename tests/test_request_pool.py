"""Non-blocking calls on the executor's own schedules reuse idle executions of their call shape:
results stay those of the blocking call, and two requests of one shape in flight never share
an execution."""

import numpy as np
import pytest

import collectives as cl

pytestmark = pytest.mark.mpi(ranks=[2, 3])


def test_two_requests_of_one_shape_in_flight_have_their_own_execution(comm):
    p, r = comm.size, comm.rank
    xs = [np.arange(1000, dtype=np.float32) * (k + 1) + r for k in range(3)]
    for _ in range(4):   # the later rounds run on pooled executions
        reqs = [comm.iallreduce(x, algorithm="ring") for x in xs]
        executions = [req._execution for req in reqs]
        assert len({id(e) for e in executions}) == len(reqs)
        got = cl.wait_all(reqs)
        for k, g in enumerate(got):
            np.testing.assert_array_equal(g, comm.allreduce(xs[k], algorithm="ring"))
            assert g.tolist() == (np.arange(1000, dtype=np.float32) * (k + 1) * p + p * (p - 1) / 2).tolist()


def test_an_idle_execution_is_reused_by_the_next_call_of_its_shape(comm):
    x = np.ones(256, dtype=np.float64)
    first = comm.iallreduce(x, algorithm="ring")
    used = first._execution
    first.wait()
    again = comm.iallreduce(x * 2, algorithm="ring")
    assert again._execution is used
    assert (again.wait() == 2 * comm.size).all()
    # another shape does not take it
    other = comm.iallreduce(np.ones(300, dtype=np.float64), algorithm="ring")
    assert other._execution is not used
    other.wait()


def test_pooled_executions_write_into_each_calls_own_output(comm):
    p = comm.size
    outs = [np.zeros(64, dtype=np.int64) for _ in range(3)]
    for rnd in range(3):
        reqs = [comm.iallreduce(np.full(64, k + rnd, dtype=np.int64), out=o, algorithm="ring")
                for k, o in enumerate(outs)]
        for req in reversed(reqs):
            req.wait()
        for k, o in enumerate(outs):
            assert (o == p * (k + rnd)).all()
    # in place, a collective of another kind, and a failed-free request after pooling
    y = np.full(64, 3, dtype=np.int64)
    comm.iallreduce(y, out=y, algorithm="ring").wait()
    assert (y == 3 * p).all()
    g = comm.iallgather(np.full(4, comm.rank, dtype=np.int32), algorithm="ring").wait()
    assert g.reshape(p, 4)[:, 0].tolist() == list(range(p))
