"""`naic workshop create|edit|remove|staff|list|show|accounts|code|check|try|release|collect|
update-material|report|end`: an instructor's commands, over REST.

The hub checks every permission (naic.hub.workshops.api); this only turns arguments into a
request and the answer into lines a person reads. Token: `--token`, or `NAIC_TOKEN`, or
`JUPYTERHUB_API_TOKEN` (inside a session); hub: `--hub`, or `NAIC_HUB_URL`.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from naic.extensions.assignments import AssignmentError, collect_into, pack

DEFAULT_HUB = "http://127.0.0.1:8000/"


class CLIError(Exception):
    pass


def add_parser(sub) -> None:
    ws = sub.add_parser("workshop", help="run a workshop: seats, a join code, a reservation")
    ws.add_argument("--hub", default=None, help=f"the hub's URL (NAIC_HUB_URL; {DEFAULT_HUB})")
    ws.add_argument("--token", default=None, help="API token (NAIC_TOKEN)")
    act = ws.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = act.add_parser("create", help="create a workshop and print its join code")
    c.add_argument("name", help="short name, e.g. ml-intro")
    c.add_argument("--seats", type=int, required=True)
    c.add_argument("--start", required=True, help="e.g. 2027-01-20T09:00 (UTC, as the web form)")
    c.add_argument("--end", required=True, help="e.g. 2027-01-20T16:00 (or …+01:00: a zone)")
    c.add_argument("--resource", required=True, help="site:resource, e.g. saga:a100")
    c.add_argument("--gpus", type=int, default=0)
    c.add_argument("--hours", type=float, required=True, help="each session's time limit")
    c.add_argument("--material", default="", help="a git URL or a folder on the hub")
    c.add_argument("--project", default=None, help="the project the sessions are charged to")
    c.add_argument("--title", default="", help="what students see (default: the name)")
    c.add_argument(
        "--environment", default=None, help="a catalogue environment of the resource (its first)"
    )
    c.add_argument(
        "--shared", default=None, help="a read-only folder on the site, linked as ~/NAME/shared"
    )
    for flag, dest in (("--co-instructor", "co_instructors"), ("--ta", "tas")):
        c.add_argument(flag, dest=dest, action="append", default=[], metavar="NAME",
                       help=f"a {flag[2:]} (repeatable): {STAFF_HELP[dest]}")  # fmt: skip
    st = act.add_parser("staff", help="add or remove co-instructors and teaching assistants")
    st.add_argument("name")
    for verb in ("add", "remove"):
        for role in ("co-instructor", "ta"):
            st.add_argument(f"--{verb}-{role}", action="append", default=[], metavar="NAME")
    act.add_parser("list", help="your workshops")
    s = act.add_parser("show", help="a workshop's students and their sessions")
    s.add_argument("name")
    a = act.add_parser("accounts", help="temporary accounts for people without a login (CSV)")
    a.add_argument("name")
    a.add_argument("--count", type=int, required=True)
    a.add_argument("--csv", type=Path, default=None, help="write the CSV here (mode 0600)")
    n = act.add_parser(
        "code", help="a new join code (the hub keeps only a hash: a code is shown once)"
    )
    n.add_argument("name")
    k = act.add_parser(
        "check", help="before the day: budget, reservation, and every notebook run on the cluster"
    )
    k.add_argument("name")
    k.add_argument("--wait", type=float, default=3600, help="give up after this many seconds")
    tr = act.add_parser("try", help="start the session a student gets, for you, before the window")
    tr.add_argument("name")
    ed = act.add_parser("edit", help="change the seats or move the window (and its reservation)")
    ed.add_argument("name")
    ed.add_argument("--seats", type=int, default=None, help="not below the students seated")
    ed.add_argument("--start", default=None, help="as for create: UTC, or with a zone")
    ed.add_argument("--end", default=None, help="as for create: UTC, or with a zone")
    rm = act.add_parser("remove", help="remove a student: session stopped, seat freed")
    rm.add_argument("name")
    rm.add_argument("student")
    r = act.add_parser("release", help="hand out an assignment: a folder, zipped (again: replace)")
    r.add_argument("name")
    r.add_argument("assignment", help="its short name, e.g. a1")
    r.add_argument("--from", dest="source", type=Path, required=True, help="the folder")
    co = act.add_parser("collect", help="every student's latest submission, a folder each")
    co.add_argument("name")
    co.add_argument("assignment")
    co.add_argument("--to", type=Path, default=None, help="default ./NAME-submissions/ASSIGNMENT")
    co.add_argument("--overwrite", action="store_true", help="replace files collected before")
    u = act.add_parser("update-material", help="running sessions pull the course's latest material")
    u.add_argument("name")
    rp = act.add_parser("report", help="per student: sessions, GPU-hours, cells run (CSV)")
    rp.add_argument("name")
    rp.add_argument("--to", type=Path, default=None, help="write the CSV here")
    e = act.add_parser("end", help="stop every session, release the reservation, report")
    e.add_argument("name")
    e.add_argument("--report", type=Path, default=None, help="write the CSV report here")


def local_time(text: str, field: str) -> str:
    """ISO 8601 with a zone; a time without one is UTC, as on the web form (the hub shows
    every workshop time in UTC, here and on its pages)."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CLIError(f"--{field} {text!r} is not a time like 2027-01-20T09:00.") from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat()


