"""Connect to oned with pyone and turn its exceptions into one-line B2ctErrors."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyone

from b2ct.errors import B2ctError
from b2ct.inventory import Site


def endpoint_for(site: Site) -> str:
    if site.opennebula.endpoint:
        return site.opennebula.endpoint
    fe = site.frontend
    if fe is None or not fe.address:
        raise B2ctError(
            "no OpenNebula endpoint: the inventory has no front-end with an address",
            where=site.source,
            hint="set b2ct_opennebula_endpoint or put a host in group frontend",
        )
    return f"http://{fe.address}:2633/RPC2"


def read_session(auth_file: str | Path | None) -> str:
    """``user:password`` from --auth, $ONE_AUTH or ~/.one/one_auth, as OpenNebula's own tools read it."""
    path = Path(auth_file or os.environ.get("ONE_AUTH") or Path.home() / ".one" / "one_auth")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise B2ctError(
            f"cannot read OpenNebula credentials: {exc.strerror}",
            where=path,
            hint="write user:password (oneadmin's) there, mode 0600",
        ) from None
    if ":" not in text:
        raise B2ctError("OpenNebula credentials must be user:password", where=path)
    return text


# Where the opennebula package keeps oneadmin's credentials on the front-end (0600, oneadmin).
FRONTEND_AUTH_FILE = "~oneadmin/.one/one_auth"
# Seconds pyone waits for oned's answer (it sets the process's default socket timeout).
API_TIMEOUT = 120.0


def frontend_session(site: Site, inventory: Path) -> str:
    """oneadmin's ``user:password`` read over ssh from the front-end, as the inventory connects to it.

    What the admin would type (``ssh FE cat ~oneadmin/.one/one_auth``); nothing is written on this
    machine. Raises B2ctError naming the front-end when it cannot be read."""
    from b2ct.connection import ansible_view, connection

    fe = site.frontend
    if fe is None:
        raise B2ctError(
            "no OpenNebula credentials: none given and the inventory has no front-end to read them from",
            where=site.source,
            hint="give --auth FILE or $ONE_AUTH (user:password)",
        )
    conn = connection(fe.name, fe.address, ansible_view(inventory).hostvars.get(fe.name, {}))
    command = f"cat {FRONTEND_AUTH_FILE}" if conn.user == "root" else f"sudo -n cat {FRONTEND_AUTH_FILE}"
    try:
        proc = subprocess.run(
            conn.ssh_argv(command), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60
        )
    except subprocess.TimeoutExpired:
        raise B2ctError(
            f"no answer from {fe.name} in 60 s reading {FRONTEND_AUTH_FILE}", where=fe.name
        ) from None
    text = proc.stdout.strip()
    if proc.returncode != 0 or ":" not in text or len(text.splitlines()) != 1:
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise B2ctError(
            f"cannot read oneadmin's credentials ({FRONTEND_AUTH_FILE}) on {fe.name}: {why}",
            where=fe.name,
            hint="has `b2ct deploy` installed the front-end? Or give --auth FILE / $ONE_AUTH",
        )
    return text


def session_for(site: Site, inventory: Path, auth_file: str | Path | None) -> str:
    """The session for b2ct's API calls: --auth, else $ONE_AUTH, else ~/.one/one_auth (as OpenNebula's
    own CLI reads them), else oneadmin's, read from the front-end over ssh."""
    if auth_file or os.environ.get("ONE_AUTH"):
        return read_session(auth_file)
    local = Path.home() / ".one" / "one_auth"
    if local.exists():
        return read_session(local)
    return frontend_session(site, inventory)


def connect(endpoint: str, session: str, timeout: float | None = API_TIMEOUT) -> Any:
    """A pyone client; ``timeout`` seconds for each call (None: wait for ever)."""
    return pyone.OneServer(endpoint, session=session, timeout=timeout)


@contextlib.contextmanager
def api_errors(endpoint: str, doing: str) -> Iterator[None]:
    """Map pyone/transport failures to B2ctError naming the endpoint and what was being done."""
    try:
        yield
    except pyone.OneAuthenticationException:
        raise B2ctError(
            f"OpenNebula refused the credentials while {doing}",
            where=endpoint,
            hint="check the user:password in the auth file",
        ) from None
    except pyone.OneAuthorizationException as exc:
        raise B2ctError(f"not authorised while {doing}: {exc}", where=endpoint) from None
    except pyone.OneNoExistsException as exc:
        raise B2ctError(f"object not found while {doing}: {exc}", where=endpoint) from None
    except pyone.OneException as exc:
        raise B2ctError(f"OpenNebula error while {doing}: {exc}", where=endpoint) from None
    except OSError as exc:
        # requests' connection errors are OSErrors whose text is a paragraph: keep the errno part.
        text = str(exc)
        m = re.search(r"\[Errno -?\d+\][^'\")]*", text)
        raise B2ctError(
            f"cannot reach OpenNebula while {doing}: {m.group(0).strip() if m else text}",
            where=endpoint,
            hint="is oned running and the front-end reachable?",
        ) from None


def template_dict(obj: Any) -> dict[str, Any]:
    t = getattr(obj, "TEMPLATE", None)
    return dict(t) if t else {}
