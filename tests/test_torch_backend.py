"""The torch.distributed backend "collectives" against gloo, in the same worker processes.

Each worker (one per rank, started by the harness in tests/conftest.py) makes
the default process group over "collectives" (``init_method="mpi://"``: rank and
size from MPI, a TCPStore shared through MPI) and a second group over gloo with
``new_group(backend="gloo")``; every test runs the same operation on the same
tensors over both and compares. DDP trains the MLP of examples/ddp_train.py for
20 steps over each.
"""

import importlib.util
import os
from datetime import timedelta

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

import torch.distributed as dist  # noqa: E402

WORKER = os.environ.get("COLLECTIVES_MPI_WORKER") == "1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RANKS = [2, 3, 4]
ReduceOp = dist.ReduceOp

mpi = pytest.mark.mpi


@pytest.fixture(scope="module")
def groups():
    """(collectives default group, gloo group), made once per worker."""
    import collectives.torch as ct

    if not dist.is_initialized():
        torch.set_num_threads(1)
        ct.init_process_group("collectives")
    # a short timeout: a rank that fails an assertion and leaves its peers behind must not hang them
    gloo = dist.new_group(backend="gloo", timeout=timedelta(seconds=60))
    yield dist.group.WORLD, gloo


def in_step(test):
    """Keep the ranks in step: a rank whose assertion fails still meets its peers at the end.

    Without this, a rank that fails early moves on to the next test while its peers wait in a
    collective of this one, and the worker batch ends in a hang or a crash of gloo. Every rank
    reports whether it failed over gloo; all fail together, each with its own traceback or the
    list of ranks that failed.
    """
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


def _example():
    spec = importlib.util.spec_from_file_location("ddp_train", os.path.join(ROOT, "examples", "ddp_train.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _same_everywhere(t, gloo):
    everyone = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, t.contiguous(), group=gloo)
    for r, x in enumerate(everyone):
        assert torch.equal(x, everyone[0]), f"rank {r} holds different values from rank 0"


def _both(groups, fn):
    """fn(group) over collectives and over gloo; returns the two results."""
    cl, gloo = groups
    return fn(cl), fn(gloo)


def _data(shape, dtype, salt=0, products=False):
    r = dist.get_rank()
    g = torch.Generator().manual_seed(1000 * r + salt)
    if products and dtype in (torch.bfloat16, torch.float16):
        # +-1/4, 2/4, 3/4: their products over a few ranks are exact in 16 bits in any order
        # (wider values round differently by the order the ranks' values are multiplied in)
        sign = torch.randint(0, 2, shape, generator=g) * 2 - 1
        return (sign * torch.randint(1, 4, shape, generator=g) / 4).to(dtype)
    if dtype in (torch.bfloat16, torch.float16):
        # multiples of 1/4 below 8: exact in 16 bits, and so are their sums over a few ranks,
        # whatever the order (random values would round differently by summation order)
        return (torch.randint(-32, 33, shape, generator=g) / 4).to(dtype)
    if dtype.is_floating_point:
        return torch.randn(shape, generator=g).to(dtype)
    return torch.randint(-3, 4, shape, generator=g).to(dtype)


def _assert_equal(a, b, what=""):
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f"{what}[{i}]")
        return
    assert a.dtype == b.dtype and a.shape == b.shape, f"{what}: {a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}"
    if a.dtype.is_floating_point:
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-6, atol=1e-6, msg=lambda m: f"{what}: {m}")
    else:
        assert torch.equal(a, b), f"{what}: {a} != {b}"


# ---- DDP -----------------------------------------------------------------------------


