"""Who asked for which project: access requests, decided once by an admin; an approved
request grants its project."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from naic.hub.usage.tables import MAX_REASON, STATES, Book, access_requests, record


@dataclass(frozen=True)
class AccessRequest:
    id: int
    user: str
    identity: str | None
    project: str
    reason: str
    state: str  # "pending" | "approved" | "declined"
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    note: str


class AccessRequests(Book):
    """The ledger's access requests (`naic_access_requests`)."""

    def request_access(
        self, user: str, project: str, reason: str, identity: str | None = None
    ) -> AccessRequest:
        reason = reason.strip()
        if not reason:
            raise ValueError("Please say in a few words why you need this project.")
        if len(reason) > MAX_REASON:
            raise ValueError(
                f"Please keep the reason to {MAX_REASON} characters; it has {len(reason)}."
            )
        if project in self.granted_projects(user):
            raise ValueError(f"You already have access to project {project}.")
        row = dict(username=user, identity=identity, project=project, reason=reason)
        row.update(state="pending", created_at=self._clock(), note="")
        try:
            with self._engine.begin() as conn:
                new_id = conn.execute(access_requests.insert().values(**row)).inserted_primary_key
        except sa.exc.IntegrityError:  # the partial unique index: one pending per project
            raise ValueError(
                f"You have already asked for project {project}; an administrator will decide soon."
            ) from None
        return self._requests(access_requests.c.id == new_id[0])[0]

    def decide(self, request_id: int, *, approve: bool, by: str, note: str = "") -> AccessRequest:
        """Approve (which grants the project) or decline a pending request, exactly once."""
        state = "approved" if approve else "declined"
        with self._engine.begin() as conn:
            # The state condition makes a second, concurrent decision change nothing.
            changed = conn.execute(
                access_requests.update()
                .where(access_requests.c.id == request_id, access_requests.c.state == "pending")
                .values(state=state, decided_at=self._clock(), decided_by=by, note=note)
            ).rowcount
        found = self._requests(access_requests.c.id == request_id)
        if not found:
            raise ValueError(f"There is no access request {request_id}.")
        request = found[0]
        if not changed:
            raise ValueError(
                f"Access request {request_id} was already {request.state} by {request.decided_by}."
            )
        return request

    def requests(self, user: str | None = None, state: str | None = None) -> list[AccessRequest]:
        """Newest first."""
        if state is not None and state not in STATES:
            raise ValueError(f"A request's state is one of {', '.join(STATES)}, not {state!r}.")
        r = access_requests.c
        return self._requests(
            *([] if user is None else [r.username == user]),
            *([] if state is None else [r.state == state]),
        )

    def granted_projects(self, user: str) -> set[str]:
        return {r.project for r in self.requests(user, "approved")}

    def has_pending(self, user: str) -> bool:
        return bool(self.requests(user, "pending"))

    def _requests(self, *filters) -> list[AccessRequest]:
        r = access_requests.c
        query = (
            sa.select(access_requests).where(*filters).order_by(r.created_at.desc(), r.id.desc())
        )
        with self._engine.connect() as conn:
            return [record(AccessRequest, row) for row in conn.execute(query)]
