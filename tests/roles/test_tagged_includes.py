"""Tags given to an ``include_tasks`` select the include itself, not the tasks it brings in: ``--tags X``
would run the include and then skip every included task. Each tagged include in roles/ must pass its
tags on (``apply: {tags: ...}``) or be an ``import_tasks``, whose tasks inherit them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
INCLUDES = ("ansible.builtin.include_tasks", "include_tasks", "ansible.builtin.include_role", "include_role")


def _tasks(items: Any) -> Iterator[dict[str, Any]]:
    for item in items or []:
        if isinstance(item, dict):
            yield item
            for key in ("block", "rescue", "always"):
                yield from _tasks(item.get(key))


def test_tagged_includes_pass_their_tags_on() -> None:
    files = sorted(REPO.glob("roles/*/tasks/*.yml")) + sorted(REPO.glob("playbooks/*.yml"))
    checked = 0
    wrong = []
    for path in files:
        doc = yaml.safe_load(path.read_text()) or []
        plays = [p for p in doc if isinstance(p, dict)]
        lists = (
            [doc] if path.parts[-2] == "tasks" else [p.get(k) for p in plays for k in ("tasks", "pre_tasks")]
        )
        for task in (t for tasks in lists for t in _tasks(tasks)):
            include = next((k for k in INCLUDES if k in task), None)
            if include is None or not task.get("tags"):
                continue
            checked += 1
            args = task[include]
            applied = args.get("apply", {}).get("tags") if isinstance(args, dict) else None
            if not set(task["tags"]) - {"always"} <= set(applied or []):
                wrong.append(
                    f"{path.relative_to(REPO)}: {task.get('name')!r} tags {task['tags']}, apply {applied}"
                )
    assert not wrong, "\n".join(wrong)
    assert checked >= 2  # kvm_host's bridges and rocci's enabled.yml
