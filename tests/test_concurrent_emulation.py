"""Concurrent communicators on emulated links: the holds of a call are those of the joint pricing.

Sub-communicators of an emulated layout price each call together with the same call
on every other group of their split, and inside ``Mesh.overlap`` also with the calls
declared for the other dimensions. These tests compute the joint pricing directly
and compare holds exactly (no wall-clock), and check that results stay right when
both dimensions run at once in two threads.
"""

import os
import threading
import time

import numpy as np
import pytest

import collectives as cl
from collectives import InvalidArgument
from collectives.algorithms import build_schedule
from collectives.schedule import RECV
from collectives.model.joint import joint_call_times, joint_message_times, joint_step_times, joint_timeline

# one 2-host leaf per tp group: tp traffic stays in a leaf, dp traffic crosses the spine,
# and both share the hosts' links
TOPOLOGY = "leaf-spine:leaves=2,hosts=2,spines=1,bw=1GB/s,lat=20us"


def _topo():
    return cl.topology.resolve(TOPOLOGY)


# ---- the joint model, in one process ------------------------------------------------------

def test_one_part_is_message_times():
    topo = _topo()
    sched = build_schedule("allreduce", "ring", 4, 1 << 16)
    hosts = np.arange(4)
    for rank in range(4):
        np.testing.assert_array_equal(joint_message_times([(sched, hosts)], topo, 0, rank, itemsize=4),
                                      cl.model.message_times(sched, topo, hosts, rank, itemsize=4))


def test_parts_that_share_links_slow_each_other():
    topo = _topo()
    ring = build_schedule("allreduce", "ring", 2, 1 << 18)
    tp = [(ring, np.array([0, 1])), (ring, np.array([2, 3]))]
    dp = [(ring, np.array([0, 2])), (ring, np.array([1, 3]))]
    alone = joint_message_times(tp, topo, 0, 0, itemsize=4)
    together = joint_message_times(tp + dp, topo, 0, 0, itemsize=4)
    recv = alone > 0
    assert recv.any() and (together[recv] > alone[recv] * 1.2).all()
    # disjoint groups on a non-blocking switch do not slow each other
    star = cl.topology.resolve("star:n=4,bw=1GB/s,lat=20us")
    np.testing.assert_allclose(joint_message_times(tp, star, 1, 1, itemsize=4),
                               joint_message_times(tp[1:], star, 0, 1, itemsize=4))
    steps = joint_step_times(tp + dp, topo, itemsize=4)
    assert len(steps) == ring.num_steps and (steps > 0).all()


def test_joint_pricing_refuses_bad_arguments():
    sched = build_schedule("allreduce", "ring", 2, 64)
    with pytest.raises(InvalidArgument):
        joint_message_times([], _topo())
    with pytest.raises(InvalidArgument):
        joint_message_times([(sched, None)], _topo(), part=1)
    with pytest.raises(InvalidArgument):
        joint_message_times([(sched, None)], _topo(), bogus=1)


# ---- emulated layouts, under MPI ----------------------------------------------------------

def _held(sub, collective, x, algorithm):
    """The holds the sub-communicator used for its last call of this shape."""
    entries = [e for k, e in sub._calls.items() if k[0] == collective and k[1] == algorithm
               and k[2] == x.size and e.holds is not None]
    assert len(entries) == 1
    return entries[0].holds


def _host(sub, parts):
    """The host terms an emulated sub-communicator prices with: this machine's, shared by every part."""
    host = dict(sub._emulated_host)
    host["machines"] = np.zeros(sum(s.nranks for s, _ in parts), dtype=np.int64)
    return host


def _groups(mesh, dim):
    return [np.asarray(g, dtype=np.int64) for g in mesh.layout.groups(dim)]


