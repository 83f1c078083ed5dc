"""`naic doctor`: every sentence an operator can read, exactly, from injected measurements."""

from __future__ import annotations

import json

import pytest

from naic.hub.app.cli import _parser
from naic.hub.app.doctor import runner
from naic.hub.app.doctor.findings import (
    Finding,
    Holder,
    address_finding,
    clock_finding,
    data_dir_finding,
    hub_ip_finding,
    hub_time_at,
    idp_findings,
    is_loopback,
    port_finding,
    secret_findings,
)
from naic.hub.app.doctor.site_findings import (
    JOB_CODE,
    REPORT,
    config_value,
    host_key_finding,
    job_argv,
    job_failed_finding,
    parse_report,
    parse_sinfo,
    ping_finding,
    reach_finding,
    slurmdbd_finding,
)

PROXY_LEFTOVER = "a configurable-http-proxy from an earlier run (pid 4242) holds port 8000"

# --- ports and the leftover proxy ------------------------------------------------------------


def test_a_free_port_is_ok() -> None:
    f = port_finding("port 8000", "the hub's public port", None)
    assert f == Finding("ports", True, "port 8000 (the hub's public port) is free")
    assert f.line() == "ok       ports: port 8000 (the hub's public port) is free"


def test_a_leftover_proxy_is_named_with_its_pid_and_how_to_stop_it() -> None:
    f = port_finding("port 8000", "the hub's public port", Holder(4242, "node", True))
    assert f == Finding("ports", False, f"{PROXY_LEFTOVER}: stop it (kill 4242)")
    assert f.line() == f"problem  ports: {PROXY_LEFTOVER}: stop it (kill 4242)"


def test_a_leftover_proxy_on_the_socket_names_the_socket() -> None:
    f = port_finding("/d/proxy/api.sock", "the proxy's API", Holder(7, "node", True))
    assert f.sentence == (
        "a configurable-http-proxy from an earlier run (pid 7) holds /d/proxy/api.sock: "
        "stop it (kill 7)"
    )


def test_the_proxy_the_pid_file_names_is_left_to_the_hub_when_it_is_not_running() -> None:
    # JupyterHub stops the process its proxy pid file names when it starts.
    f = port_finding("port 8000", "x", Holder(4242, "node", True), proxy_pid_file=4242)
    assert f == Finding(
        "ports",
        True,
        "a configurable-http-proxy from an earlier run (pid 4242) holds port 8000; the hub "
        "stops it when it starts (its pid file names it)",
    )
    # ...but not while a hub runs that did not start it.
    f = port_finding(
        "port 8000", "x", Holder(4242, "node", True), proxy_pid_file=4242, hub_pid=1, ours={1}
    )
    assert f.sentence == f"{PROXY_LEFTOVER}: stop it (kill 4242)"


def test_this_running_hub_holding_its_ports_is_fine_for_the_doctor_not_for_naic_up() -> None:
    holder = Holder(11, "node", True)  # its proxy, a child of the hub
    kw = {"hub_pid": 10, "ours": {10, 11}}
    assert port_finding("port 8000", "the hub's public port", holder, **kw) == Finding(
        "ports", True, "port 8000 (the hub's public port) is held by this hub (pid 10)"
    )
    assert port_finding("port 8000", "x", holder, starting=True, **kw) == Finding(
        "ports",
        False,
        "this hub is already running (pid 10) and holds port 8000: stop it (kill 10) before "
        "starting it again",
    )


def test_another_program_on_the_port() -> None:
    f = port_finding("port 8081", "the hub's API, which jobs reach", Holder(99, "python3"))
    assert f == Finding(
        "ports",
        False,
        "port 8081 (the hub's API, which jobs reach) is taken by python3 (pid 99): stop it, "
        "or start the hub with another --port",
    )


def test_a_program_this_account_cannot_see() -> None:
    f = port_finding("port 8000", "the hub's public port", Holder(None))
    assert f.sentence == (
        "port 8000 (the hub's public port) is taken by a program of another account (run "
        "`ss -ltnp` as root to see which): stop it, or start the hub with another --port"
    )


def test_a_hub_ip_that_is_not_this_machines() -> None:
    assert hub_ip_finding("10.9.9.9", 8081) == Finding(
        "ports",
        False,
        "--hub-ip 10.9.9.9 is not an address of this machine, so the hub cannot listen on "
        "10.9.9.9:8081: start it with --hub-ip <an address of this machine that the nodes "
        "reach>",
    )


