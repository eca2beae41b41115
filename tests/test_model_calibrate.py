"""Calibration under MPI: ping-pong, reduce bandwidth, fit, profile round trip."""

import pytest


@pytest.mark.mpi(ranks=[2])
def test_calibrate_two_ranks(tmp_path_factory):
    from mpi4py import MPI

    from collectives.model.calibrate import calibrate, load_profile, save_profile, two_level_topology

    prof = calibrate(MPI.COMM_WORLD, sizes=[8, 4096, 65536, 1 << 20], iters=3)
    assert prof.intra.latency >= 0 and prof.intra.bandwidth > 0
    assert prof.reduce_bandwidth > 0
    assert prof.inter is None            # both ranks on this machine share memory
    if MPI.COMM_WORLD.Get_rank() == 0:
        path = tmp_path_factory.mktemp("prof") / "p.json"
        save_profile(prof, path)
        back = load_profile(path)
        assert back.intra.bandwidth == pytest.approx(prof.intra.bandwidth)
        t = two_level_topology([0, 0], back)
        assert len(t.hosts) == 2


@pytest.mark.mpi(ranks=[2])
def test_calibrate_measures_the_host_terms(tmp_path_factory):
    # every host constant of the model is measured, kept in the profile and given to the model
    import math

    from mpi4py import MPI

    from collectives.model.calibrate import (HOST_CONSTANTS, calibrate, load_profile, save_profile,
                                             two_level_model)

    prof = calibrate(MPI.COMM_WORLD, sizes=[8, 4096, 65536], iters=3)
    assert set(prof.host) == set(HOST_CONSTANTS)
    for k in ("cache_copy_bandwidth", "cache_bytes", "memory_bandwidth"):
        assert math.isfinite(prof.host[k]) and prof.host[k] > 0
    for k in ("call_overhead", "emulated_call_overhead"):
        assert math.isfinite(prof.host[k]) and prof.host[k] >= 0
    assert prof.measured["memory_ranks"] == 2      # both ranks of this machine copied at once
    assert math.isfinite(prof.copy_bandwidth) and prof.copy_bandwidth > 0
    if MPI.COMM_WORLD.Get_rank() == 0:
        path = tmp_path_factory.mktemp("prof") / "p.json"
        save_profile(prof, path)
        _, params = two_level_model([0, 0], load_profile(path))
        assert params["memory_bandwidth"] == pytest.approx(prof.host["memory_bandwidth"])
        assert params["call_overhead"] == pytest.approx(prof.host["call_overhead"])


@pytest.mark.mpi(ranks=[4])
def test_core_wait_is_measured_only_where_ranks_outnumber_the_cores():
    # the wait for a core exists only with more ranks on a machine than cores: calibrate measures
    # it there (a time >= 0) and leaves it out elsewhere (None: the model keeps its default)
    import math
    import os

    from mpi4py import MPI

    from collectives.model.calibrate import measure_core_wait

    cores = len(os.sched_getaffinity(0))
    wait = measure_core_wait(MPI.COMM_WORLD, cores, iters=5)
    if MPI.COMM_WORLD.Get_size() > cores:
        assert isinstance(wait, float) and math.isfinite(wait) and wait >= 0
    else:
        assert wait is None
    assert measure_core_wait(MPI.COMM_WORLD, MPI.COMM_WORLD.Get_size()) is None
