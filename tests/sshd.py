"""Pytest plugin: real OpenSSH servers standing in for cloud GPU VMs and a remote login node.

``ssh_keys`` makes, in a fresh temporary directory, the hub's client key (ed25519), an
``authorized_keys`` file holding its public key, one host key per server below, a
``known_hosts`` that lists them all (under the names OpenSSH itself uses: ``addr`` for port
22, ``[addr]:port`` otherwise) and a ``wrong_known_hosts`` that lists the same names with an
impostor's key.

``cloud_vms`` makes two "VMs", ``vm1`` and ``vm2``: each a network namespace
``naic-vmN`` joined to the root namespace by a veth pair (host side ``naic-vmN``,
10.231.N.1/30; VM side ``eth0``, 10.231.N.2/30, default route via the host side), running
``/usr/sbin/sshd -D`` on 10.231.N.2:22 inside the namespace (and in a UTS namespace of its
own, so ``hostname`` there answers ``naic-vmN``). ``login_node`` is one more sshd, on
127.0.0.1 and a free port in the root namespace. All of them accept only the hub's key
(root may log in with it; no passwords, no PAM).

Clean-up: every sshd is stopped by PID (SIGTERM, then SIGKILL) when its fixture ends, and
dies with the pytest process if that is killed (PR_SET_PDEATHSIG); the namespaces and veth
pairs are deleted, then the temporary directory (which names its pytest PID, so a
crashed run's is deleted by the next). A session holds a lock
(/run/lock/naic-sshd-harness.lock) while its VMs exist, so ``naic-vm*`` namespaces and
links found at start without that lock held are a crashed run's: their processes are
killed and they are deleted. A second run while one holds the lock fails instead.

Missing root, a missing package that cannot be installed, or a machine that does not allow
network namespaces is a failure, never a skip. As root, missing packages (openssh-server,
openssh-client, iproute2) are installed with apt-get. Imports nothing from ``naic``.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.ports import free_port as _free_port

SSHD = "/usr/sbin/sshd"
# Each package and a file that shows it is installed.
PACKAGES = {
    "openssh-server": SSHD,
    "openssh-client": "/usr/bin/ssh",
    "iproute2": "/usr/sbin/ip",
}
NETNS_PREFIX = "naic-vm"
VM_NUMBERS = (1, 2)
VM_PORT = 22
TMP_PREFIX = "naic-sshd-"
LOCK_FILE = Path("/run/lock/naic-sshd-harness.lock")
START_TIMEOUT_S = 15
STOP_TIMEOUT_S = 5
APT_TIMEOUT_S = 600
PR_SET_PDEATHSIG = 1


def _vm_address(n: int, host: int) -> str:
    return f"10.231.{n}.{host}"


def known_hosts_name(address: str, port: int) -> str:
    """How OpenSSH names a server in known_hosts: bare for port 22, else ``[addr]:port``."""
    return address if port == 22 else f"[{address}]:{port}"


def _run(argv: Sequence[str], what: str, timeout_s: int = 30) -> str:
    """Run a command; pytest.fail with its output (prefixed by `what`) if it fails."""
    try:
        result = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what}: `{' '.join(argv)}` did not finish within {timeout_s} s")
    if result.returncode != 0:
        pytest.fail(
            f"{what}: `{' '.join(argv)}` failed ({result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return result.stdout


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.fail(
            f"The SSH tests must run as root: {what}. Run pytest as root, or deselect them "
            "with -m 'not integration'."
        )


def _ensure_packages() -> None:
    """Install what is missing of openssh-server, openssh-client and iproute2 (as root)."""
    missing = [pkg for pkg, path in PACKAGES.items() if not Path(path).exists()]
    if not missing:
        return
    _require_root(f"the Debian packages {' '.join(missing)} are missing and must be installed")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with _no_service_starts():
        _apt(missing, env)


@contextlib.contextmanager
def _no_service_starts():
    """Installing openssh-server must not start the machine's own sshd on port 22: the
    tests start their own. Debian's policy-rc.d hook says no while we install."""
    policy = Path("/usr/sbin/policy-rc.d")
    if policy.exists():  # the machine already has a policy: keep it
        yield
        return
    policy.write_text("#!/bin/sh\n# naic-hub tests: no service starts during apt-get\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


def _apt(missing: list[str], env: dict[str, str]) -> None:
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=APT_TIMEOUT_S, env=env, check=False
        )
        if result.returncode != 0:
            pytest.fail(
                f"installing {' '.join(missing)} failed: `{' '.join(argv)}` "
                f"({result.returncode}):\n{result.stdout}{result.stderr}"
            )


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM this child when pytest dies, even by SIGKILL (survives exec)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _keygen(path: Path, comment: str) -> str:
    """A new ed25519 key pair at `path` (0600) and `path`.pub; returns the public key line."""
    _run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        "generating an SSH key",
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def _remove_stale_directories() -> None:
    """Delete the temporary directories of runs whose pytest process is gone."""
    for directory in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        try:
            pid = int((directory / "owner.pid").read_text())
        except (OSError, ValueError):
            continue  # not (yet) a complete one of ours: leave it
        if not Path(f"/proc/{pid}").exists():
            shutil.rmtree(directory, ignore_errors=True)


