"""The torch backend's asynchronous all-reduce, by the progress thread and with
``Options(requests=True)`` (a library request that Work.wait() drives): many in flight,
futures completed without a wait (what DDP relies on), ranks that choose async_op
differently, timeouts.

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
both = pytest.mark.parametrize("requests", [False, True], ids=["thread", "requests"])


def _group(requests, **kw):
    import collectives.torch as ct

    return dist.new_group(backend="collectives", pg_options=ct.Options(requests=requests, **kw))


@mpi(ranks=[2, 3])
@both
@in_step
def test_many_async_all_reduces_in_flight(groups, requests):
    from collectives.torch._progress import RequestWork

    cl = _group(requests)
    p, r = dist.get_world_size(), dist.get_rank()
    works, tensors = [], []
    for i in range(6):
        t = torch.full((1000 * i + 1,), float(r + i))
        works.append(dist.all_reduce(t, group=cl, async_op=True))
        tensors.append(t)
    assert isinstance(works[0], RequestWork) == requests
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
    dist.destroy_process_group(cl)


@mpi(ranks=[2])
@both
@in_step
def test_futures_complete_without_wait(groups, requests):
    """get_future() alone completes (the progress thread completes it): what DDP relies on."""
    cl = _group(requests)
    t = torch.ones(5)
    work = dist.all_reduce(t, group=cl, async_op=True)
    fut = work.get_future()
    assert fut.wait()[0] is t
    assert work.is_completed() and work.is_success()
    assert torch.equal(t, torch.full((5,), 2.0))
    chained = dist.all_reduce(torch.ones(3), group=cl, async_op=True).get_future().then(
        lambda f: f.value()[0] * 10)
    assert torch.equal(chained.wait(), torch.full((3,), 20.0))
    dist.destroy_process_group(cl)


@mpi(ranks=[2])
@both
@in_step
def test_ranks_may_choose_async_op_differently(groups, requests):
    """One rank blocking, the other asynchronous, for the same calls: no hang, same sums.
    (Both must reach the same kind of call: the executor gives requests other tags than
    blocking calls, so the backend may not turn only its asynchronous calls into requests.)"""
    for algorithm in ("ring", "mpi"):
        pg = _group(requests, algorithm=algorithm)
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
@both
@in_step
def test_an_async_all_reduce_that_times_out_says_so(groups, requests):
    from collectives.errors import CollectiveTimeout

    quick = _group(requests, timeout=0.5)
    if dist.get_rank() == 0:
        work = dist.all_reduce(torch.ones(4), group=quick, async_op=True)
        with pytest.raises(CollectiveTimeout, match="Timed out in allreduce"):
            work.wait()
        assert work.exception() is not None
        assert work.is_completed() and not work.is_success()
        with pytest.raises(Exception, match="Timed out"):
            work.get_future().wait()
    dist.barrier(group=groups[1], timeout=timedelta(seconds=60))


@mpi(ranks=[2])
@in_step
def test_ddp_over_requests_matches_the_thread(groups):
    """DDP's buckets over a requests=True group (futures completed by the thread) train to the
    parameters of the default group, bit for bit at 2 ranks."""
    from test_torch_ddp_hook import train

    pg = _group(True)
    a, _ = train(pg, steps=4)
    b, _ = train(groups[0], steps=4)
    assert torch.equal(a, b)
    dist.destroy_process_group(pg)
