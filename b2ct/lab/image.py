"""The lab's base image: a debootstrapped Debian 12 with every package the roles install, built once.

Lab hosts have no internet, so the image is their only source of Debian packages. OpenNebula's own
packages are not in it: the lab serves OpenNebula's repository over HTTP as a site mirror would
(b2ct/lab/mirror.py), and the roles install them from there. The Debian packages those need (Ruby and
its gems, genisoimage, jq…) are in the image: installed in the default image, in its local repository
in the bare one. They are found by asking apt what installing every package of that repository takes.

The image is cached under /var/cache/b2ct/lab/ keyed by a hash of the suite, the package list, the
OpenNebula repository's index and the recipe version; it is built into a temporary directory and
renamed into place, so a killed build never leaves a half image that a later `lab up` would trust.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from b2ct import tools
from b2ct.errors import B2ctError
from b2ct.ui import info, step

SUITE = "bookworm"
# Bump when the configuration steps below change: the cache key changes and images are rebuilt.
RECIPE_VERSION = "4"
BARE_RECIPE_VERSION = "2"
CACHE_DIR = Path(os.environ.get("B2CT_LAB_CACHE", "/var/cache/b2ct/lab"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Enough for debootstrap to make a bootable system with apt; the rest goes in with apt, whose
# resolver handles alternatives and virtual packages that debootstrap's does not.
_BOOTSTRAP = ["systemd", "systemd-sysv", "dbus", "python3", "apt", "ca-certificates"]

# Installed but not started at boot: the roles enable what a host class needs, and a lab of four
# hosts each running MariaDB, libvirtd, squid and glusterd would boot slowly for nothing.
_DISABLED_UNITS = [
    "mariadb.service",
    "squid.service",
    "glusterd.service",
    "glustereventsd.service",
    "libvirtd.service",
    "libvirtd.socket",
    "libvirtd-ro.socket",
    "libvirtd-admin.socket",
    "libvirt-guests.service",
    "virtlogd.socket",
    "virtlockd.socket",
    "virtlogd-admin.socket",
    "virtlockd-admin.socket",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "lvm2-monitor.service",
    "dm-event.socket",
    "lvm2-lvmpolld.socket",
]
# No network beyond the lab: waiting for "online" would only delay boot.
_MASKED_UNITS = ["systemd-networkd-wait-online.service"]


# Where the bare image keeps its local repository: the role packages with their dependencies.
REPO_DIR = "srv/b2ct-debs"
# Where the OpenNebula repository is bound (read-only) while the image is built.
ONE_REPO_MOUNT = "/srv/b2ct-opennebula"


def package_lists() -> tuple[list[str], list[str]]:
    """(base, roles): what every lab host has, and what the roles install (packages.txt's [roles])."""
    text = resources.files("b2ct.lab").joinpath("packages.txt").read_text(encoding="utf-8")
    lists: tuple[list[str], list[str]] = ([], [])
    current = lists[0]
    for raw in text.splitlines():
        line = raw.strip()
        if line == "[roles]":
            current = lists[1]
        elif line and not line.startswith("#"):
            current.append(line)
    return lists


def package_list() -> list[str]:
    base, roles = package_lists()
    return base + roles


def cache_key(
    packages: list[str] | None = None, bare: bool = False, opennebula_repo: Path | None = None
) -> str:
    """16 hex digits naming the image: changes with the suite, the recipe, the package lists and the
    index (``Packages``) of the OpenNebula repository whose dependencies the image carries."""
    packages = sorted(set(packages if packages is not None else package_list()))
    blob = "\n".join([SUITE, RECIPE_VERSION, *packages]).encode()
    if bare:
        blob += f"\nbare {BARE_RECIPE_VERSION}\n".encode() + "\n".join(package_lists()[0]).encode()
    if opennebula_repo is not None:
        blob += b"\nopennebula\n" + (opennebula_repo / "Packages").read_bytes()
    return hashlib.sha256(blob).hexdigest()[:16]


def image_path(key: str | None = None, bare: bool = False, opennebula_repo: Path | None = None) -> Path:
    return (
        CACHE_DIR
        / f"{'bare' if bare else 'base'}-{key or cache_key(bare=bare, opennebula_repo=opennebula_repo)}"
    )


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    # Concurrent cold `lab up`s (several engineers, CI) must not debootstrap the same image twice.
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _run(cmd: list[str], log: Path, what: str) -> None:
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-5:]
        raise B2ctError(
            f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}",
            where=log,
            hint="check that the Debian mirror is reachable (B2CT_LAB_MIRROR) and see the log",
        )


def _mounted_under(path: Path) -> bool:
    prefix = str(path) + "/"
    with open("/proc/self/mounts") as fh:
        return any(line.split()[1].startswith(prefix) or line.split()[1] == str(path) for line in fh)


def _remove_stale_builds() -> None:
    # Called under the build lock: no other build can be running, so every .build-* is a leftover
    # of a killed build. Refuse to delete anything with a mount inside (never rm through a mount).
    for stale in CACHE_DIR.glob(".build-*"):
        if _mounted_under(stale):
            info(f"[yellow]leaving {stale}: something is mounted inside it[/yellow]")
            continue
        shutil.rmtree(stale, ignore_errors=True)


