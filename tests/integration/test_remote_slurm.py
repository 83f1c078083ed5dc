"""A Slurm site whose login node the hub reaches over SSH: the test cluster behind
tests/sshd.py's `login_node` (an sshd on 127.0.0.1), as the site `remote`."""

from __future__ import annotations

import asyncio
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from naic.hub.catalogue import SSH
from naic.spawners import ssh
from tests.hub_process import Hub
from tests.integration.helpers import (
    client,
    ready,
    server_path,
    start,
    wait_until,
)
from tests.sshd import Sshd, SshKeys

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

CPU = {"site": "remote", "resource": "cpu", "hours": 0.5}
LIVE_STATES = "PENDING,RUNNING,CONFIGURING,COMPLETING"


def bobs_session_jobs() -> set[str]:
    out = subprocess.run(
        ["squeue", "-h", "-u", "bob", "--name=naic-bob", f"--states={LIVE_STATES}", "-o", "%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def sshd_log_count(node: Sshd, text: str) -> int:
    return node.log.read_text(errors="replace").count(text) if node.log.exists() else 0


@pytest.mark.parametrize("remote_hub", ["known_hosts"], indirect=True)
def test_a_session_on_a_login_node_runs_over_one_ssh_connection(
    remote_hub: Hub, login_node: Sshd
) -> None:
    logins_before = sshd_log_count(login_node, "Accepted publickey")
    commands_before = sshd_log_count(login_node, "Starting session: command")
    jobs_before = bobs_session_jobs()

    bob = client(remote_hub, "bob")
    # The form's estimate asks the login node too (sbatch --test-only over the connection).
    estimate = bob.get("/hub/api/naic/estimate", params={"site": "remote", "resource": "cpu"})
    assert estimate.status_code == 200, estimate.text
    assert estimate.json()["message"] == "Starts now"
    start(bob, "bob", CPU)
    wait_until(lambda: ready(bob, "bob"), 90, "bob's session at the remote site ready")
    # Through the proxy, with the token the job got from the script's exports.
    assert bob.get("/user/bob/api/status").status_code == 200
    (job,) = bobs_session_jobs() - jobs_before
    # Nothing secret on the login node's command lines: the variables are in the script.
    gid = pwd.getpwnam("bob").pw_gid
    argv = ["sbatch", "--parsable", "--uid=bob", f"--gid={gid}"]
    assert f"Submitting a job of bob to remote: {argv}" in remote_hub.log_text()
    batch_script = subprocess.run(
        ["scontrol", "write", "batch_script", job, "-"], capture_output=True, text=True
    ).stdout
    assert "#SBATCH --export=NONE\n" in batch_script
    assert "\nexport JUPYTERHUB_API_TOKEN=" in batch_script

    assert bob.delete(server_path("bob", "")).status_code in (202, 204)
    wait_until(lambda: job not in bobs_session_jobs(), 30, "the job gone after stop")

    # getent, sbatch, squeue polls, scancel: many commands, one login (two, should the
    # connection drop once).
    logins = sshd_log_count(login_node, "Accepted publickey") - logins_before
    commands = sshd_log_count(login_node, "Starting session: command") - commands_before
    assert 1 <= logins <= 2, login_node.log.read_text()
    assert commands >= 4, login_node.log.read_text()


@pytest.mark.parametrize("remote_hub", ["wrong_known_hosts"], indirect=True)
def test_a_login_node_with_an_unknown_host_key_is_refused(remote_hub: Hub) -> None:
    jobs_before = bobs_session_jobs()
    bob = client(remote_hub, "bob")
    resp = bob.post(server_path("bob", ""), json={"user_options": CPU})
    assert resp.status_code == 503, resp.text
    message = resp.json()["message"]
    assert "login node of Remote centre" in message, message
    assert "host key" in message and "no session was queued" in message, message
    assert bobs_session_jobs() - jobs_before == set()
    assert not ready(bob, "bob")


def test_thirty_commands_at_once_share_one_connection(
    login_node: Sshd, ssh_keys: SshKeys, tmp_path: Path
) -> None:
    # sshd refuses more than 10 channels per connection; a burst of stops (30 scancels)
    # must wait for channels, not fail or drop the connection the other commands use.
    known_hosts = tmp_path / "known_hosts"  # a connection of this test's own
    shutil.copy(ssh_keys.known_hosts, known_hosts)
    access = SSH(identity_file=str(ssh_keys.private_key), known_hosts=str(known_hosts))
    target = ssh.Target(login_node.address, login_node.port, access)
    logins_before = sshd_log_count(login_node, "Accepted publickey")

    async def thirty() -> list[tuple[int, str, str]]:
        try:
            return await asyncio.gather(
                *(ssh.run(target, ["sh", "-c", "sleep 0.5; echo $0", f"{i}"]) for i in range(30))
            )
        finally:
            ssh.drop(target)

    assert asyncio.run(thirty()) == [(0, f"{i}\n", "") for i in range(30)]
    assert sshd_log_count(login_node, "Accepted publickey") - logins_before == 1
