"""Another cluster user against alice's Dask cluster: bob gets no code run as alice.

alice's "session" starts a cluster the normal way (`slurm_cluster()`, workers as real Slurm
jobs, see test_dask_slurm); bob, in his own process on the same node, knows every address
(`squeue`, `ss` and the dashboard give them away) and tries to make alice's scheduler,
workers and nannies run a function that writes a marker file: over plain TCP, over TLS
with certificates of his own, and over TLS with no certificate at all. He also tries to
read the cluster's certificate files in alice's home.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from naic.spawners.slurm import cancel_dask_workers
from tests.integration.helpers import uid_gid
from tests.integration.test_dask_slurm import LIVE, USER, _start_session, _wait_none_live

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

ATTACKER = "bob"

#: alice's session: one worker, then it reports the addresses and keeps the cluster up.
SESSION_SCRIPT = """
import json, time
from distributed import Client
from naic.extensions.dask import slurm_cluster

cluster = slurm_cluster()
cluster.scale(1)
client = Client(cluster)
client.wait_for_workers(1, timeout=120)
workers = client.scheduler_info()["workers"]
print(json.dumps({
    "scheduler": cluster.scheduler_address,
    "workers": sorted(workers),
    "nannies": sorted(w["nanny"] for w in workers.values() if w.get("nanny")),
    "dashboard": cluster.scheduler_info["services"]["dashboard"],
}), flush=True)
time.sleep(600)  # the test kills this process
"""

#: bob's process: every way in it tries, and what came of it ("refused: ..." or "ran: ...").
ATTACK_SCRIPT = r"""
import asyncio, json, os, socket, ssl, sys, urllib.request
from distributed import Client
from distributed.core import rpc
from distributed.protocol.pickle import dumps
from distributed.security import Security

targets = json.loads(sys.argv[1])
markers = targets["markers"]
outcomes = {}


def plant(path):
    with open(path, "w") as f:
        f.write(str(os.getuid()))
    return os.getuid()


def scheme(address, new):
    return new + address.split("://", 1)[1]


def marker(name):
    return os.path.join(markers, name)


def attempt(name, action):
    try:
        outcomes[name] = f"ran: {action()!r}"
    except BaseException as exc:  # noqa: BLE001 (any failure is a refusal)
        outcomes[name] = f"refused: {type(exc).__name__}: {str(exc)[:200]}"


def against_scheduler(kind, address, security):
    def act():
        with Client(address, security=security, timeout=10) as client:
            got = [client.run_on_scheduler(plant, marker(f"{kind}-scheduler-run"))]
            got.append(client.run(plant, marker(f"{kind}-workers-run")))
            task = client.submit(plant, marker(f"{kind}-task"), pure=False)
            got.append(task.result(timeout=60))
            return got
    attempt(f"{kind} scheduler {address}", act)


def against_server(kind, address, security, role):
    async def act():
        args = security.get_connection_args("client") if security else {}
        async with rpc(address, connection_args=args, timeout=10) as server:
            return await asyncio.wait_for(
                server.run(function=dumps(plant), args=dumps((marker(f"{kind}-{role}"),))),
                timeout=30,
            )
    attempt(f"{kind} {role} {address}", lambda: asyncio.run(act()))


def tls_without_certificate(address):
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    def act():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            with context.wrap_socket(raw) as tls:
                tls.sendall(b"\0" * 16)
                answer = tls.recv(16)
                if not answer:
                    raise ConnectionError("closed by the server")
                return answer
    attempt(f"tls-without-certificate {address}", act)


def fetch(name, url):
    def act():
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status
    attempt(name, act)


def read(path):
    def act():
        with open(path, "rb") as f:
            return len(f.read())
    attempt(f"read {path}", act)


servers = [(a, "worker") for a in targets["workers"]] + [(a, "nanny") for a in targets["nannies"]]
against_scheduler("tcp", scheme(targets["scheduler"], "tcp://"), None)
against_scheduler("tls-own-certificate", scheme(targets["scheduler"], "tls://"),
                  Security.temporary())
