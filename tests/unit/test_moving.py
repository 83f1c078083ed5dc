"""Moving a queued session (naic.spawners.moving): the old job keeps its place until the new
session has started; whichever starts first wins, and every hold not used is released."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

from naic.spawners.federation import Ask
from naic.spawners.hooks import Session
from naic.spawners.moving import Moves
from naic.spawners.request import parse_request
from tests.unit.examples import ALICE, TC


class Child:
    """A backend whose start ends when the test says (`done`), or fails."""

    def __init__(self, site: str, fail: str = "") -> None:
        self.site, self.fail = site, fail
        self.done = asyncio.Event()
        self.stopped = False

    async def start(self):
        await self.done.wait()
        if self.fail:
            raise RuntimeError(self.fail)
        return (f"{self.site}-host", 8888)

    async def stop(self, now: bool = False) -> None:
        self.stopped = True

    def waiting(self):
        return (not self.done.is_set(), 600.0)


class Hooks:
    def __init__(self) -> None:
        self.released: list[int] = []

    def ended(self, session: Session, at) -> None:
        self.released.append(session.hold_id)


class Router(Moves):
    """Just what Moves needs of naic.spawners.router.Router."""

    def __init__(self, old: Child, new: Child) -> None:
        super().__init__()
        self.catalogue, self.hooks, self.log = TC, Hooks(), logging.getLogger("test")
        self.request = parse_request({"site": "testcluster", "resource": "a100"}, TC, ALICE)
        self.session = Session(hold_id=1, ask={"gpus": 1})
        self.name, self._log_name, self.user_options = "", "alice", {}
        self.orm_spawner = SimpleNamespace(user_options={})
        self.old, self.new, self.child_spawner = old, new, None

    def construct_child(self):
        self.child_spawner = self.old

    def child_for(self, req):
        return self.new

    def _select(self, req):
        self.request = req


def moved_request():
    return parse_request({"site": "local", "resource": "cpu-small"}, TC, ALICE)


async def run(old: Child, new: Child, then) -> tuple[Router, object]:
    router = Router(old, new)
    starting = asyncio.ensure_future(router.start_movable())
    await asyncio.sleep(0)
    router._move_asked.set_result((moved_request(), 2))  # as move_to does, with hold 2
    await asyncio.sleep(0.01)
    await then(router)
    return router, await asyncio.wait_for(starting, 2)


def test_the_new_session_starts_then_the_old_job_is_cancelled() -> None:
    async def then(router):
        assert not router.old.stopped  # it keeps its place while the new one starts
        router.new.done.set()

    router, result = asyncio.run(run(Child("testcluster"), Child("local"), then))
    assert result == ("local-host", 8888)
    assert router.old.stopped and not router.new.stopped
    assert router.child_spawner is router.new and router.request.site == "local"
    assert (router.session.hold_id, router.hooks.released) == (2, [1])
    assert router.user_options["site"] == "local"
    assert router._take_notes()[-1].startswith("Moved to This machine; the job at Test cluster")


def test_the_old_job_starting_first_stays_and_the_new_one_is_stopped() -> None:
    async def then(router):
        router.old.done.set()

    router, result = asyncio.run(run(Child("testcluster"), Child("local"), then))
    assert result == ("testcluster-host", 8888)
    assert router.new.stopped and not router.old.stopped
    assert (router.session.hold_id, router.hooks.released) == (1, [2])
    assert router._take_notes()[-1] == "Started at Test cluster (Slurm on this machine) first; " \
        "not moved to This machine."  # fmt: skip


def test_a_new_session_that_fails_leaves_the_old_job_waiting() -> None:
    async def then(router):
        router.new.done.set()
        await asyncio.sleep(0.01)
        assert router._move_asked is not None and not router._move_asked.done()  # movable again
        assert "Could not move to This machine: no GPU left" in router._take_notes()[-1]
        router.old.done.set()

    router, result = asyncio.run(run(Child("testcluster"), Child("local", "no GPU left"), then))
    assert result == ("testcluster-host", 8888)
    assert router.new.stopped and not router.old.stopped
    assert (router.session.hold_id, router.hooks.released) == (1, [2])


def test_the_saved_ask_is_what_a_move_looks_for() -> None:
    router = Router(Child("testcluster"), Child("local"))
    assert router._ask() == Ask(gpus=1)
