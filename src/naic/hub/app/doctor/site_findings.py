"""Pure: what `naic doctor` says about a Slurm site, from what its commands printed.

The scheduler (`scontrol ping`), the accounting daemon (`scontrol show config`, then
`sacctmgr -n show cluster`), the nodes' addresses (`sinfo`), the test job's report, and the
pinned SSH host key of a login node. The runner (`naic.hub.app.doctor.at_sites`) runs the
commands; these functions only read their words.
"""

from __future__ import annotations

import json
import re
from typing import Any

from naic.hub.app.doctor.findings import Finding

#: The first line the test job prints, then one JSON object (`JOB_CODE`).
REPORT = "NAIC-DOCTOR "

#: What the test job runs (python3 -c, standard library only): reach the hub's API URL
#: (argv[1]) with no proxy, and report the node, its clock around the request, the HTTP
#: status or why there is none, and the hub's own time stamps on the answer.
JOB_CODE = """\
import json, os, socket, sys, time, urllib.request as u
r = {"node": os.environ.get("SLURMD_NODENAME") or socket.gethostname(), "t0": time.time()}
h = None
try:
    with u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=15) as f:
        r["status"], h = f.status, f.headers
except Exception as e:
    r["status"], h = getattr(e, "code", None), getattr(e, "headers", None)
    r["error"] = str(getattr(e, "reason", None) or e)
r["t1"] = time.time()
if h is not None:
    r["date"], r["stamp"] = h.get("Date"), h.get("X-Naic-Doctor-Time")
print("NAIC-DOCTOR " + json.dumps(r))
"""


def first_line(text: str, limit: int = 200) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


# --- SSH ----------------------------------------------------------------------------------


def host_key_finding(
    site: str, host: str, port: int, known_hosts: str, state: str, detail: str = ""
) -> Finding:
    """`state`: "ok", "no-file" (known_hosts missing), "unpinned" (no key for the host in
    it), "changed" (the host offers another key), "refused" (the hub's key was refused:
    `detail` is the key file) or "unreachable" (`detail` says why), "no-key" (`detail`: the hub's
    private key file, missing)."""
    check = f"{site}: ssh host key"
    name = host if port == 22 else f"[{host}]:{port}"
    scan = f"ssh-keyscan -p {port} {host} >> {known_hosts}"
    if state == "ok":
        return Finding(check, True, f"{name} offers the key pinned in {known_hosts}")
    if state == "no-file":
        return Finding(
            check,
            False,
            f"{known_hosts} does not exist: pin {name}'s host key there ({scan}, after checking "
            "its fingerprint with the site)",
        )
    if state == "unpinned":
        return Finding(
            check,
            False,
            f"{known_hosts} has no key for {name}: add it ({scan}, after checking its "
            "fingerprint with the site)",
        )
    if state == "changed":
        return Finding(
            check,
            False,
            f"{name} offers a host key other than the one pinned in {known_hosts}: if the "
            f"machine was reinstalled, replace its line there (ssh-keygen -R '{name}' -f "
            f"{known_hosts}, then {scan}); otherwise do not connect",
        )
    if state == "no-key":
        return Finding(
            check,
            False,
            f"the hub's SSH key {detail} does not exist: create it (ssh-keygen -t ed25519 -f "
            f"{detail}) and add its public key to the login account's ~/.ssh/authorized_keys "
            f"on {host}",
        )
    if state == "refused":
        return Finding(
            check,
            False,
            f"{name} refuses the hub's key {detail}: add its public key to the login "
            "account's ~/.ssh/authorized_keys there",
        )
    return Finding(
        check,
        False,
        f"{name} does not answer over SSH ({detail}): check submit.host and submit.port in "
        "the catalogue and that this machine reaches it",
    )


# --- the scheduler and its accounting daemon ----------------------------------------------

_PING = re.compile(r"Slurmctld\((\w+)\) at (\S+) is (UP|DOWN)")


def ping_finding(site: str, code: int, out: str, err: str) -> Finding:
    """`scontrol ping`: UP if any controller (primary or backup) says so."""
    check = f"{site}: scheduler"
    found = _PING.findall(out)
    up = [host for _, host, state in found if state == "UP"]
    if code == 0 and up:
        return Finding(check, True, f"slurmctld at {up[0]} answers")
    if found:
        where, why = found[0][1], ""
    else:
        where = "the controller"
        why = f" ({first_line(err) or first_line(out) or f'exit status {code}'})"
    return Finding(
        check,
        False,
        f"slurmctld at {where} does not answer{why}: start it, or check SlurmctldHost in "
        "slurm.conf",
    )


