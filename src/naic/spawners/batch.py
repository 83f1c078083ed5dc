"""A notebook of a session as a Slurm batch job: the same site, resources, environment and
project, in a script from the same renderer the sessions use (`script.render_batch_script`).

The job runs `python -m naic.extensions.batch run NOTEBOOK` from the user's home, which
executes the notebook headless with nbclient and writes the executed copy next to it
(`NAME.batch-JOBID.ipynb`, saved after every cell so a job stopped at its time limit keeps
what it did). The job starts from the user's login environment (`--export=NONE`): it never
inherits the hub's variables or the session's server token.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from naic.extensions.batch import output_path
from naic.hub.catalogue import Catalogue
from naic.spawners import script
from naic.spawners.request import RequestError, SessionRequest
from naic.spawners.site import Site

__all__ = ["JOB_NAME", "JobState", "derive_request", "notebook_path", "output_path", "render"]
from naic.spawners.slurm_text import END_REASONS

#: Every batch job of the hub carries this name (squeue -n naic-batch shows them).
JOB_NAME = "naic-batch"
#: The runner inside the job (naic.extensions.batch), given the notebook's path.
RUNNER = ["python", "-m", "naic.extensions.batch", "run"]
_NOTEBOOK_CHARS = re.compile(r"[^\x00-\x1f\x7f]{1,255}")


def notebook_path(raw: object) -> str:
    """The notebook to run, relative to the home (as JupyterLab names it), or RequestError.

    Only a path below the home: no absolute path, no `..`, a `.ipynb` name, printable."""
    field = "notebook"
    if not isinstance(raw, str) or not raw.strip():
        raise RequestError(field, 'Name the notebook to run, e.g. "analysis/train.ipynb".')
    path = raw.strip()
    if not _NOTEBOOK_CHARS.fullmatch(path):
        raise RequestError(field, "The notebook's path is too long or has control characters.")
    norm = posixpath.normpath(path)
    if path.startswith(("/", "~")) or norm == ".." or norm.startswith("../"):
        raise RequestError(
            field, f"The notebook {path!r:.80} is not below your home; name it as JupyterLab does."
        )
    if not norm.endswith(".ipynb"):
        raise RequestError(field, f"{path!r:.80} is not a notebook (its name ends in .ipynb).")
    return norm


def log_path(home: str, job_id: str = "%j") -> str:
    """Pure: the job's Slurm log in the home (`%j`: Slurm's job id placeholder)."""
    return f"{home}/.naic-batch-{job_id}.log"


def render(req: SessionRequest, cat: Catalogue, *, home: str, notebook: str) -> str:
    """Pure: the batch script that runs `notebook` (relative to `home`) for `req`."""
    return script.render_batch_script(
        req,
        cat,
        job_name=JOB_NAME,
        command=[*RUNNER, notebook],
        workdir=home,
        output=log_path(home),
        # The user's own login environment, none of the hub's or the server's; NAIC_BATCH
        # tells the notebook it runs as a batch job (it may skip what needs a person).
        exports={"NAIC_BATCH": "1"},
    )


def derive_request(
    session: SessionRequest, hours: object = None, gpus: object = None
) -> dict[str, object]:
    """Pure: the session's options with the hours and GPUs the user changed, as the spawn
    form would send them (`parse_request` then applies the same bounds and sentences)."""
    raw: dict[str, object] = {
        "site": session.site,
        "resource": session.resource,
        "gpus": session.gpus,
        "cpus": session.cpus,
        "memory_gb": session.memory_gb,
        "hours": session.hours,
        "environment": session.environment,
    }
    if session.project is not None:
        raw["project"] = session.project
    if hours is not None:
        raw["hours"] = hours
    if gpus is not None:
        raw["gpus"] = gpus
    return raw


#: `sacct` for one batch job of one user: name, state, exit code.
SACCT_ARGS = ["--noheader", "--allocations", "--parsable2", "--format=JobName,State,ExitCode"]
#: The same three fields from squeue, while Slurm's controller still has the job.
SQUEUE_ARGS = ["--noheader", "--format=%j|%T|0:0"]


@dataclass(frozen=True)
class JobState:
    state: str  # queued, running, done, failed, unknown
    words: str  # for the user


def state_from_sacct(out: str) -> JobState | None:
    """Pure: the batch job's state from `SACCT_ARGS` output; None when sacct shows no batch
    job (not this user's, not a batch job, or not known)."""
    for line in out.splitlines():
        fields = line.split("|")
        if len(fields) < 3 or fields[0] != JOB_NAME:
            continue
        slurm, code = fields[1].split()[0] if fields[1].split() else "", fields[2]
        if slurm == "PENDING":
            return JobState("queued", "waiting in the queue")
        if slurm in ("RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED"):
            return JobState("running", "running")
        if slurm == "COMPLETED":
            return JobState("done", "done: every cell ran")
        if slurm == "FAILED":
            return JobState(
                "failed", f"failed (exit code {code}): a cell raised an error; see the log"
            )
        if slurm in END_REASONS:
            return JobState("failed", f"ended: {END_REASONS[slurm]}")
        return JobState("unknown", slurm.lower() or "unknown")
    return None


async def job_state(site: Site, user: str, job_id: str) -> JobState | None:
    """Where `user`'s batch job `job_id` at `site` stands (None: no such batch job of
    theirs); RuntimeError when the scheduler does not answer. squeue first: the accounting
    database learns of a job a moment after it was queued."""
    account = await site.account(user)
    who = [f"--user={account.pw_name}", f"--jobs={int(job_id)}"]
    queued = await site.run(["squeue", *SQUEUE_ARGS, *who])
    if not queued.reached:
        raise RuntimeError(queued.err)
    state = state_from_sacct(queued.out) if queued.code == 0 else None
    return state or state_from_sacct(await site.call(["sacct", *SACCT_ARGS, *who]))
