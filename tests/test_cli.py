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


def test_bench_interleaved_json_has_native_and_ours_at_every_size():
    r = run("bench", "-n", "2", "-c", "allreduce,alltoall", "-a", "ring,pairwise,auto", "-s", "1K,4K",
            "--iters", "4", "--warmup", "1", "--interleave", "--check", "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(r.stdout[r.stdout.index("["):])
    points = {}
    for row in rows:
        points.setdefault((row["collective"], row["bytes"]), []).append(row)
    assert {c for c, _ in points} == {"allreduce", "alltoall"} and len(points) == 4
    for (coll, _), got in points.items():
        assert [row["algorithm"] for row in got] == ["mpi", "ring" if coll == "allreduce" else "pairwise",
                                                     "auto"]
        for row in got:
            assert row["interleaved"] is True and row["iters"] == 4 and row["wrong"] == 0
            assert row["time_us"] > 0 and row["busbw"] >= 0
            if coll == "allreduce":
                assert row["inplace_iters"] == 4 and row["inplace_time_us"] > 0


def test_bench_markdown_format_names_native_and_ratios():
    r = run("bench", "-n", "2", "-c", "allreduce", "-a", "ring", "-s", "1K", "--iters", "2",
            "--interleave", "--format", "markdown")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "| allreduce size | native (us) | ring | auto picks |"
    assert lines[2].startswith("| 1KiB | ") and lines[2].count("x)") == 1


def test_interleaved_timing_alternates_the_calls():
    """Every iteration calls each candidate once, in turn, after the warm-up calls."""
    from collectives.bench import _time_calls

    class OneRank:
        def Barrier(self):
            pass

        def Allreduce(self, send, recv, op=None):
            recv[...] = send

    order = []
    rows = [{}, {}]
    calls = [(rows[0], "time_us", lambda: order.append("native")),
             (rows[1], "time_us", lambda: order.append("ours"))]
    _time_calls(OneRank(), calls, iters=3, warmup=1, budget=0.0)
    assert order == ["native", "ours"] + ["native", "ours"] * 3
    assert all(row["iters"] == 3 and row["time_us"] >= 0 for row in rows)


@pytest.mark.parametrize("kwargs, message", [
    (dict(collectives=["allsort"]), "unknown collective 'allsort'"),
    (dict(algorithms="ring,banana"), "unknown algorithm"),
    (dict(op="median"), "unknown op 'median'"),
    (dict(dtype="int32", op="avg"), "op avg needs a floating dtype"),
    (dict(iters=0), "iters must be at least 1"),
])
def test_sweep_refuses_bad_options_before_using_the_communicator(kwargs, message):
    from collectives.bench import sweep
    from collectives.errors import InvalidArgument

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"the communicator was used ({name}) before the options were checked")

    args = dict(collectives=["allreduce"], sizes=[8])
    args.update(kwargs)
    with pytest.raises(InvalidArgument, match=message):
        sweep(Untouchable(), args.pop("collectives"), args.pop("sizes"), **args)


@pytest.mark.parametrize("args, message", [
    (["bench", "-s", "8:banana"], "sizes"),
    (["bench", "-c", "allsort"], "unknown collective 'allsort'"),
    (["bench", "--dtype", "complex64"], "--dtype"),
    (["bench", "--op", "median"], "unknown --op"),
    (["bench", "-n", "100000"], "cannot start that many ranks"),
    (["bench", "-n", "4", "--emulate", "star:n=2"], "fewer than the 4 ranks"),
    (["bench", "--emulate", "torus:banana"], "torus"),
    (["bench", "--timeout", "0"], "--timeout 0: give the seconds"),
])
def test_bench_user_errors_are_one_line(args, message):
    r = run(*args, timeout=60)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_launcher_lines_go_to_stderr_not_into_the_sweep(tmp_path, capfd):
    """MPICH's launcher prints e.g. "Sending Ctrl-C to processes as requested" on stdout:
    a CSV sweep must not get it."""
    import sys

    from collectives.bench import run_forwarding_output

    script = tmp_path / "fake_launcher.py"
    script.write_text("print('collective,algorithm,bytes')\n"
                      "print('[mpiexec@node01] Sending Ctrl-C to processes as requested')\n"
                      "print('allreduce,ring,8')\n"
                      "raise SystemExit(3)\n")
    rc = run_forwarding_output([sys.executable, str(script)], None)
    out, err = capfd.readouterr()
    assert rc == 3
    assert out.splitlines() == ["collective,algorithm,bytes", "allreduce,ring,8"]
    assert "Sending Ctrl-C" in err
