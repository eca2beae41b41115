"""Train a small MLP sharded with FSDP2 (``fully_shard``) over the "collectives" backend
(or gloo, to compare), and print the loss of every step.

    mpiexec -n 2 python examples/fsdp2_train.py                  # collectives
    mpiexec -n 2 python examples/fsdp2_train.py --backend gloo   # the same over gloo

Each parameter is sharded across the ranks: FSDP2 all-gathers it (an all-gather
whose input is a slice of its output) before the forward and backward passes and
reduce-scatters its gradient after. ``train()`` is importable:
tests/test_torch_mesh.py runs it over both backends and compares the losses.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist
from torch import nn

try:
    import collectives  # noqa: F401  the installed package, or the checkout on PYTHONPATH
except ImportError:  # run from a checkout: use the package next to this directory
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import collectives.torch  # noqa: E402,F401  registers the backend and mpi://


def train(group=None, steps: int = 5, seed: int = 0, lr: float = 0.1):
    """FSDP2 over ``group`` (default: the default group); (losses, full parameters)."""
    from torch.distributed.device_mesh import DeviceMesh
    from torch.distributed.fsdp import fully_shard

    group = group or dist.group.WORLD
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    mesh = DeviceMesh.from_group(group, "cpu")
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed + 1 + dist.get_rank())
    losses = []
    for _ in range(steps):
        x, y = torch.randn(16, 8, generator=g), torch.randn(16, 4, generator=g)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [p.full_tensor() for p in model.parameters()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="collectives", choices=["collectives", "gloo"])
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    collectives.torch.init_process_group(args.backend)
    losses, _ = train(steps=args.steps)
    if dist.get_rank() == 0:
        print(f"{args.backend}: FSDP2 on {dist.get_world_size()} ranks, losses of rank 0: "
              + ", ".join(f"{x:.6f}" for x in losses))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
