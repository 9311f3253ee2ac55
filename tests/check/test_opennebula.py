"""The OpenNebula check without a cloud: decisions on host states, credentials, and endpoints that are
not oned (a closed port, a port that accepts but never answers, an HTTP server that is not oned).

The query against the real oned, host states made for real included, is tests/check/test_check_cloud.py.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from pathlib import Path

import pytest

from b2ct.check import decide, opennebula
from b2ct.check.decide import OneFacts, OneHost
from b2ct.check.expect import expectations
from b2ct.check.model import Status
from b2ct.check.script import Section, build
from b2ct.inventory import load
from tests.check.test_report import EXAMPLE, usage_error
from tests.conftest import edit


def pool(**states: int) -> OneFacts:
    hosts = {n: OneHost(i, s, "workers") for i, (n, s) in enumerate(states.items())}
    return OneFacts("http://fe:2633/RPC2", hosts=hosts, version="6.10.0")


# ------------------------------------------------------------------------------------------ decisions


@pytest.mark.parametrize("state", [2, 1])
def test_monitored_passes(state: int) -> None:
    r = decide.opennebula("wn1", pool(wn1=state))
    assert (
        r.status is Status.PASS
        and "MONITORED by OpenNebula 6.10.0" in r.reason
        and "cluster workers" in r.reason
    )


@pytest.mark.parametrize(
    "state,words,hint",
    [
        (3, "cannot monitor it (ERROR", "onehost show"),
        (5, "cannot monitor it (MONITORING_ERROR", "onehost show"),
        (4, "DISABLED in OpenNebula", "onehost enable"),
        (7, "DISABLED in OpenNebula", "onehost enable"),
        (8, "OFFLINE in OpenNebula", "onehost enable"),
        (42, "OpenNebula reports unknown state 42", "onehost show"),
    ],
)
def test_bad_states_fail_with_the_state_named(state: int, words: str, hint: str) -> None:
    r = decide.opennebula("wn1", pool(wn1=state))
    assert r.status is Status.FAIL and words in r.reason and hint in r.hint, r


def test_error_carries_oned_monitoring_message() -> None:
    f = OneFacts("e", hosts={"wn1": OneHost(3, 3, "workers", "Error monitoring Host wn1 (3):\n ssh refused")})
    r = decide.opennebula("wn1", f)
    assert r.status is Status.FAIL and "(3): ssh refused" in r.reason and "oneadmin" in r.hint


def test_new_host_not_yet_monitored_warns() -> None:
    assert decide.opennebula("wn1", pool(wn1=0)).status is Status.WARN


def test_not_registered_fails() -> None:
    r = decide.opennebula("wn2", pool(wn1=2))
    assert r.status is Status.FAIL and "not registered" in r.reason and "cloud apply" in r.hint


def test_unreachable_and_not_checked_warn() -> None:
    r = decide.opennebula(
        "wn1", OneFacts("http://fe:2633/RPC2", unreachable="[Errno 111] Connection refused")
    )
    assert r.status is Status.WARN and r.reason.startswith(
        "OpenNebula API unreachable at http://fe:2633/RPC2"
    )
    r = decide.opennebula("wn1", OneFacts("e", not_checked="no credentials: x", hint="give --one-auth"))
    assert r.status is Status.WARN and r.reason == "not checked: no credentials: x" and "--one-auth" in r.hint


# ------------------------------------------------------------------------------------------ credentials


def test_frontend_session_from_probe_section() -> None:
    site = load(EXAMPLE)
    ok = opennebula.frontend_session(site, Section(0, "oneadmin:s3cret\n"), True)
    assert ok == ("oneadmin:s3cret", "~oneadmin/.one/one_auth on one-fe")
    missing = Section(1, "cat: /var/lib/one/.one/one_auth: No such file or directory")
    secret, why = opennebula.frontend_session(site, missing, True)
    assert secret is None and "No such file" in why
    secret, why = opennebula.frontend_session(site, Section(0, "garbage"), True)
    assert secret is None and "garbage" not in why  # never echo what may be a password
    assert "--limit" in opennebula.frontend_session(site, None, False)[1]
    assert "ssh" in opennebula.frontend_session(site, None, True)[1]


def test_probe_reads_credentials_only_when_asked() -> None:
    site = load(EXAMPLE)
    exp = expectations(site, site.host("one-fe"))
    assert "one_auth" in build(exp, read_one_auth=True) and "one_auth" not in build(exp)


def test_one_auth_option_wins_over_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opt, env = tmp_path / "opt", tmp_path / "env"
    opt.write_text("a:1\n")
    env.write_text("b:2\n")
    monkeypatch.setenv("ONE_AUTH", str(env))
    assert opennebula.local_session(opt) == ("a:1", str(opt))
    assert opennebula.local_session(None) == ("b:2", str(env))
    monkeypatch.delenv("ONE_AUTH")
    assert opennebula.local_session(None) is None  # then the front-end's file


def test_unreadable_one_auth_is_a_usage_error(tmp_path: Path) -> None:
    line = usage_error("-i", EXAMPLE, "--no-smoke", "--one-auth", tmp_path / "nope")
    assert "nope" in line and "credentials" in line


def test_site_without_frontend_gets_no_opennebula_check(site_copy: Path) -> None:
    assert opennebula.expected(load(site_copy))
    hosts = site_copy / "hosts.yml"
    edit(hosts, "    frontend:\n      hosts:\n        one-fe:\n", "")
    site = load(site_copy)
    assert site.frontend is None and not opennebula.expected(site)


# ------------------------------------------------------------------------------------------ the query


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_closed_port_is_unreachable() -> None:
    url = f"http://127.0.0.1:{_free_port()}/RPC2"
    r = decide.opennebula("svc1", opennebula.query(url, "a:b", "test", timeout=10))
    assert r.status is Status.WARN and "OpenNebula API unreachable" in r.reason and "refused" in r.reason, r


def test_silent_endpoint_times_out() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()  # accepts the connection (kernel backlog) but never answers
        url = f"http://127.0.0.1:{s.getsockname()[1]}/RPC2"
        t0 = time.monotonic()
        facts = opennebula.query(url, "a:b", "test", timeout=1)
        assert time.monotonic() - t0 < 5
    r = decide.opennebula("svc1", facts)
    assert r.status is Status.WARN and "no answer in 1s" in r.reason


def test_http_server_that_is_not_oned() -> None:
    class Quiet(http.server.SimpleHTTPRequestHandler):  # answers POST with 501, like any plain web server
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        facts = opennebula.query(f"http://127.0.0.1:{server.server_address[1]}/RPC2", "a:b", "t", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    r = decide.opennebula("svc1", facts)
    assert r.status is Status.WARN and "not an OpenNebula" in r.reason, r


def test_gather_asks_the_endpoint_only_with_credentials(site_copy: Path) -> None:
    """No credentials (front-end left out by --limit): the endpoint is never contacted. A listener that
    only counts connections stands where oned would be."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/RPC2"
        with (site_copy / "group_vars" / "all.yml").open("a") as f:
            f.write(f"b2ct_opennebula_endpoint: {url}\n")
        site = load(site_copy)
        facts = opennebula.gather(site, None, None, fe_checked=False, timeout=10)
        assert facts.endpoint == url and facts.not_checked and "--limit" in facts.not_checked
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected
        facts = opennebula.gather(site, None, Section(0, "oneadmin:secret"), fe_checked=True, timeout=1)
        conn, _ = listener.accept()  # with credentials it does ask
        conn.close()
    assert facts.unreachable and "no answer in 1s" in facts.unreachable
