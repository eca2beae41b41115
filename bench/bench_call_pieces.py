"""Where the microseconds of a small call go: the pieces of a call timed in one process.

    python bench/bench_call_pieces.py [--calls 20000]

Each line is the best of 5 loops of ``--calls`` calls (perf_counter_ns), on
``MPI.COMM_SELF``, so the MPI part is a local copy and what is left is the
per-call cost of the layers above it: mpi4py's own call on the same buffers,
the library's call as a user makes it (a repeat of one shape: the compiled
fast path), the checked path it replaces, and the checked path's pieces.
Point-to-point messages go to this process itself (``isend`` + ``recv`` +
``wait``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _timer(calls):
    def timed(label, fn):
        for _ in range(200):
            fn()
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                fn()
            best = min(best, (time.perf_counter_ns() - t0) / calls)
        print(f"| {label} | {best / 1000:.3f} |", flush=True)
    return timed


def main(argv=None):
    from mpi4py import MPI

    import collectives as cl
    from collectives import p2p, requests
    from collectives.buffers import as_array

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=20000)
    args = ap.parse_args(argv)
    t = _timer(args.calls)
    comm = cl.Communicator(MPI.COMM_SELF)
    raw = MPI.COMM_SELF.Dup()
    core = cl.communicator._core
    print("| call or piece | us |\n|---|---:|")
    for nbytes in (8, 4096):
        x = np.ones(nbytes // 4, dtype=np.float32)
        y = np.empty_like(x)
        print(f"| **all-reduce {nbytes} B** | |")
        t("mpi4py Allreduce", lambda: raw.Allreduce(x, y))
        t("mpi4py Iallreduce + Wait", lambda: raw.Iallreduce(x, y).Wait())
        t("comm.iallreduce(x, out=y, algorithm='mpi').wait() (fast path)",
          lambda: comm.iallreduce(x, out=y, algorithm="mpi").wait())
        t("checked path: requests.Request(...).wait()",
          lambda: requests.Request(comm, "allreduce", x, out=y, algorithm="mpi").wait())
        t("  argument checks (Communicator._operands)", lambda: comm._operands("allreduce", x, "sum", y))
        a, o, _, op_code, _ = comm._operands("allreduce", x, "sum", y)
        t("  call shape lookup (_entry)", lambda: comm._entry("allreduce", "mpi", a, op_code, 0))
        entry = comm._entry("allreduce", "mpi", a, op_code, 0)

        def fresh():
            core.Execution.collective(comm._comm, core.NATIVE["allreduce"], a, o, a.size, None, entry.dcode,
                                      op_code, 0, False, comm._notice).free()

        t("  a fresh execution and its free", fresh)
        ex = core.Execution.collective(comm._comm, core.NATIVE["allreduce"], a, o, a.size, None, entry.dcode,
                                       op_code, 0, False, comm._notice)

        def start_wait():
            if ex.start(comm.timeout_or_zero) is False:
                ex.wait(0.0)

        t("  start + wait in the core", start_wait)
        ex.free()
    buf = np.ones(8, dtype=np.uint8)
    out = np.empty_like(buf)
    print("| **point-to-point 8 B, to itself** | |")

    def theirs():
        r = raw.Isend(buf, 0)
        raw.Recv(out, 0)
        r.Wait()

    def ours():
        r = comm.isend(buf, 0)
        comm.recv(out, 0)
        r.wait()

    t("mpi4py Isend + Recv + Wait", theirs)
    t("comm.isend + comm.recv (fast path) + wait", ours)
    t("  as_array(x) + as_array(out, writable)",
      lambda: (as_array(buf, "x"), as_array(out, "out", writable=True)))
    t("  peer and tag checks, twice", lambda: (comm._peer(0, "dest"), comm._tag(0), comm._peer(0, "src"),
                                               comm._tag(0)))
    t("  RecvStatus(...)", lambda: p2p.RecvStatus(0, 0, 8))
    for n in (2, 1024):
        x = np.ones(n, dtype=np.float32)
        o = np.empty_like(x)
        counts = np.array([n])
        print(f"| **alltoallv {4 * n} B** | |")
        theirs_v = ([x, ([n], [0]), MPI.FLOAT], [o, ([n], [0]), MPI.FLOAT])
        t("mpi4py Alltoallv", lambda: raw.Alltoallv(*theirs_v))
        t("comm.alltoallv(..., algorithm='mpi') (fast path)",
          lambda: comm.alltoallv(x, counts, counts, out=o, algorithm="mpi"))

        def checked():
            comm._fast_alltoallv.forget()
            comm.alltoallv(x, counts, counts, out=o, algorithm="mpi")

        t("checked path (remembered shapes dropped first)", checked)
        t("  counts checks, twice", lambda: (comm._counts(counts, "send_counts"), comm._counts(counts, "r")))
        t("  out checks (_output)", lambda: comm._output(x, x, o, (n,), same_as_input=False))
    comm.free()


if __name__ == "__main__":
    main()
