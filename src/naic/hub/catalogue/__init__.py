"""The service catalogue: one YAML file, validated into typed models.

This package is the leaf everything else imports (it imports nothing else of naic). The
models are the one schema: the loader, `naic catalogue check`, the hub's start-up and the
spawn form all read it. Errors are collected, not raised one at a time, so an operator fixes
a file in one pass; each names the file, the field path, the rule and the bad value.

Import from here (`from naic.hub.catalogue import Catalogue, load`); the modules are:

- `base`: the shared model base and the patterns names, paths and words must match
- `sites`: sites, resources, hardware (GPUs, hosts, SSH, submit host) and culling
- `projects`: software environments, storage areas and projects
- `identity`: institutional login (OIDC) and where user names come from
- `workshops`: guest accounts and the workshop policy
- `datasets`: the datasets sites offer, and who may read them
- `model`: `Catalogue`, the top-level model
- `problems`: `Problem`, `CatalogueError` and the wording of validation errors
- `checks`: rules that span sections (`cross_check`)
- `load`: `parse`, `load`, `load_cached` and `DEFAULT_CATALOGUE`
"""

from naic.hub.catalogue.base import (
    ENV_NAME,
    HOST,
    NAME_PATTERN,
    PATH_PLACEHOLDERS,
    PATTERN_WORDS,
    SAFE_WORD,
    URL,
    VENV_PATH,
)
from naic.hub.catalogue.checks import cross_check
from naic.hub.catalogue.datasets import Dataset, Readers
from naic.hub.catalogue.identity import DOMAIN, Identity, LdapRegister, UsernameRule
from naic.hub.catalogue.load import DEFAULT_CATALOGUE, load, load_cached, parse
from naic.hub.catalogue.model import Catalogue
from naic.hub.catalogue.problems import CatalogueError, Problem
from naic.hub.catalogue.projects import Environment, Project, Storage
from naic.hub.catalogue.sites import (
    SSH,
    Amount,
    AmountField,
    Culling,
    Gpu,
    Host,
    Resource,
    Site,
    Submit,
)
from naic.hub.catalogue.workshops import GuestAccounts, WorkshopPolicy

__all__ = [
    "DEFAULT_CATALOGUE",
    "DOMAIN",
    "ENV_NAME",
    "HOST",
    "NAME_PATTERN",
    "PATH_PLACEHOLDERS",
    "PATTERN_WORDS",
    "SAFE_WORD",
    "SSH",
    "URL",
    "VENV_PATH",
    "Amount",
    "AmountField",
    "Catalogue",
    "CatalogueError",
    "Culling",
    "Dataset",
    "Environment",
    "Gpu",
    "GuestAccounts",
    "Host",
    "Identity",
    "LdapRegister",
    "Problem",
    "Project",
    "Readers",
    "Resource",
    "Site",
    "Storage",
    "Submit",
    "UsernameRule",
    "WorkshopPolicy",
    "cross_check",
    "load",
    "load_cached",
    "parse",
]
