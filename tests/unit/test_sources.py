"""Data sources: Slurm's end time, NVML through a fake library, the sampler on an injected
clock, storage on real folders, `lfs quota` text as Lustre prints it, and the hub's API
served by a real HTTP server on loopback."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest

from naic.extensions.session import NOT_A_SESSION, SessionFacts, StorageArea, describe_time_left
from naic.extensions.sources.gpu import (
    FakeGPUSource,
    GPUSample,
    GPUSampler,
    NVMLSource,
    visible_devices,
)
from naic.extensions.sources.hubclient import BUDGETS_NOT_AVAILABLE, HubError, HubSource
from naic.extensions.sources.jobend import FixedJobEnd, SqueueJobEnd, parse_squeue_end
from naic.extensions.sources.storage import GB, LocalStorageSource, fs_type, parse_lfs_quota
from naic.spawners.request import SessionRequest
from naic.spawners.session_env import session_env
from tests.unit.examples import DEMO

# --- the job's end -------------------------------------------------------------------------

OSLO = timezone(timedelta(hours=1))


def test_squeue_end_times_are_the_clusters_local_time() -> None:
    assert parse_squeue_end("2026-03-02T14:30:00\n", tz=OSLO) == datetime(
        2026, 3, 2, 13, 30, tzinfo=UTC
    )
    for nothing in ("N/A\n", "", "Unknown", "NONE"):
        assert parse_squeue_end(nothing, tz=OSLO) is None


def test_squeue_is_asked_at_most_once_a_minute() -> None:
    calls: list[list[str]] = []
    now = [0.0]

    def run(argv, timeout_s):
        calls.append(list(argv))
        return "2026-03-02T14:30:00\n"

    source = SqueueJobEnd(run, clock=lambda: now[0])
    assert source.end_time("123") is not None
    now[0] = 59
    source.end_time("123")
    assert calls == [["squeue", "-h", "-j", "123", "-o", "%e"]]
    now[0] = 61
    source.end_time("123")
    assert len(calls) == 2
    assert source.end_time("1; rm -rf ~") is None and len(calls) == 2


def test_no_squeue_means_the_requested_end() -> None:
    def run(argv, timeout_s):
        raise FileNotFoundError("squeue")

    assert SqueueJobEnd(run).end_time("7") is None


def _env(**extra: str) -> dict[str, str]:
    req = SessionRequest(
        site="saga",
        resource="a100",
        gpus=1,
        cpus=8,
        memory_gb=32,
        hours=4.0,
        environment="pytorch",
        project=None,
    )
    env = session_env(req, DEMO, "ola", started_at=datetime(2026, 3, 2, 9, tzinfo=UTC))
    return {**env, **extra}


def test_inside_a_slurm_job_slurms_end_time_wins() -> None:
    extended = datetime(2026, 3, 2, 15, tzinfo=UTC)
    job_end = FixedJobEnd(extended)
    facts = SessionFacts.from_env(_env(SLURM_JOB_ID="42"), job_end=job_end)
    assert job_end.asked == ["42"]
    assert (facts.ends_at, facts.ends_at_from, facts.job_id) == (extended, "slurm", "42")
    assert describe_time_left(facts.time_left(datetime(2026, 3, 2, 12, tzinfo=UTC))) == "3 h 0 min"


def test_when_slurm_does_not_know_the_requested_end_stays() -> None:
    facts = SessionFacts.from_env(_env(SLURM_JOB_ID="42"), job_end=FixedJobEnd(None))
    assert facts.ends_at == datetime(2026, 3, 2, 13, tzinfo=UTC)
    assert facts.ends_at_from == "request"


def test_outside_slurm_nobody_asks_squeue() -> None:
    job_end = FixedJobEnd(None)
    SessionFacts.from_env(_env(), job_end=job_end)
    assert job_end.asked == []


def test_callers_that_need_no_end_time_do_not_ask_slurm() -> None:
    job_end = FixedJobEnd(None)
    facts = SessionFacts.from_env(_env(SLURM_JOB_ID="42"), job_end=job_end, ask_scheduler=False)
    assert job_end.asked == [] and facts.is_naic


def test_a_plain_jupyter_is_not_a_session_and_says_so() -> None:
    facts = SessionFacts.from_env({})
    assert not facts.is_naic and facts.reason == NOT_A_SESSION
    assert facts.to_json(datetime.now(UTC)) == {"naic": False, "message": NOT_A_SESSION}
    broken = SessionFacts.from_env({"NAIC_SESSION": "{not json"})
    assert not broken.is_naic and "cannot be read" in broken.reason


@pytest.mark.parametrize(
    ("left", "words"),
    [
        (None, "unknown"),
        (timedelta(0), "ended"),
        (timedelta(seconds=59), "less than a minute"),
        (timedelta(minutes=12, seconds=30), "12 min"),
        (timedelta(hours=3, minutes=12), "3 h 12 min"),
        (timedelta(days=3, hours=2), "3 days 2 h"),
    ],
)
def test_time_left_in_words(left, words) -> None:
    assert describe_time_left(left) == words


# --- GPUs: a fake NVML library with the calls pynvml has ------------------------------------


class FakeNVMLError(Exception):
    pass


class FakeNVML:
    """The subset of pynvml that NVMLSource calls; devices are (name, util, used, total)."""

    NVMLError = FakeNVMLError

    def __init__(self, devices, *, fail_init=False, uuids=None, no_util=()):
        self.devices, self.fail_init = devices, fail_init
        self.uuids = uuids or {}
        self.no_util = set(no_util)
        self.inits = 0

    def nvmlInit(self):
        self.inits += 1
        if self.fail_init:
            raise FakeNVMLError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        if not 0 <= i < len(self.devices):
            raise FakeNVMLError("Invalid Argument")
        return i

    def nvmlDeviceGetHandleByUUID(self, uuid):
        if uuid not in self.uuids:
            raise FakeNVMLError("Not Found")
        return self.uuids[uuid]

    def nvmlDeviceGetName(self, h):
        return self.devices[h][0].encode()  # older pynvml returns bytes

    def nvmlDeviceGetUtilizationRates(self, h):
        if h in self.no_util:
            raise FakeNVMLError("Not Supported")
        return SimpleNamespace(gpu=self.devices[h][1], memory=0)

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(used=self.devices[h][2] * 2**20, total=self.devices[h][3] * 2**20)


FOUR = [(f"NVIDIA A100-SXM4-80GB #{i}", 10 * i, 1000 * i, 81920) for i in range(4)]


def test_nvml_samples_only_the_sessions_gpus_numbered_as_cuda_sees_them() -> None:
    source = NVMLSource({"CUDA_VISIBLE_DEVICES": "2,3"}, nvml=FakeNVML(FOUR))
    assert source.sample() == [
        GPUSample(0, "NVIDIA A100-SXM4-80GB #2", 20.0, 2000.0, 81920.0),
        GPUSample(1, "NVIDIA A100-SXM4-80GB #3", 30.0, 3000.0, 81920.0),
    ]


def test_without_cuda_visible_devices_every_gpu_counts() -> None:
    assert len(NVMLSource({}, nvml=FakeNVML(FOUR)).sample()) == 4


def test_gpus_by_uuid_and_fake_gpus_nvml_does_not_know() -> None:
    nvml = FakeNVML(FOUR, uuids={"GPU-aaaa": 1})
    assert [
        g.name for g in NVMLSource({"CUDA_VISIBLE_DEVICES": "GPU-aaaa"}, nvml=nvml).sample()
    ] == ["NVIDIA A100-SXM4-80GB #1"]
    # Slurm's fake GPUs on the test cluster: indices NVML has no device for
    assert NVMLSource({"CUDA_VISIBLE_DEVICES": "0,1"}, nvml=FakeNVML([])).sample() == []


def test_hidden_gpus_are_none() -> None:
    assert visible_devices({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "0,1,-1,2"}) == ["0", "1"]
    assert visible_devices({}) is None


def test_no_nvml_library_means_no_gpu_and_is_not_retried() -> None:
    nvml = FakeNVML(FOUR, fail_init=True)
    source = NVMLSource({}, nvml=nvml)
    assert source.sample() == [] and source.sample() == []
    assert nvml.inits == 1


def test_the_real_pynvml_gives_none_when_the_session_sees_no_gpu() -> None:
    # Here (no driver) NVML fails to start; on a GPU machine the session was given no GPU.
    env = {"CUDA_VISIBLE_DEVICES": ""} if Path("/dev/nvidiactl").exists() else {}
    assert NVMLSource(env).sample() == []


def test_a_gpu_that_does_not_report_utilisation_still_shows_its_memory() -> None:
    sample = NVMLSource({}, nvml=FakeNVML(FOUR[:1], no_util={0})).sample()
    assert sample == [GPUSample(0, "NVIDIA A100-SXM4-80GB #0", None, 0.0, 81920.0)]


# --- the sampler ------------------------------------------------------------------------------


def gpu(util: float) -> list[GPUSample]:
    return [GPUSample(0, "A100", util, 100.0, 1000.0)]


def test_the_sampler_keeps_a_bounded_history_on_its_own_clock() -> None:
    now = [1000.0]
    sampler = GPUSampler(FakeGPUSource(gpu(0), gpu(50), gpu(100)), keep=2, clock=lambda: now[0])
    assert sampler.latest() is None
    for _ in range(3):
        sampler.sample_once()
        now[0] += 5
    assert [r.at for r in sampler.readings()] == [1005.0, 1010.0]
    assert [r.gpus[0].utilization_pct for r in sampler.readings()] == [50, 100]
    assert [r.at for r in sampler.since(1010)] == [1010.0]
    assert sampler.latest().gpus[0].utilization_pct == 100


def test_a_failing_source_gives_an_empty_reading_not_a_dead_sampler() -> None:
    class Broken:
        def sample(self):
            raise RuntimeError("driver went away")

    sampler = GPUSampler(Broken(), clock=lambda: 1.0)
    assert sampler.sample_once().gpus == ()


def test_listeners_hear_each_reading_and_can_leave() -> None:
    heard = []
    sampler = GPUSampler(FakeGPUSource(gpu(7)), clock=lambda: 1.0)
    sampler.subscribe(heard.append)
    sampler.sample_once()
    sampler.unsubscribe(heard.append)
    sampler.sample_once()
    assert len(heard) == 1 and heard[0].gpus[0].utilization_pct == 7


def test_the_sampler_thread_starts_samples_and_stops() -> None:
    sampler = GPUSampler(FakeGPUSource(gpu(1)), interval_s=0.01)
    sampler.start()
    deadline = time.monotonic() + 5
    while len(sampler.readings()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    sampler.stop()
    assert not sampler.running
    count = len(sampler.readings())
    assert count >= 3
    time.sleep(0.05)
    assert len(sampler.readings()) == count  # stopped means stopped
    sampler.start()  # and it starts again
    assert sampler.running
    sampler.stop()


# --- storage --------------------------------------------------------------------------------


def area(path: Path | str, name: str = "home", **kw) -> StorageArea:
    return StorageArea(name=name, title=name.capitalize(), path=str(path), **kw)


def test_an_area_with_a_quota_counts_its_files_with_du(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(b"x" * (3 * 2**20))
    [usage] = LocalStorageSource([area(tmp_path, quota_gb=20)], "ola").usage()
    assert usage.available and usage.method == "du" and usage.scope == "area"
    assert 3 * 2**20 <= usage.used_gb * GB < 4 * 2**20
    assert usage.limit_gb == 20


def test_an_area_without_a_quota_shows_its_file_system(tmp_path: Path) -> None:
    [usage] = LocalStorageSource([area(tmp_path, "scratch", purge_days=21)], "ola").usage()
    assert usage.available and usage.method == "df" and usage.scope == "file system"
    assert 0 < usage.used_gb <= usage.limit_gb


def test_a_path_that_is_not_here_is_not_available_here(tmp_path: Path) -> None:
    [usage] = LocalStorageSource([area(tmp_path / "nope", quota_gb=20)], "ola").usage()
    assert not usage.available and usage.note == "not available here"


def test_the_operator_picks_lfs_per_area_and_its_numbers_are_used(tmp_path: Path) -> None:
    calls = []

    def run(argv, timeout_s):
        calls.append(list(argv))
        return LFS_ONE_LINE

    source = LocalStorageSource(
        [area(tmp_path, "project", quota_gb=1000)],
        "ola",
        environ={"NAIC_STORAGE_METHODS": "project=lfs, scratch=lfs"},
        run=run,
    )
    [usage] = source.usage()
    assert calls == [["lfs", "quota", "-u", "ola", str(tmp_path)]]
    assert usage.scope == "user"
    assert usage.used_gb == pytest.approx(982177580 / 2**20)
    assert usage.limit_gb == pytest.approx(1000000000 / 2**20)


def test_slow_du_says_so_and_results_are_kept_a_while(tmp_path: Path) -> None:
    calls = []
    now = [0.0]

    def run(argv, timeout_s):
        calls.append(argv)
        raise subprocess.TimeoutExpired(argv, timeout_s)

    source = LocalStorageSource([area(tmp_path, quota_gb=20)], "ola", run=run, clock=lambda: now[0])
    [usage] = source.usage()
    assert not usage.available and "longer than 30 s" in usage.note
    source.usage()
    assert len(calls) == 1
    now[0] = 301
    source.usage()
    assert len(calls) == 2


# `lfs quota -u USER PATH` as Lustre prints it (from sites' documentation).
LFS_ONE_LINE = """\
Disk quotas for usr ola (uid 1001):
      Filesystem  kbytes   quota   limit   grace   files   quota   limit   grace
        /lustre7 982177580       0 1000000000       - 443208230       0       0       -
