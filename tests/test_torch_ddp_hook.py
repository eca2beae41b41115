"""collectives.torch.persistent_allreduce_hook: DDP's gradient buckets as persistent requests.

Each worker makes the default group over "collectives" and a gloo group (as in
test_torch_backend.py); DDP trains the same model over the hook, over DDP's
built-in all-reduce and over gloo, and the parameters are compared.
"""

import gc
from datetime import timedelta

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

import torch.distributed as dist  # noqa: E402
from torch import nn  # noqa: E402

mpi = pytest.mark.mpi


@pytest.fixture(scope="module")
def groups():
    """(collectives default group, gloo group), made once per worker."""
    import collectives.torch as ct

    if not dist.is_initialized():
        torch.set_num_threads(1)
        ct.init_process_group("collectives")
    gloo = dist.new_group(backend="gloo", timeout=timedelta(seconds=60))
    yield dist.group.WORLD, gloo


def in_step(test):
    """All ranks fail together (see test_torch_backend.in_step): no rank is left in a collective."""
    import functools

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        error = None
        try:
            test(*args, **kwargs)
        except pytest.skip.Exception:
            raise
        except BaseException as exc:  # noqa: BLE001
            error = exc
        gloo = kwargs["groups"][1]
        flags = [torch.zeros(1) for _ in range(dist.get_world_size())]
        dist.all_gather(flags, torch.tensor([1.0 if error is not None else 0.0]), group=gloo)
        failed = [r for r, f in enumerate(flags) if f.item()]
        if error is not None:
            raise error
        if failed:
            pytest.fail(f"rank(s) {failed} failed this test (see their reports)")
    return wrapper


class OutOfOrder(nn.Module):
    """Layers of uneven sizes used in another order than they were registered, so DDP's
    buckets (built in registration order) are rebuilt after step 1 with other sizes."""

    def __init__(self, width=16, dtype=torch.float32):
        super().__init__()
        self.head = nn.Linear(3 * width, 8)
        self.inner = nn.Linear(2 * width, 3 * width)
        self.first = nn.Linear(width, 2 * width)
        self.to(dtype)

    def forward(self, x):
        return self.head(torch.relu(self.inner(torch.relu(self.first(x)))))


def train(group, *, hook=False, steps=6, dtype=torch.float32, bucket_cap_mb=None, seed=5,
          record=None, **ddp_options):
    """DDP over ``group``; returns (flat parameters, hook state or None)."""
    import collectives.torch as ct

    if bucket_cap_mb is None:   # the same buckets (in elements) for every dtype
        bucket_cap_mb = 0.004 * dtype.itemsize / 4

    torch.manual_seed(seed)
    model = OutOfOrder(dtype=dtype)
    ddp = nn.parallel.DistributedDataParallel(model, process_group=group, bucket_cap_mb=bucket_cap_mb,
                                              **ddp_options)
    state = None
    if hook:
        state = ct.PersistentAllreduce(group)
        if record is None:
            ddp.register_comm_hook(state, ct.persistent_allreduce_hook)
        else:
            def recording(state, bucket):
                record.append((bucket.index(), bucket.buffer().numel()))
                return ct.persistent_allreduce_hook(state, bucket)
            ddp.register_comm_hook(state, recording)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(seed + 100 * dist.get_rank())
    for step in range(steps):
        if record is not None:
            record.append(("step", step))
        x = torch.randn(8, 16, generator=g).to(dtype)
        opt.zero_grad(set_to_none=True)
        ((ddp(x) - 1) ** 2).mean().backward()
        opt.step()
    flat = torch.cat([p.detach().float().reshape(-1) for p in model.parameters()])
    return flat, state


def _everyone(t, gloo):
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t.contiguous(), group=gloo)
    return out


@mpi(ranks=[2, 3])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@in_step
def test_hook_matches_builtin_allreduce_and_gloo(groups, mpi_nranks, dtype):
    import collectives.torch as ct

    dt = getattr(torch, dtype)
    cl, gloo = groups
    # one algorithm for both runs, so that 3 ranks add in one order whatever "auto" picks
    ring = dist.new_group(backend="collectives", pg_options=ct.Options(algorithm="ring"))
    with_hook, state = train(ring, hook=True, dtype=dt)
    builtin, _ = train(ring, dtype=dt)
    assert torch.equal(with_hook, builtin), \
        f"hook and built-in all-reduce end {(with_hook - builtin).abs().max().item():.3g} apart"
    assert state.inits > len(state.requests), "the buckets were not rebuilt after step 1"
    auto_hook, _ = train(cl, hook=True, dtype=dt)
    over_gloo, _ = train(gloo, dtype=dt)
    for t in (with_hook, auto_hook, over_gloo):
        for r, x in enumerate(_everyone(t, gloo)):
            assert torch.equal(x, t), f"rank {r} holds other parameters than this rank"
    if mpi_nranks == 2:
        assert torch.equal(auto_hook, over_gloo), "2 ranks add in one order: should be bitwise gloo's"
    else:
        torch.testing.assert_close(auto_hook, over_gloo, rtol=2 ** -6 if dt != torch.float32 else 1e-6,
                                   atol=2 ** -9 if dt != torch.float32 else 1e-6)
    torch.manual_seed(5)
    assert not torch.equal(with_hook, torch.cat([p.detach().float().reshape(-1)
                                                for p in OutOfOrder(dtype=dt).parameters()]))
    dist.destroy_process_group(ring)


