"""`dist.init_process_group("collectives")` with no init_method works under mpiexec (env:// falls back to MPI)."""

import os

import pytest

pytestmark = pytest.mark.mpi(ranks=[2, 3])


def test_plain_init_process_group(comm, monkeypatch):
    torch = pytest.importorskip("torch")
    import torch.distributed as dist

    import collectives.torch  # noqa: F401  (registers the backend and the fallback)

    for key in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    dist.init_process_group("collectives")
    try:
        assert dist.get_rank() == comm.rank and dist.get_world_size() == comm.size
        t = torch.full((5,), float(comm.rank + 1))
        dist.all_reduce(t)
        assert torch.all(t == sum(range(1, comm.size + 1)))
    finally:
        dist.destroy_process_group()
    # with MASTER_ADDR/PORT set, torch's own env:// handler runs as before
    assert "MASTER_ADDR" not in os.environ
