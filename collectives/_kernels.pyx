# cython: language_level=3
"""Element-wise reduction kernels: ``dst = dst op src`` in place, without copies.

Thin wrapper over csrc/reduce.c. Everything is checked before memory is touched;
the C call runs without the GIL.

- ops: "sum", "prod", "min", "max". "avg" is not a kernel op: reduce with
  "sum", then ``divide_by(buf, count)`` (one division, correctly rounded).
- dtypes: int8..int64, uint8..uint64 (wrap around on overflow), float16,
  bfloat16 (ml_dtypes), float32, float64. float16/bfloat16 are computed in
  float32 and rounded once to nearest even.
- NaN: sum/prod keep dst's NaN, else src's; min/max return NaN if either is
  NaN (dst's first), ties (-0.0 against +0.0 too) keep dst, as np.minimum.
- ``kernel_isa()`` names the instruction set chosen at run time; the
  environment variable COLLECTIVES_KERNELS=portable|avx2|avx512 caps it.
"""

from libc.stdint cimport int64_t, uintptr_t

cimport numpy as cnp

from collectives.libreduce cimport (CL_NUM_ISAS, cl_divide, cl_divide_isa, cl_dtype_size,
                                    cl_isa_name, cl_isa_supported, cl_kernel_isa, cl_kernel_isa_level,
                                    cl_reduce, cl_reduce_isa)

import numpy as np

from . import dtypes as _dt
from .errors import InvalidArgument, InvalidType

cnp.import_array()

# Reading an array's data pointer and flags through numpy's C API saves
# microseconds per call against a.flags / a.__array_interface__.
cdef int _LAYOUT_OK = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED
cdef int _LAYOUT_OK_WRITABLE = _LAYOUT_OK | cnp.NPY_ARRAY_WRITEABLE

cdef dict _CODES = {}   # numpy dtype -> cl_dtype code, filled on first sight
cdef dict _OPS = dict(_dt.KERNEL_OPS)

_ACCEPTED_OBJECTS = "a numpy array or an object with the buffer protocol (bytearray, memoryview, array.array...)"


def _as_array(obj, str name):
    """A numpy view of obj (never a copy)."""
    if isinstance(obj, np.ndarray):
        return obj
    if hasattr(obj, "__dlpack__") and not isinstance(obj, (bytes, bytearray, memoryview)):
        try:
            return np.from_dlpack(obj)
        except (TypeError, ValueError, RuntimeError, BufferError) as exc:
            raise InvalidType(f"{name}: its DLPack export cannot be viewed as a CPU array ({exc})") from None
    try:
        mv = memoryview(obj)
    except TypeError:
        raise InvalidType(f"{name} must be {_ACCEPTED_OBJECTS}; got {type(obj).__name__}") from None
    try:
        return np.asarray(mv)
    except (TypeError, ValueError) as exc:
        raise InvalidType(f"{name}: numpy cannot read its buffer format {mv.format!r} ({exc})") from None


cdef inline uintptr_t _address(a):
    return <uintptr_t>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef int _code(a, str name) except -1:
    dt = a.dtype
    c = _CODES.get(dt)
    if c is None:
        c = _dt.dtype_code(dt, name)   # raises InvalidType for an unsupported dtype
        _CODES[dt] = c
    return c


cdef int _check_layout(a, str name, bint writable) except -1:
    cdef int flags = cnp.PyArray_FLAGS(<cnp.ndarray>a)
    cdef int need = _LAYOUT_OK_WRITABLE if writable else _LAYOUT_OK
    if flags & need == need:
        return 0
    if not a.flags.c_contiguous:
        raise InvalidArgument(
            f"{name} is not C-contiguous (shape {a.shape}, strides {a.strides}); the kernels need "
            f"contiguous memory: pass np.ascontiguousarray({name})"
            + (" and copy the result back" if writable else ""))
    if writable and not a.flags.writeable:
        raise InvalidArgument(f"{name} is read-only, but the result is written into it; pass a writable array")
    if a.size and not a.flags.aligned:
        raise InvalidArgument(
            f"{name} is misaligned: its address is not a multiple of its item size {a.dtype.itemsize}; "
            "copy it into a fresh array")
    return 0


def _prepare(dst, src, op):
    """Validate everything; return (dst array, src array, n, dtype code, op code)."""
    opc = _OPS.get(op) if isinstance(op, str) else None
    if opc is None:
        _dt.op_code(op, "op")   # raises with the right message
    d = _as_array(dst, "dst")
    s = _as_array(src, "src")
    cdef int code = _code(d, "dst")
    if _code(s, "src") != code:
        raise InvalidType(
            f"src has dtype {s.dtype} but dst has dtype {d.dtype}; they must be the same "
            f"(convert one with .astype())")
    if d.size != s.size:
        raise InvalidArgument(
            f"src has {s.size} elements but dst has {d.size}; they must have the same number of elements")
    _check_layout(d, "dst", True)
    _check_layout(s, "src", False)
    cdef uintptr_t da = _address(d), sa = _address(s)
    cdef uintptr_t nbytes = <uintptr_t>d.nbytes
    if d.size and da != sa and da < sa + nbytes and sa < da + nbytes:
        raise InvalidArgument(
            "dst and src overlap partially; they must be the same memory or not overlap at all "
            "(copy src first)")
    return d, s, d.size, code, opc