@mpi(ranks=RANKS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@in_step
def test_ddp_matches_gloo(groups, mpi_nranks, dtype):
    ex = _example()
    dt = ex.DTYPES[dtype]
    kw = dict(steps=20, dtype=dt, seed=7, batch=8, hidden=32 if mpi_nranks == 4 else 64, bucket_cap_mb=0.01)
    cl, gloo = groups
    m_cl, _ = ex.train(cl, **kw)
    m_gloo, _ = ex.train(gloo, **kw)
    a, b = ex.flat_params(m_cl), ex.flat_params(m_gloo)
    _same_everywhere(a, gloo)
    _same_everywhere(b, gloo)
    if mpi_nranks == 2:
        assert torch.equal(a, b), "2 ranks sum in one order: results should be bit-identical"
    elif dt == torch.float32:
        assert (a - b).abs().max().item() <= 1e-6, \
            f"DDP over collectives and over gloo end {(a - b).abs().max().item():.3g} apart"
    else:
        # bfloat16 gradients summed over 3+ ranks round after every addition, and gloo adds in
        # another order than the ring: the runs drift by a few bfloat16 ulps (2**-8 relative)
        torch.testing.assert_close(a, b, rtol=2 ** -6, atol=2 ** -9)
        assert (a - b).abs().mean().item() < 1e-4
    assert not torch.equal(a, ex.flat_params(ex.make_model(7, hidden=kw["hidden"], dtype=dt))), \
        "the parameters did not move"


@mpi(ranks=[2])
@in_step
def test_ddp_synchronous_mode_and_subgroup_match(groups):
    """A group with async_op=False (no progress thread) trains to the same parameters."""
    import collectives.torch as ct

    ex = _example()
    sync = dist.new_group(backend="collectives", pg_options=ct.Options(algorithm="mpi", async_op=False))
    kw = dict(steps=20, seed=3, batch=8, hidden=64, bucket_cap_mb=0.01)
    a = ex.flat_params(ex.train(sync, **kw)[0])
    b = ex.flat_params(ex.train(groups[0], **kw)[0])
    assert torch.equal(a, b)


# ---- each operation against gloo --------------------------------------------------------


@mpi(ranks=[2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "int32", "int64", "uint8"])
@pytest.mark.parametrize("op", ["SUM", "PRODUCT", "MIN", "MAX"])   # AVG: gloo has none, see below
@in_step
def test_all_reduce(groups, dtype, op):
    dt = getattr(torch, dtype)
    x = _data((5, 37), dt, products=op == "PRODUCT")

    def run(g):
        t = x.clone()
        dist.all_reduce(t, op=getattr(ReduceOp, op), group=g)
        return t
    a, b = _both(groups, run)
    _assert_equal(a, b, f"all_reduce {op} {dtype}")
    _same_everywhere(a, groups[1])


@mpi(ranks=[2, 3])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@in_step
def test_all_reduce_avg(groups, dtype):
    dt = getattr(torch, dtype)
    x = _data((1000,), dt)
    a = x.clone()
    dist.all_reduce(a, op=ReduceOp.AVG)
    b = x.clone()
    dist.all_reduce(b, op=ReduceOp.SUM, group=groups[1])
    b = b / dist.get_world_size()
    torch.testing.assert_close(a.float(), b.float(), rtol=1e-2 if dt == torch.bfloat16 else 1e-6, atol=1e-6)


@mpi(ranks=[2, 3])
@in_step
def test_all_reduce_noncontiguous_and_bool(groups):
    base = _data((8, 10), torch.float32)
    t = base.clone()
    view = t[:, ::3]                        # non-contiguous: reduced in a copy, written back
    dist.all_reduce(view)
    # the reference: gloo on a contiguous copy (gloo itself writes a strided view's
    # result as if it were contiguous, so it cannot be the reference here)
    ref = base.clone()
    col = ref[:, ::3].contiguous()
    dist.all_reduce(col, group=groups[1])
    ref[:, ::3] = col
    _assert_equal(t, ref, "non-contiguous")
    flags = torch.tensor([dist.get_rank() == 0, True, False])
    t = flags.clone()
    dist.all_reduce(t, op=ReduceOp.MAX)
    assert t.tolist() == [True, True, False]
    t = flags.clone()
    dist.all_reduce(t, op=ReduceOp.MIN)
    assert t.tolist() == [False, True, False]


@mpi(ranks=[2, 3, 4])
@in_step
def test_data_movement_ops(groups):
    p, r = dist.get_world_size(), dist.get_rank()
    x = _data((3, 4), torch.float32, salt=1)

    def bcast(g):
        t = x.clone()
        dist.broadcast(t, src=p - 1, group=g)
        return t

    def bcast_nc(g):
        t = x.clone().t()                    # non-contiguous
        dist.broadcast(t, src=0, group=g)
        return t.contiguous()

    def gather_list(g):
        outs = [torch.empty(3, 4) for _ in range(p)]
        dist.all_gather(outs, x, group=g)
        return outs

    def gather_tensor(g):
        out = torch.empty(p * 3, 4)
        dist.all_gather_into_tensor(out, x, group=g)
        return out

    def gather_tensor_nc(g):
        out = torch.zeros(4, p * 3).t()      # non-contiguous output
        dist.all_gather_into_tensor(out, x, group=g)
        return out.contiguous()

    def a2a(g):
        out = torch.empty(p * 2, 5)
        dist.all_to_all_single(out, _data((p * 2, 5), torch.float32, salt=2), group=g)
        return out

    def a2a_uneven(g):
        ins = [(r + j) % 3 for j in range(p)]        # rank r sends (r + j) % 3 rows to rank j
        outs = [(j + r) % 3 for j in range(p)]
        out = torch.empty(sum(outs), 2)
        dist.all_to_all_single(out, _data((sum(ins), 2), torch.float32, salt=3), outs, ins, group=g)
        return out

    def a2a_list(g):
        ins = [torch.full((2,), float(10 * r + j)) for j in range(p)]
        outs = [torch.empty(2) for _ in range(p)]
        dist.all_to_all(outs, ins, group=g)
        return outs

    for fn in (bcast, bcast_nc, gather_list, gather_tensor, gather_tensor_nc, a2a, a2a_uneven, a2a_list):
        a, b = _both(groups, fn)
        _assert_equal(a, b, fn.__name__)
    # all_to_all with tensors of different sizes (gloo refuses them): rank r sends j + 1 values to j
    ins = [torch.full((j + 1,), float(10 * r + j)) for j in range(p)]
    outs = [torch.empty(r + 1) for _ in range(p)]
    dist.all_to_all(outs, ins)
    for q, o in enumerate(outs):
        assert torch.equal(o, torch.full((r + 1,), float(10 * q + r))), f"from rank {q}: {o}"
    dist.barrier()


@mpi(ranks=[2, 3, 4])
@in_step
def test_gather_scatter_direct_match_gloo_for_odd_and_empty_sizes(groups):
    """gather and scatter run as one direct step (the root receives from / sends to each
    rank): bitwise gloo's results for every root, odd sizes, 2-D tensors and empty ones."""
    p, r = dist.get_world_size(), dist.get_rank()
    for root in range(p):
        for shape, dt in (((7,), torch.float32), ((3, 5), torch.bfloat16), ((0,), torch.int64),
                          ((1,), torch.float64), ((33,), torch.int8)):
            def gather(g):
                outs = [torch.full(shape, -1, dtype=dt) for _ in range(p)] if r == root else None
                dist.gather(_data(shape, dt, salt=20 + root), outs, dst=root, group=g)
                return outs or []

            def scatter(g):
                out = torch.full(shape, -1, dtype=dt)
                ins = [_data(shape, dt, salt=30 + j) for j in range(p)] if r == root else None
                dist.scatter(out, ins, src=root, group=g)
                return out

            for fn in (gather, scatter):
                a, b = _both(groups, fn)
                a, b = (a if isinstance(a, list) else [a]), (b if isinstance(b, list) else [b])
                assert len(a) == len(b)
                for x, y in zip(a, b):   # bitwise: the bytes of every tensor
                    assert x.dtype == y.dtype and x.shape == y.shape
                    assert torch.equal(x.contiguous().view(torch.uint8), y.contiguous().view(torch.uint8)), \
                        f"{fn.__name__} root {root} {tuple(shape)} {dt}"
    # a rank's gather_list that does not match its input is refused before any message
    if r == 0:
        with pytest.raises(Exception, match="gather_list"):
            dist.gather(torch.ones(3), [torch.empty(4) for _ in range(p)], dst=0)
    # and the group is still in step afterwards
    t = torch.ones(2)
    dist.all_reduce(t)
    assert t.tolist() == [float(p)] * 2


@mpi(ranks=[2, 3])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int64"])
@in_step
def test_reduce_scatter_and_friends(groups, dtype):
    dt = getattr(torch, dtype)
    p, r = dist.get_world_size(), dist.get_rank()

    def rs_list(g):
        out = torch.empty(6, dtype=dt)
        dist.reduce_scatter(out, [_data((6,), dt, salt=j) for j in range(p)], group=g)
        return out

    def rs_tensor(g):
        out = torch.empty(2, 3, dtype=dt)
        dist.reduce_scatter_tensor(out, _data((2 * p, 3), dt, salt=5), group=g)
        return out

    def rs_tensor_max(g):
        out = torch.empty(7, dtype=dt)
        dist.reduce_scatter_tensor(out, _data((7 * p,), dt, salt=6), op=ReduceOp.MAX, group=g)
        return out

    def coalesced(g):
        ts = [_data((4,), dt, salt=7), _data((2, 3), dt, salt=8)]
        dist.all_reduce_coalesced(ts, group=g)
        return ts

    def reduce(g):
        t = _data((9,), dt, salt=9)
        dist.reduce(t, dst=p - 1, group=g)
        return t if r == p - 1 else torch.zeros(0, dtype=dt)

    def gather(g):
        outs = [torch.empty(3, dtype=dt) for _ in range(p)] if r == 0 else None
        dist.gather(_data((3,), dt, salt=10), outs, dst=0, group=g)
        return outs or []

    def scatter(g):
        out = torch.empty(4, dtype=dt)
        ins = [_data((4,), dt, salt=11 + j) for j in range(p)] if r == 1 else None
        dist.scatter(out, ins, src=1, group=g)
        return out

    for fn in (rs_list, rs_tensor, rs_tensor_max, coalesced, reduce, gather, scatter):
        a, b = _both(groups, fn)
        _assert_equal(a, b, f"{fn.__name__} {dtype}")


@mpi(ranks=[2, 3])
@in_step
def test_noncontiguous_outputs_are_written_back(groups):
    """Every op that writes a strided tensor stages it in a contiguous buffer and copies the
    result back; the reference is gloo writing a contiguous tensor."""
    cl, gloo = groups
    p, r = dist.get_world_size(), dist.get_rank()
    f32 = torch.float32
    ins = [(r + j) % 3 + 1 for j in range(p)]      # rank r sends (r + j) % 3 + 1 rows to rank j
    outs = [(j + r) % 3 + 1 for j in range(p)]
    cases = {
        "reduce_scatter_tensor": ((3, 2), lambda out, g: dist.reduce_scatter_tensor(
            out, _data((3 * p, 2), f32, salt=20), group=g)),
        "all_to_all_single": ((2 * p, 3), lambda out, g: dist.all_to_all_single(
            out, _data((2 * p, 3), f32, salt=21), group=g)),
        "all_to_all_single uneven": ((sum(outs), 3), lambda out, g: dist.all_to_all_single(
            out, _data((sum(ins), 3), f32, salt=22), outs, ins, group=g)),
        "scatter": ((2, 3), lambda out, g: dist.scatter(
            out, [_data((2, 3), f32, salt=23 + j) for j in range(p)] if r == 0 else None,
            src=0, group=g)),
        "all_gather_into_tensor": ((2 * p, 3), lambda out, g: dist.all_gather_into_tensor(
            out, _data((2, 3), f32, salt=24), group=g)),
    }
    for name, (shape, run) in cases.items():
        mine = torch.full(shape[::-1], -7.0).t()      # the transpose of a contiguous tensor
        assert not mine.is_contiguous()
        run(mine, cl)
        ref = torch.empty(shape)
        run(ref, gloo)
        _assert_equal(mine.contiguous(), ref, name)
    # reduce: the root gets the sum in its strided tensor, every other rank keeps its values
    x = _data((3, 4), f32, salt=25)
    mine = x.t().contiguous().t()
    assert not mine.is_contiguous()
    dist.reduce(mine, dst=p - 1)
    ref = x.clone()
    dist.reduce(ref, dst=p - 1, group=gloo)
    _assert_equal(mine.contiguous(), ref if r == p - 1 else x, "reduce")


@mpi(ranks=[3])
@in_step
def test_async_in_flight_and_new_group(groups):
    p, r = dist.get_world_size(), dist.get_rank()
    # several operations in flight at once complete in order, each with its own result
    ts = [torch.full((1000 * (i + 1),), float(r + i)) for i in range(5)]
    works = [dist.all_reduce(t, async_op=True) for t in ts]
    b = torch.full((10,), float(r))
    works.append(dist.broadcast(b, src=2, async_op=True))
    for w in works:
        w.wait()
    for i, t in enumerate(ts):
        assert torch.all(t == sum(q + i for q in range(p))).item()
    assert torch.all(b == 2.0).item()
    fut = dist.all_reduce(torch.ones(3), async_op=True).get_future()
    assert torch.equal(fut.wait()[0], torch.full((3,), float(p)))
    # a sub-group: ranks 0 and 2 (rank 1 is not a member but calls new_group, as torch requires)
    sub = dist.new_group([0, 2], backend="collectives")
    sub_gloo = dist.new_group([0, 2], backend="gloo")
    if r in (0, 2):
        x = torch.arange(6, dtype=torch.float32) * (r + 1)
        a, c = x.clone(), x.clone()
        dist.all_reduce(a, group=sub)
        dist.all_reduce(c, group=sub_gloo)
        assert torch.equal(a, c)
        assert dist.get_world_size(sub) == 2
        y = torch.full((2,), float(r))
        dist.broadcast(y, src=2, group=sub)      # src is a global rank
        assert torch.equal(y, torch.full((2,), 2.0))
    dist.barrier()


# ---- bad input: clear errors on every rank, and the group still works afterwards ----------


@mpi(ranks=[2])
@in_step
def test_bad_input(groups):
    p, r = dist.get_world_size(), dist.get_rank()
    with pytest.raises(ValueError, match="CPU-only"):
        dist.all_reduce(torch.empty(4, device="meta"))
    with pytest.raises(TypeError, match="float8_e5m2 is not supported"):
        dist.all_reduce(torch.zeros(4, dtype=torch.float8_e5m2))
    c = torch.full((3,), complex(1, r), dtype=torch.complex64)   # torch sends complex SUM as real pairs
    dist.all_reduce(c)
    assert torch.equal(c, torch.full((3,), complex(p, sum(range(p))), dtype=torch.complex64))
    with pytest.raises(ValueError, match="BAND is not supported|not supported"):
        dist.all_reduce(torch.zeros(4, dtype=torch.int32), op=ReduceOp.BAND)
    with pytest.raises(ValueError, match="AVG needs a floating dtype"):
        dist.all_reduce(torch.zeros(4, dtype=torch.int32), op=ReduceOp.AVG)
    with pytest.raises(TypeError, match="bool tensors"):
        dist.all_reduce(torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="output has 3 elements"):
        dist.all_gather_into_tensor(torch.empty(3), torch.empty(2))
    with pytest.raises(ValueError, match=f"tensor_list has {p + 1} tensors, the group has {p} ranks"):
        dist.all_gather([torch.empty(2) for _ in range(p + 1)], torch.empty(2))
    # blocks may differ in size between ranks (as gloo allows), but this rank's must fit the output
    with pytest.raises(ValueError, match=rf"input_list\[{r}\] .*has 3 elements, the output has 2\b.*must match"):
        dist.reduce_scatter(torch.empty(2), [torch.empty(3)] * p)
    with pytest.raises(ValueError, match="not divisible"):
        dist.all_to_all_single(torch.empty(3), torch.empty(3))
    with pytest.raises(ValueError, match="sum to"):
        dist.all_to_all_single(torch.empty(4), torch.empty(4), [2, 2], [1, 2])
    # splits that agree on each rank but not between ranks: every rank gets the error, no hang
    outs = [3, 1] if r == 0 else [2, 2]
    with pytest.raises(Exception, match="split sizes differ between ranks"):
        dist.all_to_all_single(torch.empty(4), torch.empty(4), outs, [2, 2])
    with pytest.raises(ValueError, match=f"send: dst rank {p + 3} is not in the group of {p} ranks"):
        dist.send(torch.zeros(1), dst=p + 3)
    with pytest.raises(ValueError, match="recv: the tensor must be contiguous"):
        dist.recv(torch.zeros(4, 2)[:, 0], src=(r + 1) % p)
    # data-movement ops accept any dtype (bytes)
    z = torch.full((3,), complex(r, 1), dtype=torch.complex64)
    dist.broadcast(z, src=1)
    assert torch.equal(z, torch.full((3,), complex(1, 1), dtype=torch.complex64))
    t = torch.ones(5)
    dist.all_reduce(t)
    assert torch.equal(t, torch.full((5,), float(p)))


@mpi(ranks=[2])
@in_step
def test_errors_reach_wait_and_backward(groups):
    """An error inside the progress thread (here a simulated timeout) reaches work.wait(),
    the future and DDP's backward(): never a silent success."""
    import collectives as cl
    import collectives.torch as ct

    ex = _example()
    pg = dist.new_group(backend="collectives", pg_options=ct.Options(algorithm="mpi"))

    def boom(*args, **kwargs):
        raise cl.CollectiveTimeout("allreduce (mpi) timed out after 1.000 s (simulated)")
    pg.comm.allreduce = boom
    work = dist.all_reduce(torch.ones(4), group=pg, async_op=True)
    with pytest.raises(Exception, match="timed out"):
        work.wait()
    with pytest.raises(Exception, match="timed out"):
        work.get_future().wait()
    assert work.is_completed() and not work.is_success()
    with pytest.raises(Exception, match="timed out"):
        dist.all_reduce(torch.ones(4), group=pg)
    with pytest.raises(RuntimeError, match="timed out"):
        ex.train(pg, steps=2, batch=4, hidden=16)     # DDP: the error reaches backward()
    import gc

    gc.collect()   # drop the failed DDP reducer now, not at interpreter exit
    t = torch.ones(3)
    dist.all_reduce(t)                       # the default group is unaffected
    assert torch.equal(t, torch.full((3,), 2.0))


def test_algorithm_spec():
    ct = pytest.importorskip("collectives.torch")
    assert ct.parse_algorithm(None) == {}
    assert ct.parse_algorithm("auto") == {}
    assert set(ct.parse_algorithm("mpi").values()) == {"mpi"}
    assert ct.parse_algorithm("ring")["allreduce"] == "ring"
    assert "alltoall" not in ct.parse_algorithm("ring")
    assert ct.parse_algorithm("allreduce=tree, all_to_all=bruck") == {"allreduce": "tree", "alltoall": "bruck"}
    assert ct.parse_algorithm({"allreduce": "rhd"}) == {"allreduce": "rhd"}
    with pytest.raises(ValueError, match="unknown algorithm 'warp'"):
        ct.parse_algorithm("warp")
    with pytest.raises(ValueError, match="unknown alltoall algorithm 'ring'"):
        ct.parse_algorithm("alltoall=ring")
    with pytest.raises(ValueError, match="unknown collective"):
        ct.parse_algorithm("gather=ring")


def test_backend_registered():
    ct = pytest.importorskip("collectives.torch")
    assert ct.BACKEND_NAME in dist.Backend.backend_list
    import sys

    assert "mpi" in sys.modules["torch.distributed.rendezvous"]._rendezvous_handlers
