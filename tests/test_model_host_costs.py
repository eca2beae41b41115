"""Host costs in the model, each on a case small enough to compute by hand.

A star of p hosts with host links of bandwidth B and latency L/2: a message
crosses two links, so one flow alone takes ``overhead + L + n / B``.
Schedules are built by hand here (a list of steps, each a list of sends and
copies) so that every number below follows from the rule it tests.
"""

import json
import math

import numpy as np
import pytest

import collectives as cl
from collectives import topology as T
from collectives.algorithms import build_schedule
from collectives.model import HOST_TERMS_OFF, predict, priced_nbytes, simulate
from collectives.model.calibrate import (Profile, Link, load_profile, measure_copy_bandwidth,
                                         save_profile, two_level_model)
from collectives.schedule import Ops, Schedule, StepGroup

B = 1e9            # bytes/s
L = 2e-6           # s, path latency (two links of L/2)
O = 1e-6           # s, per-message overhead
INF = float("inf")
OFF = HOST_TERMS_OFF      # the network alone; each test turns on the term it checks


def star(p):
    return T.star(p, link_bandwidth=B, link_latency=L / 2)


def hand_schedule(nranks, steps, repeat=None):
    """A Schedule from ``steps``: each a list of ("send", src, dst, count) / ("copy", rank, count).

    ("reduce", src, dst, count) is a send whose receiver reduces what it receives.

    ``repeat[i]`` repeats step i (one pattern) that many times.
    """
    repeat = repeat or [1] * len(steps)

    def group(ops_spec, rep):
        def build(i, ranks):
            parts = []
            for op in ops_spec:
                if op[0] in ("send", "reduce"):
                    _, s, d, c = op
                    if s in ranks:
                        parts.append(Ops.send(s, d, 0, 0, c))
                    if d in ranks:
                        parts.append(Ops.recv(d, s, 1, 0, c, reduce=op[0] == "reduce"))
                else:
                    _, r, c = op
                    if r in ranks:
                        parts.append(Ops.copy(r, 0, 0, 1, 0, c))
            return Ops.concat(parts)
        return StepGroup(rep, build, name=f"step {len(groups)}")

    groups = []
    for spec, rep in zip(steps, repeat):
        groups.append(group(spec, rep))
    return Schedule("alltoall", "hand", nranks, 1 << 20, 1 << 20, groups, tmp_count=1 << 20)


