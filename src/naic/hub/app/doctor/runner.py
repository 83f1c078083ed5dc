"""`naic doctor`: every check, printed as it is done; exit status 1 on any problem.

The quick part (this machine's ports and leftover proxy, the secrets' modes, the hub's
address against the sites' nodes) is what `naic up` runs at start (`up_checks`); the full
doctor adds the identity provider, SSH host keys, the scheduler, slurmdbd, and a test job
per partition that reaches the hub's API URL and reads the node's clock. While the hub is
not running, the doctor answers on the hub's API address itself (`here.stand_in`), so the
test job tests the very address and port the nodes will be given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable
from urllib.parse import urlparse

from naic.hub import catalogue
from naic.hub.app.config import Settings
from naic.hub.app.doctor import at_sites, here
from naic.hub.app.doctor.findings import Finding, is_loopback
from naic.spawners.site import site_for

#: sinfo at the start of `naic up` (here or over SSH): a scheduler that does not answer
#: must not stall it (sinfo alone retries for 9 s).
ADDRESS_TIMEOUT_S = 5


def settings_from(args: argparse.Namespace) -> Settings:
    """The options, else the `NAIC_*` variables the hub itself would read, else defaults."""
    env = Settings.from_env()
    return Settings(
        catalogue=(args.catalogue or env.catalogue).absolute(),
        data_dir=(args.data_dir or env.data_dir).absolute(),
        port=args.port or env.port,
        hub_ip=args.hub_ip or env.hub_ip,
    )


def _slurm_sites(cat: catalogue.Catalogue) -> list[str]:
    return [n for n, spec in cat.sites.items() if spec.backend == "slurm"]


async def _address(name: str, s: Settings, cat: catalogue.Catalogue, local: set[str]) -> Finding:
    url = here.hub_api_url(s.hub_ip, s.port)
    check = at_sites.address_check(name, site_for(cat, name), url, local, ADDRESS_TIMEOUT_S)
    try:
        return await asyncio.wait_for(check, ADDRESS_TIMEOUT_S + 1)
    except TimeoutError:
        why = f"{name} did not list its nodes within {ADDRESS_TIMEOUT_S} s"
        return Finding(f"{name}: hub address", True, f"not checked: {why}")


async def _addresses(s: Settings, cat: catalogue.Catalogue) -> list[Finding]:
    """Only a hub API on loopback can be out of the nodes' reach without a test job."""
    if not is_loopback(urlparse(here.hub_api_url(s.hub_ip, s.port)).hostname or ""):
        return []
    local = here.local_addresses()
    return list(await asyncio.gather(*(_address(n, s, cat, local) for n in _slurm_sites(cat))))


def quick_findings(
    s: Settings, cat: catalogue.Catalogue, *, starting: bool = False
) -> list[Finding]:
    out = here.port_findings(s, starting=starting) + here.secrets_check(s)
    if _slurm_sites(cat):
        out += asyncio.run(_addresses(s, cat))
    return out


def up_checks(s: Settings, cat: catalogue.Catalogue) -> tuple[str | None, list[str]]:
    """For `naic up`: (why it must not start: a port or the proxy's socket is taken, or
    None; warnings, one line each)."""
    problems = [f for f in quick_findings(s, cat, starting=True) if not f.ok]
    refusal = next((f for f in problems if f.check == "ports"), None)
    warnings = [f"naic up: warning: {f.check}: {f.sentence}" for f in problems if f is not refusal]
    return (f"naic up: {refusal.sentence}." if refusal else None), warnings


class Report:
    """Prints each finding as it comes, and what runs while a check takes seconds."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.findings: list[Finding] = []

    def progress(self, text: str) -> None:
        self.write(f"{'...':8} {text}")

    def add(self, *findings: Finding) -> None:
        for f in findings:
            self.findings.append(f)
            self.write(f.line())

    def summary(self) -> int:
        bad = [f for f in self.findings if not f.ok]
        if bad:
            self.write(f"naic doctor: {len(bad)} problem(s) in {len(self.findings)} check(s)")
            return 1
        self.write(f"naic doctor: all {len(self.findings)} check(s) pass")
        return 0


async def _full(
    s: Settings, cat: catalogue.Catalogue, report: Report, test_user: str | None
) -> None:
    if cat.identity is not None:
        report.progress(f"asking the identity provider {cat.identity.issuer}")
        report.add(*await asyncio.to_thread(here.idp_check, cat.identity.issuer))
    url = here.hub_api_url(s.hub_ip, s.port)
    local = here.local_addresses()
    sites = [n for n, spec in cat.sites.items() if spec.backend in ("slurm", "nodes")]
    hub_pid, _, _ = here.this_hub(s)
    api_port = s.port + here.HUB_API_OFFSET
    free = hub_pid is None and here.bind_state(s.hub_ip, api_port) == "free"
    stand_in = contextlib.nullcontext(False)
    if free and _slurm_sites(cat):  # test jobs will ask the hub's API: answer as it would
        stand_in = here.stand_in(s.hub_ip, api_port)
    with stand_in as standing:
        if standing:
            report.progress(
                f"the hub is not running: answering on {s.hub_ip}:{api_port} for the test jobs"
            )
        for name in sites:
            async for item in at_sites.site_checks(
                name, site_for(cat, name), url, local, test_user=test_user
            ):
                if isinstance(item, str):
                    report.progress(item)
                else:
                    report.add(item)


def run(
    s: Settings,
    *,
    quick: bool = False,
    test_user: str | None = None,
    write: Callable[[str], None] = print,
) -> int:
    try:
        cat = catalogue.load(s.catalogue)
    except catalogue.CatalogueError as exc:
        write(exc.message)
        return 1
    report = Report(lambda line: (write(line), sys.stdout.flush()))
    url = here.hub_api_url(s.hub_ip, s.port)
    write(f"naic doctor: {cat.name} from {s.catalogue}; data dir {s.data_dir}; jobs get {url}")
    report.add(*here.port_findings(s), *here.secrets_check(s))
    if quick:
        if _slurm_sites(cat):
            report.progress("listing the Slurm sites' nodes (sinfo)")
            report.add(*asyncio.run(_addresses(s, cat)))
    else:
        asyncio.run(_full(s, cat, report, test_user))
    return report.summary()


def main(args: argparse.Namespace) -> int:
    return run(settings_from(args), quick=args.quick, test_user=args.test_user)