STAFF_HELP = {
    "co_instructors": "the instructor's rights on this workshop",
    "tas": "sees the dashboard, may open the students' workshop sessions",
}


def staff_change(args: argparse.Namespace) -> dict:
    """`naic workshop staff`'s options as the API's {"add": {role: [...]}, "remove": …}."""
    return {
        verb: {
            role: getattr(args, f"{verb}_{role.replace('-', '_')}")
            for role in ("co-instructor", "ta")
            if getattr(args, f"{verb}_{role.replace('-', '_')}")
        }
        for verb in ("add", "remove")
    }


def describe_staff(got: dict) -> str:
    lines = [f"Co-instructors: {', '.join(got['co-instructor']) or 'none'}",
             f"TAs:            {', '.join(got['ta']) or 'none'}"]  # fmt: skip
    for a in got.get("access", []):
        lines.append(f"  {a['at']}  {a['staff']} opened {a['student']}'s session")
    return "\n".join(lines)


def spec_of(args: argparse.Namespace) -> dict:
    spec = {
        "name": args.name,
        "title": args.title,
        "seats": args.seats,
        "start": local_time(args.start, "start"),
        "end": local_time(args.end, "end"),
        "resource": args.resource,
        "gpus": args.gpus,
        "hours": args.hours,
        "material": args.material,
    }
    if args.project:
        spec["project"] = args.project
    if getattr(args, "environment", None):
        spec["environment"] = args.environment
    if getattr(args, "shared", None):
        spec["shared"] = args.shared
    team = {"co-instructor": getattr(args, "co_instructors", []), "ta": getattr(args, "tas", [])}
    if any(team.values()):
        spec["staff"] = team
    return spec


def edit_of(args: argparse.Namespace) -> dict:
    """`naic workshop edit`'s options as the API's PATCH body (times as create reads them)."""
    body: dict = {} if args.seats is None else {"seats": args.seats}
    for key in ("start", "end"):
        if getattr(args, key) is not None:
            body[key] = local_time(getattr(args, key), key)
    if not body:
        raise CLIError("say what to change: --seats, --start or --end.")
    return body


def call(args: argparse.Namespace, method: str, path: str, body: dict | None = None):
    hub = (args.hub or os.environ.get("NAIC_HUB_URL") or DEFAULT_HUB).rstrip("/")
    token = args.token or os.environ.get("NAIC_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN")
    if not token:
        raise CLIError(
            "naic workshop needs an API token: --token or NAIC_TOKEN (the hub's Token page "
            "makes one)."
        )
    req = urllib.request.Request(  # noqa: S310 - the operator's own hub URL
        f"{hub}/hub/api/naic/{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message")
        except (ValueError, AttributeError):
            message = None
        raise CLIError(message or f"The hub answered HTTP {exc.code}.") from None
    except OSError as exc:
        raise CLIError(f"The hub at {hub} does not answer ({exc}).") from None


