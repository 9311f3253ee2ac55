"""The ssh agent that hosts use to reach each other while an image fans out.

Hypervisors hold no private key of the site (b2ct puts the admin's public keys in root's authorized_keys,
as the kickstarts and the lab do). A host that serves the image therefore authenticates to the next one
with the controller's key, through agent forwarding (`ssh -A`, ForwardAgent in ssh_config(5)), the way
OpenNebula 6.10's own drivers reach the nodes with oneadmin's key (`opennebula-ssh-agent`).

The agent is private to the run: a fresh `ssh-agent -D` (ssh-agent(1)) holding only the key files the
inventory names (ansible_ssh_private_key_file), stopped by its pid when the run ends. Without key files
the admin's own agent ($SSH_AUTH_SOCK) is forwarded instead, as Ansible's users expect.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from b2ct.errors import B2ctError

START_TIMEOUT = 10.0


@contextlib.contextmanager
def forwarding_agent(keys: Iterable[str], *, lifetime: int = 0) -> Iterator[str]:
    """Yield the agent socket path to forward: a private agent loaded with ``keys`` (files), or, when
    there are none, the caller's $SSH_AUTH_SOCK.

    ``lifetime`` > 0 also gives each key that many seconds in the agent (ssh-add -t). Raises B2ctError when
    ssh-agent/ssh-add are missing, a key cannot be loaded (passphrase, unreadable), or there is no key and
    no agent at all."""
    files = list(dict.fromkeys(k for k in keys if k))
    if not files:
        sock = os.environ.get("SSH_AUTH_SOCK", "")
        if not sock or not Path(sock).exists():
            raise B2ctError(
                "hosts reach each other through a forwarded ssh agent, but the inventory names no key "
                "file (ansible_ssh_private_key_file) and no agent is running ($SSH_AUTH_SOCK)",
                hint="ssh-add your key to an agent, or set ansible_ssh_private_key_file",
            )
        yield sock
        return
    for tool in ("ssh-agent", "ssh-add"):
        if shutil.which(tool) is None:
            raise B2ctError(f"{tool} not found", hint="apt-get install openssh-client")
    with tempfile.TemporaryDirectory(prefix="b2ct-agent-") as tmp:
        sock = str(Path(tmp) / "agent.sock")
        agent = subprocess.Popen(
            ["ssh-agent", "-D", "-a", sock],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C meant for b2ct must not kill it before the cleanup below
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not Path(sock).exists():
                if agent.poll() is not None or time.monotonic() > deadline:
                    err = agent.stderr.read().decode(errors="replace").strip() if agent.stderr else ""
                    raise B2ctError(f"ssh-agent did not start: {err or 'no socket after 10 s'}")
                time.sleep(0.02)
            env = {**os.environ, "SSH_AUTH_SOCK": sock}
            env.pop("DISPLAY", None)  # never an askpass window: a key with a passphrase fails right away
            env.pop("SSH_ASKPASS", None)
            for key in files:
                argv = ["ssh-add", "-q", *(["-t", str(lifetime)] if lifetime > 0 else []), key]
                proc = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
                if proc.returncode != 0:
                    why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                    raise B2ctError(
                        f"cannot load ssh key {key} into the run's agent: {why}",
                        where=key,
                        hint="a key with a passphrase: ssh-add it to your own agent and leave "
                        "ansible_ssh_private_key_file unset",
                    )
            yield sock
        finally:
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
                try:
                    agent.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    agent.kill()
                    agent.wait()
            if agent.stderr:
                agent.stderr.close()
