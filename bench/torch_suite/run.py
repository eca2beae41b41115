"""Run PyTorch's generic distributed suite (``DistributedTest._DistTestBase``) on a backend.

The suite ships in the torch wheel (torch/testing/_internal/distributed/distributed_test.py);
PyTorch drives it for gloo by spawning one process per rank. Here the ranks are MPI
processes instead (the "collectives" backend takes ranks from MPI), and PyTorch's
assertions run unchanged. Every test runs on every rank in order; rank 0 writes one JSON
line per test. A test that hangs is killed after ``--per-test-timeout`` seconds and the run
goes on with the next test in a new ``mpiexec``.

    python bench/torch_suite/run.py -n 2 -n 3 --backend collectives \\
        --out bench/results/torch-suite.json          # the full selection (long)
    python bench/torch_suite/run.py -n 2 -k all_reduce # a subset by name

Outcomes: passed, failed (with the first line of the error), skipped (with torch's
reason), hang (killed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)

# the suite decides by backend name what to run; give "collectives" the features it has
# (CPU tensors: DDP, subgroups), never the GPU ones
FEATURES = ("ddp", "subgroup", "plugin")
# bodies that build their CPU model only `if BACKEND == "mpi" or BACKEND == "gloo"`
BODY_AS = r"^test_accumulate_gradients_no_sync"


def _import_suite(backend, world_size, select_as=None):
    """The suite's test class. ``select_as``: the suite picks its tests (decorators, at
    import) as for that backend, gloo for instance, and then runs them on ``backend``."""
    os.environ["BACKEND"] = select_as or backend
    os.environ["WORLD_SIZE"] = str(world_size)
    os.environ.setdefault("TEMP_DIR", tempfile.gettempdir())
    if backend == "collectives":
        import collectives.torch  # noqa: F401  (registers the backend)
    from torch.testing._internal import common_distributed as cd

    for feature in FEATURES:
        cd.DistTestCases.backend_feature[feature].add(backend)
    from torch.testing._internal.distributed import distributed_test as dt

    if select_as:
        dt.BACKEND = backend            # what the test bodies create their groups with
        os.environ["BACKEND"] = backend

    class Suite(dt.TestDistBackend, dt.DistributedTest._DistTestBase):
        pass
    return dt, cd, Suite


def list_tests(backend, world_size, pattern=None, select_as=None):
    _, _, suite = _import_suite(backend, world_size, select_as)
    names = sorted(n for n in dir(suite) if n.startswith("test_"))
    if pattern:
        names = [n for n in names if re.search(pattern, n)]
    return names


# ---- worker: one MPI rank ------------------------------------------------------------------


def worker(args):
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    os.environ["TEMP_DIR"] = args.temp_dir
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    dt, cd, suite = _import_suite(args.backend, size, args.select_as)
    import unittest
    from datetime import timedelta

    import torch
    import torch.distributed as dist
    from torch.testing._internal import common_utils

    torch.set_num_threads(1)
    skips = {s.exit_code: s.message for s in cd.TEST_SKIPS.values()}
    names = open(args.tests).read().split()
    out = open(args.results, "a") if rank == 0 else None
    for i, name in enumerate(names):
        if rank == 0:
            for sub in ("barrier", "test_dir"):
                path = os.path.join(args.temp_dir, sub)
                shutil.rmtree(path, ignore_errors=True)
                os.makedirs(path)
            os.makedirs(os.path.join(args.temp_dir, "init_dir"), exist_ok=True)
            out.write(json.dumps({"test": name, "start": True}) + "\n")
            out.flush()
        world.Barrier()
        dt.Barrier.barrier_id = 0
        init_file = os.path.join(args.temp_dir, "init_dir", f"{name}-{i}")
        os.environ["INIT_METHOD"] = "file://" + init_file
        case = suite(name)
        case.rank = rank
        case.file_name = init_file
        started = time.perf_counter()
        outcome, detail = "passed", ""
        # tests whose bodies pick CPU tensors by backend name ("mpi" or "gloo") only
        dt.BACKEND = (args.select_as if args.select_as and args.body_as
                      and re.search(args.body_as, name) else args.backend)
        method = getattr(case, name)
        if getattr(method, "__unittest_skip__", False):   # what unittest's runner honours
            outcome, detail = "skipped", str(getattr(method, "__unittest_skip_why__", ""))
            world.gather((outcome, detail), root=0)   # keep the ranks in step
            if rank == 0:
                out.write(json.dumps({"test": name, "outcome": outcome, "detail": detail,
                                      "seconds": 0.0}) + "\n")
                out.flush()
            continue
        try:
            seconds = cd.CUSTOM_PG_TIMEOUT.get(name, args.pg_timeout) if hasattr(cd, "CUSTOM_PG_TIMEOUT") else args.pg_timeout
            dist.init_process_group(backend=args.backend, init_method=case.init_method, rank=rank,
                                    world_size=size, timeout=timedelta(seconds=min(seconds, args.pg_timeout)))
            case._barrier()
            common_utils.set_rng_seed()   # as torch's own runner does before each test
            getattr(case, name)()
        except unittest.SkipTest as exc:
            outcome, detail = "skipped", str(exc)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
            outcome, detail = ("skipped", skips[code]) if code in skips else ("failed", f"exit {code}")
        except BaseException as exc:  # noqa: BLE001 - each failure is a result
            outcome = "failed"
            detail = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]
        finally:
            try:
                if dist.is_initialized():
                    dist.destroy_process_group()
            except Exception:  # noqa: BLE001
                pass
        outcomes = world.gather((outcome, detail), root=0)
        if rank == 0:
            order = {"failed": 0, "skipped": 1, "passed": 2}
            worst = min(outcomes, key=lambda o: order[o[0]])
            failed_ranks = [r for r, o in enumerate(outcomes) if o[0] == "failed"]
            rec = {"test": name, "outcome": worst[0], "detail": worst[1],
                   "seconds": round(time.perf_counter() - started, 2)}
            if failed_ranks:
                rec["ranks"] = failed_ranks
            out.write(json.dumps(rec) + "\n")
            out.flush()
        try:
            os.unlink(init_file)
        except OSError:
            pass
    world.Barrier()


# ---- driver --------------------------------------------------------------------------------


def run_world(n, names, args):
    results = {}
    temp = tempfile.mkdtemp(prefix="torch-suite-")
    remaining = list(names)
    while remaining:
        tests = os.path.join(temp, "tests.txt")
        log = os.path.join(temp, "results.jsonl")
        open(tests, "w").write("\n".join(remaining))
        open(log, "w").close()
        env = dict(os.environ, COLLECTIVES_TIMEOUT=str(args.pg_timeout))
        cmd = [args.mpiexec, "-n", str(n), sys.executable, HERE, "--worker", "--backend", args.backend,
               "--temp-dir", temp, "--tests", tests, "--results", log,
               "--pg-timeout", str(args.pg_timeout)]
        if args.select_as:
            cmd += ["--select-as", args.select_as]
        if args.body_as:
            cmd += ["--body-as", args.body_as]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, env=env)
        last, current, seen = time.monotonic(), None, 0
        while proc.poll() is None:
            time.sleep(0.5)
            lines = open(log).read().splitlines()
            if len(lines) > seen:
                for line in lines[seen:]:
                    rec = json.loads(line)
                    if rec.get("start"):
                        current = rec["test"]
                    else:
                        results[rec["test"]] = rec
                        current = None
                        print(f"np{n} {rec['outcome']:8} {rec['test']} {rec['detail'][:100]}", flush=True)
                seen = len(lines)
                last = time.monotonic()
            elif time.monotonic() - last > args.per_test_timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
        for line in open(log).read().splitlines()[seen:]:
            rec = json.loads(line)
            if not rec.get("start"):
                results[rec["test"]] = rec
            else:
                current = rec["test"]
        done = [t for t in remaining if t in results]
        if current and current not in results:
            results[current] = {"test": current, "outcome": "hang",
                                "detail": f"no result after {args.per_test_timeout} s (killed)"}
            print(f"np{n} hang     {current}", flush=True)
        elif len(done) < len(remaining) and not current:
            nxt = remaining[len(done)] if len(done) < len(remaining) else None
            if nxt:
                results[nxt] = {"test": nxt, "outcome": "failed", "detail": "the ranks exited"}
        remaining = [t for t in remaining if t not in results]
    shutil.rmtree(temp, ignore_errors=True)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--world-size", type=int, action="append", help="ranks (repeatable; default 2)")
    ap.add_argument("--backend", default="collectives")
    ap.add_argument("-k", "--pattern", help="regular expression selecting test names")
    ap.add_argument("--select-as", help="select the tests as the suite does for this backend "
                    "(e.g. gloo: its CPU tests, many gated by backend name), run them on --backend")
    ap.add_argument("--body-as", default=BODY_AS,
                    help="with --select-as: tests (a regular expression) whose bodies also see "
                    "that backend's name (they choose CPU tensors by it); the groups stay --backend's")
    ap.add_argument("--per-test-timeout", type=float, default=120.0)
    ap.add_argument("--pg-timeout", type=float, default=60.0, help="process group timeout, seconds")
    ap.add_argument("--mpiexec", default=shutil.which("mpiexec") or "mpiexec")
    ap.add_argument("--out", help="JSON file for the results")
    ap.add_argument("--strict", action="store_true",
                    help="exit with status 1 when a test failed or hung (for CI)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--temp-dir", help=argparse.SUPPRESS)
    ap.add_argument("--tests", help=argparse.SUPPRESS)
    ap.add_argument("--results", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    sizes = args.world_size or [2]
    report = {"backend": args.backend, "selected_as": args.select_as or args.backend, "command": " ".join(["python", "bench/torch_suite/run.py"] + (argv or sys.argv[1:])),
              "worlds": {}}
    import torch

    report["torch"] = torch.__version__
    for n in sizes:
        names = list_tests(args.backend, n, args.pattern, args.select_as)
        results = run_world(n, names, args)
        counts = {}
        for rec in results.values():
            counts[rec["outcome"]] = counts.get(rec["outcome"], 0) + 1
        report["worlds"][str(n)] = {"counts": counts, "tests": [results[t] for t in names if t in results]}
        print(f"np{n}: {counts}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    bad = [t["test"] for w in report["worlds"].values() for t in w["tests"]
           if t["outcome"] in ("failed", "hang")]
    return 1 if args.strict and bad else 0


if __name__ == "__main__":
    sys.exit(main())
