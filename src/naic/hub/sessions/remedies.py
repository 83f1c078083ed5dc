"""What to do after a session ended, for each way one ends: a sentence under the reason on
the home page and all of them on the help page (`GET /hub/naic/help`), with each site's help
links (`docs_url`, `support_url`). The templates match the reason's words (the backends' and
the culler's own) against `REMEDIES`."""

from __future__ import annotations

from jupyterhub.handlers import BaseHandler
from tornado import web

from naic.hub import catalogue
from naic.hub.catalogue import Catalogue

HELP_PATH = r"/naic/help"

#: (words in the end reason, a title for the help page, what to do next); first match wins.
REMEDIES: list[tuple[str, str, str]] = [
    ("time limit reached", "Time limit reached", "It used all the hours it asked for. Start "
     "a new one with more hours (up to the resource's limit), save as you go, and let long "
     "training resume from a checkpoint."),
    ("out of memory", "Out of memory", "It needed more memory than it asked for. Ask for "
     "more in the form, or load data in chunks or memory-mapped (see the notebook on storage "
     "and data)."),
    ("preempted", "Preempted", "A job with a higher priority took its node. Start again; long "
     "work should save checkpoints it can resume from."),
    ("node failure", "Node failure", "The node it ran on failed: nothing you did. Start "
     "again; report it if it happens again."),
    ("cancelled", "Cancelled", "It was cancelled, by you, an administrator or the scheduler. "
     "Start a new one when you need it."),
    ("could not start", "Could not start", "Its log's last lines say why. If an environment "
     "or module is missing, tell the site's support."),
    ("failed to start or crashed", "Crashed", "Its log says why; a crash in your own code "
     "shows there too."),
    ("stopped answering", "Machine lost", "The machine it ran on stopped answering: nothing "
     "you did. Start again; report it if it happens again."),
    ("not used for", "GPUs idle", "Its GPUs sat idle, and idle GPUs go back to others. Stop "
     "sessions you no longer use; run long unattended work as a batch job."),
    ("without activity", "No activity", "Nothing happened in it for a while. Your files are "
     "kept: start again when you are back."),
    ("at the longest a session may run", "Maximum age", "Sessions here have a maximum age. "
     "Run longer work as a batch job that saves checkpoints."),
]  # fmt: skip


def remedy(reason: str) -> str:
    """Pure: what to do after a session that ended for `reason` ("" when nothing helps)."""
    return next((text for words, _title, text in REMEDIES if words in reason), "")


def site_help(cat: Catalogue) -> dict[str, dict[str, str]]:
    """Pure: each site's title and help links, for the home page."""
    return {
        name: {"title": s.title, "docs_url": s.docs_url or "", "support_url": s.support_url or ""}
        for name, s in cat.sites.items()
    }


class HelpHandler(BaseHandler):
    """Every way a session ends and what to do then; each site's documentation and support."""

    @web.authenticated
    async def get(self) -> None:
        cat = catalogue.load_cached(self.settings["naic"]["catalogue_file"])
        html = await self.render_template(
            "naic-help.html", remedies=REMEDIES, sites=site_help(cat).values()
        )
        self.finish(html)
