"""Point-to-point ping-pong and all-to-all-v against mpi4py's own calls on the same buffers.

Script mode (the tables of the layouts guide):

    mpiexec -n 2 python bench/bench_p2p.py [--sizes 8,4K,64K,1M,4M] [--rounds 9]

Ping-pong (``send``/``recv``, and ``isend``/``irecv`` + ``wait`` against mpi4py's
``Isend``/``Irecv`` + ``Wait``): rank 0 sends and receives back, rank 1 receives and sends back;
``comm.send``/``comm.recv`` and mpi4py's ``Send``/``Recv`` on a duplicate of the
same communicator are timed interleaved, call by call, each right after a
barrier (``collectives.bench.time_interleaved``), so load on a shared machine
hits both alike. A 1F1B-like step keeps two receives and two sends outstanding on every
rank (``cl.wait_all``, or one ``wait`` each, against mpi4py's ``Waitall``). A timed call makes 20 round trips (2 above 64 KiB); one-way
time is half a round trip; the table shows the median over calls of the
slowest rank and the ratio. All-to-all-v: uneven random counts (the same on
every rank), ``comm.alltoallv`` ("pairwise" and "mpi") against mpi4py's
``Alltoallv``, timed the same way. ``--rounds`` scales the number of timed
calls (50 per round, fewer for large messages).

pytest-benchmark mode (the call overhead on one rank, messages to itself):

    pytest bench/bench_p2p.py
"""

from __future__ import annotations

import argparse

import numpy as np


def _median_times(world, fns: dict, iters: int, per_call: int) -> dict:
    """Per name, seconds per operation: the median over ``iters`` interleaved iterations
    (``collectives.bench.time_interleaved``) of the slowest rank's time, divided by the
    ``per_call`` operations each call makes."""
    from mpi4py import MPI

    from collectives.bench import time_interleaved

    def slowest(times):
        worst = np.empty_like(times)
        world.Allreduce(times, worst, op=MPI.MAX)
        return worst

    calls = list(fns.values())
    for fn in calls:   # first calls prepare code paths and caches
        for _ in range(3):
            fn()
    times = time_interleaved(calls, iters, barrier=world.Barrier, slowest=slowest)
    med = np.median(times, axis=0) / per_call
    return dict(zip(fns, med.tolist()))


def pingpong(comm, raw, nbytes: int, rounds: int) -> dict:
    """One-way seconds of ``comm.send/recv`` ("collectives") and mpi4py's ("mpi4py")."""
    r = comm.rank
    buf = np.ones(nbytes, dtype=np.uint8)
    out = np.empty(nbytes, dtype=np.uint8)
    trips = 20 if nbytes <= 65536 else 2     # round trips per timed call
    iters = int(min(50 * rounds, max(5, 5e8 / max(nbytes, 1) / trips)))

    def ours():
        for _ in range(trips):
            if r == 0:
                comm.send(buf, 1)
                comm.recv(out, 1)
            elif r == 1:
                comm.recv(out, 0)
                comm.send(buf, 0)

    def theirs():
        for _ in range(trips):
            if r == 0:
                raw.Send(buf, 1)
                raw.Recv(out, 1)
            elif r == 1:
                raw.Recv(out, 0)
                raw.Send(buf, 0)

    # one way is half a round trip
    return _median_times(raw, {"collectives": ours, "mpi4py": theirs}, iters, 2 * trips)


def ipingpong(comm, raw, nbytes: int, rounds: int) -> dict:
    """One-way seconds of an ``isend``/``irecv`` + ``wait`` ping-pong ("collectives") and
    mpi4py's ``Isend``/``Irecv`` + ``Wait`` ("mpi4py")."""
    r = comm.rank
    buf = np.ones(nbytes, dtype=np.uint8)
    out = np.empty(nbytes, dtype=np.uint8)
    trips = 20 if nbytes <= 65536 else 2
    iters = int(min(50 * rounds, max(5, 5e8 / max(nbytes, 1) / trips)))

    def ours():
        for _ in range(trips):
            if r == 0:
                comm.isend(buf, 1).wait()
                comm.irecv(out, 1).wait()
            elif r == 1:
                comm.irecv(out, 0).wait()
                comm.isend(buf, 0).wait()

    def theirs():
        for _ in range(trips):
            if r == 0:
                raw.Isend(buf, 1).Wait()
                raw.Irecv(out, 1).Wait()
            elif r == 1:
                raw.Irecv(out, 0).Wait()
                raw.Isend(buf, 0).Wait()

    return _median_times(raw, {"collectives": ours, "mpi4py": theirs}, iters, 2 * trips)


