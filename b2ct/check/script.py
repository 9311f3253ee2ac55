"""The one shell script each host runs over ssh: every fact the checks need, in a single round trip.

Sections run concurrently on the host (gluster and squid calls take a second or two each) and are printed
in order between markers; `sections()` splits the output back into {name: Section}. Only POSIX sh and
tools present on EL8+/Debian 12 hosts are used.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from b2ct.check.expect import HostExpect

BEGIN = "@@B2CT-BEGIN "
END = "@@B2CT-END "
SMOKE_DIR = "/var/lib/b2ct/smoke"

_PRELUDE = r"""
set -u
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin
t=$(mktemp -d /tmp/b2ct-check.XXXXXX) || exit 97
trap 'rm -rf "$t"' EXIT
sec() { # name function: run the function, output framed by markers, exit status last
  n=$1; shift
  { printf '%s%s\n' '@@B2CT-BEGIN ' "$n"; "$@" 2>&1; rc=$?; printf '\n%s%s %s\n' '@@B2CT-END ' "$n" "$rc"; } \
    > "$t/$n.out" 2>&1
}
unit() { printf '%s=%s/%s\n' "$1" "$(systemctl is-enabled "$1.service" 2>/dev/null)" \
  "$(systemctl is-active "$1.service" 2>/dev/null)"; }
