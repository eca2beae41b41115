"""The multi-rank test harness.

A test marked ``@pytest.mark.mpi(ranks=[1, 2, 3, 4])`` is collected once per
rank count (ids ``np1``, ``np2``, ...). A plain ``pytest`` run does not execute
it in its own process: the first such test of a module and rank count starts
``mpiexec -n N python -m pytest`` on every such test of that module at once, in
worker mode, and each test then reports what its ranks did; a failure shows the
traceback of every rank that failed.

In worker mode (``COLLECTIVES_MPI_WORKER=1``) the tests run for real on every
rank, and the ``comm`` fixture is a ``collectives.Communicator`` on
``MPI.COMM_WORLD``.

Environment:
- ``COLLECTIVES_TEST_BATCH_TIMEOUT``: seconds one mpiexec batch may take (default 600);
- ``COLLECTIVES_TIMEOUT`` is set to 60 s for the workers unless already set, so a
  test that leaves its peers behind fails instead of hanging.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

WORKER = os.environ.get("COLLECTIVES_MPI_WORKER") == "1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ranks_of(marker):
    ranks = marker.kwargs.get("ranks", marker.args[0] if marker.args else [2])
    if isinstance(ranks, int):
        ranks = [ranks]
    return list(ranks)


def pytest_configure(config):
    config.addinivalue_line("markers", "mpi(ranks): run under mpiexec with each rank count")
    if WORKER:
        config.pluginmanager.register(_WorkerReporter(), "collectives-mpi-worker")


@pytest.fixture(autouse=True)
def mpi_nranks(request):
    """The rank count a test marked ``mpi`` runs with (None for plain tests)."""
    return getattr(request, "param", None)


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("mpi")
    if marker is None:
        return
    ranks = _ranks_of(marker)
    metafunc.parametrize("mpi_nranks", ranks, indirect=True, ids=[f"np{n}" for n in ranks])


def _item_nranks(item):
    cs = getattr(item, "callspec", None)
    return cs.params.get("mpi_nranks") if cs is not None else None


def pytest_collection_modifyitems(session, config, items):
    if WORKER:
        wanted_file = os.environ.get("COLLECTIVES_MPI_NODEIDS")
        if not wanted_file:
            return
        with open(wanted_file) as fh:
            wanted = set(json.load(fh))
        keep = [it for it in items if it.nodeid in wanted]
        drop = [it for it in items if it.nodeid not in wanted]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep
        return
    batches = {}
    for it in items:
        if it.get_closest_marker("mpi") is None:
            continue
        key = (str(it.fspath), _item_nranks(it))
        batches.setdefault(key, []).append(it.nodeid)
    config._collectives_batches = batches
    config._collectives_results = {}


@pytest.fixture
def comm(mpi_nranks):
    """A Communicator on MPI.COMM_WORLD (worker mode only)."""
    if not WORKER:
        yield None
        return
    import collectives as cl
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_size() != mpi_nranks:
        pytest.fail(f"test wants {mpi_nranks} ranks, world has {MPI.COMM_WORLD.Get_size()}")
    c = cl.Communicator(MPI.COMM_WORLD)
    yield c
    c.free()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if WORKER or pyfuncitem.get_closest_marker("mpi") is None:
        return None
    config = pyfuncitem.config
    nranks = _item_nranks(pyfuncitem)
    key = (str(pyfuncitem.fspath), nranks)
    results = config._collectives_results
    if key not in results:
        results[key] = _run_batch(config, key, config._collectives_batches[key])
    outcome = results[key]
    _report(pyfuncitem, nranks, outcome)
    return True


def _run_batch(config, key, nodeids):
    from collectives.launcher import launch_env, mpiexec_command

    path, nranks = key
    workdir = tempfile.mkdtemp(prefix="collectives-mpi-")
    ids_file = os.path.join(workdir, "nodeids.json")
    with open(ids_file, "w") as fh:
        json.dump(nodeids, fh)
    # the launcher's own flags (Open MPI: root, oversubscription) come from mpiexec_command, and
    # launch_env drops an enclosing job's rank identity, which the other MPI would misread
    env = launch_env()
    env.update({
        "COLLECTIVES_MPI_WORKER": "1",
        "COLLECTIVES_MPI_NODEIDS": ids_file,
        "COLLECTIVES_MPI_REPORT": workdir,
    })
    env.setdefault("COLLECTIVES_TIMEOUT", "60")
    # the workers import the same collectives package as this process
    import importlib.util

    spec = importlib.util.find_spec("collectives")
    pkg_parent = os.path.dirname(os.path.dirname(spec.origin))
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    cmd = mpiexec_command(nranks, [sys.executable, "-m", "pytest", path, "-q",
                                   "-p", "no:cacheprovider", "-p", "no:randomly", "--benchmark-disable",
                                   "-o", "addopts=", "--rootdir", ROOT, "--no-header"])
    limit = float(os.environ.get("COLLECTIVES_TEST_BATCH_TIMEOUT", "600"))
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=limit)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        timed_out = True
    per_rank = {}
    for r in range(nranks):
        f = os.path.join(workdir, f"rank{r}.jsonl")
        if os.path.exists(f):
            with open(f) as fh:
                for line in fh:
                    rec = json.loads(line)
                    per_rank.setdefault(rec["nodeid"], {}).setdefault(r, []).append(rec)
    return {"per_rank": per_rank, "output": output, "timed_out": timed_out,
            "returncode": proc.returncode, "elapsed": time.monotonic() - start, "limit": limit}


def _report(item, nranks, outcome):
    recs = outcome["per_rank"].get(item.nodeid, {})
    failures, skips, passed = [], [], 0
    for r in range(nranks):
        phases = recs.get(r, [])
        if not phases:
            continue
        bad = [p for p in phases if p["outcome"] == "failed"]
        if bad:
            failures.append((r, bad))
        elif any(p["outcome"] == "skipped" for p in phases):
            skips.append((r, phases))
        else:
            passed += 1
    if failures:
        text = []
        for r, bad in failures:
            for p in bad:
                text.append(f"---- rank {r} of {nranks} ({p['when']}) ----\n{p['longrepr']}")
        pytest.fail(f"{len(failures)} of {nranks} ranks failed:\n" + "\n".join(text), pytrace=False)
    if skips and len(skips) + passed == nranks and not passed:
        reason = skips[0][1][-1].get("longrepr", "")
        pytest.skip(f"skipped on every rank: {reason}")
    if passed + len(skips) < nranks:
        missing = [r for r in range(nranks) if r not in recs or not recs[r]]
        why = (f"the mpiexec batch was killed after {outcome['limit']:.0f} s" if outcome["timed_out"]
               else f"mpiexec exited with code {outcome['returncode']}")
        tail = outcome["output"][-6000:]
        pytest.fail(f"ranks {missing} of {nranks} did not report this test ({why}). "
                    f"Output of the batch:\n{tail}", pytrace=False)


class _WorkerReporter:
    """Worker side: append each test phase's outcome to this rank's JSON-lines file."""

    def __init__(self):
        self._fh = None

    def _file(self):
        if self._fh is None:
            from mpi4py import MPI

            rank = MPI.COMM_WORLD.Get_rank()
            path = os.path.join(os.environ["COLLECTIVES_MPI_REPORT"], f"rank{rank}.jsonl")
            self._fh = open(path, "a", buffering=1)
        return self._fh

    def pytest_runtest_logreport(self, report):
        if report.when != "call" and report.outcome == "passed":
            return
        longrepr = ""
        if report.outcome != "passed":
            if report.outcome == "skipped" and isinstance(report.longrepr, tuple):
                longrepr = str(report.longrepr[2])
            else:
                longrepr = str(report.longrepr)
        rec = {"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
               "longrepr": longrepr}
        self._file().write(json.dumps(rec) + "\n")
