"""OpenNebula template syntax (the text of `onetemplate create`, datastore/vnet templates and oned.conf).

    NAME = "value"
    VECTOR = [ KEY = "value", OTHER = "value" ]

Values are rendered double-quoted with backslash escapes so user text (ssh keys, scripts) cannot end a
value early. The parser reads the same subset back, plus bare words and `#` comments as in oned.conf;
a repeated key yields a list.
"""

from __future__ import annotations

import re
from typing import Any

from b2ct.errors import B2ctError

Value = str | dict[str, str] | list[dict[str, str]] | list[str]


def _quote(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def render(template: dict[str, Any]) -> str:
    """Render a mapping: scalars as KEY = "v", mappings as vectors, lists of mappings as repeated vectors."""
    lines: list[str] = []
    for key, value in template.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                inner = ",\n  ".join(f"{k} = {_quote(v)}" for k, v in item.items())
                lines.append(f"{key} = [\n  {inner} ]")
            else:
                lines.append(f"{key} = {_quote(item)}")
    return "\n".join(lines) + "\n"


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<punct>[=\[\],])
      | (?P<word>[^\s=\[\],"#]+)
    )""",
    re.VERBOSE | re.DOTALL,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise B2ctError(f"cannot parse OpenNebula template near {text[pos : pos + 30]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind == "comment":
            continue
        value = m.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1], flags=re.DOTALL)
        out.append((kind, value))
    return out


def _add(target: dict[str, Any], key: str, value: Any) -> None:
    if key in target:
        previous = target[key]
        target[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
    else:
        target[key] = value


def parse(text: str) -> dict[str, Any]:
    """Parse template text into a mapping (keys upper-cased as OpenNebula does)."""
    toks = _tokens(text)
    out: dict[str, Any] = {}
    i = 0

    def expect(kind: str, value: str | None = None) -> str:
        nonlocal i
        if i >= len(toks) or toks[i][0] != kind or (value is not None and toks[i][1] != value):
            got = toks[i][1] if i < len(toks) else "end of text"
            raise B2ctError(f"OpenNebula template: expected {value or kind}, got {got!r}")
        i += 1
        return toks[i - 1][1]

    while i < len(toks):
        key = expect("word").upper()
        expect("punct", "=")
        if i < len(toks) and toks[i] == ("punct", "["):
            i += 1
            vector: dict[str, Any] = {}
            while not (i < len(toks) and toks[i] == ("punct", "]")):
                k = expect("word").upper()
                expect("punct", "=")
                if i >= len(toks) or toks[i][0] not in ("string", "word"):
                    raise B2ctError(f"OpenNebula template: vector {key}: value missing for {k}")
                _add(vector, k, toks[i][1])
                i += 1
                if i < len(toks) and toks[i] == ("punct", ","):
                    i += 1
            expect("punct", "]")
            _add(out, key, vector)
        else:
            if i >= len(toks) or toks[i][0] not in ("string", "word"):
                raise B2ctError(f"OpenNebula template: value missing for {key}")
            _add(out, key, toks[i][1])
            i += 1
    return out
