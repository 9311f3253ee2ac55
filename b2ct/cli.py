"""Thin command line: parse arguments, call the product modules, map errors to exit codes."""

from __future__ import annotations

import importlib
import sys

import typer

from b2ct import __version__
from b2ct.entry import run

app = typer.Typer(
    name="b2ct",
    help="Turn a rack of bare servers into a working OpenNebula/KVM cloud.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Each product module exposes register(app) and adds its own commands; the CLI knows nothing else.
COMMAND_MODULES = (
    "b2ct.inventory.commands",
    "b2ct.kickstart.commands",
    "b2ct.media.commands",
    "b2ct.lab.commands",
    "b2ct.deploy.commands",
    "b2ct.check.commands",
    "b2ct.opennebula.commands",
    "b2ct.demo",
)


def _version(value: bool) -> None:
    if value:
        print(f"b2ct {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show version."),
) -> None:
    """b2ct: kickstarts, install media, Ansible roles, checks and a lab for OpenNebula/KVM sites."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main(argv: list[str] | None = None) -> int:
    return run(app, argv)


if __name__ == "__main__":
    sys.exit(main())
