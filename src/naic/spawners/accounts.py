"""Whose account a session may run as: a person's, never the system's.

A hub user name is only a name: `root`, `slurm` or `nobody` can be typed at a dev login or
come out of an identity. The uid range alone is not enough (Debian's `slurm` is 64030 and
`nobody` 65534, above the people's range; some sites give the scheduler's account a
people's uid), so the range and a list of names are both checked, for spawns and for the
estimate (which asks Slurm as that account too).
"""

from __future__ import annotations

from collections.abc import Collection

#: People's accounts: login.defs' UID_MIN..UID_MAX on Debian and most distributions.
#: Below are root and daemons; above, statically allocated system accounts.
PEOPLE_UIDS = range(1000, 60001)
#: Refused whatever their uid: root and the accounts of the scheduler and its helpers.
SYSTEM_NAMES = frozenset({"root", "slurm", "munge", "nobody", "daemon", "mysql", "postgres"})


def system_account_refusal(
    name: str, uid: int, where: str, also_refused: Collection[str] = ()
) -> str | None:
    """Pure: the sentence refusing a session as this account, or None for a person's."""
    if uid in PEOPLE_UIDS and name not in SYSTEM_NAMES and name not in also_refused:
        return None
    return (
        f"{name!r} at {where} is a system account, not a user's; the hub starts no session as it."
    )
