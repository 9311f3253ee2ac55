"""Label rules and boot config rewriting, on text (no tools needed)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from b2ct.errors import B2ctError
from b2ct.media import bootcfg
from b2ct.media.labels import escape_label, validate_fat_label, validate_iso_label

EL9 = bootcfg.BootSpec(label="B2CTKEY", ks_arg="inst.ks", stage2_arg="inst.stage2", timeout=2)
EL6 = bootcfg.BootSpec(label="B2CTKEY", ks_arg="ks", stage2_arg=None, timeout=2)


@pytest.mark.parametrize("label", ["B2CTKEY", "A", "KEY_01-X", "ABCDEFGHIJK"])
def test_fat_label_ok(label: str) -> None:
    assert validate_fat_label(label) == label


@pytest.mark.parametrize(
    ("label", "fragment"),
    [
        ("ABCDEFGHIJKL", "12 characters, FAT allows 11"),
        ("b2ctkey", "not uppercase"),
        ("B2CT KEY", "not uppercase"),
        ("ANACONDA", "reserved"),
        ("", "empty"),
    ],
)
def test_fat_label_refused(label: str, fragment: str) -> None:
    with pytest.raises(B2ctError) as exc:
        validate_fat_label(label)
    assert fragment in exc.value.message
    assert "\n" not in exc.value.oneline()


def _proposals(hint: str | None) -> list[str]:
    """Every value a hint proposes: the quoted words after 'use', and the 'e.g.' examples."""
    return re.findall(r"use '([^']*)'", hint or "") + re.findall(r"e\.g\. ([A-Za-z0-9_.-]+)", hint or "")


@pytest.mark.parametrize(
    ("label", "validate"),
    [
        ("oemdrv", validate_fat_label),
        ("anaconda", validate_fat_label),
        ("oemdrv", validate_iso_label),
        ("OEMDRV", validate_fat_label),
    ],
)
def test_reserved_label_hint_proposes_no_reserved_value(label: str, validate) -> None:
    """make-usb --label oemdrv used to answer "use 'OEMDRV'", then refuse OEMDRV as reserved."""
    with pytest.raises(B2ctError) as exc:
        validate(label)
    assert "reserved" in exc.value.message
    assert "OEMDRV" not in _proposals(exc.value.hint) and "ANACONDA" not in _proposals(exc.value.hint)


@pytest.mark.parametrize("validate", [validate_fat_label, validate_iso_label])
@settings(max_examples=400, deadline=None)
@given(
    label=st.one_of(
        st.text(max_size=40),
        st.sampled_from(["oemdrv", "Oemdrv", "anaconda", "ANACONDA"]),
        st.from_regex(r"[a-z0-9 _.-]{1,40}", fullmatch=True),
    )
)
def test_label_hints_propose_only_accepted_values(validate, label: str) -> None:
    """Whatever a label is refused for, every value its hint proposes is accepted."""
    try:
        validate(label)
    except B2ctError as exc:
        for proposal in _proposals(exc.hint):
            assert validate(proposal) == proposal, (label, exc.hint)


def test_iso_label_rules() -> None:
    assert validate_iso_label("AlmaLinux-9-4-x86_64-dvd") == "AlmaLinux-9-4-x86_64-dvd"
    for bad in ("x" * 33, "has space", ""):
        with pytest.raises(B2ctError):
            validate_iso_label(bad)


def test_escape_label() -> None:
    assert escape_label("CentOS 7 x86_64") == "CentOS\\x207\\x20x86_64"
    assert escape_label("Rocky-9.2_x") == "Rocky-9.2_x"


ISOLINUX = """default vesamenu.c32
timeout 600
label linux
  menu label ^Install
  kernel vmlinuz
  append initrd=initrd.img inst.stage2=hd:LABEL=OLD quiet
label check
  menu label Test this ^media & install
  menu default
  kernel vmlinuz
  append initrd=initrd.img inst.stage2=hd:LABEL=OLD rd.live.check quiet inst.ks=cdrom:/old.cfg
label rescue
  kernel vmlinuz
  append initrd=initrd.img inst.stage2=hd:LABEL=OLD inst.rescue quiet
label local
  localboot 0xffff
