"""`naic workshop check NAME` and "try as a student", on the hub.

    POST /hub/api/naic/workshops/{name}/check   start a check (202), or see the one running
    GET  /hub/api/naic/workshops/{name}/check?since=N   its lines from the N-th, and whether
                                                it is done and whether anything failed
    POST /hub/api/naic/workshops/{name}/try     start the workshop's preset session for its
                                                instructor, before the window opens

A check says, one line each (`PASS what: why` / `FAIL what: why`, `… ` for progress):
whether every seat's GPU-hours fit the project's budget (naic.hub.workshops.budget);
whether Slurm holds the reservation the workshop needs (its window, nodes or cores and
accounts) and, for a project's reservation, accepts a job of the instructor in it (`sbatch
--test-only`); whether the shared course folder is there on the site and read-only for
students (`stat`); and whether the material's notebooks run: one Slurm batch job of the
instructor, with the workshop's preset session (resource, GPUs, hours, environment,
project; outside the reservation, which may not have begun), fetches the material as
sessions do and runs every notebook with nbclient (naic.hub.workshops.checks). A notebook
that breaks is named with its cell (number, first line) and the error.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tornado import web

from naic.hub.catalogue import Catalogue
from naic.hub.usage.ledger import Ledger
from naic.hub.workshops import checks
from naic.hub.workshops.base import _WorkshopHandler, preset_of
from naic.hub.workshops.budget import seats_budget
from naic.hub.workshops.rules import reservation_for
from naic.hub.workshops.store import Workshop
from naic.spawners import batch, script
from naic.spawners.request import RequestError, SessionRequest, UserFacts, parse_request
from naic.spawners.site import Site, site_for

POLL_S = 2.0


@dataclass
class CheckRun:
    lines: list[str] = field(default_factory=list)
    done: bool = False
    failed: bool = False

    def say(self, line: str) -> None:
        self.lines.append(line)

    def result(self, ok: bool, what: str, why: str) -> None:
        self.say(f"{'PASS' if ok else 'FAIL'} {what}: {why}")
        self.failed |= not ok

    def json(self, since: int = 0) -> dict:
        return {
            "lines": self.lines[since:],
            "next": len(self.lines),
            "done": self.done,
            "failed": self.failed,
        }


#: The check of each workshop this hub process runs or ran last.
RUNS: dict[str, CheckRun] = {}
_TASKS: set[asyncio.Task] = set()


def preset_request(ws: Workshop, cat: Catalogue, reservation: str | None) -> SessionRequest:
    """The workshop's preset session for its instructor, as a student's is parsed."""
    preset = preset_of(ws, ws.hours, reservation)
    facts = UserFacts(name=ws.instructor, workshops=(preset,))
    return parse_request({"workshop": ws.name}, cat, facts)


async def check_budget(run: CheckRun, ws: Workshop, cat: Catalogue, ledger: Ledger) -> None:
    try:
        fits, sentence = await seats_budget(cat, ledger, ws, datetime.now(UTC))
    except RuntimeError as exc:
        fits, sentence = False, f"Slurm's accounting does not answer ({exc})"
    run.result(fits, "budget", sentence)


async def check_reservation(run: CheckRun, ws: Workshop, cat: Catalogue, site: Site) -> None:
    if ws.awaiting_approval:
        return run.result(False, "reservation", "it awaits an admin's approval; none is made yet")
    if not ws.reservation:
        return run.result(False, "reservation", "the workshop has no reservation in Slurm")
    from naic.hub.workshops.api import spec_of  # api imports this module's neighbours

    want = reservation_for(spec_of(ws), cat, users=(), nodes_in_partition=1 << 30)
    shown = await site.run(["scontrol", "show", "reservation", ws.reservation], timeout=30)
    if shown.code or ws.reservation not in shown.out:
        why = (shown.err or shown.out).strip() or "not found"
        return run.result(False, "reservation", f"Slurm has no {ws.reservation}: {why}")
    problems = checks.reservation_problems(
        shown.out, start=ws.starts_at, end=ws.ends_at, nodes=want.nodes, cores=want.cores,
        accounts=want.accounts,
    )  # fmt: skip
    if problems:
        return run.result(False, "reservation", f"{ws.reservation}: " + "; ".join(problems))
    held = f"{want.nodes} nodes" if want.nodes else f"{want.cores} cores"
    if not ws.project:
        return run.result(
            True, "reservation", f"{ws.reservation} holds {held} for the window; students are "
            "added to it as they join",
        )  # fmt: skip
    account = await site.account(ws.instructor)
    req = preset_request(ws, cat, ws.reservation)
    text = script.render_batch_script(
        req, cat, job_name="naic-check", command=["true"], workdir=account.pw_dir,
        output="/dev/null", exports={},
    )  # fmt: skip
    if ws.starts_at > datetime.now(UTC):
        shebang, rest = text.split("\n", 1)
        text = f"{shebang}\n{checks.begin_line(ws.starts_at)}\n{rest}"
    root = site.root_at()
    argv = script.test_only_argv(
        as_root=root, user=account.pw_name, group=str(account.pw_gid), sudo=not root
    )
    tried = await site.run(argv, stdin=text, timeout=60)
    words = " ".join((tried.err or tried.out).split())
    if tried.code:
        why = f"Slurm refuses a job of {ws.instructor} in {ws.reservation}: {words}"
        return run.result(False, "reservation", why)
    run.result(
        True, "reservation", f"{ws.reservation} holds {held} for the window, and Slurm accepts "
        f"a job of {ws.instructor} in it ({words.removeprefix('sbatch: ')})",
    )  # fmt: skip


async def check_shared(run: CheckRun, ws: Workshop, site: Site) -> None:
    if not ws.shared:
        return
    shown = await site.run(["stat", "-L", "-c", "%a %U %F", ws.shared], timeout=30)
    if shown.code:
        why = " ".join((shown.err or shown.out).split())[:300] or "not found"
        return run.result(False, "shared folder", f"{ws.shared} is not there on the site: {why}")
    ok, why = checks.shared_verdict(ws.shared, shown.out)
    run.result(ok, "shared folder", why)


async def check_notebooks(run: CheckRun, ws: Workshop, cat: Catalogue, site: Site) -> None:
    if not ws.material:
        return run.result(True, "material", "the workshop has no material to run")
    account = await site.account(ws.instructor)
    home, user = account.pw_dir, account.pw_name
    req = preset_request(ws, cat, None)
    text = script.render_batch_script(
        req, cat, job_name=batch.JOB_NAME, command=checks.job_command(ws.material, ws.name),
        workdir=home, output=batch.log_path(home), exports={"NAIC_BATCH": "1"},
    )  # fmt: skip
    root = site.root_at()
    argv = script.sbatch_argv(
        as_root=root, user=user, group=str(account.pw_gid), sudo=not root, keep_env=False
    )
    try:
        job = str(script.parse_parsable(await site.call(argv, stdin=text)))
    except (RuntimeError, ValueError) as exc:
        return run.result(False, "notebooks", f"Slurm did not take the notebook job: {exc}")
    gpus = f", {req.gpus} GPU{'s' * (req.gpus != 1)}" if req.gpus else ""
    run.say(
        f"… notebook job {job} of {user}: {req.site}:{req.resource}{gpus}, environment "
        f"{req.environment}, project {req.project or 'none'}"
    )
    log_file, shown, words = batch.log_path(home, job), 0, ""
    while True:
        state = await batch.job_state(site, user, job)
        if state is not None and state.words != words:
            words = state.words
            run.say(f"… job {job}: {words}")
        log = (await site.run(["cat", log_file], as_user=user, timeout=30)).out
        for line in checks.progress_lines(log)[shown:]:
            run.say(f"… {line.removeprefix(checks.PREFIX)}")
            shown += 1
        if state is not None and state.state in ("done", "failed"):
            break
        await asyncio.sleep(POLL_S)
    if checks.material_failed(log):
        tail = " ".join(log.strip().splitlines()[-3:])[:400]
        return run.result(False, "material", f"{ws.material} could not be fetched: {tail}")
    results = checks.notebook_results(log)
    if not results:
        tail = " ".join(log.strip().splitlines()[-3:])[:400]
        return run.result(False, "notebooks", f"no notebook ran ({words}): {tail}")
    run.result(True, "material", f"{ws.material} fetched, {len(results)} notebooks")
    folder = f"{home}/{checks.check_folder(ws.name)}"
    for notebook, ok in results:
        if ok:
            run.result(True, f"notebook {notebook}", "every cell ran")
            continue
        executed = f"{folder}/{batch.output_path(notebook, job)}"
        got = await site.run(["cat", executed], as_user=user, timeout=30)
        cell = checks.failing_cell(got.out) if got.code == 0 else None
        run.result(False, f"notebook {notebook}", cell or f"it did not run to its end ({words})")


async def check_workshop(run: CheckRun, ws: Workshop, cat: Catalogue, ledger: Ledger, log):
    try:
        run.say(f"… checking {ws.name}: {ws.seats} seats on {ws.site}:{ws.resource}")
        site = site_for(cat, ws.site)
        await check_budget(run, ws, cat, ledger)
        await check_shared(run, ws, site)
        await check_reservation(run, ws, cat, site)
        await check_notebooks(run, ws, cat, site)
    except (RuntimeError, LookupError, PermissionError, ValueError, RequestError) as exc:
        run.result(False, "check", f"it could not go on: {exc}")
    except Exception as exc:
        log.exception("Check of workshop %s failed", ws.name)
        run.result(False, "check", f"it could not go on: {exc}")
    finally:
        run.done = True


class CheckHandler(_WorkshopHandler):
    def post(self, name: str) -> None:
        ws = self._mine(name)
        run = RUNS.get(name)
        if run is None or run.done:
            run = RUNS[name] = CheckRun()
            task = asyncio.ensure_future(
                check_workshop(run, ws, self.naic_catalogue, self.naic_ledger, self.log)
            )
            _TASKS.add(task)
            task.add_done_callback(_TASKS.discard)
            self.log.info("Workshop %s: check started by %s", name, self.current_user.name)
        self.set_status(202)
        self.finish(json.dumps(run.json()))

    def get(self, name: str) -> None:
        self._mine(name)
        run = RUNS.get(name)
        if run is None:
            raise web.HTTPError(404, f"No check of {name} has run; start one with POST.")
        try:
            since = max(int(self.get_argument("since", "0")), 0)
        except ValueError:
            raise web.HTTPError(400, "`since` is a line number, e.g. 0.") from None
        self.finish(json.dumps(run.json(since)))


def try_as_student(handler, ws: Workshop) -> None:
    """Only the instructor, only before the window opens (then the code, like students)."""
    if ws.instructor != handler.current_user.name:
        raise web.HTTPError(403, f"Only {ws.instructor}, its instructor, tries {ws.title}.")
    if ws.ended_at is not None or datetime.now(UTC) >= ws.starts_at:
        raise web.HTTPError(
            409, f"The window of {ws.title} has opened; join it with its code like a student."
        )
    if ws.awaiting_approval:
        raise web.HTTPError(409, f"The workshop {ws.title} awaits an admin's approval.")


class TryHandler(_WorkshopHandler):
    async def post(self, name: str) -> None:
        ws = self._mine(name)
        try_as_student(self, ws)
        user = self.current_user
        spawner = user.get_or_create_spawner(ws.name, ws.name, replace_failed=True)
        if spawner.active:
            raise web.HTTPError(409, f"Your session {ws.name} is already running or starting.")
        await self.spawn_single_user(user, ws.name, options={"workshop": ws.name})
        self.set_status(202)
        self.finish(json.dumps({"server": ws.name, "user_options": {"workshop": ws.name}}))
