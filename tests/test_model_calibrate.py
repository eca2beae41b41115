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
