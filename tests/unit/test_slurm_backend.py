"""Small pure parts of the Slurm backend."""

from datetime import UTC, datetime

from naic.spawners.slurm_text import end_from_sacct, end_reason_from_sacct, reason_from_log
from naic.spawners.slurm_text import job_name as _job_name
from naic.spawners.slurm_text import submit_error as _submit_error


def test_job_names_keep_only_safe_characters_of_a_server_name() -> None:
    assert _job_name("alice", "") == "naic-alice"
    assert _job_name("alice", "gpu 1;$(id)") == "naic-alice-gpu-1---id-"
    assert len(_job_name("alice", "x" * 200)) == 64


def test_a_scheduler_outage_is_a_503_with_a_sentence() -> None:
    err = _submit_error(
        "Saga",
        "sbatch failed at saga: sbatch: error: Batch job submission "
        "failed: Unable to contact slurm controller (connect failure)",
    )
    assert err.status_code == 503
    assert err.log_message.startswith("The scheduler at Saga is not answering")


def test_a_refused_submission_is_a_400_naming_the_site_and_slurms_reason() -> None:
    err = _submit_error(
        "Saga",
        "sbatch failed at saga: sbatch: error: Invalid account or "
        "account/partition combination specified",
    )
    assert err.status_code == 400
    assert err.log_message == (
        "Saga refused the session: Invalid account or account/partition combination specified."
    )


def test_end_reasons_read_from_sacct() -> None:
    assert end_reason_from_sacct("TIMEOUT\n") == "time limit reached"
    assert end_reason_from_sacct("CANCELLED by 1001\n") == "cancelled"
    assert end_reason_from_sacct("OUT_OF_MEMORY\n") == "out of memory"
    assert end_reason_from_sacct("") == ""
    assert end_reason_from_sacct("RUNNING\n") == ""
    assert end_reason_from_sacct("TIMEOUT|2026-12-03T10:00:00\n") == "time limit reached"


def test_sacct_gives_the_end_of_a_job_squeue_forgot() -> None:
    assert end_from_sacct("COMPLETED|2026-12-03T10:00:00\n") == datetime(
        2026, 12, 3, 10, 0
    ).astimezone(UTC)
    assert end_from_sacct("RUNNING|Unknown\n") is None
    assert end_from_sacct("") is None


def test_a_job_killed_for_its_memory_is_out_of_memory_whatever_its_state() -> None:
    sampled = (
        "slurmstepd-vm: error: StepId=149.batch exceeded memory limit (534216704 > 209715200),"
        " being killed\nslurmstepd-vm: error: Exceeded job memory limit\n"
    )
    assert reason_from_log(sampled) == "out of memory"
    cgroup = "slurmstepd: error: Detected 1 oom-kill event(s) in StepId=7.batch.\n"
    assert reason_from_log(cgroup) == "out of memory"
    assert reason_from_log("Traceback ...\nValueError: bad config\n") == ""
