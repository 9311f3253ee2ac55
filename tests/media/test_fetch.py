"""fetch-iso: pinned checksum enforced, clear one-line error offline, nothing half-downloaded kept."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import b2ct
from test_bad_input import assert_one_line_error

from b2ct.errors import B2ctError
from b2ct.media import fetch


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    served = tmp_path / "srv"
    served.mkdir()
    payload = b"not really an iso\n" * 1000
    (served / "base.iso").write_bytes(payload)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/base.iso", payload
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_release_list_is_pinned() -> None:
    rels = fetch.releases()
    assert rels
    for r in rels.values():
        assert r.url.startswith("https://") and len(r.sha256) == 64 and int(r.sha256, 16) >= 0


def test_download_checked(server, tmp_path: Path) -> None:
    url, payload = server
    good = fetch.Release("t", url, hashlib.sha256(payload).hexdigest())
    out = fetch.fetch(good, tmp_path)
    assert out.read_bytes() == payload
    out.unlink()
    with pytest.raises(B2ctError, match="checksum mismatch"):
        fetch.fetch(fetch.Release("t", url, "0" * 64), tmp_path)
    assert not list(tmp_path.glob("*base.iso*"))


def test_offline_is_one_line(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: connection refused, as on a machine without internet.
    r = b2ct(
        "fetch-iso", "x", "--url", "http://127.0.0.1:9/AlmaLinux.iso", "--sha256", "0" * 64, "-d", tmp_path
    )
    assert_one_line_error(r, "cannot download", "offline?", "--base-iso")
    assert not list(tmp_path.iterdir())


def test_unknown_release(tmp_path: Path) -> None:
    r = b2ct("fetch-iso", "solaris", "-d", tmp_path)
    assert_one_line_error(r, "unknown release", "alma9")
