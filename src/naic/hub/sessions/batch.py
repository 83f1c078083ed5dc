"""Run a notebook of a running session as a Slurm batch job (`naic.spawners.batch`).

`POST /hub/api/naic/users/{name}/batch` (`…/servers/{server}/batch` for a named server),
body `{"notebook": "train.ipynb", "hours": h, "gpus": g, "submit": false}`: the script the
job would run, for the user to read (`hours`/`gpus` optional: the session's). With
`"submit": true` the hub submits it and answers 201 with its `job_id`. The request is the
session's (site, resource, environment, project) with the hours and GPUs changed, checked by
the spawn form's own gate, so a refusal is the form's sentence (400), and the project's
GPU-hour budget must hold it (403).

`GET /hub/api/naic/users/{name}/batch/{site}/{job_id}`: `{"state": "queued"|"running"|"done"|
"failed", "words"}`, only for the user's own batch jobs (404 otherwise); a named server's
token adds `?server=NAME`.

Who may: the user's own token, the session's own server token (`custom:naic:batch!server`:
the session panel and `naic-batch` inside the session), and admins.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from jupyterhub.apihandlers import APIHandler
from tornado import web

from naic.hub.usage import accounting
from naic.hub.usage.slurm_usage import accounted_sites
from naic.spawners import batch
from naic.spawners.request import RequestError, parse_request
from naic.spawners.site import NoAccount, SystemAccount, site_for

BATCH_PATH = r"/api/naic/users/([^/]+)/batch"
SERVER_BATCH_PATH = r"/api/naic/users/([^/]+)/servers/([^/]*)/batch"
JOB_PATH = r"/api/naic/users/([^/]+)/batch/([a-z][a-z0-9_-]{0,39})/([0-9]{1,10})"
SCOPE = "custom:naic:batch"
_KEYS = {"notebook", "hours", "gpus", "submit"}


class _BatchBase(accounting._NaicHandlerMixin, APIHandler):
    def _allowed(self, user_name: str, server_name: str = "") -> None:
        if self.current_user is None:
            raise web.HTTPError(403, "Log in, or send a token, to run batch jobs.")
        if not accounting.may(self, SCOPE, server=f"{user_name}/{server_name}"):
            raise web.HTTPError(403, "You may run batch jobs only from your own sessions.")

    def _session(self, user_name: str, server_name: str):
        """The router and Slurm backend of the user's running session (or 404/409)."""
        user = self.find_user(user_name)
        named = f" named {server_name!r}" if server_name else ""
        router = user.spawners[server_name] if user and server_name in user.orm_spawners else None
        if router is None or not router.ready or getattr(router, "request", None) is None:
            raise web.HTTPError(
                404, f"{user_name} has no running session{named} to take the batch job from."
            )
        child = router.child_spawner
        if not hasattr(child, "notebook_job"):
            site = router.catalogue.sites[router.request.site].title
            raise web.HTTPError(
                409, f"Batch jobs run on Slurm sites; this session runs on {site}, which has none."
            )
        return router, child


class BatchHandler(_BatchBase):
    """POST: the job's script (and, with `submit`, the job)."""

    async def post(self, user_name: str, server_name: str = "") -> None:
        self._allowed(user_name, server_name)
        body = self.json_body()
        unknown = sorted(set(body) - _KEYS)
        if unknown:
            raise web.HTTPError(
                400, f"{unknown[0]!r:.40} is not a batch job option; send {sorted(_KEYS)}."
            )
        router, child = self._session(user_name, server_name)
        try:
            notebook = batch.notebook_path(body.get("notebook"))
            raw = batch.derive_request(router.request, body.get("hours"), body.get("gpus"))
            req = parse_request(raw, router.catalogue, router.user_facts())
        except RequestError as exc:
            raise web.HTTPError(400, str(exc)) from None
        submit = body.get("submit", False) is True
        if submit:  # the same budget gate as a session: refused before anything is queued
            hold, refusal = await accounting.budget_hold(
                router.catalogue, self.naic_ledger, req, user_name, "batch", datetime.now(UTC)
            )
            if refusal:
                raise web.HTTPError(403, refusal)
            # Where Slurm's accounting is the budget's figure it counts the job itself; else
            # the hold keeps the job's GPU-hours reserved until it may have ended.
            if hold and req.site in accounted_sites(router.catalogue):
                self.naic_ledger.release_hold(hold)
        text, home, job_id = await child.notebook_job(req, notebook, submit=submit)
        answer = {
            "notebook": notebook,
            "hours": req.hours,
            "gpus": req.gpus,
            "script": text,
            "output": batch.output_path(notebook, job_id or "JOBID"),
            "log": batch.log_path(home, job_id or "JOBID"),
            "site": req.site,
        }
        if job_id:
            self.log.info("Batch job %s of %s runs %s", job_id, user_name, notebook)
            self.set_status(201)
            answer |= {"job_id": job_id, "state": "queued"}
        self.finish(json.dumps(answer))


class BatchJobHandler(_BatchBase):
    """GET: where one of the user's batch jobs stands (also after the session ended)."""

    async def get(self, user_name: str, site_name: str, job_id: str) -> None:
        self._allowed(user_name, self.get_argument("server", ""))  # a server token's own
        cat = self.naic_catalogue
        if cat.sites.get(site_name) is None or cat.sites[site_name].backend != "slurm":
            raise web.HTTPError(404, f"There is no Slurm site {site_name!r} on this hub.")
        try:
            state = await batch.job_state(site_for(cat, site_name), user_name, job_id)
        except (NoAccount, SystemAccount) as exc:
            raise web.HTTPError(404, str(exc)) from None
        except RuntimeError as exc:
            raise web.HTTPError(
                503, f"The scheduler at {cat.sites[site_name].title} did not answer; try again."
            ) from exc
        if state is None:
            raise web.HTTPError(404, f"Job {job_id} is not one of {user_name}'s batch jobs.")
        self.finish(json.dumps({"job_id": job_id, "state": state.state, "words": state.words}))


HANDLERS = [
    (JOB_PATH, BatchJobHandler),
    (BATCH_PATH, BatchHandler),
    (SERVER_BATCH_PATH, BatchHandler),
]
