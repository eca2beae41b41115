"""``collectives info``: what this installation runs on, for bug reports."""

from __future__ import annotations

import os
import platform
import sys


def collect() -> dict:
    import numpy
    from mpi4py import MPI
    import mpi4py

    from . import __version__
    from ._mpicheck import library_version, load_core

    data = {
        "collectives": __version__,
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "numpy": numpy.__version__,
        "mpi4py": mpi4py.__version__,
        "mpi4py_mpi": _first_line(library_version(MPI.Get_library_version())),
        "mpi4py_mpi_standard": "%d.%d" % MPI.Get_version(),
    }
    try:
        cfg = mpi4py.get_config()
        if cfg:
            data["mpi4py_config"] = cfg
    except Exception:  # pragma: no cover
        pass
    try:
        import mpi4py._mpiabi as abi  # mpi4py >= 4.1 binary wheels: which MPI it loaded, and how

        lib = getattr(abi, "_get_mpiabi", None)
        data["mpi4py_abi"] = lib() if callable(lib) else None
    except Exception:
        data["mpi4py_abi"] = None
    try:
        core = load_core()
        data["core_mpi"] = _first_line(library_version(core.mpi_library_version()))
        data["core_mpi_standard"] = "%d.%d" % core.mpi_version()
        data["core_matches_mpi4py"] = True
    except Exception as exc:  # report, don't fail: this is what a bug report needs
        data["core_mpi"] = None
        data["core_matches_mpi4py"] = False
        data["core_error"] = str(exc)
    data["blocking_deadline"] = _blocking_deadline(data.get("core_mpi") or "")
    try:
        from . import _kernels

        data["kernels_isa"] = _kernels.kernel_isa()
    except Exception as exc:
        data["kernels_isa"] = f"unavailable ({exc})"
    try:
        from . import _buildinfo as b

        data["build"] = {"mpicc": b.MPICC, "mpicc_source": b.MPICC_SOURCE,
                         # which MPI wheel that mpicc came from, if any (only "mpich" makes it a dependency)
                         "mpi_wheel": getattr(b, "MPI_WHEEL", None), "mpicc_show": b.MPICC_SHOW,
                         "cflags": b.CFLAGS, "runtime_library_dirs": b.RUNTIME_LIBRARY_DIRS}
        data["abi"] = "MPI standard ABI (libmpi_abi)" if "-DMPI_ABI" in b.MPICC_SHOW or "mpi_abi" in b.MPICC_SHOW \
            else "the MPI implementation's own ABI"
    except ImportError:
        data["build"] = None
    try:
        import ml_dtypes

        data["ml_dtypes"] = ml_dtypes.__version__
    except ImportError:
        data["ml_dtypes"] = None
    try:
        from .launcher import find_mpiexec

        data["mpiexec"] = find_mpiexec()
    except Exception as exc:
        data["mpiexec"] = f"not found ({exc})"
    return data


def _blocking_deadline(core_mpi: str) -> str:
    """Whether small native calls with a deadline run blocking under the revoking watchdog."""
    try:
        from . import _executor

        if _executor.blocking_deadline():
            return (f"active (all-reduce, all-to-all up to {_executor.BLOCKING_DEADLINE_MAX_BYTES} B: "
                    "blocking MPI call, revoked at the deadline)")
    except Exception as exc:  # report, don't fail
        return f"unknown ({exc})"
    if "Open MPI" in core_mpi:
        if os.environ.get("COLLECTIVES_BLOCKING_DEADLINE") != "1":
            return ("off (opt-in: COLLECTIVES_BLOCKING_DEADLINE=1 with ULFM on, OMPI_MCA_mpi_ft_enable=1; "
                    "a deadline uses the non-blocking collective)")
        return ("off (Open MPI without ULFM: set OMPI_MCA_mpi_ft_enable=1 or run mpiexec --with-ft ulfm; "
                "a deadline uses the non-blocking collective)")
    return "not used (a deadline uses the MPI's non-blocking collective)"


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def format_info(data: dict) -> str:
    lines = []
    width = max(len(k) for k in data) + 1
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            for k2, v2 in value.items():
                lines.append(f"  {k2:<{width}} {v2}")
        else:
            lines.append(f"{key:<{width}} {value}")
    return "\n".join(lines)