def one_f_one_b(comm, raw, nbytes: int, rounds: int) -> dict:
    """Seconds per exchange of a 1F1B-like step: two receives (forward from the previous stage,
    backward from the next) and two sends outstanding at once, completed by ``cl.wait_all``
    ("wait_all"), by one ``wait`` each in posting order ("wait each"), and by mpi4py's
    ``Isend``/``Irecv``/``Waitall`` ("mpi4py")."""
    from mpi4py import MPI

    import collectives as cl

    p, r = comm.size, comm.rank
    nxt, prv = (r + 1) % p, (r - 1) % p
    fwd_out, bwd_out = np.ones(nbytes, dtype=np.uint8), np.ones(nbytes, dtype=np.uint8)
    fwd_in, bwd_in = np.empty(nbytes, dtype=np.uint8), np.empty(nbytes, dtype=np.uint8)
    steps = 20 if nbytes <= 65536 else 2
    iters = int(min(50 * rounds, max(5, 5e8 / max(nbytes, 1) / steps)))

    def posted():
        return [comm.irecv(fwd_in, prv, tag=1), comm.irecv(bwd_in, nxt, tag=2),
                comm.isend(fwd_out, nxt, tag=1), comm.isend(bwd_out, prv, tag=2)]

    def ours_all():
        for _ in range(steps):
            cl.wait_all(posted())

    def ours_each():
        for _ in range(steps):
            for req in posted():
                req.wait()

    def theirs():
        for _ in range(steps):
            MPI.Request.Waitall([raw.Irecv(fwd_in, prv, tag=1), raw.Irecv(bwd_in, nxt, tag=2),
                                 raw.Isend(fwd_out, nxt, tag=1), raw.Isend(bwd_out, prv, tag=2)])

    return _median_times(raw, {"wait_all": ours_all, "wait each": ours_each, "mpi4py": theirs},
                         iters, steps)


