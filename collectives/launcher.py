"""Finding and starting the MPI launcher that belongs to the MPI mpi4py uses."""

from __future__ import annotations

import os
import shutil
import sys

from .errors import CollectivesError


def find_mpiexec() -> str:
    """Path of ``mpiexec``: ``COLLECTIVES_MPIEXEC``, else the one installed next to
    this Python (the mpich wheel puts it there), else the first on ``PATH``."""
    env = os.environ.get("COLLECTIVES_MPIEXEC")
    if env:
        return env
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.path.exists(here):
        return here
    found = shutil.which("mpiexec") or shutil.which("mpirun")
    if found:
        return found
    raise CollectivesError(
        "no mpiexec found: install the MPICH wheel (pip install mpich), put your MPI's "
        "mpiexec on PATH, or set COLLECTIVES_MPIEXEC to its path")


def under_launcher() -> bool:
    """True when this process was started by an MPI launcher (or is one rank of many)."""
    keys = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS",
            "HYDRA_CONTROL_FD", "PMI_FD")
    return any(k in os.environ for k in keys)


def mpiexec_command(nranks: int, argv: list[str]) -> list[str]:
    """The command that starts ``argv`` on ``nranks`` ranks of this machine."""
    if nranks < 1:
        raise CollectivesError(f"the rank count must be at least 1, got {nranks}")
    return [find_mpiexec(), "-n", str(nranks)] + list(argv)