uid 1001 is using default file quota setting
"""
LFS_LONG_PATH = """\
Disk quotas for usr ola (uid 1001):
     Filesystem  kbytes   quota   limit   grace   files   quota   limit   grace
/cluster/projects/nn1234k
                 1234567  20971520 31457280       -    1234       0       0       -
"""
LFS_OVER_AND_INCOMPLETE = """\
Disk quotas for usr ola (uid 1000):
     Filesystem    kbytes    quota   limit   grace   files   quota   limit   grace
          /fred [1041408]  5242880 6291456       -     [0]       0       0       -
"""
LFS_HUMAN = """\
Disk quotas for usr ola (uid 514559):
     Filesystem    used   quota   limit   grace   files   quota   limit   grace
             ./  792.3M      0k  9.537T       -       9       0 2000000       -
"""


def test_lfs_quota_text_is_read_as_lustre_prints_it() -> None:
    one = parse_lfs_quota(LFS_ONE_LINE)
    assert (one.used_kb, one.soft_kb, one.hard_kb) == (982177580, 0, 1000000000)
    long = parse_lfs_quota(LFS_LONG_PATH)
    assert (long.used_kb, long.soft_kb, long.hard_kb) == (1234567, 20971520, 31457280)
    over = parse_lfs_quota(LFS_OVER_AND_INCOMPLETE.replace("[1041408]", "7041408*"))
    assert over.used_kb == 7041408
    assert parse_lfs_quota(LFS_OVER_AND_INCOMPLETE).used_kb == 1041408
    human = parse_lfs_quota(LFS_HUMAN)
    assert human.used_kb == round(792.3 * 1024) and human.hard_kb == round(9.537 * 2**30)
    assert parse_lfs_quota("lfs quota: '/home/ola' not on a mounted Lustre filesystem") is None


def test_lfs_without_limits_falls_back_to_the_catalogue_quota(tmp_path: Path) -> None:
    text = LFS_HUMAN.replace("9.537T", "0k")
    source = LocalStorageSource(
        [area(tmp_path, "project", quota_gb=1000)],
        "ola",
        methods={"project": "lfs"},
        run=lambda argv, t: text,
    )
    assert source.usage()[0].limit_gb == 1000


# --- the hub ----------------------------------------------------------------------------------


class FakeHub(BaseHTTPRequestHandler):
    """A stand-in for the hub's API on loopback: records requests, answers from `routes`."""

    routes: ClassVar[dict[tuple[str, str], tuple[int, dict | None]]] = {}
    seen: ClassVar[list[tuple[str, str, str]]] = []

    def _answer(self) -> None:
        type(self).seen.append((self.command, self.path, self.headers.get("Authorization")))
        status, body = self.routes.get((self.command, self.path), (404, {"message": "Not found"}))
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hub():
    FakeHub.routes, FakeHub.seen = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{server.server_port}/hub/api",
        "JUPYTERHUB_API_TOKEN": "secret-token",
        "JUPYTERHUB_USER": "ola",
    }
    yield SimpleNamespace(env=env, routes=FakeHub.routes, seen=FakeHub.seen)
    server.shutdown()
    server.server_close()


