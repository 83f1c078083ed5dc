"""`GET {base_url}naic/api/workshop/archive`: a workshop student's folder (`~/WORKSHOP`) as
one zip, for the "Download my folder" link of the workshop's end notice (the hub's, shown by
JupyterLab; naic.hub.workshops.ending). Checkpoints and the material's git history are left
out; the zip is written to a temporary file first, so a big folder never sits in memory."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import zipfile
from pathlib import Path

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

#: Never in a download: JupyterLab's checkpoints, git's history of the material.
SKIPPED = {".ipynb_checkpoints", ".git"}
CHUNK = 1 << 20


def zip_folder(folder: Path, out) -> int:
    """Write `folder`'s files (not following links out of it) into the zip `out`, named
    below the folder's own name; how many."""
    n = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
            for name in sorted(files):
                path = Path(root) / name
                if path.is_symlink() or not path.is_file():
                    continue
                z.write(path, Path(folder.name) / path.relative_to(folder))
                n += 1
    return n


def workshop_folder() -> Path | None:
    from naic.extensions.launch import workshop_material

    found = workshop_material(dict(os.environ))
    return Path(os.environ.get("HOME") or Path.cwd()) / found[0] if found else None


class WorkshopArchiveHandler(APIHandler):
    auth_resource = "naic"  # as naic.extensions.server's endpoints

    @web.authenticated
    @authorized
    async def get(self) -> None:
        folder = workshop_folder()
        if folder is None or not folder.is_dir():
            raise web.HTTPError(404, "This session has no workshop folder.")
        with tempfile.TemporaryFile() as tmp:
            await asyncio.to_thread(zip_folder, folder, tmp)
            tmp.seek(0)
            stamp = time.strftime("%Y%m%d-%H%M", time.gmtime())
            self.set_header("Content-Type", "application/zip")
            self.set_header("Cache-Control", "no-store")
            self.set_header(
                "Content-Disposition", f'attachment; filename="{folder.name}-{stamp}.zip"'
            )
            while chunk := tmp.read(CHUNK):
                self.write(chunk)
                await self.flush()
        self.finish()
