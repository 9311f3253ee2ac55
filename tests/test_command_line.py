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


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["build-iso", "--timeout", "-1"], ["build-iso", "--timeout", "-1"]),
        (["make-usb", "--iso", "x.iso", "--timeout", "soon"], ["make-usb", "--timeout", "soon"]),
        (["build-iso", "--tmeout", "3"], ["build-iso", "--tmeout", "--timeout"]),
        (["build-iso", "-k", "ks.cfg"], ["build-iso", "--base-iso"]),
        (["build-iso", "--timeout"], ["build-iso", "--timeout", "requires an argument"]),
        (["fetch-iso"], ["fetch-iso", "release"]),
        (["kickstart", "--no-such-option"], ["kickstart", "--no-such-option"]),
        (["lab", "up", "--hosts"], ["lab up", "--hosts"]),
        (["check", "--min-free", "x"], ["check", "--min-free"]),
        (["no-such-command"], ["no-such-command"]),
        (["--bogus"], ["--bogus"]),
    ],
)
def test_usage_errors_are_one_line(args: list[str], fragments: list[str]) -> None:
    """click prints usage, a "Try --help" line and the error on 3-4 lines; b2ct promises one line."""
    result = run_cli(*args)
    assert result.rc == 2, (result.rc, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("b2ct: error: "), result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "--help" in lines[0]  # says where to look


def test_bare_group_still_shows_its_help() -> None:
    result = run_cli("inventory")
    assert "Usage:" in result.out + result.err and "b2ct: error" not in result.err


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
        "image",
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
