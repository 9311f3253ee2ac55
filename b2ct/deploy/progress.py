"""Live progress of a deploy (task, host, ok/changed/failed counts) and the final per-host summary.

On a terminal a rich.live table is redrawn in place; elsewhere (CI logs) plain lines are printed: one per
task, one per failure, so a log stays short and readable.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from b2ct.deploy.result import DeployResult


class _Counts:
    __slots__ = ("changed", "failed", "ok", "skipped", "task", "unreachable")

    def __init__(self) -> None:
        self.ok = self.changed = self.failed = self.unreachable = self.skipped = 0
        self.task = ""


class Progress:
    def __init__(self, console: Console, hosts: list[str], live: bool | None = None):
        self.console = console
        self.hosts = {h: _Counts() for h in hosts}
        self.task = ""
        self.play = ""
        self.start = time.monotonic()
        self.live_mode = console.is_terminal if live is None else live
        self._live: Live | None = None

    # -- context manager: the live display exists only while the run does -----------------------
    def __enter__(self) -> Progress:
        if self.live_mode:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(et, ev, tb)
            self._live = None

    # -- events ----------------------------------------------------------------------------------
    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        host = event.get("host", "")
        counts = self.hosts.setdefault(host, _Counts()) if host else None
        if kind == "playbook_on_play_start":
            self.play = event.get("play", "")
            self._line(f"PLAY [{self.play}]")
        elif kind == "playbook_on_task_start":
            self.task = _task_name(event)
            self._line(f"  {self._elapsed()} {self.task}")
        elif counts is not None:
            counts.task = _task_name(event)
            if kind == "runner_on_ok":
                counts.ok += 1
                counts.changed += int(event.get("changed", False))
            elif kind == "runner_on_skipped":
                counts.skipped += 1
            elif kind == "runner_on_failed" and not event.get("ignore_errors"):
                counts.failed += 1
                self._line(f"    {host}: FAILED: {event.get('msg', '')}", style="red")
            elif kind == "runner_on_unreachable":
                counts.unreachable += 1
                self._line(f"    {host}: UNREACHABLE: {event.get('msg', '')}", style="red")
        if self._live is not None:
            self._live.update(self._render())

    def _elapsed(self) -> str:
        return f"[{time.monotonic() - self.start:6.1f}s]"

    def _line(self, text: str, style: str | None = None) -> None:
        if self._live is not None:
            if style:  # on a terminal only failures scroll above the live table
                self._live.console.print(Text(text.strip(), style=style))
        else:
            self.console.print(Text(text, style=style or ""), soft_wrap=True)

    def _render(self) -> Group:
        table = Table(box=None, pad_edge=False, show_edge=False)
        for col in ("host", "ok", "changed", "failed", "unreach.", "task"):
            table.add_column(col, justify="right" if col not in ("host", "task") else "left")
        for host, c in sorted(self.hosts.items()):
            style = "red" if c.failed or c.unreachable else ("yellow" if c.changed else "")
            table.add_row(
                host, str(c.ok), str(c.changed), str(c.failed), str(c.unreachable), c.task[:60], style=style
            )
        head = Text(f"{self._elapsed()} {self.play} ▸ {self.task}", style="bold")
        return Group(head, table)


def _task_name(event: dict[str, Any]) -> str:
    role = event.get("role") or ""
    task = event.get("task") or ""
    return f"{role} : {task}" if role else task


def summary_table(result: DeployResult) -> Table:
    mode = " (check mode)" if result.check else ""
    table = Table(title=f"deploy {result.status}{mode} in {result.duration:.1f}s", title_justify="left")
    for col in ("host", "ok", "changed", "failed", "unreachable", "skipped", "first error"):
        table.add_column(col, justify="left" if col in ("host", "first error") else "right", overflow="fold")
    for name, h in sorted(result.hosts.items()):
        style = "red" if not h.good else ("yellow" if h.changed else "green")
        table.add_row(
            name,
            str(h.ok),
            str(h.changed),
            str(h.failed),
            str(h.unreachable),
            str(h.skipped),
            h.error,
            style=style,
        )
    return table
