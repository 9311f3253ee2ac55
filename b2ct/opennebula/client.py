"""Connect to oned with pyone and turn its exceptions into one-line B2ctErrors."""

from __future__ import annotations

import contextlib
import os
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


def connect(endpoint: str, session: str) -> Any:
    return pyone.OneServer(endpoint, session=session)


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
        raise B2ctError(
            f"cannot reach OpenNebula while {doing}: {exc}",
            where=endpoint,
            hint="is oned running and the front-end reachable?",
        ) from None


def template_dict(obj: Any) -> dict[str, Any]:
    t = getattr(obj, "TEMPLATE", None)
    return dict(t) if t else {}
