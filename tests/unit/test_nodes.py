"""Node pools, pure: which host and GPUs a session gets, and what a queued one is told."""

from __future__ import annotations

from naic.hub.catalogue import Host, parse
from naic.spawners.nodes import full_message, place

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
