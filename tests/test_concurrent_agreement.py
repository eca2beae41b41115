"""bench/concurrent_agreement.py prices its concurrent runs with the pricing the emulated links use.

No MPI: measured rows are fabricated and priced, as ``--from`` re-prices a stored file.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import collectives as cl
from collectives.algorithms import build_schedule
from collectives.model.joint import joint_call_times

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIR = "star:n=2,bw=1GB/s,lat=20us"


@pytest.fixture(scope="module")
def agreement():
    path = os.path.join(ROOT, "bench", "concurrent_agreement.py")
    spec = importlib.util.spec_from_file_location("concurrent_agreement", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(case, nbytes, measured=1e-3):
    return {"case": case, "mode": "requests", "bytes": nbytes, "measured_s": measured,
            "sequential_s": 2 * measured, "ranks": 2, "late_share": 0.0, "topology": PAIR,
            "cores": 2.0, "segment_bytes": 1 << 20}


def _host(n):
    """This machine's host terms as an emulated call pays them (its call cost included)."""
    return {"machines": np.zeros(n, dtype=np.int64), "cores": 2.0, "segment_bytes": 1 << 20,
            "call_overhead": cl.model.DEFAULTS["call_overhead"] + cl.model.EMULATION_CALL_OVERHEAD}


def test_a_pair_is_priced_by_the_joint_model_with_this_machines_host_terms(agreement):
    row = agreement.price([_row("pair", 1 << 20)])[0]
    hosts = np.arange(2)
    ring = (build_schedule("allreduce", "ring", 2, 1 << 18), hosts)
    pairwise = (build_schedule("alltoall", "pairwise", 2, 1 << 18), hosts)
    both = joint_call_times([ring, pairwise], PAIR, itemsize=4, **_host(4))
    alone = [joint_call_times([p], PAIR, itemsize=4, **_host(2))[0] for p in (ring, pairwise)]
    assert row["predicted_s"] == pytest.approx(both.max(), rel=1e-12)
    assert row["predicted_sequential_s"] == pytest.approx(sum(alone), rel=1e-12)
    assert row["alone_s"] == pytest.approx(max(alone), rel=1e-12)
    assert row["ratio"] == pytest.approx(1e-3 / both.max(), rel=1e-12)
    # sharing the pair's links is what the joint model adds
    assert row["alone_s"] < row["predicted_s"]


def test_the_step_case_is_a_bucket_beside_the_last_layers_all_to_alls(agreement):
    """The docs' claim about the replayed step: the first bucket is launched after the first
    layer of the backward pass, while the second layer's two all-to-alls are still to come."""
    step = agreement.toy_step(1 << 20)
    assert step.dispatch_bytes == 1 << 20 and step.layout.dp == step.layout.ep == 2
    buckets = step.gradient_buckets(0)
    backward = step.backward_program(0)
    first = next(i for i, item in enumerate(backward) if getattr(item, "layer", None) == buckets[0].after)
    later = [item for item in backward[first:] if hasattr(item, "nbytes")]
    assert [c.collective for c in later] == ["alltoall", "alltoall"]
    assert all(b.collective.collective == "allreduce" and b.collective.dim == "dp" for b in buckets)


