"""The catalogue itself: the top-level model that holds every section."""

from __future__ import annotations

from pydantic import Field

from naic.hub.catalogue.base import Model
from naic.hub.catalogue.datasets import Dataset
from naic.hub.catalogue.identity import Identity
from naic.hub.catalogue.projects import Environment, Project, Storage
from naic.hub.catalogue.sites import Site
from naic.hub.catalogue.workshops import GuestAccounts, WorkshopPolicy


class Catalogue(Model):
    name: str = Field(min_length=1)
    sites: dict[str, Site] = Field(min_length=1)
    environments: dict[str, Environment] = {}
    storage: dict[str, Storage] = {}
    projects: dict[str, Project] = {}
    #: Datasets the sites offer (naic.hub.catalogue.datasets), by name.
    datasets: dict[str, Dataset] = {}
    #: Institutional login; without it the hub uses its dev login (`naic up`).
    identity: Identity | None = None
    #: Accounts that instructors may hand out for a workshop (none: no temporary accounts).
    guest_accounts: GuestAccounts | None = None
    #: What instructors may reserve without an admin's approval (none: no limit but the
    #: resources' own).
    workshops: WorkshopPolicy | None = None

    def environments_for(self, site: str, resource: str) -> list[str]:
        """Environment names offered for one resource, in catalogue order."""
        s = self.sites[site]
        offered = s.resources[resource].environments or s.environments
        return list(offered) if offered is not None else list(self.environments)
