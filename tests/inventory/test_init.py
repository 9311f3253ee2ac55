"""`b2ct init SITE_DIR`: a starting inventory whose placeholders every command refuses until filled in."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from b2ct.errors import B2ctError
from b2ct.inventory import load
from tests.conftest import assert_one_line_error, run_cli
from tests.kickstart.test_kickstart_output_errors import fill as fill_fs
from tests.kickstart.test_kickstart_output_errors import tmpfs
from tests.site_filler import fill, placeholders


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `b2ct init` writes, made once; tests copy it before changing it."""
    site = tmp_path_factory.mktemp("init") / "site"
    result = run_cli("init", site)
    assert result.rc == 0, result.err
    assert "values marked FILL-IN are for you to fill in" in result.err
    return site


def _copy(fresh: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "site"
    shutil.copytree(fresh, dest)
    return dest


def test_init_writes_the_example_shape_with_every_value_explained(fresh: Path) -> None:
    assert sorted(str(p.relative_to(fresh)) for p in fresh.rglob("*") if p.is_file()) == [
        "group_vars/all.yml",
        "hosts.yml",
    ]
    hosts = (fresh / "hosts.yml").read_text()
    for group in ("frontend:", "service:", "worker:"):
        assert group in hosts
    # Every setting is explained where it first appears: a comment right above it (or on its line).
    for f in (fresh / "hosts.yml", fresh / "group_vars" / "all.yml"):
        lines = f.read_text().splitlines()
        seen: set[str] = set()
        for n, line in enumerate(lines):
            key = line.strip().split(":", 1)[0]
            if not key.startswith(("b2ct_", "ansible_host")) or key in seen:
                continue
            seen.add(key)
            assert "#" in line or lines[n - 1].lstrip().startswith("#"), (f.name, n + 1, line)
        assert seen, f


def test_untouched_init_output_is_refused_at_its_first_placeholder(fresh: Path) -> None:
    first = placeholders(fresh)[0]
    r = run_cli("inventory", "check", "-i", fresh)
    line = assert_one_line_error(r, f"{first[0]}:{first[1]}:", "placeholder of b2ct init", "left")
    assert "b2ct_site" in line


@pytest.mark.parametrize("command", [("kickstart", "-o", "KS"), ("deploy", "--check")])
def test_every_command_that_reads_the_inventory_refuses_placeholders(
    fresh: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    args = [a.replace("KS", str(tmp_path / "ks")) for a in command]
    r = run_cli(*args[:1], "-i", fresh, *args[1:])
    assert_one_line_error(r, "placeholder of b2ct init")
    assert not (tmp_path / "ks").exists()


def test_each_placeholder_alone_is_refused_where_it_is(fresh: Path, tmp_path: Path) -> None:
    """No placeholder is caught only by another rule (or not at all): leave any one, load names it."""
    spots = placeholders(fresh)
    assert len(spots) >= 25  # MACs and addresses of every host, subnets, gateways, DNS, keys, URLs
    for i, (f, line, text) in enumerate(spots):
        site = tmp_path / f"s{i}"
        shutil.copytree(fresh, site)
        kept = site / f.relative_to(fresh)
        fill(site, keep=(kept, line))
        with pytest.raises(B2ctError) as err:
            load(site)
        assert err.value.where == f"{kept}:{line}", (text, err.value.oneline())
        assert "placeholder of b2ct init" in err.value.message and "left" not in err.value.message


def test_filled_in_inventory_is_valid_and_renders_kickstarts(fresh: Path, tmp_path: Path) -> None:
    site = _copy(fresh, tmp_path)
    fill(site)
    assert placeholders(site) == []
    assert run_cli("inventory", "check", "-i", site).rc == 0
    r = run_cli("kickstart", "-i", site, "-o", tmp_path / "ks")
    assert r.rc == 0, r.err
    assert (tmp_path / "ks" / "ks" / "wn01.cfg").is_file()


def test_init_never_overwrites(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "hosts.yml").write_text("mine\n")
    assert_one_line_error(run_cli("init", taken), str(taken), "not empty")
    assert (taken / "hosts.yml").read_text() == "mine\n" and len(list(taken.iterdir())) == 1

    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert_one_line_error(run_cli("init", a_file), str(a_file), "not a directory")
    assert_one_line_error(run_cli("init", tmp_path / "no" / "site"), "does not exist")

    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("init", empty).rc == 0 and (empty / "hosts.yml").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
@pytest.mark.parametrize("trouble", ["disk full", "read-only"])
def test_init_that_cannot_write_leaves_nothing(tmp_path: Path, trouble: str) -> None:
    with tmpfs(tmp_path / "fs", "64k") as fs:
        if trouble == "disk full":
            fill_fs(fs)
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        assert_one_line_error(run_cli("init", fs / "site"), str(fs / "site"), trouble)
        assert [p.name for p in fs.iterdir() if p.name != "filler"] == []
