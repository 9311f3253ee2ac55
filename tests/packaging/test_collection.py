"""The Ansible collection b2ct.cloud: built from the repository with ansible-galaxy, installed offline from
its tarball into a collections path of its own, then used the way a site would: ansible-doc on every
module and role, a site playbook calling the roles and modules by FQCN, the modules run, and
ansible-test sanity on the installed copy.

ansible-test sanity builds a virtual environment per test and bootstraps pip into it with a script it
downloads from ci-files.testing.ansible.com, which our machines cannot reach (PyPI they can). The one
stand-in: that script, replaced by one doing the same with the standard library's ensurepip and pip from
PyPI (``_GET_PIP``). The sanity tests themselves (pylint, validate-modules, yamllint, ...) are ansible-test's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLE, REPO

pytestmark = pytest.mark.slow

MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())
# What ansible-test's bootstrap script does (get-pip.py: pip itself, no setuptools or wheel), by other
# means: ensurepip first (in a child: it points PIP_CONFIG_FILE at /dev/null for its own process), then
# pip at the version asked for, from PyPI.
_GET_PIP = """\
import subprocess, sys
subprocess.check_call([sys.executable, "-m", "ensurepip"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])
"""


def _bin(name: str) -> str:
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert found, f"{name} not found (pip install ansible-core)"
    return found


def _pip_version() -> str:
    """The pip ansible-test bootstraps into its environments (its python_requirements.get_venv_packages)."""
    import re

    import ansible_test

    source = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    found = re.search(r"default_packages = dict\(\s*pip='([0-9.]+)'", source.read_text())
    assert found, f"where does ansible-test set its pip version now? ({source})"
    return found.group(1)


def _run(
    *argv: str | Path, env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("collection-build")
    proc = _run(
        _bin("ansible-galaxy"),
        "collection",
        "build",
        "--output-path",
        out,
        REPO,
        env=dict(os.environ),
        cwd=out,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = out.glob("b2ct-cloud-*.tar.gz")
    return tarball


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, built: Path) -> tuple[Path, dict[str, str]]:
    """(a site's directory outside the checkout, the environment its Ansible runs in) with the collection
    installed offline from its tarball into the site's own collections path."""
    home = tmp_path_factory.mktemp("site")
    collections = home / "collections"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_NOCOLOR": "1",
        "LC_ALL": "C.UTF-8",
    }
    galaxy = _bin("ansible-galaxy")
    proc = _run(galaxy, "collection", "install", "--offline", "-p", collections, built, env=env, cwd=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (collections / "ansible_collections" / "b2ct" / "cloud" / "MANIFEST.json").is_file()
    return home, env


def _installed(site: tuple[Path, dict[str, str]]) -> Path:
    return Path(site[1]["ANSIBLE_COLLECTIONS_PATH"]) / "ansible_collections" / "b2ct" / "cloud"


def test_tarball_holds_the_collection_and_nothing_of_the_program(built: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "galaxy.yml", "meta", "plugins", "roles", "playbooks", "docs/collection.md",
         "tests/sanity"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    with tarfile.open(built) as tar:
        files = sorted(m.name for m in tar.getmembers() if m.isfile())
        manifest = json.loads(tar.extractfile("MANIFEST.json").read())  # type: ignore[union-attr]
    assert files == sorted([*tracked, "MANIFEST.json", "FILES.json"])
    info = manifest["collection_info"]
    from b2ct import __version__

    assert (info["namespace"], info["name"], info["version"]) == ("b2ct", "cloud", __version__)
    assert set(info["dependencies"]) >= {"ansible.posix", "community.general"}


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_describes_each_module(site: tuple[Path, dict[str, str]], module: str) -> None:
    home, env = site
    proc = _run(_bin("ansible-doc"), "--json", f"b2ct.cloud.{module}", env=env, cwd=home)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[f"b2ct.cloud.{module}"]
    assert doc["doc"]["short_description"] and doc["examples"] and doc["return"] is not None
    assert str(_installed(site)) in doc["doc"]["filename"]


def test_ansible_doc_describes_each_role(site: tuple[Path, dict[str, str]]) -> None:
    home, env = site
    for role in ROLES:
        proc = _run(_bin("ansible-doc"), "-t", "role", "--json", f"b2ct.cloud.{role}", env=env, cwd=home)
        assert proc.returncode == 0, (role, proc.stderr)
        assert "main" in json.loads(proc.stdout)[f"b2ct.cloud.{role}"]["entry_points"], role


def test_site_playbook_calls_roles_and_modules_by_fqcn(site: tuple[Path, dict[str, str]]) -> None:
    """A site's own playbook, in the site's directory (no ansible.cfg, no roles path: only the installed
    collection), with every role and a module of the collection by their full names."""
    home, env = site
    book = home / "mysite.yml"
    plays = [
        {
            "name": "Packages",
            "hosts": "service:worker",
            "gather_facts": False,
            "tasks": [{"name": "Read the installed packages", "b2ct.cloud.installed_packages": {}}],
        },
        {"name": "Everything", "hosts": "service:worker", "roles": [f"b2ct.cloud.{r}" for r in ROLES]},
    ]
    book.write_text(yaml.safe_dump(plays, sort_keys=False))
    playbook = _bin("ansible-playbook")
    for target in (book, "b2ct.cloud.site"):  # the site's playbook, and the collection's own site playbook
        proc = _run(playbook, "--syntax-check", "-i", EXAMPLE, target, env=env, cwd=home)
        assert proc.returncode == 0, (target, proc.stdout + proc.stderr)

    # Not only parsed: a role's module and its module_utils run from the installed collection.
    volumes = json.dumps([{"name": "v", "replica": 2, "bricks": ["a:/bricks/v/b", "a:/bricks/w/b"]}])
    proc = _run(
        _bin("ansible"), "localhost", "-c", "local", "-i", "localhost,", "-m", "b2ct.cloud.gluster_preflight",
        "-a", f'{{"volumes": {volumes}}}', "-e", f"ansible_python_interpreter={sys.executable}",
        env=env, cwd=home,
    )  # fmt: skip
    assert proc.returncode == 2 and "has two bricks on one host" in proc.stdout, proc.stdout + proc.stderr


def test_ansible_test_sanity_is_clean(site: tuple[Path, dict[str, str]]) -> None:
    """Every sanity test of the installed ansible-core, on the installed collection; the only ignores are
    those of tests/sanity/ignore-X.Y.txt, each with its reason."""
    import ansible

    version = ".".join(ansible.__version__.split(".")[:2])
    root = _installed(site)
    assert (root / "tests" / "sanity" / f"ignore-{version}.txt").is_file(), (
        f"ansible-core {version}: add tests/sanity/ignore-{version}.txt (one reason per line)"
    )
    # ansible-test keeps its virtual environments under ~/.ansible/test: kept in b2ct's cache between runs.
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "b2ct" / "ansible-test"
    bootstrap = cache / ".ansible" / "test" / "cache"
    bootstrap.mkdir(parents=True, exist_ok=True)
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    (bootstrap / f"get_pip_{_pip_version().replace('.', '_')}.py").write_text(_GET_PIP)
    env = {**site[1], "HOME": str(cache)}
    proc = _run(_bin("ansible-test"), "sanity", "--venv", "--python", py, "--color", "no", env=env, cwd=root,
                timeout=1800)  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-8000:]
    assert 'Running sanity test "validate-modules"' in log and 'Running sanity test "pylint"' in log


def test_plain_ansible_playbook_from_the_checkout_finds_the_collection(tmp_path: Path) -> None:
    """ansible.cfg's collections path (.collections, a link to the checkout) resolves b2ct.cloud's modules for
    `ansible-playbook -i SITE playbooks/site.yml` run from the repository root, with nothing installed."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ANSIBLE_NOCOLOR": "1", "LC_ALL": "C.UTF-8"}
    playbook = _bin("ansible-playbook")
    proc = _run(playbook, "--syntax-check", "-i", EXAMPLE, "playbooks/site.yml", env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    link = REPO / ".collections" / "ansible_collections" / "b2ct" / "cloud"
    assert link.is_symlink() and link.resolve() == REPO
