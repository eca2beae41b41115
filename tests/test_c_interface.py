"""The C/Python interface has one source: the headers in csrc/.

Every code the Python side shares with the core (program op kinds, buffer ids,
statuses, native-collective codes, dtype and op codes, instruction-set levels)
is read here from the header text and compared with what Python uses, and every
member of those enums must have a Python counterpart: a header change that the
Python side (or a stale build) misses fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _header_text(name: str) -> str:
    with open(os.path.join(ROOT, "csrc", name)) as fh:
        text = fh.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def header_enums(name: str) -> list[dict[str, int]]:
    """Every ``enum { ... }`` of a header, as {member: value} in declaration order."""
    enums = []
    for body in re.findall(r"\benum\b[^{;]*\{(.*?)\}", _header_text(name), flags=re.S):
        members, value = {}, -1
        for item in body.split(","):
            item = item.strip()
            if not item:
                continue
            m = re.fullmatch(r"([A-Za-z_]\w*)\s*(?:=\s*(-?\w+))?", item)
            assert m, f"cannot read enum member {item!r} of csrc/{name}"
            value = int(m.group(2), 0) if m.group(2) is not None else value + 1
            members[m.group(1)] = value
        enums.append(members)
    return enums


def header_defines(name: str) -> dict[str, int]:
    return {k: int(v, 0) for k, v in re.findall(r"#define\s+(CL_\w+)\s+(\d+)\s*$", _header_text(name), flags=re.M)}


def enum_with(name: str, member: str) -> dict[str, int]:
    found = [e for e in header_enums(name) if member in e]
    assert len(found) == 1, f"csrc/{name} should declare {member} in exactly one enum"
    return found[0]


def members(name: str, prefix: str) -> dict[str, int]:
    out = {}
    for e in header_enums(name):
        out.update({k: v for k, v in e.items() if k.startswith(prefix)})
    assert out, f"no {prefix}* constants in csrc/{name}"
    return out


def test_parser_reads_explicit_and_implicit_values(tmp_path, monkeypatch):
    (tmp_path / "csrc").mkdir()
    (tmp_path / "csrc" / "x.h").write_text("/* enum { NO = 9 } */\nenum { A = 2, B, /* c */ C = 7 };\n"
                                          "typedef enum { D } d_t;\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    assert header_enums("x.h") == [{"A": 2, "B": 3, "C": 7}, {"D": 0}]


def test_program_op_kinds_match_executor_h():
    from collectives import schedule

    header = members("executor.h", "CL_OP_")
    python = {"CL_OP_SEND": schedule.SEND, "CL_OP_RECV": schedule.RECV,
              "CL_OP_RECV_REDUCE": schedule.RECV_REDUCE, "CL_OP_COPY": schedule.COPY}
    assert python == header
    assert sorted(schedule.OP_KIND_NAMES) == sorted(header.values())
    assert {f"CL_OP_{n.upper()}": k for k, n in schedule.OP_KIND_NAMES.items()} == header


def test_buffer_ids_match_executor_h():
    from collectives import schedule

    header = members("executor.h", "CL_BUF_")
    python = {"CL_BUF_IN": schedule.BUF_IN, "CL_BUF_OUT": schedule.BUF_OUT, "CL_BUF_TMP": schedule.BUF_TMP}
    assert python == header
    assert {f"CL_BUF_{n.upper()}": k for k, n in schedule.BUF_NAMES.items()} == header


def test_program_row_layout_matches_cl_row():
    from collectives import schedule

    body = re.search(r"typedef struct\s*\{(.*?)\}\s*cl_row\s*;", _header_text("executor.h"), flags=re.S).group(1)
    fields = [f.strip() for f in body.replace("int64_t", "").replace(";", "").split(",")]
    assert list(schedule.PROGRAM_DTYPE.names) == fields
    assert all(schedule.PROGRAM_DTYPE[f].itemsize == 8 for f in fields)


def test_statuses_match_executor_h():
    from collectives import _constants, _executor

    header = enum_with("executor.h", "CL_OK")
    for cname, value in header.items():
        pyname = "STATUS_" + cname[len("CL_"):]
        assert getattr(_constants, pyname) == value, pyname
        assert getattr(_executor, pyname) == value, pyname   # what the Communicator reads
    assert _constants.MAX_REPORTED_PEERS == header_defines("executor.h")["CL_MAX_REPORTED_PEERS"]


def test_native_collectives_match_executor_h():
    from collectives import _constants, _executor
    from collectives.communicator import COLLECTIVES

    header = members("executor.h", "CL_NATIVE_")
    assert {f"CL_NATIVE_{n.upper()}": v for n, v in _constants.NATIVE.items()} == header
    assert _executor.NATIVE == _constants.NATIVE
    assert set(COLLECTIVES) <= set(_constants.NATIVE)   # "mpi" works for every collective


def test_dtype_codes_match_reduce_h():
    from collectives import dtypes

    header = enum_with("reduce.h", "CL_INT8")
    count = header.pop("CL_NUM_DTYPES")
    assert {f"CL_{n.upper()}": v for n, v in dtypes.DTYPE_CODES.items()} == header
    assert len(dtypes.DTYPE_CODES) == count
    assert list(dtypes.SUPPORTED_DTYPES) == sorted(dtypes.DTYPE_CODES, key=dtypes.DTYPE_CODES.get)
    assert all(dtypes.DTYPE_NAMES[v] == n for n, v in dtypes.DTYPE_CODES.items())


def test_dtype_sizes_agree_with_the_kernels():
    from collectives import _kernels, dtypes

    for name, code in dtypes.DTYPE_CODES.items():
        assert _kernels.dtype_size(code) == dtypes.numpy_dtype(name).itemsize, name
    assert _kernels.dtype_size(len(dtypes.DTYPE_CODES)) == 0


def test_op_codes_match_reduce_h():
    from collectives import dtypes

    header = enum_with("reduce.h", "CL_SUM")
    count = header.pop("CL_NUM_OPS")
    assert {f"CL_{n.upper()}": v for n, v in dtypes.KERNEL_OPS.items()} == header
    assert len(dtypes.KERNEL_OPS) == count
    assert all(dtypes.OP_NAMES[v] == n for n, v in dtypes.KERNEL_OPS.items())


def test_isa_levels_match_reduce_h():
    from collectives import _constants, _kernels

    header = enum_with("reduce.h", "CL_ISA_PORTABLE")
    count = header.pop("CL_NUM_ISAS")
    assert {f"CL_ISA_{n.upper()}": v for n, v in _constants.ISA_LEVELS.items()} == header
    assert _constants.NUM_ISAS == count == len(_constants.ISA_LEVELS)
    assert 0 in _kernels.isa_levels() and set(_kernels.isa_levels()) <= set(header.values())


def test_constants_module_starts_no_mpi():
    """The model side reads these codes without MPI: the constants module must not load mpi4py."""
    code = (
        "import glob, importlib.util, sys, types\n"
        "pkg = types.ModuleType('collectives'); pkg.__path__ = [sys.argv[1]]\n"
        "sys.modules['collectives'] = pkg\n"
        "spec = importlib.util.spec_from_file_location('collectives._constants', "
        "glob.glob(sys.argv[1] + '/_constants*.so')[0])\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(type(m.OP_SEND).__name__, sorted(k for k in sys.modules if k.startswith('mpi4py')))\n"
    )
    import collectives

    out = subprocess.run([sys.executable, "-c", code, os.path.dirname(collectives.__file__)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "int []"


# ---- the communicator crosses as an mpi4py object ------------------------------------

def test_core_takes_an_mpi4py_communicator_not_a_handle():
    import numpy as np
    from mpi4py import MPI

    from collectives import _constants, _executor, dtypes

    code = dtypes.dtype_code("uint8")
    assert _executor.run_native(MPI.COMM_SELF, _constants.NATIVE["barrier"], None, None, 0, None,
                                code, 0, 0, 5.0) is None
    with pytest.raises(TypeError):
        _executor.run_native(int(MPI.COMM_SELF.handle), _constants.NATIVE["barrier"], None, None, 0,
                             None, code, 0, 0, 5.0)
    with pytest.raises(TypeError):
        _executor.run_native(None, _constants.NATIVE["barrier"], None, None, 0, None, code, 0, 0, 5.0)
    x = np.arange(4, dtype=np.float32)
    y = np.empty_like(x)
    assert _executor.run_native(MPI.COMM_SELF, _constants.NATIVE["allreduce"], x, y, x.size, None,
                                dtypes.dtype_code(x.dtype), dtypes.op_code("sum"), 0, 5.0) is None
    assert (y == x).all()


def test_build_check_strips_nuls_from_version_strings():
    from collectives._mpicheck import library_version

    # Open MPI counts the terminating NUL: mpi4py's copy ends in one
    assert library_version("Open MPI v5.0.5, package: Open MPI\x00") == "Open MPI v5.0.5, package: Open MPI"
    assert library_version("\x00 MPICH Version: 4.2\n\x00") == "MPICH Version: 4.2"


def test_build_check_accepts_a_trailing_nul(monkeypatch):
    from mpi4py import MPI

    from collectives._mpicheck import load_core

    real = MPI.Get_library_version()
    monkeypatch.setattr(MPI, "Get_library_version", lambda: real + "\x00")
    assert load_core() is not None


def test_build_check_refuses_another_library(monkeypatch):
    from collectives import BuildMismatch, _executor
    from collectives._mpicheck import load_core

    monkeypatch.setattr(_executor, "mpi_library_version", lambda: "Some Other MPI 1.0")
    with pytest.raises(BuildMismatch, match="different MPI libraries"):
        load_core()


def test_build_check_refuses_another_world_handle(monkeypatch):
    from collectives import BuildMismatch, _executor
    from collectives._mpicheck import load_core

    assert _executor.same_comm_world()
    monkeypatch.setattr(_executor, "same_comm_world", lambda: False)
    with pytest.raises(BuildMismatch):
        load_core()


def test_p2p_statuses_match_p2p_h():
    from collectives import _p2p

    header = enum_with("p2p.h", "CL_P2P_OK")
    assert {f"CL_P2P_{n}": getattr(_p2p, n) for n in
            ("OK", "TIMEOUT", "MPI_ERROR", "PEER_NOTICE", "MISMATCH", "LARGE", "PENDING")} == header


def test_p2p_pxd_declares_every_p2p_h_code():
    with open(os.path.join(ROOT, "collectives", "libp2p.pxd")) as fh:
        pxd = fh.read()
    for name in enum_with("p2p.h", "CL_P2P_OK"):
        assert re.search(rf"^\s+{name}\s*$", pxd, flags=re.M), name
