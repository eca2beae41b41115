"""Numbers back to text in tables: a bandwidth or time that is not finite prints as "-"."""

import math
import os
import subprocess
import sys
import tempfile

import pytest

import collectives
from collectives.units import format_bandwidth, format_time


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_not_finite_prints_a_dash(value):
    assert format_bandwidth(value) == "-"
    assert format_bandwidth(value, bits=True) == "-"
    assert format_time(value) == "-"


def test_finite_values_unchanged():
    assert format_bandwidth(0) == "0B/s"
    assert format_bandwidth(12.5e9) == "12.5GB/s"
    assert format_time(0) == "0s"


def test_plan_of_zero_bytes_prints_no_infinite_bandwidth():
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(collectives.__file__)))
    r = subprocess.run([sys.executable, "-m", "collectives", "plan", "-t", "star:n=4", "-s", "0,8"],
                       capture_output=True, text=True, timeout=120, cwd=tempfile.gettempdir(),
                       env=dict(os.environ, PYTHONPATH=pkg_parent))
    assert r.returncode == 0, r.stderr
    assert "inf" not in r.stdout
    zero = [line for line in r.stdout.splitlines() if line.strip().startswith("0B")]
    assert zero and " - " in zero[0]
