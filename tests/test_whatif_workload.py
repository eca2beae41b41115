"""`collectives whatif`: the training-step study (every format, budgets, prices,
bad input) and the two per-collective bugs (specs split at their own commas,
--link-bandwidth ignored for a named spec)."""

import csv
import io
import json

import pytest

from collectives.cli import main
from collectives.errors import InvalidArgument
from collectives.model.cli import parse_budget, split_designs, whatif, whatif_workload
from collectives.workload.cost import DEFAULT_PRICES, design_cost, load_prices, validate_prices

SMALL = ["whatif", "--workload", "llama3-70b", "--layout", "tp=8,pp=2", "--accelerators", "64",
         "--global-batch", "8", "--no-progress"]
DESIGNS = "rail-optimized,fat-tree,dragonfly,torus,full-mesh"


def run(capsys, *args):
    code = main([*SMALL, *args])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- the study
def test_json_rows_one_per_design(capsys):
    code, out, _ = run(capsys, "--designs", DESIGNS, "-f", "json")
    assert code == 0
    doc = json.loads(out)
    rows = doc["rows"]
    assert [r["design"] for r in rows] == DESIGNS.split(",")
    for r in rows:
        parts = sum(r[k] for k in ("compute", "tp", "pp", "ep", "dp", "bubble"))
        assert r["time"] == pytest.approx(parts, rel=1e-9)
        assert r["tokens_per_second"] == pytest.approx(8 * 8192 / r["time"])
        assert 0 < r["mfu"] < 1
        assert r["capital"] > 0 and r["watts"] > 0 and r["cables"] > 0
        assert r["cost_per_million_tokens"] > 0
        assert r["injection"] == pytest.approx(50e9)          # the default budget, 400 Gb/s
    by = {r["design"]: r for r in rows}
    assert by["dragonfly"]["routing"] == "adaptive"           # what-if default for dragonflies
    assert by["fat-tree"]["routing"] == "ecmp"
    assert by["torus"]["switches"] == by["full-mesh"]["switches"] == 0
    # equal injection: a 64-way full mesh gives each link 1/63 of it, so tensor-parallel
    # rings crawl over single thin links
    assert by["full-mesh"]["time"] > by["fat-tree"]["time"]
    # the scale-up domain carries tensor parallelism in the rail design
    assert by["rail-optimized"]["tp"] < by["fat-tree"]["tp"]
    assert doc["accelerators"] == 64 and doc["workload"]["global_batch"] == 8


def test_table_markdown_csv(capsys):
    code, out, _ = run(capsys, "--designs", "fat-tree,rail-optimized")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("# what-if: llama3-70b, dp=4 tp=8 pp=2")
    assert "tokens/s" in lines[1] and "MFU" in lines[1] and "capital" in lines[1]
    assert len(lines) == 3 + 2
    code, out, _ = run(capsys, "--designs", "fat-tree,rail-optimized", "-f", "markdown")
    assert code == 0 and out.splitlines()[1].startswith("| design | step |")
    assert out.splitlines()[2].startswith("|---|")
    code, out, _ = run(capsys, "--designs", "fat-tree,rail-optimized", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["design"] for r in rows] == ["fat-tree", "rail-optimized"]
    assert float(rows[0]["time"]) > 0 and float(rows[1]["capital"]) > 0


def test_output_file_and_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "rows.json", tmp_path / "study.png"
    code, _, _ = run(capsys, "--designs", "fat-tree,torus", "-f", "json", "-o", str(out),
                     "--plot", str(png))
    assert code == 0
    assert len(json.loads(out.read_text())["rows"]) == 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cost_budget_holds_capital_equal(capsys):
    code, out, _ = run(capsys, "--designs", "fat-tree,dragonfly,torus", "--budget", "cost=2M",
                       "-f", "json")
    assert code == 0
    rows = json.loads(out)["rows"]
    for r in rows:
        assert r["capital"] <= 2e6
    # each design got the most bandwidth the money buys: one step up would break the budget
    from collectives.model.cli import _sized_spec, build_design
    for r in rows:
        t = build_design(_sized_spec(r["design"], 64, r["injection"] * 2 ** (1 / 8)))
        assert design_cost(t)["capital"] > 2e6 or r["injection"] >= 50e9 * 2 ** 6
    assert len({round(r["injection"]) for r in rows}) > 1


