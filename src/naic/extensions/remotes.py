"""Object storage remotes (S3-compatible: NIRD's, a cloud's) for rclone, set up from a
session with the credentials kept out of notebooks, command lines and the hub.

The secret is read from a prompt (or standard input), never from an argument (another
user on the node sees every process's arguments), and written only to rclone's own config
file in the user's home, ~/.config/rclone/rclone.conf, made 0600 in a 0700 folder before
anything is written to it. `list` shows remotes without their secrets. Copies to and from a
remote are naic.extensions.data's `copy` (rclone, with progress).
"""

from __future__ import annotations

import configparser
import os
import re
from pathlib import Path

NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
ENDPOINT = re.compile(r"https?://[^\s/]+(/[^\s]*)?")
KEY_ID = re.compile(r"[A-Za-z0-9+/=._-]{1,200}")
SECRETS = ("secret_access_key", "access_key_id", "session_token")


class RemoteError(Exception):
    pass


def config_path(home: Path | None = None) -> Path:
    env = os.environ.get("RCLONE_CONFIG")
    return Path(env) if env else (home or Path.home()) / ".config" / "rclone" / "rclone.conf"


def s3_section(endpoint: str, key_id: str, secret: str, region: str = "") -> dict[str, str]:
    """Pure: the rclone config of an S3-compatible remote; ValueError naming the field."""
    if not ENDPOINT.fullmatch(endpoint):
        raise RemoteError(f"--endpoint {endpoint!r} must be an http:// or https:// URL.")
    if not KEY_ID.fullmatch(key_id):
        raise RemoteError("--access-key-id must be the key's id: letters, digits, + / = . _ -.")
    if not secret or any(c in secret for c in "\r\n"):
        raise RemoteError("the secret access key is empty or more than one line.")
    section = {
        "type": "s3",
        "provider": "Other",
        "endpoint": endpoint,
        "access_key_id": key_id,
        "secret_access_key": secret,
        "env_auth": "false",
    }
    if region:
        section["region"] = region
    return section


def _private_file(path: Path) -> None:
    """The config file exists, 0600, in a 0700 folder, before a secret goes into it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    path.chmod(0o600)


def add(name: str, section: dict[str, str], home: Path | None = None) -> Path:
    """Add or replace the remote `name` in rclone's config; its path."""
    if not NAME.fullmatch(name):
        raise RemoteError(f"the remote name {name!r} must be a short lowercase name (e.g. nird).")
    path = config_path(home)
    _private_file(path)
    config = configparser.ConfigParser(interpolation=None)
    config.read(path)
    config[name] = section
    with path.open("w") as f:  # 0600 already: the secret never sits in a readable file
        config.write(f)
    return path


def listed(home: Path | None = None) -> list[dict[str, str]]:
    """The remotes, without their secrets."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(config_path(home))
    return [
        {"name": n, **{k: v for k, v in config[n].items() if k not in SECRETS}}
        for n in config.sections()
    ]


def remove(name: str, home: Path | None = None) -> bool:
    path = config_path(home)
    config = configparser.ConfigParser(interpolation=None)
    config.read(path)
    if not config.remove_section(name):
        return False
    with path.open("w") as f:
        config.write(f)
    return True
