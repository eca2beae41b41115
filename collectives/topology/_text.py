"""Text helpers shared by the topology readers (Slurm hostlists, spec strings)."""

from __future__ import annotations

from ..errors import TopologyError

__all__ = ["split_top_level"]


def split_top_level(text, *, what, brackets="()[]", max_depth=None) -> list:
    """Split ``text`` at the commas that stand outside every bracket.

    ``"node[01-04,07],gpu[1-2]"`` gives ``["node[01-04,07]", "gpu[1-2]"]`` and
    ``"nodes=4,inter=(fat-tree:k=4,bw=1Gbps)"`` gives
    ``["nodes=4", "inter=(fat-tree:k=4,bw=1Gbps)"]``. Parts are returned as
    written (not stripped); an empty text gives ``[""]``.

    Parameters
    ----------
    text : str
        The text to split.
    what : str
        How error messages name the text (``"hostlist 'a[1-'"``); a caller
        that splits part of a larger string names the whole of it.
    brackets : str
        Pairs of opening and closing characters, ``"()[]"`` by default.
    max_depth : int, optional
        Deepest nesting allowed; ``None`` for any (hostlists allow 1).

    Raises
    ------
    TopologyError
        A closing bracket without its opening one (or closing another kind),
        an opening bracket never closed, or nesting deeper than ``max_depth``.
    """
    closer_of = dict(zip(brackets[0::2], brackets[1::2]))
    opener_of = {c: o for o, c in closer_of.items()}
    parts, start, stack = [], 0, []
    for i, ch in enumerate(text):
        if ch in closer_of:
            stack.append(ch)
            if max_depth is not None and len(stack) > max_depth:
                raise TopologyError(f"{what}: nested {ch!r}")
        elif ch in opener_of:
            if not stack or stack[-1] != opener_of[ch]:
                raise TopologyError(f"{what}: {ch!r} without {opener_of[ch]!r}")
            stack.pop()
        elif ch == "," and not stack:
            parts.append(text[start:i])
            start = i + 1
    if stack:
        raise TopologyError(f"{what}: {stack[-1]!r} without {closer_of[stack[-1]]!r}")
    parts.append(text[start:])
    return parts
