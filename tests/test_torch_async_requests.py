"""The torch backend's asynchronous all-reduce as a library request driven by Work.wait().

The worker setup is test_torch_ddp_hook's (a "collectives" default group and a gloo group).
"""

from datetime import timedelta

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

import torch.distributed as dist  # noqa: E402

from test_torch_ddp_hook import groups, in_step  # noqa: E402,F401  (the fixture and the guard)

mpi = pytest.mark.mpi


@mpi(ranks=[2, 3])
@in_step
def test_async_all_reduce_is_a_request_driven_by_wait(groups):
    from collectives.torch._progress import RequestWork

    cl, gloo = groups
    p, r = dist.get_world_size(), dist.get_rank()
    works, tensors = [], []
    for i in range(6):
        t = torch.full((1000 * i + 1,), float(r + i))
        works.append(dist.all_reduce(t, group=cl, async_op=True))
        tensors.append(t)
    assert isinstance(works[0], RequestWork)
    for i in reversed(range(6)):       # completed in any order
        works[i].wait()
        expected = float(sum(range(p)) + p * i)
        assert torch.equal(tensors[i], torch.full_like(tensors[i], expected))
    # a non-contiguous tensor is reduced in a contiguous copy and written back
    m = torch.arange(12.0).reshape(3, 4) + r
    view = m[:, ::2]
    dist.all_reduce(view, group=cl, async_op=True).wait()
    ref = (torch.arange(12.0).reshape(3, 4) * p + sum(range(p)))[:, ::2]
    assert torch.equal(view, ref)
    assert torch.equal(m[:, 1::2], (torch.arange(12.0).reshape(3, 4) + r)[:, 1::2])


@mpi(ranks=[2])
@in_step
def test_futures_complete_without_wait(groups):
    """get_future() alone completes (the worker completes it): what DDP relies on."""
    cl, _ = groups
    t = torch.ones(5)
    work = dist.all_reduce(t, group=cl, async_op=True)
    fut = work.get_future()
    assert fut.wait()[0] is t
    assert work.is_completed() and work.is_success()
    assert torch.equal(t, torch.full((5,), 2.0))
    chained = dist.all_reduce(torch.ones(3), group=cl, async_op=True).get_future().then(
        lambda f: f.value()[0] * 10)
    assert torch.equal(chained.wait(), torch.full((3,), 20.0))


@mpi(ranks=[2])
@in_step
def test_ranks_may_choose_async_op_differently(groups):
    """One rank blocking, the other asynchronous, for the same calls: no hang, same sums
    (every all-reduce is a request, so both use the same tags)."""
    import collectives.torch as ct

    for algorithm in ("ring", "mpi"):
        pg = dist.new_group(backend="collectives", pg_options=ct.Options(algorithm=algorithm))
        ts = [torch.full((4096,), float(i)) for i in range(3)]
        if dist.get_rank() == 0:
            for t in ts:
                dist.all_reduce(t, group=pg)
        else:
            for w in [dist.all_reduce(t, group=pg, async_op=True) for t in ts]:
                w.wait()
        for i, t in enumerate(ts):
            assert torch.equal(t, torch.full((4096,), 2.0 * i)), algorithm
        dist.destroy_process_group(pg)


@mpi(ranks=[2])
@in_step
def test_a_request_that_times_out_says_so(groups):
    import collectives.torch as ct
    from collectives.errors import CollectiveTimeout

    quick = dist.new_group(backend="collectives", pg_options=ct.Options(timeout=0.5))
    if dist.get_rank() == 0:
        work = dist.all_reduce(torch.ones(4), group=quick, async_op=True)
        with pytest.raises(CollectiveTimeout, match="Timed out in allreduce"):
            work.wait()
        assert work.is_completed() and not work.is_success()
        with pytest.raises(Exception, match="Timed out"):
            work.get_future().wait()
    dist.barrier(group=groups[1], timeout=timedelta(seconds=60))
