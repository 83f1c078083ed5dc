"""Node pools, pure: which host and GPUs a session gets, what a queued one is told, and where
it reaches the hub (its socket on the VM, forwarded to the hub's API)."""

from __future__ import annotations

from naic.hub.catalogue import Host, parse
from naic.spawners.nodes import (
    full_message,
    hub_destination,
    hub_socket_path,
    hub_urls_on_socket,
    place,
    socket_argv,
)

HOSTS = {
    "vm1": Host(address="10.0.0.1", gpus={"l40s": 2}),
    "vm2": Host(address="10.0.0.2", gpus={"l40s": 4, "a100": 1}),
}


def test_the_first_host_with_enough_free_gpus_gets_the_lowest_indices() -> None:
    assert place(HOSTS, "l40s", 1, {}, set()) == ("vm1", [0])
    assert place(HOSTS, "l40s", 1, {"vm1": {0}}, set()) == ("vm1", [1])
    assert place(HOSTS, "l40s", 2, {"vm1": {0}}, set()) == ("vm2", [0, 1])
    assert place(HOSTS, "l40s", 3, {"vm2": {1}}, set()) == ("vm2", [0, 2, 3])
    assert place(HOSTS, "a100", 1, {}, set()) == ("vm2", [0])
    assert place(HOSTS, "h100", 1, {}, set()) is None


def test_a_host_that_is_down_gets_nothing_and_a_full_pool_says_none() -> None:
    assert place(HOSTS, "l40s", 1, {}, {"vm1"}) == ("vm2", [0])
    assert place(HOSTS, None, 0, {}, {"vm1"}) == ("vm2", [])  # CPU only: the first up host
    full = {"vm1": {0, 1}, "vm2": {0, 1, 2, 3}}
    assert place(HOSTS, "l40s", 1, full, set()) is None


def test_a_queued_session_is_told_where_it_stands() -> None:
    cat = parse(
        """
name: t
sites:
  cloud:
    title: Cloud pool
    backend: nodes
    ssh: {identity_file: /k, known_hosts: /kh}
    hosts:
      vm1: {address: 10.0.0.1, gpus: {l40s: 2}}
      vm2: {address: 10.0.0.2, gpus: {l40s: 2}}
    resources:
      l40s: {title: L40S, gpu: {type: l40s, max: 2}, cpus: 1, memory_gb: 2, max_hours: 4}
environments:
  python: {title: Python, venv: /opt/venv}
"""
    )
    site = cat.sites["cloud"]
    assert site.gpus_per_node == {"l40s": 2}  # what one session may ask for, from the hosts
    assert (
        full_message(site, "l40s", 0) == "All 4 L40S GPUs of Cloud pool are in use; you are next."
    )
    assert full_message(site, "l40s", 2) == (
        "All 4 L40S GPUs of Cloud pool are in use; 2 sessions are ahead of you."
    )


def test_each_session_reaches_the_hub_at_a_socket_in_a_folder_of_its_own() -> None:
    assert hub_socket_path("alice", "") == "/run/naic-hub/alice/default/hub.sock"
    assert hub_socket_path("alice", "g1") == "/run/naic-hub/alice/g1/hub.sock"
    # Names that are no plain file name, or too long for a socket address, become digests;
    # so does a server named "default", which would otherwise share the default's folder.
    names = ("..", "a/b", "x" * 33, "~a", "default")
    odd = [hub_socket_path("alice", name) for name in names]
    assert [p.split("/")[4] for p in odd] == [
        "~5ec1f7e700f37c3d",
        "~c14cddc033f64b9d",
        "~11ba55a3a7c1ee0f",
        "~8d5679ec94e658e1",
        "~37a8eec1ce19687d",
    ]
    odd.append(hub_socket_path("alice", ""))
    assert len(set(odd)) == len(odd)
    longest = hub_socket_path("u" * 32, "s" * 32)
    assert longest == f"/run/naic-hub/{'u' * 32}/{'s' * 32}/hub.sock"
    assert len(longest.encode()) <= 107  # what a Unix socket address holds


def test_the_sessions_hub_urls_name_its_socket() -> None:
    env = {
        "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
        "JUPYTERHUB_ACTIVITY_URL": "http://127.0.0.1:8081/hub/api/users/alice/activity",
        "JUPYTERHUB_USER": "alice",
    }
    assert hub_urls_on_socket(env, "/run/naic-hub/alice/default/hub.sock") == {
        "JUPYTERHUB_API_URL": "http+unix://%2Frun%2Fnaic-hub%2Falice%2Fdefault%2Fhub.sock/hub/api",
        "JUPYTERHUB_ACTIVITY_URL": (
            "http+unix://%2Frun%2Fnaic-hub%2Falice%2Fdefault%2Fhub.sock/hub/api/users/alice/activity"
        ),
    }
    assert hub_urls_on_socket({"JUPYTERHUB_API_URL": ""}, "/s") == {}


def test_the_forward_ends_at_the_hubs_own_api() -> None:
    assert hub_destination("http://127.0.0.1:8081/hub/api") == ("127.0.0.1", 8081)
    assert hub_destination("http://10.0.0.5/hub/api") == ("10.0.0.5", 80)
    assert hub_destination("http+unix://%2Fvar%2Flib%2Fnaic-hub%2Fhub.sock/hub/api") == (
        "/var/lib/naic-hub/hub.sock"
    )


def test_socket_steps_run_as_root_each_argument_one_word() -> None:
    sock = "/run/naic-hub/alice/default/hub.sock"
    assert socket_argv("root", "SCRIPT", sock, "root") == ["sh", "-c", "SCRIPT", "sh", sock, "root"]
    assert socket_argv("naic", "SCRIPT", sock, "naic") == [
        *("sudo", "-n", "--", "sh", "-c", "SCRIPT", "sh", sock, "naic")
    ]


def test_gpu_device_files_follow_the_hosts_pattern() -> None:
    from naic.spawners.nodes import gpu_device_files

    assert gpu_device_files("/dev/nvidia{index}", [0, 3]) == ["/dev/nvidia0", "/dev/nvidia3"]
    assert gpu_device_files(None, [0, 1]) == []  # advisory only: the catalogue names none
