"""OpenNebula's view of the hosts: one host-pool query per run over XML-RPC (pyone), turned into OneFacts.

Credentials come from `--one-auth FILE`, else `$ONE_AUTH`, else `~oneadmin/.one/one_auth` read on the
front-end by its probe script (the ssh round trip the check makes anyway). The decision per host is
`decide.opennebula`; this module only does the I/O.
"""

from __future__ import annotations

import os
import re
import threading
import xml.parsers.expat
import xmlrpc.client
from pathlib import Path

import pyone

from b2ct.check.decide import OneFacts, OneHost
from b2ct.check.script import Section
from b2ct.errors import B2ctError
from b2ct.inventory.model import Site
from b2ct.opennebula import client

AUTH_FILE = "~oneadmin/.one/one_auth"
CREDENTIALS_HINT = f"give --one-auth FILE or $ONE_AUTH (user:password), or write {AUTH_FILE} on the front-end"


def expected(site: Site) -> bool:
    """Whether the site has an OpenNebula to ask: a front-end, or an endpoint set explicitly."""
    return site.frontend is not None or bool(site.opennebula.endpoint)


def local_session(one_auth: Path | None) -> tuple[str, str] | None:
    """(session, where it came from) from --one-auth or $ONE_AUTH; None: ask the front-end.

    A file named explicitly but unreadable is a usage error (B2ctError), as for OpenNebula's own CLI.
    """
    path = one_auth or os.environ.get("ONE_AUTH")
    if not path:
        return None
    return client.read_session(path), str(path)


def frontend_session(site: Site, sec: Section | None, checked: bool) -> tuple[str | None, str]:
    """(session or None, where it came from or why there is none) from the front-end's probe section."""
    fe = site.frontend
    if fe is None:
        return None, "no credentials: the site has no front-end to read them from"
    where = f"{AUTH_FILE} on {fe.name}"
    if not checked:
        return None, f"no credentials: the front-end {fe.name} is not among the checked hosts (--limit)"
    if sec is None:
        return None, f"no credentials: the front-end {fe.name} could not be probed over ssh"
    text = sec.out.strip()
    if sec.rc != 0:
        last = text.splitlines()[-1] if text else f"exit {sec.rc}"
        return None, f"no credentials: cannot read {where}: {last}"
    # the file holds one line; never echo it back: it is a password
    if ":" not in text or len(text.splitlines()) != 1:
        return None, f"no credentials: {where} is not one user:password line"
    return text, where


def _transport_error(exc: BaseException) -> str:
    """requests' connection errors are a paragraph; keep the errno part ("[Errno 111] Connection refused")."""
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if m:
        return m.group(0).strip()
    if isinstance(exc, xmlrpc.client.ProtocolError):
        return f"HTTP {exc.errcode} {exc.errmsg}: not an OpenNebula XML-RPC endpoint"
    if isinstance(exc, xml.parsers.expat.ExpatError):
        return "the answer is not XML-RPC: not an OpenNebula endpoint"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _ask(endpoint: str, session: str, source: str) -> OneFacts:
    one = client.connect(endpoint, session)
    try:
        version = str(one.system.version())
        pool = one.hostpool.info()
    except pyone.OneAuthenticationException:
        return OneFacts(
            endpoint,
            not_checked=f"OpenNebula at {endpoint} refused the credentials from {source}",
            hint=f"check the user:password in {source} (oneadmin's is in {AUTH_FILE} on the front-end)",
        )
    except pyone.OneException as exc:
        return OneFacts(endpoint, not_checked=f"OpenNebula at {endpoint} answered with an error: {exc}")
    except (OSError, xmlrpc.client.Error, xml.parsers.expat.ExpatError) as exc:
        # requests' exceptions are OSErrors; an HTTP server that is not oned gives ProtocolError/ExpatError
        return OneFacts(endpoint, unreachable=_transport_error(exc))
    hosts = {}
    for h in pool.HOST:
        error = str(client.template_dict(h).get("ERROR", "") or "")
        share = getattr(h, "HOST_SHARE", None)
        running = getattr(share, "RUNNING_VMS", None) if share is not None else None
        hosts[str(h.NAME)] = OneHost(
            int(h.ID),
            int(h.STATE),
            str(h.CLUSTER or ""),
            error,
            int(running) if running is not None else None,
        )
    return OneFacts(endpoint, hosts=hosts, version=version)


def query(endpoint: str, session: str, source: str, timeout: float) -> OneFacts:
    """Ask oned for its version and host pool, giving up after `timeout` seconds.

    pyone posts with `requests` and no timeout (its own `timeout=` sets the process-wide socket default),
    so an endpoint that drops packets would hang the run: the call runs in a daemon thread we stop waiting
    for instead.
    """
    box: list[OneFacts] = []
    worker = threading.Thread(
        target=lambda: box.append(_ask(endpoint, session, source)), name="b2ct-check-oned", daemon=True
    )
    worker.start()
    worker.join(timeout)
    if not box:
        return OneFacts(endpoint, unreachable=f"no answer in {timeout:.0f}s")
    return box[0]


def gather(
    site: Site,
    session: tuple[str, str] | None,
    fe_section: Section | None,
    fe_checked: bool,
    timeout: float,
) -> OneFacts:
    """The run's one look at OpenNebula: endpoint, credentials, then the query (if both are there)."""
    try:
        endpoint = client.endpoint_for(site)
    except B2ctError as exc:
        return OneFacts("", not_checked=exc.message, hint=exc.hint or "")
    if session is None:
        secret, source = frontend_session(site, fe_section, fe_checked)
        if secret is None:
            return OneFacts(endpoint, not_checked=source, hint=CREDENTIALS_HINT)
        session = (secret, source)
    return query(endpoint, session[0], session[1], timeout)