@mpi(ranks=[2])
@pytest.mark.parametrize("option", ["gradient_as_bucket_view", "find_unused_parameters", "static_graph"])
@in_step
def test_hook_with_ddp_options(groups, option):
    """DDP's options that change how buckets are filled and waited for: still its own bits."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with_hook, state = train(groups[0], hook=True, steps=4, **{option: True})
        builtin, _ = train(groups[0], steps=4, **{option: True})
    assert torch.equal(with_hook, builtin)
    state.close()


@mpi(ranks=[2, 3])
@in_step
def test_bucket_identity_agrees_and_rebuild_reinits(groups):
    """Every rank sees the same buckets in the same order; after the rebuild the resized
    buckets get new requests and the old ones are freed."""
    record = []
    _, state = train(groups[0], hook=True, steps=4, record=record)
    first = [e for e in record[1:record.index(("step", 1))]]
    later = [e for e in record[record.index(("step", 1)) + 1:record.index(("step", 2))]]
    assert first != later, f"the buckets were not rebuilt: {first} then {later}"
    assert [i for i, _ in later] == list(range(len(later))), f"buckets out of index order: {later}"
    assert state.inits == len(first) + sum(1 for i, n in later if (i, n) not in first)
    assert sorted(state.requests) == list(range(len(later)))
    assert state.starts == len(first) + 3 * len(later)
    import json

    mine = torch.tensor(bytearray(json.dumps(record).encode()), dtype=torch.uint8)
    size = torch.tensor([mine.numel()])
    sizes = _everyone(size, groups[1])
    assert all(int(s) == mine.numel() for s in sizes), "ranks saw different bucket sequences"
    for r, x in enumerate(_everyone(mine, groups[1])):
        assert torch.equal(x, mine), f"rank {r} saw other buckets: {bytes(x.tolist()).decode()}"
    state.close()


@mpi(ranks=[2])
@in_step
def test_requests_are_freed_with_the_process_group(groups):
    pg = dist.new_group(backend="collectives")
    _, state = train(pg, hook=True, steps=3)
    requests = list(state.requests.values())
    assert requests and all(r._state == "done" for r in requests)
    dist.destroy_process_group(pg)
    assert all(r._state == "freed" for r in requests)
    assert state.requests == {} and state.comm._comm is None
    from collectives.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="closed"):
        state.allreduce(None)


@mpi(ranks=[2])
@in_step
def test_a_peer_that_never_answers_times_out(groups):
    """Rank 0 runs a step that rank 1 skips: its backward raises the library's timeout
    (worded "Timed out"), not a hang."""
    import collectives.torch as ct
    from collectives.errors import CollectiveTimeout

    quick = dist.new_group(backend="collectives", pg_options=ct.Options(timeout=0.5))
    torch.manual_seed(1)
    model = OutOfOrder()
    ddp = nn.parallel.DistributedDataParallel(model, process_group=quick, bucket_cap_mb=0.004)
    state = ct.PersistentAllreduce(quick)
    ddp.register_comm_hook(state, ct.persistent_allreduce_hook)
    for _ in range(2):   # both ranks: the requests are made on both
        ddp(torch.ones(2, 16)).sum().backward()
    if dist.get_rank() == 0:
        with pytest.raises(RuntimeError, match="Timed out"):
            ddp(torch.ones(2, 16)).sum().backward()
        failed = [r for r in state.requests.values() if r._state == "failed"]
        assert failed and isinstance(failed[0]._error, CollectiveTimeout)
    del ddp
    gc.collect()   # the failed reducer now, not at interpreter exit
    dist.barrier(group=groups[1])


@mpi(ranks=[2])
@in_step
def test_bad_state_is_refused(groups):
    import collectives.torch as ct
    from collectives.errors import InvalidType

    with pytest.raises(InvalidType, match="'collectives' process group"):
        ct.PersistentAllreduce(groups[1])
    with pytest.raises(InvalidType, match="PersistentAllreduce"):
        ct.persistent_allreduce_hook(object(), None)

