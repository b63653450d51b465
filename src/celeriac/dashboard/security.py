"""Who may look and who may act: authentication, the CSRF token, the address check.

- ``--basic-auth user:pass``: HTTP Basic on every path (``/metrics`` too).
- ``--token T``: ``Authorization: Bearer T``, or a visit to ``/?token=T`` which sets an
  HttpOnly, SameSite=Strict cookie (the page's EventSource cannot send headers).
- Every POST needs the header ``X-CSRF-Token`` with the token the page was served
  (random per process) and, when the browser sends one, an ``Origin`` of this host.
- ``check_bind``: a non-local address with no auth is refused unless ``--insecure``.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from dataclasses import dataclass, field

from starlette.requests import Request

TOKEN_COOKIE = "celeriac_dashboard_token"


@dataclass
class Guard:
    basic_auth: str | None = None
    token: str | None = None
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def enabled(self) -> bool:
        return bool(self.basic_auth or self.token)

    def allowed(self, request: Request) -> bool:
        if not self.enabled:
            return True
        header = request.headers.get("authorization", "")
        if self.basic_auth and header.lower().startswith("basic "):
            try:
                given = base64.b64decode(header[6:].strip()).decode()
            except (ValueError, UnicodeDecodeError):
                return False
            return secrets.compare_digest(given.encode(), self.basic_auth.encode())
        if self.token:
            for given in (header[7:].strip() if header.lower().startswith("bearer ") else "",
                          request.cookies.get(TOKEN_COOKIE, ""),
                          request.query_params.get("token", "")):
                if given and secrets.compare_digest(given.encode(), self.token.encode()):
                    return True
        return False

    def csrf_ok(self, request: Request) -> bool:
        given = request.headers.get("x-csrf-token", "")
        if not given or not secrets.compare_digest(given.encode(), self.csrf_token.encode()):
            return False
        origin = request.headers.get("origin")
        if origin is None:
            return True
        host = request.headers.get("host", "")
        return origin.split("://", 1)[-1] == host


def is_local(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_bind(address: str, guard: Guard, insecure: bool) -> str | None:
    """Why this address may not be served (None: it may)."""
    if is_local(address) or guard.enabled or insecure:
        return None
    return (f"refusing to serve the dashboard on {address} without authentication: give "
            f"--basic-auth user:pass or --token, or --insecure if the network is yours")
