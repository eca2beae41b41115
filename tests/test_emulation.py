"""Emulated links: real data over MPI, each message held to the model's delivery time.

Accuracy is checked only where it can be measured: with a core per rank, and while
the library itself reports that its holds kept to the model (a loaded machine makes
steps end late; the test then skips and says so, it never widens its bounds).
"""

import os
import time

import numpy as np
import pytest

import collectives as cl

pytestmark = pytest.mark.mpi(ranks=[2, 4])

SLOW = "bw=1GB/s,lat=20us"   # slow enough that the emulated time dominates the real one


def _measure(comm, fn, iters=11):
    """Median over iterations of the slowest rank: robust to a rank descheduled now and then."""
    from mpi4py import MPI

    fn()
    fn()
    times = []
    for _ in range(iters):
        comm.mpi_comm.Barrier()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    worst = np.empty(len(times))
    comm.mpi_comm.Allreduce(np.asarray(times), worst, op=MPI.MAX)
    return float(np.median(worst))


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _skip_unless_a_core_per_rank(comm):
    if comm.size > _cores():
        pytest.skip(f"{comm.size} ranks share {_cores()} core(s): emulated times include waiting "
                    "for a core, so accuracy against the model cannot be measured here")


def _skip_if_emulation_fell_behind(emu):
    """Skip (on every rank alike) when the library reports that it could not keep to the model:
    steps that ended late, or a rank that kept losing its core to other processes."""
    from mpi4py import MPI

    health = emu.emulation_health()
    share = health["late_steps"] / max(health["held_steps"], 1)
    worst = emu.mpi_comm.allreduce(share, op=MPI.MAX)
    preempted = emu.mpi_comm.allreduce(health["preempted_per_call"], op=MPI.MAX)
    if worst > 0.1 or preempted > 0.5:
        pytest.skip(f"emulation could not keep to the model on this machine ({worst:.0%} of one "
                    f"rank's steps ended more than 50 us late; a rank lost its core {preempted:.1f} "
                    "times per call): it is loaded, so accuracy cannot be measured now")


def _best_of_three(comm, fn):
    """Best of three medians: 4 ranks share 2 cores here, and a burst of other load can
    hold one batch of iterations back; the model is about the unloaded time."""
    return min(_measure(comm, fn) for _ in range(3))


@pytest.mark.parametrize("spec", [f"star:n={{p}},{SLOW}", f"fat-tree:k=4,{SLOW}"])
def test_emulated_time_follows_the_model(comm, spec):
    from mpi4py import MPI

    _skip_unless_a_core_per_rank(comm)
    topo = cl.topology.resolve(spec.format(p=comm.size))
    emu = cl.Communicator(MPI.COMM_WORLD, topology=topo, emulate=True, timeout=60)
    emu.emulation_health()
    ratios = []
    for alg in ["ring", "rhd", "tree", "hierarchical"]:
        for nbytes in (256 << 10, 4 << 20):
            x = np.full(nbytes // 4, 1.0 + emu.rank, dtype=np.float32)
            y = emu.allreduce(x, algorithm=alg)
            assert np.all(y == sum(1.0 + r for r in range(emu.size))), "emulation must not change results"
            measured = _best_of_three(emu, lambda: emu.allreduce(x, algorithm=alg))
            predicted = cl.model.predict("allreduce", alg, nbytes, topo, ranks=emu.size)
            ratios.append((alg, nbytes, measured, predicted))
    _skip_if_emulation_fell_behind(emu)
    for alg, nbytes, measured, predicted in ratios:
        # below 1 because the model ends every step at its slowest rank while ranks in fact
        # go on at once; above 1 by the host's own per-step costs
        assert 0.75 < measured / predicted < 1.5, \
            f"{alg} {nbytes} B: measured {measured:.6f} s, predicted {predicted:.6f} s"
    emu.free()


def test_emulated_alltoall(comm):
    from mpi4py import MPI

    p = comm.size
    fast = cl.topology.resolve(f"star:n={p},{SLOW}")
    emu = cl.Communicator(MPI.COMM_WORLD, topology=fast, emulate=True, timeout=60)
    emu.emulation_health()
    x = np.arange(p * 65536, dtype=np.float32) + 1000 * comm.rank
    want = np.empty_like(x)
    comm.mpi_comm.Alltoall(x, want)
    got = emu.alltoall(x, algorithm="pairwise")
    assert np.array_equal(got, want)
    _skip_unless_a_core_per_rank(comm)      # the results were checked above on any machine
    measured = _best_of_three(emu, lambda: emu.alltoall(x, algorithm="pairwise"))
    predicted = cl.model.predict("alltoall", "pairwise", x.nbytes, fast, ranks=p)
    _skip_if_emulation_fell_behind(emu)
    assert 0.75 < measured / predicted < 1.5
    emu.free()


def test_emulation_that_cannot_keep_to_the_model_warns_once(comm):
    """Links far faster than this machine moves data: every step ends late, and the library
    says so, once, with the numbers."""
    from mpi4py import MPI

    from collectives import communicator

    if comm.size < 2:
        pytest.skip("one rank holds nothing")
    instant = cl.topology.resolve(f"star:n={comm.size},bw=1000TB/s,lat=1ns")
    communicator._emulation_warned = False
    emu = cl.Communicator(MPI.COMM_WORLD, topology=instant, emulate=True, timeout=60)
    communicator._emulation_warned = False     # a warning for ranks > cores is not this one
    x = np.ones(4 << 20, dtype=np.float32)
    with pytest.warns(cl.EmulationWarning, match="fall behind the model") as seen:
        for _ in range(15):
            emu.allreduce(x, algorithm="ring")
    assert len([w for w in seen if issubclass(w.category, cl.EmulationWarning)]) == 1
    health = emu.emulation_health()
    assert health["late_steps"] > 0.5 * health["held_steps"] > 0
    # the holds were due at once, so the lateness is the data's: 4 MiB cannot cross in 1 ns
    assert health["data_late_steps"] >= health["late_steps"]
    assert 0 < health["data_late_total"] <= health["late_total"]
    assert health["late_total"] >= health["late_steps"] * 50e-6
    emu.free()


def test_emulation_needs_a_topology_with_enough_hosts(comm):
    from mpi4py import MPI

    with pytest.raises(cl.InvalidArgument, match="emulate=True needs a topology"):
        cl.Communicator(MPI.COMM_WORLD, emulate=True)
    if comm.size > 1:
        with pytest.raises(cl.InvalidArgument, match="fewer than"):
            cl.Communicator(MPI.COMM_WORLD, topology="star:n=1", emulate=True)


def test_predict_on_emulated_links_prices_this_machine_and_the_emulated_call(comm):
    # an emulated Communicator's predict is what an emulated call costs here: its ranks share
    # this machine (its cores and memory) and each call pays the emulation's own per-call cost
    from mpi4py import MPI

    topo = cl.topology.resolve(f"star:n={comm.size},{SLOW}")
    emu = cl.Communicator(MPI.COMM_WORLD, topology=topo, emulate=True, timeout=60)
    try:
        host = emu._emulated_host
        want = cl.model.predict("alltoall", "bruck", 1 << 20, topo, ranks=comm.size, **host,
                                call_overhead=cl.model.DEFAULTS["call_overhead"]
                                + cl.model.EMULATION_CALL_OVERHEAD)
        assert emu.predict("alltoall", "bruck", 1 << 20) == pytest.approx(want, rel=1e-12)
        plain = cl.model.predict("alltoall", "bruck", 1 << 20, topo, ranks=comm.size)
        assert emu.predict("alltoall", "bruck", 1 << 20) > plain
    finally:
        emu.free()