def test_a_data_dir_with_capitals_loses_the_proxys_socket() -> None:
    assert data_dir_finding("/srv/Hub") == Finding(
        "data dir",
        False,
        "/srv/Hub has capital letters, which JupyterHub lowercases in the address of the "
        "proxy's socket (the hub then never reaches its proxy): use a lower-case path for "
        "--data-dir",
    )
    assert data_dir_finding("/srv/hub") == Finding(
        "data dir", True, "/srv/hub can hold the proxy's socket"
    )


# --- secrets ---------------------------------------------------------------------------------


def test_secrets_open_to_others_or_the_group_each_get_their_chmod() -> None:
    modes = {
        "/d/admin-token": (0o644, False),
        "/d/dev-password": (0o640, False),
        "/d/jupyterhub.sqlite": (0o600, False),
        "/d/jupyterhub_config.d": (0o755, True),
    }
    assert [f.sentence for f in secret_findings("/d", modes)] == [
        "/d/admin-token is open to other accounts (mode 644): chmod 600 /d/admin-token",
        "/d/dev-password is open to its group (mode 640): chmod 600 /d/dev-password",
        "/d/jupyterhub_config.d is open to other accounts (mode 755): "
        "chmod 700 /d/jupyterhub_config.d",
    ]
    assert {(f.check, f.ok) for f in secret_findings("/d", modes)} == {("secrets", False)}


def test_private_secrets_are_one_ok_line() -> None:
    modes = {"/d/admin-token": (0o600, False), "/d/proxy": (0o700, True)}
    assert secret_findings("/d", modes) == [
        Finding("secrets", True, "the hub's 2 secret files and folders are private")
    ]
    assert secret_findings("/d", {}) == [
        Finding("secrets", True, "no secrets in /d yet (the hub makes them 0600)")
    ]


# --- the hub's address against the nodes' ------------------------------------------------


LOCAL = {"127.0.0.1", "::1", "10.77.0.1"}


def test_a_loopback_hub_with_nodes_on_other_hosts_is_the_sentence_without_a_job() -> None:
    nodes = {"vm": {"127.0.0.1"}, "node1": {"10.77.0.11"}, "node2": {"10.77.0.12"}}
    f = address_finding("testcluster", "http://127.0.0.1:8081/hub/api", nodes, LOCAL)
    assert f == Finding(
        "testcluster: hub address",
        False,
        "the hub listens on 127.0.0.1, which compute nodes cannot reach (node1, node2): start "
        "it with --hub-ip <address the nodes reach>",
    )


def test_many_remote_nodes_are_cut_short_and_unresolvable_ones_count_as_remote() -> None:
    nodes = {f"c{i}": {f"10.0.0.{i}"} for i in range(1, 8)} | {"ghost": set()}
    f = address_finding("saga", "http://localhost:8081/hub/api", nodes, LOCAL)
    assert f.sentence == (
        "the hub listens on localhost, which compute nodes cannot reach (c1, c2, c3, c4, c5, "
        "…): start it with --hub-ip <address the nodes reach>"
    )


def test_a_loopback_hub_is_fine_when_every_node_is_this_machine() -> None:
    nodes = {"vm": {"127.0.0.1"}, "here": {"10.77.0.1"}}
    f = address_finding("testcluster", "http://127.0.0.1:8081/hub/api", nodes, LOCAL)
    assert (f.check, f.ok) == ("testcluster: hub address", True)
    assert f.sentence == "every node of testcluster is this machine, which reaches 127.0.0.1"


def test_a_hub_on_a_cluster_address_is_what_nodes_are_given() -> None:
    nodes = {"node1": {"10.77.0.11"}}
    f = address_finding("testcluster", "http://10.77.0.1:8081/hub/api", nodes, LOCAL)
    assert f == Finding(
        "testcluster: hub address", True, "nodes are given http://10.77.0.1:8081/hub/api"
    )
    assert address_finding("x", "http://127.0.0.1:1/hub/api", {}, LOCAL).sentence == (
        "not checked: no nodes listed at x"
    )