tls_without_certificate(targets["scheduler"])
for address, role in servers:
    against_server("tcp", scheme(address, "tcp://"), None, role)
    against_server("tls-own-certificate", scheme(address, "tls://"), Security.temporary(), role)
    tls_without_certificate(address)
for path in targets["files"]:
    read(path)
dashboard = f"http://127.0.0.1:{targets['dashboard']}"
fetch("dashboard status", f"{dashboard}/status")
host, port = targets["workers"][0].split("://", 1)[1].rsplit(":", 1)
fetch("dashboard relay", f"{dashboard}/proxy/{port}/{host}/")
print(json.dumps(outcomes), flush=True)
"""


def _attack(targets: dict) -> dict[str, str]:
    """bob's process on the same node: plain `subprocess` as bob, his own home."""
    done = subprocess.run(
        [sys.executable, "-c", ATTACK_SCRIPT, json.dumps(targets)],
        env={"PATH": os.environ["PATH"], "HOME": f"/home/{ATTACKER}", "USER": ATTACKER},
        cwd="/tmp",
        user=ATTACKER,
        group=ATTACKER,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _credential_files(job_id: str) -> list[str]:
    """Every file of this session's clusters under alice's ~/.naic/dask (root looks)."""
    root = Path(f"/home/{USER}/.naic/dask")
    return sorted(str(p) for p in root.glob(f"{job_id}-*/**/*") if p.is_file())


def test_another_user_cannot_run_code_in_a_users_dask_cluster(slurm_cluster, workdir):
    job_id = f"it{uuid.uuid4().hex[:8]}"
    markers = tempfile.mkdtemp(prefix="naic-dask-attack-")
    os.chown(markers, *uid_gid(USER))  # only code running as alice can leave a marker here
    proc = _start_session(job_id, "die", workdir, SESSION_SCRIPT)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()[-3000:] if proc.poll() is not None else "no report"
        cluster = json.loads(line)
        assert cluster["workers"] and cluster["nannies"], cluster
        files = _credential_files(job_id)
        outcomes = _attack(dict(cluster, markers=markers, files=files))
        planted = {p.name: p.read_text() for p in Path(markers).iterdir()}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        shutil.rmtree(markers, ignore_errors=True)
        _cancel_workers(job_id)
        for folder in Path(f"/home/{USER}/.naic/dask").glob(f"{job_id}-*"):
            shutil.rmtree(folder, ignore_errors=True)

    dashboard = {name: outcomes.pop(name) for name in ("dashboard status", "dashboard relay")}
    ran = {name: what for name, what in outcomes.items() if not what.startswith("refused")}
    assert not ran, json.dumps(ran, indent=1)
    assert not planted, f"bob ran code as alice: {planted}"
    # The scheduler, each worker and each nanny, three ways each; the files bob could not read.
    assert len(outcomes) == 3 * (1 + len(cluster["workers"]) + len(cluster["nannies"])) + len(
        files
    ), outcomes
    assert all("PermissionError" in outcomes[f"read {path}"] for path in files), outcomes
    assert cluster["scheduler"].startswith("tls://"), cluster
    assert files, "no certificate files in ~/.naic/dask for the worker jobs"
    # Known and documented (extensions/dask.py): on the same node, the dashboard on
    # 127.0.0.1 is readable by anyone; it has no route that runs code or relays elsewhere.
    assert dashboard["dashboard status"] == "ran: 200", dashboard
    assert dashboard["dashboard relay"].startswith("refused: HTTPError: HTTP Error 404"), dashboard


def _cancel_workers(job_id: str) -> None:
    async def run_as_hub(argv: list[str]) -> str:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out_b, err_b = await asyncio.wait_for(proc.communicate(), 30)
        code, out, err = proc.returncode, out_b.decode(), err_b.decode()
        if code:
            raise RuntimeError(err)
        return out

    asyncio.run(cancel_dask_workers(job_id, USER, run_as_hub))
    jobs = _wait_none_live(f"naic-dask-{job_id}", timeout_s=30)
    assert not LIVE & set(jobs.values()), jobs
