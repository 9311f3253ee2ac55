"""Run a typer app as a command: user errors become one line and exit code 2, never a traceback."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from b2ct.errors import B2ctError
from b2ct.ui import console

try:  # recent typer releases carry their own copy of click: its usage errors are not click's classes
    from typer._click.exceptions import ClickException as UsageError
except ImportError:  # pragma: no cover - typer that uses the installed click
    from click import ClickException as UsageError


class _Stdout:
    """sys.stdout whose write errors (a full disk, a closed pipe) become one-line B2ctErrors naming it."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def _guard(self, call: Any, *args: Any) -> Any:
        from b2ct.fsutil import output_error

        try:
            return call(*args)
        except OSError as exc:
            # fd 1 now points at /dev/null: Python's own flush at exit must not print a second, raw report
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._real.fileno())
            os.close(null)
            raise output_error(exc, "standard output") from None

    def write(self, text: str) -> int:
        return self._guard(self._real.write, text)

    def flush(self) -> None:
        self._guard(self._real.flush)


def run(app: typer.Typer, argv: list[str] | None = None, prog_name: str | None = None) -> int:
    real = sys.stdout
    sys.stdout = _Stdout(real)  # type: ignore[assignment]
    try:
        return _run(app, argv, prog_name)
    finally:
        sys.stdout = real


def _run(app: typer.Typer, argv: list[str] | None, prog_name: str | None) -> int:
    try:
        result = app(args=argv, standalone_mode=False, prog_name=prog_name)
        sys.stdout.flush()
    except B2ctError as exc:
        console.print(f"b2ct: error: {exc.oneline()}", markup=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        console.print("b2ct: interrupted", markup=False)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        console.print("b2ct: aborted", markup=False)
        return 1
    except UsageError as exc:  # usage errors: click's own message, exit 2
        exc.show()
        return exc.exit_code
    return result if isinstance(result, int) else 0
