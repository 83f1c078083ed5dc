"""What sessions run with and work in: software environments, storage areas, and projects
(their members, IdP groups and GPU-hour budgets)."""

from __future__ import annotations

import string
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from naic.hub.catalogue.base import PATH_PLACEHOLDERS, SAFE_WORD, VENV_PATH, Model


class Environment(Model):
    """Software a session's kernels run with. On a site with a `session_env` each one is
    a kernel (the one chosen in the spawn form the default) and needs only Python with
    ipykernel; elsewhere the server itself runs from it, so it must contain naic-hub."""

    title: str = Field(min_length=1)
    kind: Literal["module", "venv", "conda"] | None = Field(
        None,
        description="module: Lmod modules (a site's EasyBuild software); venv: a virtual "
        "environment; conda: a conda prefix. Default: conda, venv or module, by the fields",
    )
    modules: list[Annotated[str, Field(pattern=SAFE_WORD)]] = Field(
        [], description="Lmod modules loaded first, e.g. PyTorch/2.1.2-foss-2023a-CUDA-12.1.1"
    )
    venv: str | None = Field(None, pattern=VENV_PATH, description="a venv's path, on the nodes")
    conda: str | None = Field(
        None, pattern=VENV_PATH, description="a conda environment's prefix, on the nodes"
    )

    @model_validator(mode="after")
    def _something_to_activate(self) -> Environment:
        if self.venv is None and self.conda is None and not self.modules:
            raise ValueError(
                "needs `modules` (Lmod module names), `venv` (a path) or `conda` (a prefix)"
            )
        if self.venv is not None and self.conda is not None:
            raise ValueError("has both `venv` and `conda`: an environment is one or the other")
        field = {"module": "modules", "venv": "venv", "conda": "conda", None: None}[self.kind]
        if field is not None and not getattr(self, field):
            raise ValueError(f"is of kind {self.kind} but has no `{field}`")
        return self

    @property
    def what(self) -> str:
        """`kind`, or what the fields make it: conda, venv, else module."""
        return self.kind or ("conda" if self.conda else "venv" if self.venv else "module")

    @property
    def prefix(self) -> str | None:
        """The venv or conda prefix whose bin/ goes first on PATH."""
        return self.venv or self.conda


class Storage(Model):
    title: str | None = None
    path: str
    quota_gb: float | None = Field(None, gt=0)
    purge_days: int | None = Field(None, ge=1)
    read_only: bool = False
    node_local: bool = Field(
        False,
        description="each node's own disk (the job's local scratch): copies of datasets "
        "staged there are removed when the session ends",
    )

    @field_validator("path")
    @classmethod
    def _template(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("must be an absolute path")
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(path) if f is not None}
        except ValueError:  # Python's own words: "Single '}' encountered in format string"
            raise ValueError(
                "has a `{` or `}` that is not part of a {username} or {project} placeholder"
            ) from None
        unknown = names - PATH_PLACEHOLDERS
        if unknown:
            raise ValueError(
                f"may use only {{username}} and {{project}}, not {{{sorted(unknown)[0]}}}"
            )
        return path


class Project(Model):
    title: str = Field(min_length=1)
    slurm_account: str | None = Field(None, pattern=SAFE_WORD)
    #: GPU-hours per budget period; None means no budget is enforced.
    gpu_hours: float | None = Field(None, ge=0, description="GPU-hour budget")
    #: When the budget starts afresh: the first day (UTC) of each month, quarter or year.
    budget_period: Literal["month", "quarter", "year", "never"] = "year"
    #: Identities that belong to it: the identity claim's values with an institutional
    #: login (`ola@uio.no`; a bare hub name never matches there), hub user names without.
    members: list[str] = []
    #: IdP groups (the groups claim's values) whose members belong to it.
    groups: list[str] = []
    #: Where its sessions may run (its Slurm account exists only there); None: every site.
    sites: list[str] | None = Field(None, min_length=1)
