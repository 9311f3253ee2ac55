"""The smoke domain's clean-up is judged by libvirt's error codes, not by its (translated) messages.

Real libvirt (the test:///default driver) in a child process whose locale is Italian: libvirt then
words its errors in Italian (Debian's libvirt-l10n), as a libvirt daemon running in an Italian locale
does for a remote client.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.foreign_locale import foreign_locale_env

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, locale
locale.setlocale(locale.LC_ALL, "")  # what a program does to speak the user's language
import libvirt
from b2ct.check.smoke import already_gone
libvirt.registerErrorHandler(lambda *_: None, None)
conn = libvirt.open("test:///default")
out = {}
def record(name, call):
    try:
        call()
    except libvirt.libvirtError as exc:
        out[name] = [str(exc), already_gone(exc)]
dom = conn.lookupByName("test")
dom.destroy()
record("not running", dom.destroy)
record("no domain", lambda: conn.lookupByName("b2ct-no-such-domain").destroy())
record("other error", lambda: conn.createXML("<domain type='test'><name>x</name></domain>", 0))
print(json.dumps(out))
"""


def test_destroy_of_a_stopped_or_vanished_domain_counts_as_destroyed_in_any_language(tmp_path: Path) -> None:
    env = foreign_locale_env(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    # the messages really are Italian: the old test on "not found"/"not running" would have failed
    assert "non" in seen["not running"][0] and "not running" not in seen["not running"][0], seen
    assert "not found" not in seen["no domain"][0].lower(), seen
    assert seen["not running"][1] is True and seen["no domain"][1] is True
    assert seen["other error"][1] is False
