"""The lab's site mirror: OpenNebula's apt repository laid out and signed as upstream publishes it.

A site without internet installs OpenNebula from a mirror of https://downloads.opennebula.io/repo/,
signed by the site's own key. The lab does the same with the repository it is given (a flat apt
repository, by default the one built from source in ../shared/opennebula/repo-6.10), so the roles'
repository, key and package tasks run unchanged:

    DIR/opennebula/repo.key                                    the mirror's public signing key
    DIR/opennebula/repo/VERSION/Debian/12/dists/stable/{Release,InRelease,Release.gpg}
    DIR/opennebula/repo/VERSION/Debian/12/dists/stable/opennebula/binary-amd64/Packages{,.gz}
    DIR/opennebula/repo/VERSION/Debian/12/pool/opennebula/*.deb  (copies of the repository's)

The layout (suite ``stable``, component ``opennebula``, ``<version>/Debian/<major>``) is upstream's,
as its install guide writes the apt source. Indexes are made by apt-ftparchive (apt-utils) and signed
by gpg with a key made for this lab alone and thrown away after signing. The tree is served over HTTP
by b2ct.lab.httpd from the lab's gateway namespace.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from b2ct import resources, tools
from b2ct.errors import B2ctError

# The repository `b2ct lab up` serves unless told otherwise (--opennebula-repo, $B2CT_OPENNEBULA_REPO):
# this one, beside a source checkout (the project's machines keep the OpenNebula build there). An
# installed b2ct has no checkout, hence no default.
CHECKOUT_REPO = Path("shared", "opennebula", "repo-6.10")  # relative to the checkout's parent
DEBIAN_MAJOR = {"bookworm": "12"}
SUITE, COMPONENT, ARCH = "stable", "opennebula", "amd64"
TOOLS = ("apt-ftparchive", "gpg", "gpgconf")  # b2ct.tools.TOOLS: their packages


@dataclass(frozen=True)
class Mirror:
    """What the lab's inventory needs to know of its mirror (URLs as the lab hosts reach them)."""

    repo_url: str  # b2ct_opennebula_mirror: the base that Debian/<major> is appended to
    key_url: str  # b2ct_opennebula_mirror_gpgkey
    version: str  # OpenNebula's major.minor, e.g. "6.10"


def default_repo() -> Path:
    """$B2CT_OPENNEBULA_REPO, else ../shared/opennebula/repo-6.10 beside a source checkout.

    Raises B2ctError when neither applies (b2ct installed from a wheel or sdist)."""
    env = os.environ.get("B2CT_OPENNEBULA_REPO")
    if env:
        return Path(env)
    checkout = resources.checkout()
    if checkout is None:
        raise B2ctError(
            "no OpenNebula repository for the lab's mirror",
            hint="give --opennebula-repo DIR (a flat repository: *.deb and Packages) or set "
            "B2CT_OPENNEBULA_REPO, or --no-opennebula for a lab without OpenNebula",
        )
    return checkout.parent / CHECKOUT_REPO


def repo_version(repo: Path) -> str:
    """OpenNebula's major.minor from the ``opennebula`` package's Version in the repository index.

    Raises B2ctError naming the repository when it has no readable index or no opennebula package."""
    index = repo / "Packages"
    try:
        text = index.read_text(encoding="utf-8")
    except OSError as exc:
        raise B2ctError(
            f"not an apt repository: cannot read its index ({exc.strerror})",
            where=index,
            hint="give --opennebula-repo DIR (a flat repository: *.deb and Packages), "
            "or --no-opennebula for a lab without OpenNebula",
        ) from None
    for stanza in text.split("\n\n"):
        if re.search(r"^Package:\s*opennebula\s*$", stanza, re.MULTILINE):
            m = re.search(r"^Version:\s*(?:\d+:)?(\d+)\.(\d+)", stanza, re.MULTILINE)
            if m:
                return f"{m.group(1)}.{m.group(2)}"
    raise B2ctError("the repository has no package 'opennebula'", where=index)


def check_tools() -> None:
    for tool in TOOLS:
        tools.need(tool)


def _run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        raise B2ctError(f"`{' '.join(cmd[:3])} …` failed: {last[-1] if last else f'exit {proc.returncode}'}")
    return proc.stdout


def build(repo: Path, dest: Path, suite: str, base_url: str) -> Mirror:
    """Lay out ``repo`` under ``dest`` as upstream's repository for Debian ``suite``, sign it, and
    return the URLs under ``base_url`` (e.g. ``http://10.213.0.1``) that the lab hosts use."""
    check_tools()
    version = repo_version(repo)
    debs = sorted(repo.glob("*.deb"))
    if not debs:
        raise B2ctError("the repository holds no .deb", where=repo)
    rel = Path("opennebula/repo") / version / "Debian" / DEBIAN_MAJOR[suite]
    top = dest / rel
    pool = top / "pool" / COMPONENT
    binary = top / "dists" / SUITE / COMPONENT / f"binary-{ARCH}"
    pool.mkdir(parents=True)
    binary.mkdir(parents=True)
    for deb in debs:
        # Copies, not symbolic links: apt-ftparchive would index the links' targets (2.3 MB in all).
        shutil.copyfile(deb, pool / deb.name)
    packages = _run(["apt-ftparchive", "packages", f"pool/{COMPONENT}"], cwd=top)
    (binary / "Packages").write_text(packages, encoding="utf-8")
    with gzip.open(binary / "Packages.gz", "wt", encoding="utf-8") as fh:
        fh.write(packages)
    dist = top / "dists" / SUITE
    release = _run(
        [
            "apt-ftparchive",
            "-o", "APT::FTPArchive::Release::Origin=b2ct lab mirror",
            "-o", f"APT::FTPArchive::Release::Label=OpenNebula {version}",
            "-o", f"APT::FTPArchive::Release::Suite={SUITE}",
            "-o", f"APT::FTPArchive::Release::Codename={SUITE}",
            "-o", f"APT::FTPArchive::Release::Architectures={ARCH}",
            "-o", f"APT::FTPArchive::Release::Components={COMPONENT}",
            "release", ".",
        ],
        cwd=dist,
    )  # fmt: skip
    (dist / "Release").write_text(release, encoding="utf-8")
    key = dest / "opennebula" / "repo.key"
    _sign(dist / "Release", key)
    return Mirror(f"{base_url}/{rel.parent.parent}", f"{base_url}/opennebula/repo.key", version)


def _sign(release: Path, public_key: Path) -> None:
    """InRelease and Release.gpg for ``release`` with a new ed25519 key; its public half to
    ``public_key``. The secret key lives only in a temporary gpg home, removed with its agent."""
    home = Path(tempfile.mkdtemp(prefix="b2ct-mirror-gpg-"))
    env = {**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"}
    gpg = ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
    try:
        _run(
            [
                *gpg,
                "--quick-generate-key",
                "b2ct lab mirror <mirror@b2ct.invalid>",
                "ed25519",
                "sign",
                "never",
            ],
            env=env,
        )
        public_key.write_text(_run([*gpg, "--armor", "--export"], env=env), encoding="utf-8")
        _run([*gpg, "--clearsign", "--output", str(release.with_name("InRelease")), str(release)], env=env)
        _run(
            [
                *gpg,
                "--armor",
                "--detach-sign",
                "--output",
                str(release.with_name("Release.gpg")),
                str(release),
            ],
            env=env,
        )
    finally:
        # gpg started an agent for this home only: stop it by its home, then forget the key.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["gpgconf", "--homedir", str(home), "--kill", "all"],
                env=env, capture_output=True, check=False, timeout=30,
            )  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)
