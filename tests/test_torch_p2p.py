"""Point-to-point, torch's call forms, the coalesced and uneven forms, reduce and timeouts of
the "collectives" backend, against gloo where gloo has the operation."""

from datetime import timedelta

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

import torch.distributed as dist  # noqa: E402
from torch.distributed.distributed_c10d import _coalescing_manager  # noqa: E402

from test_torch_backend import _assert_equal, _data, groups, in_step  # noqa: E402,F401

mpi = pytest.mark.mpi


@mpi(ranks=[2, 3])
@in_step
def test_the_group_methods_in_torchs_forms(groups):
    pg = groups[0]
    p, r = dist.get_world_size(), dist.get_rank()
    t = torch.full((4,), float(r))
    pg.broadcast(t, root=p - 1).wait()
    assert torch.equal(t, torch.full((4,), float(p - 1)))
    outs = [torch.empty(2) for _ in range(p)]
    pg.allgather(outs, torch.full((2,), float(r))).wait()
    assert [o[0].item() for o in outs] == list(range(p))
    t = torch.full((3,), float(r))
    pg.allreduce([t], dist.ReduceOp.MAX).wait()
    assert torch.equal(t, torch.full((3,), float(p - 1)))
    t = torch.ones(3)
    pg.allreduce(t).wait()
    assert torch.equal(t, torch.full((3,), float(p)))
    t = torch.ones(2)
    pg.reduce(t, 0, dist.ReduceOp.SUM).wait()
    if r == 0:
        assert torch.equal(t, torch.full((2,), float(p)))
    pg.barrier(timedelta(seconds=30)).wait()


@mpi(ranks=[2, 3, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.bfloat16])
@in_step
def test_reduce_matches_gloo_on_every_root(groups, dtype):
    cl, gloo = groups
    p = dist.get_world_size()
    for root in range(p):
        for n in (1, 7, 1000):   # not a multiple of the group size: the last block is padding
            x = _data((n,), dtype, salt=root + n)
            a, b = x.clone(), x.clone()
            dist.reduce(a, dst=root, group=cl)
            dist.reduce(b, dst=root, group=gloo)
            if dist.get_rank() == root:
                _assert_equal(a, b, f"reduce to {root}, {n} elements")


@mpi(ranks=[2, 3])
@in_step
def test_send_recv_any_source_and_zero_length(groups):
    p, r = dist.get_world_size(), dist.get_rank()
    if r == 0:
        got = set()
        for _ in range(p - 1):
            x = torch.empty(3)
            src = dist.recv(x, tag=5)
            assert torch.equal(x, torch.full((3,), float(src)))
            got.add(src)
        assert got == set(range(1, p))
        dist.send(torch.empty(0), 1, tag=6)
    else:
        dist.send(torch.full((3,), float(r)), 0, tag=5)
        if r == 1:
            empty = torch.empty(0)
            assert dist.recv(empty, 0, tag=6) == 0
    dist.barrier()


@mpi(ranks=[2, 3, 4])
@in_step
def test_batch_isend_irecv_ring(groups):
    p, r = dist.get_world_size(), dist.get_rank()
    send = torch.arange(300_000, dtype=torch.float32) + r   # past the eager limit: a rendezvous
    recv = torch.empty_like(send)
    ops = [dist.P2POp(dist.isend, send, (r + 1) % p), dist.P2POp(dist.irecv, recv, (r - 1) % p)]
    for work in dist.batch_isend_irecv(ops):
        work.wait()
    assert torch.equal(recv, torch.arange(300_000, dtype=torch.float32) + (r - 1) % p)
    # isend / irecv on a sub-group: ranks are global
    if p >= 3:
        sub = dist.new_group([0, 2], backend="collectives")
        if r == 0:
            dist.isend(torch.full((2,), 7.0), 2, group=sub).wait()
        elif r == 2:
            y = torch.empty(2)
            dist.irecv(y, 0, group=sub).wait()
            assert torch.equal(y, torch.full((2,), 7.0))
    dist.barrier()


