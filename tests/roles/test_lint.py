"""ansible-lint, production profile, over roles/ and playbooks/ (the whole tree: other areas' roles too)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from b2ct import resources

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ansible_lint_production_profile(tmp_path: Path) -> None:
    lint = shutil.which("ansible-lint")
    if lint is None:
        pytest.fail("ansible-lint is not installed (pip install -e '.[test]')")
    proc = subprocess.run(
        [lint, "--profile", "production", "--nocolor", "--offline", "roles/", "playbooks/"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env={"PATH": str(Path(lint).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path),
             "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
             # the roles call the b2ct.cloud modules by FQCN: the checkout as that collection
             "ANSIBLE_COLLECTIONS_PATH": str(resources.collections_path(tmp_path / "collections"))},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "Profile 'production' was required, and it passed" in proc.stderr + proc.stdout
