"""The ``collectives`` command as a user runs it: version, info, bench, and its errors."""

import json
import subprocess
import sys

import pytest

import collectives


def run(*args, timeout=180):
    """The command as a user runs it: from a directory that is not the source tree."""
    import os
    import tempfile

    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(collectives.__file__)))
    env = dict(os.environ, PYTHONPATH=pkg_parent)
    return subprocess.run([sys.executable, "-m", "collectives", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=tempfile.gettempdir(), env=env)


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"collectives {collectives.__version__}"


def test_info_names_mpi_kernels_and_build():
    r = run("info", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["core_matches_mpi4py"] is True
    assert data["mpi4py_mpi"] == data["core_mpi"]
    assert data["kernels_isa"] and "unavailable" not in data["kernels_isa"]
    assert data["build"]["cflags"].startswith("-O3")
    text = run("info").stdout
    assert "mpi4py_mpi" in text and "kernels_isa" in text


def test_bench_small_sweep_with_check_json():
    r = run("bench", "-n", "2", "-c", "allreduce,alltoall", "-s", "64,64K", "--iters", "3",
            "--warmup", "1", "--check", "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(r.stdout[r.stdout.index("["):])
    algs = {(row["collective"], row["algorithm"]) for row in rows}
    assert ("allreduce", "mpi") in algs and ("allreduce", "ring") in algs and ("alltoall", "bruck") in algs
    for row in rows:
        assert row["wrong"] == 0
        assert row["time_us"] > 0 and row["busbw"] >= 0 and row["ranks"] == 2


def test_bench_table_and_output_file(tmp_path):
    out = tmp_path / "results.jsonl"
    r = run("bench", "-n", "2", "-c", "allreduce", "-a", "ring,rhd", "-s", "1K", "--iters", "2",
            "--output", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "busbw" in r.stdout and "ring" in r.stdout and "mpi" in r.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {row["algorithm"] for row in lines} == {"mpi", "ring", "rhd"}


@pytest.mark.parametrize("args, message", [
    (["bench", "-s", "8:banana"], "sizes"),
    (["bench", "-c", "allsort"], "unknown collective 'allsort'"),
    (["bench", "--dtype", "complex64"], "--dtype"),
    (["bench", "--op", "median"], "unknown --op"),
    (["bench", "-n", "100000"], "cannot start that many ranks"),
    (["bench", "-n", "4", "--emulate", "star:n=2"], "fewer than the 4 ranks"),
    (["bench", "--emulate", "torus:banana"], "torus"),
])
def test_bench_user_errors_are_one_line(args, message):
    r = run(*args, timeout=60)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
