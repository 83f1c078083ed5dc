"""A workshop's end, as its students and its instructor see it.

- Students: from `NOTICE_BEFORE_END` before the window closes, every workshop session shows
  a notice (JupyterLab's, from the activity answer: naic.hub.sessions.activity) with the end,
  when their workshop files go (a temporary account's home is reset then; an institutional
  account's home keeps them) and a "Download my folder" link (naic.extensions.archive).
- The instructor: the report, per student: seat, sessions, GPU-hours (the usage ledger's
  records of the workshop's sessions), notebook cells run (as last saved) and the material's
  version. `GET /hub/api/naic/workshops/{name}/report` (CSV; staff) at any time,
  `naic workshop report NAME`, and the end's answer (naic.hub.workshops.api).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web

from naic.hub.workshops.base import _WorkshopHandler, _Workshops
from naic.hub.workshops.store import Workshop

#: How long before the window closes the students' sessions show the end notice.
NOTICE_BEFORE_END = timedelta(minutes=60)
REPORT_COLUMNS = [
    "user", "seat", "joined", "sessions", "gpu_hours", "cells_run", "cells", "material",
]  # fmt: skip


def end_notice(
    *, title: str, name: str, ends_at: datetime, guest: bool, now: datetime, session_url: str
) -> dict | None:
    """Pure: the end notice of a workshop session (None: not yet)."""
    if now < ends_at - NOTICE_BEFORE_END:
        return None
    # JupyterLab shows at most 140 characters of a notification: a long title is cut.
    title = title if len(title) <= 30 else f"{title[:29]}…"
    when = f"{ends_at:%H:%M} UTC on {ends_at:%Y-%m-%d}"
    if guest:
        text = f"{title} ends at {when}: your files (~/{name}) are deleted then. Download them."
    else:
        text = f"{title} ends at {when}. ~/{name} stays in your home; download a copy if you wish."
    if len(text) > 140:  # a long workshop name
        text = text.replace(f" (~/{name})", "").replace(f"~/{name} stays", "Your folder stays")
    return {
        "id": "workshop-end",
        "kind": "workshop-end",
        "level": "warning",
        "text": text,
        "deadline": ends_at.isoformat(),
        "link": {
            "label": "Download my folder",
            "url": url_path_join(session_url, "naic/api/workshop/archive"),
        },
    }


def report_rows(seats, runs_of, progress_of, material_of) -> list[list]:
    """Pure: the report's rows (REPORT_COLUMNS), one per seat, from the ledger's sessions of
    each student (`runs_of(user)`), their notebooks ({name: [run, cells]}) and material."""
    rows = []
    for seat in seats:
        runs = runs_of(seat.username)
        notebooks = progress_of(seat.username) or {}
        rows.append(
            [
                seat.username,
                seat.seat,
                seat.joined_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                len(runs),
                f"{sum(r.gpu_hours for r in runs):.3f}",
                sum(run for run, _ in notebooks.values()),
                sum(cells for _, cells in notebooks.values()),
                (material_of(seat.username) or {}).get("version") or "",
            ]
        )
    return rows


def report_csv(handler, ws: Workshop) -> str:
    """The report of `ws` as CSV, from a workshop handler (its store, ledger, sessions)."""
    until = ws.ended_at or ws.ends_at

    def runs_of(user: str) -> list:
        return [
            s
            for s in handler.naic_ledger.sessions(user=user, since=ws.starts_at)
            if s.server == ws.name and s.started_at < until
        ]

    rows = report_rows(
        handler.store.seats(ws.name),
        runs_of,
        lambda user: handler.student_session(ws, user)[1],
        lambda user: handler.material_of(ws.name, user),
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REPORT_COLUMNS)
    writer.writerows(rows)
    return out.getvalue()


class _Report:
    def _send(self, name: str) -> None:
        ws = self._mine(name, ta=True)
        if self.get_argument("format", "") == "json":  # naic workshop report
            self.finish({"name": ws.name, "report": report_csv(self, ws)})
            return
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{ws.name}-report.csv"')
        self.finish(report_csv(self, ws))


class ReportHandler(_Report, _WorkshopHandler):
    """`GET /hub/api/naic/workshops/{name}/report` (a token)."""

    def get(self, name: str) -> None:
        self._send(name)


class ReportPage(_Report, _Workshops, BaseHandler):
    """`/hub/naic/workshops/{name}/report.csv`: the dashboard's link (the login cookie)."""

    @web.authenticated
    def get(self, name: str) -> None:
        self._send(name)
