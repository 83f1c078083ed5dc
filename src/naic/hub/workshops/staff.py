"""A workshop's co-instructors and teaching assistants, kept as JupyterHub groups (in the
hub's database, shown on its admin page), and the TAs' way into students' sessions.

- `workshop-{name}`: the seated students (each joins when seated, leaves when removed; its
  properties keep who was removed, by whom, when, and the staff's access log).
- `workshop-{name}-co-instructors`: the instructor's rights on this workshop (dashboard,
  stop, end, accounts, codes, staff).
- `workshop-{name}-tas`: the dashboard, and the students' workshop sessions only.

A TA opens a student's session through the dashboard's link (`OpenHandler`,
`/hub/naic/workshops/{name}/open/{student}`): the hub checks that the caller is on the
workshop's staff and the student holds a seat, grants the caller JupyterHub's
`access:servers!server={student}/{name}` (a JupyterHub share of that one server: never
`!user=` or `!group=`, which would open the student's other servers too), records who
opened whose session and when (the hub's log and the dashboard), then sends the browser on
to `/user/{student}/{name}/`, whose OAuth step JupyterHub passes on that scope alone. A
student's other servers and other workshops' students stay closed to the TA.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jupyterhub import orm
from jupyterhub.utils import url_path_join
from sqlalchemy.orm.attributes import flag_modified

ROLES = ("co-instructor", "ta")
#: How many accesses a workshop's log keeps (the newest).
ACCESS_LOG_MAX = 1000


def group_name(workshop: str, role: str = "student") -> str:
    """Pure: the JupyterHub group of a workshop's students, co-instructors or TAs."""
    suffix = {"student": "", "co-instructor": "-co-instructors", "ta": "-tas"}[role]
    return f"workshop-{workshop}{suffix}"


def _group(db, name: str, create: bool = True) -> orm.Group | None:
    group = orm.Group.find(db, name)
    if group is None and create:
        group = orm.Group(name=name)
        db.add(group)
        db.commit()
    return group


def members(db, workshop: str, role: str) -> list[str]:
    group = _group(db, group_name(workshop, role), create=False)
    return sorted(u.name for u in group.users) if group else []


def role_of(db, workshop: str, username: str) -> str | None:
    """What `username` is on the workshop's staff: "co-instructor", "ta" or None."""
    for role in ROLES:
        if username in members(db, workshop, role):
            return role
    return None


def set_members(db, workshop: str, role: str, add=(), remove=()) -> list[str]:
    """Add and remove users (made if new) in one of the workshop's groups; who is in it."""
    group = _group(db, group_name(workshop, role))
    for name in add:
        user = orm.User.find(db, name) or orm.User(name=name)
        if user not in group.users:
            group.users.append(user)
    for name in remove:
        user = orm.User.find(db, name)
        if user is not None and user in group.users:
            group.users.remove(user)
    db.commit()
    return sorted(u.name for u in group.users)


def seat(db, workshop: str, username: str) -> None:
    """A seated student joins the workshop's group."""
    set_members(db, workshop, "student", add=[username])


def unseat(db, workshop: str, username: str) -> None:
    """A student removed from the workshop: out of its group, and no staff share left."""
    set_members(db, workshop, "student", remove=[username])
    user = orm.User.find(db, username)
    spawner = user.orm_spawners.get(workshop) if user else None
    if spawner is not None:
        for share in list(spawner.shares):
            db.delete(share)
        db.commit()


def mark_removed(db, workshop: str, student: str, by: str, at: datetime | None = None) -> dict:
    """Record that the staff member `by` removed `student` (the workshop group's
    properties): the student cannot take a seat again with the code."""
    group = _group(db, group_name(workshop))
    entry = {"by": by, "at": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    props = dict(group.properties or {})
    props["removed"] = {**props.get("removed", {}), student: entry}
    group.properties = props
    flag_modified(group, "properties")
    db.commit()
    return entry


def removed(db, workshop: str) -> dict[str, dict]:
    """The students removed from the workshop: {student: {by, at}}."""
    group = _group(db, group_name(workshop), create=False)
    return dict((group.properties or {}).get("removed", {})) if group else {}


def grant(db, workshop: str, student: str, staff: str) -> str:
    """Share the student's workshop server (only it) with a staff member; its URL path
    below the hub's base URL. ValueError when the student has no such server."""
    user = orm.User.find(db, student)
    spawner = user.orm_spawners.get(workshop) if user else None
    if spawner is None:
        raise ValueError(f"{student} has not started the workshop's session.")
    viewer = orm.User.find(db, staff)
    orm.Share.grant(db, spawner, viewer)
    return url_path_join("user", student, workshop) + "/"


def log_access(db, workshop: str, staff: str, student: str, at: datetime | None = None) -> dict:
    """Record an opening in the workshop group's properties (newest last)."""
    group = _group(db, group_name(workshop))
    entry = {
        "staff": staff,
        "student": student,
        "server": workshop,
        "at": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    props = dict(group.properties or {})
    props["access_log"] = [*props.get("access_log", []), entry][-ACCESS_LOG_MAX:]
    group.properties = props
    flag_modified(group, "properties")
    db.commit()
    return entry


def access_log(db, workshop: str) -> list[dict]:
    """Who opened whose session, when; newest first."""
    group = _group(db, group_name(workshop), create=False)
    return list(reversed((group.properties or {}).get("access_log", []))) if group else []
