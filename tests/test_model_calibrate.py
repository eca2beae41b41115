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