@mpi(ranks=[2, 3])
@in_step
def test_reduce_scatter_with_a_size_per_rank_matches_gloo(groups):
    cl, gloo = groups
    p, r = dist.get_world_size(), dist.get_rank()
    ins = [_data((j + 1, 2), torch.float32, salt=j) for j in range(p)]
    a, b = torch.empty(r + 1, 2), torch.empty(r + 1, 2)
    dist.reduce_scatter(a, ins, group=cl)
    dist.reduce_scatter(b, ins, group=gloo)
    _assert_equal(a, b, "reduce_scatter")


@mpi(ranks=[2, 3])
@in_step
def test_coalesced_forms(groups):
    cl, gloo = groups
    p, r = dist.get_world_size(), dist.get_rank()
    a, b = _data((2,), torch.float32, 1), _data((3, 2), torch.float32, 2)
    oa, ob = torch.empty(2 * p), torch.empty(3 * p, 2)
    with _coalescing_manager(group=cl, async_ops=True) as cm:
        dist.all_gather_into_tensor(oa, a, group=cl)
        dist.all_gather_into_tensor(ob, b, group=cl)
    cm.wait()
    ga, gb = torch.empty(2 * p), torch.empty(3 * p, 2)
    dist.all_gather_into_tensor(ga, a, group=gloo)
    dist.all_gather_into_tensor(gb, b, group=gloo)
    _assert_equal([oa, ob], [ga, gb], "all_gather_into_tensor coalesced")

    ia, ib = _data((2 * p,), torch.float32, 3), _data((3 * p, 2), torch.float32, 4)
    ra, rb = torch.empty(2), torch.empty(3, 2)
    with _coalescing_manager(group=cl, async_ops=True) as cm:
        dist.reduce_scatter_tensor(ra, ia, group=cl)
        dist.reduce_scatter_tensor(rb, ib, group=cl)
    cm.wait()
    sa, sb = torch.empty(2), torch.empty(3, 2)
    dist.reduce_scatter_tensor(sa, ia, group=gloo)
    dist.reduce_scatter_tensor(sb, ib, group=gloo)
    _assert_equal([ra, rb], [sa, sb], "reduce_scatter_tensor coalesced")

    lists = [[torch.empty(2), torch.empty(1)] for _ in range(p)]   # lists[q]: rank q's inputs
    dist.all_gather_coalesced(lists, [torch.full((2,), float(r)), torch.full((1,), 10.0 * r)], group=cl)
    assert [row[0][0].item() for row in lists] == list(range(p))
    assert [row[1].item() for row in lists] == [10 * q for q in range(p)]

    ts = [torch.full((3,), float(r)), torch.full((2,), 1.0)]
    dist.all_reduce_coalesced(ts, group=cl)
    assert torch.equal(ts[0], torch.full((3,), float(sum(range(p)))))
    assert torch.equal(ts[1], torch.full((2,), float(p)))


@mpi(ranks=[2, 3])
@in_step
def test_uneven_all_to_all_matches_gloo(groups):
    cl, gloo = groups
    p, r = dist.get_world_size(), dist.get_rank()
    # rank r sends (r + j) % 3 rows to rank j (zero rows included)
    in_splits = [(r + j) % 3 for j in range(p)]
    out_splits = [(j + r) % 3 for j in range(p)]
    x = _data((sum(in_splits), 4), torch.float32)
    a, b = torch.empty(sum(out_splits), 4), torch.empty(sum(out_splits), 4)
    dist.all_to_all_single(a, x, out_splits, in_splits, group=cl)
    dist.all_to_all_single(b, x, out_splits, in_splits, group=gloo)
    _assert_equal(a, b, "all_to_all_single")
    ins = [_data((j + 1,), torch.float32, salt=j) for j in range(p)]
    outs = [torch.empty(r + 1) for _ in range(p)]
    dist.all_to_all(outs, ins, group=cl)
    # gloo's list all_to_all wants equal sizes: its all_to_all_single is the reference
    flat = torch.empty(p * (r + 1))
    dist.all_to_all_single(flat, torch.cat(ins), [r + 1] * p, [j + 1 for j in range(p)],
                           group=gloo)
    _assert_equal(outs, list(flat.split(r + 1)), "all_to_all")