def reduce_into(dst, src, op="sum"):
    """dst[i] = dst[i] op src[i] for every element, in place; returns dst.

    dst and src: numpy arrays (ml_dtypes.bfloat16 included) or buffers of the
    same supported dtype and number of elements, C-contiguous; dst writable.
    op: "sum", "prod", "min" or "max" (for "avg" use "sum" then divide_by).
    Raises InvalidArgument (ValueError) or InvalidType (TypeError) before
    writing anything.
    """
    d, s, n, code, opc = _prepare(dst, src, op)
    cdef void *dp = <void *>_address(d)
    cdef const void *sp = <const void *>_address(s)
    cdef int64_t cn = n
    cdef int cd = code, co = opc, rc
    if cn:
        with nogil:
            rc = cl_reduce(dp, sp, cn, cd, co)
        if rc != 0:  # pragma: no cover - the arguments were checked above
            raise InvalidArgument(f"the kernel refused dtype code {cd} / op code {co}")
    return dst


def _divisor(divisor):
    if isinstance(divisor, (bool, np.bool_)) or not isinstance(divisor, (int, float, np.integer, np.floating)):
        raise InvalidType(f"divisor must be a real number; got {type(divisor).__name__}")
    cdef double v = float(divisor)
    if v == 0.0 or v != v or v in (float("inf"), float("-inf")):
        raise InvalidArgument(f"divisor must be finite and non-zero; got {divisor!r}")
    return v


def _prepare_divide(buf, divisor):
    b = _as_array(buf, "buf")
    cdef int code = _code(b, "buf")
    if _dt.DTYPE_NAMES[code] not in _dt.FLOATING_DTYPES:
        raise InvalidType(
            f"buf has dtype {b.dtype}; divide_by works on floating dtypes only: "
            f"{', '.join(_dt.FLOATING_DTYPES)}")
    _check_layout(b, "buf", True)
    return b, code, _divisor(divisor)


def divide_by(buf, divisor):
    """buf[i] = buf[i] / divisor in place (the second half of "avg"); returns buf.

    Floating dtypes only. Each result is correctly rounded (float16/bfloat16:
    computed in float32 or float64 and rounded once); NaN elements stay as they are.
    """
    b, code, v = _prepare_divide(buf, divisor)
    cdef void *bp = <void *>_address(b)
    cdef int64_t cn = b.size
    cdef int cd = code, rc
    cdef double cv = v
    if cn:
        with nogil:
            rc = cl_divide(bp, cn, cd, cv)
        if rc != 0:  # pragma: no cover
            raise InvalidType(f"the kernel refused dtype code {cd}")
    return buf


def kernel_isa():
    """Name of the instruction set the kernels use on this CPU, e.g. "avx2+f16c" or "portable"."""
    return cl_kernel_isa().decode()


def kernel_isa_level():
    """The level (0 portable, 1 avx2, 2 avx512) that reduce_into uses."""
    return cl_kernel_isa_level()


def isa_levels():
    """{level: name} of every level this CPU can run (0, portable, always)."""
    return {lv: cl_isa_name(lv).decode() for lv in range(CL_NUM_ISAS) if cl_isa_supported(lv)}


def dtype_code(dtype):
    """The cl_dtype code (csrc/reduce.h) of a numpy dtype, ml_dtypes.bfloat16 or a name."""
    return _dt.dtype_code(dtype)


def dtype_size(int code):
    """Bytes per element of a cl_dtype code, 0 if unknown (from the C side)."""
    return cl_dtype_size(code)


def _check_level(int level):
    if level < 0 or level >= CL_NUM_ISAS or not cl_isa_supported(level):
        raise InvalidArgument(f"instruction-set level {level} is not available here; available: {isa_levels()}")


def _reduce_into_isa(dst, src, op, int level):
    """reduce_into at a given instruction-set level (tests compare the levels)."""
    _check_level(level)
    d, s, n, code, opc = _prepare(dst, src, op)
    cdef void *dp = <void *>_address(d)
    cdef const void *sp = <const void *>_address(s)
    cdef int64_t cn = n
    cdef int cd = code, co = opc, lv = level, rc = 0
    if cn:
        with nogil:
            rc = cl_reduce_isa(dp, sp, cn, cd, co, lv)
    if rc != 0:  # pragma: no cover
        raise InvalidArgument(f"cl_reduce_isa returned {rc}")
    return dst


def _divide_by_isa(buf, divisor, int level):
    """divide_by at a given instruction-set level."""
    _check_level(level)
    b, code, v = _prepare_divide(buf, divisor)
    cdef void *bp = <void *>_address(b)
    cdef int64_t cn = b.size
    cdef int cd = code, lv = level, rc = 0
    cdef double cv = v
    if cn:
        with nogil:
            rc = cl_divide_isa(bp, cn, cd, cv, lv)
    if rc != 0:  # pragma: no cover
        raise InvalidArgument(f"cl_divide_isa returned {rc}")
    return buf