"""


def test_isolinux_every_entry_rewritten() -> None:
    out = bootcfg.rewrite_isolinux(ISOLINUX, EL9)
    appends = [ln.split()[1:] for ln in out.splitlines() if ln.strip().startswith("append")]
    assert len(appends) == 3
    for args in appends:
        assert args.count("inst.ks=hd:LABEL=B2CTKEY:/ks.cfg") == 1
        assert "inst.stage2=hd:LABEL=B2CTKEY" in args
        assert not any("OLD" in a or a.startswith("ks=") or "old.cfg" in a for a in args)
    assert "localboot 0xffff" in out
    assert "timeout 20" in out
    # default moved from "check" to the plain install entry
    lines = [ln.strip() for ln in out.splitlines()]
    assert lines[lines.index("label linux") + 1] == "menu default"
    assert lines.count("menu default") == 1


def test_isolinux_el6_uses_ks_only() -> None:
    out = bootcfg.rewrite_isolinux(ISOLINUX, EL6)
    assert "ks=hd:LABEL=B2CTKEY:/ks.cfg" in out
    assert "inst.ks=" not in out


GRUB = """set default="1"
set timeout=60
search --no-floppy --set=root -l 'OLD-LABEL'
menuentry 'Install' --class fedora {
\tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=OLD-LABEL quiet
\tinitrdefi /images/pxeboot/initrd.img
}
menuentry 'Test this media & install' {
\tlinux /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=OLD-LABEL rd.live.check quiet
\tinitrd /images/pxeboot/initrd.img
}
submenu 'Troubleshooting -->' {
\tmenuentry 'Rescue' {
\t\tlinux /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=OLD-LABEL inst.rescue
\t\tinitrd /images/pxeboot/initrd.img
\t}
}
"""


def test_grub2_every_entry_and_search_rewritten() -> None:
    out = bootcfg.rewrite_grub2(GRUB, EL9)
    assert "OLD-LABEL" not in out
    kernels = [ln for ln in out.splitlines() if ln.strip().startswith(("linux", "linuxefi"))]
    assert len(kernels) == 3
    assert all(ln.endswith("inst.ks=hd:LABEL=B2CTKEY:/ks.cfg") for ln in kernels)
    assert "search --no-floppy --set=root -l 'B2CTKEY'" in out
    assert 'set default="0"' in out and "set timeout=2" in out
    assert [e.title for e in bootcfg.grub2_entries(out)] == ["Install", "Test this media & install", "Rescue"]


def test_grub2_quotes_escaped_labels() -> None:
    spec = bootcfg.BootSpec(label="CentOS 7 x86_64", ks_arg="inst.ks", stage2_arg="inst.stage2")
    out = bootcfg.rewrite_grub2(GRUB, spec)
    assert "'inst.ks=hd:LABEL=CentOS\\x207\\x20x86_64:/ks.cfg'" in out


LEGACY = """default=1
timeout 5
title CentOS 6.7
\tkernel /images/pxeboot/vmlinuz
\tinitrd /images/pxeboot/initrd.img
title CentOS 6.7 (rescue)
\tkernel /images/pxeboot/vmlinuz rescue
\tinitrd /images/pxeboot/initrd.img
"""


def test_grub_legacy_rewritten() -> None:
    out = bootcfg.rewrite_grub_legacy(LEGACY, EL6)
    kernels = [ln.split() for ln in out.splitlines() if ln.strip().startswith("kernel")]
    assert len(kernels) == 2 and all(k[-1] == "ks=hd:LABEL=B2CTKEY:/ks.cfg" for k in kernels)
    assert "default=0" in out and "timeout 2" in out


@pytest.mark.parametrize(
    ("syntax", "text"), [("isolinux", "label x\n  localboot 0\n"), ("grub2", "set a=b\n")]
)
def test_config_without_entries_refused(syntax: str, text: str) -> None:
    with pytest.raises(B2ctError, match="no boot entry"):
        bootcfg.rewrite(text, syntax, EL9, where="x.cfg")


def test_isolinux_entry_with_initrd_line_gets_an_append_line() -> None:
    """An entry may name its initrd on its own line and have no append line: it still boots the
    installer, so it gets the kickstart; a kernel without initrd (memtest) is left alone."""
    text = (
        "default sep\nlabel sep\n  kernel vmlinuz\n  initrd initrd.img\n"
        "label memtest\n  kernel memtest\nlabel linux\n  kernel vmlinuz\n  append initrd=initrd.img quiet\n"
    )
    assert bootcfg.unedited(text, "isolinux", EL9)  # both installer entries lack it before
    out = bootcfg.rewrite_isolinux(text, EL9)
    assert bootcfg.unedited(out, "isolinux", EL9) == []
    lines = [ln.strip() for ln in out.splitlines()]
    assert lines[lines.index("kernel vmlinuz") + 1].startswith("append inst.stage2=hd:LABEL=B2CTKEY")
    assert lines[lines.index("kernel memtest") + 1] == "label linux"


@pytest.mark.parametrize(
    ("text", "syntax"),
    [
        (GRUB, "grub2"),
        (LEGACY, "grub-legacy"),
        (ISOLINUX, "isolinux"),
        ("set timeout=5\nconfigfile /EFI/BOOT/other.cfg\n", None),
    ],
)
def test_syntax_of(text: str, syntax: str | None) -> None:
    assert bootcfg.syntax_of(text) == syntax