@mpi(ranks=[4])
@in_step
def test_new_subgroups(groups):
    sub, subs = dist.new_subgroups(2, backend="collectives")
    t = torch.full((1,), float(dist.get_rank()))
    dist.all_reduce(t, group=sub)
    mine = dist.get_rank() // 2
    assert t.item() == float(4 * mine + 1)
    assert len(subs) == 2
    for s in subs:
        dist.destroy_process_group(s)


@mpi(ranks=[2])
@in_step
def test_timeouts_say_timed_out_and_name_the_peer(groups):
    import collectives.torch as ct
    from collectives.errors import CollectiveTimeout

    quick = dist.new_group(backend="collectives", pg_options=ct.Options(timeout=0.5))
    if dist.get_rank() == 0:
        with pytest.raises(CollectiveTimeout, match="Timed out") as err:
            dist.recv(torch.empty(2), 1, tag=9, group=quick)
        assert err.value.peers == (1,) and "rank 1" in str(err.value)
        with pytest.raises(CollectiveTimeout, match="Timed out.*barrier") as err:
            dist.barrier(group=quick)
    dist.barrier()


@mpi(ranks=[2])
@in_step
def test_unimplemented_methods_name_the_backend(groups):
    with pytest.raises(NotImplementedError, match="collectives backend: _start_coalescing"):
        with _coalescing_manager(group=groups[0], device=torch.device("cpu")):
            pass
    dist.distributed_c10d._world.pg_coalesce_state.pop(groups[0], None)


@mpi(ranks=[2, 3])
@in_step
def test_sparse_all_reduce_matches_gloo(groups):
    cl, gloo = groups
    r = dist.get_rank()
    # rank 0 holds no entries at all; the others overlap at index 3
    if r == 0:
        x = torch.sparse_coo_tensor(torch.empty(1, 0, dtype=torch.long), torch.empty(0, 2), (6, 2))
    else:
        x = torch.sparse_coo_tensor([[r, 3]], [[1.0 + r, 2.0], [0.5, r]], (6, 2))
    a, b = x.clone(), x.clone()
    dist.all_reduce(a, group=cl)
    dist.all_reduce(b, group=gloo)
    assert a.layout == torch.sparse_coo
    _assert_equal(a.to_dense(), b.to_dense(), "sparse all_reduce")
    with pytest.raises(ValueError, match="SUM only"):
        dist.all_reduce(x.clone(), op=dist.ReduceOp.MAX, group=cl)


@mpi(ranks=[2])
@in_step
def test_two_stage_pipeline_matches_one_process(groups):
    """A 2-stage pipeline, one forward then one backward per micro-batch (1F1B on two
    stages), activations and gradients over isend/irecv: the same loss and gradients as
    the whole model in one process."""
    torch.manual_seed(0)
    stages = [torch.nn.Linear(6, 8), torch.nn.Linear(8, 3)]
    data = torch.randn(4, 2, 6, generator=torch.Generator().manual_seed(3))   # 4 micro-batches
    target = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(4))
    # the reference: the whole model in this process
    whole = [torch.nn.Linear(6, 8), torch.nn.Linear(8, 3)]
    for w, s in zip(whole, stages):
        w.load_state_dict(s.state_dict())
    ref_losses = []
    for x, y in zip(data, target):
        loss = torch.nn.functional.mse_loss(whole[1](torch.relu(whole[0](x))), y)
        loss.backward()
        ref_losses.append(loss.item())
    r = dist.get_rank()
    mine = stages[r]
    losses = []
    for x, y in zip(data, target):
        if r == 0:
            h = torch.relu(mine(x))
            dist.isend(h.detach().contiguous(), 1, tag=1).wait()
            grad = torch.empty_like(h)
            dist.irecv(grad, 1, tag=2).wait()
            h.backward(grad)
        else:
            h = torch.empty(2, 8)
            dist.irecv(h, 0, tag=1).wait()
            h.requires_grad_(True)
            loss = torch.nn.functional.mse_loss(mine(h), y)
            loss.backward()
            losses.append(loss.item())
            dist.isend(h.grad.contiguous(), 0, tag=2).wait()
    if r == 1:
        assert losses == ref_losses
    for p_mine, p_ref in zip(mine.parameters(), whole[r].parameters()):
        torch.testing.assert_close(p_mine.grad, p_ref.grad, rtol=1e-6, atol=1e-7)
