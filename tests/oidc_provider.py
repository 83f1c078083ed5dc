"""Pytest plugin: a real OpenID Connect provider (`oidc-provider-mock`) on loopback.

`oidc_provider` starts `python -m oidc_provider_mock` as a process on 127.0.0.1 with a
free port, with client registration required (as at a real provider: the client secret
and redirect URI are checked), waits until its discovery document answers, and stops it
afterwards. It fails the test, never skips it, when the provider cannot start.

What the mock does, found by reading it (0.3.4):
- Users are whatever `sub` the authorize form gets; `PUT /users/{sub}` sets the claims
  (e.g. `eduPersonPrincipalName`, `groups`) that go into both the ID token and userinfo.
- `iss` is the URL the request came to (Flask's `host_url`), so a relay that keeps the
  `Host` header makes the provider appear at the relay's URL.
- ID tokens carry no `kid`; the JWKS key has one. Tokens live `--token-max-age` seconds
  (default 3600) and the refresh token expires with the first access token. The refresh
  grant accepts only HTTP Basic client authentication and returns no new ID token.
- It cannot issue a token with a past `exp`, a foreign `iss` or another audience. `Relay`
  does that: it stands between hub and provider, and re-signs the provider's ID token
  with a key of its own that it adds to the provider's JWKS (the hub then trusts that key
  as the provider's), so exactly one thing about the token is wrong.

`start_oidc_hub` runs `naic up` with a catalogue whose `identity:` is such a provider (its
client registered there for the hub's callback URL), and `oidc_log_in` drives the whole
authorization-code flow as a browser would. A groups API like Feide's, which checks this
provider's access tokens, is in tests/feide_groups.py.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.hub_process import Hub, free_port_base, start_hub
from tests.ports import free_port

START_TIMEOUT_S = 30
RELAY_KID = "naic-test-relay"
FOREIGN_ISSUER = "https://idp.elsewhere.example"


@dataclass
class Provider:
    issuer: str
    process: subprocess.Popen
    log: Path

    def set_user(self, sub: str, **claims: object) -> None:
        """The claims this subject gets in its ID token and userinfo."""
        resp = httpx.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10)
        assert resp.status_code == 204, resp.text

    def register(self, *redirect_uris: str) -> tuple[str, str]:
        """Register an OAuth client (RFC 7591); returns (client_id, client_secret)."""
        resp = httpx.post(
            f"{self.issuer}/oauth2/clients",
            json={
                "redirect_uris": list(redirect_uris),
                "token_endpoint_auth_method": "client_secret_basic",
            },
            timeout=10,
        )
        assert resp.status_code == 201, resp.text
        body = resp.json()
        return body["client_id"], body["client_secret"]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_provider(log_dir: Path, *args: str) -> Provider:
    """The mock on a free loopback port; returns once discovery answers."""
    port = free_port()
    log = log_dir / f"oidc-provider-{port}.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oidc_provider_mock",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--require-registration",
            "true",
            *args,
        ],
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    provider = Provider(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"the OIDC provider (oidc-provider-mock) exited with {proc.returncode}:\n"
                f"{provider.log_text()}"
            )
        try:
            resp = httpx.get(provider.issuer + "/.well-known/openid-configuration", timeout=2)
            if resp.status_code == 200:
                return provider
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_provider(provider)
    pytest.fail(
        f"the OIDC provider did not answer within {START_TIMEOUT_S} s:\n{provider.log_text()}"
    )


def stop_provider(provider: Provider) -> None:
    print(
        "---- OIDC provider log (last 40 lines) ----",
        *provider.log_text().splitlines()[-40:],
        sep="\n",
    )
    if provider.process.poll() is None:
        provider.process.send_signal(signal.SIGTERM)
        try:
            provider.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            provider.process.kill()
            provider.process.wait(timeout=10)


@pytest.fixture
def oidc_provider(tmp_path: Path) -> Iterator[Provider]:
    """A fresh provider for one test."""
    provider = start_provider(tmp_path)
    try:
        yield provider
    finally:
        stop_provider(provider)


@pytest.fixture(scope="module")
def module_oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    """One provider for a module's tests (each test uses its own subjects)."""
    provider = start_provider(tmp_path_factory.mktemp("oidc"))
    try:
        yield provider
    finally:
        stop_provider(provider)


