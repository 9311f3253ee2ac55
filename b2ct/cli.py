"""Thin command line: parse arguments, call the product modules, map errors to exit codes."""

from __future__ import annotations

import importlib
import sys

import typer

from b2ct import __version__
from b2ct.entry import run

# Each product module exposes register(app) and adds its own commands; the CLI knows nothing else but
# which module owns which command name. All of them together import pykickstart, ansible-runner,
# jinja2, requests...: 0.6 s before anything happens. A run imports only the module that owns the
# command it was asked for; help and unknown names import all (tests keep this table exact).
COMMANDS: dict[str, str] = {
    "inventory": "b2ct.inventory.commands",
    "kickstart": "b2ct.kickstart.commands",
    "build-iso": "b2ct.media.commands",
    "make-usb": "b2ct.media.commands",
    "fetch-iso": "b2ct.media.commands",
    "lab": "b2ct.lab.commands",
    "deploy": "b2ct.deploy.commands",
    "check": "b2ct.check.commands",
    "cloud": "b2ct.opennebula.commands",
    "vm": "b2ct.opennebula.commands",
    "upgrade": "b2ct.opennebula.commands",
    "image": "b2ct.image.commands",
    "demo": "b2ct.demo",
    "init": "b2ct.inventory.init",
    "doctor": "b2ct.doctor",
}


def _version(value: bool) -> None:
    if value:
        print(f"b2ct {__version__}")
        raise typer.Exit()


def build_app(argv: list[str]) -> typer.Typer:
    """The b2ct app with the commands ``argv`` can reach: its own command's module, or all of them."""
    app = typer.Typer(
        name="b2ct",
        help="Turn a rack of bare servers into a working OpenNebula/KVM cloud.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Show version."
        ),
    ) -> None:
        """b2ct: kickstarts, install media, Ansible roles, checks and a lab for OpenNebula/KVM sites."""

    # The root takes no option with a value, so the first word that is not an option is the command.
    command = next((a for a in argv if not a.startswith("-")), None)
    owner = COMMANDS.get(command or "")
    for name in [owner] if owner else dict.fromkeys(COMMANDS.values()):
        importlib.import_module(name).register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return run(build_app(args), args)


if __name__ == "__main__":
    sys.exit(main())
