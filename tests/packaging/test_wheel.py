"""b2ct as a site installs it: the sdist and the wheel built from it (python -m build), the wheel installed
into a fresh virtual environment that cannot see this checkout, and every step of the job run from an
unrelated directory with that environment's bin directory off PATH (as pipx leaves it): init, inventory
check, kickstarts for every release, build-iso on a synthetic ISO, and deploy --check against a lab host,
compared with the same deploy from the checkout.

One build and one environment for the whole module (building and installing take about a minute)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from b2ct.inventory import RELEASES
from tests.conftest import REPO, CliResult, assert_one_line_error
from tests.site_filler import fill

pytestmark = pytest.mark.slow

# Repository folders and files the wheel carries, and where (setup.py's DATA).
COLLECTION = "b2ct/_data/collections/ansible_collections/b2ct/cloud"
DATA = {
    "kickstart": "b2ct/_data/kickstart",
    "isobuild": "b2ct/_data/isobuild",
    "inventory/example": "b2ct/_data/inventory/example",
    "inventory/new-site": "b2ct/_data/inventory/new-site",
    "galaxy.yml": f"{COLLECTION}/galaxy.yml",
    "meta": f"{COLLECTION}/meta",
    "plugins": f"{COLLECTION}/plugins",
    "roles": f"{COLLECTION}/roles",
    "playbooks": f"{COLLECTION}/playbooks",
}
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _tracked(*paths: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", *paths], cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout.split()


@dataclass
class Installed:
    venv: Path
    work: Path  # an unrelated directory, the current one of every command
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def b2ct(self, *args: str | Path, timeout: float = 600) -> CliResult:
        proc = subprocess.run(
            [str(self.venv / "bin" / "b2ct"), *map(str, args)],
            capture_output=True, text=True, cwd=self.work, env=self.env, timeout=timeout,
        )  # fmt: skip
        return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist, then the wheel built from the sdist (what pip does when it installs the sdist)."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, dist: Path) -> Installed:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (wheel,) = dist.glob("b2ct-*.whl")
    # pip with this machine's settings (index, certificates); b2ct's dependencies come from PyPI.
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         str(wheel)],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    work = tmp_path_factory.mktemp("elsewhere")
    home = tmp_path_factory.mktemp("home")
    env = {"PATH": SYSTEM_PATH, "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"), "LANG": "C.UTF-8"}
    return Installed(venv, work, env)


def test_wheel_and_sdist_carry_every_data_file(dist: Path) -> None:
    (wheel,) = dist.glob("b2ct-*.whl")
    (sdist,) = dist.glob("b2ct-*.tar.gz")
    names = set(zipfile.ZipFile(wheel).namelist())
    for src, dst in DATA.items():
        for f in _tracked(src):
            assert dst + f.removeprefix(src) in names, f
    assert {"b2ct/lab/packages.txt", "b2ct/lab/guest_bootsector.asm"} <= names
    assert not [n for n in names if n.startswith(("tests/", "kickstart/", "roles/")) or "__pycache__" in n]
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        in_sdist = {n.removeprefix(top + "/") for n in tar.getnames()}
    assert set(_tracked(*DATA, "setup.py", "MANIFEST.in", "pyproject.toml")) <= in_sdist


def test_installed_b2ct_reads_its_own_data_not_the_checkout(installed: Installed) -> None:
    probe = "import b2ct, sys; print(b2ct.__file__); print('\\n'.join(sys.path))"
    proc = subprocess.run(
        [str(installed.python), "-c", probe],
        capture_output=True,
        text=True,
        cwd=installed.work,
        env=installed.env,
    )
    first, *path = proc.stdout.splitlines()
    assert first.startswith(str(installed.venv)), first
    assert not [p for p in path if p and Path(p).resolve().is_relative_to(REPO)], path

    doctor = installed.b2ct("doctor")
    assert doctor.rc in (0, 1), doctor.err  # 1: libvirt-python (b2ct[check]) is not in this environment
    site_packages = next(installed.venv.glob("lib/python*/site-packages"))
    assert f"data: {site_packages}/b2ct/_data (installed package)" in doctor.out
    assert f"ansible collection b2ct.cloud: {site_packages}/{COLLECTION}" in doctor.out
    # the environment's own ansible-playbook, though its bin directory is not on PATH
    assert f"{installed.venv}/bin/ansible-playbook" in doctor.out
    for name in ("ansible.posix", "community.general", "community.crypto", "community.mysql"):
        assert re.search(
            rf"collection {re.escape(name)} \S+ \(wants [^)]*\): ok, {site_packages}", doctor.out
        ), name


@pytest.fixture(scope="module")
def site(installed: Installed) -> Path:
    """`b2ct init` from the wheel, refused as it is, valid once filled in."""
    r = installed.b2ct("init", "site")
    assert r.rc == 0, r.err
    site = installed.work / "site"
    assert_one_line_error(installed.b2ct("inventory", "check", "-i", "site"), "placeholder of b2ct init")
    fill(site)
    r = installed.b2ct("inventory", "check", "-i", "site")
    assert r.rc == 0, r.err
    return site


@pytest.mark.parametrize("release", [r for r, rel in RELEASES.items() if rel.family == "el"])
def test_kickstarts_of_every_release_validate_from_the_wheel(
    installed: Installed, site: Path, release: str
) -> None:
    out = installed.work / f"ks-{release}"
    r = installed.b2ct("kickstart", "-i", "site", "-o", out.name, "--release", release)
    assert r.rc == 0, r.err
    assert (out / "ks.cfg").is_file() and sorted(p.name for p in (out / "ks").iterdir()) == [
        "one-fe.cfg", "svc1.cfg", "svc2.cfg", "wn01.cfg", "wn02.cfg",
    ]  # fmt: skip
    # The same text the checkout renders: the same templates and release table.
    ref = subprocess.run(
        [sys.executable, "-m", "b2ct", "kickstart", "-i", "site", "-o", f"{out.name}-ref", "-r", release],
        cwd=installed.work, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert ref.returncode == 0, ref.stderr
    for f in sorted(out.rglob("*.cfg")):
        assert f.read_text() == (Path(str(out) + "-ref") / f.relative_to(out)).read_text(), f


def test_build_iso_from_the_wheel(installed: Installed, site: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "b2ct_media_synth", REPO / "tests/media/b2ct_media_synth.py"
    )
    assert spec and spec.loader
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)

    work = installed.work / "synth"
    work.mkdir()
    base = synth.build_synthetic_iso("el9", installed.work / "base-el9.iso", work)
    r = installed.b2ct("build-iso", "--base-iso", base.name, "-i", "site", "-o", "site.iso")
    assert r.rc == 0, r.err
    extracted = installed.work / "extracted"
    extracted.mkdir()
    for inside in ("ks.cfg", "EFI/BOOT/grub.cfg", "isolinux/isolinux.cfg"):
        subprocess.run(
            ["xorriso", "-osirrox", "on", "-indev", "site.iso", "-extract", f"/{inside}",
             str(extracted / inside.replace("/", "_"))],
            cwd=installed.work, capture_output=True, check=True,
        )  # fmt: skip
    rendered = installed.b2ct("kickstart", "-i", "site", "-o", "ks-for-iso")
    assert rendered.rc == 0, rendered.err
    assert (extracted / "ks.cfg").read_text() == (installed.work / "ks-for-iso" / "ks.cfg").read_text()
    label = synth.VOLIDS["el9"]
    for cfg in ("EFI_BOOT_grub.cfg", "isolinux_isolinux.cfg"):
        assert f"inst.ks=hd:LABEL={label}:/ks.cfg" in (extracted / cfg).read_text(), cfg


def _deploy_log(cache: Path) -> tuple[dict, list[str]]:
    """The summary of the one deploy kept under ``cache`` and its task lines (role names unqualified:
    the wheel's playbook sits in a collection, so Ansible names its roles b2ct.cloud.NAME)."""
    (run,) = (cache / "b2ct" / "deploy").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    tasks = [
        line.replace("[b2ct.cloud.", "[").rstrip(" *")
        for line in (run / "stdout.txt").read_text().splitlines()
        if re.match(r"^(TASK|ok|changed|failed|fatal|skipping)\b", line)
    ]
    return summary, tasks


@pytest.mark.lab
def test_deploy_check_from_the_wheel_runs_what_the_checkout_runs(
    installed: Installed, tmp_path: Path
) -> None:
    """deploy --check on a fresh lab host, from the wheel and from the checkout: the same playbook, roles and
    modules, so the same tasks with the same outcomes. Check mode changes nothing, so it may fail only where
    check mode must: a package from a repository the same run only reported it would add."""
    from b2ct.lab import mirror
    from tests.lab_plugin import make_lab

    with make_lab(services=0, workers=1) as lab:
        wheel_env = {**installed.env, "XDG_CACHE_HOME": str(tmp_path / "wheel-cache")}
        r = subprocess.run(
            [str(installed.venv / "bin" / "b2ct"), "deploy", "-i", str(lab.inventory), "--check"],
            capture_output=True, text=True, cwd=installed.work, env=wheel_env, timeout=1200,
        )  # fmt: skip
        checkout_env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "checkout-cache")}
        ref = subprocess.run(
            [sys.executable, "-m", "b2ct", "deploy", "-i", str(lab.inventory), "--check"],
            capture_output=True, text=True, cwd=REPO, env=checkout_env, timeout=1200,
        )  # fmt: skip
    summary, tasks = _deploy_log(tmp_path / "wheel-cache")
    ref_summary, ref_tasks = _deploy_log(tmp_path / "checkout-cache")
    assert summary["check"] and summary["playbook"].startswith(str(installed.venv)), summary["playbook"]
    assert ref_summary["playbook"] == str(REPO / "playbooks" / "site.yml")
    assert (r.returncode, summary["hosts"]) == (ref.returncode, ref_summary["hosts"]), (r.stderr, ref.stderr)
    assert tasks == ref_tasks
    assert any("installed_packages" in t or "Read the installed packages" in t for t in tasks)
    host = summary["hosts"]["wn1"]
    assert host["unreachable"] == 0 and host["ok"] > 20, host
    if r.returncode != 0:
        # A package only the lab's OpenNebula mirror has: its repository task said "changed" (would add).
        assert host["failed"] == 1, host
        missing = re.fullmatch(r".*: No package matching '([^']+)' is available", host["error"])
        assert missing, host["error"]
        index = (mirror.default_repo() / "Packages").read_text()
        assert re.search(rf"^Package: {re.escape(missing.group(1))}$", index, re.M), missing.group(1)
        failed_at = next(i for i, t in enumerate(tasks) if t.startswith(("failed", "fatal")))
        added = [
            tasks[i - 1]
            for i in range(1, failed_at)
            if tasks[i].startswith("changed:") and "repository" in tasks[i - 1]
        ]
        assert added, tasks[:failed_at]
