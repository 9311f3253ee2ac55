"""The text of a YAML scalar as it is written in its file, to show what YAML 1.1 turned it into.

Ansible reads YAML 1.1: an unquoted `0012345` is the octal number 5349, `1:20` the base-60 number 80,
`no` the boolean false, `6.10` the float 6.1. Error messages quote the original text so the hint to quote
it is concrete.
"""

from __future__ import annotations

import bisect
from functools import cache
from pathlib import Path

import yaml


@cache
def _scalars(path: str, _mtime: int) -> tuple[dict[tuple[int, int], tuple[str, bool]], list[tuple[int, int]]]:
    """(line, col), 1-based, of every scalar token in ``path`` → (its text, whether unquoted); and those
    positions in order."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}, []
    scalars: dict[tuple[int, int], tuple[str, bool]] = {}
    loader = yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader
    try:
        for token in yaml.scan(text, Loader=loader):
            if isinstance(token, yaml.ScalarToken):
                mark = token.start_mark
                scalars[(mark.line + 1, mark.column + 1)] = (token.value, token.plain)
    except yaml.YAMLError:
        pass  # the file loaded once, so this is not expected; keep what was scanned
    return scalars, sorted(scalars)


def _table(path: str) -> tuple[dict[tuple[int, int], tuple[str, bool]], list[tuple[int, int]]]:
    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError:
        return {}, []
    return _scalars(path, mtime)


def scalar_text(path: str, line: int, col: int) -> tuple[str, bool] | None:
    """The scalar written at ``line``:``col`` (1-based) of ``path``: (text, unquoted?), or None."""
    return _table(path)[0].get((line, col))


def value_text_after_key(path: str, line: int, col: int) -> tuple[str, bool] | None:
    """The scalar value that follows the mapping key written at ``line``:``col``, or None."""
    scalars, order = _table(path)
    i = bisect.bisect_right(order, (line, col))
    return scalars[order[i]] if i < len(order) else None


def preceding_scalar(path: str, line: int, col: int) -> tuple[int, int] | None:
    """(line, col) of the last scalar before ``line``:``col``: for a mapping or list value, its key."""
    order = _table(path)[1]
    i = bisect.bisect_left(order, (line, col))
    return order[i - 1] if i > 0 else None
