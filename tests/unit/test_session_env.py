"""NAIC_SESSION: the facts a spawner hands to the session, exact; and what backends set."""

from __future__ import annotations

import json
import os
import pwd
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

from naic.extensions.session import SessionFacts
from naic.spawners.local import LocalSpawner
from naic.spawners.request import SessionRequest
from naic.spawners.session_env import session_env
from naic.spawners.slurm import SlurmSpawner
from tests.unit.examples import DEMO, TC

START = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)
SAGA = SessionRequest(
    site="saga",
    resource="a100",
    gpus=2,
    cpus=8,
    memory_gb=32,
    hours=1.5,
    environment="pytorch",
    project="nn1234k",
)
LOCAL = SessionRequest(
    site="local",
    resource="cpu-small",
    gpus=0,
    cpus=2,
    memory_gb=4,
    hours=0.1,
    environment="python",
    project=None,
)

SAGA_JSON = (
    '{"version":1,"catalogue":"NAIC demo","site":"saga","site_title":"Saga (Sigma2)",'
    '"backend":"slurm","resource":"a100","resource_title":"NVIDIA A100","gpus":2,'
    '"gpu_type":"a100","cpus":8,"memory_gb":32,"hours":1.5,"environment":"pytorch",'
    '"environment_title":"PyTorch + CUDA",'
    '"activate":{"venv":null,"modules":["PyTorch/2.1.2-foss-2023a-CUDA-12.1.1"]},'
    '"partition":"accel","transfer_partition":"accel","slurm_account":"nn1234k",'
    '"project":{"name":"nn1234k","title":"Deep learning for weather"},'
    '"started_at":"2026-03-02T09:00:00Z","ends_at":"2026-03-02T10:30:00Z",'
    '"time_left_notice_minutes":30.0,"storage":['
    '{"name":"home","title":"Home","path":"/home/ola","quota_gb":20.0,"read_only":false,'
    '"purge_days":null},'
    '{"name":"project","title":"Project","path":"/cluster/projects/nn1234k","quota_gb":1000.0,'
    '"read_only":false,"purge_days":null},'
    '{"name":"scratch","title":"Scratch","path":"/cluster/work/ola","quota_gb":null,'
    '"read_only":false,"purge_days":21},'
    '{"name":"datasets","title":"Datasets","path":"/datasets","quota_gb":null,'
    '"read_only":true,"purge_days":null}],'
    '"help":{"docs_url":null,"support_url":null}}'
)


def test_a_slurm_session_with_a_project_exactly() -> None:
    assert session_env(SAGA, DEMO, "ola", started_at=START) == {"NAIC_SESSION": SAGA_JSON}


def test_without_a_project_areas_that_need_one_are_left_out() -> None:
    facts = json.loads(session_env(LOCAL, DEMO, "ola", started_at=START)["NAIC_SESSION"])
    assert facts["project"] is None
    assert facts["gpus"] == 0 and facts["gpu_type"] is None
    assert [a["name"] for a in facts["storage"]] == ["home", "scratch", "datasets"]
    # 0.1 h is 6 minutes, as the job's time limit has it
    assert (facts["started_at"], facts["ends_at"]) == (
        "2026-03-02T09:00:00Z",
        "2026-03-02T09:06:00Z",
    )


def test_times_are_utc_whatever_zone_the_caller_uses() -> None:
    oslo = timezone(timedelta(hours=1))
    naive = json.loads(
        session_env(SAGA, DEMO, "ola", started_at=datetime(2026, 3, 2, 9))["NAIC_SESSION"]
    )
    zoned = json.loads(
        session_env(SAGA, DEMO, "ola", started_at=datetime(2026, 3, 2, 10, tzinfo=oslo))[
            "NAIC_SESSION"
        ]
    )
    assert naive["started_at"] == zoned["started_at"] == "2026-03-02T09:00:00Z"


def test_a_gpu_resource_asked_for_without_gpus_has_no_gpu_type() -> None:
    req = SAGA.model_copy(update={"gpus": 0})
    facts = json.loads(session_env(req, DEMO, "ola", started_at=START)["NAIC_SESSION"])
    assert facts["gpu_type"] is None


def test_the_session_reads_back_what_the_spawner_wrote() -> None:
    env = session_env(SAGA, DEMO, "ola", started_at=START)
    facts = SessionFacts.from_env(env)
    assert facts.is_naic
    assert (facts.site_title, facts.gpus, facts.gpu_type, facts.project) == (
        "Saga (Sigma2)",
        2,
        "a100",
        "nn1234k",
    )
    assert facts.ends_at == datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
    assert [a.path for a in facts.storage][:2] == ["/home/ola", "/cluster/projects/nn1234k"]
    assert facts.time_left(datetime(2026, 3, 2, 10, 0, tzinfo=UTC)) == timedelta(minutes=30)


def test_the_local_backend_gives_its_server_the_facts() -> None:
    spawner = LocalSpawner(
        home_root="/tmp/naic-homes",
        request=LOCAL,
        catalogue=DEMO,
        user=SimpleNamespace(name="ola"),
    )
    facts = json.loads(spawner.user_env({})["NAIC_SESSION"])
    # The home area is where the local backend really put the home, not the catalogue's
    # cluster path, so the storage widget measures the folder the user works in.
    assert (facts["site"], facts["backend"], facts["storage"][0]["path"]) == (
        "local",
        "local",
        "/tmp/naic-homes/ola",
    )


def test_a_local_server_started_without_the_router_has_no_facts() -> None:
    spawner = LocalSpawner(home_root="/tmp/naic-homes", user=SimpleNamespace(name="ola"))
    assert "NAIC_SESSION" not in spawner.user_env({})


def test_the_slurm_backend_puts_the_facts_into_the_job_environment() -> None:
    me = pwd.getpwuid(os.getuid()).pw_name  # batchspawner looks the account up
    req = SessionRequest(
        site="testcluster",
        resource="a100",
        gpus=1,
        cpus=2,
        memory_gb=4,
        hours=2.0,
        environment="python",
        project="demo",
    )
    hub = SimpleNamespace(
        public_host="",
        api_url="http://127.0.0.1:8081/hub/api",
        base_url="/hub/",
        url="http://127.0.0.1:8081/hub/",
    )
    spawner = SlurmSpawner(
        site="testcluster",
        request=req,
        catalogue=TC,
        hub=hub,
        user=SimpleNamespace(name=me, url=f"/user/{me}/", escaped_name=me),
    )
    before = datetime.now(UTC).replace(microsecond=0)
    facts = json.loads(spawner.get_env()["NAIC_SESSION"])
    started = datetime.fromisoformat(facts["started_at"].replace("Z", "+00:00"))
    assert before <= started <= datetime.now(UTC)
    assert facts["ends_at"] == (started + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert facts["project"] == {"name": "demo", "title": "Demo project"}
    assert facts["storage"][0]["path"] == f"/home/{me}"