def accounts_csv(got: dict) -> str:
    """username,password,expires: one line an account, to print and hand out."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["username", "password", "expires"])
    for a in got["accounts"]:
        writer.writerow([a["username"], a["password"], got["expires"]])
    return out.getvalue()


def describe(w: dict) -> str:
    start = datetime.fromisoformat(w["start"]).astimezone(UTC)
    end = datetime.fromisoformat(w["end"]).astimezone(UTC)
    gpus = f"{w['gpus']} GPU{'s' * (w['gpus'] != 1)}, " if w["gpus"] else ""
    state = " (ended)" if w.get("ended") else ""
    if w.get("state") == "awaiting approval":
        state = " (awaiting approval)"
    until = f"{end:%H:%M} UTC" if start.date() == end.date() else f"{end:%Y-%m-%d %H:%M} UTC"
    return (
        f"{w['name']}{state}: {w['title']} — {w['seats']} seats, "
        f"{start:%Y-%m-%d %H:%M}–{until} on {w['resource']} ({gpus}{w['hours']:g} h"
        + (f", environment {w['environment']}" if w.get("environment") else "")
        + (f", shared {w['shared']}" if w.get("shared") else "")
        + ")"
    )


def check(args: argparse.Namespace, every_s: float = 2.0) -> int:
    """`naic workshop check`: start the hub's check, print its lines as they come; 0 only if
    every check passed."""
    path = f"workshops/{quote(args.name, safe='')}/check"
    got, shown = call(args, "POST", path), 0
    deadline = time.monotonic() + args.wait
    while True:
        for line in got["lines"]:
            print(line, flush=True)
        shown = got["next"]
        if got["done"]:
            break
        if time.monotonic() > deadline:
            print(f"FAIL check: no answer within {args.wait:g} s; it goes on in the hub")
            return 1
        time.sleep(every_s)
        got = call(args, "GET", f"{path}?since={shown}")
    print(f"{args.name}: {'FAILED' if got['failed'] else 'every check passed'}")
    return 1 if got["failed"] else 0


def release(args: argparse.Namespace) -> None:
    data, files, skipped = pack(args.source)
    body = {"name": args.assignment, "archive": base64.b64encode(data).decode("ascii")}
    got = call(args, "POST", f"workshops/{quote(args.name, safe='')}/assignments", body)
    again = " again (it replaces the earlier one; submissions stay)" if got["replaced"] else ""
    print(f"Released {args.assignment} to {args.name}{again}: {len(files)} files, "
          f"{len(data) / 1000:.1f} kB packed")  # fmt: skip
    for name in files:
        print(f"  {name}")
    for name in skipped:
        print(f"  left out: {name}")


def collect(args: argparse.Namespace) -> None:
    path = f"workshops/{quote(args.name, safe='')}/assignments/{quote(args.assignment)}"
    got = call(args, "GET", f"{path}/submissions")["submissions"]
    if not got:
        print(f"No submissions of {args.assignment} yet.")
        return
    dest = args.to or Path(f"{args.name}-submissions") / args.assignment
    for line in collect_into(got, dest, args.overwrite):
        print(line)
    print(f"Collected {len(got)} submissions of {args.assignment} into {dest}")


def run(args: argparse.Namespace) -> int:
    try:
        if args.action in ("release", "collect"):
            try:
                (release if args.action == "release" else collect)(args)
            except OSError as exc:
                raise CLIError(f"{exc.filename or ''}: {exc.strerror or exc}") from None
        elif args.action == "create":
            w = call(args, "POST", "workshops", spec_of(args))
            base = (args.hub or os.environ.get("NAIC_HUB_URL") or DEFAULT_HUB).rstrip("/")
            print(describe(w))
            print(
                f"Join code:   {w['code']}  (shown only now; `naic workshop code` makes a new one)"
            )
            print(f"Join link:   {base}{w['join_url']}")
            print(f"Reservation: {w['reservation'] or 'none yet'}")
            if w.get("approval"):
                print(w["approval"])
        elif args.action == "code":
            w = call(args, "POST", f"workshops/{quote(args.name, safe='')}/code")
            base = (args.hub or os.environ.get("NAIC_HUB_URL") or DEFAULT_HUB).rstrip("/")
            print(f"Join code:   {w['code']}  (the old one no longer works)")
            print(f"Join link:   {base}{w['join_url']}")
        elif args.action == "check":
            return check(args)
        elif args.action == "try":
            call(args, "POST", f"workshops/{quote(args.name, safe='')}/try")
            base = (args.hub or os.environ.get("NAIC_HUB_URL") or DEFAULT_HUB).rstrip("/")
            print(f"Your session {args.name} is starting: {base}/hub/home")
        elif args.action == "staff":
            path = f"workshops/{quote(args.name, safe='')}/staff"
            change = staff_change(args)
            got = call(args, "POST", path, change) if any(change.values()) else None
            print(describe_staff(call(args, "GET", path) if got is None else got))
        elif args.action == "edit":
            w = call(args, "PATCH", f"workshops/{quote(args.name, safe='')}", edit_of(args))
            print(w["message"])
            print(describe(w))
        elif args.action == "remove":
            path = f"workshops/{quote(args.name, safe='')}/students/{quote(args.student, safe='')}"
            print(call(args, "DELETE", path)["message"])
        elif args.action == "list":
            for w in call(args, "GET", "workshops"):
                print(describe(w))
        elif args.action == "show":
            w = call(args, "GET", f"workshops/{quote(args.name, safe='')}")
            print(describe(w))
            for s in w["students"]:
                done = " ".join(f"{nb}:{r}/{n}" for nb, (r, n) in s.get("notebooks", {}).items())
                version = (s.get("material") or {}).get("version") or ""
                line = f"  {s['seat']:>3}  {s['user']:<24} {s['session']:<12} {version:<8} {done}"
                print(line.rstrip())
            print(f"{len(w['students'])} of {w['seats']} seats taken")
        elif args.action == "update-material":
            got = call(args, "POST", f"workshops/{quote(args.name, safe='')}/material")
            commit = f" (commit {got['version']})" if got["version"] else ""
            print(f"Update {got['number']}{commit} asked: running sessions pull it within 20 s; "
                  f"`naic workshop show {args.name}` shows who has it.")  # fmt: skip
        elif args.action == "report":
            got = call(args, "GET", f"workshops/{quote(args.name, safe='')}/report?format=json")
            if args.to:
                args.to.write_text(got["report"])
                print(f"Report of {args.name} in {args.to}")
            else:
                sys.stdout.write(got["report"])
        elif args.action == "accounts":
            got = call(
                args,
                "POST",
                f"workshops/{quote(args.name, safe='')}/accounts",
                {"count": args.count},
            )
            text = accounts_csv(got)
            if args.csv:
                args.csv.touch(mode=0o600)
                args.csv.write_text(text)
                print(
                    f"{len(got['accounts'])} accounts in {args.csv}; they log in at "
                    f"{got['login_url']} until {got['expires']}"
                )
            else:
                sys.stdout.write(text)
        else:
            w = call(args, "DELETE", f"workshops/{quote(args.name, safe='')}")
            if args.report:
                args.report.write_text(w["report"])
                print(f"Workshop {w['name']} ended; report in {args.report}")
            else:
                print(f"Workshop {w['name']} ended; report:")
                sys.stdout.write(w["report"])
    except (CLIError, AssignmentError) as exc:
        print(f"naic workshop {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
