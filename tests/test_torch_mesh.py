"""The "collectives" backend as torch's own parallelism sees it: named groups, functional
collectives, DeviceMesh, DTensor and FSDP2 (``fully_shard``) against gloo, in the same workers."""

import importlib.util
import os

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

import torch.distributed as dist  # noqa: E402

from test_torch_backend import groups, in_step  # noqa: E402,F401  (the shared fixture)

mpi = pytest.mark.mpi
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@mpi(ranks=[2, 3])
@in_step
def test_groups_have_names_and_functional_collectives_run(groups):
    import torch.distributed._functional_collectives as funcol

    cl, _ = groups
    p = dist.get_world_size()
    assert isinstance(cl.group_name, str) and cl.group_name
    assert dist.distributed_c10d._resolve_process_group(cl.group_name) is cl
    t = torch.arange(4, dtype=torch.float32) + dist.get_rank()
    summed = funcol.all_reduce(t, "sum", cl).wait()
    assert torch.equal(summed, p * torch.arange(4.0) + sum(range(p)))
    gathered = funcol.all_gather_tensor(t, 0, cl).wait()
    assert torch.equal(gathered, torch.cat([torch.arange(4.0) + r for r in range(p)]))


@mpi(ranks=[2])
@in_step
def test_destroy_a_subgroup_leaves_the_others(groups):
    sub = dist.new_group([0, 1], backend="collectives")
    name = sub.group_name
    t = torch.ones(2)
    dist.all_reduce(t, group=sub)
    dist.destroy_process_group(sub)
    assert name not in dist.distributed_c10d._world.pg_names.values()
    dist.all_reduce(t)   # the default group still works
    assert torch.equal(t, torch.full((2,), 4.0))


@mpi(ranks=[2])
@in_step
def test_device_mesh_and_dtensor(groups):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    assert mesh.get_group().group_name
    full = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    d = distribute_tensor(full, mesh, [Shard(0)])
    assert d.to_local().shape == (6 // dist.get_world_size(), 2)
    assert torch.equal(d.redistribute(mesh, [Replicate()]).to_local(), full)
    assert torch.equal((d * 2).full_tensor(), full * 2)


def _example():
    spec = importlib.util.spec_from_file_location(
        "fsdp2_train", os.path.join(ROOT, "examples", "fsdp2_train.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@mpi(ranks=[2])
@in_step
def test_fsdp2_training_matches_gloo(groups):
    cl, gloo = groups
    ex = _example()
    loss_cl, params_cl = ex.train(cl)
    loss_gloo, params_gloo = ex.train(gloo)
    assert loss_cl == loss_gloo, "2 ranks sum in one order: the losses should be bit-identical"
    for a, b in zip(params_cl, params_gloo):
        assert torch.equal(a, b)
    assert loss_cl[-1] != loss_cl[0]


@mpi(ranks=[2])
@in_step
def test_fsdp2_staging_memory_from_the_process_group(groups):
    """FSDP2 asks the group's CPU backend for its staging buffers when told to: the group is its
    own backend, allocates nothing itself, and training gives the default allocation's losses."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    cl, _ = groups
    assert cl._get_backend(torch.device("cpu")).supports_tensor_alloc(torch.device("cpu")) is False
    with pytest.raises(RuntimeError, match="CPU tensors only"):
        cl._get_backend(torch.device("cuda"))

    def train(from_group):
        torch.manual_seed(0)
        mesh = init_device_mesh("cpu", (dist.get_world_size(),))
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        for m in model:
            if isinstance(m, torch.nn.Linear):
                fully_shard(m, mesh=mesh)
        fully_shard(model, mesh=mesh)
        model.set_allocate_memory_from_process_group_for_comm(from_group)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        losses = []
        for step in range(3):
            x = torch.randn(4, 8, generator=torch.Generator().manual_seed(step + dist.get_rank()))
            loss = model(x).square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
        return losses

    assert train(True) == train(False)


@mpi(ranks=[4])
@in_step
def test_two_dimensional_mesh_dp_by_tp(groups):
    """dp=2 x tp=2: a column-parallel then a row-parallel linear over "tp", FSDP2 over "dp"."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import (ColwiseParallel, RowwiseParallel,
                                                   parallelize_module)

    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
    assert mesh["tp"].size() == 2 and mesh["dp"].size() == 2
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16, bias=False), torch.nn.ReLU(),
                                torch.nn.Linear(16, 8, bias=False))
    reference = [p.detach().clone() for p in model.parameters()]
    parallelize_module(model, mesh["tp"], {"0": ColwiseParallel(), "2": RowwiseParallel()})
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(5))
    y = model(x)
    expected = torch.relu(x @ reference[0].T) @ reference[1].T
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    # the dp dimension: an all-reduce over it sums the two dp replicas only
    t = torch.ones(1)
    dist.all_reduce(t, group=mesh["dp"].get_group())
    assert t.item() == 2.0
