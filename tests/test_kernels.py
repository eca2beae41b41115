"""The reduction kernels (csrc/reduce*.c through collectives._kernels), without MPI.

- every dtype x op against a numpy / ml_dtypes reference, bit for bit, on random
  bit patterns (NaN with every payload, Inf, -0.0, subnormals, overflow) and on
  lengths around the vector widths, at aligned and unaligned addresses;
- every instruction-set level this CPU has against the portable one, bit for bit;
- hypothesis properties;
- bad input: the right exception, a message naming the argument, dst unchanged.

Element rules (reduce_generic.h): integers wrap; float sum/prod keep dst's NaN,
else src's NaN, else the IEEE result; min/max: (d <= s or isnan(d)) ? d : s (and
>= for max): NaN wins, dst first, ties (also -0.0 vs +0.0) keep dst; float16 and
bfloat16 are computed in float32 and rounded once to nearest even.
"""

from __future__ import annotations

import array
import os
import subprocess
import sys
import threading

import ml_dtypes
import numpy as np
import pytest

from collectives import _kernels as K
from collectives import dtypes as D
from collectives.errors import CollectivesError, InvalidArgument, InvalidType

BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = {name: (BF16 if name == "bfloat16" else np.dtype(name)) for name in D.SUPPORTED_DTYPES}
FLOATS = ("float16", "bfloat16", "float32", "float64")
OPS = ("sum", "prod", "min", "max")
LENGTHS = (0, 1, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4097)
LEVELS = K.isa_levels()
UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def bits(a):
    return np.ascontiguousarray(a).view(UINT[a.dtype.itemsize])


# ---- data ------------------------------------------------------------------

def random_bits(dtype, n, rng):
    """Uniformly random bit patterns: every class of value, NaN payloads included."""
    u = UINT[dtype.itemsize]
    return rng.integers(0, np.iinfo(u).max, n, dtype=u, endpoint=True).view(dtype)


def specials(dtype):
    """Values that break naive kernels, as an array of dtype."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.array([0, 1, 2, info.max, info.min, info.max - 1, info.min + 1, info.max // 2], dtype=dtype)
    finfo = ml_dtypes.finfo(dtype) if dtype == BF16 else np.finfo(dtype)
    tiny = float(finfo.smallest_subnormal)
    vals = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, -np.nan, float(finfo.max), -float(finfo.max),
            float(finfo.tiny), tiny, -tiny, 3 * tiny, float(finfo.eps), 1.0 + float(finfo.eps),
            0.5, 1.5, 2.5, 65504.0, 65520.0, 1e-5, 1e-8, 3.0e38]
    with np.errstate(over="ignore", invalid="ignore"):
        return np.array(vals, dtype=np.float64).astype(dtype)


def special_pairs(dtype):
    """Every special value against every special value: (dst, src)."""
    s = specials(dtype)
    return np.repeat(s, len(s)), np.tile(s, len(s))


def value_data(dtype, n, rng):
    """Ordinary values (not bit patterns) of dtype."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    scale = 100.0 if dtype.itemsize == 2 else 1e6
    return (rng.standard_normal(n) * scale).astype(np.float32).astype(dtype)


# ---- reference -------------------------------------------------------------

def reference(op, a, b):
    """The expected result of reduce_into(a, b, op), as a new array."""
    dt = a.dtype
    if dt.kind in "iu":
        with np.errstate(over="ignore"):
            return {"sum": np.add, "prod": np.multiply, "min": np.minimum, "max": np.maximum}[op](a, b)
    half = dt.itemsize == 2
    wa, wb = (a.astype(np.float32), b.astype(np.float32)) if half else (a, b)
    na, nb = np.isnan(wa), np.isnan(wb)
    if op in ("min", "max"):
        with np.errstate(invalid="ignore"):
            keep = ((wa <= wb) if op == "min" else (wa >= wb)) | na
        return np.where(keep, a, b)   # np.where copies elements: bits unchanged
    with np.errstate(all="ignore"):
        r = wa + wb if op == "sum" else wa * wb
        r = r.astype(dt) if half else r
    ua, ub, ur = bits(a), bits(b), bits(r)
    return np.where(na, ua, np.where(nb, ub, ur)).view(dt)


