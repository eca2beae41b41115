"""Non-blocking and persistent collectives: the examples of docs/guide/nonblocking.md.

    mpiexec -n 2 python examples/nonblocking.py
"""

import numpy as np
from mpi4py import MPI

import collectives as cl


def overlap(comm):
    """Start an all-reduce, compute while it travels, then take its result."""
    grads = np.full(1 << 20, float(comm.rank), dtype=np.float32)
    req = comm.iallreduce(grads, op="avg")
    # compute that does not touch grads, interleaved with tests that move the request on
    other = np.zeros(1 << 16)
    while not req.test():
        other += 1.0
    mean = req.wait()                       # done already: returns the result at once
    assert np.all(mean == (comm.size - 1) / 2)
    return mean


def several(comm):
    """Several requests in flight, on this Communicator and on a sub-communicator."""
    sub = comm.split(comm.rank % 2)
    x = np.arange(1000, dtype=np.float64) + comm.rank
    reqs = [comm.iallreduce(x), sub.iallgather(x[:4]), comm.ibroadcast(x.copy(), root=0)]
    total, gathered, from_root = cl.wait_all(reqs)
    assert np.all(total == comm.allreduce(x))
    assert gathered.shape == (4 * sub.size,)
    assert np.all(from_root == np.arange(1000))
    sub.free()


def persistent_bucket(comm, steps=100):
    """A gradient bucket bound once and all-reduced every step, as DDP does."""
    bucket = np.zeros(4096, dtype=np.float32)
    reduced = np.empty_like(bucket)
    with comm.allreduce_init(bucket, out=reduced, op="sum") as op:
        for step in range(steps):
            bucket[:] = step + comm.rank          # this step's gradients, in the bound buffer
            op.start()
            # ... the rest of the backward pass runs here ...
            op.wait()
            assert reduced[0] == step * comm.size + sum(range(comm.size))
    return reduced


def small_flags(comm, steps=1000):
    """Many small all-reduces in flight beside the work: repeats of one shape start in C."""
    flags = np.zeros(2, dtype=np.int64)
    seen = np.empty_like(flags)
    for step in range(steps):
        flags[:] = (step % 3 == 0, comm.rank)
        req = comm.iallreduce(flags, out=seen, op="max", algorithm="mpi")
        # ... work of this step ...
        req.wait()
        assert seen[0] == (step % 3 == 0) and seen[1] == comm.size - 1
    assert isinstance(req, cl.Request)          # a fast-path request is a Request too
    return seen


def pipeline_stage(comm, microbatches=8):
    """A pipeline stage's steady state (1F1B): the activation from the previous stage and the
    gradient from the next one are received while this stage's own two messages leave."""
    nxt, prev = (comm.rank + 1) % comm.size, (comm.rank - 1) % comm.size
    act_in, grad_in = np.zeros(1024, dtype=np.float32), np.zeros(1024, dtype=np.float32)
    for mb in range(microbatches):
        act_out = np.full(1024, comm.rank + mb, dtype=np.float32)     # forward of microbatch mb
        grad_out = np.full(1024, -comm.rank - mb, dtype=np.float32)   # backward of an earlier one
        got_act, got_grad, _, _ = cl.wait_all([
            comm.irecv(act_in, prev, tag=1), comm.irecv(grad_in, nxt, tag=2),
            comm.isend(act_out, nxt, tag=1), comm.isend(grad_out, prev, tag=2)])
        assert got_act.source == prev and got_grad.source == nxt
        assert act_in[0] == prev + mb and grad_in[0] == -nxt - mb
    return act_in


if __name__ == "__main__":
    comm = cl.Communicator(MPI.COMM_WORLD)
    overlap(comm)
    several(comm)
    persistent_bucket(comm)
    small_flags(comm)
    pipeline_stage(comm)
    if comm.rank == 0:
        print("nonblocking examples: ok")
    comm.free()
