"""Point-to-point waits in the core see a peer that left: PeerFailure naming it, no hang.

Rank 1 leaves while rank 0 waits on it in a blocking ``recv``, in a
``request.wait()`` of an ``irecv``, or in a ``send`` large enough that it
waits for the matching receive. Rank 0 must raise PeerFailure naming rank 1
(the 600 s default deadline would raise CollectiveTimeout), and no process may be left.
"""

import subprocess
import sys
import textwrap
import time
import uuid

import pytest

SCRIPT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from mpi4py import MPI
    import collectives as cl

    marker, outdir, case = sys.argv[1], sys.argv[2], sys.argv[3]
    comm = cl.Communicator(MPI.COMM_WORLD)
    comm.allreduce(np.ones(4))             # everyone is up and connected
    if comm.rank == 1:
        time.sleep(0.3)                    # rank 0 is waiting by now
        sys.exit(0)
    start = time.monotonic()
    try:
        if case == "recv":
            comm.recv(np.zeros(4), 1, tag=5)
        elif case == "irecv":
            comm.irecv(np.zeros(4), 1, tag=5).wait()
        else:                              # a rendezvous-sized send nobody receives
            comm.send(np.zeros(1 << 20), 1, tag=5)
    except cl.CollectivesError as exc:
        with open(os.path.join(outdir, "rank0"), "w") as fh:
            fh.write(f"{time.monotonic() - start:.3f}\\n{type(exc).__name__}: {exc}")
        sys.exit(3)
    with open(os.path.join(outdir, "rank0"), "w") as fh:
        fh.write("no error")
""")


@pytest.mark.parametrize("case", ["recv", "irecv", "send"])
def test_waiting_rank_raises_naming_the_peer_that_left(tmp_path, case):
    from collectives.launcher import launch_env, mpiexec_command

    marker = f"collectives-p2p-leave-{uuid.uuid4().hex}"
    script = tmp_path / "leave.py"
    script.write_text(SCRIPT)
    env = launch_env()
    env.pop("COLLECTIVES_TIMEOUT", None)
    proc = subprocess.run(mpiexec_command(2, [sys.executable, str(script), marker, str(tmp_path), case]),
                          capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp_path))
    time.sleep(0.3)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    assert not left, f"processes left running: {left}"
    path = tmp_path / "rank0"
    assert path.exists(), f"rank 0 wrote nothing:\n{proc.stdout}\n{proc.stderr}"
    took, message = path.read_text().split("\n", 1)
    # PeerFailure comes from the notice of rank 1's exit; the 600 s default deadline would give
    # CollectiveTimeout, so the type shows the wait ended on the notice without a wall-clock bound
    assert message.startswith("PeerFailure") and "rank 1" in message and "tag 5" in message, \
        f"after {took} s: {message}"
