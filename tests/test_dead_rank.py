"""A rank killed (SIGKILL) in the middle of a large all-reduce: nothing hangs, nothing is left running.

Under MPICH's launcher the job ends as a whole when a rank dies; the survivors
either get an error from the library (MPI reported the dead peer, or their
deadline passed) or are ended by the launcher. Either way mpiexec returns
within the timeout plus a few seconds and leaves no process behind.
"""

import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

SCRIPT = textwrap.dedent("""
    import os, signal, sys, threading, time
    import numpy as np
    from mpi4py import MPI
    import collectives as cl

    marker, outdir = sys.argv[1], sys.argv[2]
    comm = cl.Communicator(MPI.COMM_WORLD, timeout=5.0)
    x = np.ones(1 << 22, dtype=np.float32)
    comm.allreduce(x, algorithm="ring")
    if comm.rank == 1:
        threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
    start = time.monotonic()
    try:
        for _ in range(100000):
            comm.allreduce(x, algorithm="ring")
    except cl.CollectivesError as exc:
        with open(os.path.join(outdir, f"rank{comm.rank}"), "w") as fh:
            fh.write(f"{type(exc).__name__} after {time.monotonic() - start:.2f} s: {exc}")
        sys.exit(3)
""")


@pytest.mark.parametrize("nranks", [2, 3])
def test_killed_rank_ends_the_job_in_bounded_time(tmp_path, nranks):
    from collectives.launcher import launch_env, mpiexec_command

    marker = f"collectives-kill-{uuid.uuid4().hex}"
    script = tmp_path / "kill.py"
    script.write_text(SCRIPT)
    t0 = time.monotonic()
    proc = subprocess.run(mpiexec_command(nranks, [sys.executable, str(script), marker, str(tmp_path)]),
                          capture_output=True, text=True, timeout=60, env=launch_env())
    took = time.monotonic() - t0
    assert proc.returncode != 0, "the job must not report success after losing a rank"
    assert took < 5.0 + 20.0, f"the job took {took:.1f} s to end"
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    assert not left, f"processes left running: {left}"
    # survivors that saw the failure themselves say what happened, in the library's terms
    for name in os.listdir(tmp_path):
        if name.startswith("rank"):
            text = (tmp_path / name).read_text()
            assert text.startswith(("CollectiveTimeout", "CommunicationError")), text
