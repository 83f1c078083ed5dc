"""GPU-hours reclaimed by naic's GPU-aware idle policy against activity-only culling.

    .venv/bin/python -m benchmarks.gpu_idle [--seed 1] [--sessions 400] [--idle-timeout 60]
        [--gpu-idle-pct 5] [--gpu-idle-timeout 30] [--warn 10] [--come-back 0.5]

A simulation, not a measurement: no hub, no cluster, no GPU. A synthetic week of GPU
sessions (`synthetic_week`, deterministic for a seed) is replayed minute by minute under
three policies (`simulate`), each on the same sessions:

- `none`: every session runs until its natural end (the user stops it, or its time limit).
- `activity-only`, as jupyterhub-idle-culler does it: stop a session after `--idle-timeout`
  minutes without browser/kernel activity. GPU use is not looked at.
- `gpu-aware` (naic): the hub's own culler (`naic.hub.sessions.culler.decide`, the code the
  `naic-culler` service runs), fed one GPU report per minute. A session with GPUs is stopped
  once its GPU has been below `--gpu-idle-pct` for `--gpu-idle-timeout` + `--warn` minutes,
  open tab or not, and never while the GPU is busy. The user is warned after
  `--gpu-idle-timeout` minutes, and GPU use meanwhile restarts the count. Its activity rule
  (`--idle-timeout`, counting GPU use as activity) stops only what the GPU rule would stop
  anyway, while `--idle-timeout` exceeds the GPU rule's total.

Assumptions (each a constant or an argument below; they are printed with the results):

- Arrivals: `--sessions` sessions start within one week (Monday 00:00 to Sunday 24:00); the
  start hour is drawn with weights `HOUR_WEIGHTS`: weekday office hours 10, weekday evening
  3, weekday night 0.5, weekend day 2, weekend night 0.3.
- GPUs per session: 1, 2, 3, 4 with weights 70, 15, 5, 10. The requested hours (the Slurm
  time limit) are drawn per archetype from 1 to 24 h (`ARCHETYPES`).
- Behaviour archetypes, with their shares (`ARCHETYPES`), per minute (activity, GPU %):
  * trains, then idles with the tab open (25 %): 5–20 min of setup, GPU training for
    20–60 % of the time limit, then 0–2 % GPU to the limit while the open tab keeps
    reporting activity.
  * interactive prototyping (30 %): work blocks of 5–30 min (GPU 30–95 % in 60 % of their
    minutes, otherwise 0–3 %), thinking gaps of 2–25 min (tab active, GPU idle), and breaks of
    15–50 min (no activity, GPU idle) after 15 % of the blocks; the user stops the session
    after 50–100 % of the time limit.
  * walks away (15 %): 20–120 min of prototyping, then nothing (no activity, no GPU) until
    the time limit.
  * long training, no browser (15 %): 5–15 min of setup in the browser, then GPU 75–100 %
    (a 0–3 % dip of 1–3 min, a checkpoint, at 2 % of minutes) with no browser activity until
    training ends at 60–100 % of the time limit; then idle, no activity, to the limit. Only
    the idle tail may be stopped: killing the training is a wrongful stop.
  * forgotten over night (15 %): starts 15:00–21:00, 1–3 h of prototyping, the tab left open
    for 0–3 h (activity, GPU idle), then the laptop sleeps (no activity) to the 12 or 24 h
    limit.
- Warned users: at each warning a user comes back with probability `--come-back` (a
  per-session draw, so every policy sees the same users): `RETURN_AFTER_MIN` minutes after
  the warning they use the GPU at `RETURN_GPU_PCT` % with the tab active for
  `RETURN_MIN` minutes, then leave again (the session's own timeline resumes). That use is
  real work the `none` policy does not have, so `gpu-aware` may show slightly more GPU-hours
  used. With `--warn` at or below `RETURN_AFTER_MIN` nobody comes back in time.
- Both culling policies look every minute (jupyterhub-idle-culler looks every few minutes,
  which would only delay its stops). A stopped session is not restarted.
- GPU-hours allocated: GPUs × minutes the session ran. Used: GPUs × utilisation, summed per
  minute. Idle: allocated − used. Reclaimed: allocated under `none` − allocated under the
  policy. A stop is wrongful when the GPU was at or above `--gpu-idle-pct` in any of the
  10 minutes before it, or when it ends a long training before the training finished.
  Reclaimed hours split into idle hours reclaimed (idle under `none` − idle under the
  policy) and GPU use cut (used under `none` − used under the policy).
  "Stopped before later GPU use" counts stops after which the session, left alone, would
  have used its GPU again.

Results: a table on stdout and benchmarks/results/gpu_idle.json. Runs in a few seconds.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from naic.hub.sessions.culler import Notice as CullNotice
from naic.hub.sessions.culler import Policy as CullPolicy
from naic.hub.sessions.culler import SessionView, decide

RESULTS = Path(__file__).resolve().parent / "results"

DAY_MIN = 24 * 60
WEEK_MIN = 7 * DAY_MIN
#: A stop is wrongful if the GPU was busy in this many minutes before it.
WRONGFUL_LOOKBACK_MIN = 10
RETURN_AFTER_MIN = 5
RETURN_MIN = 15
RETURN_GPU_PCT = 50.0
#: Draws kept per session for "does the user come back at the k-th warning".
RETURN_DRAWS = 16

GPU_CHOICES = ((1, 70), (2, 15), (3, 5), (4, 10))

TRAIN_THEN_IDLE = "trains, then idles with the tab open"
INTERACTIVE = "interactive prototyping"
WALKS_AWAY = "walks away"
LONG_TRAINING = "long training, no browser"
OVERNIGHT = "forgotten over night"

#: archetype: (share, requested hours and their weights)
ARCHETYPES: dict[str, tuple[float, tuple[tuple[int, int], ...]]] = {
    TRAIN_THEN_IDLE: (0.25, ((4, 3), (8, 4), (12, 2), (24, 1))),
    INTERACTIVE: (0.30, ((1, 2), (2, 4), (3, 3), (4, 3), (6, 1), (8, 1))),
    WALKS_AWAY: (0.15, ((2, 3), (4, 4), (8, 2), (12, 1))),
    LONG_TRAINING: (0.15, ((8, 3), (12, 3), (24, 2))),
    OVERNIGHT: (0.15, ((12, 1), (24, 1))),
}


def hour_weight(hour_of_week: int) -> float:
    day, hour = divmod(hour_of_week, 24)
    if day >= 5:  # Saturday, Sunday
        return 2.0 if 8 <= hour < 22 else 0.3
    if 8 <= hour < 18:
        return 10.0
    if 18 <= hour < 23:
        return 3.0
    return 0.5


HOUR_WEIGHTS = tuple(hour_weight(h) for h in range(7 * 24))


@dataclass(frozen=True)
class Session:
    """One GPU session as its user would run it if nothing stopped it.

    `active[m]` and `gpu_pct[m]` describe minute `m` after the start; the session's natural
    end is `len(active)` minutes (its time limit or the user's own stop). `return_draws[k]`
    decides whether the user comes back after the k-th idle warning (below the share).
    """

    id: int
    archetype: str
    start: int
    gpus: int
    requested_min: int
    active: tuple[bool, ...]
    gpu_pct: tuple[float, ...]
    return_draws: tuple[float, ...] = ()

    @property
    def natural_min(self) -> int:
        return len(self.active)


@dataclass(frozen=True)
class Policy:
    """`none`, `activity` (jupyterhub-idle-culler) or `gpu` (naic's GPU-aware policy)."""

    name: str
    kind: Literal["none", "activity", "gpu"]
    idle_timeout: int = 60
    gpu_idle_pct: float = 5.0
    gpu_idle_timeout: int = 30
    warn: int = 10
    come_back: float = 0.5


@dataclass
class Result:
    policy: str
    allocated_gpu_h: float = 0.0
    used_gpu_h: float = 0.0
    stopped: int = 0
    wrongful: int = 0
    stopped_before_later_use: int = 0
    warnings: int = 0
    came_back: int = 0
    #: minutes each session ran, in the order given to `simulate`
    ran_min: list[int] = field(default_factory=list)
    #: ids of the sessions the policy stopped
    stopped_ids: list[int] = field(default_factory=list)
    wrongful_ids: list[int] = field(default_factory=list)

    @property
    def idle_gpu_h(self) -> float:
        return self.allocated_gpu_h - self.used_gpu_h


def reclaimed_gpu_h(result: Result, baseline: Result) -> float:
    return baseline.allocated_gpu_h - result.allocated_gpu_h


def work_cut_gpu_h(result: Result, baseline: Result) -> float:
    """The part of the reclaimed hours that was GPU use (negative: users came back to work)."""
    return baseline.used_gpu_h - result.used_gpu_h


# --- the synthetic week -----------------------------------------------------------------


class _Timeline:
    """Appends minutes of (activity, GPU %) up to a cap (the time limit)."""

    def __init__(self, rng: random.Random, cap: int) -> None:
        self.rng = rng
        self.cap = cap
        self.active: list[bool] = []
        self.gpu: list[float] = []

    def room(self) -> int:
        return self.cap - len(self.active)

    def add(self, minutes: int, active: bool, low: float, high: float) -> None:
        for _ in range(max(0, min(minutes, self.room()))):
            self.active.append(active)
            self.gpu.append(round(self.rng.uniform(low, high), 1))

    def setup(self, minutes: int) -> None:
        """Editing, installing, a first test cell: tab active, GPU in short bursts."""
        for _ in range(max(0, min(minutes, self.room()))):
            self.active.append(True)
            busy = self.rng.random() < 0.3
            self.gpu.append(round(self.rng.uniform(10, 60) if busy else 0.0, 1))

    def prototype(self, minutes: int) -> None:
        """Work blocks, thinking gaps and the odd break, for about `minutes`."""
        rng = self.rng
        end = min(self.cap, len(self.active) + minutes)
        while len(self.active) < end:
            for _ in range(min(rng.randint(5, 30), end - len(self.active))):
                busy = rng.random() < 0.6
                self.active.append(True)
                self.gpu.append(round(rng.uniform(30, 95) if busy else rng.uniform(0, 3), 1))
            self.add(min(rng.randint(2, 25), end - len(self.active)), True, 0, 2)
            if rng.random() < 0.15:
                self.add(min(rng.randint(15, 50), end - len(self.active)), False, 0, 1)

    def train(self, minutes: int, active: bool) -> None:
        rng = self.rng
        left = max(0, min(minutes, self.room()))
        while left > 0:
            if rng.random() < 0.02:  # a checkpoint: the GPU waits on the disk for a moment
                dip = min(rng.randint(1, 3), left)
                self.add(dip, active, 0, 3)
                left -= dip
            else:
                self.add(1, active, 75, 100)
                left -= 1

    def fill(self, active: bool) -> None:
        self.add(self.room(), active, 0, 2 if active else 1)


def _weighted(rng: random.Random, pairs: tuple[tuple[int, int], ...]) -> int:
    return rng.choices([v for v, _ in pairs], weights=[w for _, w in pairs])[0]


def _session(rng: random.Random, sid: int, archetype: str) -> Session:
    hours = _weighted(rng, ARCHETYPES[archetype][1])
    cap = hours * 60
    start_hour = rng.choices(range(7 * 24), weights=HOUR_WEIGHTS)[0]
    if archetype == OVERNIGHT:
        start_hour = start_hour // 24 * 24 + rng.randint(15, 20)
    start = start_hour * 60 + rng.randrange(60)
    t = _Timeline(rng, cap)
    if archetype == TRAIN_THEN_IDLE:
        t.setup(rng.randint(5, 20))
        t.train(round(cap * rng.uniform(0.2, 0.6)), active=True)
        t.fill(active=True)
    elif archetype == INTERACTIVE:
        t.prototype(round(cap * rng.uniform(0.5, 1.0)))
    elif archetype == WALKS_AWAY:
        t.prototype(rng.randint(20, 120))
        t.fill(active=False)
    elif archetype == LONG_TRAINING:
        t.setup(rng.randint(5, 15))
        t.train(round(cap * rng.uniform(0.6, 1.0)) - len(t.active), active=False)
        t.fill(active=False)
    elif archetype == OVERNIGHT:
        t.prototype(rng.randint(60, 180))
        t.add(rng.randint(0, 180), True, 0, 2)
        t.fill(active=False)
    else:
        raise ValueError(f"unknown archetype {archetype!r}")
    return Session(
        id=sid,
        archetype=archetype,
        start=start,
        gpus=_weighted(rng, GPU_CHOICES),
        requested_min=cap,
        active=tuple(t.active),
        gpu_pct=tuple(t.gpu),
        return_draws=tuple(rng.random() for _ in range(RETURN_DRAWS)),
    )


def synthetic_week(seed: int = 1, n: int = 400) -> list[Session]:
    """`n` sessions starting within one week, the same for the same seed; sorted by start."""
    rng = random.Random(seed)  # noqa: S311 - reproducible on purpose, not a secret
    names = list(ARCHETYPES)
    shares = [ARCHETYPES[a][0] for a in names]
    kinds = rng.choices(names, weights=shares, k=n)
    sessions = [_session(rng, i, kind) for i, kind in enumerate(kinds)]
    return sorted(sessions, key=lambda s: (s.start, s.id))


# --- the policies -----------------------------------------------------------------------


def _replay(session: Session, policy: Policy) -> tuple[int, list[float], int, int]:
    """Minutes the session ran, its GPU % per minute as run, warnings, and come-backs."""
    if policy.kind == "gpu":
        return _replay_naic(session, policy)
    no_activity = 0
    seen: list[float] = []
    for minute in range(session.natural_min):
        seen.append(session.gpu_pct[minute])
        no_activity = 0 if session.active[minute] else no_activity + 1
        if policy.kind == "activity" and no_activity >= policy.idle_timeout:
            return minute + 1, seen, 0, 0
    return session.natural_min, seen, 0, 0


def _replay_naic(session: Session, policy: Policy) -> tuple[int, list[float], int, int]:
    """The hub's own culler (`naic.hub.sessions.culler.decide`) looking at the end of every minute,
    with one GPU report per minute: the simulation measures the code that runs."""
    t0 = datetime(2026, 11, 23, tzinfo=UTC)
    rules = CullPolicy(
        idle_s=policy.idle_timeout * 60,
        # The site's gpu_idle_minutes counts to the stop; this policy warns at its timeout.
        gpu_idle_s=(policy.gpu_idle_timeout + policy.warn) * 60,
        max_age_s=None,
        warn_s=policy.warn * 60,
    )
    view = SessionView("sim", "", "sim", session.gpus, t0, None, t0, None, rules)
    warnings = came_back = 0
    back_from = back_until = -1
    seen: list[float] = []
    for minute in range(session.natural_min):
        active, pct = session.active[minute], session.gpu_pct[minute]
        if back_from <= minute < back_until:  # a warned user came back to work
            active, pct = True, max(pct, RETURN_GPU_PCT)
        seen.append(pct)
        now = t0 + timedelta(minutes=minute + 1)
        view = replace(
            view,
            gpu_reported_at=now,
            last_activity=now if active else view.last_activity,
            gpu_busy_at=now if pct >= policy.gpu_idle_pct else view.gpu_busy_at,
        )
        for action in decide(view, now):
            if action.what == "stop":
                return minute + 1, seen, warnings, came_back
            notices = dict(view.notices)
            if action.what == "clear":
                notices.pop(action.kind)
            else:
                notices[action.kind] = CullNotice(action.kind, action.deadline, now)
                k = warnings
                draw = session.return_draws[k] if k < len(session.return_draws) else 1
                warnings += 1
                if draw < policy.come_back and RETURN_AFTER_MIN < policy.warn:
                    came_back += 1
                    back_from = minute + 1 + RETURN_AFTER_MIN
                    back_until = back_from + RETURN_MIN
            view = replace(view, notices=notices)
    return session.natural_min, seen, warnings, came_back


def simulate(sessions: list[Session], policy: Policy) -> Result:
    """Replay every session under `policy`; pure and deterministic."""
    result = Result(policy.name)
    for s in sessions:
        ran, seen, warnings, came_back = _replay(s, policy)
        result.ran_min.append(ran)
        result.allocated_gpu_h += s.gpus * ran / 60
        result.used_gpu_h += s.gpus * sum(seen) / 100 / 60
        result.warnings += warnings
        result.came_back += came_back
        if ran == s.natural_min:
            continue
        result.stopped += 1
        result.stopped_ids.append(s.id)
        recent = seen[-WRONGFUL_LOOKBACK_MIN:]
        later = s.gpu_pct[ran:]
        busy_before = any(p >= policy.gpu_idle_pct for p in recent)
        busy_later = any(p >= policy.gpu_idle_pct for p in later)
        if busy_later:
            result.stopped_before_later_use += 1
        training_cut = s.archetype == LONG_TRAINING and any(p >= 75 for p in later)
        if busy_before or training_cut:
            result.wrongful += 1
            result.wrongful_ids.append(s.id)
    return result


def policies(args: argparse.Namespace) -> list[Policy]:
    return [
        Policy("none", "none"),
        Policy("activity-only (idle-culler)", "activity", idle_timeout=args.idle_timeout),
        Policy(
            "gpu-aware (naic)",
            "gpu",
            idle_timeout=args.idle_timeout,
            gpu_idle_pct=args.gpu_idle_pct,
            gpu_idle_timeout=args.gpu_idle_timeout,
            warn=args.warn,
            come_back=args.come_back,
        ),
    ]


# --- report -----------------------------------------------------------------------------


def assumptions(args: argparse.Namespace) -> list[str]:
    shares = ", ".join(f"{name} {share:.0%}" for name, (share, _) in ARCHETYPES.items())
    return [
        f"{args.sessions} GPU sessions starting in one synthetic week, seed {args.seed}; "
        "start hours weighted: weekday 08-18 10, weekday evening 3, night 0.5, "
        "weekend day 2, weekend night 0.3",
        "GPUs 1/2/3/4 with weights 70/15/5/10; time limits 1-24 h drawn per archetype",
        f"archetypes: {shares}",
        "an open tab counts as activity; a long training without a browser sends none",
        f"activity-only: stop after {args.idle_timeout} min without activity, GPU ignored",
        f"gpu-aware: warn after {args.gpu_idle_timeout} min below {args.gpu_idle_pct:g} % GPU, "
        f"stop {args.warn} min later; {args.come_back:.0%} of warned users come back "
        f"{RETURN_AFTER_MIN} min after the warning and use the GPU at {RETURN_GPU_PCT:g} % "
        f"for {RETURN_MIN} min",
        "both culling policies check every minute; stopped sessions are not restarted",
        f"wrongful stop: GPU >= {args.gpu_idle_pct:g} % in the {WRONGFUL_LOOKBACK_MIN} min "
        "before it, or a long training cut before it finished",
    ]


def run(args: argparse.Namespace) -> dict:
    sessions = synthetic_week(args.seed, args.sessions)
    results = [simulate(sessions, p) for p in policies(args)]
    baseline = results[0]
    by_archetype = {}
    for name in ARCHETYPES:
        idx = [i for i, s in enumerate(sessions) if s.archetype == name]
        by_archetype[name] = {
            "sessions": len(idx),
            "allocated_gpu_h": {
                r.policy: round(sum(sessions[i].gpus * r.ran_min[i] for i in idx) / 60, 1)
                for r in results
            },
        }
    return {
        "benchmark": "gpu_idle",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "what": "simulation: GPU-hours over one synthetic week under three idle policies",
        "parameters": {k: v for k, v in vars(args).items() if k != "json"},
        "assumptions": assumptions(args),
        "archetypes": dict(Counter(s.archetype for s in sessions)),
        "policies": {
            r.policy: {
                "allocated_gpu_h": round(r.allocated_gpu_h, 1),
                "used_gpu_h": round(r.used_gpu_h, 1),
                "idle_gpu_h": round(r.idle_gpu_h, 1),
                "reclaimed_gpu_h": round(reclaimed_gpu_h(r, baseline), 1),
                "reclaimed_share": round(
                    reclaimed_gpu_h(r, baseline) / baseline.allocated_gpu_h, 3
                ),
                "reclaimed_idle_gpu_h": round(baseline.idle_gpu_h - r.idle_gpu_h, 1),
                "work_cut_gpu_h": round(work_cut_gpu_h(r, baseline), 1),
                "sessions_stopped": r.stopped,
                "wrongful_stops": r.wrongful,
                "stopped_before_later_gpu_use": r.stopped_before_later_use,
                "warnings": r.warnings,
                "came_back": r.came_back,
            }
            for r in results
        },
        "allocated_by_archetype": by_archetype,
    }


def report(result: dict) -> str:
    from benchmarks import harness  # the hub helpers it imports are not needed to simulate

    header = [
        "policy",
        "GPU-h allocated",
        "GPU-h used",
        "GPU-h idle",
        "GPU-h reclaimed",
        "of it idle",
        "of it GPU use cut",
        "stopped",
        "wrongful",
        "stopped before later GPU use",
    ]
    rows = [
        [
            name,
            f"{p['allocated_gpu_h']:.0f}",
            f"{p['used_gpu_h']:.0f}",
            f"{p['idle_gpu_h']:.0f}",
            f"{p['reclaimed_gpu_h']:.0f} ({p['reclaimed_share']:.0%})",
            f"{p['reclaimed_idle_gpu_h']:.0f}",
            f"{p['work_cut_gpu_h']:.0f}",
            p["sessions_stopped"],
            p["wrongful_stops"],
            p["stopped_before_later_gpu_use"],
        ]
        for name, p in result["policies"].items()
    ]
    names = list(result["policies"])
    arch_rows = [
        [name, a["sessions"], *(f"{a['allocated_gpu_h'][n]:.0f}" for n in names)]
        for name, a in result["allocated_by_archetype"].items()
    ]
    gpu = result["policies"][names[-1]]
    lines = ["Assumptions:", *(f"- {a}" for a in result["assumptions"]), ""]
    lines.append(harness.table(header, rows))
    lines.append("\nGPU-h allocated, by archetype:")
    lines.append(harness.table(["archetype", "sessions", *names], arch_rows))
    lines.append(f"\n{gpu['warnings']} warnings under gpu-aware, {gpu['came_back']} came back.")
    return "\n".join(lines)


def main() -> None:
    from benchmarks import harness

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="the synthetic week (default 1)")
    parser.add_argument("--sessions", type=int, default=400, help="GPU sessions in the week")
    parser.add_argument(
        "--idle-timeout", type=int, default=60, help="minutes without activity (default 60)"
    )
    parser.add_argument(
        "--gpu-idle-pct", type=float, default=5.0, help="GPU %% below which it is idle (5)"
    )
    parser.add_argument(
        "--gpu-idle-timeout", type=int, default=30, help="idle GPU minutes before the warning"
    )
    parser.add_argument("--warn", type=int, default=10, help="minutes from warning to stop")
    parser.add_argument(
        "--come-back", type=float, default=0.5, help="share of warned users who come back"
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "gpu_idle.json", help="output file")
    args = parser.parse_args()
    if args.sessions < 1 or args.idle_timeout < 1 or args.gpu_idle_timeout < 1 or args.warn < 0:
        parser.error("--sessions and the timeouts must be at least 1, --warn at least 0")
    if not 0 <= args.come_back <= 1:
        parser.error("--come-back is a share between 0 and 1")
    result = run(args)
    harness.publish(report(result), result, args.json)


if __name__ == "__main__":
    main()
