"""Build the compiled core: Cython modules collectives/*.pyx, each linked with the C sources in csrc/.

The core calls MPI directly, so it is compiled with the headers of the MPI that
mpi4py will use at run time. The MPI is found, in order, from:

1. the ``MPICC`` environment variable (a system MPI, as with mpi4py);
2. the ``mpicc`` installed by the ``mpich`` wheel next to this Python
   (the default: ``pip install .`` pulls that wheel into the build environment);
3. ``mpicc`` on ``PATH``.
"""

import glob
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
    env = os.environ.get("MPICC")
    if env:
        return env, "MPICC environment variable"
    scripts = sysconfig.get_path("scripts")
    for cand in (os.path.join(scripts, "mpicc"), os.path.join(os.path.dirname(sys.executable), "mpicc")):
        if os.path.exists(cand):
            return cand, "mpich wheel next to the building Python"
    found = shutil.which("mpicc")
    if found:
        return found, "mpicc on PATH"
    sys.exit(
        "collectives: no MPI compiler wrapper found. Install the MPICH wheel "
        "(pip install mpich) or point MPICC at your MPI's mpicc, then build again."
    )


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

import numpy  # noqa: E402  (a build requirement)

NUMPY_INC = [numpy.get_include()]
c_sources = sorted(glob.glob(os.path.join("csrc", "*.c")))
pyx_sources = sorted(glob.glob(os.path.join("collectives", "*.pyx")))

with open(os.path.join(HERE, "collectives", "_buildinfo.py"), "w") as fh:
    fh.write('"""Written by setup.py at build time: how the compiled core was built."""\n')
    fh.write(f"MPICC = {MPICC!r}\n")
    fh.write(f"MPICC_SOURCE = {MPICC_SOURCE!r}\n")
    fh.write(f"MPICC_SHOW = {SHOW!r}\n")
    fh.write(f"CFLAGS = {' '.join(CFLAGS)!r}\n")
    fh.write(f"RUNTIME_LIBRARY_DIRS = {runtime_dirs!r}\n")
    fh.write(f"PLATFORM = {platform.machine()!r}\n")

extensions = [
    Extension(
        name="collectives." + os.path.splitext(os.path.basename(pyx))[0],
        sources=[pyx] + c_sources,
        include_dirs=["csrc"] + MPI_INC + NUMPY_INC,
        library_dirs=MPI_LIBDIRS,
        libraries=MPI_LIBS or ["mpi"],
        runtime_library_dirs=runtime_dirs,
        extra_compile_args=CFLAGS + MPI_DEFS,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for pyx in pyx_sources
]

try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover
    sys.exit("collectives: Cython is needed to build the compiled core (pip install Cython)")

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True,
                             "initializedcheck": False, "embedsignature": True},
    ),
)
