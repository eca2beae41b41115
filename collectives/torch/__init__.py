"""A torch.distributed backend named "collectives" (CPU tensors), so DDP trains over the library.

Importing this module registers the backend and an ``mpi://`` rendezvous that
takes rank and world size from MPI::

    import torch.distributed as dist
    import collectives.torch                      # registers "collectives" and mpi://

    dist.init_process_group("collectives", init_method="mpi://")
    # or, the same in one call:
    collectives.torch.init_process_group()

Run under ``mpiexec -n N python train.py``: no MASTER_ADDR, MASTER_PORT, RANK or
WORLD_SIZE needed. ``init_method="mpi://"`` works for the "gloo" backend too
(it sets up a TCPStore on rank 0's host and shares its port over MPI).

Options: ``pg_options=collectives.torch.Options(algorithm="ring", async_op=True)``,
or the environment variables ``COLLECTIVES_TORCH_ALGORITHM`` (an algorithm name
such as "ring" or "mpi", or "allreduce=ring,alltoall=bruck") and
``COLLECTIVES_TORCH_ASYNC`` (0 runs each operation in the calling thread).

DDP: ``ddp.register_comm_hook(collectives.torch.PersistentAllreduce(group),
collectives.torch.persistent_allreduce_hook)`` all-reduces each gradient bucket
through a persistent request (collectives.torch.ddp).

See the documentation's guide "PyTorch".
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import torch  # noqa: F401  (the real torch: absolute import)
import torch.distributed as dist

from .ddp import PersistentAllreduce, persistent_allreduce_hook
from .process_group import BACKEND_NAME, Options, ProcessGroupCollectives, parse_algorithm

__all__ = ["BACKEND_NAME", "Options", "PersistentAllreduce", "ProcessGroupCollectives",
           "init_process_group", "mpi_rank_and_size", "parse_algorithm", "persistent_allreduce_hook"]

if not dist.is_available():  # pragma: no cover - every CPU build has it
    raise ImportError("collectives.torch needs torch.distributed, which this torch build lacks")


def mpi_rank_and_size():
    """(rank, size) of this process in MPI.COMM_WORLD."""
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()


def _world():
    from mpi4py import MPI

    return MPI.COMM_WORLD


def _create(dist_opts, backend_options):
    """The creator torch calls for every process group of this backend."""
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    options = backend_options if isinstance(backend_options, Options) else None
    if backend_options is not None and options is None:
        raise TypeError(f"collectives backend: pg_options must be collectives.torch.Options, got "
                        f"{type(backend_options).__name__}")
    members = list(getattr(dist_opts, "global_ranks_in_group", []) or [])
    group_rank, group_size = int(dist_opts.group_rank), int(dist_opts.group_size)
    timeout = getattr(dist_opts, "timeout", None)
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else None
    group_id = str(getattr(dist_opts, "group_id", "") or "0")
    if not members or (len(members) == size and members == list(range(size))):
        if group_rank != rank or group_size != size:
            raise RuntimeError(
                f"collectives backend: torch.distributed says this process is rank {group_rank} "
                f"of {group_size}, MPI says rank {rank} of {size}. The backend takes ranks from "
                "MPI: run under mpiexec with init_method='mpi://' (or rank/world_size equal to "
                "MPI's)")
        return ProcessGroupCollectives(world, options, name=group_id, timeout=seconds)
    # a sub-group: only its members reach here, so build it with Create_group (members only)
    if members[group_rank] != rank:
        raise RuntimeError(
            f"collectives backend: new_group ranks {members} place this process at global rank "
            f"{members[group_rank]}, but it is MPI rank {rank}; torch's global ranks must be "
            "MPI.COMM_WORLD's")
    group = world.Get_group().Incl(members)
    try:
        tag = _group_tag(group_id)
        sub = world.Create_group(group, tag)
    finally:
        group.Free()
    try:
        return ProcessGroupCollectives(sub, options, name=group_id, timeout=seconds)
    finally:
        sub.Free()  # the Communicator keeps its own duplicate


def _group_tag(group_id: str) -> int:
    import zlib

    return zlib.crc32(group_id.encode()) & 0x7FFF


def _mpi_rendezvous(url, timeout=None, **kwargs):
    """``mpi://`` rendezvous: rank and size from MPI.COMM_WORLD, a TCPStore on rank 0's host.

    ``mpi://?store=hash`` gives every rank a private HashStore instead (enough for
    the "collectives" backend, which never uses the store; not for gloo).
    """
    from urllib.parse import parse_qs, urlparse

    query = {k: v[-1] for k, v in parse_qs(urlparse(url).query).items()}
    world = _world()
    rank, size = world.Get_rank(), world.Get_size()
    for key, mine in (("rank", rank), ("world_size", size)):
        if key in query and int(query[key]) not in (-1, mine):
            raise ValueError(f"mpi:// rendezvous: {key}={query[key]} was passed, but MPI says "
                             f"{mine}; leave {key} out under mpiexec")
    if timeout is None:
        timeout = timedelta(minutes=30)
    kind = query.get("store", "tcp")
    if kind == "hash":
        store = dist.HashStore()
    elif kind == "tcp":
        store = None
        err = None
        host = "127.0.0.1"
        hosts = world.allgather(socket.gethostname())
        if len(set(hosts)) > 1:
            host = socket.getfqdn(hosts[0]) if rank == 0 else None
        port = 0
        if rank == 0:
            try:
                store = dist.TCPStore(host if len(set(hosts)) == 1 else "0.0.0.0", 0, size, True,
                                      timeout, wait_for_workers=False)
                port = store.port
            except Exception as exc:  # tell the others, then raise
                err = f"{type(exc).__name__}: {exc}"
        host, port, err = world.bcast((host, port, err), root=0)
        if err:
            raise RuntimeError(f"mpi:// rendezvous: rank 0 could not start a TCPStore ({err})")
        if rank != 0:
            store = dist.TCPStore(host, port, size, False, timeout)
    else:
        raise ValueError(f"mpi:// rendezvous: store={kind!r}; accepted are tcp (default) and hash")
    yield store, rank, size
    raise RuntimeError("mpi:// rendezvous cannot be restarted")


def _env_with_mpi_fallback(env_handler):
    """torch's ``env://`` rendezvous, falling back to ``mpi://`` under an MPI launcher.

    ``dist.init_process_group("collectives")`` (no init_method, no store) means
    ``env://``, which wants MASTER_ADDR and MASTER_PORT. Under mpiexec, where
    they are usually unset, that is an error; with this fallback it takes rank
    and size from MPI instead. When MASTER_ADDR and MASTER_PORT are set,
    torch's own handler runs unchanged.
    """
    def handler(url, timeout=None, **kwargs):
        from ..launcher import under_launcher

        if under_launcher() and not ("MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ):
            return _mpi_rendezvous("mpi://" + url.split("://", 1)[1], timeout=timeout, **kwargs)
        return env_handler(url, timeout=timeout, **kwargs)

    handler._collectives_fallback = True
    return handler


def init_process_group(backend: str = BACKEND_NAME, **kwargs):
    """``dist.init_process_group(backend, init_method="mpi://", **kwargs)``: one line under mpiexec.

    Works for "collectives" and "gloo" alike; extra keyword arguments (timeout,
    pg_options, ...) go to torch.
    """
    if "store" not in kwargs:
        kwargs.setdefault("init_method", "mpi://")
    dist.init_process_group(backend=backend, **kwargs)
    return dist.group.WORLD


def _register():
    import sys

    import torch.distributed.rendezvous  # noqa: F401  (the module; dist.rendezvous is a function)

    _rdzv = sys.modules["torch.distributed.rendezvous"]
    if BACKEND_NAME not in dist.Backend.backend_list:
        dist.Backend.register_backend(BACKEND_NAME, _create, extended_api=True, devices=["cpu"])
    if "mpi" not in _rdzv._rendezvous_handlers:
        _rdzv.register_rendezvous_handler("mpi", _mpi_rendezvous)
    env = _rdzv._rendezvous_handlers.get("env")
    if env is not None and not getattr(env, "_collectives_fallback", False):
        _rdzv._rendezvous_handlers["env"] = _env_with_mpi_fallback(env)


_register()
