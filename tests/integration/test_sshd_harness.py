"""The SSH harness itself (tests/sshd.py), checked with the real OpenSSH client."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.sshd import CloudVMs, Sshd, SshKeys

pytestmark = pytest.mark.integration


def ssh(
    keys: SshKeys, server: Sshd, command: str, known_hosts: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*keys.ssh_argv(server, known_hosts=known_hosts), command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_each_vm_answers_from_its_own_namespace(ssh_keys: SshKeys, cloud_vms: CloudVMs) -> None:
    vm1, vm2 = cloud_vms
    for vm, other in ((vm1, vm2), (vm2, vm1)):
        result = ssh(ssh_keys, vm, "hostname; ip -4 -o addr show")
        assert result.returncode == 0, result.stderr
        hostname, addresses = result.stdout.split("\n", 1)
        assert hostname == vm.netns
        assert f"inet {vm.address}/30" in addresses
        assert other.address not in addresses
        assert "192.0.2." not in addresses and "eth0" in addresses


def test_vm_run_is_inside_the_namespace(cloud_vms: CloudVMs) -> None:
    vm1, vm2 = cloud_vms
    addresses = vm1.run(["ip", "-4", "-o", "addr", "show"]).stdout
    assert vm1.address in addresses and vm2.address not in addresses
    # Its way out is the root namespace's end of its own veth pair.
    assert f"default via {vm1.host_address}" in vm1.run(["ip", "route"]).stdout


def test_login_node_answers(ssh_keys: SshKeys, login_node: Sshd) -> None:
    assert login_node.address == "127.0.0.1"
    result = ssh(ssh_keys, login_node, "hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == subprocess.check_output(["hostname"], text=True).strip()


def test_wrong_host_key_is_refused(
    ssh_keys: SshKeys, cloud_vms: CloudVMs, login_node: Sshd
) -> None:
    for server in (cloud_vms.vm1, login_node):
        result = ssh(ssh_keys, server, "true", known_hosts=ssh_keys.wrong_known_hosts)
        assert result.returncode == 255
        assert "Host key verification failed" in result.stderr


def test_stopped_vm_refuses_then_answers_after_start(
    ssh_keys: SshKeys, cloud_vms: CloudVMs
) -> None:
    vm2 = cloud_vms.vm2
    try:
        vm2.stop_sshd()
        result = ssh(ssh_keys, vm2, "true")
        assert result.returncode == 255
        assert "Connection refused" in result.stderr
        assert ssh(ssh_keys, cloud_vms.vm1, "true").returncode == 0  # the other VM is up
    finally:
        vm2.start_sshd()
    result = ssh(ssh_keys, vm2, "hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == vm2.netns
