"""Train a small MLP with PyTorch DDP over the "collectives" backend (or gloo, to compare).

    mpiexec -n 2 python examples/ddp_train.py                      # collectives
    mpiexec -n 2 python examples/ddp_train.py --backend gloo       # the same over gloo
    mpiexec -n 2 python examples/ddp_train.py --dtype bfloat16 --steps 50
    mpiexec -n 2 python examples/ddp_train.py --persistent-hook    # buckets as persistent requests

Rank and world size come from MPI for both backends (``init_method="mpi://"``,
registered by ``import collectives.torch``), so the one command works for either;
no MASTER_ADDR/MASTER_PORT needed. Every rank trains on its own shard of a
synthetic regression problem made from one seed; the script prints the median
step time and checks that the parameters are identical on every rank.

``train()`` is importable: tests/test_torch_backend.py and bench/bench_torch.py use it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

try:
    import collectives  # noqa: F401  the installed package, or the checkout on PYTHONPATH
except ImportError:  # run from a checkout: use the package next to this directory
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import collectives.torch  # noqa: E402,F401  registers the backend and mpi://

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def make_model(seed: int = 0, width: int = 64, hidden: int = 256, depth: int = 3,
               out: int = 8, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    layers, d = [], width
    for _ in range(depth - 1):
        layers += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    layers.append(nn.Linear(d, out))
    return nn.Sequential(*layers).to(dtype)


def make_batches(seed: int, steps: int, batch: int, rank: int, world: int, width: int = 64,
                 out: int = 8, dtype=torch.float32):
    """Each rank's shard of one global batch per step (the same global data for any world size)."""
    g = torch.Generator().manual_seed(seed + 1)
    w_true = torch.randn(width, out, generator=g)
    batches = []
    for _ in range(steps):
        x = torch.randn(batch * world, width, generator=g)
        y = torch.tanh(x @ w_true)
        sl = slice(rank * batch, (rank + 1) * batch)
        batches.append((x[sl].to(dtype), y[sl].to(dtype)))
    return batches


def train(group=None, steps: int = 20, dtype=torch.float32, seed: int = 0, batch: int = 32,
          width: int = 64, hidden: int = 256, depth: int = 3, lr: float = 0.05,
          bucket_cap_mb: float = 25.0, warmup: int = 0, no_sync: bool = False,
          persistent_hook: bool = False):
    """Train with DDP over ``group`` (None: the default group).

    Returns (model, step_times): the unwrapped module and the wall time of every step
    after ``warmup`` steps. ``no_sync=True`` skips gradient all-reduce (compute only).
    ``persistent_hook=True`` registers collectives.torch.persistent_allreduce_hook
    (a "collectives" group only): each bucket is all-reduced by a persistent request.
    """
    rank = dist.get_rank(group)
    world = dist.get_world_size(group)
    model = make_model(seed, width, hidden, depth, dtype=dtype)
    ddp = DDP(model, process_group=group, bucket_cap_mb=bucket_cap_mb)
    state = None
    if persistent_hook:
        state = collectives.torch.PersistentAllreduce(group)
        ddp.register_comm_hook(state, collectives.torch.persistent_allreduce_hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=lr)
    data = make_batches(seed, steps + warmup, batch, rank, world, width, dtype=dtype)
    times = []
    for i, (x, y) in enumerate(data):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if no_sync:
            with ddp.no_sync():
                loss = ((ddp(x) - y) ** 2).mean()
                loss.backward()
        else:
            loss = ((ddp(x) - y) ** 2).mean()
            loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    if state is not None:
        state.close()   # its requests and Communicator (destroy_process_group would do it too)
    return model, times


def flat_params(model) -> torch.Tensor:
    return torch.cat([p.detach().float().reshape(-1) for p in model.parameters()])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="collectives", choices=["collectives", "gloo"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--dtype", default="float32", choices=list(DTYPES))
    ap.add_argument("--batch", type=int, default=64, help="samples per rank per step")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--bucket-mb", type=float, default=25.0, help="DDP bucket_cap_mb")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads per rank")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--persistent-hook", action="store_true",
                    help="all-reduce buckets with collectives.torch.persistent_allreduce_hook")
    args = ap.parse_args(argv)
    if args.persistent_hook and args.backend != "collectives":
        ap.error("--persistent-hook needs --backend collectives")

    torch.set_num_threads(args.threads)
    collectives.torch.init_process_group(args.backend)   # rank and size from MPI, for both backends
    rank, world = dist.get_rank(), dist.get_world_size()
    dtype = DTYPES[args.dtype]
    model, times = train(steps=args.steps, warmup=args.warmup, dtype=dtype, seed=args.seed,
                         batch=args.batch, hidden=args.hidden, depth=args.depth,
                         bucket_cap_mb=args.bucket_mb, persistent_hook=args.persistent_hook)
    params = flat_params(model)
    everyone = [torch.empty_like(params) for _ in range(world)]
    dist.all_gather(everyone, params)
    same = all(torch.equal(everyone[0], p) for p in everyone)
    t = torch.tensor(times)
    if rank == 0:
        n = sum(p.numel() for p in model.parameters())
        hook = " hook=persistent" if args.persistent_hook else ""
        print(f"backend={args.backend}{hook} ranks={world} dtype={args.dtype} params={n} "
              f"({n * params.element_size() / 2**20:.1f} MiB fp32) steps={args.steps}")
        print(f"step time: median {t.median().item() * 1e3:.2f} ms, "
              f"min {t.min().item() * 1e3:.2f} ms, mean {t.mean().item() * 1e3:.2f} ms")
        print(f"parameters identical on every rank: {same}")
    # every rank is done with the store before rank 0, which owns gloo's TCPStore, tears it down
    dist.barrier()
    dist.destroy_process_group()
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