def config_value(text: str, key: str) -> str | None:
    """A value of `scontrol show config` (`Key = value` lines)."""
    m = re.search(rf"^{re.escape(key)}\s*=\s*(.*?)\s*$", text, re.MULTILINE)
    return m.group(1) if m else None


def slurmdbd_finding(
    site: str, storage_type: str | None, host: str | None, code: int, err: str
) -> Finding:
    """`storage_type`/`host`: AccountingStorageType and AccountingStorageHost; `code`/`err`:
    `sacctmgr -n show cluster` (not run without slurmdbd accounting: code 0)."""
    check = f"{site}: slurmdbd"
    if not storage_type or "slurmdbd" not in storage_type:
        return Finding(
            check, True, f"not used (AccountingStorageType is {storage_type or 'unset'})"
        )
    where = host or "the AccountingStorageHost"
    if code == 0:
        return Finding(check, True, f"slurmdbd at {where} answers")
    down = code == 124 or "slurmdbd" in err or "Connection refused" in err
    if down:
        return Finding(
            check,
            False,
            f"slurmdbd at {where} does not answer: start it (`systemctl start slurmdbd` on "
            f"{where}) or check AccountingStorageHost in slurm.conf",
        )
    return Finding(
        check,
        False,
        f"sacctmgr failed ({first_line(err) or f'exit status {code}'}): check slurmdbd at "
        f"{where} and its log",
    )


# --- nodes and the test job -----------------------------------------------------------------


def parse_sinfo(out: str) -> dict[str, str]:
    """`sinfo -h -N -o '%N %o'`: node name → NodeAddr (a node listed once per partition)."""
    nodes: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            nodes.setdefault(parts[0], parts[1])
    return nodes


def job_argv(partition: str | None, hub_api_url: str) -> list[str]:
    """The few-second test job: one task, one CPU, a minute's limit; it gives up when no
    node is free within a minute (`--immediate`)."""
    return [
        "srun",
        "--job-name=naic-doctor",
        *([f"--partition={partition}"] if partition else []),
        "--nodes=1",
        "--ntasks=1",
        "--cpus-per-task=1",
        "--mem=200M",
        "--time=1",
        "--immediate=60",
        "--quiet",
        "python3",
        "-c",
        JOB_CODE,
        hub_api_url.rstrip("/") + "/",
    ]


def parse_report(out: str) -> dict[str, Any] | None:
    """The test job's report, or None when it printed none."""
    for line in out.splitlines():
        if line.startswith(REPORT):
            try:
                report = json.loads(line[len(REPORT) :])
            except ValueError:
                return None
            return report if isinstance(report, dict) else None
    return None


def job_failed_finding(
    site: str, partition: str | None, user: str, code: int, out: str, err: str
) -> Finding:
    """The test job did not run, or ran and printed no report."""
    where = f"partition {partition}" if partition else "the default partition"
    words = first_line(err) or first_line(out) or f"exit status {code}"
    if "python3" in words and ("No such file" in words or "not found" in words):
        return Finding(
            f"{site}: test job",
            False,
            f"the test job in {where} found no python3 on the node ({words}): install Python 3 "
            "on the compute nodes (sessions need it too)",
        )
    return Finding(
        f"{site}: test job",
        False,
        f"a test job in {where} did not run ({words}): check that {user} may run jobs in "
        f"{where}, or name another account with --test-user",
    )


def reach_finding(site: str, report: dict[str, Any], hub_api_url: str) -> Finding:
    """The job's own words: it reached the hub's API URL (any HTTP answer), or not."""
    node = str(report.get("node") or "?")
    url = hub_api_url.rstrip("/") + "/"
    if report.get("status") is not None:
        return Finding(
            f"{site}: test job",
            True,
            f"a job on node {node} reached the hub at {url} (HTTP {report['status']})",
        )
    why = report.get("error") or "no answer"
    port = url.split("://", 1)[-1].split("/", 1)[0].rpartition(":")[2] or "80"
    return Finding(
        f"{site}: test job",
        False,
        f"a job on node {node} cannot reach the hub at {url} ({why}): "
        f"let the compute nodes reach port {port} of the hub's machine (firewall), or start the "
        "hub with --hub-ip <address the nodes reach>",
    )