@pytest.mark.mpi(ranks=[4])
def test_sub_communicator_prices_with_its_sibling_groups(comm):
    from mpi4py import MPI

    emu = cl.Communicator(MPI.COMM_WORLD, topology=TOPOLOGY, emulate=True)
    mesh = emu.layout(dp=2, tp=2)
    for dim in ("tp", "dp"):
        sub = mesh[dim]
        x = np.full(1 << 14, comm.rank + 1, dtype=np.float32)
        got = sub.allreduce(x, algorithm="ring")
        members = mesh.layout.group_of(comm.rank, dim)
        np.testing.assert_array_equal(got, np.full(x.size, float(sum(members + 1)), dtype=np.float32))
        sched = build_schedule("allreduce", "ring", 2, x.size)
        groups = _groups(mesh, dim)
        index = [g.tolist() for g in groups].index(members.tolist())
        parts = [(sched, g) for g in groups]
        want = joint_message_times(parts, emu.topology, index, sub.rank, itemsize=4, **_host(sub, parts))
        np.testing.assert_array_equal(_held(sub, "allreduce", x, "ring"), want)
    mesh.free()
    emu.free()


@pytest.mark.mpi(ranks=[4])
def test_declared_overlap_prices_both_dimensions_jointly(comm):
    from mpi4py import MPI

    emu = cl.Communicator(MPI.COMM_WORLD, topology=TOPOLOGY, emulate=True, timeout=60)
    mesh = emu.layout(dp=2, tp=2)
    tp, dp = mesh["tp"], mesh["dp"]
    xt = np.full(1 << 16, comm.rank + 1, dtype=np.float32)
    xd = np.full(1 << 15, 10.0 * (comm.rank + 1), dtype=np.float32)
    tp.allreduce(xt, algorithm="ring")
    alone = _held(tp, "allreduce", xt, "ring").copy()
    results = {}
    with mesh.overlap(tp=("allreduce", xt.nbytes, "float32", "ring"),
                      dp=("allreduce", xd.nbytes, "float32", "ring")):
        threads = [threading.Thread(target=lambda: results.__setitem__("tp", tp.allreduce(xt, algorithm="ring"))),
                   threading.Thread(target=lambda: results.__setitem__("dp", dp.allreduce(xd, algorithm="ring")))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        held_tp = _held(tp, "allreduce", xt, "ring").copy()
        held_dp = _held(dp, "allreduce", xd, "ring").copy()
    tp_members = mesh.layout.group_of(comm.rank, "tp")
    dp_members = mesh.layout.group_of(comm.rank, "dp")
    assert (results["tp"] == float(sum(tp_members + 1))).all()
    assert (results["dp"] == 10.0 * float(sum(dp_members + 1))).all()
    ring_t = build_schedule("allreduce", "ring", 2, xt.size)
    ring_d = build_schedule("allreduce", "ring", 2, xd.size)
    tp_parts = [(ring_t, g) for g in _groups(mesh, "tp")]
    dp_parts = [(ring_d, g) for g in _groups(mesh, "dp")]
    ti = [g.tolist() for g in _groups(mesh, "tp")].index(tp_members.tolist())
    di = [g.tolist() for g in _groups(mesh, "dp")].index(dp_members.tolist())
    both = tp_parts + dp_parts
    np.testing.assert_array_equal(held_tp, joint_message_times(both, emu.topology, ti, tp.rank, itemsize=4,
                                                               **_host(tp, both)))
    np.testing.assert_array_equal(held_dp, joint_message_times(dp_parts + tp_parts, emu.topology, di,
                                                               dp.rank, itemsize=4, **_host(dp, both)))
    recv = alone > 0
    assert (held_tp[recv] > alone[recv]).any()        # the dp traffic slows tp's messages
    # after the block, a call is priced with its siblings only again
    tp.allreduce(xt, algorithm="ring")
    np.testing.assert_array_equal(_held(tp, "allreduce", xt, "ring"), alone)
    with pytest.raises(InvalidArgument):
        with mesh.overlap(tp=("allreduce", 64)):
            pass
    with pytest.raises(InvalidArgument):
        with mesh.overlap(tp=("allreduce", 64), xx=("allreduce", 64)):
            pass
    with pytest.raises(InvalidArgument):
        with mesh.overlap(tp=("allreduce", -1), dp=("allreduce", 64)):
            pass
    mesh.free()
    emu.free()


@pytest.mark.mpi(ranks=[2])
def test_an_overlap_block_entered_again_prices_as_the_first_time(comm):
    """The block's declarations are checked once and reused: the same holds each entry, the
    siblings-only pricing back after each exit (an error inside the block included), and a
    refused declaration refused every time."""
    from mpi4py import MPI

    emu = cl.Communicator(MPI.COMM_WORLD, topology=PAIR, emulate=True, timeout=60)
    mesh = emu.layout(dp=2, ep=2)
    dp, ep = mesh["dp"], mesh["ep"]
    g = np.full(1 << 12, comm.rank + 1.0, dtype=np.float32)
    a = np.arange(1 << 12, dtype=np.float32) + 100 * comm.rank
    declared = dict(dp=("allreduce", g.nbytes, "float32", "ring"), ep=("alltoall", a.nbytes, "float32", "pairwise"))
    dp.allreduce(g, algorithm="ring")
    alone = _held(dp, "allreduce", g, "ring").copy()
    held = []
    for _ in range(3):
        with mesh.overlap(**declared) as m:
            assert m is mesh
            got, swapped = cl.wait_all([dp.iallreduce(g, algorithm="ring"), ep.ialltoall(a, algorithm="pairwise")])
            held.append(_held(dp, "allreduce", g, "ring").copy())
        np.testing.assert_array_equal(got, np.full(g.size, 3.0, dtype=np.float32))
        np.testing.assert_array_equal(swapped, ep.alltoall(a, algorithm="mpi"))
        dp.allreduce(g, algorithm="ring")
        np.testing.assert_array_equal(_held(dp, "allreduce", g, "ring"), alone)
    assert (held[0][alone > 0] > alone[alone > 0]).any()     # priced with the all-to-all
    for h in held[1:]:
        np.testing.assert_array_equal(h, held[0])
    with pytest.raises(RuntimeError):
        with mesh.overlap(**declared):
            raise RuntimeError("inside the block")
    assert dp._overlap is None and ep._overlap is None
    for _ in range(2):
        with pytest.raises(InvalidArgument, match="nbytes"):
            with mesh.overlap(dp=("allreduce", -1), ep=("alltoall", 64)):
                pass
    mesh.free()
    emu.free()


# ---- two busy dimensions on 2 ranks: data-parallel and expert-parallel on the same pair ------

PAIR = "star:n=2,bw=1GB/s,lat=20us"


def test_parts_with_fewer_steps_add_nothing_to_later_steps():
    """A ring all-reduce (2 steps) beside a pairwise all-to-all (1 step) on the same two hosts:
    step 0 is priced with both, step 1 with the all-reduce alone."""
    ring = build_schedule("allreduce", "ring", 2, 1 << 16)
    pairwise = build_schedule("alltoall", "pairwise", 2, 1 << 16)
    hosts = np.arange(2)
    both = [(ring, hosts), (pairwise, hosts)]
    machines = {"machines": np.zeros(4, dtype=np.int64), "cores": 2.0}
    alone = {"machines": np.zeros(2, dtype=np.int64), "cores": 2.0}
    prog = ring.program(0)
    recv = joint_message_times([(ring, hosts)], PAIR, 0, 0, itemsize=4, **alone) > 0
    together = joint_message_times(both, PAIR, 0, 0, itemsize=4, **machines)
    by_itself = joint_message_times([(ring, hosts)], PAIR, 0, 0, itemsize=4, **alone)
    first, last = recv & (prog["step"] == 0), recv & (prog["step"] == 1)
    assert first.any() and last.any()
    assert (together[first] > 1.5 * by_itself[first]).all()      # the two calls share the links
    np.testing.assert_array_equal(together[last], by_itself[last])
    steps = joint_step_times(both, PAIR, itemsize=4, **machines)
    assert len(steps) == 2 and steps[0] > steps[1] > 0


def test_a_short_call_beside_a_long_one_slows_it_only_while_it_runs():
    """By hand, network alone: a ring all-reduce (two steps of 128 KiB each way) beside a
    pairwise all-to-all (one step of 1 MiB each way) on the same pair of hosts. While both run,
    each flow gets half of a link; once the ring is done, the all-to-all has the link to itself
    for the rest of its bytes, instead of being priced at half a link for all of them."""
    off = cl.model.HOST_TERMS_OFF
    hosts = np.arange(2)
    ring = build_schedule("allreduce", "ring", 2, 1 << 16)          # 32768 floats per step
    pairwise = build_schedule("alltoall", "pairwise", 2, 1 << 19)   # 262144 floats to the peer
    b, a, rate, lat = (1 << 15) * 4, (1 << 18) * 4, 1e9, 40e-6     # two 20 us links per path
    shared_ring, shared_pairwise = lat + b / (rate / 2), lat + a / (rate / 2)
    # the all-to-all does 2 * shared_ring / shared_pairwise of its work beside the ring's two
    # steps, the rest alone
    pairwise_end = 2 * shared_ring + (1 - 2 * shared_ring / shared_pairwise) * (lat + a / rate)
    both = [(ring, hosts), (pairwise, hosts)]
    np.testing.assert_allclose(joint_call_times(both, PAIR, itemsize=4, **off),
                               [2 * shared_ring, pairwise_end], rtol=1e-12)
    ring_t, pairwise_t = joint_timeline(both, PAIR, itemsize=4, **off)
    np.testing.assert_allclose(ring_t, [[0, shared_ring], [shared_ring, 2 * shared_ring]], rtol=1e-12)
    np.testing.assert_allclose(pairwise_t, [[0, pairwise_end]], rtol=1e-12)
    # the emulated links hold each message to the same timeline
    prog = pairwise.program(0)
    held = joint_message_times(both, PAIR, 1, 0, itemsize=4, **off)
    np.testing.assert_allclose(held[prog["kind"] == RECV], [pairwise_end], rtol=1e-12)
    held_ring = joint_message_times(both, PAIR, 0, 0, itemsize=4, **off)
    np.testing.assert_allclose(held_ring[held_ring > 0], [shared_ring, shared_ring], rtol=1e-12)
    # the order of the parts changes nothing
    np.testing.assert_allclose(joint_call_times(both[::-1], PAIR, itemsize=4, **off)[::-1],
                               joint_call_times(both, PAIR, itemsize=4, **off), rtol=1e-12)
    with pytest.raises(InvalidArgument):
        joint_timeline([], PAIR)


def test_joint_call_times_of_one_part_is_predict():
    ring = build_schedule("allreduce", "ring", 2, 1 << 18)
    pairwise = build_schedule("alltoall", "pairwise", 2, 1 << 18)
    hosts = np.arange(2)
    # one part: its steps priced alone, host terms included, as predict prices a call in lockstep
    one = {"machines": np.zeros(2, dtype=np.int64), "cores": 2.0}
    for name, sched in (("ring", ring), ("pairwise", pairwise)):
        collective = "allreduce" if name == "ring" else "alltoall"
        want = cl.model.predict(collective, name, 1 << 20, PAIR, ranks=2, critical_path=False, **one)
        got = joint_call_times([(sched, hosts)], PAIR, itemsize=4, **one)[0]
        assert got == pytest.approx(want, rel=1e-12)
    # without host terms a step lasts as long as its longest message
    off = cl.model.HOST_TERMS_OFF
    held = [cl.model.message_times(ring, PAIR, hosts, r, itemsize=4, **off) for r in range(2)]
    longest = sum(max(h[ring.program(r)["step"] == step].max(initial=0.0) for r, h in enumerate(held))
                  for step in range(ring.num_steps))
    assert joint_call_times([(ring, hosts)], PAIR, itemsize=4, **off)[0] == pytest.approx(longest, rel=1e-12)
    # two parts on the same pair of hosts: each slower than alone, since they share the links
    both = joint_call_times([(ring, hosts), (pairwise, hosts)], PAIR, itemsize=4)
    alone = [joint_call_times([p], PAIR, itemsize=4)[0] for p in ((ring, hosts), (pairwise, hosts))]
    assert both[0] > alone[0] and both[1] > alone[1]
    assert max(alone) < both.max()
    # on disjoint hosts of a non-blocking switch they do not slow each other
    star = "star:n=4,bw=1GB/s,lat=20us"
    apart = joint_call_times([(ring, np.array([0, 1])), (pairwise, np.array([2, 3]))], star, itemsize=4)
    np.testing.assert_allclose(apart, [joint_call_times([(ring, np.array([0, 1]))], star, itemsize=4)[0],
                                       joint_call_times([(pairwise, np.array([2, 3]))], star, itemsize=4)[0]])
    with pytest.raises(InvalidArgument):
        joint_call_times([], PAIR)
    with pytest.raises(InvalidArgument):
        joint_call_times([(ring, hosts)], PAIR, bogus=1)


def _pair(comm, nbytes):
    from mpi4py import MPI

    emu = cl.Communicator(MPI.COMM_WORLD, topology=PAIR, emulate=True, timeout=60)
    mesh = emu.layout(dp=2, ep=2)
    g = np.full(nbytes // 4, comm.rank + 1.0, dtype=np.float32)
    a = np.arange(nbytes // 4, dtype=np.float32) + 1000.0 * comm.rank
    declared = dict(dp=("allreduce", g.nbytes, "float32", "ring"),
                    ep=("alltoall", a.nbytes, "float32", "pairwise"))
    return emu, mesh, g, a, declared


def _pair_parts(g, a):
    hosts = np.arange(2)
    return [(build_schedule("allreduce", "ring", 2, g.size), hosts),
            (build_schedule("alltoall", "pairwise", 2, a.size), hosts)]


@pytest.mark.mpi(ranks=[2])
def test_requests_inside_overlap_are_held_to_the_joint_pricing(comm):
    """dp=2 x ep=2 on 2 ranks: both groups are the same pair, so an all-reduce and an all-to-all
    started together as requests share every link; their holds are the joint pricing's."""
    emu, mesh, g, a, declared = _pair(comm, 1 << 18)
    dp, ep = mesh["dp"], mesh["ep"]
    assert mesh.layout.groups("dp").tolist() == mesh.layout.groups("ep").tolist() == [[0, 1]]
    want_a = np.empty_like(a)
    comm.mpi_comm.Alltoall(a, want_a)
    with mesh.overlap(**declared):
        r_dp, r_ep = dp.iallreduce(g, algorithm="ring"), ep.ialltoall(a, algorithm="pairwise")
        held_dp, held_ep = r_dp._entry.holds.copy(), r_ep._entry.holds.copy()
        got_g, got_a = cl.wait_all([r_dp, r_ep])
    np.testing.assert_array_equal(got_g, np.full(g.size, 3.0, dtype=np.float32))
    np.testing.assert_array_equal(got_a, want_a)
    parts = _pair_parts(g, a)
    host = _host(dp, parts)
    np.testing.assert_array_equal(held_dp, joint_message_times(parts, emu.topology, 0, dp.rank, itemsize=4,
                                                               **host))
    np.testing.assert_array_equal(held_ep, joint_message_times(parts[::-1], emu.topology, 0, ep.rank,
                                                               itemsize=4, **host))
    # entering the same block again reuses what it priced (a training loop enters it every step)
    with mesh.overlap(**declared):
        again = dp.iallreduce(g, algorithm="ring"), ep.ialltoall(a, algorithm="pairwise")
        assert again[0]._entry is r_dp._entry and again[1]._entry is r_ep._entry
        cl.wait_all(again)
    # outside the block each is priced alone again, and that is faster
    dp.allreduce(g, algorithm="ring")
    alone = _held(dp, "allreduce", g, "ring")
    recv = alone > 0
    assert recv.any() and (held_dp[recv] >= alone[recv]).all() and (held_dp[recv] > alone[recv]).any()
    mesh.free()
    emu.free()


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _best_of_three(fn, iters=11):
    """Lowest of three medians of the slowest rank: a burst of other load holds one batch back."""
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    fn()
    fn()
    best = float("inf")
    for _ in range(3):
        times = np.empty(iters)
        for i in range(iters):
            world.Barrier()
            t0 = time.perf_counter()
            fn()
            times[i] = time.perf_counter() - t0
        worst = np.empty_like(times)
        world.Allreduce(times, worst, op=MPI.MAX)
        best = min(best, float(np.median(worst)))
    return best


def _health_of(*comms):
    """Late share and preemptions per call over several Communicators of this rank, worst rank."""
    from mpi4py import MPI

    held = late = calls = 0
    preempted = 0.0
    for c in comms:
        h = c.emulation_health()
        held, late, calls = held + h["held_steps"], late + h["late_steps"], calls + h["calls"]
        preempted += h["preempted_per_call"] * h["calls"]
    world = MPI.COMM_WORLD
    return (world.allreduce(late / max(held, 1), op=MPI.MAX),
            world.allreduce(preempted / max(calls, 1), op=MPI.MAX))


@pytest.mark.mpi(ranks=[2])
@pytest.mark.parametrize("mode", ["requests", "threads"])
def test_concurrent_step_follows_the_joint_model(comm, mode):
    """The measured time of the concurrent dp all-reduce and ep all-to-all is within 20% of the
    joint model's, where the machine can keep to the model (else a skip that says why)."""
    cores = _cores()
    if comm.size > cores:
        pytest.skip(f"{comm.size} ranks share {cores} core(s): emulated times include waiting "
                    "for a core, so accuracy against the model cannot be measured here")
    checks = []
    # from 1 MiB the held time dominates what starting two requests and an overlap block costs
    # in Python (about 0.1-0.3 ms here, more than the whole modelled pair at 64 KiB)
    for nbytes in (1 << 20, 4 << 20):
        emu, mesh, g, a, declared = _pair(comm, nbytes)
        emu.emulation_health()     # held steps of earlier calls in this process are not this test's
        dp, ep = mesh["dp"], mesh["ep"]
        go, ao = np.empty_like(g), np.empty_like(a)

        def requests():
            with mesh.overlap(**declared):
                cl.wait_all([dp.iallreduce(g, out=go, algorithm="ring"),
                              ep.ialltoall(a, out=ao, algorithm="pairwise")])

        def threads():
            with mesh.overlap(**declared):
                th = threading.Thread(target=dp.allreduce, args=(g,), kwargs=dict(out=go, algorithm="ring"))
                th.start()
                ep.alltoall(a, out=ao, algorithm="pairwise")
                th.join()

        measured = _best_of_three(requests if mode == "requests" else threads)
        assert (go == 3.0).all()
        parts = _pair_parts(g, a)
        predicted = joint_call_times(parts, emu.topology, itemsize=4, **_host(dp, parts)).max()
        late, preempted = _health_of(dp, ep)
        checks.append((nbytes, measured, predicted, late, preempted))
        mesh.free()
        emu.free()
    for nbytes, measured, predicted, late, preempted in checks:
        if late > 0.1 or preempted > 0.5:
            pytest.skip(f"emulation could not keep to the model on this machine ({late:.0%} of one "
                        f"rank's steps ended more than 50 us late; a rank lost its core {preempted:.1f} "
                        "times per call): it is loaded, so accuracy cannot be measured now")
    for nbytes, measured, predicted, _, _ in checks:
        assert 0.8 <= measured / predicted <= 1.2, \
            f"{mode} {nbytes} B: measured {measured:.6f} s, joint model {predicted:.6f} s"