s_host() { echo "kernel=$(uname -r)"; echo "hostname=$(hostname)"; }
s_cpu() {
  echo "vendor=$(awk -F': ' '/^vendor_id/ {print $2; exit}' /proc/cpuinfo)"
  echo "flags=$(grep -o -w -E 'vmx|svm' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  if [ -c /dev/kvm ]; then echo "devkvm=present"; else echo "devkvm=absent"; fi
  for m in kvm kvm_intel kvm_amd; do [ -d "/sys/module/$m" ] && echo "module=$m"; done; true
}
s_ksm() {
  for f in run pages_sharing pages_shared; do echo "$f=$(cat "/sys/kernel/mm/ksm/$f" 2>/dev/null)"; done
  unit ksm; unit ksmtuned
}
s_daemons() { unit libvirtd; unit virtqemud; unit glusterd; unit squid; }
s_smoke() { cd "$SMOKE_DIR" 2>/dev/null && sha256sum vmlinuz initrd.img 2>/dev/null; true; }
mountinfo() { # path: the filesystem holding it, and its size and free space in bytes
  [ -e "$1" ] || { echo "missing"; return 0; }
  findmnt -n -P -o TARGET,FSTYPE,SOURCE -T "$1"
  stat -f -c 'blocksize=%S total=%b avail=%a' "$1"
}
falloc() { # path: can we allocate (not sparse) a file there?
  f="$1/.b2ct-check-fallocate.$$"
  fallocate -l 1M "$f"; rc=$?; rm -f "$f"; return $rc
}
bridge() { # name; -d: netlink's linkinfo says "bridge" even where /sys shows another netns (containers)
  [ -d "/sys/class/net/$1/bridge" ] && echo "isbridge=yes" || echo "isbridge=no"
  ip -j -d addr show dev "$1"
}
gl() { # seconds args…: the gluster CLI, again while a peer's command holds glusterd's cluster-wide lock
  i=0
  while :; do
    out=$(timeout "$@" 2>&1); rc=$?
    case "$out" in
      *"Another transaction is in progress"* | *"Locking failed on"*) ;;
      *) printf '%s\n' "$out"; return $rc ;;
    esac
    i=$((i + 1))
    if [ $i -ge 8 ]; then printf '%s\n' "$out"; return $rc; fi
    sleep "$i"
  done
}
squid_probe() { # address port: does squid answer there, and does it serve a repeated request from cache?
  d=$(mktemp -d /tmp/b2ct-origin.XXXXXX)
  echo "b2ct check $$ $(date +%s%N)" > "$d/probe.txt"
  touch -d '2020-01-01' "$d/probe.txt"  # an old Last-Modified makes the object heuristically fresh
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  (cd "$d" && exec python3 -m http.server --bind 127.0.0.1 "$port") >/dev/null 2>&1 &
  pid=$!
  i=0
  while [ $i -lt 50 ] && ! curl -s -o /dev/null "http://127.0.0.1:$port/probe.txt"; do
    sleep 0.1; i=$((i+1))
  done
  for n in 1 2; do
    echo "request=$n"
    curl -sS -m 10 -o /dev/null -D - -x "http://$1:$2" "http://127.0.0.1:$port/probe.txt"
  done
  kill $pid 2>/dev/null; rm -rf "$d"; true
}
"""


def build(expect: HostExpect, with_gluster_cli: bool = True, read_one_auth: bool = False) -> str:
    """Return the probe script for one host, its parameters baked in (quoted).

    `read_one_auth`: also print oneadmin's OpenNebula credentials (the front-end, when the operator gave
    none), so the OpenNebula check needs no second ssh session. The runner keeps them out of the report.
    """
    q = shlex.quote
    lines = [_PRELUDE, f"SMOKE_DIR={q(SMOKE_DIR)}"]
    calls = [
        "sec host s_host",
        "sec cpu s_cpu",
        "sec ksm s_ksm",
        "sec daemons s_daemons",
        "sec smoke s_smoke",
    ]
    for i, m in enumerate(expect.mounts):
        calls.append(f"sec mount.{i} mountinfo {q(m.path)}")
        if m.fallocate:
            calls.append(f"sec fallocate.{i} falloc {q(m.path)}")
    for i, b in enumerate(expect.bridges):
        calls.append(f"sec bridge.{i} bridge {q(b.bridge)}")
    if expect.gluster and with_gluster_cli:
        calls.append("sec gluster.peers gl 20 gluster peer status --xml")
        for i, g in enumerate(expect.gluster):
            calls.append(f"sec gluster.status.{i} gl 20 gluster volume status {q(g.volume)} --xml")
            calls.append(f"sec gluster.heal.{i} gl 30 gluster volume heal {q(g.volume)} info --xml")
    if expect.squid_port:
        calls.append(f"sec squid squid_probe {q(expect.squid_address)} {int(expect.squid_port)}")
    if read_one_auth:
        calls.append("sec one_auth cat ~oneadmin/.one/one_auth")
    names = [c.split()[1] for c in calls]
    lines += [f"{c} &" for c in calls]
    lines.append("wait")
    lines.append("cat " + " ".join(f'"$t/{n}.out"' for n in names))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Section:
    rc: int
    out: str

    def kv(self) -> dict[str, str]:
        """`key=value` lines as a dict (repeated keys: the values joined by spaces)."""
        d: dict[str, str] = {}
        for line in self.out.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                d[key.strip()] = f"{d[key.strip()]} {value}".strip() if key.strip() in d else value.strip()
        return d


def sections(output: str) -> dict[str, Section]:
    """Split the script's output into sections; a section cut short (no end marker) gets rc -1."""
    result: dict[str, Section] = {}
    name: str | None = None
    body: list[str] = []
    for line in output.splitlines():
        if line.startswith(BEGIN):
            if name is not None:
                result[name] = Section(-1, "\n".join(body))
            name, body = line[len(BEGIN) :].strip(), []
        elif line.startswith(END) and name is not None:
            parts = line[len(END) :].split()
            rc = int(parts[-1]) if parts and parts[-1].lstrip("-").isdigit() else -1
            # sec() adds a newline before the end marker so unterminated output still splits cleanly
            if body and body[-1] == "":
                body.pop()
            result[name] = Section(rc, "\n".join(body))
            name, body = None, []
        elif name is not None:
            body.append(line)
    if name is not None:
        result[name] = Section(-1, "\n".join(body))
    return result
