"""The environment external tools run in when b2ct reads what they print.

Tools translate their messages with gettext, and libc translates strerror ("No such file or directory",
"No space left on device"), into the caller's language. b2ct decides some things from those texts and
quotes others in its one-line errors, so it runs the tools in C.UTF-8: untranslated messages, UTF-8
file names. LANGUAGE goes too: gettext prefers it to LC_ALL in every locale except plain C (glibc
2.36: `LANGUAGE=it LC_ALL=C.UTF-8 ls /x` answers in Italian).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

PARSABLE_LOCALE = "C.UTF-8"


def untranslated(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment) with every locale variable set to C.UTF-8 and
    LANGUAGE removed; everything else is kept."""
    out = {k: v for k, v in (os.environ if env is None else env).items() if not k.startswith("LC_")}
    out.pop("LANGUAGE", None)
    out.update(LC_ALL=PARSABLE_LOCALE, LANG=PARSABLE_LOCALE)
    return out
