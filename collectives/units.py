"""Human units in, SI base units out: bytes, seconds and bytes per second.

Everything inside the library is a float in SI base units. This module is the
one place where text such as ``"100Gbps"``, ``"1us"`` or ``"64M"`` becomes a
number, and where numbers become text again.

Conventions
-----------
Bandwidth (:func:`parse_bandwidth`) returns **bytes per second**:

- a lower-case ``b`` means bits, an upper-case ``B`` bytes: ``"100Gbps"``,
  ``"100Gb/s"`` and ``"100Gbit/s"`` are 12.5e9 B/s; ``"12.5GB/s"`` and
  ``"12.5GBps"`` are 12.5e9 B/s;
- prefixes ``k``/``K``, ``M``, ``G``, ``T``, ``P`` are decimal (powers of
  1000, as network line rates are quoted; lower-case ``m``, ``g``, ``t`` are
  accepted too, so ``"100gbps"`` works); ``Ki``, ``Mi``, ``Gi``, ``Ti`` are
  binary (``"1GiB/s"`` = 2**30 B/s);
- a bare number (``int``/``float``, or a string without unit) is taken as
  bytes per second only when it is a Python number; a string must carry a unit.

Time (:func:`parse_time`) returns **seconds**: ``ps``, ``ns``, ``us``,
``µs`` (either micro sign), ``ms``, ``s``. ``"0"`` is accepted (zero latency).

Sizes (:func:`parse_size`) return **bytes** (an ``int``). On the command line
message sizes follow nccl-tests and the OSU benchmarks: a bare prefix letter is
**binary**, so ``"64M"`` is 64 * 2**20 bytes and ``"1G"`` is 2**30 bytes;
``"64MiB"`` (or ``"64Mi"``) is the same. An explicit SI byte unit is decimal: ``"64MB"`` is
64e6 bytes and ``"1kB"`` is 1000 bytes. A bare number is bytes.

Size ranges (:func:`parse_size_range`) for sweeps: ``"8:64M"`` doubles from
8 B up to 64 MiB (both ends included), ``"8:1G:4"`` multiplies by 4 each step
(the end is included when the sequence lands on it), ``"1K,4K,1M"`` is an
explicit list, and a single size is a one-element list.

Every parse error raises :class:`collectives.errors.InvalidArgument` (a
``ValueError``) that quotes the text and lists what is accepted.
"""

from __future__ import annotations

import math
import re
from numbers import Real

from .errors import InvalidArgument

__all__ = [
    "parse_bandwidth", "parse_time", "parse_size", "parse_size_range",
    "format_bytes", "format_bandwidth", "format_time",
    "KiB", "MiB", "GiB", "TiB",
]

KiB = 1024
MiB = 1024 ** 2
GiB = 1024 ** 3
TiB = 1024 ** 4

_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
# bandwidths only: "100gbps", "10mbps" as network gear writes them
_DECIMAL_LOWER = {"m": 1e6, "g": 1e9, "t": 1e12}
_BINARY = {"Ki": 2.0 ** 10, "Mi": 2.0 ** 20, "Gi": 2.0 ** 30, "Ti": 2.0 ** 40, "Pi": 2.0 ** 50,
           "KI": 2.0 ** 10, "MI": 2.0 ** 20, "GI": 2.0 ** 30, "TI": 2.0 ** 40}

_NUMBER = r"(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf(?:inity)?|nan)"

_BW_RE = re.compile(
    r"^\s*" + _NUMBER + r"\s*(?P<prefix>Ki|Mi|Gi|Ti|Pi|[kKMGTPmgt]?)"
    r"(?P<unit>bps|b/s|bit/s|bits/s|Bps|B/s|byte/s|bytes/s)\s*$")
_TIME_RE = re.compile(r"^\s*" + _NUMBER + r"\s*(?P<unit>ps|ns|us|µs|μs|ms|sec|s)?\s*$")
_SIZE_RE = re.compile(r"^\s*" + _NUMBER + r"\s*(?P<prefix>Ki|Mi|Gi|Ti|[kKMGTPmgt]?)(?P<unit>iB|B|b)?\s*$")

_TIME_UNITS = {"ps": 1e-12, "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3,
               "s": 1.0, "sec": 1.0}

_BW_HELP = ('a bandwidth such as "100Gbps", "400Gb/s", "12.5GB/s", "1.5TB/s" or "10GiB/s" '
            "(b = bits, B = bytes; k/M/G/T decimal, Ki/Mi/Gi binary)")
_TIME_HELP = 'a time such as "1us", "1µs", "500ns", "2ms" or "1.5s"'
_SIZE_HELP = ('a size in bytes such as "8", "64K", "64M", "1G" (binary: K=1024), '
              '"64MiB" (binary) or "64MB" (decimal)')