def _chroot_cmd(root: Path, debs: Path, *cmd: str, one_repo: Path | None = None) -> list[str]:
    # nspawn (no --boot) gives the package scripts a real /proc, /dev and /sys without us mounting
    # anything in the host's namespace that a killed build could leave behind.
    return [
        "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", str(root),
        f"--bind={debs}:/var/cache/apt/archives",
        *([f"--bind-ro={one_repo}:{ONE_REPO_MOUNT}"] if one_repo is not None else []),
        "-E", "DEBIAN_FRONTEND=noninteractive", "-E", "LC_ALL=C.UTF-8",
        *cmd,
    ]  # fmt: skip


def repo_package_names(repo: Path) -> list[str]:
    """The names of the packages a flat apt repository's ``Packages`` index lists (Debian policy §5.3).

    Raises B2ctError when the index cannot be read."""
    try:
        text = (repo / "Packages").read_text(encoding="utf-8")
    except OSError as exc:
        raise B2ctError(
            f"cannot read the repository index: {exc.strerror}", where=repo / "Packages"
        ) from None
    return sorted({m.group(1) for m in re.finditer(r"^Package:\s*(\S+)", text, re.MULTILINE)})


def ensure_image(rebuild: bool = False, bare: bool = False, opennebula_repo: Path | None = None) -> Path:
    """Return the cached base image for the current package list, building it first if needed.

    ``bare``: the image without the roles' packages, which it carries as a local repository instead.
    ``opennebula_repo``: a flat apt repository of OpenNebula; the image gets the Debian packages that
    installing all of it needs (not OpenNebula's own, which the lab's mirror serves).
    """
    packages = package_list()
    key = cache_key(packages, bare=bare, opennebula_repo=opennebula_repo)
    target = image_path(key, bare=bare)
    if target.is_dir() and not rebuild:
        return target
    with _build_lock():
        if target.is_dir() and not rebuild:
            return target  # another process built it while we waited for the lock
        _remove_stale_builds()
        kind = "bare image" if bare else "base image"
        with step(f"building lab {kind} {target.name} (Debian {SUITE}, {len(packages)} packages)"):
            _build(target, packages, key, bare=bare, opennebula_repo=opennebula_repo)
    return target


def _build(
    target: Path, packages: list[str], key: str, bare: bool = False, opennebula_repo: Path | None = None
) -> None:
    for tool in ("debootstrap", "systemd-nspawn"):
        tools.need(tool)
    mirror = os.environ.get("B2CT_LAB_MIRROR", DEFAULT_MIRROR)
    build = CACHE_DIR / f".build-{key}-{os.getpid()}"
    root = build / "rootfs"
    debs = CACHE_DIR / "debs"  # downloaded .debs are kept: a rebuild after a list change is quicker
    debs.mkdir(parents=True, exist_ok=True)
    (debs / "partial").mkdir(exist_ok=True)
    root.mkdir(parents=True)
    log = build / "build.log"
    started = time.monotonic()
    try:
        with step("debootstrap (minbase)"):
            _run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(_BOOTSTRAP)}",
                 f"--cache-dir={debs}", SUITE, str(root), mirror],
                log, "debootstrap",
            )  # fmt: skip
        (root / "etc/apt/sources.list").write_text(f"deb {mirror} {SUITE} main\n")
        # Package scripts must not start daemons in the build container.
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        base_packages, role_packages = package_lists()
        wanted = base_packages if bare else packages
        rest = [p for p in wanted if p not in _BOOTSTRAP]
        with step(f"apt-get install {len(rest)} packages"):
            _run(_chroot_cmd(root, debs, "apt-get", "update"), log, "apt-get update")
            _run(
                _chroot_cmd(root, debs, "apt-get", "install", "-y", "--no-install-recommends", *rest),
                log, "apt-get install",
            )  # fmt: skip
        one_deps: list[str] = []
        if opennebula_repo is not None:
            with step("what OpenNebula's packages need from Debian"):
                one_deps = _opennebula_dependencies(root, debs, opennebula_repo, log)
            if not bare:
                with step(f"apt-get install {len(one_deps)} packages OpenNebula depends on"):
                    install = ["apt-get", "install", "-y", "--no-install-recommends", *one_deps]
                    _run(
                        _chroot_cmd(root, debs, *install), log, "apt-get install (OpenNebula's dependencies)"
                    )
        if bare:
            wanted_debs = sorted(set(role_packages) | set(one_deps))
            with step(f"local repository for {len(wanted_debs)} role and OpenNebula packages"):
                _local_repo(root, debs, wanted_debs, log)
        else:
            # Lab hosts reach no Debian mirror: every Debian package the roles need is installed, and
            # stale lists of an unreachable source would only make `apt-get update` fail.
            (root / "etc/apt/sources.list").write_text(
                "# b2ct lab: no Debian mirror is reachable; every package the roles need is installed\n"
            )
            for lists in (root / "var/lib/apt/lists").glob("*_dists_*"):
                lists.unlink()
        with step("configuring image"):
            _configure(root)
        policy.unlink()
        (build / "packages.txt").write_text("\n".join(packages) + "\n")
        (build / "built").write_text(f"{time.time():.0f} {time.monotonic() - started:.0f}s {mirror}\n")
        os.rename(build, target)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise


