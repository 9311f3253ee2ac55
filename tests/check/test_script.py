"""The probe script's shell helpers, run for real under sh (no hosts needed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from b2ct.check.script import _PRELUDE


def _fake_gluster(tmp_path: Path, busy_times: int) -> dict[str, str]:
    """A `gluster` that answers like a locked glusterd ``busy_times`` times, then succeeds."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    counter = tmp_path / "calls"
    counter.write_text("0")
    (bindir / "gluster").write_text(
        "#!/bin/sh\n"
        f"n=$(($(cat {counter}) + 1)); echo $n > {counter}\n"
        f"if [ $n -le {busy_times} ]; then\n"
        "  echo 'Another transaction is in progress for one-system. Please try again after some time.'\n"
        "  exit 1\n"
        "fi\n"
        "echo '<cliOutput><opRet>0</opRet></cliOutput>'\n"
    )
    (bindir / "gluster").chmod(0o755)
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}


def _run_gl(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # the prelude resets PATH for the hosts it runs on; keep the fake first here
    script = (
        _PRELUDE.replace("export LC_ALL=C PATH=", "export LC_ALL=C IGNORED=")
        + "\ngl 5 gluster volume status x\n"
    )
    return subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)


def test_gluster_calls_retry_while_another_transaction_holds_the_lock(tmp_path: Path) -> None:
    result = _run_gl(_fake_gluster(tmp_path, busy_times=2))
    assert result.returncode == 0, result
    assert result.stdout.strip() == "<cliOutput><opRet>0</opRet></cliOutput>"
    assert (tmp_path / "calls").read_text().strip() == "3"


def test_gluster_lock_that_never_frees_is_reported_not_hidden(tmp_path: Path) -> None:
    result = _run_gl(_fake_gluster(tmp_path, busy_times=100))
    assert result.returncode == 1
    assert "Another transaction is in progress" in result.stdout
    assert (tmp_path / "calls").read_text().strip() == "8"
