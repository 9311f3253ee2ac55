"""Every example host's kickstart and the rack kickstart validate under pykickstart per release."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from b2ct import resources
from b2ct.errors import B2ctError
from b2ct.inventory import load
from b2ct.kickstart import render, validate
from tests.conftest import EXAMPLE, assert_one_line_error, run_cli

HANDLERS = {"el6": "RHEL6", "el8": "RHEL8", "el9": "RHEL9", "el10": "RHEL10"}


@pytest.fixture(scope="module")
def site():
    return load(EXAMPLE)


@pytest.mark.parametrize("release", ["el6", "el8", "el9", "el10"])
def test_every_host_and_rack_validate(site, release: str) -> None:
    rendered = render(site, release)
    assert set(rendered.files) == {"ks.cfg", *(f"ks/{h.name}.cfg" for h in site.hosts)}
    for name, text in rendered.files.items():
        validate(text, HANDLERS[release], name)  # raises on any error or deprecation
        assert "%include" not in text or name == "ks.cfg"


def test_release_specific_syntax(site) -> None:
    el6 = render(site, "el6").files["ks/wn01.cfg"]
    el9 = render(site, "el9").files["ks/wn01.cfg"]
    assert el6.startswith("# b2ct") and "\ninstall\n" in el6 and "authconfig" in el6
    assert "sshkey" not in el6 and "authorized_keys" in el6  # no sshkey command before EL7
    assert "\ninstall\n" not in el9 and "sshkey --username=root" in el9
    for text in (el6, el9):
        assert "rootpw --iscrypted $6$" in text
        assert "--plaintext" not in text
        assert "/sys/kernel/mm/ksm/run" in text


def test_host_contents_follow_inventory(site) -> None:
    files = render(site, "el9").files
    fe = files["ks/one-fe.cfg"]
    # the service host routes through its public NIC, and its private NIC carries the hostname
    assert "--device=52:54:00:10:00:10" in fe and "--nodefroute --hostname=one-fe" in fe
    assert "--ip=192.0.2.10 --netmask=255.255.255.0 --gateway=192.0.2.1" in fe
    wn04 = files["ks/wn04.cfg"]
    assert "--device=52:54:00:10:00:24 --onboot=yes --activate --bootproto=dhcp" in wn04
    # data disks are never touched by the installer: only the system disk is used
    assert "ignoredisk --only-use=sda" in files["ks/svc1.cfg"]
    assert "sdb" not in files["ks/svc1.cfg"]
    # a worker with no ephemeral disk would keep its datastores on the system disk
    assert "logvol /var/lib/one/datastores" not in files["ks/wn01.cfg"]
    rack = files["ks.cfg"]
    for h in site.hosts:
        for mac in h.macs:
            assert f"    {mac}) echo {h.name} ;;" in rack
    assert "'CZJ0004WN') echo wn04 ;;" in rack


def test_release_not_installable_by_kickstart(tmp_path: Path, site_copy: Path) -> None:
    text = (
        (site_copy / "group_vars/all.yml")
        .read_text()
        .replace("b2ct_os_release: el9", "b2ct_os_release: debian12")
    )
    (site_copy / "group_vars/all.yml").write_text(text)
    assert_one_line_error(
        run_cli("kickstart", "-i", site_copy, "-o", tmp_path / "o"), "not installed by kickstart"
    )


def _template_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "kickstart"
    shutil.copytree(resources.kickstart_dir(), dest)
    return dest


def test_invalid_template_change_is_caught(site, tmp_path: Path) -> None:
    """A template edit that produces a bad kickstart fails validation, naming the file and line."""
    templates = _template_copy(tmp_path)
    base = templates / "base.ks.j2"
    base.write_text(
        base.read_text().replace("selinux --enforcing", "selinux --enforcing\nnetwork --bogus-option=dhcp")
    )
    with pytest.raises(B2ctError) as exc:
        render(site, "el9", templates=templates)
    line = exc.value.oneline()
    assert "unrecognized arguments: --bogus-option" in line, line
    assert line.startswith("ks/") or line.startswith("ks.cfg"), line


def test_removed_command_for_release_is_caught(site, tmp_path: Path) -> None:
    templates = _template_copy(tmp_path)
    table = templates / "releases.yml"
    # pretend EL9 still wanted "install": RHEL9 removed it
    text = table.read_text()
    start = text.index("el9:")
    table.write_text(
        text[:start] + text[start:].replace("install_command: false", "install_command: true", 1)
    )
    render(site, "el8")  # untouched releases are fine
    with pytest.raises(B2ctError, match="install has been removed"):
        render(site, "el9", templates=templates)


def test_undefined_template_variable_names_template_line(site, tmp_path: Path) -> None:
    templates = _template_copy(tmp_path)
    host = templates / "host.ks.j2"
    host.write_text(
        host.read_text().replace("{{ m.network(h) }}", "{{ m.network(h) }}\n# {{ h.no_such_field }}")
    )
    with pytest.raises(B2ctError) as exc:
        render(site, "el9", templates=templates)
    assert "no_such_field" in exc.value.message
    assert exc.value.where and "host.ks.j2:" in exc.value.where


def test_template_syntax_error(site, tmp_path: Path) -> None:
    templates = _template_copy(tmp_path)
    base = templates / "base.ks.j2"
    base.write_text(base.read_text().replace("{% block network %}{% endblock %}", "{% block network %}"))
    with pytest.raises(B2ctError, match="template syntax error"):
        render(site, "el9", templates=templates)


def test_cli_writes_all_files(tmp_path: Path) -> None:
    out = tmp_path / "ks"
    result = run_cli("kickstart", "-i", EXAMPLE, "-o", out, "--release", "el10")
    assert result.rc == 0, result.err
    assert (out / "ks.cfg").is_file() and len(list((out / "ks").glob("*.cfg"))) == 7
    validate((out / "ks.cfg").read_text(), "RHEL10", "ks.cfg")


def test_fast_handler_copy_agrees_with_a_fresh_handler(site) -> None:
    """validate() reuses a pristine handler's parsers; it must judge exactly like makeVersion()."""
    import warnings

    from pykickstart.errors import KickstartError
    from pykickstart.parser import KickstartParser
    from pykickstart.version import makeVersion

    good = render(site, "el9").files["ks/wn01.cfg"]
    bad = good.replace("--bootproto=static", "--bootproto=static --bogus")
    twice = good + good  # duplicate definitions: parse warnings, so state must not leak between calls

    def fresh(text: str) -> str:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                KickstartParser(makeVersion("RHEL9"), missingIncludeIsFatal=False).readKickstartFromString(
                    text
                )
            except KickstartError:
                return "error"
        return "warning" if caught else "ok"

    def fast(text: str) -> str:
        try:
            validate(text, "RHEL9", "x")
        except B2ctError as exc:
            return "warning" if "(warning)" in exc.message else "error"
        return "ok"

    for text in (good, bad, good, twice, good):
        assert fast(text) == fresh(text)
    assert [fast(t) for t in (good, bad, twice)] == ["ok", "error", "warning"]


def test_validator_complaint_points_at_the_inventory_line(site_copy: Path) -> None:
    """A value pykickstart rejects is blamed on the inventory line that set it, not on ks/HOST.cfg:N.

    load() refuses such values itself; the model is changed after loading to reach the validator with one,
    as a value load() does not (yet) understand would.
    """
    import dataclasses

    from tests.conftest import edit

    line = edit(
        site_copy / "group_vars" / "all.yml",
        "b2ct_timezone: Europe/Rome",
        "b2ct_timezone: Europe/Rome\nb2ct_keyboard: it",
    )
    site = load(site_copy)
    bad = dataclasses.replace(site, keyboard="it --bogus")
    with pytest.raises(B2ctError) as info:
        render(bad)
    message = info.value.oneline()
    assert f"group_vars/all.yml:{line + 1}: b2ct_keyboard 'it --bogus'" in message, message
    assert "ks/" in message and "pykickstart" in message, message
