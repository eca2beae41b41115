"""No hang by default: a rank that leaves or fails tells its peers, who raise at once.

Each case runs a small script under mpiexec with the library's default
settings (no timeout, no validate): rank 1 leaves (returns, ``sys.exit(0)``,
``sys.exit(1)``, an uncaught exception) or calls with another count, while
the other ranks are in a collective. Every surviving rank must raise a
library error naming rank 1 (from the notice, not a deadline), and no process may be left.
"""

import os
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

    marker, outdir, case, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    comm = cl.Communicator(MPI.COMM_WORLD)
    x = np.ones(count, dtype=np.float32)
    comm.allreduce(x)                      # everyone is up and connected
    if comm.rank == 1 and case != "mismatch":
        time.sleep(0.3)                    # the others are waiting in the next call by now
        if case == "exit0":
            sys.exit(0)
        elif case == "exit1":
            sys.exit(1)
        elif case == "raise":
            raise ValueError("rank 1 gave up")
        # "return": the script simply ends
    else:
        start = time.monotonic()
        try:
            if case == "mismatch":         # rank 1 passes 1000 elements more, validate is off
                extra = 1000 if comm.rank == 1 else 0
                comm.allreduce(np.ones(count + extra, dtype=np.float32), algorithm="ring")
            else:
                comm.allreduce(x)
        except cl.CollectivesError as exc:
            with open(os.path.join(outdir, f"rank{comm.rank}"), "w") as fh:
                fh.write(f"{time.monotonic() - start:.3f}\\n{type(exc).__name__}: {exc}")
            sys.exit(3)
        with open(os.path.join(outdir, f"rank{comm.rank}"), "w") as fh:
            fh.write("no error")
""")

CASES = ["return", "exit0", "exit1", "raise", "mismatch"]


def _run(tmp_path, case, nranks, count):
    from collectives.launcher import launch_env, mpiexec_command

    marker = f"collectives-leave-{uuid.uuid4().hex}"
    script = tmp_path / "leave.py"
    script.write_text(SCRIPT)
    env = launch_env()
    env.pop("COLLECTIVES_TIMEOUT", None)      # the library's defaults, as a user has them
    env.pop("COLLECTIVES_VALIDATE", None)
    proc = subprocess.run(mpiexec_command(nranks, [sys.executable, str(script), marker,
                                                   str(tmp_path), case, str(count)]),
                          capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp_path))
    time.sleep(0.3)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    assert not left, f"processes left running: {left}"
    return proc


@pytest.mark.parametrize("nranks", [2, 3])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("count", [8, 1 << 18], ids=["small", "large"])
def test_survivors_raise_naming_the_rank(tmp_path, case, nranks, count):
    proc = _run(tmp_path, case, nranks, count)
    assert proc.returncode != 0, "the job must not report success after losing a rank"
    survivors = [r for r in range(nranks) if r != 1 or case == "mismatch"]
    for r in survivors:
        path = tmp_path / f"rank{r}"
        assert path.exists(), f"rank {r} wrote nothing:\n{proc.stdout}\n{proc.stderr}"
        text = path.read_text()
        assert text != "no error", f"rank {r} finished a collective its peer never joined"
        took, message = text.split("\n", 1)
        # neither error is the 600 s default deadline's (CollectiveTimeout): the notice or MPI
        # ended the wait, shown without a wall-clock bound a loaded machine could miss
        assert message.startswith(("PeerFailure", "CommunicationError")), f"after {took} s: {message}"
        if case != "mismatch":
            assert message.startswith("PeerFailure") and "rank 1" in message, message
    if case == "mismatch":
        # a rank MPI told of the oversized message names rank 1; a rank MPI told nothing learns
        # of the failure by notice (PeerFailure), so every rank has raised (checked above)
        texts = [(tmp_path / f"rank{r}").read_text() for r in survivors]
        assert any("CommunicationError" in t and "rank 1" in t for t in texts), texts