def check_equal(got, want, what=""):
    gb, wb = bits(got), bits(want)
    if not np.array_equal(gb, wb):
        i = int(np.flatnonzero(gb != wb)[0])
        raise AssertionError(f"{what}: first difference at {i} of {len(gb)}: got bits {int(gb[i]):#x} "
                             f"({got[i]!r}), want {int(wb[i]):#x} ({want[i]!r})")


def run(op, a, b, level=None):
    d = a.copy()
    if level is None:
        assert K.reduce_into(d, b, op) is d
    else:
        K._reduce_into_isa(d, b, op, level)
    return d


# ---- correctness against numpy ---------------------------------------------

@pytest.mark.parametrize("name", D.SUPPORTED_DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_against_reference(name, op):
    dt = DTYPES[name]
    rng = np.random.default_rng(hash((name, op)) & 0xFFFF)
    for n in LENGTHS:
        for maker in (random_bits, value_data):
            a, b = maker(dt, n + 1, rng), maker(dt, n + 1, rng)
            # offset 1 element: a start that is not vector aligned
            for off in (0, 1):
                x, y = a[off:off + n], b[off:off + n]
                check_equal(run(op, x, y), reference(op, x, y), f"{name} {op} n={n} off={off} {maker.__name__}")


@pytest.mark.parametrize("name", D.SUPPORTED_DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_special_values(name, op):
    dt = DTYPES[name]
    a, b = special_pairs(dt)
    check_equal(run(op, a, b), reference(op, a, b), f"{name} {op} specials")


def test_float_semantics_spelled_out():
    f16 = np.float16
    # overflow to Inf, Inf stays Inf, NaN stays NaN
    assert np.isposinf(run("sum", np.array([65504], f16), np.array([65504], f16)))[0]
    assert np.isposinf(run("prod", np.array([300], f16), np.array([300], f16)))[0]
    assert np.isnan(run("sum", np.array([np.inf], f16), np.array([-np.inf], f16)))[0]
    # float16 rounds once, to nearest even: 2048 + 1 is a tie -> 2048; 2048 + 3 -> 2052
    assert run("sum", np.array([2048, 2048], f16), np.array([1, 3], f16)).tolist() == [2048, 2052]
    # subnormals add exactly
    t = np.float16(2.0 ** -24)
    assert run("sum", np.array([t], f16), np.array([t], f16))[0] == np.float16(2.0 ** -23)
    # bfloat16: a NaN whose payload sits in the low bits stays NaN (the rounding trick would make it Inf)
    nan_low = np.array([0x7F81, 0xFF81, 0x7FFF], np.uint16).view(BF16)
    out = run("sum", nan_low, np.ones(3, BF16))
    check_equal(out, nan_low, "bf16 NaN payload")
    big = np.array([ml_dtypes.finfo(BF16).max], BF16)
    assert np.isposinf(run("sum", big, big).astype(np.float32))[0]
    # min/max: NaN wins (dst's first), ties keep dst
    nan1 = np.array([0x7E01], np.uint16).view(f16)
    nan2 = np.array([0x7E02], np.uint16).view(f16)
    assert bits(run("min", nan1, nan2))[0] == 0x7E01
    assert bits(run("max", np.array([1.0], f16), nan2))[0] == 0x7E02
    pz, nz = np.array([0.0], np.float32), np.array([-0.0], np.float32)
    assert bits(run("min", pz, nz))[0] == bits(pz)[0] and bits(run("min", nz, pz))[0] == bits(nz)[0]
    assert bits(run("max", pz, nz))[0] == bits(pz)[0]


@pytest.mark.parametrize("name", ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"])
def test_integers_wrap(name):
    dt = DTYPES[name]
    info = np.iinfo(dt)
    a = np.array([info.max, info.min, info.max], dt)
    b = np.array([1, -1 if info.min else 1, info.max], dt) if info.min else np.array([1, 1, info.max], dt)
    with np.errstate(over="ignore"):
        check_equal(run("sum", a, b), a + b, f"{name} sum wraps")
        check_equal(run("prod", a, b), a * b, f"{name} prod wraps")


def test_min_max_match_numpy_on_ordinary_values():
    rng = np.random.default_rng(5)
    for name in D.SUPPORTED_DTYPES:
        dt = DTYPES[name]
        a, b = value_data(dt, 999, rng), value_data(dt, 999, rng)
        if dt.kind not in "iu":
            a[::7] = np.nan
        check_equal(run("min", a, b), np.minimum(a, b), f"{name} min")
        check_equal(run("max", a, b), np.maximum(a, b), f"{name} max")


def test_same_buffer_for_dst_and_src():
    a = np.arange(100, dtype=np.float32)
    K.reduce_into(a, a, "sum")
    assert np.array_equal(a, 2 * np.arange(100, dtype=np.float32))


def test_shapes_need_only_the_same_count():
    a = np.ones((4, 5), np.float64)
    K.reduce_into(a, np.full(20, 2.0), "sum")
    assert np.all(a == 3.0)


def test_buffer_protocol_objects():
    dst = bytearray([1, 2, 250])
    K.reduce_into(dst, b"\x01\x01\x10", "sum")          # uint8, wraps
    assert list(dst) == [2, 3, 10]
    f = array.array("f", [1.0, 2.0])
    K.reduce_into(f, memoryview(array.array("f", [3.0, 4.0])), "prod")
    assert list(f) == [3.0, 8.0]
    q = array.array("q", [5, -5])
    K.reduce_into(memoryview(q), np.array([1, 1], np.int64), "max")
    assert list(q) == [5, 1]


def test_bfloat16_views_and_buffer_export():
    # ml_dtypes' bfloat16 has no PEP 3118 format: memoryview() refuses it, the ndarray path is used
    with pytest.raises((ValueError, TypeError, NotImplementedError)):
        memoryview(np.zeros(2, BF16))
    a = np.arange(40, dtype=np.float32).astype(BF16).reshape(5, 8)
    b = np.ones((5, 8), BF16)
    K.reduce_into(a[1:], b[1:], "sum")               # C-contiguous slice at an unaligned start
    assert np.array_equal(a[0].astype(np.float32), np.arange(8, dtype=np.float32))
    assert np.array_equal(a[1:].astype(np.float32).ravel(), np.arange(8, 40, dtype=np.float32) + 1)


def test_gil_released_threads_agree():
    rng = np.random.default_rng(3)
    a, b = random_bits(np.dtype(np.float16), 1 << 16, rng), random_bits(np.dtype(np.float16), 1 << 16, rng)
    want = reference("sum", a, b)
    outs = [a.copy() for _ in range(4)]
    ts = [threading.Thread(target=K.reduce_into, args=(o, b, "sum")) for o in outs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for o in outs:
        check_equal(o, want, "threaded")


# ---- divide_by (the second half of avg) --------------------------------------

def divide_reference(a, divisor):
    dt = a.dtype
    exact = float(np.float32(divisor)) == divisor
    with np.errstate(all="ignore"):
        if dt == np.float64:
            r = a / np.float64(divisor)
        elif exact:
            r = (a.astype(np.float32) / np.float32(divisor)).astype(dt)
        else:
            r = (a.astype(np.float64) / divisor).astype(dt)
    return np.where(np.isnan(a.astype(np.float32) if dt.itemsize == 2 else a), bits(a), bits(r)).view(dt)


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("divisor", [1, 2, 3, 7, 1000, 3.3, 1e-30, -5])
def test_divide_by(name, divisor):
    dt = DTYPES[name]
    rng = np.random.default_rng(11)
    for n in (0, 1, 17, 33, 1000):
        for maker in (random_bits, value_data):
            a = maker(dt, n + 1, rng)[1:]
            want = divide_reference(a, divisor)
            for level in LEVELS:
                d = a.copy()
                K._divide_by_isa(d, divisor, level)
                check_equal(d, want, f"{name} / {divisor} n={n} level={level}")
            d = a.copy()
            assert K.divide_by(d, divisor) is d
            check_equal(d, want, f"{name} / {divisor} n={n}")


def test_avg_is_sum_then_divide():
    ranks = [np.full(10, float(r), np.float32) for r in range(4)]
    acc = ranks[0].copy()
    for x in ranks[1:]:
        K.reduce_into(acc, x, "sum")
    K.divide_by(acc, len(ranks))
    assert np.all(acc == 1.5)


# ---- instruction-set levels: bitwise identical to portable --------------------

@pytest.mark.skipif(len(LEVELS) < 2, reason="this CPU has only the portable path")
@pytest.mark.parametrize("name", D.SUPPORTED_DTYPES)
def test_levels_bitwise_identical(name):
    dt = DTYPES[name]
    rng = np.random.default_rng(len(name))
    for op in OPS:
        for n in LENGTHS:
            a, b = random_bits(dt, n + 1, rng), random_bits(dt, n + 1, rng)
            sa, sb = special_pairs(dt)
            a = np.concatenate([a, sa[: n]]) if n else a
            b = np.concatenate([b, sb[: n]]) if n else b
            for off in (0, 1):
                x, y = a[off:off + len(a) - 1], b[off:off + len(b) - 1]
                base = run(op, x, y, 0)
                for level in LEVELS:
                    if level:
                        check_equal(run(op, x, y, level), base, f"{name} {op} n={len(x)} off={off} level={level}")


def test_levels_reported():
    assert 0 in LEVELS and LEVELS[0] == "portable"
    assert K.kernel_isa() == LEVELS[K.kernel_isa_level()]
    if os.environ.get("COLLECTIVES_KERNELS", "auto") == "auto":
        assert K.kernel_isa_level() == max(LEVELS)
    if "avx512" in "".join(LEVELS.values()):
        assert 1 in LEVELS


@pytest.mark.parametrize("value,expect", [("portable", 0), ("avx2", 1), ("auto", None)])
def test_environment_variable_caps_the_level(value, expect):
    env = dict(os.environ, COLLECTIVES_KERNELS=value)
    code = "from collectives import _kernels as K; print(K.kernel_isa_level(), K.kernel_isa())"
    # from outside the source tree, with the package this test imported (installed or built in place)
    import tempfile

    import collectives

    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(collectives.__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=tempfile.gettempdir())
    level = int(out.stdout.split()[0])
    want = max(LEVELS) if expect is None else min(expect, max(LEVELS))
    assert level == want, out.stdout


# ---- hypothesis ----------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(D.SUPPORTED_DTYPES), op=st.sampled_from(OPS), data=st.data())
def test_property_reference_and_levels(name, op, data):
    dt = DTYPES[name]
    u = UINT[dt.itemsize]
    n = data.draw(st.integers(0, 70), label="n")
    a = data.draw(hnp.arrays(u, n), label="a").view(dt)
    b = data.draw(hnp.arrays(u, n), label="b").view(dt)
    want = reference(op, a, b)
    check_equal(run(op, a, b), want, f"{name} {op}")
    for level in LEVELS:
        check_equal(run(op, a, b, level), want, f"{name} {op} level {level}")


@settings(max_examples=40, deadline=None)
@given(xs=hnp.arrays(np.float32, st.integers(0, 50), elements=st.floats(width=32, allow_nan=True)),
       op=st.sampled_from(OPS))
def test_property_identities(xs, op):
    # x op x: sum doubles, prod squares, min/max return x
    d = xs.copy()
    K.reduce_into(d, xs, op)
    check_equal(d, reference(op, xs, xs), op)
    if op in ("min", "max"):
        check_equal(d, xs, op)


# ---- bad input: right exception, argument named, dst unchanged -----------------

def _bad(fn, exc, words, dst):
    before = bytes(np.ascontiguousarray(dst).view(np.uint8)) if isinstance(dst, np.ndarray) else None
    with pytest.raises(exc) as info:
        fn()
    assert isinstance(info.value, CollectivesError)
    msg = str(info.value)
    for w in words:
        assert w in msg, (w, msg)
    if before is not None:
        assert bytes(np.ascontiguousarray(dst).view(np.uint8)) == before, "dst was modified"
    return msg


def test_bad_dtype_mismatch():
    d, s = np.ones(8, np.float32), np.ones(8, np.float64)
    _bad(lambda: K.reduce_into(d, s, "sum"), InvalidType, ["src", "dst", "float64", "float32"], d)
    assert issubclass(InvalidType, TypeError)


@pytest.mark.parametrize("dt", [np.complex64, np.bool_, np.float128 if hasattr(np, "float128") else np.complex128,
                                np.dtype(">f4"), "U3"])
def test_bad_unsupported_dtype(dt):
    d, s = np.zeros(4, dt), np.zeros(4, dt)
    _bad(lambda: K.reduce_into(d, s, "sum"), InvalidType, ["dst", "accepted", "bfloat16"], d)


def test_bad_lengths():
    d, s = np.ones(8, np.int32), np.ones(7, np.int32)
    _bad(lambda: K.reduce_into(d, s, "sum"), InvalidArgument, ["src", "dst", "7", "8"], d)
    assert issubclass(InvalidArgument, ValueError)


def test_bad_non_contiguous():
    base = np.ones(16, np.float32)
    _bad(lambda: K.reduce_into(base[::2], np.ones(8, np.float32), "sum"), InvalidArgument,
         ["dst", "contiguous"], base)
    d = np.ones(8, np.float32)
    _bad(lambda: K.reduce_into(d, base[::2], "sum"), InvalidArgument, ["src", "contiguous"], d)
    f = np.asfortranarray(np.ones((3, 4), np.float32))
    _bad(lambda: K.reduce_into(f, np.ones(12, np.float32), "sum"), InvalidArgument, ["dst"], f)


def test_bad_read_only():
    d = np.ones(8, np.float32)
    d.setflags(write=False)
    _bad(lambda: K.reduce_into(d, np.ones(8, np.float32), "sum"), InvalidArgument, ["dst", "read-only"], d)
    _bad(lambda: K.reduce_into(b"\x01\x02", b"\x01\x02", "sum"), InvalidArgument, ["dst", "read-only"], None)


@pytest.mark.parametrize("op,exc", [("mean", InvalidArgument), ("avg", InvalidArgument), ("SUM", InvalidArgument),
                                    (0, InvalidType), (None, InvalidType)])
def test_bad_op(op, exc):
    d = np.ones(8, np.float32)
    msg = _bad(lambda: K.reduce_into(d, np.ones(8, np.float32), op), exc, ["op", "sum", "max"], d)
    if op == "avg":
        assert "divide_by" in msg


def test_bad_objects():
    d = np.ones(3, np.float32)
    _bad(lambda: K.reduce_into([1.0, 2.0, 3.0], d, "sum"), InvalidType, ["dst", "buffer"], d)
    _bad(lambda: K.reduce_into(d, [1.0, 2.0, 3.0], "sum"), InvalidType, ["src", "buffer"], d)


def test_bad_overlap_and_alignment():
    buf = np.arange(10, dtype=np.float64)
    _bad(lambda: K.reduce_into(buf[1:9], buf[0:8], "sum"), InvalidArgument, ["overlap"], buf)
    raw = bytearray(4 * 9)
    mis = np.frombuffer(raw, dtype=np.float32, offset=1, count=8)
    _bad(lambda: K.reduce_into(np.ones(8, np.float32), mis, "sum"), InvalidArgument, ["src", "misaligned"], None)


def test_bad_divide():
    i = np.ones(4, np.int32)
    _bad(lambda: K.divide_by(i, 2), InvalidType, ["buf", "floating"], i)
    f = np.ones(4, np.float32)
    _bad(lambda: K.divide_by(f, 0), InvalidArgument, ["divisor"], f)
    _bad(lambda: K.divide_by(f, float("nan")), InvalidArgument, ["divisor"], f)
    _bad(lambda: K.divide_by(f, "2"), InvalidType, ["divisor"], f)
    _bad(lambda: K.divide_by(f, True), InvalidType, ["divisor"], f)
    f.setflags(write=False)
    _bad(lambda: K.divide_by(f, 2), InvalidArgument, ["buf", "read-only"], f)


def test_bad_isa_level():
    d = np.ones(4, np.float32)
    _bad(lambda: K._reduce_into_isa(d, d.copy(), "sum", 99), InvalidArgument, ["level"], d)


# ---- the dtype table -------------------------------------------------------------

def test_dtype_codes_match_the_c_enum():
    for name, code in D.DTYPE_CODES.items():
        assert K.dtype_code(DTYPES[name]) == code
        assert D.dtype_code(name) == code
        assert D.dtype_name(code) == name
        assert D.numpy_dtype(code) == DTYPES[name]
        assert K.dtype_size(code) == DTYPES[name].itemsize
    assert K.dtype_code(ml_dtypes.bfloat16) == 9
    assert D.dtype_code("f4") == 10 and D.dtype_code(np.intc) == 2 and D.dtype_code(np.dtype("<i8")) == 3
    assert D.is_floating(np.float16) and D.is_floating("bfloat16") and not D.is_floating(np.int8)
    assert [D.op_code(o) for o in OPS] == [0, 1, 2, 3] and D.op_name(3) == "max"
    assert D.normalize_op("avg") == "avg"
    with pytest.raises(InvalidType, match="accepted"):
        D.normalize_dtype("complex64")
    with pytest.raises(InvalidType, match="byte order"):
        D.dtype_code(np.dtype(">f8"))
    with pytest.raises(InvalidArgument):
        D.dtype_name(42)
