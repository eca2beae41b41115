"""Sub-communicators and parallel layouts: split, layout, and collectives on them."""

import numpy as np
import pytest

from collectives import InvalidArgument, InvalidType


def _digest(comm, a):
    """Every member's bytes of ``a``, gathered: bitwise identical rows or not."""
    return comm.allgather(np.frombuffer(a.tobytes(), dtype=np.uint8).copy(), algorithm="mpi").reshape(comm.size, -1)


def _check_collectives(sub, salt):
    """Every collective on ``sub``: correct, and bitwise identical among its members."""
    r, p = sub.rank, sub.size
    x = (np.arange(1000, dtype=np.int64) * 7 + r * 3 + salt) % 11
    np.testing.assert_array_equal(sub.allreduce(x), sum((np.arange(1000) * 7 + q * 3 + salt) % 11
                                                        for q in range(p)))
    rng = np.random.default_rng(1000 * salt + r)
    f = rng.standard_normal(4097).astype(np.float32)
    total = sub.allreduce(f)
    rows = _digest(sub, total)
    assert (rows == rows[0]).all()
    g = sub.allgather(np.full(3, r + salt, dtype=np.int32))
    assert g.tolist() == [q + salt for q in range(p) for _ in range(3)]
    b = np.full(5, r, dtype=np.float64)
    sub.broadcast(b, root=p - 1)
    assert (b == p - 1).all()
    a = sub.alltoall(np.arange(2 * p, dtype=np.int64) + 100 * r)
    assert a.tolist() == [100 * q + 2 * r + k for q in range(p) for k in range(2)]
    rs = sub.reduce_scatter(np.ones(3 * p, dtype=np.int64))
    assert rs.tolist() == [p] * 3


@pytest.mark.mpi(ranks=[1, 2, 3, 4])
def test_split_by_parity(comm):
    sub = comm.split(comm.rank % 2, key=-comm.rank)        # reversed order within each color
    members = [q for q in range(comm.size) if q % 2 == comm.rank % 2]
    assert sub.size == len(members)
    assert sub.rank == members[::-1].index(comm.rank)
    assert sub.parent_ranks.tolist() == members[::-1]
    assert sub.timeout == comm.timeout and sub.segment_bytes == comm.segment_bytes
    _check_collectives(sub, salt=comm.rank % 2)
    sub.free()


@pytest.mark.mpi(ranks=[2, 3])
def test_split_none_joins_nothing(comm):
    sub = comm.split(None if comm.rank == 0 else 1)
    if comm.rank == 0:
        assert sub is None
    else:
        assert sub.size == comm.size - 1
        assert sub.allreduce(np.ones(2)).tolist() == [comm.size - 1] * 2
    comm.barrier()


@pytest.mark.mpi(ranks=[2, 3])
def test_split_bad_color_raises_on_every_rank(comm):
    bad = "red" if comm.rank == 0 else 1
    with pytest.raises((InvalidType, InvalidArgument)):
        comm.split(bad)
    with pytest.raises(InvalidArgument):
        comm.split(-1 if comm.rank == comm.size - 1 else 0)
    assert comm.allreduce(np.ones(1)).tolist() == [comm.size]


@pytest.mark.mpi(ranks=[4])
def test_dp_tp_layout_both_busy(comm):
    from collectives.workload import Layout

    mesh = comm.layout(dp=2, tp=2)
    assert mesh.layout == Layout(dp=2, tp=2)
    for dim in ("tp", "dp", "pp", "ep", "edp"):
        members = mesh.layout.group_of(comm.rank, dim).tolist()
        assert mesh[dim].parent_ranks.tolist() == members
        assert mesh[dim].rank == members.index(comm.rank) == mesh.coords[dim]
    assert mesh["tp"].parent_ranks.tolist() == [comm.rank // 2 * 2, comm.rank // 2 * 2 + 1]
    # both dimensions busy at once: non-blocking point-to-point over dp while tp reduces
    tp, dp = mesh["tp"], mesh["dp"]
    peer = 1 - dp.rank
    out = np.zeros(1 << 16, dtype=np.float32)
    recv = dp.irecv(out, peer, tag=1)
    send = dp.isend(np.full(1 << 16, comm.rank, dtype=np.float32), peer, tag=1)
    for salt in range(3):
        _check_collectives(tp, salt)
        _check_collectives(dp, salt + 10)
    recv.wait()
    send.wait()
    assert (out == dp.parent_ranks[peer]).all()
    mesh.free()


@pytest.mark.mpi(ranks=[4])
def test_pipeline_layout_order(comm):
    mesh = comm.layout(dp=1, tp=2, pp=2, order="tp-pp-dp")
    assert mesh["pp"].size == 2 and mesh["tp"].size == 2 and mesh["dp"].size == 1
    assert mesh["pp"].parent_ranks.tolist() == mesh.layout.group_of(comm.rank, "pp").tolist()
    _check_collectives(mesh["pp"], salt=5)


@pytest.mark.mpi(ranks=[4])
def test_layout_with_topology_restricts_placement(mpi_nranks):
    import collectives as cl
    from mpi4py import MPI

    comm = cl.Communicator(MPI.COMM_WORLD, topology="fat-tree:k=4")
    mesh = comm.layout(tp=2, dp=2)
    tp = mesh["tp"]
    assert tp.topology is comm.topology
    assert list(tp.placement) == [comm.placement[m] for m in tp.parent_ranks]
    _check_collectives(tp, salt=1)
    plan = tp.plan("allreduce", 1 << 20)
    assert plan.algorithm
    mesh.free()
    comm.free()


@pytest.mark.mpi(ranks=[2, 4])
def test_layout_bad_product(comm):
    with pytest.raises(InvalidArgument):
        comm.layout(dp=3, tp=3)
    with pytest.raises(InvalidArgument):
        comm.layout(tp=0)
    assert comm.allreduce(np.ones(1)).tolist() == [comm.size]
