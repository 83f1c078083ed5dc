"""Pure rules behind the trust boundaries: accounts, hub addresses for local sessions."""

from __future__ import annotations

import pytest

from naic.spawners.accounts import system_account_refusal
from naic.spawners.session_env import hub_urls_on_socket, unix_url

REFUSED = "{!r} at saga is a system account, not a user's; the hub starts no session as it."


@pytest.mark.parametrize(
    ("name", "uid"),
    [("root", 0), ("daemon", 1), ("slurm", 64030), ("nobody", 65534), ("slurm", 1500)],
)
def test_system_accounts_are_refused_by_uid_range_and_by_name(name: str, uid: int) -> None:
    assert system_account_refusal(name, uid, "saga") == REFUSED.format(name)


def test_peoples_accounts_pass_unless_the_operator_lists_them() -> None:
    assert system_account_refusal("ola", 1000, "saga") is None
    assert system_account_refusal("ola", 60000, "saga") is None
    assert system_account_refusal("slurmadm", 1200, "saga", {"slurmadm"}) == REFUSED.format(
        "slurmadm"
    )


def test_a_unix_url_keeps_the_path_and_encodes_the_socket_as_host() -> None:
    assert unix_url("http://127.0.0.1:8081/hub/api", "/var/lib/naic hub/hub.sock") == (
        "http+unix://%2Fvar%2Flib%2Fnaic%20hub%2Fhub.sock/hub/api"
    )


def test_local_sessions_get_every_hub_url_on_the_socket() -> None:
    env = {
        "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
        "JUPYTERHUB_ACTIVITY_URL": "http://127.0.0.1:8081/hub/api/users/ola/activity",
        "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:0/user/ola/",
    }
    new = "http+unix://%2Fd%2Fhub.sock/hub/api"
    assert hub_urls_on_socket(env, "/d/hub.sock") == {
        "JUPYTERHUB_API_URL": new,
        "JUPYTERHUB_ACTIVITY_URL": new + "/users/ola/activity",
    }


def test_the_sessions_own_client_speaks_http_over_the_hubs_socket(tmp_path) -> None:
    import http.server
    import socketserver
    import threading
    import urllib.request

    from naic.extensions.sources.hubclient import urllib_transport

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            reply = f"{self.path} {self.headers['Authorization']} {body.decode()}".encode()
            self.send_response(201)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args) -> None:
            pass

    class UnixServer(socketserver.UnixStreamServer):
        def get_request(self):
            conn, _ = super().get_request()
            return conn, ("local", 0)

    path = tmp_path / "hub.sock"
    with UnixServer(str(path), Handler) as server:
        threading.Thread(target=server.handle_request, daemon=True).start()
        req = urllib.request.Request(  # noqa: S310 - a test's own socket
            unix_url("http://x/hub/api/users/ola/activity?a=1", path),
            data=b"{}",
            method="POST",
            headers={"Authorization": "token t"},
        )
        assert urllib_transport(req, 5) == (201, b"/hub/api/users/ola/activity?a=1 token t {}")
