"""Squid on lab hosts, nothing mocked: a CVMFS-like origin, MISS then HIT, 403 for outsiders, its URL."""

from __future__ import annotations

import re
import shlex
import time

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.lab]

ORIGIN_PORT = 8000
OBJECT = "/cvmfs/atlas.cern.ch/data/3f/9a1c0e7b5d2f44e0b1c2d3e4f5a6b7c8d9e0f1a2C"


def _deploy(lab, check: bool = False):
    from b2ct.deploy import runner

    return runner.run(lab.inventory, playbook="squid.yml", keep_logs=False, check=check)


@pytest.fixture(scope="module")
def squid(lab):
    dry = _deploy(lab, check=True)
    assert dry.ok and dry.changed > 0, [h.error for h in dry.hosts.values()]
    assert lab.ssh("svc1", "test -e /etc/b2ct/squid-proxy-url").returncode != 0
    first = _deploy(lab)
    assert first.ok, [h.error for h in first.hosts.values()]
    second = _deploy(lab)
    return lab, first, second


@pytest.fixture
def origin(lab):
    """python3 -m http.server on a worker serving a CVMFS-like tree of immutable objects."""
    root = "/srv/origin"
    setup = (
        f"rm -rf {root} && mkdir -p {root}{OBJECT.rsplit('/', 1)[0]} && "
        f"head -c 300000 /dev/urandom > {root}{OBJECT} && "
        # CVMFS objects are content-addressed and never change: an old Last-Modified lets squid cache
        # them heuristically, as it does for a real stratum 1.
        f"touch -d '2024-01-01 00:00' {root}{OBJECT} && cd {root} && "
        f"(setsid python3 -m http.server {ORIGIN_PORT} >/tmp/origin.log 2>&1 </dev/null & echo $!)"
    )
    r = lab.ssh("wn1", setup)
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split()[-1])
    try:
        url = f"http://{lab.ip('wn1')}:{ORIGIN_PORT}{OBJECT}"
        deadline = time.monotonic() + 20
        while lab.ssh("wn1", f"curl -sf -o /dev/null {shlex.quote(url)}").returncode != 0:
            assert time.monotonic() < deadline, "origin did not come up"
            time.sleep(0.5)
        yield url, lab.ssh("wn1", f"sha256sum {root}{OBJECT}").stdout.split()[0]
    finally:
        lab.ssh("wn1", f"kill {pid}; rm -rf {root}")


def _fetch(run, proxy: str, url: str) -> tuple[str, str]:
    """HTTP status and sha256 of the body, fetched through the proxy on a lab host."""
    r = run(f"rm -f /tmp/fetched; curl -sS -m 20 -x {proxy} -o /tmp/fetched -w '%{{http_code}}' "
            f"{shlex.quote(url)}; echo; test -f /tmp/fetched && sha256sum /tmp/fetched || true")  # fmt: skip
    lines = r.stdout.splitlines()
    return lines[0].strip() if lines else "", (lines[1].split()[0] if len(lines) > 1 else "")


def test_second_deploy_changes_nothing(squid):
    _, first, second = squid
    assert first.changed > 0
    assert second.ok and second.changed == 0, second.changed_tasks()


def test_listens_on_the_service_network_and_publishes_its_url(squid):
    lab, _, _ = squid
    proxy = f"http://{lab.ip('svc1')}:3128"
    assert lab.ssh("svc1", "cat /etc/b2ct/squid-proxy-url").stdout.strip() == proxy
    listening = lab.ssh("svc1", "ss -Hltn 'sport = :3128'").stdout.split()
    assert f"{lab.ip('svc1')}:3128" in listening
    assert "127.0.0.1:3128" in listening  # for the host's own health probe only
    assert "0.0.0.0:3128" not in listening and "*:3128" not in listening
    conf = lab.ssh("svc1", "cat /etc/squid/squid.conf").stdout
    assert re.search(r"^collapsed_forwarding on$", conf, re.M)
    assert re.search(r"^minimum_expiry_time 0 seconds$", conf, re.M)
    assert re.search(r"^maximum_object_size 256 MB$", conf, re.M)  # from the lab inventory
    assert re.search(r"^cache_dir ufs /var/spool/squid 1000 ", conf, re.M)
    assert lab.ssh("svc1", "logrotate -d /etc/logrotate.d/squid").returncode == 0


