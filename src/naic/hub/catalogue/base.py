"""What every catalogue model shares: frozen models that refuse unknown fields, and the
patterns that names, paths and words must match (with how a mismatch reads to an operator)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

#: Keys of sites, resources, environments, projects and storage areas end up in URLs,
#: form values and batch scripts, so they are plain lowercase names.
NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
#: Slurm accounts, partitions, GPU types and Lmod modules go into `#SBATCH` lines and shell.
SAFE_WORD = r"^[A-Za-z0-9][A-Za-z0-9._+/:-]*$"
PATH_PLACEHOLDERS = {"username", "project"}
VENV_PATH = r"^/[A-Za-z0-9._+/-]*$"
URL = r"^https?://[^\s]+$"
SUPPORT = r"^(https?://[^\s]+|mailto:[^\s?]+)$"
ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"
HOST = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$"
#: How a pattern mismatch reads in an error message.
PATTERN_WORDS = {
    SAFE_WORD: "must be one word of letters, digits and . _ + / : - (no spaces or quotes)",
    VENV_PATH: "must be an absolute path of letters, digits and . _ + / -",
    URL: "must be an http:// or https:// URL without spaces",
    SUPPORT: "must be an http(s):// URL or mailto:ADDRESS, without spaces",
    ENV_NAME: "must be an environment variable name (capitals, digits and _)",
    HOST: "must be a host name or IPv4 address",
}


class Model(BaseModel):
    """Frozen, and refuses unknown fields: a misspelt key is an error, never ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