USAGE = {
    "user": "ola",
    "projects": [
        {
            "name": "nn1234k",
            "title": "Deep learning for weather",
            "gpu_hours": 1000,
            "used": 12.5,
            "left": 987.5,
            "period": "year",
            "resets": "2027-01-01T00:00:00+00:00",
            "mine": 2.0,
        },
        {"name": "free", "title": "Free", "gpu_hours": None, "used": 3, "left": None},
    ],
    "requests": [],
}


def test_budgets_come_from_the_hub_with_the_servers_own_token(hub) -> None:
    hub.routes[("GET", "/hub/api/naic/users/ola/usage")] = (200, USAGE)
    budgets = HubSource(hub.env).budget()
    assert budgets.available
    assert [(p.name, p.gpu_hours, p.used, p.left, p.mine) for p in budgets.projects] == [
        ("nn1234k", 1000.0, 12.5, 987.5, 2.0),
        ("free", None, 3.0, None, None),
    ]
    assert hub.seen == [("GET", "/hub/api/naic/users/ola/usage", "token secret-token")]


def test_a_hub_without_budgets_means_not_available_yet(hub) -> None:
    budgets = HubSource(hub.env).budget()  # 404: the endpoint does not exist yet
    assert not budgets.available and budgets.message == BUDGETS_NOT_AVAILABLE


