"""Run a typer app as a command: user errors become one line and exit code 2, never a traceback."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from b2ct.errors import B2ctError
from b2ct.ui import console

try:  # recent typer releases carry their own copy of click: its usage errors are not click's classes
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - typer that uses the installed click
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError


def _command_words(app: typer.Typer, argv: list[str]) -> list[str]:
    """The (sub)command names at the start of ``argv``, e.g. ["lab", "up"], found in the command tree."""
    from typer.main import get_command

    words: list[str] = []
    node = get_command(app)
    for arg in argv:
        if arg.startswith("-"):
            continue
        sub = getattr(node, "commands", {}).get(arg)
        if sub is None:
            break
        words.append(arg)
        node = sub
    return words


def _usage_line(exc: UsageError, app: typer.Typer, argv: list[str], prog: str) -> str:
    """click's usage error as one line: which command, what is wrong, where the help is.

    click prints the usage synopsis, a "Try --help" line and the message on three or four lines;
    b2ct promises one line for bad input, like its own errors.
    """
    words: list[str] = []
    ctx = exc.ctx
    while ctx is not None and ctx.parent is not None:  # the root's name is the program's, not a command
        words.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    if exc.ctx is None:  # the option parser's errors carry no context: find the command in argv
        words = _command_words(app, argv)
    command = " ".join([*prog.split()[1:], *(w for w in words if w)])  # `b2ct lab` runs as its own prog
    text = f"{command}: {exc.format_message()}" if command else exc.format_message()
    return " ".join(f"{text} (hint: {prog.split()[0]} {command} --help)".split())


class _Stdout:
    """sys.stdout whose write errors (a full disk, a closed pipe) become one-line B2ctErrors naming it."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def _guard(self, call: Any, *args: Any) -> Any:
        from b2ct.fsutil import write_error

        try:
            return call(*args)
        except OSError as exc:
            # fd 1 now points at /dev/null: Python's own flush at exit must not print a second, raw report
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._real.fileno())
            os.close(null)
            raise write_error(exc, "standard output") from None

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
    args = sys.argv[1:] if argv is None else argv
    try:
        result = app(args=args, standalone_mode=False, prog_name=prog_name)
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
    except NoArgsIsHelpError as exc:  # a bare `b2ct` or command group: its help is the answer
        exc.show()
        return exc.exit_code
    except UsageError as exc:  # bad option, value or command: one line, exit 2
        console.print(
            f"b2ct: error: {_usage_line(exc, app, args, prog_name or 'b2ct')}", markup=False, soft_wrap=True
        )
        return 2
    except ClickException as exc:  # other click errors (e.g. an unreadable file argument)
        console.print(f"b2ct: error: {' '.join(exc.format_message().split())}", markup=False, soft_wrap=True)
        return 2
    return result if isinstance(result, int) else 0
