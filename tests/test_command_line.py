"""The command line itself: usage mistakes are short messages with exit code 2, never tracebacks."""

from __future__ import annotations

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