def test_a_hub_that_does_not_answer_means_not_available_yet(hub) -> None:
    env = {**hub.env, "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api"}
    budgets = HubSource(env, timeout_s=2).budget()
    assert not budgets.available and budgets.message.startswith(BUDGETS_NOT_AVAILABLE)
    assert not HubSource({}).budget().available


def test_stop_asks_the_hub_to_delete_this_server(hub) -> None:
    hub.routes[("DELETE", "/hub/api/users/ola/server")] = (204, None)
    hub.routes[("DELETE", "/hub/api/users/ola/servers/gpu%20run")] = (202, None)
    HubSource(hub.env).stop_server()
    HubSource({**hub.env, "JUPYTERHUB_SERVER_NAME": "gpu run"}).stop_server()
    assert [(m, p) for m, p, _ in hub.seen] == [
        ("DELETE", "/hub/api/users/ola/server"),
        ("DELETE", "/hub/api/users/ola/servers/gpu%20run"),
    ]


def test_a_refused_stop_says_what_to_do_instead(hub) -> None:
    hub.routes[("DELETE", "/hub/api/users/ola/server")] = (403, {"message": "Forbidden"})
    with pytest.raises(HubError, match="Hub Control Panel"):
        HubSource(hub.env).stop_server()


MOUNTS = """\
sysfs /sys sysfs rw 0 0
/dev/sda1 / ext4 rw 0 0
10.1.1.1@o2ib:/cluster /cluster lustre rw,flock 0 0
/dev/sdb1 /cluster/work/local\\040disk xfs rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/cluster/projects/nn1234k", "lustre"),
        ("/cluster", "lustre"),
        ("/clusterx/a", "ext4"),
        ("/cluster/work/local disk/ola", "xfs"),
        ("/home/ola", "ext4"),
    ],
)
def test_the_file_system_type_of_a_path(path: str, kind: str) -> None:
    assert fs_type(path, MOUNTS) == kind


def test_lustre_areas_use_lfs_quota_by_themselves_and_du_when_it_does_not_answer(
    tmp_path: Path,
) -> None:
    calls = []
    lustre = f"mgs:/fs {tmp_path} lustre rw 0 0\n"

    def run(argv, timeout_s):
        calls.append(argv[0])
        if argv[0] == "lfs":
            return LFS_ONE_LINE
        return f"2048\t{tmp_path}\n"

    project = area(tmp_path, "project", quota_gb=1000)
    [usage] = LocalStorageSource([project], "ola", run=run, mounts=lambda: lustre).usage()
    assert (usage.method, usage.scope, calls) == ("lfs", "user", ["lfs"])

    def lfs_down(argv, timeout_s):
        calls.append(argv[0])
        if argv[0] == "lfs":
            raise FileNotFoundError("lfs")
        return f"2048\t{tmp_path}\n"

    calls.clear()
    [usage] = LocalStorageSource([project], "ola", run=lfs_down, mounts=lambda: lustre).usage()
    assert (usage.available, usage.method, usage.scope, calls) == (
        True,
        "du",
        "area",
        ["lfs", "du"],
    )
    assert usage.used_gb == pytest.approx(2048 * 1024 / GB)
