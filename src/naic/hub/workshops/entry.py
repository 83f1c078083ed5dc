"""A workshop as the way in: someone the identity provider vouched for who is in no project
may still log in when they hold a seat in a workshop that is open now, or arrive with a join
code that works now (the join link, `/hub/naic/workshops/join?code=…`, as the login's next
URL). They land on the join page; what they may start is the workshop's preset session
only, charged to the workshop's project (naic.spawners.request: a plain session needs a
project of their own, which they lack).

A code checked here counts against the same per-user budget as the join itself
(`naic.hub.workshops.api.rate_limited`): a login is no cheaper way to guess codes.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from naic.hub.workshops.rules import join_refusal, normalise_code
from naic.hub.workshops.store import WorkshopStore

#: The join page, below the hub's prefix (`/hub/`).
JOIN_PATH = "naic/workshops/join"


def code_in(next_url: str, hub_prefix: str) -> str | None:
    """Pure: the join code a login's next URL carries, when it is this hub's join page."""
    parts = urlsplit(next_url or "")
    if parts.scheme or parts.netloc:
        return None
    if parts.path.rstrip("/") != hub_prefix.rstrip("/") + "/" + JOIN_PATH:
        return None
    codes = parse_qs(parts.query).get("code") or [""]
    return codes[0].strip() or None


def workshop_entry(
    store: WorkshopStore, username: str, code: str | None, now: datetime
) -> str | None:
    """The workshop that lets `username` in (a seat in one open now, else the one whose
    code they bring, if it would seat them now); None: no workshop does."""
    seated = store.open_seats_of(username)
    if seated:
        return seated[0].name
    if not code:
        return None
    ws = store.by_code(normalise_code(code))
    if ws is None:
        return None
    taken = store.seats(ws.name)
    refusal = join_refusal(
        title=ws.title,
        start=ws.starts_at,
        end=ws.ends_at,
        ended=ws.ended_at is not None,
        seats=ws.seats,
        taken=len(taken),
        already_in=any(s.username == username for s in taken),
        now=now,
        awaiting_approval=ws.awaiting_approval is not None,
    )
    return None if refusal else ws.name
