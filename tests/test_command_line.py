"""The command line itself: usage mistakes are short messages with exit code 2, never tracebacks."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from tests.conftest import run_cli


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["kickstart", "--no-such-option"],
        ["lab", "up", "--hosts"],
        ["check", "--min-free", "x"],
    ],
)
def test_usage_errors_exit_2_without_traceback(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.rc == 2, (result.rc, result.err)
    assert "Traceback" not in result.err + result.out
    assert result.err.strip(), "a usage error must say what is wrong"


def test_every_product_registers_its_commands() -> None:
    result = run_cli("--help")
    assert result.rc == 0
    for command in (
        "inventory",
        "kickstart",
        "build-iso",
        "make-usb",
        "fetch-iso",
        "lab",
        "deploy",
        "check",
        "cloud",
        "vm",
        "upgrade",
        "demo",
    ):
        assert f" {command} " in result.out, command


def test_command_table_names_what_each_module_registers() -> None:
    """`b2ct X` imports only the module the table names for X: a stale table would lose commands."""
    import typer
    from typer.main import get_command

    from b2ct.cli import COMMANDS

    for module in dict.fromkeys(COMMANDS.values()):
        app = typer.Typer()
        importlib.import_module(module).register(app)

        @app.callback()
        def _root() -> None:  # a group even when the module registers a single command
            """Root."""

        registered = set(get_command(app).commands)  # type: ignore[attr-defined]
        assert registered == {c for c, m in COMMANDS.items() if m == module}, module


def test_a_command_runs_without_importing_the_other_products() -> None:
    code = (
        "import sys; from b2ct.cli import main; rc = main(['build-iso', '--help']); "
        "heavy = [m for m in ('pykickstart', 'ansible_runner', 'jinja2', 'libvirt') if m in sys.modules]; "
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout
