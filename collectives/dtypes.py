"""Element types and reduction ops: numpy dtypes <-> the C kernels' codes <-> names.

The codes are the values of ``cl_dtype`` and ``cl_op`` in ``csrc/reduce.h``, read
from the header when the core is built (``collectives._constants``); the executor
and the kernels receive them as plain integers.

bfloat16 arrays come from ml_dtypes (a base dependency: numpy has no bfloat16,
and ml_dtypes' type is the one JAX uses and torch tensors can be viewed as).
It is imported on first need, so the rest of this module works without it.
"""

from __future__ import annotations

import numpy as np

from . import _constants as _c
from .errors import InvalidArgument, InvalidType

#: dtype name -> cl_dtype code (csrc/reduce.h, through the compiled _constants)
DTYPE_CODES = dict(_c.DTYPE_CODES)
DTYPE_NAMES = {code: name for name, code in DTYPE_CODES.items()}

#: the dtypes every collective and kernel accepts, by name
SUPPORTED_DTYPES = list(DTYPE_CODES)
FLOATING_DTYPES = ("float16", "bfloat16", "float32", "float64")

#: ops the C kernels implement (cl_op codes); "avg" is "sum" and then one division
KERNEL_OPS = dict(_c.KERNEL_OPS)
OP_NAMES = {code: name for name, code in KERNEL_OPS.items()}
#: ops the collectives accept
OPS = ("sum", "prod", "min", "max", "avg")

_ACCEPTED = ", ".join(SUPPORTED_DTYPES)

# (kind, itemsize) -> name for the native-byte-order numpy dtypes
_BY_KIND = {
    ("i", 1): "int8", ("i", 2): "int16", ("i", 4): "int32", ("i", 8): "int64",
    ("u", 1): "uint8", ("u", 2): "uint16", ("u", 4): "uint32", ("u", 8): "uint64",
    ("f", 2): "float16", ("f", 4): "float32", ("f", 8): "float64",
}

_bfloat16 = None


def bfloat16_dtype() -> np.dtype:
    """numpy dtype of ml_dtypes.bfloat16 (imports ml_dtypes on first call)."""
    global _bfloat16
    if _bfloat16 is None:
        try:
            import ml_dtypes
        except ImportError:  # pragma: no cover - ml_dtypes is a declared dependency
            raise InvalidType(
                "bfloat16 needs the ml_dtypes package (a dependency of collectives): "
                "pip install ml_dtypes") from None
        _bfloat16 = np.dtype(ml_dtypes.bfloat16)
    return _bfloat16


def _name_of(dt: np.dtype):
    """Name in DTYPE_CODES of a numpy dtype, or None."""
    if dt.kind in "iuf":
        if not dt.isnative:
            return None
        return _BY_KIND.get((dt.kind, dt.itemsize))
    # ml_dtypes' bfloat16 has kind "V"; any dtype called bfloat16 of 2 bytes has its layout
    if dt.name == "bfloat16" and dt.itemsize == 2:
        return "bfloat16"
    return None


def normalize_dtype(dtype, name: str = "dtype") -> np.dtype:
    """The numpy dtype for a user's dtype argument, checked to be supported.

    Accepts a numpy dtype or scalar type, a name ("float32", "bfloat16", "f4"...)
    or ml_dtypes.bfloat16. Raises InvalidType naming ``name`` otherwise.
    """
    if isinstance(dtype, str) and dtype == "bfloat16":
        return bfloat16_dtype()
    if isinstance(dtype, np.dtype):
        dt = dtype
    else:
        try:
            dt = np.dtype(dtype)
        except (TypeError, ValueError):
            raise InvalidType(f"{name}: {dtype!r} is not a dtype; accepted: {_ACCEPTED}") from None
    key = _name_of(dt)
    if key is None:
        why = " (non-native byte order; convert with .astype(x.dtype.newbyteorder('=')))" if not dt.isnative else ""
        raise InvalidType(f"{name} has dtype {dt}{why}, which is not supported; accepted: {_ACCEPTED}")
    return dt


def dtype_code(dtype, name: str = "dtype") -> int:
    """The cl_dtype code (csrc/reduce.h) of a dtype; InvalidType if unsupported."""
    return DTYPE_CODES[dtype_name_of(dtype, name)]


def dtype_name_of(dtype, name: str = "dtype") -> str:
    """The canonical name ("float32", "bfloat16"...) of a supported dtype."""
    if isinstance(dtype, np.dtype):
        key = _name_of(dtype)
        if key is not None:
            return key
    return _name_of(normalize_dtype(dtype, name))


def dtype_name(code: int) -> str:
    """The name of a cl_dtype code."""
    try:
        return DTYPE_NAMES[int(code)]
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument(f"unknown dtype code {code!r}; codes are 0 to {len(DTYPE_NAMES) - 1}") from None


def numpy_dtype(code_or_name) -> np.dtype:
    """The numpy dtype for a cl_dtype code or a name."""
    name = dtype_name(code_or_name) if isinstance(code_or_name, (int, np.integer)) else code_or_name
    if name == "bfloat16":
        return bfloat16_dtype()
    if name not in DTYPE_CODES:
        raise InvalidType(f"unknown dtype {name!r}; accepted: {_ACCEPTED}")
    return np.dtype(name)


def is_floating(dtype) -> bool:
    """True for float16, bfloat16, float32 and float64."""
    return dtype_name_of(dtype) in FLOATING_DTYPES


def normalize_op(op, name: str = "op", allow_avg: bool = True) -> str:
    """The op name, checked: one of OPS (or of KERNEL_OPS if not allow_avg)."""
    accepted = OPS if allow_avg else tuple(KERNEL_OPS)
    if not isinstance(op, str):
        raise InvalidType(f"{name} must be a string, one of {', '.join(accepted)}; got {type(op).__name__}")
    if op not in accepted:
        hint = ""
        if op == "avg" and not allow_avg:
            hint = " ('avg' is not a kernel op: reduce with 'sum', then divide_by(buf, count))"
        raise InvalidArgument(f"{name} {op!r} is not supported; accepted: {', '.join(accepted)}{hint}")
    return op


def op_code(op, name: str = "op") -> int:
    """The cl_op code of a kernel op ("sum", "prod", "min", "max")."""
    return KERNEL_OPS[normalize_op(op, name, allow_avg=False)]


def op_name(code: int) -> str:
    """The name of a cl_op code."""
    try:
        return OP_NAMES[int(code)]
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument(f"unknown op code {code!r}; codes are 0 to {len(OP_NAMES) - 1}") from None


__all__ = [
    "DTYPE_CODES", "DTYPE_NAMES", "SUPPORTED_DTYPES", "FLOATING_DTYPES", "KERNEL_OPS", "OP_NAMES",
    "OPS", "bfloat16_dtype", "normalize_dtype", "dtype_code", "dtype_name_of", "dtype_name",
    "numpy_dtype", "is_floating", "normalize_op", "op_code", "op_name",
]
