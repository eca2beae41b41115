"""Emulated links: real data over MPI, each message held to the model's delivery time."""

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


def _best_of_three(comm, fn):
    """Best of three medians: 4 ranks share 2 cores here, and a burst of other load can
    hold one batch of iterations back; the model is about the unloaded time."""
    return min(_measure(comm, fn) for _ in range(3))


@pytest.mark.parametrize("spec", [f"star:n={{p}},{SLOW}", f"fat-tree:k=4,{SLOW}"])
def test_emulated_time_follows_the_model(comm, spec):
    from mpi4py import MPI

    topo = cl.topology.resolve(spec.format(p=comm.size))
    emu = cl.Communicator(MPI.COMM_WORLD, topology=topo, emulate=True, timeout=60)
    for alg in ["ring", "rhd", "tree", "hierarchical"]:
        for nbytes in (256 << 10, 4 << 20):
            x = np.full(nbytes // 4, 1.0 + emu.rank, dtype=np.float32)
            y = emu.allreduce(x, algorithm=alg)
            assert np.all(y == sum(1.0 + r for r in range(emu.size))), "emulation must not change results"
            measured = _best_of_three(emu, lambda: emu.allreduce(x, algorithm=alg))
            predicted = cl.model.predict("allreduce", alg, nbytes, topo, ranks=emu.size)
            ratio = measured / predicted
            # generous margins: this machine is shared, and 4 ranks share 2 cores; below 1 because
            # the model ends every step at its slowest rank while ranks in fact go on at once
            assert 0.75 < ratio < 1.5, f"{alg} {nbytes} B: measured {measured:.6f} s, predicted {predicted:.6f} s"
    emu.free()


def test_emulated_alltoall(comm):
    from mpi4py import MPI

    p = comm.size
    fast = cl.topology.resolve(f"star:n={p},{SLOW}")
    emu = cl.Communicator(MPI.COMM_WORLD, topology=fast, emulate=True, timeout=60)
    x = np.arange(p * 65536, dtype=np.float32) + 1000 * comm.rank
    want = np.empty_like(x)
    comm.mpi_comm.Alltoall(x, want)
    got = emu.alltoall(x, algorithm="pairwise")
    assert np.array_equal(got, want)
    measured = _best_of_three(emu, lambda: emu.alltoall(x, algorithm="pairwise"))
    predicted = cl.model.predict("alltoall", "pairwise", x.nbytes, fast, ranks=p)
    assert 0.75 < measured / predicted < 1.5
    emu.free()


def test_emulation_needs_a_topology_with_enough_hosts(comm):
    from mpi4py import MPI

    with pytest.raises(cl.InvalidArgument, match="emulate=True needs a topology"):
        cl.Communicator(MPI.COMM_WORLD, emulate=True)
    if comm.size > 1:
        with pytest.raises(cl.InvalidArgument, match="fewer than"):
            cl.Communicator(MPI.COMM_WORLD, topology="star:n=1", emulate=True)
