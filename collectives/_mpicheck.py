"""Import-time check that the compiled core and mpi4py use one and the same MPI library."""

from __future__ import annotations

import string

from .errors import BuildMismatch

_REBUILD = (
    "Rebuild collectives against the MPI that mpi4py uses: for the default MPICH wheel, "
    "`pip install --force-reinstall --no-cache-dir mpich mpi4py .`; for a system MPI, "
    "`MPICC=/path/to/mpicc pip install --no-binary=mpi4py --force-reinstall --no-cache-dir mpi4py .`"
)


def load_core():
    """Import mpi4py (which loads libmpi), then the compiled core, and compare the two."""
    from mpi4py import MPI

    try:
        from . import _executor
    except ValueError as exc:   # Cython's check of mpi4py.MPI.Comm's size: another MPI's ABI
        raise BuildMismatch(
            f"the compiled core of collectives was built against another MPI than mpi4py's ({exc}). "
            + _REBUILD) from exc
    except ImportError as exc:
        text = str(exc)
        shadowed = _unbuilt_source_tree()
        if shadowed is not None:
            here, installed = shadowed
            raise BuildMismatch(
                f"the compiled core of collectives could not be loaded ({text}): the collectives "
                f"imported from {here} is a source tree without a built core"
                + (f", and it shadows the installed package in {installed}" if installed else "")
                + ". Run from outside the source tree, or build in place with `pip install -e .`"
            ) from exc
        if "mpi" not in text.lower():
            raise BuildMismatch(
                f"the compiled core of collectives could not be loaded ({text}); the installation is "
                "incomplete or was built for another platform. Reinstall it: "
                "`pip install --force-reinstall --no-cache-dir .` (or `python setup.py build_ext "
                "--inplace` in a source checkout)") from exc
        raise BuildMismatch(
            f"the compiled core of collectives could not be loaded ({exc}). It links to "
            f"the MPI it was built with, and mpi4py uses {MPI.Get_library_version().splitlines()[0]!r}. "
            + _REBUILD) from exc
    ours = library_version(_executor.mpi_library_version())
    theirs = library_version(MPI.Get_library_version())
    # two copies of one release have one version string; Open MPI's handles are
    # addresses inside the loaded library, so the world handles tell those apart
    if ours != theirs or not _executor.same_comm_world():
        raise BuildMismatch(
            "collectives' compiled core and mpi4py use different MPI libraries:\n"
            f"  collectives: {ours.splitlines()[0] if ours else '?'}\n"
            f"  mpi4py:      {theirs.splitlines()[0] if theirs else '?'}\n" + _REBUILD)
    return _executor


def _unbuilt_source_tree():
    """``(package dir, installed dir or None)`` when the imported package is an unbuilt checkout.

    A script started inside a checkout imports the checkout's ``collectives``
    (Python puts the script's directory first on ``sys.path``), which has no
    compiled core unless it was built in place.
    """
    import glob
    import os
    import sys

    def built_core(pkg):
        return [p for p in glob.glob(os.path.join(pkg, "_executor*")) if not p.endswith((".pyx", ".c"))]

    here = os.path.dirname(os.path.abspath(__file__))
    if built_core(here) or not os.path.exists(os.path.join(os.path.dirname(here), "setup.py")):
        return None
    for entry in sys.path:
        other = os.path.join(os.path.abspath(entry or os.curdir), "collectives")
        if other != here and built_core(other):
            return here, other
    return here, None


def library_version(text: str) -> str:
    """An MPI library-version string without surrounding blanks and NULs.

    Open MPI counts the terminating NUL in the string's length, so mpi4py's copy
    ends in ``"\\x00"``, which ``str.strip()`` keeps.
    """
    return text.strip(string.whitespace + "\x00")
