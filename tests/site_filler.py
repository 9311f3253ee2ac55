"""Fill in the placeholders of `b2ct init`'s starting inventory the way a site admin would.

Each placeholder's text says what it stands for; ``value_for`` knows every one of them and fails on an
unknown text, so a placeholder added to inventory/new-site/ without a way to fill it fails the tests."""

from __future__ import annotations

import re
from pathlib import Path

from b2ct.inventory.placeholders import MARK

# Valid values of the example inventory (a real hash and a real key; they log nobody into anything here).
_EXAMPLE = Path(__file__).resolve().parent.parent / "inventory" / "example" / "group_vars" / "all.yml"
PLACEHOLDER = re.compile(rf'"({MARK}:[^"]*)"')
HOSTS = {"one-fe": 10, "svc1": 11, "svc2": 12, "wn01": 21, "wn02": 22}


def _example(key: str) -> str:
    text = _EXAMPLE.read_text()
    if key == "hash":
        return re.search(r'b2ct_root_password_hash: "([^"]+)"', text).group(1)  # type: ignore[union-attr]
    return re.search(r"^  - (ssh-ed25519 \S+ \S+)$", text, re.MULTILINE).group(1)  # type: ignore[union-attr]


def value_for(placeholder: str) -> str:
    """The site's value for one placeholder text (without quotes). Raises KeyError for unknown ones."""
    what = placeholder.removeprefix(f"{MARK}:").strip()
    fixed = {
        "the site's name, e.g. torino-cloud": "new-site",
        "private subnet, e.g. 10.10.0.0/24": "10.20.0.0/24",
        "private gateway address": "10.20.0.1",
        "a DNS server the hosts reach on the private network": "10.20.0.1",
        "public subnet": "198.51.100.0/24",
        "public gateway address": "198.51.100.1",
        "a DNS server the hosts reach on the public network": "198.51.100.53",
        "output of openssl passwd -6": _example("hash"),
        "an ssh public key, e.g. the content of ~/.ssh/id_ed25519.pub": _example("key"),
    }
    if what in fixed:
        return fixed[what]
    if what.startswith("URL of the BaseOS"):
        return "http://mirror.site.example/almalinux/9/BaseOS/x86_64/os/"
    if what.startswith("URL of the AppStream"):
        return "http://mirror.site.example/almalinux/9/AppStream/x86_64/os/"
    if m := re.fullmatch(r"(\S+)'s (private|public) IP address", what):
        base = "10.20.0" if m.group(2) == "private" else "198.51.100"
        return f"{base}.{HOSTS[m.group(1)]}"
    if m := re.fullmatch(r"MAC of (\S+)'s NIC on the (private|public) network", what):
        return f"02:b2:c7:{1 if m.group(2) == 'private' else 2:02x}:00:{HOSTS[m.group(1)]:02x}"
    raise KeyError(f"no value for the placeholder {placeholder!r}: teach tests/site_filler.py")


def placeholders(site: Path) -> list[tuple[Path, int, str]]:
    """(file, 1-based line, placeholder text) of every placeholder value in ``site``'s YAML files."""
    out = []
    for f in sorted(site.rglob("*.yml")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            out += [(f, n, m.group(1)) for m in PLACEHOLDER.finditer(line.split("#", 1)[0])]
    return out


def fill(site: Path, keep: tuple[Path, int] | None = None) -> None:
    """Replace every placeholder in ``site`` by its value, except the one at ``keep`` (file, line)."""
    for f in sorted(site.rglob("*.yml")):
        lines = f.read_text().splitlines(keepends=True)
        for i, line in enumerate(lines):
            if (f, i + 1) == keep:
                continue
            code, sep, comment = line.partition("#") if "#" in line.split('"')[0] else (line, "", "")
            code = PLACEHOLDER.sub(lambda m: f'"{value_for(m.group(1))}"', code)
            lines[i] = code + sep + comment
        f.write_text("".join(lines))