# --- the relay: a provider whose tokens are wrong in exactly one way -----------------------

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "accept-encoding"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Relay:
    """An HTTP relay in front of a provider; its URL is the issuer the hub is given.

    `mode` (switch it between logins):
      None        pass everything through: a correct provider at the relay's URL
      "issuer"    the ID token names FOREIGN_ISSUER as its issuer (validly signed)
      "expired"   the ID token expired an hour ago (validly signed)
      "audience"  the login runs under `other_client`, so the ID token is for another client
      "signature" the ID token's claims are changed by `patch`, its signature left as it was
    `patch`: claims changed in the ID token in every mode but None.
    """

    provider: Provider
    mode: str | None = None
    patch: dict = field(default_factory=dict)
    other_client: tuple[str, str] | None = None
    port: int = 0
    _server: http.server.ThreadingHTTPServer | None = None
    _key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Relay:
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                relay._forward(self)

            do_POST = do_PUT = do_GET

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _forward(self, h: http.server.BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path = h.path
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP}
        mode = self.mode
        if mode == "audience" and self.other_client:
            other_id, other_secret = self.other_client
            if path.startswith("/oauth2/authorize"):
                path = re.sub(r"client_id=[^&]*", "client_id=" + urllib.parse.quote(other_id), path)
            if path.startswith("/oauth2/token"):
                basic = base64.b64encode(f"{other_id}:{other_secret}".encode()).decode()
                headers["Authorization"] = f"Basic {basic}"
        upstream = http.client.HTTPConnection(
            "127.0.0.1", urllib.parse.urlparse(self.provider.issuer).port, timeout=30
        )
        upstream.request(h.command, path, body=body or None, headers=headers)  # Host kept
        resp = upstream.getresponse()
        data = resp.read()
        upstream.close()
        if path.startswith("/jwks") and resp.status == 200:
            data = self._with_relay_key(data)
        if path.startswith("/oauth2/token") and resp.status == 200 and mode:
            data = self._forge(data, mode)
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP:
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _with_relay_key(self, data: bytes) -> bytes:
        jwks = json.loads(data)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        jwks["keys"].append({**public, "kid": RELAY_KID, "use": "sig", "alg": "RS256"})
        return json.dumps(jwks).encode()

    def _forge(self, data: bytes, mode: str) -> bytes:
        body = json.loads(data)
        token = body.get("id_token")
        if not token:
            return data
        claims = jwt.decode(token, options={"verify_signature": False})
        claims.update(self.patch)
        now = int(time.time())
        if mode == "issuer":
            claims["iss"] = FOREIGN_ISSUER
        elif mode == "expired":
            claims.update(iat=now - 7200, auth_time=now - 7200, exp=now - 3600)
        if mode == "signature":
            head, _, sig = token.split(".")
            payload = _b64(json.dumps(claims).encode())
            body["id_token"] = f"{head}.{payload}.{sig}"
        else:
            body["id_token"] = jwt.encode(
                claims, self._key, algorithm="RS256", headers={"kid": RELAY_KID}
            )
        return json.dumps(body).encode()


# --- a hub whose login is this provider -----------------------------------------------------

PROJECTS_YAML = """\
  nn1234k: {title: "Deep learning for weather", members: [%(members)s],
            groups: ["fc:org:uio.no"]}
  nn5678k: {title: "Protein folding", members: []}
"""


def oidc_catalogue(
    issuer: str, members: Sequence[str], projects: str | None = None, **identity: object
) -> str:
    """A one-site catalogue whose `identity:` is the provider at `issuer`. `projects`: the
    `projects:` section's lines (default PROJECTS_YAML with `members` in nn1234k); an
    `identity` value of None leaves that field out."""
    ident = {
        "title": "Test IdP",
        "issuer": issuer,
        "identity_claim": "eduPersonPrincipalName",
        "groups_claim": "groups",
        "domains": ["uio.no", "ntnu.no"],  # local_part names only for these institutions
        **identity,
    }
    lines = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in ident.items() if v is not None)
    return (
        "name: OIDC test hub\n"
        "sites:\n"
        "  local:\n"
        "    title: This machine\n"
        "    backend: local\n"
        "    resources:\n"
        '      small: {title: "Small", cpus: 1, memory_gb: 2, max_hours: 8}\n'
        "environments:\n"
        '  python: {title: "Python 3", venv: /opt/naic/envs/base}\n'
        "projects:\n"
        + (projects or PROJECTS_YAML % {"members": ", ".join(json.dumps(m) for m in members)})
        + "identity:\n"
        + lines
    )


@dataclass
class OidcHub:
    hub: Hub
    client_id: str
    client_secret: str
    catalogue: Path


def start_oidc_hub(
    base: Path,
    provider: Provider,
    *,
    issuer: str | None = None,
    members: Sequence[str] = (),
    admins: tuple[str, ...] = ("boss@uio.no",),
    config_d: str = "",
    identity: dict | None = None,
    projects: str | None = None,
) -> OidcHub:
    """`naic up` with an `identity:` catalogue, its client registered at `provider`."""
    port = free_port_base()
    client_id, secret = provider.register(f"http://127.0.0.1:{port}/hub/oauth_callback")
    cat = base / "catalogue.yaml"
    cat.write_text(
        oidc_catalogue(issuer or provider.issuer, list(members), projects, **(identity or {}))
    )
    data = base / "data"
    if config_d:
        (data / "jupyterhub_config.d").mkdir(parents=True, exist_ok=True)
        (data / "jupyterhub_config.d" / "50-test.py").write_text(config_d)
    admin_args = [arg for name in admins for arg in ("--admin", name)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAIC_OIDC_CLIENT_ID", client_id)
        mp.setenv("NAIC_OIDC_CLIENT_SECRET", secret)
        mp.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
        hub = start_hub(data, "--catalogue", str(cat), *admin_args, port=port)
    return OidcHub(hub, client_id, secret, cat)


def oidc_log_in(
    hub_url: str, sub: str, next_url: str = "/hub/home", client: httpx.Client | None = None
) -> tuple[httpx.Client, httpx.Response]:
    """The whole authorization-code flow as a browser does it: the hub's login link, the
    provider's authorize form (choosing `sub`), back to the hub. Redirects are followed, so
    the response is where the person lands."""
    client = client or httpx.Client(base_url=hub_url, timeout=30, follow_redirects=True)
    page = client.get("/hub/oauth_login", params={"next": next_url})
    assert page.status_code == 200 and "Authorize Client" in page.text, page.text[:2000]
    return client, client.post(str(page.url), data={"sub": sub})


def xsrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    assert found, f"no _xsrf field on {page.url}"
    return found.group(1)