def test_miss_then_hit_and_outsiders_refused(squid, origin):
    lab, _, _ = squid
    url, digest = origin
    proxy = f"http://{lab.ip('svc1')}:3128"
    client = lambda cmd: lab.ssh("svc2", cmd)  # noqa: E731 - a site host as client
    assert _fetch(client, proxy, url) == ("200", digest)
    assert _fetch(client, proxy, url) == ("200", digest)
    log = lab.ssh("svc1", "cat /var/log/squid/access.log").stdout
    ours = [line.split() for line in log.splitlines() if url in line]
    codes = [fields[3] for fields in ours]
    assert len(codes) == 2, log[-2000:]
    assert codes[0] == "TCP_MISS/200", codes
    assert codes[1] in ("TCP_HIT/200", "TCP_MEM_HIT/200"), codes
    assert all(fields[2] == lab.ip("svc2") for fields in ours)

    # The outsider namespace shares this machine's filesystem: write nothing, read the status only.
    quiet = f"curl -sS -m 20 -x {proxy} -o /dev/null -w '%{{http_code}}' {shlex.quote(url)}"
    outsider = lab.outsider_exec(quiet)
    assert outsider.stdout.strip() == "403", (outsider.stdout, outsider.stderr)
    log = lab.ssh("svc1", "cat /var/log/squid/access.log").stdout
    assert any(lab.outsider_ip in line and "TCP_DENIED/403" in line for line in log.splitlines())


# An origin answering "fresh for 30 s" without Last-Modified (no validator); /empty with an empty body.
SHORT_LIVED = r"""
import http.server, itertools, sys
served = itertools.count(1)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"" if self.path.endswith("/empty") else b"answer %d\n" % next(served)
        self.send_response(200)
        self.send_header("Cache-Control", "max-age=30")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("", int(sys.argv[1])), H).serve_forever()
"""


def test_short_lived_objects_are_cached(squid):
    """minimum_expiry_time 0, as the CVMFS documentation asks. Squid stores an object fresh for less
    than minimum_expiry_time only if it could revalidate it; squid 5.7 (measured here) then still stores a
    non-empty one, but not an empty one: with the default (60 s) the second request for /empty is a miss."""
    lab, _, _ = squid
    port = 8080  # a destination port the role allows
    r = lab.ssh("wn1", f"cat > /tmp/short.py && (setsid python3 /tmp/short.py {port} >/dev/null 2>&1 "
                "</dev/null & echo $!)", input=SHORT_LIVED)  # fmt: skip
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split()[-1])
    try:
        base = f"http://{lab.ip('wn1')}:{port}/cvmfs/atlas.cern.ch"
        deadline = time.monotonic() + 20
        while lab.ssh("wn1", f"curl -sf -o /dev/null {base}/probe").returncode != 0:
            assert time.monotonic() < deadline, "origin did not come up"
            time.sleep(0.5)
        proxy = f"http://{lab.ip('svc1')}:3128"
        for name in (".cvmfspublished", "empty"):
            url = f"{base}/{name}"
            first, second = (_fetch(lambda cmd: lab.ssh("svc2", cmd), proxy, url) for _ in range(2))
            assert first[0] == second[0] == "200"
            assert first[1] == second[1]  # the body of the first answer, served again from the cache
            log = lab.ssh("svc1", "cat /var/log/squid/access.log").stdout
            codes = [line.split()[3] for line in log.splitlines() if line.split()[6:7] == [url]]
            assert codes[0] == "TCP_MISS/200" and codes[1] in ("TCP_HIT/200", "TCP_MEM_HIT/200"), (
                name,
                codes,
            )
    finally:
        lab.ssh("wn1", f"kill {pid}; rm -f /tmp/short.py")
