"""collectives.units: human units in, SI base units out, and back."""

import math

import pytest
from hypothesis import given, strategies as st

from collectives.errors import InvalidArgument
from collectives.units import (format_bandwidth, format_bytes, format_time, parse_bandwidth,
                               parse_size, parse_size_range, parse_time)


@pytest.mark.parametrize("text, expected", [
    ("100Gbps", 12.5e9), ("12.5GB/s", 12.5e9), ("400Gb/s", 50e9), ("1.5TB/s", 1.5e12),
    ("100 Gbps", 12.5e9), ("25GBps", 25e9), ("100Gbit/s", 12.5e9), ("1GiB/s", 2.0 ** 30),
    ("10Mbps", 1.25e6), ("1kB/s", 1e3), ("8bps", 1.0), ("1e2Gbps", 12.5e9), ("100gbps", 12.5e9),
    ("10mbps", 1.25e6), ("1tb/s", 125e9),
])
def test_parse_bandwidth(text, expected):
    assert parse_bandwidth(text) == pytest.approx(expected)


def test_parse_bandwidth_numbers_pass_through():
    assert parse_bandwidth(12.5e9) == 12.5e9
    assert parse_bandwidth(3) == 3.0


@pytest.mark.parametrize("bad", ["100Gbpx", "100", "Gbps", "", "-1Gbps", "0Gbps", "infGbps",
                                 "nanGB/s", "100 G bps", "1.2.3Gbps"])
def test_parse_bandwidth_rejects(bad):
    with pytest.raises(InvalidArgument) as e:
        parse_bandwidth(bad)
    assert repr(bad) in str(e.value) or "must be" in str(e.value)
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("bad", [0, -5, float("inf"), float("nan"), "x", None, True])
def test_parse_bandwidth_rejects_numbers(bad):
    with pytest.raises(InvalidArgument):
        parse_bandwidth(bad)


def test_bad_unit_message_lists_accepted_forms():
    with pytest.raises(InvalidArgument, match="100Gbps.*12.5GB/s"):
        parse_bandwidth("12 furlongs")


@pytest.mark.parametrize("text, expected", [
    ("1us", 1e-6), ("500ns", 5e-7), ("2ms", 2e-3), ("1.5s", 1.5), ("1µs", 1e-6), ("1μs", 1e-6),
    ("0", 0.0), ("0s", 0.0), ("250 ps", 2.5e-10), ("3sec", 3.0),
])
def test_parse_time(text, expected):
    assert parse_time(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["1", "1m", "-1us", "infs", "1 hour", "us"])
def test_parse_time_rejects(bad):
    with pytest.raises(InvalidArgument):
        parse_time(bad)


@pytest.mark.parametrize("text, expected", [
    ("8", 8), ("64M", 64 << 20), ("64MiB", 64 << 20), ("1G", 1 << 30), ("1K", 1024),
    ("1k", 1024), ("64MB", 64_000_000), ("1kB", 1000), ("1.5K", 1536), ("16B", 16),
    ("2GiB", 2 << 30), ("0", 0), ("1Mi", 1 << 20), ("64m", 64 << 20), ("1g", 1 << 30),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["1.3", "8Mb", "-1", "1X", "", "1.1K", "nan", "1KiBB", "1mB"])
def test_parse_size_rejects(bad):
    with pytest.raises(InvalidArgument):
        parse_size(bad)


def test_parse_size_range():
    r = parse_size_range("8:64M")
    assert r[0] == 8 and r[-1] == 64 << 20 and len(r) == 24
    assert all(b == 2 * a for a, b in zip(r, r[1:]))
    assert parse_size_range("8:1G:4") == [8 * 4 ** i for i in range(14)]
    assert parse_size_range("1K,4K,1M") == [1024, 4096, 1 << 20]
    assert parse_size_range("1M") == [1 << 20]
    assert parse_size_range("8:8") == [8]
    assert parse_size_range("3:20") == [3, 6, 12]      # end included only when reached


@pytest.mark.parametrize("bad", ["64M:8", "0:1M", "8:1M:1", "8:1M:x", "8:1M:2:3", "1K,,2K",
                                 "", "a:b"])
def test_parse_size_range_rejects(bad):
    with pytest.raises(InvalidArgument):
        parse_size_range(bad)


def test_format():
    assert format_bytes(64 << 20) == "64MiB"
    assert format_bytes(8) == "8B"
    assert format_bytes(1536) == "1.5KiB"
    assert format_bytes(64e6, binary=False) == "64MB"
    assert format_bandwidth(12.5e9) == "12.5GB/s"
    assert format_bandwidth(12.5e9, bits=True) == "100Gbps"
    assert format_time(1e-6) == "1us"
    assert format_time(2.5e-3) == "2.5ms"
    assert format_time(0) == "0s"
    assert format_time(3.0) == "3s"


@given(st.floats(min_value=1e-3, max_value=1e16, allow_nan=False, allow_infinity=False))
def test_bandwidth_round_trip(x):
    assert parse_bandwidth(format_bandwidth(x, digits=12)) == pytest.approx(x, rel=1e-9)
    assert parse_bandwidth(format_bandwidth(x, bits=True, digits=12)) == pytest.approx(x, rel=1e-9)


@given(st.floats(min_value=1e-12, max_value=1e4, allow_nan=False, allow_infinity=False))
def test_time_round_trip(x):
    assert parse_time(format_time(x, digits=12)) == pytest.approx(x, rel=1e-9)


@given(st.integers(min_value=0, max_value=1 << 50))
def test_size_round_trip(n):
    # exact for every power-of-two multiple the formatter prints without decimals
    text = format_bytes(n, digits=20)
    assert parse_size(text) == n


@given(st.integers(min_value=1, max_value=1 << 20), st.integers(min_value=0, max_value=20),
       st.integers(min_value=2, max_value=8))
def test_size_range_property(lo, span, factor):
    hi = lo * factor ** span
    r = parse_size_range(f"{lo}:{hi}:{factor}")
    assert r[0] == lo and r[-1] == hi and len(r) == span + 1
    assert all(math.isclose(b / a, factor) for a, b in zip(r, r[1:]))