@pytest.mark.parametrize(
    ("host", "loop"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("10.77.0.1", False), ("hub.example", False)],
)  # fmt: skip
def test_loopback_names(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


# --- clocks ---------------------------------------------------------------------------------


def test_a_node_clock_ahead_or_behind_by_more_than_five_seconds() -> None:
    assert clock_finding("node1", 1007.25, 1000.0) == Finding(
        "node1: clock",
        False,
        "node node1's clock is 7.2 s ahead of the hub's: run chrony/ntp on it; tokens and "
        "estimates depend on it",
    )
    assert clock_finding("node2", 1000.0, 1030.0).sentence == (
        "node node2's clock is 30.0 s behind the hub's: run chrony/ntp on it; tokens and "
        "estimates depend on it"
    )
    assert clock_finding("node1", 1004.9, 1000.0) == Finding(
        "node1: clock", True, "node node1's clock is within 4.9 s of the hub's"
    )


def test_the_hubs_time_is_never_overstated_without_a_stamp() -> None:
    # The job ran between before=100 and after=110 by the hub's clock.
    assert hub_time_at(105.0, 100.0, 110.0) == 105.0  # consistent: no offset
    assert hub_time_at(130.0, 100.0, 110.0) == 110.0  # at least 20 s ahead
    assert hub_time_at(70.0, 100.0, 110.0) == 100.0  # at least 30 s behind
    assert hub_time_at(70.0, 100.0, 110.0, exact=69.0) == 69.0


# --- the identity provider -------------------------------------------------------------------

ISS = "https://idp.example"
DOC = {"issuer": ISS, "jwks_uri": f"{ISS}/jwks"}


def test_idp_answers_as_itself_with_keys() -> None:
    assert idp_findings(ISS, DOC, {"keys": [{"kid": "a"}]}) == [
        Finding(
            "identity provider",
            True,
            "https://idp.example answers as itself, with 1 signing key(s) at "
            "https://idp.example/jwks",
        )
    ]


def test_idp_sentences() -> None:
    def one(discovery, jwks=None) -> str:
        [f] = idp_findings(ISS, discovery, jwks)
        assert not f.ok
        return f.sentence

    assert one("Connection refused") == (
        "the discovery document https://idp.example/.well-known/openid-configuration does not "
        "answer (Connection refused): check identity.issuer in the catalogue and that this "
        "machine reaches the provider"
    )
    assert one({**DOC, "issuer": "https://other.example"}) == (
        "the identity provider at https://idp.example calls itself https://other.example: set "
        "identity.issuer in the catalogue to exactly that"
    )
    assert one({"issuer": ISS}) == (
        "the discovery document https://idp.example/.well-known/openid-configuration names no "
        "jwks_uri, so the hub cannot verify any login: fix the provider's configuration"
    )
    assert one(DOC, "HTTP 500") == (
        "the provider's keys at https://idp.example/jwks do not answer (HTTP 500): check that "
        "this machine reaches the provider"
    )
    assert one(DOC, {"keys": []}) == (
        "the provider's key set https://idp.example/jwks has no keys, so the hub cannot verify "
        "any login: fix the provider's signing keys"
    )


# --- SSH host keys ---------------------------------------------------------------------------

KH = "/etc/naic-hub/known_hosts"


@pytest.mark.parametrize(
    ("state", "detail", "ok", "sentence"),
    [
        ("ok", "", True, "[login.saga]:2222 offers the key pinned in /etc/naic-hub/known_hosts"),
        ("no-file", "", False,
         "/etc/naic-hub/known_hosts does not exist: pin [login.saga]:2222's host key there "
         "(ssh-keyscan -p 2222 login.saga >> /etc/naic-hub/known_hosts, after checking its "
         "fingerprint with the site)"),
        ("unpinned", "", False,
         "/etc/naic-hub/known_hosts has no key for [login.saga]:2222: add it (ssh-keyscan -p "
         "2222 login.saga >> /etc/naic-hub/known_hosts, after checking its fingerprint with "
         "the site)"),
        ("changed", "", False,
         "[login.saga]:2222 offers a host key other than the one pinned in "
         "/etc/naic-hub/known_hosts: if the machine was reinstalled, replace its line there "
         "(ssh-keygen -R '[login.saga]:2222' -f /etc/naic-hub/known_hosts, then ssh-keyscan -p "
         "2222 login.saga >> /etc/naic-hub/known_hosts); otherwise do not connect"),
        ("refused", "/etc/naic-hub/id_ed25519", False,
         "[login.saga]:2222 refuses the hub's key /etc/naic-hub/id_ed25519: add its public key "
         "to the login account's ~/.ssh/authorized_keys there"),
        ("no-key", "/etc/naic-hub/id_ed25519", False,
         "the hub's SSH key /etc/naic-hub/id_ed25519 does not exist: create it (ssh-keygen -t "
         "ed25519 -f /etc/naic-hub/id_ed25519) and add its public key to the login account's "
         "~/.ssh/authorized_keys on login.saga"),
        ("unreachable", "Connection refused", False,
         "[login.saga]:2222 does not answer over SSH (Connection refused): check submit.host "
         "and submit.port in the catalogue and that this machine reaches it"),
    ],
)  # fmt: skip
def test_host_key_sentences(state: str, detail: str, ok: bool, sentence: str) -> None:
    f = host_key_finding("saga", "login.saga", 2222, KH, state, detail)
    assert f == Finding("saga: ssh host key", ok, sentence)


def test_port_22_is_the_bare_host_name() -> None:
    f = host_key_finding("saga", "login.saga", 22, KH, "ok")
    assert f.sentence == "login.saga offers the key pinned in /etc/naic-hub/known_hosts"


# --- the scheduler and slurmdbd --------------------------------------------------------------


def test_scheduler_up_down_and_unreachable() -> None:
    up = "Slurmctld(primary) at ctl1 is DOWN\nSlurmctld(backup) at ctl2 is UP\n"
    assert ping_finding("saga", 0, up, "") == Finding(
        "saga: scheduler", True, "slurmctld at ctl2 answers"
    )
    assert ping_finding("saga", 1, "Slurmctld(primary) at ctl1 is DOWN\n", "") == Finding(
        "saga: scheduler",
        False,
        "slurmctld at ctl1 does not answer: start it, or check SlurmctldHost in slurm.conf",
    )
    err = "scontrol: error: Unable to contact slurm controller (connect failure)\n"
    assert ping_finding("saga", 1, "", err).sentence == (
        "slurmctld at the controller does not answer (scontrol: error: Unable to contact slurm "
        "controller (connect failure)): start it, or check SlurmctldHost in slurm.conf"
    )


CONFIG = """Configuration data as of 2026-12-03T10:00:00
AccountingStorageHost   = 10.77.0.1
AccountingStorageType   = accounting_storage/slurmdbd
ClusterName             = naic-test
"""


def test_config_values() -> None:
    assert config_value(CONFIG, "AccountingStorageHost") == "10.77.0.1"
    assert config_value(CONFIG, "AccountingStorageType") == "accounting_storage/slurmdbd"
    assert config_value(CONFIG, "Nope") is None


def test_slurmdbd_sentences() -> None:
    kind = "accounting_storage/slurmdbd"
    refused = (
        "sacctmgr: error: slurm_persist_conn_open_without_init: failed to open persistent "
        "connection to host:10.77.0.1:6819: Connection refused\n"
    )
    down = Finding(
        "testcluster: slurmdbd",
        False,
        "slurmdbd at 10.77.0.1 does not answer: start it (`systemctl start slurmdbd` on "
        "10.77.0.1) or check AccountingStorageHost in slurm.conf",
    )
    assert slurmdbd_finding("testcluster", kind, "10.77.0.1", 1, refused) == down
    assert slurmdbd_finding("testcluster", kind, "10.77.0.1", 124, "") == down
    assert slurmdbd_finding("testcluster", kind, "10.77.0.1", 0, "") == Finding(
        "testcluster: slurmdbd", True, "slurmdbd at 10.77.0.1 answers"
    )
    assert slurmdbd_finding("t", kind, None, 1, "sacctmgr: error: Access denied\n").sentence == (
        "sacctmgr failed (sacctmgr: error: Access denied): check slurmdbd at the "
        "AccountingStorageHost and its log"
    )
    assert slurmdbd_finding("t", "accounting_storage/none", None, 0, "") == Finding(
        "t: slurmdbd", True, "not used (AccountingStorageType is accounting_storage/none)"
    )


# --- nodes and the test job ------------------------------------------------------------------


def test_sinfo_lists_each_node_once() -> None:
    out = "vm 127.0.0.1\nnode1 10.77.0.11\nnode1 10.77.0.11\nnode2 10.77.0.12\n"
    assert parse_sinfo(out) == {"vm": "127.0.0.1", "node1": "10.77.0.11", "node2": "10.77.0.12"}


def test_the_test_job_is_small_gives_up_when_no_node_is_free_and_opens_the_url() -> None:
    argv = job_argv("accel", "http://10.77.0.1:8081/hub/api")
    assert argv[:10] == [
        "srun", "--job-name=naic-doctor", "--partition=accel", "--nodes=1", "--ntasks=1",
        "--cpus-per-task=1", "--mem=200M", "--time=1", "--immediate=60", "--quiet",
    ]  # fmt: skip
    assert argv[10:] == ["python3", "-c", JOB_CODE, "http://10.77.0.1:8081/hub/api/"]
    assert "--partition" not in " ".join(job_argv(None, "http://h:1/hub/api"))
    compile(JOB_CODE, "job", "exec")  # the node runs it as it is


def test_the_job_report_is_read_from_its_output() -> None:
    report = {"node": "node1", "t0": 1.0, "t1": 1.5, "status": 200}
    out = f"some module noise\n{REPORT}{json.dumps(report)}\n"
    assert parse_report(out) == report
    assert parse_report("nothing\n") is None
    assert parse_report(f"{REPORT}not json\n") is None


def test_test_job_sentences() -> None:
    ok = reach_finding("tc", {"node": "node1", "status": 200}, "http://10.77.0.1:8081/hub/api")
    assert (ok.check, ok.ok) == ("tc: test job", True)
    assert ok.sentence == (
        "a job on node node1 reached the hub at http://10.77.0.1:8081/hub/api/ (HTTP 200)"
    )
    bad = {"node": "node1", "status": None, "error": "[Errno 111] Connection refused"}
    assert reach_finding("tc", bad, "http://10.77.0.1:8081/hub/api").sentence == (
        "a job on node node1 cannot reach the hub at http://10.77.0.1:8081/hub/api/ ([Errno "
        "111] Connection refused): let the compute nodes reach port 8081 of the hub's machine "
        "(firewall), or start the hub with --hub-ip <address the nodes reach>"
    )
    err = "srun: error: Unable to allocate resources: Invalid partition name specified\n"
    assert job_failed_finding("tc", "gpu", "alice", 1, "", err) == Finding(
        "tc: test job",
        False,
        "a test job in partition gpu did not run (srun: error: Unable to allocate resources: "
        "Invalid partition name specified): check that alice may run jobs in partition gpu, "
        "or name another account with --test-user",
    )
    err = "slurmstepd: error: execve(): python3: No such file or directory\n"
    assert job_failed_finding("tc", None, "root", 2, "", err).sentence == (
        "the test job in the default partition found no python3 on the node (slurmstepd: "
        "error: execve(): python3: No such file or directory): install Python 3 on the compute "
        "nodes (sessions need it too)"
    )


# --- naic up's quick checks and the command line ---------------------------------------------


def test_naic_up_refuses_for_a_port_and_warns_for_the_rest(monkeypatch) -> None:
    found = [
        Finding("ports", True, "port 8000 (the hub's public port) is free"),
        Finding("ports", False, f"{PROXY_LEFTOVER}: stop it (kill 4242)"),
        Finding("secrets", False, "/d/admin-token is open to its group: chmod 600 /d/admin-token"),
        Finding("tc: hub address", False, "the hub listens on 127.0.0.1, which …"),
    ]
    monkeypatch.setattr(runner, "quick_findings", lambda s, cat, starting: found)
    refusal, warnings = runner.up_checks(None, None)
    assert refusal == f"naic up: {PROXY_LEFTOVER}: stop it (kill 4242)."
    assert warnings == [
        "naic up: warning: secrets: /d/admin-token is open to its group: chmod 600 /d/admin-token",
        "naic up: warning: tc: hub address: the hub listens on 127.0.0.1, which …",
    ]
    monkeypatch.setattr(runner, "quick_findings", lambda s, cat, starting: found[2:])
    assert runner.up_checks(None, None)[0] is None


def test_the_report_counts_problems_and_sets_the_exit_status() -> None:
    lines: list[str] = []
    report = runner.Report(lines.append)
    report.progress("testcluster: running a test job in partition normal")
    report.add(Finding("a", True, "fine"), Finding("b", False, "broken: fix it"))
    assert report.summary() == 1
    assert lines == [
        "...      testcluster: running a test job in partition normal",
        "ok       a: fine",
        "problem  b: broken: fix it",
        "naic doctor: 1 problem(s) in 2 check(s)",
    ]
    ok = runner.Report(lines.append)
    ok.add(Finding("a", True, "fine"))
    assert ok.summary() == 0 and lines[-1] == "naic doctor: all 1 check(s) pass"


def test_the_command_line(monkeypatch) -> None:
    args = _parser().parse_args(
        ["doctor", "--catalogue", "c.yaml", "--port", "9000", "--hub-ip", "10.77.0.1", "--quick"]
    )
    assert (args.command, args.port, args.hub_ip, args.quick, args.test_user) == (
        "doctor", 9000, "10.77.0.1", True, None
    )  # fmt: skip
    monkeypatch.setenv("NAIC_PORT", "8100")
    monkeypatch.setenv("NAIC_DATA_DIR", "/srv/naic")
    s = runner.settings_from(_parser().parse_args(["doctor", "--hub-ip", "10.0.0.5"]))
    assert (s.port, str(s.data_dir), s.hub_ip) == (8100, "/srv/naic", "10.0.0.5")
