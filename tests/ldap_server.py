"""Pytest plugin: a real OpenLDAP `slapd` on loopback holding a small user register.

`ldap_server` installs Debian's `slapd` if it is missing (no service starts while apt
runs: the machine's own slapd, if any, is left alone), writes a `slapd.conf` with an
`mdb` database under a temporary directory, loads the register with `slapadd` and runs
`slapd -d` in the foreground on 127.0.0.1 with a free port; it is stopped afterwards.

The register maps identities (`eduPersonPrincipalName`, a minimal eduPerson schema of
our own since Debian ships none) to Unix names (`uid`), as a site's directory does:
two people called Ola at two institutions get two different names. Anonymous reads are
refused; the hub binds as `BIND_DN` with `BIND_PASSWORD`. Imports nothing from ``naic``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ports import free_port as _free_port
from tests.sshd import _apt, _die_with_parent, _no_service_starts, _require_root

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
SUFFIX = "dc=naic,dc=test"
PEOPLE = f"ou=people,{SUFFIX}"
BIND_DN = f"cn=hub,{SUFFIX}"
BIND_PASSWORD = "register-reader-secret"
START_TIMEOUT_S = 20

#: identity → uid, as the directory holds them.
REGISTER = {
    "ola@uio.no": "ola",
    "ola@ntnu.no": "olan",
    "kari@uio.no": "kari",
}

EDUPERSON_SCHEMA = """\
attributetype ( 1.3.6.1.4.1.5923.1.1.1.6 NAME 'eduPersonPrincipalName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.5923.1.2.2 NAME 'eduPerson' AUXILIARY
  MAY ( eduPersonPrincipalName ) )
"""


@dataclass(frozen=True)
class LdapServer:
    url: str
    base_dn: str
    bind_dn: str
    bind_password: str
    register: dict[str, str]


def _config(state: Path) -> str:
    schema = "/etc/ldap/schema"
    return f"""\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
include {state}/eduperson.schema
pidfile {state}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
suffix "{SUFFIX}"
rootdn "{BIND_DN}"
rootpw {BIND_PASSWORD}
directory {state}/db
access to * by anonymous auth by * none
"""


def _ldif() -> str:
    parts = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: naic\no: NAIC\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
    ]
    for identity, uid in REGISTER.items():
        parts.append(
            f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: eduPerson\n"
            f"uid: {uid}\ncn: {uid}\nsn: {uid}\neduPersonPrincipalName: {identity}\n"
        )
    return "\n".join(parts)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def ldap_server() -> Iterator[LdapServer]:
    if not SLAPD.exists():
        _require_root("the Debian package slapd is missing and must be installed")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        with _no_service_starts():
            _apt(["slapd"], env)
    state = Path(tempfile.mkdtemp(prefix="naic-ldap-", dir="/var/tmp"))
    (state / "db").mkdir()
    (state / "eduperson.schema").write_text(EDUPERSON_SCHEMA)
    conf = state / "slapd.conf"
    conf.write_text(_config(state))
    (state / "register.ldif").write_text(_ldif())
    added = subprocess.run(
        [str(SLAPADD), "-f", str(conf), "-l", str(state / "register.ldif")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if added.returncode != 0:
        pytest.fail(f"slapadd could not load the test register:\n{added.stderr}")
    port = _free_port()
    log = state / "slapd.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(SLAPD), "-d", "256", "-h", f"ldap://127.0.0.1:{port}/", "-f", str(conf)],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"slapd did not start on port {port}:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield LdapServer(
            url=f"ldap://127.0.0.1:{port}",
            base_dn=PEOPLE,
            bind_dn=BIND_DN,
            bind_password=BIND_PASSWORD,
            register=dict(REGISTER),
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(state, ignore_errors=True)
