"""A groups API shaped like Feide's, on loopback, for the OIDC provider of tests/oidc_provider.py.

Feide gives a person's groups not in the ID token but from
`https://groups-api.dataporten.no/groups/me/groups`, a resource server called with the
person's OAuth access token as `Authorization: Bearer …`. `GroupsApi` is such a server:
`GET /groups/me/groups` checks the bearer token as a resource server does, by asking the
provider's userinfo endpoint who it belongs to (a token the provider did not issue, or none,
gets 401 with `WWW-Authenticate: Bearer`), and answers that subject's groups in Feide's JSON
format: a list of objects with `id`, `displayName`, `type` and `membership`. A test sets a
subject's groups with `set_groups` and can make the API fail (`outage`) or stop it (`down`).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from tests.oidc_provider import Provider

PATH = "/groups/me/groups"


def feide_group(group_id: str) -> dict:
    """One group as Feide's groups API describes it (`fc:org:uio.no` is of type `fc:org`)."""
    kind = ":".join(group_id.split(":")[:2])
    return {
        "id": group_id,
        "displayName": group_id.rsplit(":", 1)[-1],
        "type": kind,
        "membership": {"basic": "member"},
    }


@dataclass
class GroupsApi:
    """Feide's groups API for `provider`'s access tokens, on 127.0.0.1.

    `outage` (switch it between logins):
      None       answer honestly
      503        (any int) answer that HTTP status
      "slow"     answer only after `slow_s` seconds
      "garbage"  answer 200 with a body that is not JSON
    `served`: the subjects whose groups it answered, in order.
    """

    provider: Provider
    outage: int | str | None = None
    slow_s: float = 4.0
    served: list[str] = field(default_factory=list)
    port: int = 0
    _groups: dict[str, list[str]] = field(default_factory=dict)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def set_groups(self, sub: str, *group_ids: str) -> None:
        """The groups the API answers for the subject `sub`."""
        self._groups[sub] = list(group_ids)

    def start(self) -> GroupsApi:
        api = self
        userinfo = provider_discovery(self.provider)["userinfo_endpoint"]

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                try:
                    api._answer(self, userinfo)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the hub stopped waiting (outage "slow")

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """Not listening at all (connection refused), then back on the same port."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def _answer(self, h: http.server.BaseHTTPRequestHandler, userinfo: str) -> None:
        if h.path.split("?")[0] != PATH:
            return self._send(h, 404, {"message": "Not found"})
        scheme, _, token = (h.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._send(h, 401, {"message": "Bearer token required"})
        who = httpx.get(userinfo, headers={"Authorization": f"Bearer {token.strip()}"}, timeout=10)
        if who.status_code != 200:
            return self._send(h, 401, {"message": "Invalid or expired token"})
        sub = who.json()["sub"]
        outage = self.outage
        if isinstance(outage, int):
            return self._send(h, outage, {"message": "Service unavailable"})
        if outage == "slow":
            time.sleep(self.slow_s)
        if outage == "garbage":
            return self._send(h, 200, None, raw=b"<html>maintenance</html>")
        self.served.append(sub)
        self._send(h, 200, [feide_group(g) for g in self._groups.get(sub, [])])

    @staticmethod
    def _send(h, status: int, body: object, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        if status == 401:
            h.send_header("WWW-Authenticate", 'Bearer realm="groups-api"')
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)


def provider_discovery(provider: Provider) -> dict:
    resp = httpx.get(provider.issuer + "/.well-known/openid-configuration", timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()
