"""Non-blocking collectives (comm.iallreduce and friends) on 1 to 4 ranks.

A request must give the same bits as the blocking call, for every collective and
algorithm; several may be in flight at once on one Communicator and on several;
a request that cannot complete times out naming its collective and breaks the
Communicator; bad input is refused at the i-call, before any message.
"""

import gc
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import collectives as cl

pytestmark = pytest.mark.mpi(ranks=[1, 2, 3, 4])

COLLECTIVES = ("allreduce", "alltoall", "reduce_scatter", "allgather", "broadcast")


def _algorithms(collective):
    from collectives.algorithms import algorithm_names

    return ["auto", "mpi"] + list(algorithm_names(collective))


def _input(comm, collective, count, dtype=np.float64, salt=0):
    """Random floats, different on every rank (so summation order shows in the bits)."""
    rng = np.random.default_rng(1000 * salt + comm.rank)
    if collective == "alltoall":
        count = count * comm.size
    return rng.standard_normal(count).astype(dtype)


def _blocking(comm, collective, x, algorithm, op="sum", root=0):
    if collective in ("allreduce", "reduce_scatter"):
        return getattr(comm, collective)(x, op=op, algorithm=algorithm)
    if collective == "broadcast":
        y = x.copy()
        return comm.broadcast(y, root=root, algorithm=algorithm)
    return getattr(comm, collective)(x, algorithm=algorithm)


def _start(comm, collective, x, algorithm, op="sum", root=0, out=None):
    if collective in ("allreduce", "reduce_scatter"):
        return getattr(comm, "i" + collective)(x, op=op, algorithm=algorithm, out=out)
    if collective == "broadcast":
        return comm.ibroadcast(x.copy(), root=root, algorithm=algorithm)
    return getattr(comm, "i" + collective)(x, algorithm=algorithm, out=out)


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("collective", COLLECTIVES)
def test_same_bits_as_the_blocking_call_for_every_algorithm(comm, collective):
    for algorithm in _algorithms(collective):
        for count in (0, 7, 70_000):
            x = _input(comm, collective, count, salt=count)
            want = _blocking(comm, collective, x, algorithm, root=comm.size - 1)
            req = _start(comm, collective, x, algorithm, root=comm.size - 1)
            got = req.wait()
            assert req.done and req.test()
            np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=f"{algorithm} {count}")


def test_avg_and_half_precision_match_the_blocking_call(comm):
    for dtype in (np.float16, np.float32):
        x = (np.arange(513) % 17 + comm.rank * 0.25).astype(dtype)
        for algorithm in ("auto", "mpi", "ring", "rhd"):
            want = comm.allreduce(x, op="avg", algorithm=algorithm)
            got = comm.iallreduce(x, op="avg", algorithm=algorithm).wait()
            assert got.dtype == x.dtype
            np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=f"{dtype} {algorithm}")


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_shapes_dtypes_and_ops(comm, data):
    # derandomized: every rank draws the same cases, so they agree on each call
    collective = data.draw(st.sampled_from(["allreduce", "reduce_scatter"]))
    algorithm = data.draw(st.sampled_from(_algorithms(collective)))
    dtype = data.draw(st.sampled_from(["int32", "int64", "float32", "float64"]))
    op = data.draw(st.sampled_from(["sum", "max", "min"]))
    count = data.draw(st.integers(0, 5000))
    x = (np.random.default_rng(count + comm.rank).integers(-50, 50, count)).astype(dtype)
    want = getattr(comm, collective)(x, op=op, algorithm=algorithm)
    got = getattr(comm, "i" + collective)(x, op=op, algorithm=algorithm).wait()
    np.testing.assert_array_equal(_bits(got), _bits(want))