def test_the_step_case_is_priced_by_simulate_and_by_the_holds(agreement):
    row = agreement.price([_row("step", 1 << 20, measured=6e-3)])[0]
    step = agreement.toy_step(1 << 20)
    assert row["simulate_s"] == pytest.approx(cl.workload.simulate(step, PAIR).time, rel=1e-12)
    assert row["ratio_simulate"] == pytest.approx(6e-3 / row["simulate_s"], rel=1e-12)
    # and by the CPU-host simulate with the emulated run's host terms
    cpu = cl.workload.simulate(step, PAIR, emulated=True, machines=np.zeros(2, dtype=np.int64),
                               cores=2.0, segment_bytes=1 << 20)
    assert row["simulate_cpu_s"] == pytest.approx(cpu.time, rel=1e-12)
    assert row["ratio_simulate_cpu"] == pytest.approx(6e-3 / cpu.time, rel=1e-12)
    assert row["simulate_cpu_s"] > row["simulate_s"]      # the host's copies and calls cost time
    # one after the other: every call of the step priced alone
    hosts = np.arange(2)
    calls = [c for c in step.forward_program(0) + step.backward_program(0) if hasattr(c, "nbytes")]
    calls += [b.collective for b in step.gradient_buckets(0)]
    alone = sum(joint_call_times([(build_schedule(c.collective, "ring" if c.collective == "allreduce"
                                                  else "pairwise", 2, c.nbytes // 4), hosts)],
                                 PAIR, itemsize=4, **_host(2))[0] for c in calls)
    assert row["predicted_sequential_s"] == pytest.approx(alone, rel=1e-12)
    # concurrent: the bucket overlaps the all-to-alls, so the step is shorter than in turn,
    # and longer than if the overlapping calls did not share the links
    assert row["predicted_s"] < alone
    bucket = step.gradient_buckets(0)[0].collective
    hidden = joint_call_times([(build_schedule("allreduce", "ring", 2, bucket.nbytes // 4), hosts)],
                              PAIR, itemsize=4, **_host(2))[0]
    assert row["predicted_s"] > alone - hidden


@pytest.mark.parametrize("nbytes", [1 << 16, 1 << 18, 1 << 20, 1 << 22])
def test_the_replays_holds_and_simulate_price_the_step_alike(agreement, nbytes):
    """The same traffic, one pricing rule: the joint model of the replay (each call's
    joint_call_times in the replay's order) and the CPU-host simulate both let a bucket share
    the links only while the call beside it runs. They differ only where the replay declares
    a bucket beside the one all-to-all that starts with it while simulate also shares the
    bucket's rest with the next all-to-all: within 5%."""
    row = agreement.price([_row("step", nbytes)])[0]
    assert row["predicted_s"] == pytest.approx(row["simulate_cpu_s"], rel=0.05)
    # and overlapping the bucket is worth something: less than the calls one after the other
    assert row["predicted_s"] < row["predicted_sequential_s"]


def test_a_calibration_profile_prices_both_models_with_its_host_constants(agreement, tmp_path):
    from collectives.model.calibrate import Link, Profile, save_profile

    prof = Profile(intra=Link(5e-6, 4e9), inter=None, reduce_bandwidth=4e9, copy_bandwidth=3e9,
                   host={"memory_bandwidth": 9e9, "call_overhead": 4e-6, "emulated_call_overhead": 19e-6})
    path = str(tmp_path / "profile.json")
    save_profile(prof, path)
    slow = {"machines": np.zeros(4, dtype=np.int64), "cores": 2.0, "segment_bytes": 1 << 20,
            "reduce_bandwidth": 4e9, "copy_bandwidth": 3e9, "memory_bandwidth": 9e9,
            "call_overhead": 23e-6}
    row = agreement.price([{**_row("pair", 1 << 20), "profile": path}])[0]
    hosts = np.arange(2)
    parts = [(build_schedule("allreduce", "ring", 2, 1 << 18), hosts),
             (build_schedule("alltoall", "pairwise", 2, 1 << 18), hosts)]
    assert row["predicted_s"] == pytest.approx(
        joint_call_times(parts, PAIR, itemsize=4, **slow).max(), rel=1e-12)
    assert row["predicted_s"] > agreement.price([_row("pair", 1 << 20)])[0]["predicted_s"]
    # the CPU-host simulate of a step takes the same constants (its emulated cost from the profile)
    step = agreement.price([{**_row("step", 1 << 16), "profile": path}])[0]
    default = agreement.price([_row("step", 1 << 16)])[0]
    assert step["simulate_cpu_s"] > default["simulate_cpu_s"]
    assert step["simulate_s"] == default["simulate_s"]       # the accelerator pricing has no host terms
