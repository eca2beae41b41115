"""cl.workload.simulate on CPU hosts: every collective priced with the model's host terms.

All exact (no wall clock): the accelerator pricing is unchanged, the CPU-host pricing with the
host terms off is the accelerator pricing, a step of one collective is the model's price of it,
and a two-rank ring all-reduce is checked by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import collectives as cl
from collectives.algorithms import build_schedule
from collectives.errors import InvalidArgument
from collectives.model.joint import joint_call_times
from collectives.workload import Accelerator, Layout, Model, TrainingStep, simulate

W = cl.workload
PAIR = "star:n=2,bw=1GB/s,lat=20us"
TINY = Model("tiny", layers=4, hidden=1024, ffn=4096, heads=8, kv_heads=8, vocab=1000, seq_len=512)
TINY_MOE = Model("tiny-moe", layers=4, hidden=512, ffn=1024, heads=8, kv_heads=4, vocab=1000,
                 seq_len=256, experts=8, experts_per_token=2)
SMALL = Model("small", layers=1, hidden=512, ffn=1024, heads=2, kv_heads=2, vocab=64, seq_len=8)

# (step, topology) pairs with every dimension busy somewhere
CASES = {
    "dense dp2 tp2 pp2": (lambda: TrainingStep(TINY, Layout(dp=2, tp=2, pp=2), 8, 1, accelerator="a100",
                                               bucket_bytes=8 << 20), "fat_tree:k=4,bw=100Gbps,lat=1us"),
    "moe dp4 tp2 ep4": (lambda: TrainingStep(TINY_MOE, Layout(dp=4, tp=2, ep=4), 8, 1, accelerator="h100"),
                        "star:n=8,bw=50GB/s,lat=2us"),
    "fsdp dp4": (lambda: TrainingStep(TINY, Layout(dp=4), 8, 1, accelerator="free", sharding="fsdp"),
                 "star:n=4,bw=10GB/s,lat=5us"),
}
# simulate(...).time of CASES as the accelerator pricing gave it before the CPU host existed
# (joint=True, joint=False)
BEFORE = {"dense dp2 tp2 pp2": (0.008636369114090048, 0.008464683488570213),
          "moe dp4 tp2 ep4": (0.0013095063991766145, 0.0013095063991766145),
          "fsdp dp4": (0.06433176, 0.06433176)}


def _one_bucket_step(accelerator="cpu-free"):
    """Data parallel on two ranks, free compute, all gradients in one bucket: one all-reduce."""
    step = TrainingStep(SMALL, Layout(dp=2), 2, 1, accelerator=accelerator, bucket_bytes=1 << 30)
    (bucket,) = step.gradient_buckets(0)
    return step, bucket.collective


@pytest.mark.parametrize("name", sorted(CASES))
def test_accelerators_are_priced_as_before(name):
    make, topo = CASES[name]
    for joint, before in zip((True, False), BEFORE[name]):
        assert simulate(make(), topo, joint=joint).time == pytest.approx(before, rel=1e-12)
        assert simulate(make(), topo, joint=joint, host="accelerator").time == \
            pytest.approx(before, rel=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_cpu_host_with_host_terms_off_is_the_accelerator_pricing(name):
    """The model's own step pricing (CPU host) and the accelerator's agree where their terms do."""
    make, topo = CASES[name]
    step = make()
    off = {k: v for k, v in cl.model.HOST_TERMS_OFF.items() if k not in ("overhead", "reduce_bandwidth")}
    gamma = step.accelerator.reduce_bandwidth or cl.model.DEFAULTS["reduce_bandwidth"]
    for joint in (True, False):
        acc = simulate(step, topo, joint=joint)
        cpu = simulate(step, topo, joint=joint, host="cpu", reduce_bandwidth=gamma, **off)
        assert cpu.time == pytest.approx(acc.time, rel=1e-12)
        for k in acc.phases:
            assert cpu.phases[k] == pytest.approx(acc.phases[k], rel=1e-12, abs=1e-15), k
        # with the host terms on, the host only adds time
        assert simulate(step, topo, joint=joint, host="cpu").time > acc.time


@pytest.mark.parametrize("host", [{}, {"machines": np.zeros(2, dtype=np.int64), "cores": 1.0}])
@pytest.mark.parametrize("emulated", [False, True])
@pytest.mark.parametrize("hidden", [64, 512])
def test_a_step_of_one_collective_is_its_predict_and_joint_call_times(host, emulated, hidden):
    model = Model("one", layers=1, hidden=hidden, ffn=2 * hidden, heads=2, kv_heads=2, vocab=64, seq_len=8)
    step = TrainingStep(model, Layout(dp=2), 2, 1, accelerator="cpu-free", bucket_bytes=1 << 30)
    (bucket,) = step.gradient_buckets(0)
    c = bucket.collective
    r = simulate(step, PAIR, emulated=emulated, **host)
    call = cl.model.DEFAULTS["call_overhead"] + (cl.model.EMULATION_CALL_OVERHEAD if emulated else 0.0)
    sched = build_schedule("allreduce", "ring", 2, c.nbytes // c.itemsize)
    joint = joint_call_times([(sched, np.arange(2))], PAIR, itemsize=c.itemsize, call_overhead=call, **host)
    predicted = cl.model.predict("allreduce", "ring", c.nbytes, PAIR, ranks=2, itemsize=c.itemsize,
                                 call_overhead=call, **host)
    assert r.time == pytest.approx(joint[0], rel=1e-12)
    assert r.time == pytest.approx(predicted, rel=1e-12)
    assert r.breakdown["dp"] == pytest.approx(r.time, rel=1e-12)


def test_every_collective_of_a_tensor_parallel_step_pays_its_host_terms():
    """Free compute, tp=2 alone: the step is its all-reduces back to back, each as the model
    prices one call (its per-call cost included)."""
    step = TrainingStep(SMALL, Layout(dp=1, tp=2), 2, 1, accelerator="cpu-free")
    calls = [c for c in step.forward_program(0) + step.backward_program(0) if hasattr(c, "nbytes")]
    assert len(calls) >= 2 and all(c.dim == "tp" for c in calls)
    each = [joint_call_times([(build_schedule(c.collective, "ring", 2, c.nbytes // c.itemsize),
                               np.arange(2))], PAIR, itemsize=c.itemsize)[0] for c in calls]
    r = simulate(step, PAIR)
    assert r.time == pytest.approx(sum(each) * step.num_microbatches, rel=1e-12)
    assert r.breakdown["tp"] == pytest.approx(r.time, rel=1e-12)


def test_a_two_rank_ring_all_reduce_by_hand():
    """Ring all-reduce of N bytes on two ranks of a star: a reduce-scatter step and an
    all-gather step, each one message of N/2 bytes over two links, the reduction after the
    first; the call cost once. With the cores shared (one core for both ranks) every CPU term
    takes twice as long and the wire does not."""
    step, c = _one_bucket_step()
    n, bw, lat = c.nbytes, 1e9, 20e-6
    call, o, gamma = 5e-6, 1e-6, 8e9
    kw = dict(call_overhead=call, overhead=o, reduce_bandwidth=gamma, copy_bandwidth=math.inf,
              segment_bytes=math.inf, memory_bandwidth=math.inf)
    wire = 2 * lat + (n / 2) / bw
    assert simulate(step, PAIR, **kw).time == pytest.approx(
        call + 2 * (o + wire) + (n / 2) / gamma, rel=1e-12)
    one_core = dict(machines=np.zeros(2, dtype=np.int64), cores=1)
    shared = simulate(step, PAIR, core_wait=0.0, **one_core, **kw).time
    assert shared == pytest.approx(2 * call + 2 * (2 * o + wire) + 2 * (n / 2) / gamma, rel=1e-12)
    # two ranks on one core: each receives in both steps and then waits (2 - 1) * core_wait
    wait = 7e-6
    assert simulate(step, PAIR, core_wait=wait, **one_core, **kw).time == pytest.approx(
        shared + 2 * wait, rel=1e-12)
    emulated = simulate(step, PAIR, emulated=True, **kw).time
    assert emulated - simulate(step, PAIR, **kw).time == pytest.approx(cl.model.EMULATION_CALL_OVERHEAD,
                                                                        rel=1e-9)


def test_the_host_default_follows_the_accelerator():
    step, _ = _one_bucket_step()
    assert step.accelerator.host == "cpu"
    assert simulate(step, PAIR).host == "cpu"
    assert simulate(step, PAIR).time == simulate(step, PAIR, host="cpu").time
    gpu, _ = _one_bucket_step("h100")
    assert simulate(gpu, PAIR).host == "accelerator"
    assert simulate(gpu, PAIR, emulated=True).host == "cpu"
    cpu = Accelerator(1e12, 0.5, "my cpu", memory_bandwidth=20e9, host="cpu")
    assert cpu.reduce_bandwidth is None          # a CPU's cores reduce, not a third of its memory
    r = simulate(TrainingStep(SMALL, Layout(dp=2), 2, 1, accelerator=cpu, bucket_bytes=1 << 30), PAIR)
    assert r._pricer.mp["memory_bandwidth"] == 20e9


def test_explain_and_to_dict_show_the_host_terms():
    step, _ = _one_bucket_step()
    text = simulate(step, PAIR, emulated=True).explain()
    assert "host terms: CPU host" in text and "per call 25us" in text and "emulated links" in text
    assert "copies 26GB/s up to 1MiB in cache, then 6GB/s" in text
    assert "host terms: accelerator" in simulate(step, PAIR, host="accelerator").explain()
    d = simulate(step, PAIR, emulated=True).to_dict()
    assert d["host"] == "cpu" and d["emulated"] is True
    assert d["model_params"]["call_overhead"] == pytest.approx(25e-6)
    assert d["step"]["accelerator"]["host"] == "cpu"


@pytest.mark.parametrize("kwargs, match", [
    (dict(host="gpu"), "host must be"),
    (dict(host="accelerator", emulated=True), "emulated=True"),
    (dict(emulated="yes"), "emulated must be True or False"),
    (dict(host="accelerator", copy_bandwidth=1e9), "host terms need host='cpu'"),
    (dict(host="cpu", cache_bytes=-1), "cache_bytes"),
    (dict(host="cpu", machines=np.zeros(1, dtype=np.int64)), "machines"),
    (dict(host="cpu", bandwidth=1), "unknown parameter"),
])
def test_bad_host_options_are_refused_before_pricing(kwargs, match):
    step, _ = _one_bucket_step("h100")
    with pytest.raises(InvalidArgument, match=match):
        simulate(step, PAIR, **kwargs)


def test_an_accelerator_host_must_be_known():
    with pytest.raises(InvalidArgument, match="host must be one of"):
        Accelerator(1e12, host="tpu")
