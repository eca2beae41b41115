"""Cutting messages into segments never changes a result.

With 64-byte segments a message of a few KiB is hundreds of segments, so a
reducing receive reuses each of its scratch slots many times and several
reducing receives of one step share the scratch memory: the executor must still
reduce in the program's order, giving bitwise the bytes of an unsegmented run.
"""

import numpy as np
import pytest

pytestmark = pytest.mark.mpi(ranks=[2, 3])

REDUCING = ("allreduce", "reduce_scatter")


def _algorithms(collective):
    from collectives.algorithms import algorithm_names

    return list(algorithm_names(collective))


def _floats(rank, n, salt):
    rng = np.random.default_rng(1000 * salt + rank)
    return (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)).astype(np.float32)


@pytest.mark.parametrize("collective", REDUCING)
def test_segmented_reductions_are_bitwise_unsegmented(comm, collective):
    import collectives as cl

    small = cl.Communicator(comm.mpi_comm, segment_bytes=64)
    try:
        for name in _algorithms(collective):
            for n in (7, 1000, 4099):
                n -= n % comm.size if collective == "reduce_scatter" else 0
                x = _floats(comm.rank, n, n)
                whole = getattr(comm, collective)(x, algorithm=name)
                cut = getattr(small, collective)(x, algorithm=name)
                assert cut.tobytes() == whole.tobytes(), f"{collective} {name} n={n}"
    finally:
        small.free()


def test_segmented_in_place_allreduce_is_exact(comm):
    import collectives as cl

    small = cl.Communicator(comm.mpi_comm, segment_bytes=64)
    try:
        for name in _algorithms("allreduce"):
            for dtype in (np.int32, np.float64, np.uint8):
                x = ((np.arange(5000) * 7 + comm.rank * 3) % 5).astype(dtype)
                want = sum(((np.arange(5000) * 7 + r * 3) % 5).astype(dtype) for r in range(comm.size))
                small.allreduce(x, algorithm=name, out=x)
                assert np.array_equal(x, want), f"{name} {np.dtype(dtype).name}"
    finally:
        small.free()
