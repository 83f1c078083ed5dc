"""Datasets a site offers (`datasets:`): what a researcher sees on the hub's datasets page and
in a session, and what `naic-data stage` copies to fast storage.

    datasets:
      imagenet-mini:
        title: ImageNet mini (1000 classes, 38 000 images)
        site: saga
        path: /cluster/shared/datasets/imagenet-mini
        size_gb: 4.2
        licence: ImageNet terms of access (non-commercial research)
        readers: {projects: [nn1234k], groups: [ml-researchers]}   # or {everyone: true}
        description: A 1000-class subset for teaching and prototyping.
        manifest: SHA256SUMS        # optional: `sha256sum` lines, relative to `path`
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from naic.hub.catalogue.base import NAME_PATTERN, URL, VENV_PATH, Model

#: A manifest's name inside the dataset's folder (relative: it travels with the data).
MANIFEST = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class Readers(Model):
    """Who may read a dataset: members of these projects, members of these groups (the
    hub's groups, which an institutional login fills from the IdP's groups claim), or
    everyone who can log in. Nobody, unless said."""

    everyone: bool = False
    projects: list[str] = []
    groups: list[str] = []

    @model_validator(mode="after")
    def _someone(self) -> Readers:
        if not (self.everyone or self.projects or self.groups):
            raise ValueError(
                "names nobody: give `projects`, `groups`, or `everyone: true` (a dataset "
                "for all who can log in)"
            )
        if self.everyone and (self.projects or self.groups):
            raise ValueError("has `everyone: true` and a list: it is one or the other")
        return self


class Dataset(Model):
    title: str = Field(min_length=1, max_length=200)
    site: str = Field(pattern=NAME_PATTERN, description="the site whose nodes see `path`")
    path: str = Field(pattern=VENV_PATH, description="the dataset's folder on that site")
    size_gb: float | None = Field(None, gt=0, description="its size, as shown before a copy")
    licence: str = Field(min_length=1, max_length=300, description="its terms, in a line")
    readers: Readers
    description: str = Field("", max_length=2000)
    url: str | None = Field(None, pattern=URL, description="its own page, for more")
    manifest: str | None = Field(
        None,
        pattern=MANIFEST,
        description="a file in `path` of `sha256sum` lines; staged copies are checked on it",
    )

    @field_validator("path")
    @classmethod
    def _no_parent(cls, path: str) -> str:
        if re.search(r"(^|/)\.\.(/|$)", path):
            raise ValueError("must not contain `..`")
        return path.rstrip("/") or "/"