def test_more_injection_is_never_slower():
    kw = dict(global_batch=8, reduce_bandwidth=float("inf"))
    slow, _ = whatif_workload("llama3-70b", "tp=8,pp=2", 64, ["fat-tree", "dragonfly"],
                              budget="injection=100Gbps", **kw)
    fast, _ = whatif_workload("llama3-70b", "tp=8,pp=2", 64, ["fat-tree", "dragonfly"],
                              budget="injection=800Gbps", **kw)
    for a, b in zip(slow, fast):
        assert b["time"] <= a["time"]
        assert b["capital"] >= a["capital"]


def test_explicit_specs_and_multi_plane(capsys):
    code, out, _ = run(capsys, "--designs", "fat-tree:k=8,planes=2,rail-only:nodes=8,g=8",
                       "-f", "json")
    assert code == 0
    rows = json.loads(out)["rows"]
    assert [r["design"] for r in rows] == ["fat-tree:k=8,planes=2", "rail-only:nodes=8,g=8"]
    assert rows[0]["topology"].startswith("fat-tree:k=8,planes=2")


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, match", [
    (["--workload", "llama9"], "unknown workload preset 'llama9'"),
    (["--layout", "tp=8,pp=2,dp=8"], "--layout"),
    (["--accelerators", "60"], "--layout"),
    (["--designs", "fat-tree,banyan"], "--designs: unknown design 'banyan'"),
    (["--designs", "fat-tree:k=4"], "fewer than the 64 accelerators"),
    (["--designs", "fat-tree:k=8,bw=1Gbps"], "drop bw="),
    (["--budget", "cost=1k"], "--budget 'cost=1k': no design can be bought"),
    (["--budget", "money=5"], "unknown budget 'money'"),
    (["--budget", "injection=fast"], "--budget injection"),
    (["--link-bandwidth", "400Gbps"], "--budget sizes the links"),
    (["--global-batch", "6"], "--global-batch"),
    (["--prices", "/nonexistent/prices.json"], "cannot read the price list"),
    (["--ranks", "64"], "--ranks belongs to the per-collective study"),
])
def test_bad_input_names_the_argument(capsys, args, match):
    argv = list(SMALL)
    for flag, value in zip(args[::2], args[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("collectives: error:") and match in err


def test_bad_input_raises_before_any_pricing(monkeypatch):
    import collectives.workload as W

    def boom(*a, **k):
        raise AssertionError("priced")

    monkeypatch.setattr(W, "simulate", boom)
    for kw in (dict(designs=["fat-tree", "nope"]), dict(budget="cost=5"),
               dict(prices={"currency": "USD"})):
        args = dict(designs=["fat-tree"], global_batch=8)
        args.update(kw)
        with pytest.raises(InvalidArgument):
            whatif_workload("llama3-70b", "tp=8,pp=2", 64, **args)


def test_ep_and_moe_layout_errors():
    with pytest.raises(InvalidArgument, match="ep=3"):
        whatif_workload("mixtral-8x7b", "tp=4,ep=3", 64, ["fat-tree"])
    with pytest.raises(InvalidArgument, match="ep=2 needs a mixture-of-experts"):
        whatif_workload("llama3-70b", "tp=8,ep=2", 64, ["fat-tree"], global_batch=8)


# ---------------------------------------------------------------- prices
def test_price_list_validation(tmp_path):
    assert load_prices()["nic"]["400"]["price"] > 0
    bad = json.loads(json.dumps(DEFAULT_PRICES))
    bad["nic"]["400"]["price"] = -1
    with pytest.raises(InvalidArgument, match="nic.400.price is negative"):
        validate_prices(bad)
    bad = json.loads(json.dumps(DEFAULT_PRICES))
    del bad["cable"]["optical-500m"]
    with pytest.raises(InvalidArgument, match="'optical-500m' is missing"):
        validate_prices(bad)
    bad = json.loads(json.dumps(DEFAULT_PRICES))
    bad["switch_port"] = [r for r in bad["switch_port"] if r["speed_gbps"] != 800]
    with pytest.raises(InvalidArgument, match="800 Gb/s"):
        validate_prices(bad)
    f = tmp_path / "p.json"
    f.write_text("{not json")
    with pytest.raises(Exception, match="not JSON"):
        load_prices(f)
    cheap = json.loads(json.dumps(DEFAULT_PRICES))
    for e in cheap["nic"].values():
        e["price"] = 0.0
    f.write_text(json.dumps(cheap))
    from collectives.topology import full_mesh
    t = full_mesh(8)
    assert design_cost(t, load_prices(f))["capital"] < design_cost(t)["capital"]


def test_every_default_price_has_a_source():
    src = DEFAULT_PRICES["sources"]
    for part in ("switch_port", "nic", "transceiver", "cable"):
        assert src[part]


def test_design_cost_counts():
    from collectives.topology import fat_tree
    c = design_cost(fat_tree(4, link_bandwidth="400Gbps"))
    # 16 host cables (copper), 16 edge-aggregation and 16 aggregation-core (optical)
    assert c["cables"] == {"copper-3m": 16, "optical-30m": 16, "optical-500m": 16, "total": 48}
    assert c["switches"] == 20 and c["switch_ports"] == 80 and c["nic_ports"] == 16
    assert c["transceivers"] == 64
    p = load_prices()
    port = next(r for r in p["switch_port"] if r["speed_gbps"] == 400)
    expect = (80 * port["price"] + 16 * p["nic"]["400"]["price"]
              + 64 * p["transceiver"]["400"]["price"] + 16 * p["cable"]["copper-3m"]["400"]
              + 16 * p["cable"]["optical-30m"]["400"] + 16 * p["cable"]["optical-500m"]["400"])
    assert c["capital"] == pytest.approx(expect)


@pytest.mark.parametrize("text, value", [("injection=400Gbps", ("injection", 50e9)),
                                         ("cost=250M", ("cost", 250e6)),
                                         ("cost=$1.5B", ("cost", 1.5e9)),
                                         ("cost=125000", ("cost", 125000.0))])
def test_parse_budget(text, value):
    assert parse_budget(text) == value


# ---------------------------------------------------------------- the per-collective mode
def test_specs_are_split_at_their_own_commas():
    assert split_designs("fat-tree:k=32,oversub=2,dragonfly") == ["fat-tree:k=32,oversub=2",
                                                                 "dragonfly"]
    assert split_designs("full-mesh,fat-tree:k=4,oversub=2,planes=2,torus:4x4x4,"
                         "multi-node:nodes=2,devices=4,inter=(fat-tree:k=4,bw=400Gbps)") == \
        ["full-mesh", "fat-tree:k=4,oversub=2,planes=2", "torus:4x4x4",
         "multi-node:nodes=2,devices=4,inter=(fat-tree:k=4,bw=400Gbps)"]


def test_per_collective_spec_with_several_options(capsys):
    assert main(["whatif", "--ranks", "16", "-t", "fat-tree:k=4,oversub=2,full-mesh", "-s", "1M",
                 "-c", "allreduce", "-f", "csv", "--no-progress"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["design"] for r in rows] == ["fat-tree:k=4,oversubscription=2", "full-mesh:n=16"]


def test_per_collective_link_bandwidth_applies_to_named_specs():
    base = whatif(16, ["fat-tree:k=4"], ["allreduce"], [1 << 24])
    fast = whatif(16, ["fat-tree:k=4"], ["allreduce"], [1 << 24], link_bandwidth=50e9)
    own = whatif(16, ["fat-tree:k=4,bw=100Gbps"], ["allreduce"], [1 << 24], link_bandwidth=50e9)
    assert fast[0]["time"] < base[0]["time"]
    assert own[0]["time"] == pytest.approx(base[0]["time"])      # the spec's own bw= wins


def test_per_collective_header_and_rows_agree(capsys):
    assert main(["whatif", "--ranks", "16", "-t", "fat-tree:k=4,full-mesh", "-s", "64M",
                 "-c", "allreduce", "--link-bandwidth", "400Gbps", "-f", "json",
                 "--no-progress"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["link_bandwidth"] == 50e9
    by = {r["design"]: r for r in doc["rows"]}
    ref = whatif(16, ["fat-tree"], ["allreduce"], [64 << 20], link_bandwidth=50e9)[0]
    assert by["fat-tree:k=4"]["time"] == pytest.approx(ref["time"])


def test_per_collective_needs_ranks(capsys):
    assert main(["whatif"]) == 2
    assert "--ranks" in capsys.readouterr().err
    assert main(["whatif", "--ranks", "16", "--layout", "tp=8"]) == 2
    assert "--workload" in capsys.readouterr().err


def test_accelerator_options_reach_the_step(capsys):
    code, out, _ = run(capsys, "--designs", "fat-tree", "--accelerator", "mi300x",
                       "--efficiency", "0.4", "-f", "json")
    assert code == 0
    acc = json.loads(out)["workload"]["accelerator"]
    assert acc["name"] == "mi300x" and acc["efficiency"] == 0.4
    code, out, _ = run(capsys, "--designs", "fat-tree", "--accelerator", "free", "-f", "json")
    row = json.loads(out)["rows"][0]
    assert row["compute"] == 0 and row["mfu"] is None