def test_many_requests_in_flight_completed_in_any_order(comm):
    cases = [("allreduce", "ring", 50_000), ("allreduce", "mpi", 10), ("alltoall", "pairwise", 3000),
             ("allgather", "ring", 999), ("reduce_scatter", "rhd", 20_000), ("broadcast", "binomial", 7),
             ("allreduce", "rhd", 300_000), ("allgather", "mpi", 5)]
    inputs = [_input(comm, c, n, salt=i) for i, (c, _, n) in enumerate(cases)]
    wants = [_blocking(comm, c, x, a) for (c, a, _), x in zip(cases, inputs)]
    requests = [_start(comm, c, x, a) for (c, a, _), x in zip(cases, inputs)]
    # waited in reverse order, and half of them tested first: order of completion is free
    for r in requests[::2]:
        r.test()
    for i in reversed(range(len(requests))):
        np.testing.assert_array_equal(_bits(requests[i].wait()), _bits(wants[i]), err_msg=str(cases[i]))
    # the same with wait_all, into given outputs
    outs = [np.empty_like(w) for w in wants]
    requests = []
    for (c, a, _), x, o in zip(cases, inputs, outs):
        if c == "broadcast":
            o[...] = x
            requests.append(comm.ibroadcast(o, algorithm=a))
        else:
            requests.append(_start(comm, c, x, a, out=o))
    results = cl.wait_all(requests)
    for (c, _, _), got, o, want in zip(cases, results, outs, wants):
        assert got is o
        np.testing.assert_array_equal(_bits(o), _bits(want), err_msg=c)
    assert cl.test_all(requests)


def test_requests_in_flight_on_two_communicators_at_once(comm):
    sub = comm.split(comm.rank % 2)
    try:
        x = _input(comm, "allreduce", 40_000)
        want_world = comm.allreduce(x, algorithm="ring")
        want_sub = sub.allreduce(x, algorithm="rhd")
        want_gather = sub.allgather(x[:10], algorithm="mpi")
        reqs = [sub.iallreduce(x, algorithm="rhd"), comm.iallreduce(x, algorithm="ring"),
                sub.iallgather(x[:10], algorithm="mpi"), comm.ibarrier()]
        got_sub, got_world, got_gather, none = cl.wait_all(reqs)
        assert none is None
        np.testing.assert_array_equal(_bits(got_world), _bits(want_world))
        np.testing.assert_array_equal(_bits(got_sub), _bits(want_sub))
        np.testing.assert_array_equal(_bits(got_gather), _bits(want_gather))
        # a blocking call in between requests in flight keeps its own tags
        r1 = comm.iallreduce(x, algorithm="ring")
        y = comm.allreduce(x, algorithm="ring")
        np.testing.assert_array_equal(_bits(r1.wait()), _bits(y))
    finally:
        sub.free()


def test_overlap_with_compute_by_testing(comm):
    x = _input(comm, "allreduce", 200_000)
    want = comm.allreduce(x, algorithm="ring")
    req = comm.iallreduce(x, algorithm="ring")
    work = 0
    while not req.test():
        work += int(np.sum(np.arange(1000)))   # the caller's compute, between tests
    np.testing.assert_array_equal(_bits(req.wait()), _bits(want))


def test_emulated_holds_progress_through_test(comm):
    from mpi4py import MPI

    if comm.size < 2:
        pytest.skip("emulated links need two ranks")
    topo = cl.topology.resolve(f"star:n={comm.size},bw=1GB/s,lat=20us")
    emu = cl.Communicator(MPI.COMM_WORLD, topology=topo, emulate=True, timeout=60)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cl.EmulationWarning)
            x = np.full(1 << 16, 1.0 + emu.rank, dtype=np.float32)
            want = emu.allreduce(x, algorithm="ring")
            req = emu.iallreduce(x, algorithm="ring")
            polls = 0
            while not req.test():
                polls += 1
            np.testing.assert_array_equal(req.wait(), want)
            assert polls > 0, "a held step must read as not done, not be slept through in test()"
    finally:
        emu.free()