def alltoallv(comm, raw, nbytes: int, rounds: int) -> dict:
    """Seconds per call of comm.alltoallv ("pairwise", "mpi") and mpi4py's Alltoallv."""
    from mpi4py import MPI

    p, r = comm.size, comm.rank
    n = max(nbytes // 4, p)
    counts = np.random.default_rng(1).integers(n // (2 * p), 3 * n // (2 * p) + 1, size=(p, p))
    sc, rc = counts[r].astype(np.int64), counts[:, r].astype(np.int64)
    x = np.ones(int(sc.sum()), dtype=np.float32)
    out = np.empty(int(rc.sum()), dtype=np.float32)
    sd = np.concatenate([[0], np.cumsum(sc)[:-1]])
    rd = np.concatenate([[0], np.cumsum(rc)[:-1]])
    iters = int(min(50 * rounds, max(5, 5e8 / max(nbytes, 1))))
    # mpi4py's count and displacement lists, made once as our cached call shape is
    theirs = ([x, (sc.tolist(), sd.tolist()), MPI.FLOAT], [out, (rc.tolist(), rd.tolist()), MPI.FLOAT])

    return _median_times(raw, {
        "pairwise": lambda: comm.alltoallv(x, sc, rc, out=out, algorithm="pairwise"),
        "mpi": lambda: comm.alltoallv(x, sc, rc, out=out, algorithm="mpi"),
        "MPI_Alltoallv": lambda: raw.Alltoallv(*theirs),
    }, iters, 1)


def main(argv=None):
    from mpi4py import MPI

    import collectives as cl
    from collectives.units import format_bytes, parse_size

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="8,4K,64K,1M,4M", help="comma-separated sizes in bytes")
    ap.add_argument("--a2av-sizes", default="64K,1M,4M", help="alltoallv: bytes each rank sends")
    ap.add_argument("--rounds", type=int, default=9, help="timed calls: 50 per round")
    ap.add_argument("--skip-alltoallv", action="store_true", help="the point-to-point tables only")
    args = ap.parse_args(argv)
    world = MPI.COMM_WORLD
    comm = cl.Communicator(world)
    raw = world.Dup()
    if world.size >= 2:
        if world.rank == 0:
            print("| message | mpi4py Send/Recv | collectives send/recv | ratio |\n|---|---|---|---|", flush=True)
        for text in args.sizes.split(","):
            nb = parse_size(text)
            t = pingpong(comm, raw, nb, args.rounds)
            if world.rank == 0:
                print(f"| {format_bytes(nb)} | {t['mpi4py'] * 1e6:.1f} us | {t['collectives'] * 1e6:.1f} us "
                      f"| {t['collectives'] / t['mpi4py']:.2f}x |", flush=True)
        if world.rank == 0:
            print("\n| message | mpi4py Isend/Irecv+Wait | collectives isend/irecv+wait | ratio |\n"
                  "|---|---|---|---|", flush=True)
        for text in args.sizes.split(","):
            nb = parse_size(text)
            t = ipingpong(comm, raw, nb, args.rounds)
            if world.rank == 0:
                print(f"| {format_bytes(nb)} | {t['mpi4py'] * 1e6:.1f} us | {t['collectives'] * 1e6:.1f} us "
                      f"| {t['collectives'] / t['mpi4py']:.2f}x |", flush=True)
        if world.rank == 0:
            print("\n| message | mpi4py Waitall | collectives wait_all | ratio | wait each | ratio |\n"
                  "|---|---|---|---|---|---|", flush=True)
        for text in args.sizes.split(","):
            nb = parse_size(text)
            t = one_f_one_b(comm, raw, nb, args.rounds)
            if world.rank == 0:
                ref = t["mpi4py"]
                print(f"| {format_bytes(nb)} | {ref * 1e6:.1f} us | {t['wait_all'] * 1e6:.1f} us "
                      f"| {t['wait_all'] / ref:.2f}x | {t['wait each'] * 1e6:.1f} us "
                      f"| {t['wait each'] / ref:.2f}x |", flush=True)
    if args.skip_alltoallv:
        return
    if world.rank == 0:
        print(f"\n| bytes per rank ({world.size} ranks) | MPI_Alltoallv | pairwise | mpi |\n|---|---|---|---|",
              flush=True)
    for text in args.a2av_sizes.split(","):
        nb = parse_size(text)
        t = alltoallv(comm, raw, nb, args.rounds)
        if world.rank == 0:
            ref = t["MPI_Alltoallv"]
            print(f"| {format_bytes(nb)} | {ref * 1e6:.0f} us | {t['pairwise'] * 1e6:.0f} us "
                  f"({t['pairwise'] / ref:.2f}x) | {t['mpi'] * 1e6:.0f} us ({t['mpi'] / ref:.2f}x) |", flush=True)


# ---- pytest-benchmark: the call overhead on one rank --------------------------------------

def _self():
    from mpi4py import MPI

    import collectives as cl

    return cl.Communicator(MPI.COMM_SELF)


def test_send_recv_to_self_8b(benchmark):
    comm = _self()
    buf = np.ones(8, dtype=np.uint8)
    out = np.empty_like(buf)

    def exchange():
        sending = comm.isend(buf, 0)
        comm.recv(out, 0)
        sending.wait()

    benchmark(exchange)


def test_irecv_isend_wait_to_self_8b(benchmark):
    comm = _self()
    buf = np.ones(8, dtype=np.uint8)
    out = np.empty_like(buf)

    def exchange():
        receiving = comm.irecv(out, 0)
        sending = comm.isend(buf, 0)
        receiving.wait()
        sending.wait()

    benchmark(exchange)


def test_mpi4py_irecv_isend_wait_to_self_8b(benchmark):
    from mpi4py import MPI

    raw = MPI.COMM_SELF.Dup()
    buf = np.ones(8, dtype=np.uint8)
    out = np.empty_like(buf)

    def exchange():
        receiving = raw.Irecv(out, 0)
        sending = raw.Isend(buf, 0)
        receiving.Wait()
        sending.Wait()

    benchmark(exchange)


def test_mpi4py_send_recv_to_self_8b(benchmark):
    from mpi4py import MPI

    raw = MPI.COMM_SELF.Dup()
    buf = np.ones(8, dtype=np.uint8)
    out = np.empty_like(buf)

    def exchange():
        sending = raw.Isend(buf, 0)
        raw.Recv(out, 0)
        sending.Wait()

    benchmark(exchange)


def test_alltoallv_repeated_counts_1mib(benchmark):
    comm = _self()
    x = np.ones(1 << 18, dtype=np.float32)
    out = np.empty_like(x)
    counts = np.array([x.size])
    benchmark(lambda: comm.alltoallv(x, counts, counts, out=out))


if __name__ == "__main__":
    main()
