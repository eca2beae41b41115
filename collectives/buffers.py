"""Turning user buffers into numpy views without copies, and checking them.

Accepted: numpy arrays, CPU torch tensors (also bfloat16, through ml_dtypes),
anything else with DLPack, and anything with the buffer protocol. Every check
happens here, before any message is sent.
"""

from __future__ import annotations

import numpy as np

from .dtypes import normalize_dtype
from .errors import InvalidArgument, InvalidType


def _torch_view(x, name):
    if x.device.type != "cpu":
        raise InvalidArgument(
            f"{name} is a torch tensor on {x.device}; collectives works on CPU memory only "
            "for now: move it with .cpu() first")
    if not x.is_contiguous():
        raise InvalidArgument(
            f"{name} is a non-contiguous torch tensor; pass {name}.contiguous() instead")
    import torch

    t = x.detach()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    try:
        return t.numpy()
    except (TypeError, RuntimeError) as exc:
        raise InvalidType(f"{name}: torch dtype {t.dtype} is not supported ({exc})") from None


def as_array(x, name: str = "x", *, writable: bool = False) -> np.ndarray:
    """A numpy view of ``x`` (never a copy), checked for dtype, contiguity and alignment."""
    if type(x) is np.ndarray:
        # the common case, kept cheap: it runs on every call
        f = x.flags
        if f.c_contiguous and f.aligned and (f.writeable or not writable) and x.dtype in _KNOWN:
            return x
        a = x
    elif isinstance(x, np.ndarray):
        a = x
    elif type(x).__module__.split(".")[0] == "torch" and hasattr(x, "is_contiguous"):
        a = _torch_view(x, name)
    elif hasattr(x, "__dlpack__"):
        try:
            a = np.from_dlpack(x)
        except (TypeError, ValueError, RuntimeError, BufferError) as exc:
            raise InvalidType(f"{name}: its DLPack export cannot be viewed on the CPU ({exc})") from None
    else:
        try:
            a = np.asarray(memoryview(x))
        except TypeError:
            raise InvalidType(
                f"{name} must be a numpy array, a CPU torch tensor, a DLPack object or a buffer; "
                f"got {type(x).__name__}") from None
    if a.dtype.hasobject:
        raise InvalidType(f"{name} holds Python objects (dtype {a.dtype}); only numeric dtypes can be reduced or sent")
    normalize_dtype(a.dtype, name)
    _KNOWN.add(a.dtype)
    if not a.flags.c_contiguous:
        raise InvalidArgument(
            f"{name} is not C-contiguous (strides {a.strides}); pass np.ascontiguousarray({name})")
    if a.size and not a.flags.aligned:
        raise InvalidArgument(
            f"{name} is misaligned: its address is not a multiple of its item size "
            f"{a.dtype.itemsize}; copy it into a fresh array")
    if writable and not a.flags.writeable:
        raise InvalidArgument(f"{name} is read-only, but the result is written into it")
    return a


_KNOWN: set = set()


def address(a: np.ndarray) -> int:
    return int(a.ctypes.data) if a.size else 0
