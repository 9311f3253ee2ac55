"""Run a typer app as a command: user errors become one line and exit code 2, never a traceback."""

from __future__ import annotations

import typer

from b2ct.errors import B2ctError
from b2ct.ui import console

try:  # recent typer releases carry their own copy of click: its usage errors are not click's classes
    from typer._click.exceptions import ClickException as UsageError
except ImportError:  # pragma: no cover - typer that uses the installed click
    from click import ClickException as UsageError


def run(app: typer.Typer, argv: list[str] | None = None, prog_name: str | None = None) -> int:
    try:
        result = app(args=argv, standalone_mode=False, prog_name=prog_name)
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
