"""`b2ct doctor` and the commands' "not found" errors come from one table (b2ct.tools.TOOLS).

A tool is hidden from PATH by running b2ct with a PATH of links to every other tool; doctor must say it
is missing and which package brings it, and the command that needs it must stop in one line, exit 2,
before doing anything."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from b2ct import tools
from tests.conftest import REPO, CliResult, assert_one_line_error


def _path_without(tool: str, bindir: Path) -> str:
    """A PATH directory holding links to every program of TOOLS (and the shell basics) but ``tool``."""
    bindir.mkdir()
    for name in [t.name for t in tools.TOOLS if not t.path] + ["sh", "env", "python3"]:
        real = shutil.which(name) or shutil.which(name, path=tools.SBIN)
        if name != tool and real is not None and not (bindir / name).exists():
            (bindir / name).symlink_to(real)
    return str(bindir)


def _b2ct(*args: str | Path, path: str, cwd: Path) -> CliResult:
    proc = subprocess.run(
        [sys.executable, "-m", "b2ct.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": path, "HOME": str(cwd.parent / "home"), "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def test_doctor_lists_every_tool_with_its_packages(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    r = _b2ct("doctor", "--all", path=os.environ["PATH"], cwd=tmp_path / "work")
    assert r.rc in (0, 1), r.err
    assert "b2ct 0.1.0" in r.out and f"data: {REPO} (source checkout)" in r.out
    for t in tools.TOOLS:
        row = next(
            (ln for ln in r.out.splitlines() if ln.split()[: len(t.name.split())] == t.name.split()), ""
        )
        assert row, t.name
        assert " ".join(t.commands) in row and t.debian in row and (t.el or "—") in row, row


@pytest.mark.parametrize(
    ("tool", "command"),
    [
        ("xorriso", ["build-iso", "--base-iso", "base.iso", "-k", "ks.cfg", "-o", "out.iso"]),
        ("mcopy", ["build-iso", "--base-iso", "base.iso", "-k", "ks.cfg", "-o", "out.iso"]),
        ("syslinux", ["make-usb", "--iso", "base.iso", "--image", "key.img", "-k", "ks.cfg"]),
    ],
)
def test_a_hidden_tool_is_named_by_doctor_and_stops_its_command(
    tmp_path_factory: pytest.TempPathFactory, tool: str, command: list[str]
) -> None:
    tmp_path = tmp_path_factory.mktemp("work")
    entry = tools.BY_NAME[tool]
    path = _path_without(tool, tmp_path / "bin")
    if shutil.which(tool, path=tools.SBIN):
        pytest.skip(f"{tool} is in {tools.SBIN}, which b2ct searches whatever PATH says")
    doctor = _b2ct("doctor", path=path, cwd=tmp_path)
    assert doctor.rc == 1
    row = next(ln for ln in doctor.out.splitlines() if ln.split()[:1] == [tool])
    assert re.search(rf"\bMISSING\s+{re.escape(entry.debian)}\s+{re.escape(entry.el)}$", row), row

    (tmp_path / "ks.cfg").write_text("text\n")
    r = _b2ct(*command, path=path, cwd=tmp_path)
    assert_one_line_error(
        r, f"{tool} not found", f"apt-get install {entry.debian}", f"dnf install {entry.el}"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "ks.cfg"]  # nothing written


def test_every_tool_b2ct_runs_is_in_the_table() -> None:
    """The names in b2ct's own calls: tools.need("x"), tools.run(["x", ...]), tool loops and tuples."""
    named: set[str] = set()
    for f in (REPO / "b2ct").rglob("*.py"):
        text = f.read_text()
        named |= set(re.findall(r"\bneed\(\s*\"([^\"]+)\"", text))
        named |= set(re.findall(r"\btools\.run\(\s*\[\s*\"([^\"]+)\"", text))
        named |= set(re.findall(r"\brun\(\s*\[\s*\"(xorriso|m[a-z]+|sfdisk|mkfs\.fat|syslinux)\"", text))
        for loop in re.findall(r"for tool in \(([^)]*)\):\s*\n\s*tools\.need", text):
            named |= set(re.findall(r"\"([^\"]+)\"", loop))
    named |= set(re.findall(r"\"([^\"]+)\"", re.search(r"^TOOLS = \(([^)]*)\)", (
        REPO / "b2ct/lab/mirror.py").read_text(), re.MULTILINE).group(1)))  # type: ignore[union-attr]  # fmt: skip
    assert {"xorriso", "mcopy", "sfdisk", "debootstrap", "qemu-img", "gpg", "ansible-playbook"} <= named
    assert sorted(named - set(tools.BY_NAME)) == []


def test_ci_installs_every_package_doctor_names() -> None:
    apt = set()
    for f in (REPO / ".ci" / "packages").glob("*.apt"):
        apt |= {w for line in f.read_text().splitlines() for w in line.split("#")[0].split()}
    missing = sorted({t.debian for t in tools.TOOLS if not t.pip} - apt)
    assert missing == [], f"add to .ci/packages/*.apt: {missing}"