@pytest.mark.mpi(ranks=[2, 3])
@pytest.mark.parametrize("algorithm", ["ring", "mpi"])
def test_a_rank_that_never_starts_times_out_naming_the_collective(comm, algorithm):
    from mpi4py import MPI

    c = cl.Communicator(MPI.COMM_WORLD, timeout=1.0)
    x = np.ones(50_000, dtype=np.float32)
    if comm.rank != comm.size - 1:
        req = c.iallreduce(x, algorithm=algorithm)
        with pytest.raises(cl.CollectiveTimeout) as info:
            req.wait()
        err = info.value
        assert err.collective == "allreduce" and err.algorithm == algorithm
        assert "allreduce" in str(err) and "step" in str(err)
        if algorithm != "mpi":
            assert comm.size - 1 in err.peers
        with pytest.raises(cl.CollectiveTimeout):   # the same error again, not a hang
            req.wait()
        with pytest.raises(cl.CommunicatorBroken):
            c.iallreduce(x)
    comm.barrier()


@pytest.mark.mpi(ranks=[2])
def test_wait_timeout_replaces_the_deadline(comm):
    from mpi4py import MPI

    c = cl.Communicator(MPI.COMM_WORLD, timeout=None)
    if comm.rank == 0:
        req = c.iallreduce(np.ones(10), algorithm="ring")
        with pytest.raises(cl.CollectiveTimeout):
            req.wait(timeout=0.5)
    comm.barrier()


def test_bad_input_refused_before_any_message(comm):
    x = np.ones(10, dtype=np.float32)
    with pytest.raises(cl.InvalidArgument):
        comm.iallreduce(x, op="nope")
    with pytest.raises(cl.InvalidType):
        comm.iallreduce(x, op=3)
    with pytest.raises(cl.InvalidArgument):
        comm.iallreduce(np.arange(10), op="avg")
    with pytest.raises(cl.InvalidType):
        comm.iallreduce(x, out=np.empty(10, dtype=np.float64))
    with pytest.raises(cl.InvalidArgument):
        comm.iallreduce(x, out=np.empty(9, dtype=np.float32))
    with pytest.raises(cl.InvalidArgument):
        comm.iallreduce(x, algorithm="no-such-algorithm")
    if comm.size > 1:
        with pytest.raises(cl.InvalidArgument):
            comm.ialltoall(np.ones(comm.size * 2 + 1))
    with pytest.raises(cl.InvalidArgument):
        comm.ibroadcast(x, root=comm.size)
    with pytest.raises(cl.InvalidType):
        comm.ibroadcast(x, root="0")
    with pytest.raises(cl.InvalidArgument):
        comm.ibroadcast(np.ones(3)[::2])
    with pytest.raises(cl.InvalidArgument):
        comm.iallgather(x, out=x)
    with pytest.raises(cl.InvalidType):
        comm.ireduce_scatter(object())
    # nothing was sent: the next calls match up on every rank
    y = comm.iallreduce(x).wait()
    assert np.all(y == comm.size)


def test_a_dropped_request_is_waited_for_with_a_warning(comm):
    x = np.ones(100_000, dtype=np.float64)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        comm.iallreduce(x, algorithm="ring")   # dropped at once
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in seen) or comm.size == 1
    # the dropped request completed: the Communicator is in step on every rank
    assert np.all(comm.allreduce(x, algorithm="ring") == comm.size)


def test_ibarrier_and_repr(comm):
    req = comm.ibarrier()
    assert "barrier" in repr(req)
    assert req.wait() is None
    assert req.test()


def test_wait_all_refuses_what_is_not_a_request(comm):
    with pytest.raises(cl.InvalidType):
        cl.wait_all([np.ones(3)])
    assert cl.wait_all([]) == []
    assert cl.test_all([])


def test_the_guide_examples_run(comm):
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples", "nonblocking.py")
    spec = importlib.util.spec_from_file_location("nonblocking_examples", path)
    examples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(examples)
    examples.overlap(comm)
    examples.several(comm)
    examples.persistent_bucket(comm, steps=20)
    examples.small_flags(comm, steps=50)
    examples.pipeline_stage(comm, microbatches=4)
