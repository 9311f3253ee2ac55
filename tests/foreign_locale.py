"""A real non-English locale for tests of code that reads other programs' messages.

``localedef`` compiles it_IT.UTF-8 from the sources of Debian's ``locales`` package into a private
directory given as LOCPATH, so nothing on the machine changes. The Italian texts come from
``libc-l10n`` (libc's strerror: "Operazione non supportata") and from each tool's own translations.
Both packages are in .ci/packages/base.apt.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

LOCALE = "it_IT.UTF-8"


def foreign_locale_env(work: Path) -> dict[str, str]:
    """This process's environment with LC_ALL/LANG/LANGUAGE set to Italian, the locale built in ``work``.

    Fails (AssertionError naming the packages) when the locale cannot be built or does not translate
    libc's messages: a test meant to catch English-only parsing would then prove nothing.
    """
    out = work / "locales"
    if not (out / LOCALE / "LC_CTYPE").is_file():
        out.mkdir(parents=True, exist_ok=True)
        built = subprocess.run(
            ["localedef", "-i", "it_IT", "-f", "UTF-8", str(out / LOCALE)], capture_output=True, text=True
        )
        assert built.returncode == 0, f"localedef {LOCALE} failed (apt-get install locales): {built.stderr}"
    env = {**os.environ, "LOCPATH": str(out), "LC_ALL": LOCALE, "LANG": LOCALE, "LANGUAGE": "it"}
    probe = subprocess.run(["ls", "/nonexistent-b2ct-probe"], env=env, capture_output=True, text=True)
    assert "No such file" not in probe.stderr and probe.stderr, (
        f"{LOCALE} does not translate libc's messages (apt-get install libc-l10n): {probe.stderr!r}"
    )
    return env