def _local_repo(root: Path, debs: Path, packages: list[str], log: Path) -> None:
    """Put the .debs that installing ``packages`` on this image needs into a repository inside it.

    The lab hosts' only package source then: the first deploy installs through apt, as it does from a
    site's mirror. The files are hard links into the shared download cache, so they cost no space.
    """
    install = ["apt-get", "install", "-y", "--no-install-recommends"]
    _run(_chroot_cmd(root, debs, *install, "--download-only", *packages), log, "apt-get --download-only")
    sim = subprocess.run(
        _chroot_cmd(root, debs, *install, "--simulate", *packages),
        capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    if sim.returncode != 0:
        raise B2ctError(f"apt-get --simulate failed: {sim.stderr.strip()[-300:]}", where=log)
    repo = root / REPO_DIR
    repo.mkdir(parents=True)
    index = []
    for m in _INST.finditer(sim.stdout):
        name, version, arch = m.group(1), m.group(2), m.group(3)
        deb = debs / f"{name}_{version.replace(':', '%3a')}_{arch}.deb"
        if not deb.is_file():
            raise B2ctError(f"{deb.name} is not in the download cache", where=debs)
        os.link(deb, repo / deb.name)
        index.append(_index_entry(repo / deb.name))
    if not index:
        raise B2ctError("the role packages need nothing the image lacks", where=log)
    (repo / "Packages").write_text("\n".join(index))
    (root / "etc/apt/sources.list").write_text(f"deb [trusted=yes] file:/{REPO_DIR} ./\n")
    # Lists of the local repository only: `apt` state=present finds the packages with no network.
    _run(_chroot_cmd(root, debs, "apt-get", "update"), log, "apt-get update (local repository)")


def _opennebula_dependencies(root: Path, debs: Path, repo: Path, log: Path) -> list[str]:
    """Debian packages (names) that installing every package of ``repo`` needs on this image,
    Recommends included as apt installs them by default; OpenNebula's own packages excluded."""
    one = repo_package_names(repo)
    source = root / "etc/apt/sources.list.d/b2ct-build-opennebula.list"
    source.write_text(f"deb [trusted=yes] file:{ONE_REPO_MOUNT} ./\n")
    try:
        _run(_chroot_cmd(root, debs, "apt-get", "update", one_repo=repo), log, "apt-get update (OpenNebula)")
        sim = subprocess.run(
            _chroot_cmd(root, debs, "apt-get", "install", "-y", "--simulate", *one, one_repo=repo),
            capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    finally:
        source.unlink()
        for lists in (root / "var/lib/apt/lists").glob("*b2ct-opennebula*"):
            lists.unlink()
    if sim.returncode != 0:
        raise B2ctError(
            f"apt cannot install OpenNebula's packages: {(sim.stdout + sim.stderr).strip()[-300:]}",
            where=repo,
        )
    return sorted({m.group(1) for m in _INST.finditer(sim.stdout)} - set(one))


_INST = re.compile(r"^Inst (\S+) (?:\[[^]]*\] )?\((\S+) .*\[(\S+)\]\)", re.MULTILINE)


def _index_entry(deb: Path) -> str:
    """The deb's stanza of a flat repository's Packages file."""
    control = subprocess.run(["dpkg-deb", "--field", str(deb)], capture_output=True, text=True, check=True)
    data = deb.read_bytes()
    return (
        control.stdout.rstrip("\n")
        + f"\nFilename: ./{deb.name}\nSize: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
    )


def _configure(root: Path) -> None:
    script = "\n".join(
        [
            "set -e",
            # Per-host identity is written into each overlay; the image must carry none.
            "rm -f /etc/ssh/ssh_host_*",
            "systemctl enable ssh.service systemd-networkd.service",
            *(f"systemctl disable {u} 2>/dev/null || true" for u in _DISABLED_UNITS),
            *(f"systemctl mask {u}" for u in _MASKED_UNITS),
            # apt lists stay (apt state=present must work offline); the debs were never in the image
            # (archives was bound to the shared download cache), so there is nothing to clean.
            "echo 'PermitRootLogin prohibit-password' > /etc/ssh/sshd_config.d/b2ct-lab.conf",
            "echo 'UseDNS no' >> /etc/ssh/sshd_config.d/b2ct-lab.conf",
        ]
    )
    debs = CACHE_DIR / "debs"
    _run(_chroot_cmd(root, debs, "/bin/sh", "-c", script), root.parent / "build.log", "image configuration")
    (root / "etc/machine-id").write_text("")
    (root / "etc/hostname").write_text("localhost\n")
    # Stray files from the build host that would confuse hosts in the lab.
    for stale in ("etc/resolv.conf",):
        p = root / stale
        if p.is_symlink() or p.exists():
            p.unlink()
    (root / "etc/resolv.conf").write_text("# lab hosts have no DNS; names are in /etc/hosts\n")
