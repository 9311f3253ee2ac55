"""Media tools run untranslated: their messages are read (decisions, one-line errors) in any locale.

The caller's environment is a real Italian locale (tests/foreign_locale.py); mtools and libc then word
their errors in Italian unless b2ct runs them in C.UTF-8.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from b2ct.errors import B2ctError
from b2ct.media import esp, tools
from b2ct.toolenv import untranslated
from tests.foreign_locale import foreign_locale_env


@pytest.fixture
def italian(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = foreign_locale_env(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_a_tool_error_is_quoted_in_english(italian: dict[str, str], tmp_path: Path) -> None:
    # sfdisk (util-linux) words libc's strerror in the caller's language: "File o directory non esistente".
    with pytest.raises(B2ctError) as raised:
        tools.run(["sfdisk", tmp_path / "missing.img"], what="key.img", input=b"")
    assert raised.value.message.endswith("No such file or directory"), raised.value.message


def test_a_missing_file_in_a_fat_image_is_absent_not_an_error(
    italian: dict[str, str], tmp_path: Path
) -> None:
    image = tmp_path / "esp.img"
    subprocess.run(["mkfs.fat", "-C", "-n", "ESP", str(image), "2048"], check=True, capture_output=True)
    assert esp.read_file(image, 0, "EFI/BOOT/grub.cfg", where=str(image)) is None


def test_untranslated_environment() -> None:
    env = untranslated(
        {"PATH": "/bin", "LANG": "it_IT.UTF-8", "LC_MESSAGES": "it_IT.UTF-8", "LANGUAGE": "it"}
    )
    assert env == {"PATH": "/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    # and the run wrapper hands it to the tool
    assert tools.run(["sh", "-c", "echo $LC_ALL-${LANGUAGE-unset}"], what="probe").strip() == b"C.UTF-8-unset"
