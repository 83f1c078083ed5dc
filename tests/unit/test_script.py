"""Batch scripts byte for byte against golden files, the guards on every line, the sbatch
command lines for each way of submitting, and reading sbatch's answers."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from naic.hub.catalogue import Environment
from naic.spawners import script
from naic.spawners.request import SessionRequest, UserFacts, parse_request
from naic.spawners.script import (
    SBATCH_LINE_CHARS,
    SHELL_LINE_CHARS,
    parse_parsable,
    parse_test_only,
    render_batch_script,
    sbatch_argv,
)
from naic.spawners.session_env import kernels_json
from tests.unit.examples import ALICE, DEMO, GOLDEN, TC

OLA = UserFacts("ola", frozenset({"ola", "ola@uio.no"}))
SINGLEUSER = "/opt/naic/envs/base/bin/jupyterhub-singleuser"


def render(req: SessionRequest, cat, **overrides) -> str:
    kwargs = {
        "job_name": "jupyterhub-alice",
        "command": [SINGLEUSER, "--debug"],
        "workdir": "/home/alice",
        "output": "/home/alice/.naic/jupyterhub-%j.log",
        **overrides,
    }
    return render_batch_script(req, cat, **kwargs)


def assert_golden(text: str, name: str) -> None:
    """Byte for byte; NAIC_UPDATE_GOLDEN=1 rewrites the file (then review the diff)."""
    path = GOLDEN / name
    if os.environ.get("NAIC_UPDATE_GOLDEN"):
        path.write_bytes(text.encode())
    assert text.encode() == path.read_bytes()


def test_testcluster_a100_two_gpus_python_venv():
    req = parse_request(
        {"site": "testcluster", "resource": "a100", "gpus": 2, "project": "demo"}, TC, ALICE
    )
    assert_golden(render(req, TC), "slurm-testcluster-a100.sh")


def test_saga_a100_pytorch_modules_with_a_reservation():
    raw = {"site": "saga", "gpus": 4, "cpus": 32, "hours": 24, "environment": "pytorch"}
    req = parse_request(raw, DEMO, OLA).model_copy(update={"reservation": "naic-workshop-1"})
    out = render(req, DEMO, job_name="jupyterhub-ola", workdir="/home/ola",
                 output="/home/ola/.naic/jupyterhub-%j.log", command=[SINGLEUSER])  # fmt: skip
    assert_golden(out, "slurm-saga-a100-pytorch-reservation.sh")


def test_cpu_resource_has_no_gres_line():
    req = parse_request({"site": "testcluster", "hours": 0.5, "memory_gb": 16}, TC, ALICE)
    out = render(req, TC)
    assert "--gres" not in out
    assert_golden(out, "slurm-testcluster-cpu.sh")


def test_the_golden_scripts_use_only_allowed_characters():
    for path in sorted(GOLDEN.glob("*.sh")):
        for line in path.read_text(encoding="ascii").splitlines():
            if line.startswith("#SBATCH "):
                assert set(line.partition("=")[2]) <= SBATCH_LINE_CHARS, line
            else:
                assert set(line) <= SHELL_LINE_CHARS, line


def tc_request(**fields) -> SessionRequest:
    base = {"site": "testcluster", "resource": "a100", "gpus": 1, "cpus": 1, "memory_gb": 1,
            "hours": 1.0, "environment": "python", "project": None}  # fmt: skip
    return SessionRequest(**{**base, **fields})


@pytest.mark.parametrize(
    ("hours", "line"),
    [(1 / 60, "0:01:00"), (0.1, "0:06:00"), (1.5, "1:30:00"), (23.5, "23:30:00"),
     (23.99, "1-00:00:00"), (24, "1-00:00:00")],
    ids=["one-minute", "float-noise", "ninety-minutes", "under-a-day", "rounds-up", "one-day"],
)  # fmt: skip
def test_time_limit_format(hours, line):
    assert f"#SBATCH --time={line}\n" in render(tc_request(hours=hours), TC)


def test_days_and_hours():
    assert script._slurm_time(2 * 1440 + 3 * 60 + 7) == "2-03:07:00"


def test_no_project_no_account_line():
    out = render(tc_request(), TC)
    assert "--account" not in out and "--reservation" not in out


def test_command_arguments_are_quoted():
    out = render(tc_request(), TC, command=[SINGLEUSER, "--notebook-dir=$(rm -rf ~)", "it's"])
    assert out.endswith(f"exec {SINGLEUSER} '--notebook-dir=$(rm -rf ~)' 'it'\"'\"'s'\n")


@pytest.mark.parametrize(
    "overrides",
    [
        {"job_name": "jupyterhub-alice\n#SBATCH --uid=0"},
        {"job_name": "has space"},
        {"workdir": "/home/alice; rm -rf ~"},
        {"output": "/tmp/$(id).log"},
        {"command": [SINGLEUSER, "--x\nrm -rf ~"]},
        {"command": [SINGLEUSER, "nul\x00"]},
        {"command": [SINGLEUSER, "ø"]},
    ],
    ids=["newline-job-name", "space-job-name", "semicolon-workdir", "dollar-output",
         "newline-argument", "nul-argument", "non-ascii-argument"],
)  # fmt: skip
def test_unsafe_values_are_refused(overrides):
    with pytest.raises(
        ValueError, match="refusing to write a batch script line with odd characters"
    ):
        render(tc_request(), TC, **overrides)


def test_no_batch_script_for_a_local_site_or_without_command():
    local = parse_request({}, TC, ALICE)
    with pytest.raises(ValueError, match="is not a Slurm site"):
        render(local, TC)
    with pytest.raises(ValueError, match="needs a command"):
        render(tc_request(), TC, command=[])
    with pytest.raises(ValueError, match="has no GPUs"):
        render(tc_request(resource="cpu", gpus=1), TC)


# --- the script runs (bash only, no Slurm: the #SBATCH lines are comments to bash) -----


def with_environment(cat, **env):
    return cat.model_copy(update={"environments": {"python": Environment(title="T", **env)}})


def run_script(text: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "job.sh"
    path.write_text(text, encoding="ascii")
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env}
    return subprocess.run(
        ["bash", str(path)], capture_output=True, text=True, env=clean, timeout=30, check=False
    )


def test_golden_scripts_are_valid_bash():
    for path in sorted(GOLDEN.glob("*.sh")):
        check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert (check.returncode, check.stderr) == (0, ""), path.name


def test_the_venv_is_activated_and_arguments_arrive_verbatim(tmp_path):
    venv = tmp_path / "env"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text('export NAIC_ACTIVE="$(basename "$0")-active"\n')
    cat = with_environment(TC, venv=str(venv))
    argv = ["/bin/sh", "-c", 'echo "$NAIC_ACTIVE|$1"', "sh", "$(id); `id` 'x' \"y\""]
    out = run_script(render(tc_request(), cat, command=argv, workdir=str(tmp_path)), tmp_path)
    assert out.returncode == 0, out.stderr
    marker, result = out.stdout.splitlines()
    assert marker.startswith(script.START_MARKER + " on ")
    assert result == "job.sh-active|$(id); `id` 'x' \"y\""


def test_a_missing_venv_fails_with_a_sentence(tmp_path):
    cat = with_environment(TC, venv="/nonexistent/env")
    out = run_script(render(tc_request(), cat, command=["/bin/true"]), tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (
        1,
        "",
        "naic-hub: the environment /nonexistent/env is missing on this node; "
        "tell the hub operators\n",
    )


def test_modules_are_loaded_and_a_missing_one_stops_the_job(tmp_path):
    # A stand-in for Lmod's shell function, exported the way bash exports functions.
    fake = '() { echo "module $*" >&2; [ "$2" != Missing/1.0 ]; }'
    good = with_environment(TC, modules=["CUDA/12.1", "PyTorch/2.1"])
    out = run_script(render(tc_request(), good, command=["/bin/true"]), tmp_path,
                     **{"BASH_FUNC_module%%": fake})  # fmt: skip
    assert (out.returncode, out.stderr) == (
        0, "module purge\nmodule load CUDA/12.1\nmodule load PyTorch/2.1\n"
    )  # fmt: skip
    bad = with_environment(TC, modules=["Missing/1.0"])
    out = run_script(render(tc_request(), bad, command=["/bin/true"]), tmp_path,
                     **{"BASH_FUNC_module%%": fake})  # fmt: skip
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr.endswith("naic-hub: cannot load the module Missing/1.0\n")


# --- submitting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "submit", "estimate"),
    [
        ({"as_root": True}, ["sbatch", "--parsable", "--uid=alice", "--gid=staff"],
         ["sbatch", "--test-only", "--uid=alice", "--gid=staff"]),
        ({"as_root": True, "sudo": True}, ["sbatch", "--parsable", "--uid=alice", "--gid=staff"],
         ["sbatch", "--test-only", "--uid=alice", "--gid=staff"]),
        ({"as_root": False, "sudo": True},
         ["sudo", "-n", "-E", "-u", "alice", "sbatch", "--parsable"],
         ["sudo", "-n", "-E", "-u", "alice", "sbatch", "--test-only"]),
        ({"as_root": False}, ["sbatch", "--parsable"], ["sbatch", "--test-only"]),
    ],
    ids=["root", "root-ignores-sudo", "sudo", "own-account"],
)  # fmt: skip
def test_argv(kwargs, submit, estimate):
    assert sbatch_argv(user="alice", group="staff", **kwargs) == submit
    assert script.test_only_argv(user="alice", group="staff", **kwargs) == estimate


@pytest.mark.parametrize("name", ["-rf", "a b", "alice\n", "", "x" * 65, "$(id)"])
def test_argv_refuses_odd_account_names(name):
    with pytest.raises(ValueError, match="is not a valid user name"):
        sbatch_argv(as_root=True, user=name, group="alice")
    with pytest.raises(ValueError, match="is not a valid group name"):
        sbatch_argv(as_root=True, user="alice", group=name)


@pytest.mark.parametrize(
    ("stderr", "start"),
    [
        ("sbatch: Job 3 to start at 2026-11-27T03:25:13 using 1 processors on nodes vm in "
         "partition accel\n", datetime(2026, 11, 27, 3, 25, 13)),
        ("sbatch: warning: something\nsbatch: Job 12 to start at 2026-12-01T14:05:00 using 2 "
         "processors on nodes c1-7 in partition accel\n", datetime(2026, 12, 1, 14, 5)),
        ("sbatch: error: Batch job submission failed: Requested node configuration is not "
         "available\n", None),
        ("sbatch: Job 3 to start at 2026-13-45T99:99:99 using 1 processors\n", None),
        ("", None),
        ("\x00garbage\xff", None),
    ],
    ids=["estimate", "after-a-warning", "slurm-error", "impossible-date", "empty", "garbage"],
)  # fmt: skip
def test_parse_test_only(stderr, start):
    assert parse_test_only(stderr) == start


@pytest.mark.parametrize(
    ("stdout", "job"),
    [("123\n", 123), ("4567;saga\n", 4567), ("some notice\n89\n", 89), ("  7  ", 7)],
    ids=["plain", "with-cluster", "last-line", "spaces"],
)
def test_parse_parsable(stdout, job):
    assert parse_parsable(stdout) == job


@pytest.mark.parametrize(
    "stdout", ["", "\n", "Submitted batch job 5\n", "abc", "0\n", "-5\n", "99999999999\n", "5;\n"]
)
def test_parse_parsable_refuses_garbage(stdout):
    with pytest.raises(ValueError, match=r"^sbatch printed no job id; its output was "):
        parse_parsable(stdout)


# --- sbatch over SSH: the session's variables travel in the script ---------------------

SESSION_VARIABLES = {
    "JUPYTERHUB_API_TOKEN": "0123abcd",
    "JUPYTERHUB_API_URL": "http://10.0.0.1:8081/hub/api",
    "NAIC_SESSION": '{"site":"remote","note":"it\'s $(id)"}',
}


def test_testcluster_cpu_over_ssh_exports_the_session_and_starts_from_the_login_env():
    req = parse_request({"site": "testcluster", "hours": 0.5, "memory_gb": 16}, TC, ALICE)
    out = render(req, TC, exports=SESSION_VARIABLES)
    assert "#SBATCH --export=NONE\n" in out and "--export=ALL" not in out
    assert_golden(out, "slurm-testcluster-cpu-ssh.sh")


def test_without_exports_the_script_is_the_local_one():
    req = parse_request({"site": "testcluster", "hours": 0.5, "memory_gb": 16}, TC, ALICE)
    assert render(req, TC, exports=None) == (GOLDEN / "slurm-testcluster-cpu.sh").read_text()


def test_export_lines_quote_values_sort_names_and_keep_slurm_passing_the_env_on():
    assert script.export_lines({"B": "it's $(id)", "A": "plain", "EMPTY": ""}) == [
        "export A=plain",
        "export B='it'\"'\"'s $(id)'",
        "export EMPTY=''",
        "export SLURM_EXPORT_ENV=ALL",
    ]


@pytest.mark.parametrize("name", ["A-B", "1A", "A B", "A=B", "", "X;id", "Ø"])
def test_export_lines_refuse_odd_variable_names(name):
    with pytest.raises(ValueError, match="is not an environment variable name"):
        script.export_lines({name: "x"})


@pytest.mark.parametrize("value", ["two\nlines", "nul\x00", "ø"])
def test_export_values_that_are_not_one_printable_line_are_refused(value):
    with pytest.raises(ValueError, match="odd characters"):
        render(tc_request(), TC, exports={"X": value})


def test_job_variables_leave_out_the_hub_machines_paths_and_account():
    env = {
        **SESSION_VARIABLES,
        "PATH": "/opt/hub/bin:/usr/bin",
        "PYTHONPATH": "/opt/hub",
        "VIRTUAL_ENV": "/opt/hub",
        "HOME": "/home/alice",
        "USER": "alice",
        "SHELL": "/bin/bash",
        "LANG": "C.UTF-8",
    }
    assert script.job_variables(env) == {**SESSION_VARIABLES, "LANG": "C.UTF-8"}
    assert list(script.job_variables(env)) == sorted(script.job_variables(env))


def test_exported_values_arrive_verbatim_in_the_job(tmp_path):
    command = ["/bin/sh", "-c", 'printf "%s|%s|%s" "$NAIC_SESSION" "$JUPYTERHUB_API_TOKEN" '
               '"$SLURM_EXPORT_ENV"']  # fmt: skip
    text = render(tc_request(), with_environment(TC, modules=["X"]), command=command,
                  exports=SESSION_VARIABLES)  # fmt: skip
    fake = "() { return 0; }"  # Lmod's stand-in: the exports come before `module purge`
    out = run_script(text, tmp_path, **{"BASH_FUNC_module%%": fake})
    assert out.returncode == 0, out.stderr
    values = out.stdout.splitlines()[-1]
    assert values == f"{SESSION_VARIABLES['NAIC_SESSION']}|0123abcd|ALL"


def test_sudo_over_ssh_needs_no_setenv():
    argv = sbatch_argv(as_root=False, sudo=True, user="alice", group="staff", keep_env=False)
    assert argv == ["sudo", "-n", "-u", "alice", "sbatch", "--parsable"]
    root = sbatch_argv(as_root=True, sudo=False, user="alice", group="staff", keep_env=False)
    assert root == ["sbatch", "--parsable", "--uid=alice", "--gid=staff"]


def test_with_a_session_environment_the_server_runs_from_it_and_loads_no_module():
    saga = DEMO.sites["saga"].model_copy(update={"session_env": "/cluster/naic/session"})
    cat = DEMO.model_copy(update={"sites": {**DEMO.sites, "saga": saga}})
    req = parse_request({"site": "saga", "gpus": 1, "environment": "pytorch"}, cat, OLA)
    out = render(req, cat, command=["jupyterhub-singleuser"])
    assert "module" not in out
    assert (
        "[ -f /cluster/naic/session/bin/activate ] || fail 'the session environment "
        "/cluster/naic/session is missing on this node; tell the hub operators'\n"
        "source /cluster/naic/session/bin/activate\n"
    ) in out
    assert json.loads(kernels_json(req, cat)) == {
        "environments": {
            "python": {"title": "Python 3", "venv": "/opt/naic/envs/base"},
            "pytorch": {"title": "PyTorch + CUDA",
                        "modules": ["PyTorch/2.1.2-foss-2023a-CUDA-12.1.1"]},
        },
        "default": "pytorch",
    }  # fmt: skip
