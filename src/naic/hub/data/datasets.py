"""The datasets catalogue on the hub: who may read which dataset, over REST and as a page.

GET /hub/api/naic/datasets          every dataset: title, site, size, licence, who may read it,
                                    description, and for those the caller may read, its path
                                    and manifest (`"may_read": true`)
GET /hub/api/naic/datasets/{name}   one dataset; 403 with the sentence for one the caller may
                                    not read, 404 for one the catalogue does not have
GET /hub/naic/datasets              the page (linked from the home page and the sessions'
                                    storage overview)

Who may read: `readers` in the catalogue (naic.hub.catalogue.datasets), against the caller's
projects (naic.spawners.request.projects_of: identity, IdP groups, an admin's grant) and hub
groups. Any of the caller's tokens works, a session's own too: the answer is only what the
user may see anyway. The hub lists; the nodes' file permissions stay the boundary there.
"""

from __future__ import annotations

import json

from jupyterhub.apihandlers import APIHandler
from jupyterhub.handlers import BaseHandler
from tornado import web

from naic.hub.catalogue import Catalogue, Dataset
from naic.hub.usage import accounting
from naic.spawners.request import UserFacts, projects_of


def may_read(ds: Dataset, cat: Catalogue, user: UserFacts) -> bool:
    """Pure: whether `user` may read `ds`."""
    r = ds.readers
    return (
        r.everyone
        or bool(set(r.projects).intersection(projects_of(cat, user)))
        or bool(user.groups.intersection(r.groups))
    )


def who_reads(ds: Dataset) -> str:
    """Pure: `readers` in words."""
    r = ds.readers
    if r.everyone:
        return "everyone who can log in"
    parts = []
    if r.projects:
        parts.append(f"members of project{'s' * (len(r.projects) > 1)} {', '.join(r.projects)}")
    if r.groups:
        parts.append(f"the group{'s' * (len(r.groups) > 1)} {', '.join(r.groups)}")
    return " and ".join(parts)


def size_words(gb: float | None) -> str:
    """Pure: a dataset's size as people read it ("" when the catalogue does not say)."""
    if gb is None:
        return ""
    return f"{gb:.3g} GB" if gb >= 1 else f"{gb * 1000:.3g} MB"


def refusal(name: str, ds: Dataset) -> str:
    """Pure: the 403 sentence."""
    return (
        f"{ds.title} ({name}) is for {who_reads(ds)}, and you are not among them. Ask its "
        "project's lead to add you, or ask for access to the project on the home page."
    )


def dataset_json(name: str, ds: Dataset, cat: Catalogue, readable: bool) -> dict:
    """Pure: one dataset as the API shows it; where it lies only to those who may read it."""
    site = cat.sites.get(ds.site)
    out = {
        "name": name,
        "title": ds.title,
        "site": ds.site,
        "site_title": site.title if site else ds.site,
        "size_gb": ds.size_gb,
        "size": size_words(ds.size_gb),
        "licence": ds.licence,
        "readers": who_reads(ds),
        "description": ds.description,
        "url": ds.url,
        "may_read": readable,
    }
    if readable:
        out["path"] = ds.path
        out["manifest"] = ds.manifest
    return out


class _Datasets(accounting._NaicHandlerMixin):
    def _facts(self) -> UserFacts:
        return accounting.user_facts(self.current_user, self.naic_ledger)

    def _all(self) -> list[dict]:
        cat, facts = self.naic_catalogue, self._facts()
        return [
            dataset_json(name, ds, cat, may_read(ds, cat, facts))
            for name, ds in cat.datasets.items()
        ]


class DatasetsHandler(_Datasets, APIHandler):
    def get(self, name: str | None = None) -> None:
        if self.current_user is None:
            raise web.HTTPError(403, "Log in, or send a token, to see the datasets.")
        self.set_header("Cache-Control", "no-store")
        if name is None:
            self.finish(json.dumps({"datasets": self._all()}))
            return
        cat = self.naic_catalogue
        ds = cat.datasets.get(name)
        if ds is None:
            raise web.HTTPError(404, f"There is no dataset {name} in this hub's catalogue.")
        if not may_read(ds, cat, self._facts()):
            raise web.HTTPError(403, refusal(name, ds))
        self.finish(json.dumps(dataset_json(name, ds, cat, True)))


class DatasetsPage(_Datasets, BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        html = await self.render_template("datasets.html", datasets=self._all())
        self.finish(html)
