"""Console output: nested, timed progress steps on stderr (stdout stays for data such as --json)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from b2ct.errors import B2ctError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn


class _Console:
    """rich's Console on stderr, made on first use. Importing rich takes about 20 ms, which build-iso
    and make-usb would otherwise spend before their copy starts: they print only once it runs."""

    _real: Console | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    @property
    def real(self) -> Console:
        if self._real is None:
            from rich.console import Console

            self._real = Console(stderr=True, highlight=False)
        return self._real


console = cast("Console", _Console())
_depth = 0


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    """Print ``title``, run the block, then print how long it took, indented by nesting depth."""
    global _depth
    indent = "  " * _depth
    console.print(f"{indent}[bold]‣[/bold] {title}")
    start = time.monotonic()
    _depth += 1
    try:
        yield
    except B2ctError:
        raise  # the CLI prints the one-line error; a trail of "failed" steps would only bury it
    except BaseException:
        console.print(f"{indent}  [red]✗ {title} failed after {time.monotonic() - start:.1f}s[/red]")
        raise
    finally:
        _depth -= 1
    console.print(f"{indent}  [green]✓[/green] [dim]{title} ({time.monotonic() - start:.1f}s)[/dim]")


def progress_bar(*columns: ProgressColumn) -> Progress:
    """A transient bar on stderr: the task's description, the bar, then ``columns``; silent when stderr
    is not a terminal."""
    # Imported here: commands that never show a bar start faster (media commands start copying at once).
    from rich.progress import BarColumn, Progress, TextColumn

    real = cast(_Console, console).real  # a Progress keeps its console as the live display
    return Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        *columns,
        console=real,
        transient=True,
        disable=not real.is_terminal,
    )


def byte_progress() -> Progress:
    """A bar for copies measured in bytes (size, speed)."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    return progress_bar(DownloadColumn(), TransferSpeedColumn())


def info(message: str) -> None:
    console.print("  " * _depth + message)