# ---------------------------------------------------------------------- critical path
def test_ranks_that_are_done_go_on_to_their_next_step():
    # step 0: 0 -> 1 (n bytes), step 1: 2 -> 3 (n bytes). Ranks 2 and 3 have nothing to do in
    # step 0, so their exchange runs at the same time as 0 -> 1: one flow time in all,
    # t = L + n/B, where lockstep pays for each step at its slowest rank: 2t.
    n = 1 << 20
    s = hand_schedule(4, [[("send", 0, 1, n // 4)], [("send", 2, 3, n // 4)]])
    t = L + n / B
    assert simulate(s, star(4), **OFF).time == pytest.approx(t, rel=1e-12)
    assert simulate(s, star(4), critical_path=False, **OFF).time == pytest.approx(2 * t, rel=1e-12)


def test_a_message_waits_for_its_sender():
    # step 0: 0 -> 1 (n bytes), step 1: 1 -> 2 (m bytes): rank 2 is idle in step 0 but its
    # receive needs rank 1 to be done with step 0: (L + n/B) + (L + m/B), as in lockstep.
    n, m = 1 << 20, 1 << 12
    s = hand_schedule(3, [[("send", 0, 1, n // 4)], [("send", 1, 2, m // 4)]])
    want = (L + n / B) + (L + m / B)
    r = simulate(s, star(3), **OFF)
    assert r.time == pytest.approx(want, rel=1e-12)
    assert simulate(s, star(3), critical_path=False, **OFF).time == pytest.approx(want, rel=1e-12)
    # per-rank finish: rank 0 is done after its send, rank 2 last
    assert r.finish_times[0] == pytest.approx(L + n / B, rel=1e-12)
    assert r.finish_times[2] == pytest.approx(want, rel=1e-12)
    # step_times add up to the time: how much each step adds to the latest rank
    assert sum(float(a.sum()) for a in r.step_times) == pytest.approx(want, rel=1e-12)


def test_a_repeated_pattern_runs_ahead_and_then_in_lockstep_after_the_transient():
    # step 0: 0 -> 1 big (tb = L + nb/B); then 2 -> 3 small (ts = L + ns/B) repeated R times.
    # Ranks 2 and 3 run their R small steps during the big one: max(tb, R*ts).
    nb, ns, R = 1 << 20, 1 << 12, 5
    s = hand_schedule(4, [[("send", 0, 1, nb // 4)], [("send", 2, 3, ns // 4)]], repeat=[1, R])
    tb, ts = L + nb / B, L + ns / B
    assert R * ts < tb
    assert simulate(s, star(4), **OFF).time == pytest.approx(max(tb, R * ts), rel=1e-12)
    assert simulate(s, star(4), critical_path=False, **OFF).time == pytest.approx(tb + R * ts, rel=1e-12)
    # followed rank by rank for 2 repetitions only: the other 3 go on from the latest rank
    assert simulate(s, star(4), transient=2, **OFF).time == pytest.approx(tb + 3 * ts, rel=1e-12)


def test_rhd_on_three_ranks_is_not_priced_above_lockstep():
    # rhd folds rank 2 into rank 0 on 3 ranks; the critical path can only be shorter
    for n in (1 << 12, 1 << 20):
        cp = predict("allreduce", "rhd", n, star(3), **OFF)
        lock = predict("allreduce", "rhd", n, star(3), critical_path=False, **OFF)
        assert cp <= lock * (1 + 1e-12)


def test_uniform_ring_keeps_its_formula_in_both_modes():
    p, n = 8, 8 * 4096 * 4
    want = 2 * (p - 1) * (L + O) + 2 * (p - 1) / p * n / B
    for cp in (True, False):
        t = predict("allreduce", "ring", n, star(p), critical_path=cp, **{**OFF, "overhead": O})
        assert t == pytest.approx(want, rel=1e-12)


# ---------------------------------------------------------------------- overhead
def test_overhead_is_one_per_message_and_posting_is_serial():
    # one step: rank 0 sends n bytes to each of ranks 1, 2, 3. The three flows share rank 0's
    # uplink (B/3 each): each takes O + L + 3n/B, and rank 0 posts them one after another,
    # paying 2 more overheads: 3*O + L + 3n/B.
    n = 1 << 16
    s = hand_schedule(4, [[("send", 0, d, n // 4) for d in (1, 2, 3)]])
    want = 3 * O + L + 3 * n / B
    assert simulate(s, star(4), **{**OFF, "overhead": O}).time == pytest.approx(want, rel=1e-12)
    # switched off: the same step without any overhead
    assert simulate(s, star(4), **OFF).time == pytest.approx(L + 3 * n / B, rel=1e-12)


# ---------------------------------------------------------------------- copies
def test_copies_cost_bytes_over_copy_bandwidth_shared_on_a_host():
    # one step of copies only: ranks 0 and 1 copy c bytes each at C bytes/s.
    c, C = 1 << 20, 5e9
    s = hand_schedule(2, [[("copy", 0, c // 4), ("copy", 1, c // 4)]])
    # on two hosts: each rank copies alone, c/C (a machine of memory bandwidth C: one core fills it)
    on = {**OFF, "copy_bandwidth": C, "memory_bandwidth": C}
    assert simulate(s, star(2), **on).time == pytest.approx(c / C, rel=1e-12)
    # both ranks on host 0: they share its memory bandwidth, 2c/C
    both = np.array([0, 0])
    assert simulate(s, star(2), placement=both, **on).time == pytest.approx(2 * c / C, rel=1e-12)
    # two hosts but one machine (an emulation): the same sharing
    assert simulate(s, star(2), machines=both, **on).time == pytest.approx(2 * c / C, rel=1e-12)
    # switched off: copies are free
    assert simulate(s, star(2), **OFF).time == 0.0


def test_bruck_rotations_add_their_copy_time():
    # Bruck all-to-all on 4 ranks, 16 float32 per rank (blocks of 4 elements). Rank 0 copies:
    #   round 0: its rotation (4 blocks, 16) and the packing of the 2 blocks it sends (8): 24;
    #   round 1: the unpacking of the 2 blocks received in round 0 (8), packing 2 (8): 16;
    #   inverse rotation: unpacking the last 2 blocks (8), the rotation back (16): 24.
    # Every rank is equally busy in every step, so the copy term adds
    # (24 + 16 + 24) * 4 bytes / C to the contention-free time.
    p, n, C = 4, 16 * 4, 1e9
    s = build_schedule("alltoall", "bruck", p, n // 4)
    copies = []
    for g in s.groups:
        ops = g.build(0, np.arange(p))
        copies.append(int(ops.count[(ops.kind == cl.schedule.COPY) & (ops.rank == 0)].sum()))
    assert copies == [24, 16, 24]
    base = predict("alltoall", "bruck", n, star(p), **OFF)
    with_copies = predict("alltoall", "bruck", n, star(p), **{**OFF, "copy_bandwidth": C})
    assert with_copies - base == pytest.approx(64 * 4 / C, rel=1e-9)


def test_bad_host_cost_constants_are_refused():
    with pytest.raises(cl.InvalidArgument, match="copy_bandwidth"):
        predict("allreduce", "ring", 1024, star(2), copy_bandwidth=0)
    with pytest.raises(cl.InvalidArgument, match="critical_path"):
        predict("allreduce", "ring", 1024, star(2), critical_path="yes")
    with pytest.raises(cl.InvalidArgument, match="transient"):
        predict("allreduce", "ring", 1024, star(2), transient=0)


def test_host_cost_constants_are_in_defaults():
    d = cl.model.DEFAULTS
    assert d["critical_path"] is True
    # every host term is on by default, at a finite constant, and HOST_TERMS_OFF names them all
    for k in ("overhead", "reduce_bandwidth", "copy_bandwidth", "segment_bytes"):
        assert 0 < d[k] < INF
    assert d["cores"] == INF                # a core per rank unless told otherwise
    for k in ("call_overhead", "cache_copy_bandwidth", "cache_bytes", "memory_bandwidth"):
        assert 0 < d[k] < INF
    assert set(HOST_TERMS_OFF) == {"overhead", "call_overhead", "reduce_bandwidth", "copy_bandwidth",
                                   "cache_copy_bandwidth", "cache_bytes", "memory_bandwidth",
                                   "segment_bytes", "cores", "core_wait"}
    # waiting for a core is on by default, but costs nothing until ranks outnumber the cores
    assert 0 < d["core_wait"] < INF and HOST_TERMS_OFF["core_wait"] == 0


# ---------------------------------------------------------------------- reductions
def test_a_reduction_pipelines_behind_the_segments_of_its_message():
    # one step: rank 0 sends n bytes to rank 1, which reduces them at G bytes/s. The transfer
    # takes T = L + n/B, the reduction R = n/G. In S segments the reduction of segment i runs
    # while segment i+1 arrives: max(T, R) + min(T, R)/S in all.
    n = 1 << 20
    s = hand_schedule(2, [[("reduce", 0, 1, n // 4)]])
    T = L + n / B
    for G, seg in ((4e9, 256 << 10), (0.5e9, 256 << 10), (4e9, n)):
        R = n / G
        S = n // seg
        on = {**OFF, "reduce_bandwidth": G, "segment_bytes": seg}
        assert simulate(s, star(2), **on).time == pytest.approx(max(T, R) + min(T, R) / S, rel=1e-12)
    # no segmentation (one segment): the whole reduction after the transfer, the gamma term
    on = {**OFF, "reduce_bandwidth": 4e9}
    assert simulate(s, star(2), **on).time == pytest.approx(T + n / 4e9, rel=1e-12)


def test_reductions_on_one_machine_share_its_memory_bandwidth():
    # 0 -> 1 and 2 -> 3, n bytes each, both reduced. Alone, a receiver reduces at G; when
    # ranks 1 and 3 run on one machine of memory bandwidth C they stream through it together,
    # at C/2 each when that is slower than G: T + n * max(1/G, 2/C).
    n, G, C = 1 << 20, 8e9, 8e9
    s = hand_schedule(4, [[("reduce", 0, 1, n // 4), ("reduce", 2, 3, n // 4)]])
    T = L + n / B
    on = {**OFF, "reduce_bandwidth": G, "memory_bandwidth": C}
    assert simulate(s, star(4), **on).time == pytest.approx(T + n / G, rel=1e-12)
    machines = np.array([0, 1, 2, 1])
    assert simulate(s, star(4), machines=machines, **on).time == pytest.approx(T + 2 * n / C, rel=1e-12)
    # the memory bandwidth switched off leaves the reduce bandwidth alone
    off = {**on, "memory_bandwidth": INF}
    assert simulate(s, star(4), machines=machines, **off).time == pytest.approx(T + n / G, rel=1e-12)


def test_ranks_beyond_the_cores_of_a_machine_share_them():
    # 0 -> 1 and 2 -> 3 as above, all four ranks on one machine of 2 cores: each rank gets half
    # a core, so its CPU work takes twice as long: the message's overhead (2*O) and the
    # reduction (2n/G); the network part (L + n/B) is the same.
    n, G = 1 << 16, 4e9
    s = hand_schedule(4, [[("reduce", 0, 1, n // 4), ("reduce", 2, 3, n // 4)]])
    on = {**OFF, "overhead": O, "reduce_bandwidth": G}
    one = np.zeros(4, dtype=np.int64)
    assert simulate(s, star(4), **on).time == pytest.approx(O + L + n / B + n / G, rel=1e-12)
    assert simulate(s, star(4), machines=one, **{**on, "cores": 2}).time == \
        pytest.approx(2 * O + L + n / B + 2 * n / G, rel=1e-12)
    # as many cores as ranks: nothing shared
    assert simulate(s, star(4), machines=one, **{**on, "cores": 4}).time == \
        pytest.approx(O + L + n / B + n / G, rel=1e-12)


def test_copies_run_before_the_messages_of_their_step():
    # rank 0 copies c bytes, then sends m bytes to rank 1 in the same step (the executor does the
    # step's copies first): rank 1's receive ends at c/C + L + m/B, not at max of the two
    c, m, C = 1 << 20, 1 << 16, 4e9
    s = hand_schedule(2, [[("copy", 0, c // 4), ("send", 0, 1, m // 4)]])
    r = simulate(s, star(2), **{**OFF, "copy_bandwidth": C})
    assert r.time == pytest.approx(c / C + L + m / B, rel=1e-12)
    assert r.finish_times[1] == pytest.approx(c / C + L + m / B, rel=1e-12)


def test_emulated_reducing_receives_are_held_until_their_reduction_tail():
    # the emulator holds a reducing receive for its flow time and what its reduction adds after
    # the last byte: ring all-reduce on 2 ranks, reduce-scatter step, blocks of n/2
    n, G = 1 << 16, 4e9
    s = build_schedule("allreduce", "ring", 2, n // 4)
    on = {**OFF, "overhead": O, "reduce_bandwidth": G}
    mt = cl.model.message_times(s, star(2), None, 0, itemsize=4, **on)
    prog = s.program(0)
    red = prog["kind"] == cl.schedule.RECV_REDUCE
    plain = prog["kind"] == cl.schedule.RECV
    assert red.sum() == 1 and plain.sum() == 1
    assert mt[red][0] == pytest.approx(O + L + n / 2 / B + n / 2 / G, rel=1e-12)
    assert mt[plain][0] == pytest.approx(O + L + n / 2 / B, rel=1e-12)


# ---------------------------------------------------------------------- breakdown
def test_breakdown_splits_the_time_into_network_copies_reductions_and_overhead():
    # ring all-reduce on a uniform star: every rank is alike, so the split is the formula's terms
    p, n, G, C = 4, 4 * 4096 * 4, 4e9, 5e9
    on = {**OFF, "overhead": O, "reduce_bandwidth": G, "copy_bandwidth": C}
    sched = build_schedule("allreduce", "ring", p, n // 4)
    r = simulate(sched, star(p), **on)
    b = r.breakdown
    assert list(b) == list(cl.model.HOST_PARTS)
    assert sum(b.values()) == pytest.approx(r.time, rel=1e-12)
    assert b["network"] == pytest.approx(simulate(sched, star(p), **OFF).time, rel=1e-12)
    assert b["overhead"] == pytest.approx(2 * (p - 1) * O, rel=1e-12)
    assert b["reductions"] == pytest.approx((p - 1) / p * n / G, rel=1e-12)
    copy_only = simulate(sched, star(p), **{**OFF, "copy_bandwidth": C})
    assert b["copies"] == pytest.approx(copy_only.time - b["network"], rel=1e-9)
    assert b["copies"] > 0


def test_plan_explain_shows_the_host_terms_of_the_winning_plan():
    plan = cl.planner.choose("alltoall", 1 << 20, star(4), cache=False)
    text = plan.explain()
    assert f"time of {plan.label}: network" in text and "; host terms: copies" in text
    for part in cl.model.HOST_PARTS:
        assert part in text
    b = plan.choice.breakdown
    assert sum(b.values()) == pytest.approx(plan.predicted_time, rel=1e-9)
    # switched off, the winning plan is all network
    off = cl.planner.choose("alltoall", 1 << 20, star(4), cache=False, **OFF)
    assert off.choice.breakdown["network"] == pytest.approx(off.predicted_time, rel=1e-12)


def test_bad_new_host_constants_are_refused():
    with pytest.raises(cl.InvalidArgument, match="segment_bytes"):
        predict("allreduce", "ring", 1024, star(2), segment_bytes=0)
    with pytest.raises(cl.InvalidArgument, match="cores"):
        predict("allreduce", "ring", 1024, star(2), cores=0.5)
    with pytest.raises(cl.InvalidArgument, match="machines"):
        predict("allreduce", "ring", 1024, star(2), machines=[0])
    with pytest.raises(cl.InvalidArgument, match="machines"):
        predict("allreduce", "ring", 1024, star(2), machines=np.array([0.5, 1.0]))


# ---------------------------------------------------------------------- rounding
def test_alltoall_size_that_does_not_split_is_priced_rounded_down():
    p = 3
    whole = p * 4 * 10                      # 3 blocks of 10 float32
    odd = whole + 2 * 4                     # 32 elements: not 3 equal blocks
    assert priced_nbytes("alltoall", odd, p) == whole
    assert priced_nbytes("alltoall", odd + 1, p, itemsize=1) == odd + 1 - (odd + 1) % p
    assert priced_nbytes("allreduce", odd, p) == odd      # any whole number of elements
    with pytest.raises(cl.InvalidArgument, match="whole number"):
        priced_nbytes("alltoall", odd + 1, p)             # part of an element: a mistake
    want = predict("alltoall", "pairwise", whole, star(p), **OFF)
    assert predict("alltoall", "pairwise", odd, star(p), **OFF) == want
    r = simulate(build_schedule("alltoall", "pairwise", p, whole // 4), star(p), **OFF)
    assert r.nbytes == whole and r.time == want


def test_planner_says_what_it_priced():
    p = 3
    odd = p * 4 * 10 + 4
    plan = cl.planner.choose("alltoall", odd, star(p), cache=False, **OFF)
    assert plan.nbytes == odd and plan.priced_nbytes == p * 4 * 10
    assert f"priced {p * 4 * 10} B (rounded down to whole blocks)" in plan.explain()
    assert plan.to_dict()["priced_nbytes"] == p * 4 * 10
    exact = cl.planner.choose("alltoall", p * 4 * 10, star(p), cache=False, **OFF)
    assert "rounded down" not in exact.explain()
    assert plan.predicted_time == exact.predicted_time


def test_the_issue_case_is_priced():
    # 256 MiB of float32 do not split into 16,512 equal blocks: 4,064 elements per block
    assert priced_nbytes("alltoall", 256 << 20, 16512) == 4064 * 16512 * 4


# ---------------------------------------------------------------------- calibration
def test_copy_bandwidth_is_measured_and_saved(tmp_path):
    bw = measure_copy_bandwidth(1 << 20, repeat=2)
    assert math.isfinite(bw) and bw > 0
    prof = Profile(Link(1e-6, 5e9), None, 8e9, 0.0, {}, copy_bandwidth=bw)
    save_profile(prof, tmp_path / "p.json")
    back = load_profile(tmp_path / "p.json")
    assert back.copy_bandwidth == pytest.approx(bw)
    _, params = two_level_model(np.array([0, 0]), back)
    assert params["copy_bandwidth"] == pytest.approx(bw)


def test_profile_without_copy_bandwidth_still_loads(tmp_path):
    old = {"format": "collectives-profile", "version": 1,
           "intra": {"latency": 1e-6, "bandwidth": 5e9}, "inter": None,
           "reduce_bandwidth": 8e9, "overhead": 0.0, "measured": {}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    assert load_profile(path).copy_bandwidth == INF
    bad = dict(old, copy_bandwidth=-1)
    path.write_text(json.dumps(bad))
    with pytest.raises(cl.ModelError, match="copy_bandwidth"):
        load_profile(path)


def test_copies_counted_on_a_sample_of_ranks_match_every_rank(monkeypatch):
    # above a rank count, a group whose messages are cheap to list counts its copies on
    # evenly spaced ranks only; Bruck's ranks all copy the same, so the price is the same
    import sys

    sim = sys.modules["collectives.model.simulate"]
    kw = {**OFF, "copy_bandwidth": 1e9}
    exact = predict("alltoall", "bruck", 128 * 4 * 8, star(128), **kw)
    monkeypatch.setattr(sim, "_COPY_EXACT_RANKS", 16)
    assert predict("alltoall", "bruck", 128 * 4 * 8, star(128), **kw) == pytest.approx(exact, rel=1e-12)


# ---------------------------------------------------------------------- per call, cache, memory
def test_call_overhead_is_paid_once_per_call_on_every_rank():
    # two steps 0 -> 1 then 1 -> 0 of m bytes: the call cost X comes once, before the first
    # message, not once per step or message: 2 (L + m/B) + X
    m, X = 1 << 16, 7e-6
    s = hand_schedule(2, [[("send", 0, 1, m // 4)], [("send", 1, 0, m // 4)]])
    base = 2 * (L + m / B)
    r = simulate(s, star(2), **{**OFF, "call_overhead": X})
    assert r.time == pytest.approx(base + X, rel=1e-12)
    assert r.breakdown["call"] == pytest.approx(X, rel=1e-12)
    assert sum(float(t.sum()) for t in r.step_times) == pytest.approx(r.time, rel=1e-12)
    assert simulate(s, star(2), **OFF).breakdown["call"] == 0.0
    # 4 ranks on one machine of 2 cores: each rank gets half a core, so the call takes 2X
    s4 = hand_schedule(4, [[("send", 0, 1, m // 4)], [("send", 1, 0, m // 4)]])
    one = np.zeros(4, dtype=np.int64)
    shared = simulate(s4, star(4), machines=one, **{**OFF, "call_overhead": X, "cores": 2})
    assert shared.time == pytest.approx(base + 2 * X, rel=1e-12)


def test_copies_that_fit_in_cache_run_at_cache_speed():
    # one rank copies c = 3 MiB; the first cache_bytes = 1 MiB go at Cc, the other 2 MiB at C
    c, cache, Cc, C = 3 << 20, 1 << 20, 20e9, 5e9
    s = hand_schedule(2, [[("copy", 0, c // 4)]])
    on = {**OFF, "copy_bandwidth": C, "cache_copy_bandwidth": Cc, "cache_bytes": cache}
    assert simulate(s, star(2), **on).time == pytest.approx(cache / Cc + (c - cache) / C, rel=1e-12)
    # a copy smaller than the cache runs at cache speed alone
    small = hand_schedule(2, [[("copy", 0, (cache // 2) // 4)]])
    assert simulate(small, star(2), **on).time == pytest.approx(cache / 2 / Cc, rel=1e-12)
    # no cache (HOST_TERMS_OFF's cache_bytes=0): everything at the core's copy bandwidth
    assert simulate(s, star(2), **{**on, "cache_bytes": 0}).time == pytest.approx(c / C, rel=1e-12)


def test_the_machines_memory_bandwidth_is_shared_apart_from_one_cores_copy_bandwidth():
    # ranks 0 and 1 on one machine copy c bytes each (no cache). One core copies at C; the machine's
    # memory gives M in all. M = 1.5 C: the two share it, M/2 each; M = 4 C: each copies at its
    # core's C, as if alone
    c, C = 1 << 20, 5e9
    s = hand_schedule(2, [[("copy", 0, c // 4), ("copy", 1, c // 4)]])
    one = np.array([0, 0])
    for M, rate in ((1.5 * C, 0.75 * C), (4 * C, C)):
        on = {**OFF, "copy_bandwidth": C, "memory_bandwidth": M}
        assert simulate(s, star(2), machines=one, **on).time == pytest.approx(c / rate, rel=1e-12)
    # the same ranks on two machines do not share
    on = {**OFF, "copy_bandwidth": C, "memory_bandwidth": 1.5 * C}
    assert simulate(s, star(2), **on).time == pytest.approx(c / C, rel=1e-12)


def test_ranks_sharing_a_core_share_its_time_and_its_cache():
    # 4 ranks on one machine of 2 cores each copy c = 1 MiB: s = 2, so a rank's cache share is
    # cache/2 = 256 KiB at Cc/2, and the other 768 KiB at max(2/C, 4/M) seconds per byte
    c, cache, Cc, C, M = 1 << 20, 512 << 10, 20e9, 5e9, 12e9
    s = hand_schedule(4, [[("copy", r, c // 4) for r in range(4)]])
    one = np.zeros(4, dtype=np.int64)
    on = {**OFF, "copy_bandwidth": C, "cache_copy_bandwidth": Cc, "cache_bytes": cache,
          "memory_bandwidth": M, "cores": 2}
    hot = cache / 2
    want = 2 * hot / Cc + (c - hot) * max(2 / C, 4 / M)
    assert simulate(s, star(4), machines=one, **on).time == pytest.approx(want, rel=1e-12)
    assert cl.model.copy_time(np.array([c]), np.array([4]), np.array([2.0]), on)[0] == \
        pytest.approx(want, rel=1e-12)


def test_bruck_counts_its_copies_without_building_them():
    # the model prices Bruck's copies from the group's closed form: it must be what build copies
    for p in range(2, 13):
        s = build_schedule("alltoall", "bruck", p, p * 3)
        for g in s.groups:
            ops = g.build(0, np.arange(p))
            built = np.bincount(ops.rank, weights=np.where(ops.kind == cl.schedule.COPY, ops.count, 0),
                                minlength=p)
            np.testing.assert_array_equal(g.copies(0, np.arange(p)), built)


def test_two_level_model_shares_copies_per_node():
    # ranks 0, 1 on node 0 and 2, 3 on node 1: each node's two ranks share its memory bandwidth
    groups = np.array([0, 0, 1, 1])
    topo, params = two_level_model(groups)
    np.testing.assert_array_equal(params["machines"], groups)
    c, C, M = 4 << 20, 5e9, 6e9
    s = hand_schedule(4, [[("copy", r, c // 4) for r in range(4)]])
    on = {**OFF, "copy_bandwidth": C, "memory_bandwidth": M}
    shared = simulate(s, topo, machines=params["machines"], **on).time
    assert shared == pytest.approx(c / (M / 2), rel=1e-12)
    assert simulate(s, topo, **on).time == pytest.approx(c / C, rel=1e-12)


def test_new_host_constants_are_saved_and_loaded_and_given_to_the_model(tmp_path):
    host = {"cache_copy_bandwidth": 2e10, "cache_bytes": float(1 << 20), "memory_bandwidth": 1.2e10,
            "call_overhead": 9e-6, "emulated_call_overhead": 8e-6}
    prof = Profile(Link(1e-6, 5e9), None, 8e9, 0.0, {}, 6e9, host)
    save_profile(prof, tmp_path / "p.json")
    back = load_profile(tmp_path / "p.json")
    assert back.host == pytest.approx(host)
    _, params = two_level_model(np.array([0, 0]), back)
    for k in ("cache_copy_bandwidth", "cache_bytes", "memory_bandwidth", "call_overhead"):
        assert params[k] == pytest.approx(host[k])
    assert "emulated_call_overhead" not in params      # not a constant of a live communicator
    # an older profile has none of them: the model's defaults stay
    old = prof.to_dict()
    for k in host:
        old.pop(k)
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert load_profile(tmp_path / "old.json").host == {}
    bad = dict(old, memory_bandwidth=0)
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(cl.ModelError, match="memory_bandwidth"):
        load_profile(tmp_path / "bad.json")


def test_copy_sweep_finds_a_cache_size_among_the_sizes_it_measured():
    from collectives.model.calibrate import measure_copy_sweep

    sizes = [32 << 10, 128 << 10, 512 << 10, 2 << 20]
    cache, rate, rates = measure_copy_sweep(sizes, repeat=1)
    assert cache in sizes and set(rates) == set(sizes)
    assert math.isfinite(rate) and rate > 0


def test_bad_cache_and_memory_constants_are_refused():
    with pytest.raises(cl.InvalidArgument, match="cache_bytes"):
        predict("alltoall", "bruck", 1024, star(2), cache_bytes=-1)
    with pytest.raises(cl.InvalidArgument, match="memory_bandwidth"):
        predict("alltoall", "bruck", 1024, star(2), memory_bandwidth=0)
    with pytest.raises(cl.InvalidArgument, match="cache_copy_bandwidth"):
        predict("alltoall", "bruck", 1024, star(2), cache_copy_bandwidth=-5)
    with pytest.raises(cl.InvalidArgument, match="call_overhead"):
        predict("alltoall", "bruck", 1024, star(2), call_overhead=-1e-6)


def test_copies_sampled_on_ranks_match_the_closed_form(monkeypatch):
    # a group without a closed form for its copies (here Bruck's, with it taken away) counts them
    # by building the programs of sampled ranks above a rank count: the same price as the form
    import dataclasses
    import sys

    sim = sys.modules["collectives.model.simulate"]
    kw = {**OFF, "copy_bandwidth": 1e9}
    p, n = 128, 128 * 4 * 8
    s = build_schedule("alltoall", "bruck", p, n // 4)
    exact = simulate(s, star(p), **kw).time
    built = dataclasses.replace(s, groups=[dataclasses.replace(g, copies=None) for g in s.groups])
    assert simulate(built, star(p), **kw).time == pytest.approx(exact, rel=1e-12)
    monkeypatch.setattr(sim, "_COPY_EXACT_RANKS", 16)
    assert simulate(built, star(p), **kw).time == pytest.approx(exact, rel=1e-12)


def test_a_receiving_rank_waits_for_a_core_only_when_ranks_outnumber_the_cores():
    # 0 -> 1 and 2 -> 3 of m bytes, then 1 -> 0: ranks 1 and 3 receive in step 1, rank 0 in
    # step 2, rank 2 never. On one machine of c cores the core share is s = k / c (k busy ranks:
    # 4 in step 1, 2 in step 2), and a rank that receives waits (s - 1) * W for a core after
    # its messages: step 1 ends at L + m/B + (4/c - 1) W, step 2 adds L + m/B + max(0, 2/c - 1) W.
    m, W = 1 << 16, 30e-6
    s = hand_schedule(4, [[("send", 0, 1, m // 4), ("send", 2, 3, m // 4)], [("send", 1, 0, m // 4)]])
    one = np.zeros(4, dtype=np.int64)
    flow = L + m / B
    on = {**OFF, "core_wait": W}
    assert simulate(s, star(4), machines=one, **{**on, "cores": 2}).time == \
        pytest.approx(2 * flow + W, rel=1e-12)
    assert simulate(s, star(4), machines=one, **{**on, "cores": 1}).time == \
        pytest.approx(2 * flow + 3 * W + W, rel=1e-12)
    r = simulate(s, star(4), machines=one, **{**on, "cores": 1.5})
    assert r.time == pytest.approx(2 * flow + (4 / 1.5 - 1) * W + (2 / 1.5 - 1) * W, rel=1e-12)
    # it is CPU time of the rank: the breakdown counts it as overhead, not as network
    assert r.breakdown["network"] == pytest.approx(2 * flow, rel=1e-12)
    # a core per rank (or every rank its own machine): no wait, whatever W is
    for kw in ({"machines": one, "cores": 4}, {"cores": 2}, {"machines": one}):
        assert simulate(s, star(4), **{**on, **kw}).time == pytest.approx(2 * flow, rel=1e-12)
    # the rank that only sends (2) finishes at its flow, the receivers wait on
    fin = simulate(s, star(4), machines=one, **{**on, "cores": 2}).finish_times
    assert fin[2] == pytest.approx(flow, rel=1e-12)
    assert fin[3] == pytest.approx(flow + W, rel=1e-12)


def test_waiting_for_a_core_is_not_in_an_emulated_links_hold():
    # an emulated link holds a message for its modelled flow; the wait for a core comes after,
    # on the rank's own time, so message_times (the holds) do not change with core_wait
    s = build_schedule("allreduce", "ring", 4, 1 << 14)
    one = np.zeros(4, dtype=np.int64)
    kw = {**OFF, "overhead": O, "machines": one, "cores": 2}
    for rank in range(4):
        np.testing.assert_array_equal(cl.model.message_times(s, star(4), None, rank, **kw),
                                      cl.model.message_times(s, star(4), None, rank,
                                                             **{**kw, "core_wait": 1e-3}))


def test_bad_core_wait_is_refused():
    for bad in (-1e-6, float("nan"), float("inf"), True, "fast"):
        with pytest.raises(cl.InvalidArgument, match="core_wait"):
            predict("allreduce", "ring", 1024, star(2), core_wait=bad)


def test_a_measured_core_wait_is_saved_loaded_and_given_to_the_model(tmp_path):
    from collectives.model.calibrate import OVERSUBSCRIBED_CONSTANTS

    assert set(OVERSUBSCRIBED_CONSTANTS) == {"core_wait"}
    host = {"call_overhead": 9e-6, "core_wait": 4e-5}
    save_profile(Profile(Link(1e-6, 5e9), None, 8e9, 0.0, {}, 6e9, host), tmp_path / "p.json")
    back = load_profile(tmp_path / "p.json")
    assert back.host == pytest.approx(host)
    assert two_level_model(np.array([0, 0]), back)[1]["core_wait"] == pytest.approx(4e-5)
    # measured with a core per rank: not in the profile, so the model keeps its default
    save_profile(Profile(Link(1e-6, 5e9), None, 8e9, 0.0, {}, 6e9, {"call_overhead": 9e-6}),
                 tmp_path / "q.json")
    assert "core_wait" not in two_level_model(np.array([0, 0]), load_profile(tmp_path / "q.json"))[1]
