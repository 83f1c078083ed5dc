"""Workshops: the guest accounts instructors may hand out, and what an instructor may reserve
without an admin's approval."""

from __future__ import annotations

from pydantic import Field

from naic.hub.catalogue.base import Model


class GuestAccounts(Model):
    """Workshop accounts for people without an institutional login: accounts the site has
    made for courses (e.g. guest01 … guest50, on every node), which the hub hands out for a
    workshop's window with one-time passwords and takes back at its end."""

    prefix: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,20}$", description="e.g. guest")
    count: int = Field(ge=1, le=9999, description="how many: prefix + 01 … count")

    @property
    def names(self) -> list[str]:
        width = max(2, len(str(self.count)))
        return [f"{self.prefix}{i:0{width}}" for i in range(1, self.count + 1)]


class WorkshopPolicy(Model):
    """What an instructor may hold without an admin: a workshop above any of these is kept
    "awaiting approval" (no Slurm reservation, no seats) until an admin approves it. E.g.
    `workshops: {max_seats: 40, max_gpus_per_seat: 1, max_hours: 8,
    max_active_per_instructor: 2}`."""

    max_seats: int = Field(40, ge=1, le=500, description="seats in one workshop, e.g. 40")
    max_gpus_per_seat: int = Field(1, ge=0, description="GPUs each seat's session may have")
    max_hours: float = Field(
        8, gt=0, le=14 * 24, allow_inf_nan=False, description="the window's length, in hours"
    )
    max_active_per_instructor: int = Field(
        2,
        ge=1,
        description="workshops one instructor has not ended and whose window has not passed",
    )
