"""`python -m b2ct.lab …`: the lab commands alone, usable while other command modules are broken or absent."""

from __future__ import annotations

import sys

import typer

from b2ct.errors import B2ctError
from b2ct.lab.commands import lab_app
from b2ct.ui import console


def main(argv: list[str] | None = None) -> int:
    import click

    try:
        result = lab_app(args=argv, standalone_mode=False, prog_name="b2ct lab")
    except B2ctError as exc:
        console.print(f"b2ct: error: {exc.oneline()}", markup=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        console.print("b2ct: interrupted", markup=False)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