@dataclass(frozen=True)
class SshKeys:
    """The hub's key and what a client needs to trust the harness's servers."""

    directory: Path
    private_key: Path  # the hub's client key, ed25519, mode 0600
    public_key: Path
    authorized_keys: Path  # what every sshd here accepts: the hub's public key
    known_hosts: Path  # every server's real host key
    wrong_known_hosts: Path  # the same names with another key: must be refused
    hosts: dict[str, tuple[str, int]]  # server name → (address, port), as known_hosts lists

    def host_key(self, name: str) -> Path:
        """The private host key of server `name` ("vm1", "vm2", "login")."""
        return self.directory / "hosts" / name / "ssh_host_ed25519_key"

    def ssh_argv(self, server: Sshd, *, known_hosts: Path | None = None) -> list[str]:
        """``ssh`` with this key and known_hosts for ``root@server``; append the command."""
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.private_key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts or self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            "-p",
            str(server.port),
            f"root@{server.address}",
        ]


@pytest.fixture(scope="session")
def ssh_keys() -> Iterator[SshKeys]:
    """Client key, host keys and known_hosts files for every server in this module."""
    _ensure_packages()
    # Not pytest's tmp_path (private to root): sshd reads authorized_keys as the user who
    # logs in, and later tests log in as users other than root.
    _remove_stale_directories()
    root = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
    try:
        root.chmod(0o755)
        (root / "owner.pid").write_text(f"{os.getpid()}\n")
        hosts = {f"vm{n}": (_vm_address(n, 2), VM_PORT) for n in VM_NUMBERS}
        hosts["login"] = ("127.0.0.1", _free_port())
        client = root / "client"
        client.mkdir()
        public = _keygen(client / "id_ed25519", "naic-hub-test")
        authorized = root / "authorized_keys"
        authorized.write_text(public + "\n")
        authorized.chmod(0o644)
        impostor = _keygen(root / "impostor_host_key", "impostor")
        known, wrong = [], []
        for name, (address, port) in hosts.items():
            key_dir = root / "hosts" / name
            key_dir.mkdir(parents=True)
            key_type, key = _keygen(key_dir / "ssh_host_ed25519_key", name).split()[:2]
            known.append(f"{known_hosts_name(address, port)} {key_type} {key}\n")
            wrong.append(f"{known_hosts_name(address, port)} {' '.join(impostor.split()[:2])}\n")
        (root / "known_hosts").write_text("".join(known))
        (root / "wrong_known_hosts").write_text("".join(wrong))
        yield SshKeys(
            directory=root,
            private_key=client / "id_ed25519",
            public_key=client / "id_ed25519.pub",
            authorized_keys=authorized,
            known_hosts=root / "known_hosts",
            wrong_known_hosts=root / "wrong_known_hosts",
            hosts=hosts,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Sshd:
    """One sshd the harness runs; `stop_sshd`/`start_sshd` may be called by tests."""

    name: str
    address: str
    port: int
    keys: SshKeys
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def directory(self) -> Path:
        return self.keys.directory / "sshd" / self.name

    @property
    def log(self) -> Path:
        return self.directory / "sshd.log"

    @property
    def known_hosts_name(self) -> str:
        return known_hosts_name(self.address, self.port)

    def _launch_prefix(self) -> list[str]:
        return []

    def _write_config(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sshd_config"
        config.write_text(
            f"ListenAddress {self.address}:{self.port}\n"
            f"HostKey {self.keys.host_key(self.name)}\n"
            f"PidFile {self.directory / 'sshd.pid'}\n"
            # The shared file for the hub's key; a real user's own file as well.
            f"AuthorizedKeysFile {self.keys.authorized_keys} .ssh/authorized_keys\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "UsePAM no\n"
            # The key files live under /tmp, which StrictModes rejects.
            "StrictModes no\n"
            "PrintMotd no\n"
            "UseDNS no\n"
            "LogLevel VERBOSE\n"
            "Subsystem sftp internal-sftp\n"
        )
        return config

    def start_sshd(self) -> None:
        """Start sshd; returns once it accepts TCP connections."""
        if self.process is not None and self.process.poll() is None:
            return
        config = self._write_config()
        # sshd refuses to start without its privilege separation directory (normally
        # made by systemd-tmpfiles, which does not run in every container).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [*self._launch_prefix(), SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"sshd for {self.name} exited with {self.process.returncode}:\n"
                    f"{self.log.read_text(errors='replace')}"
                )
            try:
                with socket.create_connection((self.address, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop_sshd()
        pytest.fail(
            f"sshd for {self.name} did not listen on {self.address}:{self.port} within "
            f"{START_TIMEOUT_S} s:\n{self.log.read_text(errors='replace')}"
        )

    def stop_sshd(self) -> None:
        """Stop the listening sshd (sessions it already started go on)."""
        _stop_process(self.process)
        self.process = None


def _stop_process(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def _kill_pids(pids: Sequence[int]) -> None:
    """SIGKILL these PIDs (processes inside a harness namespace), ignoring ones gone."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class CloudVM(Sshd):
    """A "cloud GPU VM": its own network namespace and sshd on its own address."""

    netns: str = ""
    host_address: str = ""  # the root namespace's end of the veth pair, the VM's gateway

    def _launch_prefix(self) -> list[str]:
        # ip and sh exec (no fork), so the PID Popen sees is sshd's own.
        return [
            *("ip", "netns", "exec", self.netns, "unshare", "--uts", "--"),
            *("sh", "-c", 'hostname "$0" && exec "$@"', self.netns),
        ]

    def netns_pids(self) -> list[int]:
        return _netns_pids(self.netns)

    def stop_sshd(self) -> None:
        """As if the VM went away: sshd stops and so does every session it started."""
        super().stop_sshd()
        _kill_pids(self.netns_pids())

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` as root in the VM's network namespace (not via SSH); text output."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )


class CloudVMs(NamedTuple):
    vm1: CloudVM
    vm2: CloudVM


def _netns_pids(netns: str) -> list[int]:
    result = subprocess.run(
        ["ip", "netns", "pids", netns], capture_output=True, text=True, timeout=10, check=False
    )
    return [int(pid) for pid in result.stdout.split()]


def _remove_harness_network() -> None:
    """Delete every naic-vm* namespace (killing what runs in it) and veth link."""
    listed = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.split("\n")
    for line in listed:
        name = line.split(" ", 1)[0]
        if name.startswith(NETNS_PREFIX):
            _kill_pids(_netns_pids(name))
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    links = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.splitlines()
    for line in links:
        # "12: naic-vm1@if2: <…" – the name up to any "@peer".
        name = line.split(":", 2)[1].strip().split("@", 1)[0] if ":" in line else ""
        if name.startswith(NETNS_PREFIX):
            subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)


def _create_vm_network(n: int) -> tuple[str, str]:
    """Namespace naic-vmN and its veth pair; returns (netns, host-side address)."""
    netns = f"{NETNS_PREFIX}{n}"
    host, vm = _vm_address(n, 1), _vm_address(n, 2)
    added = subprocess.run(
        ["ip", "netns", "add", netns], capture_output=True, text=True, timeout=10, check=False
    )
    if added.returncode != 0:
        pytest.fail(
            "The cloud-VM tests need to create network namespaces and veth pairs, which "
            "needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN (a container needs "
            f"--cap-add SYS_ADMIN --cap-add NET_ADMIN, or --privileged). "
            f"`ip netns add {netns}` failed ({added.returncode}): {added.stderr.strip()}"
        )
    what = f"setting up the network of {netns}"
    in_ns = ["ip", "-n", netns]
    _run(["ip", "link", "add", netns, "type", "veth", "peer", "name", "eth0", "netns", netns], what)
    _run(["ip", "addr", "add", f"{host}/30", "dev", netns], what)
    _run(["ip", "link", "set", netns, "up"], what)
    _run([*in_ns, "addr", "add", f"{vm}/30", "dev", "eth0"], what)
    _run([*in_ns, "link", "set", "lo", "up"], what)
    _run([*in_ns, "link", "set", "eth0", "up"], what)
    _run([*in_ns, "route", "add", "default", "via", host], what)
    return netns, host


@pytest.fixture(scope="session")
def cloud_vms(ssh_keys: SshKeys) -> Iterator[CloudVMs]:
    """Two VMs, each a network namespace with its own address and sshd on port 22."""
    _require_root("the cloud VMs are network namespaces with veth pairs and their own sshd")
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    lock = LOCK_FILE.open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        pytest.fail(
            f"Another test run holds {LOCK_FILE} and with it the naic-vm* namespaces and "
            "10.231.0.0/16 addresses; run the cloud-VM tests one session at a time."
        )
    vms: list[CloudVM] = []
    try:
        _remove_harness_network()  # a crashed run's leftovers: nobody holds the lock
        for n in VM_NUMBERS:
            netns, host = _create_vm_network(n)
            address, port = ssh_keys.hosts[f"vm{n}"]
            vm = CloudVM(f"vm{n}", address, port, ssh_keys, netns=netns, host_address=host)
            vms.append(vm)
            vm.start_sshd()
        yield CloudVMs(*vms)
    finally:
        for vm in vms:
            vm.stop_sshd()
        _remove_harness_network()
        LOCK_FILE.unlink(missing_ok=True)
        lock.close()


@pytest.fixture(scope="session")
def login_node(ssh_keys: SshKeys) -> Iterator[Sshd]:
    """An sshd on 127.0.0.1 (free port), standing in for a remote Slurm login node."""
    _require_root("the login node's sshd needs root to log users in")
    address, port = ssh_keys.hosts["login"]
    node = Sshd("login", address, port, ssh_keys)
    try:
        node.start_sshd()
        yield node
    finally:
        node.stop_sshd()
