"""bench/emulation_agreement.py prices an emulated run with the host terms of the computer it ran on.

No MPI: a measured row is fabricated and priced, as ``--from`` re-prices a stored one.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import collectives as cl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def agreement():
    path = os.path.join(ROOT, "bench", "emulation_agreement.py")
    spec = importlib.util.spec_from_file_location("emulation_agreement", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(ranks, collective="allreduce", algorithm="ring", nbytes=1 << 20, measured=1e-3):
    return {"collective": collective, "algorithm": algorithm, "ranks": ranks, "bytes": nbytes,
            "measured_s": measured, "late_share": 0.0, "groups": None,
            "topology": f"star:n={ranks},bw=1GB/s,lat=20us"}


def test_every_rank_shares_one_machine_and_its_cores(agreement):
    row = agreement.price([_row(4)], cores=2)[0]
    one = np.zeros(4, dtype=np.int64)
    # and each call pays the emulation's per-call cost on top of the model's
    call = cl.model.DEFAULTS["call_overhead"] + cl.model.EMULATION_CALL_OVERHEAD
    want = cl.model.predict("allreduce", "ring", 1 << 20, row["topology"], ranks=4,
                            machines=one, cores=2, call_overhead=call)
    assert row["predicted_s"] == pytest.approx(want, rel=1e-12)
    assert row["ratio"] == pytest.approx(1e-3 / want, rel=1e-12)
    # the network alone is the other column
    net = cl.model.predict("allreduce", "ring", 1 << 20, row["topology"], ranks=4,
                           **cl.model.HOST_TERMS_OFF)
    assert row["network_s"] == pytest.approx(net, rel=1e-12)


def test_ranks_beyond_the_cores_make_the_prediction_slower(agreement):
    # the reductions and per-message overheads of 4 ranks on 2 cores take twice as long
    shared = agreement.price([_row(4, "allreduce", "rhd", 1 << 16)], cores=2)[0]
    own = agreement.price([_row(4, "allreduce", "rhd", 1 << 16)], cores=4)[0]
    assert shared["predicted_s"] > own["predicted_s"] > own["network_s"]


def test_four_ranks_on_two_cores_wait_for_a_core_at_every_ring_step(agreement):
    # ring all-reduce on 4 ranks: 6 steps, every rank receives in each; with 4 ranks busy on
    # 2 cores (s = 2) each step adds (s - 1) * core_wait, so the call takes 6 core_wait more
    row = agreement.price([_row(4)], cores=2)[0]
    kw = {**agreement.host_terms(4, 2), "core_wait": 0.0}
    without = cl.model.predict("allreduce", "ring", 1 << 20, row["topology"], ranks=4, **kw)
    assert row["predicted_s"] - without == pytest.approx(6 * cl.model.DEFAULTS["core_wait"], rel=1e-9)
    # a core per rank: no wait
    own = agreement.price([_row(4)], cores=4)[0]
    kw = {**agreement.host_terms(4, 4), "core_wait": 0.0}
    assert own["predicted_s"] == pytest.approx(
        cl.model.predict("allreduce", "ring", 1 << 20, row["topology"], ranks=4, **kw), rel=1e-12)


def test_a_calibration_profile_replaces_the_default_host_constants(agreement, tmp_path):
    from collectives.model.calibrate import Link, Profile, save_profile

    prof = Profile(intra=Link(5e-6, 4e9), inter=None, reduce_bandwidth=4e9, copy_bandwidth=3e9,
                   host={"cache_copy_bandwidth": 20e9, "cache_bytes": 1 << 20,
                         "memory_bandwidth": 9e9, "call_overhead": 4e-6,
                         "emulated_call_overhead": 19e-6, "core_wait": 17e-6})
    path = tmp_path / "profile.json"
    save_profile(prof, path)
    terms = agreement.host_terms(4, 2, str(path))
    assert terms["reduce_bandwidth"] == 4e9 and terms["copy_bandwidth"] == 3e9
    assert terms["memory_bandwidth"] == 9e9 and terms["core_wait"] == 17e-6
    # the per-call cost is the profile's own plus what it measured for emulated links
    assert terms["call_overhead"] == pytest.approx(4e-6 + 19e-6, rel=1e-12)
    # and the price is the model's with exactly those constants (its links are not used)
    row = agreement.price([_row(4)], cores=2, profile=str(path))[0]
    want = cl.model.predict("allreduce", "ring", 1 << 20, row["topology"], ranks=4, **terms)
    assert row["predicted_s"] == pytest.approx(want, rel=1e-12)
    assert row["predicted_s"] > agreement.price([_row(4)], cores=2)[0]["predicted_s"]   # slower host
    # a profile without a constant keeps the model's default for it
    bare = Profile(intra=Link(5e-6, 4e9), inter=None, reduce_bandwidth=4e9)
    save_profile(bare, tmp_path / "bare.json")
    terms = agreement.host_terms(2, 2, str(tmp_path / "bare.json"))
    assert "copy_bandwidth" not in terms and "core_wait" not in terms
    assert terms["call_overhead"] == pytest.approx(
        cl.model.DEFAULTS["call_overhead"] + cl.model.EMULATION_CALL_OVERHEAD, rel=1e-12)
