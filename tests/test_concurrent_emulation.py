"""Concurrent communicators on emulated links: the holds of a call are those of the joint pricing.

Sub-communicators of an emulated layout price each call together with the same call
on every other group of their split, and inside ``Mesh.overlap`` also with the calls
declared for the other dimensions. These tests compute the joint pricing directly
and compare holds exactly (no wall-clock), and check that results stay right when
both dimensions run at once in two threads.
"""

import threading

import numpy as np
import pytest

import collectives as cl
from collectives import InvalidArgument
from collectives.algorithms import build_schedule
from collectives.model.joint import joint_message_times, joint_step_times

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
