"""YAML loading that remembers where every key and list item came from, for file:line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from b2ct.errors import B2ctError


class LineDict(dict):
    """A mapping that knows its file, its own line, and the line of each key."""

    file: str = "?"
    line: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines: dict[Any, int] = {}

    def where(self, key: Any = None) -> str:
        return f"{self.file}:{self.lines.get(key, self.line)}"


class LineList(list):
    file: str = "?"
    line: int = 0

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.lines: list[int] = []

    def where(self, index: int | None = None) -> str:
        if index is not None and index < len(self.lines):
            return f"{self.file}:{self.lines[index]}"
        return f"{self.file}:{self.line}"


def where(container: Any, key: Any = None) -> str:
    """file:line of ``key`` inside ``container`` when it was loaded by this module, else ''."""
    if isinstance(container, LineDict | LineList):
        return container.where(key)
    return ""


def _make_loader(file: str) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
        loader.flatten_mapping(node)
        result = LineDict()
        result.file, result.line = file, node.start_mark.line + 1
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str | int | float | bool | type(None)):
                raise B2ctError("mapping key is not a plain value", where=f"{file}:{line}")
            if key in result:
                raise B2ctError(f"duplicate key {key!r}", where=f"{file}:{line}")
            result[key] = loader.construct_object(value_node, deep=True)
            result.lines[key] = line
        return result

    def construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LineList:
        result = LineList(loader.construct_object(child, deep=True) for child in node.value)
        result.file, result.line = file, node.start_mark.line + 1
        result.lines = [child.start_mark.line + 1 for child in node.value]
        return result

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    return Loader


def load_yaml(path: Path, display: str | None = None) -> Any:
    """Parse one YAML file; syntax errors become one-line B2ctErrors at the offending line."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise B2ctError(f"cannot read: {exc.strerror}", where=name) from None
    except UnicodeDecodeError:
        raise B2ctError("not UTF-8 text", where=name) from None
    try:
        return yaml.load(text, Loader=_make_loader(name))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        if (
            exc.context
            and exc.context_mark
            and exc.problem_mark
            and exc.context_mark.line != exc.problem_mark.line
        ):
            problem += f" ({exc.context} started at line {exc.context_mark.line + 1})"
        raise B2ctError(f"YAML syntax error: {problem}", where=f"{name}{line}") from None
    except yaml.YAMLError as exc:
        raise B2ctError(f"YAML error: {exc}", where=name) from None