_RANGE_HELP = ('a size range such as "8:64M" (doubling, both ends included), "8:1G:4" '
               '(factor 4) or a list "1K,4K,1M"')


def _check_number(value, what, *, allow_zero=True):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidArgument(f"{what} must be a number or a string with a unit, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidArgument(f"{what} must be finite, got {value!r}")
    if v < 0 or (v == 0 and not allow_zero):
        raise InvalidArgument(f"{what} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def parse_bandwidth(text, *, name="bandwidth") -> float:
    """Return a bandwidth in bytes per second.

    Parameters
    ----------
    text : str or float
        ``"100Gbps"``, ``"12.5GB/s"``, ... (see the module docstring), or a
        number already in bytes per second.
    name : str
        What the value is, for error messages (``"link_bandwidth"``).

    Raises
    ------
    InvalidArgument
        Unknown unit, missing unit, or a value that is not finite and > 0.
    """
    if not isinstance(text, str):
        return _check_number(text, name, allow_zero=False)
    m = _BW_RE.match(text)
    if not m:
        raise InvalidArgument(f"cannot read {name} {text!r}: expected {_BW_HELP}")
    num = float(m["num"])
    prefix = m["prefix"]
    scale = _BINARY[prefix] if prefix in _BINARY else _DECIMAL.get(prefix) or _DECIMAL_LOWER[prefix]
    unit = m["unit"]
    bits = unit.startswith("b") and unit not in ("byte/s", "bytes/s")
    value = num * scale / (8.0 if bits else 1.0)
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgument(f"{name} {text!r} must be finite and > 0")
    return value


def parse_time(text, *, name="time") -> float:
    """Return a time in seconds.

    Parameters
    ----------
    text : str or float
        ``"1us"``, ``"500ns"``, ``"2ms"``, ``"1.5s"``, ``"1µs"``; ``"0"`` is
        zero; other strings need a unit. A number is taken as seconds.
    name : str
        What the value is, for error messages.

    Raises
    ------
    InvalidArgument
        Unknown or missing unit, or a value that is negative or not finite.
    """
    if not isinstance(text, str):
        return _check_number(text, name)
    m = _TIME_RE.match(text)
    if not m:
        raise InvalidArgument(f"cannot read {name} {text!r}: expected {_TIME_HELP}")
    num = float(m["num"])
    unit = m["unit"]
    if unit is None:
        if num != 0:
            raise InvalidArgument(f"{name} {text!r} has no unit: expected {_TIME_HELP}")
        unit = "s"
    value = num * _TIME_UNITS[unit]
    if not math.isfinite(value) or value < 0:
        raise InvalidArgument(f"{name} {text!r} must be finite and >= 0")
    return value


def parse_size(text, *, name="size") -> int:
    """Return a size in bytes (an ``int``).

    Bare prefixes are binary as in nccl-tests and OSU (``"64M"`` = 64 MiB),
    ``KiB``/``MiB``/``GiB`` are binary, ``kB``/``MB``/``GB`` are decimal.

    Raises
    ------
    InvalidArgument
        Unknown unit, bits (``"8Mb"``), a negative, non-finite or fractional
        byte count.
    """
    if not isinstance(text, str):
        v = _check_number(text, name)
        if v != int(v):
            raise InvalidArgument(f"{name} must be a whole number of bytes, got {text!r}")
        return int(v)
    m = _SIZE_RE.match(text)
    if not m:
        raise InvalidArgument(f"cannot read {name} {text!r}: expected {_SIZE_HELP}")
    num = float(m["num"])
    prefix, unit = m["prefix"], m["unit"]
    if unit == "b":
        raise InvalidArgument(f"{name} {text!r} is in bits; sizes are bytes: expected {_SIZE_HELP}")
    if prefix in ("m", "g", "t") and unit:
        raise InvalidArgument(f"cannot read {name} {text!r}: expected {_SIZE_HELP}")
    if unit == "iB" and prefix not in ("K", "M", "G", "T", "P"):
        raise InvalidArgument(f"cannot read {name} {text!r}: expected {_SIZE_HELP}")
    if prefix in _BINARY:
        if unit not in ("B", None):
            raise InvalidArgument(f"cannot read {name} {text!r}: expected {_SIZE_HELP}")
        scale = _BINARY[prefix]
    elif unit == "iB":
        scale = _BINARY[prefix + "i"]
    elif unit == "B" and prefix:
        scale = _DECIMAL[prefix]            # SI: 1MB = 1e6 bytes
    elif prefix:
        scale = 1024.0 ** " KMGTP".index(prefix.upper())   # nccl-tests / OSU: 1M = 2**20
    else:
        scale = 1.0
    if re.fullmatch(r"\+?\d+", m["num"]) and float(scale).is_integer():
        return int(m["num"]) * int(scale)          # exact, even beyond 2**53
    value = num * scale
    if not math.isfinite(value) or value < 0:
        raise InvalidArgument(f"{name} {text!r} must be finite and >= 0")
    if value != math.floor(value):
        raise InvalidArgument(f"{name} {text!r} is not a whole number of bytes ({value!r})")
    return int(value)


def parse_size_range(text, *, name="sizes") -> list:
    """Return the list of message sizes (bytes) a sweep should run.

    ``"8:64M"`` doubles from 8 to 64 MiB, both included; ``"8:1G:4"``
    multiplies by 4 (the end is included when reached exactly);
    ``"1K,4K,1M"`` is an explicit list (kept in the given order); one size
    gives a one-element list.

    Raises
    ------
    InvalidArgument
        A malformed size, start > end, a start of 0 in a geometric range, or
        a factor that is not an integer >= 2.
    """
    if isinstance(text, (list, tuple)):
        return [parse_size(t, name=name) for t in text]
    if not isinstance(text, str):
        return [parse_size(text, name=name)]
    s = text.strip()
    if not s:
        raise InvalidArgument(f"empty {name}: expected {_RANGE_HELP}")
    if "," in s:
        parts = [p for p in s.split(",")]
        if any(not p.strip() for p in parts):
            raise InvalidArgument(f"cannot read {name} {text!r}: empty item; expected {_RANGE_HELP}")
        return [parse_size(p, name=name) for p in parts]
    if ":" not in s:
        return [parse_size(s, name=name)]
    parts = s.split(":")
    if len(parts) not in (2, 3):
        raise InvalidArgument(f"cannot read {name} {text!r}: expected {_RANGE_HELP}")
    lo = parse_size(parts[0], name=name)
    hi = parse_size(parts[1], name=name)
    factor = 2
    if len(parts) == 3:
        try:
            factor = int(parts[2].strip())
        except ValueError:
            raise InvalidArgument(f"{name} {text!r}: the factor {parts[2]!r} must be an integer >= 2") from None
        if factor < 2:
            raise InvalidArgument(f"{name} {text!r}: the factor must be an integer >= 2, got {factor}")
    if lo <= 0:
        raise InvalidArgument(f"{name} {text!r}: a geometric range must start above 0 bytes")
    if lo > hi:
        raise InvalidArgument(f"{name} {text!r}: start {lo} is larger than end {hi}")
    out = []
    v = lo
    while v <= hi:
        out.append(v)
        v *= factor
    return out


def _trim(x: float, digits: int) -> str:
    s = f"{x:.{digits}g}"
    if "e" in s:
        s = f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return s


def format_bytes(n, *, binary=True, digits=4) -> str:
    """``65536 -> "64KiB"``; ``binary=False`` uses decimal ``kB``/``MB``/``GB``.

    Exact multiples print without decimals so that the text parses back
    to the same number with :func:`parse_size`.
    """
    n = float(n)
    base = 1024.0 if binary else 1000.0
    units = (["B", "KiB", "MiB", "GiB", "TiB", "PiB"] if binary
             else ["B", "kB", "MB", "GB", "TB", "PB"])
    i = 0
    while abs(n) >= base and i < len(units) - 1:
        n /= base
        i += 1
    return f"{_trim(n, digits)}{units[i]}"


def format_bandwidth(bps, *, bits=False, digits=4) -> str:
    """Bytes per second to text: ``12.5e9 -> "12.5GB/s"``, or ``"100Gbps"`` with ``bits=True``.

    A bandwidth that is not finite (0 bytes over 0 s is ``inf``) prints as ``"-"``.
    """
    v = float(bps) * (8.0 if bits else 1.0)
    if not math.isfinite(v):
        return "-"
    units = ["", "k", "M", "G", "T", "P"]
    i = 0
    while abs(v) >= 1000.0 and i < len(units) - 1:
        v /= 1000.0
        i += 1
    return f"{_trim(v, digits)}{units[i]}{'bps' if bits else 'B/s'}"


def format_time(seconds, *, digits=4) -> str:
    """Seconds to text: ``1e-6 -> "1us"``, ``0.0025 -> "2.5ms"``, ``0 -> "0s"``; ``inf``/``nan`` -> ``"-"``."""
    s = float(seconds)
    if not math.isfinite(s):
        return "-"
    if s == 0:
        return f"{s:g}s"
    a = abs(s)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if a >= scale or unit == "ns":
            return f"{_trim(s / scale, digits)}{unit}"
    return f"{s:g}s"  # pragma: no cover
