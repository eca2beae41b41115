"""The training-step workload layer: presets, layouts, traffic sizes and joint pricing."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import collectives as cl
from collectives.errors import CollectivesError, InvalidArgument
from collectives.workload import Accelerator, Layout, Model, TrainingStep, preset, simulate

W = cl.workload
FREE = Accelerator(float("inf"))
TINY = Model("tiny", layers=4, hidden=1024, ffn=4096, heads=8, kv_heads=8, vocab=1000, seq_len=512)
TINY_MOE = Model("tiny-moe", layers=4, hidden=512, ffn=1024, heads=8, kv_heads=4, vocab=1000,
                 seq_len=256, experts=8, experts_per_token=2)
BF16 = 2


# ---------------------------------------------------------------------- presets
PUBLISHED_PARAMS = {"gpt3-175b": 175e9, "llama3-70b": 70.6e9, "llama3-405b": 405e9,
                    "mixtral-8x7b": 46.7e9, "deepseek-v3": 671e9}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_presets_match_their_published_parameter_counts(name):
    m = preset(name)
    assert m is W.PRESETS[name]
    assert m.source
    assert m.params == pytest.approx(PUBLISHED_PARAMS[name], rel=0.01)


def test_moe_presets_activate_what_their_papers_say():
    # Mixtral: 13B active of 47B (Jiang et al. 2024); DeepSeek-V3: 37B active of 671B
    assert preset("mixtral-8x7b").active_params == pytest.approx(12.9e9, rel=0.02)
    assert preset("deepseek-v3").active_params == pytest.approx(37e9, rel=0.03)
    assert preset("deepseek-v3").moe_layers == 58


def test_unknown_preset_names_the_accepted_ones():
    with pytest.raises(InvalidArgument, match="llama3-405b") as e:
        preset("llama4")
    assert isinstance(e.value, ValueError)


def test_dense_flops_follow_six_n_plus_attention():
    # training FLOPs per token = 6 * (matmul weights a token meets) + 12 * L * s * h (full s x s)
    m = TINY
    weights = m.layers * (4 * m.hidden ** 2 + 3 * m.hidden * m.ffn) + m.vocab * m.hidden
    assert m.flops_per_token == pytest.approx(6 * weights + 12 * m.layers * m.seq_len * m.hidden)


# ---------------------------------------------------------------------- layouts
ORDERS = [("tp", "dp", "pp"), ("dp", "tp", "pp"), ("pp", "dp", "tp"), ("tp", "pp", "dp")]


@st.composite
def layouts(draw):
    tp = draw(st.sampled_from([1, 2, 3, 4]))
    pp = draw(st.sampled_from([1, 2, 3]))
    ep = draw(st.sampled_from([1, 2, 3]))
    dp = ep * draw(st.sampled_from([1, 2, 4]))
    return Layout(dp=dp, tp=tp, pp=pp, ep=ep, order=draw(st.sampled_from(ORDERS)))


@settings(max_examples=60, deadline=None)
@given(layouts())
def test_every_rank_is_in_exactly_one_group_per_dimension(lay):
    for dim in W.DIMENSIONS:
        g = lay.groups(dim)
        assert g.dtype == np.int64
        assert g.shape == (lay.size // lay.degree(dim), lay.degree(dim))
        assert np.array_equal(np.sort(g.reshape(-1)), np.arange(lay.size))
    for r in range(lay.size):
        c = lay.coords(r)
        for dim in W.DIMENSIONS:
            grp = lay.group_of(r, dim)
            assert grp[c[dim]] == r
            # members differ from r only along dim
            for other in grp:
                oc = lay.coords(int(other))
                assert all(oc[d] == c[d] for d in ("tp", "dp", "pp") if d != dim
                           and not (dim in ("ep", "edp") and d == "dp"))
        # the data-parallel rank splits into expert-data-parallel and expert-parallel ranks
        assert c["dp"] == c["edp"] * lay.ep + c["ep"]


@settings(max_examples=40, deadline=None)
@given(layouts())
def test_order_lists_dimensions_fastest_first(lay):
    strides = {}
    stride = 1
    for d in lay.order:
        strides[d] = stride
        stride *= lay.degree(d)
    for d in ("tp", "dp", "pp"):
        g = lay.groups(d)
        assert np.all(np.diff(g, axis=1) == strides[d])
    # expert-parallel groups are consecutive runs of data-parallel ranks
    ep = lay.groups("ep")
    assert np.all(np.diff(ep, axis=1) == strides["dp"])


def test_tensor_parallel_is_innermost_by_default():
    lay = Layout(dp=4, tp=8, pp=2)
    assert np.array_equal(lay.groups("tp")[0], np.arange(8))
    assert np.array_equal(lay.groups("dp")[0], np.arange(0, 32, 8))
    assert np.array_equal(lay.groups("pp")[0], [0, 32])
    assert lay.coords(42) == {"tp": 2, "dp": 1, "pp": 1, "ep": 0, "edp": 1}


def test_parse_takes_dp_from_the_total():
    lay = Layout.parse("tp=8,pp=16", ranks=16384)
    assert (lay.dp, lay.tp, lay.pp, lay.ep) == (128, 8, 16, 1)
    assert Layout.parse("dp=4,tp=2,ep=2,order=dp-tp-pp").order == ("dp", "tp", "pp")
    for bad, what in (("tp=8,pp=3", "multiple"), ("tp=8,zz=2", "unknown key"), ("tp=x", "integer"),
                      ("tp", "key=value")):
        with pytest.raises(InvalidArgument, match=what):
            Layout.parse(bad, ranks=64)
    with pytest.raises(InvalidArgument, match="accelerators"):
        Layout.parse("dp=2,tp=8", ranks=64)


def test_layout_rejects_bad_degrees():
    with pytest.raises(InvalidArgument, match="ep=3 must divide dp=4"):
        Layout(dp=4, ep=3)
    with pytest.raises(InvalidArgument, match="permutation"):
        Layout(dp=2, order=("tp", "dp"))
    with pytest.raises(InvalidArgument, match="tp must be an integer"):
        Layout(dp=2, tp=0)
    with pytest.raises(InvalidArgument, match="unknown layout dimension"):
        Layout(dp=2).groups("cp")


# ---------------------------------------------------------------------- bad input
def _no_pricing(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("pricing started before the input was checked")
    monkeypatch.setattr("collectives.workload.pricing.price_concurrent", fail)


@pytest.mark.parametrize("make, match", [
    (lambda: TrainingStep(preset("llama3-70b"), Layout(dp=1, tp=3), 3, 1), "tp=3 must divide"),
    (lambda: TrainingStep(preset("mixtral-8x7b"), Layout(dp=3, ep=3), 3, 1), "ep=3 must divide"),
    (lambda: TrainingStep(TINY, Layout(dp=2, ep=2), 2, 1), "dense"),
    (lambda: TrainingStep(TINY, Layout(dp=1, pp=5), 1, 1), "pp=5 exceeds the 4 layers"),
    (lambda: TrainingStep(TINY, Layout(dp=4), 6, 1), "global_batch=6 must be a multiple"),
    (lambda: TrainingStep(TINY, Layout(dp=1), 4, 1, dtype="int3"), "unknown dtype"),
    (lambda: TrainingStep(TINY, Layout(dp=1), 4, 1, sharding="zero4"), "unknown sharding"),
    (lambda: preset("gpt-5"), "unknown workload preset"),
    (lambda: TINY.with_(experts=4, experts_per_token=8), "experts_per_token=8 exceeds"),
    (lambda: TINY.with_(layers=0), "layers must be an integer >= 1"),
    (lambda: Accelerator(-1.0), "flops must be"),
    (lambda: Accelerator(1e15, efficiency=1.5), "efficiency must be in"),
    (lambda: W.accelerator("tpu9"), "unknown accelerator"),
])
def test_bad_input_is_refused_with_what_is_accepted(make, match):
    with pytest.raises(InvalidArgument, match=match) as e:
        make()
    assert isinstance(e.value, ValueError) and isinstance(e.value, CollectivesError)


def test_more_ranks_than_hosts_is_refused_before_pricing(monkeypatch):
    _no_pricing(monkeypatch)
    step = TrainingStep(TINY, Layout(dp=4, tp=4), 4, 1)
    with pytest.raises(InvalidArgument, match="16 ranks but star:n=8 has 8 hosts"):
        simulate(step, cl.topology.star(8))
    with pytest.raises(InvalidArgument, match="unknown parameter"):
        simulate(step, cl.topology.star(16), bandwidth=1)
    with pytest.raises(InvalidArgument, match="unknown alltoall algorithm"):
        simulate(step, cl.topology.star(16), algorithms={"alltoall": "magic"})


# ---------------------------------------------------------------------- sizes by hand
def test_bytes_per_step_match_a_hand_calculation():
    # llama3-70b, dp=2 tp=8 pp=4, micro-batch 1, global batch 8: m = 4 micro-batches;
    # a middle stage holds 80/4 = 20 layers
    step = TrainingStep(preset("llama3-70b"), Layout(dp=2, tp=8, pp=4), global_batch=8,
                        micro_batch=1)
    m, s, h = 4, 8192, 8192
    act = 1 * s * h * BF16                              # 128 MiB per micro-batch
    layer = 8192 * 128 * (64 + 8 + 8 + 64) + 3 * 8192 * 28672
    hand = {
        "tp": m * 20 * 4 * act,                        # 2 all-reduces forward, 2 backward
        "pp": m * 2 * act // 8,                        # activations out, gradients back, 1/tp each
        "ep": 0,
        "dp": 20 * layer // 8 * BF16,                  # this rank's gradients, once
    }
    assert step.num_microbatches == m
    assert step.bytes_per_rank(stage=1) == hand
    # the first stage adds the embedding's gradients and sends activations only
    first = step.bytes_per_rank(stage=0)
    assert first["dp"] == hand["dp"] + 128256 * 8192 // 8 * BF16
    assert first["pp"] == m * act // 8


def test_moe_bytes_per_step_match_a_hand_calculation():
    # mixtral-8x7b, dp=8 ep=4 tp=2: every layer dispatches and combines, forward and backward
    step = TrainingStep(preset("mixtral-8x7b"), Layout(dp=8, tp=2, ep=4), global_batch=16,
                        micro_batch=1, sequence_parallel=True)
    m, s, h, k = 2, 32768, 4096, 2
    a2a = s * k * h * BF16 // 2                        # tokens split over the tp ranks
    assert step.dispatch_bytes == a2a
    b = step.bytes_per_rank()
    assert b["ep"] == m * 32 * 4 * a2a
    # sequence parallel: per block an all-gather of the shard and a reduce-scatter of the whole
    act = s * h * BF16
    assert b["tp"] == m * 32 * 4 * (act // 2 + act)
    attn = 4096 * 128 * (32 + 8 + 8 + 32)
    dense = 32 * (attn + 4096 * 8) + 2 * 32000 * 4096  # + routers, embedding and head
    expert = 32 * 8 * 3 * 4096 * 14336 // 4            # 2 of 8 experts per ep rank
    assert b["dp"] == (dense // 2 + expert // 2) * BF16


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([1, 2, 4]), st.sampled_from([1, 2, 3]), st.integers(3, 9),
       st.sampled_from([1, 2]), st.sampled_from([1, 2, 3]), st.booleans())
def test_dense_bytes_follow_the_megatron_counts(tp, pp, layers, dp, mb_per_rank, sp):
    model = Model("m", layers=layers, hidden=256, ffn=512, heads=4, kv_heads=4, vocab=96,
                  seq_len=64)
    step = TrainingStep(model, Layout(dp=dp, tp=tp, pp=pp), global_batch=dp * mb_per_rank * 2,
                        micro_batch=2, sequence_parallel=sp)
    act = 2 * 64 * 256 * BF16
    per_layer = 4 * 256 * 256 + 3 * 256 * 512
    for stage in range(pp):
        n = len(step.stage_layers[stage])
        assert n in (layers // pp, -(-layers // pp))
        b = step.bytes_per_rank(stage)
        tp_bytes = 0 if tp == 1 else mb_per_rank * n * 4 * (act // tp + act if sp else act)
        assert b["tp"] == tp_bytes
        sends = (stage < pp - 1) + (stage > 0)
        assert b["pp"] == mb_per_rank * sends * act // tp
        params = n * per_layer + 96 * 256 * ((stage == 0) + (stage == pp - 1))
        assert b["dp"] == (0 if dp == 1 else -(-params // tp) * BF16)
    assert sum(len(r) for r in step.stage_layers) == layers


def test_priced_traffic_is_the_traffic_of_the_step():
    # tp only on a star: h0's uplink carries 2(p-1)/p of every all-reduce's buffer
    step = TrainingStep(TINY, Layout(dp=1, tp=4), global_batch=2, micro_batch=1,
                        accelerator=FREE)
    r = simulate(step, cl.topology.star(4))
    load = {(u, v): b for u, v, b, _ in r.hottest_links(100)}
    act = 512 * 1024 * BF16
    assert load[("h0", "sw0")] == pytest.approx(2 * 4 * 4 * act * 2 * 3 / 4)


# ---------------------------------------------------------------------- reduction to predict
def _predict(coll, alg, nbytes, topo, ranks):
    # a training step's collectives run on accelerators: their local copies, the host's
    # segment pipelining and a CPU call's cost are not priced (workload.simulate's docstring),
    # so neither is here
    return cl.model.predict(coll, alg, nbytes, topo, ranks=ranks, itemsize=BF16,
                            copy_bandwidth=float("inf"), segment_bytes=float("inf"), call_overhead=0.0)


@pytest.mark.parametrize("sp", [False, True])
def test_tensor_parallel_alone_costs_its_all_reduces(sp):
    topo = cl.topology.star(4)
    step = TrainingStep(TINY, Layout(dp=1, tp=4), global_batch=2, micro_batch=1,
                        accelerator=FREE, sequence_parallel=sp)
    r = simulate(step, topo)
    act = 512 * 1024 * BF16
    if sp:
        per_block = (_predict("allgather", "ring", act // 4, topo, 4)
                     + _predict("reduce_scatter", "ring", act, topo, 4))
    else:
        per_block = _predict("allreduce", "ring", act, topo, 4)
    expected = 2 * 4 * 4 * per_block                   # m * layers * (2 fwd + 2 bwd)
    assert r.time == pytest.approx(expected, rel=0.01)
    assert r.breakdown["tp"] == pytest.approx(expected, rel=0.01)
    assert sum(r.breakdown.values()) == pytest.approx(r.time)


@pytest.mark.parametrize("sharding", ["none", "zero2"])
def test_data_parallel_alone_costs_its_buckets(sharding):
    topo = cl.topology.star(4)
    step = TrainingStep(TINY, Layout(dp=4), global_batch=8, micro_batch=1, accelerator=FREE,
                        bucket_bytes=4 << 20, sharding=sharding)
    r = simulate(step, topo)
    buckets = [b.collective.nbytes for b in step.gradient_buckets()]
    assert sum(buckets) == TINY.params * BF16
    assert len(buckets) > 4
    if sharding == "none":
        expected = sum(_predict("allreduce", "ring", n, topo, 4) for n in buckets)
    else:
        expected = sum(_predict("reduce_scatter", "ring", n, topo, 4)
                       + _predict("allgather", "ring", n // BF16 // 4 * BF16, topo, 4)
                       for n in buckets)
    assert r.time == pytest.approx(expected, rel=0.01)
    assert r.breakdown["dp"] == pytest.approx(expected, rel=0.01)


def test_expert_parallel_forward_costs_its_all_to_alls():
    topo = cl.topology.star(8)
    step = TrainingStep(TINY_MOE, Layout(dp=8, ep=8), global_batch=16, micro_batch=1,
                        accelerator=FREE)
    r = simulate(step, topo)
    a2a = _predict("alltoall", "pairwise", step.dispatch_bytes, topo, 8)
    assert r.phases["forward.ep"] == pytest.approx(4 * 2 * a2a, rel=0.01)
    assert r.breakdown["ep"] >= 2 * 4 * 4 * a2a * 0.99


def test_pipeline_alone_is_its_sends_times_the_1f1b_periods():
    link_bw, link_lat, overhead = 12.5e9, 500e-9, 1e-6
    topo = cl.topology.star(4, link_bandwidth=link_bw, link_latency=link_lat)
    step = TrainingStep(TINY, Layout(dp=1, pp=4), global_batch=8, micro_batch=1,
                        accelerator=FREE)
    r = simulate(step, topo, overhead=overhead)
    send = overhead + 2 * link_lat + 512 * 1024 * BF16 / link_bw
    m, p = 8, 4
    assert r.time == pytest.approx((m + p - 1) * 2 * send, rel=1e-6)
    assert r.breakdown["bubble"] == pytest.approx((p - 1) * 2 * send, rel=1e-6)


def test_uneven_stages_differ_by_one_layer_and_the_longest_sets_the_period():
    step = TrainingStep(TINY, Layout(dp=1, pp=3), global_batch=4, micro_batch=1,
                        accelerator=Accelerator(50e12))
    assert [len(r) for r in step.stage_layers] == [2, 1, 1]
    r = simulate(step, cl.topology.star(3))
    assert r.critical_stage == 0
    assert r.breakdown["bubble"] == pytest.approx(2 * r.time / (4 + 2), rel=0.01)


def test_one_rank_computes_and_sends_nothing():
    step = TrainingStep(TINY, Layout(dp=1), global_batch=2, micro_batch=1,
                        accelerator=Accelerator(1e12, efficiency=1.0))
    r = simulate(step, cl.topology.star(1))
    assert r.time == pytest.approx(2 * 512 * TINY.flops_per_token / 1e12)
    assert r.breakdown["compute"] == pytest.approx(r.time)
    assert r.hottest_links() == []


# ---------------------------------------------------------------------- contention
def _dense_step(lay, accel=FREE, **kw):
    return TrainingStep(TINY, lay, global_batch=lay.dp * 2, micro_batch=1, accelerator=accel,
                        bucket_bytes=4 << 20, **kw)


def test_groups_sharing_an_oversubscribed_uplink_are_slower_together():
    # fat-tree k=4, 2:1 at the edge: two hosts per edge switch, one uplink; the two
    # data-parallel groups (tp rank 0 and 1) cross the same uplinks
    topo = cl.topology.fat_tree(4, oversubscription=2)
    step = _dense_step(Layout(dp=8, tp=2))
    joint = simulate(step, topo)
    alone = simulate(step, topo, joint=False)
    assert joint.time > alone.time * 1.2
    assert joint.breakdown["dp"] > alone.breakdown["dp"] * 1.2
    assert "one group alone" in alone.explain()


def test_groups_sharing_a_dragonfly_global_link_are_slower_together():
    # 9 groups of 8 hosts, one global link per pair of groups: with tp=8 inside a group, the
    # 8 data-parallel rings all cross the same global links under minimal routing
    fly = cl.topology.dragonfly(4, 2, 2)
    step = _dense_step(Layout(dp=9, tp=8))
    joint = simulate(step, fly, routing="minimal")
    alone = simulate(step, fly, routing="minimal", joint=False)
    assert joint.breakdown["dp"] > 2 * alone.breakdown["dp"]


@pytest.mark.parametrize("topo", [cl.topology.star(16), cl.topology.fat_tree(4),
                                  cl.topology.leaf_spine(4, 4, 1, uplink_bandwidth="50Gbps")])
@pytest.mark.parametrize("lay", [Layout(dp=4, tp=2, pp=2), Layout(dp=8, tp=2),
                                 Layout(dp=2, tp=2, pp=4, order=("dp", "pp", "tp"))])
def test_joint_pricing_is_never_faster_than_one_group_alone(topo, lay):
    for accel in (FREE, Accelerator(100e12)):
        step = _dense_step(lay, accel)
        assert simulate(step, topo).time >= simulate(step, topo, joint=False).time * (1 - 1e-9)


def test_backward_traffic_and_gradient_buckets_share_the_network():
    # on one switch every rank's uplink carries its tp ring and its dp ring: the buckets
    # slow the last backward's all-reduces down
    topo = cl.topology.star(16)
    lay = Layout(dp=4, tp=4)
    step = _dense_step(lay, Accelerator(50e12))
    r = simulate(step, topo)
    assert r.phases["backward.last"] > r.phases["backward"] * 1.01
    alone = simulate(step, topo, joint=False)
    assert alone.phases["backward.last"] == pytest.approx(alone.phases["backward"])


# ---------------------------------------------------------------------- monotone
@settings(max_examples=12, deadline=None)
@given(st.floats(0.1, 4.0), st.floats(1.0, 4.0), st.sampled_from([0, 1]))
def test_more_bandwidth_on_a_link_never_slows_a_step(uplink_gbps_scale, factor, which):
    lay = Layout(dp=4, tp=2, pp=2)
    step = _dense_step(lay, Accelerator(100e12))
    base = 25e9 / 8 * uplink_gbps_scale
    kw = [{"uplink_bandwidth": base}, {"uplink_bandwidth": base * factor}]
    if which:
        kw = [{"link_bandwidth": base, "uplink_bandwidth": 10e9},
              {"link_bandwidth": base * factor, "uplink_bandwidth": 10e9}]
    slow = simulate(step, cl.topology.leaf_spine(4, 4, 2, **kw[0])).time
    fast = simulate(step, cl.topology.leaf_spine(4, 4, 2, **kw[1])).time
    assert fast <= slow * (1 + 1e-9)


@pytest.mark.parametrize("accel", [FREE, Accelerator(50e12)])
def test_more_accelerators_never_make_data_parallel_faster(accel):
    topo = cl.topology.fat_tree(4)
    last = None
    for dp in (2, 4, 8, 16):
        # fixed work per accelerator: the same micro-batches on every replica
        step = TrainingStep(TINY, Layout(dp=dp), global_batch=2 * dp, micro_batch=1,
                            accelerator=accel, bucket_bytes=4 << 20)
        r = simulate(step, topo)
        cur = (r.breakdown["dp"], r.phases["dp.gradients"])
        if last is not None:
            assert cur[0] >= last[0] * (1 - 1e-9) and cur[1] >= last[1] * (1 - 1e-9)
        last = cur


# ---------------------------------------------------------------------- the result
def test_result_reports_throughput_mfu_and_explains():
    accel = Accelerator(100e12, efficiency=0.5)
    step = TrainingStep(TINY_MOE, Layout(dp=4, tp=2, pp=2, ep=2), global_batch=8, micro_batch=1,
                        accelerator=accel)
    r = simulate(step, cl.topology.fat_tree(4))
    assert set(r.breakdown) == {"compute", "tp", "ep", "pp", "bubble", "dp"}
    assert sum(r.breakdown.values()) == pytest.approx(r.time)
    assert r.tokens_per_second == pytest.approx(8 * 256 / r.time)
    assert r.mfu == pytest.approx(TINY_MOE.flops_per_token * 8 * 256 / (r.time * 16 * 100e12))
    assert 0 < r.mfu < 0.5
    text = r.explain()
    for word in ("tp allreduce: ring", "ep alltoall: pairwise", "bubble", "hottest links"):
        assert word in text
    d = json.loads(json.dumps(r.to_dict()))
    assert d["time"] == pytest.approx(r.time) and d["breakdown"]["ep"] > 0
    hot = r.hottest_links(3)
    assert len(hot) == 3 and hot[0][3] >= hot[1][3] >= hot[2][3]
    assert hot[0][3] <= r.time          # no link is busier than the step is long
    assert math.isnan(simulate(TrainingStep(TINY, Layout(dp=2), 2, 1, accelerator=FREE),
                               cl.topology.star(2)).mfu)


def test_planner_choice_is_priced_and_stated():
    step = _dense_step(Layout(dp=8, tp=2))
    r = simulate(step, cl.topology.fat_tree(4), algorithms="planner")
    assert "planner's choice" in r.algorithms["dp allreduce"]
    assert r.time > 0
    other = simulate(step, cl.topology.fat_tree(4), algorithms={"allreduce": "rhd"})
    assert other.algorithms["dp allreduce"] == "rhd (asked for)"


def test_model_parameters_pass_through_to_the_model():
    step = TrainingStep(TINY_MOE, Layout(dp=8, tp=2, ep=8), global_batch=16, micro_batch=1,
                        accelerator=FREE)
    fly = cl.topology.dragonfly(4, 2, 2)
    times = {r: simulate(step, fly, routing=r).time for r in ("minimal", "valiant", "adaptive")}
    assert times["minimal"] != times["valiant"]
    # all-to-all between dragonfly groups: minimal routing piles onto one global link
    assert times["adaptive"] < times["minimal"]
    with pytest.raises(cl.ModelError, match="valiant"):
        simulate(step, cl.topology.fat_tree(4), routing="valiant")
    slow = simulate(step, cl.topology.star(16), overhead=1e-3).time
    assert slow > simulate(step, cl.topology.star(16), overhead=0.0).time


def test_the_accelerator_reduces_unless_told_otherwise():
    step = TrainingStep(TINY, Layout(dp=4, tp=2), global_batch=8, micro_batch=1)   # an H100
    r = simulate(step, cl.topology.star(8))
    assert r.to_dict()["model_params"]["reduce_bandwidth"] == pytest.approx(3.35e12 / 3)
    assert "reductions at 1.117TB/s" in r.explain()
    cpu = simulate(step, cl.topology.star(8), reduce_bandwidth=8e9)
    assert cpu.to_dict()["model_params"]["reduce_bandwidth"] == 8e9
    assert cpu.breakdown["tp"] > r.breakdown["tp"]
    free = simulate(step, cl.topology.star(8), reduce_bandwidth=float("inf"))
    assert free.to_dict()["model_params"]["reduce_bandwidth"] is None
    assert "reductions free" in free.explain()


def test_fsdp_gathers_parameters_every_micro_batch():
    lay = Layout(dp=4)
    plain = simulate(_dense_step(lay), cl.topology.star(4))
    fsdp = simulate(_dense_step(lay, sharding="fsdp"), cl.topology.star(4))
    assert fsdp.phases["dp.fsdp"] > 0
    assert fsdp.time > plain.time


# ---------------------------------------------------------------------- price_concurrent
def test_price_concurrent_shares_a_link_fairly():
    topo = cl.topology.star(3)
    r = cl.model.price_concurrent(topo, [0, 1], [2, 2], [1e6, 1e6], overhead=0.0)
    lat = 2 * 500e-9
    assert np.allclose(r.flow_time, lat + 1e6 / (12.5e9 / 2))
    assert r.time == pytest.approx(lat + 1e6 / (12.5e9 / 2))
    assert r.hottest_links(1)[0][:3] == ("sw0", "h2", 2e6)
    with pytest.raises(InvalidArgument, match="one entry per flow"):
        cl.model.price_concurrent(topo, [0], [1, 2], [1.0])
    with pytest.raises(InvalidArgument, match="host indices"):
        cl.model.price_concurrent(topo, [0], [7], [1.0])
