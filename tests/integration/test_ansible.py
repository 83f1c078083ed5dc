"""The Ansible deployment (ansible/) as an operator meets it.

ansible-lint's production profile; the naic_hub role applied for real to this machine
(`connection: local`, service manager `none`, everything under one throw-away folder in
/var/tmp); the hub started with the command the role left, answering /hub/api; a second run
that changes nothing; and the rendered configuration files byte for byte against golden
files (NAIC_UPDATE_GOLDEN=1 rewrites them; review the diff).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.ansible_play import (
    ANSIBLE_DIR,
    BIN,
    ROLES,
    Deployment,
    ansible_env,
    recap,
    recap_line,
    run_playbook,
    stop_process_group,
    write_yaml,
)
from tests.oidc_provider import oidc_catalogue

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parent / "ansible_golden"
START_TIMEOUT_S = 60


# --- lint ---------------------------------------------------------------------------------


def test_ansible_lint_production_profile_passes_offline() -> None:
    result = subprocess.run(
        [str(BIN / "ansible-lint"), "--profile", "production", "--offline"],
        cwd=ANSIBLE_DIR,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_site_playbook_and_example_inventory_pass_the_syntax_check() -> None:
    result = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "--syntax-check",
            "-i",
            "inventory/example/hosts.yml",
            "site.yml",
        ],
        cwd=ANSIBLE_DIR,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the naic_hub role for real -----------------------------------------------------------


def test_first_run_installs_and_says_how_to_start(deployment: Deployment) -> None:
    counts = recap(deployment.first_run)
    assert counts["failed"] == 0 and counts["unreachable"] == 0
    assert counts["changed"] > 0
    assert f"Start command: {deployment.start_command}" in deployment.first_run.stdout
    assert pwd.getpwnam(deployment.user).pw_shell == "/usr/sbin/nologin"


def test_secrets_are_private_and_never_logged(deployment: Deployment) -> None:
    secrets_env = deployment.etc / "secrets.env"
    assert secrets_env.stat().st_mode & 0o777 == 0o600
    values = dict(
        line.split("=", 1) for line in secrets_env.read_text().splitlines() if "=" in line
    )
    assert set(values) == {"JUPYTERHUB_CRYPT_KEY", "JPY_COOKIE_SECRET", "CONFIGPROXY_AUTH_TOKEN"}
    for value in values.values():
        secret = value.strip("'")
        assert re.fullmatch(r"[0-9a-f]{64}", secret)
        assert secret not in deployment.first_run.stdout + deployment.first_run.stderr


def test_rendered_logrotate_file_is_valid(deployment: Deployment) -> None:
    result = subprocess.run(
        ["logrotate", "--debug", str(deployment.base / "logrotate.d" / "naic-hub")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stderr.lower(), result.stderr


def test_deployed_hub_starts_from_the_start_command_and_answers(deployment: Deployment) -> None:
    log_path = deployment.base / "hub.log"
    with log_path.open("w") as log:
        hub = subprocess.Popen(
            [str(deployment.start_command)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proxy_pid_file = deployment.data / "jupyterhub-proxy.pid"
    try:
        url = f"http://127.0.0.1:{deployment.port}/hub/api"
        deadline = time.monotonic() + START_TIMEOUT_S
        answer = None
        while time.monotonic() < deadline and hub.poll() is None:
            try:
                answer = httpx.get(url, timeout=2)
                if answer.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert answer is not None and answer.status_code == 200, log_path.read_text()
        assert answer.json()["version"].startswith("6.")

        # The proxy faces the network: it runs as the role's unprivileged account.
        proxy_pid = int(proxy_pid_file.read_text())
        status = Path(f"/proc/{proxy_pid}/status").read_text()
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE).group(1))
        assert uid == pwd.getpwnam(deployment.user).pw_uid
        environ = Path(f"/proc/{proxy_pid}/environ").read_bytes()
        assert b"JUPYTERHUB_CRYPT_KEY" not in environ and b"JPY_COOKIE_SECRET" not in environ

        # The admin the inventory named, through the operator's token.
        token = (deployment.data / "admin-token").read_text().strip()
        users = httpx.get(
            f"{url}/users", headers={"Authorization": f"token {token}"}, timeout=10
        ).json()
        assert {u["name"]: u["admin"] for u in users} == {"boss": True}
    finally:
        stop_process_group(hub)
        # JupyterHub starts the proxy in a session of its own and stops it on SIGTERM;
        # should it not have, stop it here.
        if proxy_pid_file.exists():
            try:
                os.kill(int(proxy_pid_file.read_text()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass


def test_second_run_changes_nothing(deployment: Deployment) -> None:
    started = time.monotonic()
    second = deployment.run_again()
    assert second.returncode == 0, second.stdout + second.stderr
    print(f"naic_hub role, second run: {time.monotonic() - started:.0f} s; {recap_line(second)}")
    counts = recap(second)
    assert counts["failed"] == 0, second.stdout
    assert counts["changed"] == 0, second.stdout


def test_check_mode_with_diff_changes_nothing_and_shows_no_secret(deployment: Deployment) -> None:
    result = run_playbook(
        deployment.base / "ansible", "-i", "hosts.yml", "play.yml", "--check", "--diff"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert recap(result)["changed"] == 0, result.stdout
    for line in (deployment.etc / "secrets.env").read_text().splitlines():
        if "=" in line:
            assert line.split("=", 1)[1].strip("'") not in result.stdout + result.stderr


# --- rendered files against golden files ------------------------------------------------

# Fixed settings that exercise every branch of the templates: the nginx front, an OIDC
# login with a secret, admins, extra environment, a rendered slurm.conf, the GPU metrics.
GOLDEN_VARS = {
    "inventory_hostname": "hub.example.org",
    "naic_hub_service_manager": "systemd",
    "naic_hub_port": 8000,
    "naic_hub_admins": ["ola", "kari"],
    "naic_hub_user": "_naic-hub",
    "naic_hub_catalogue_src": "files/catalogue.yaml",
    "naic_hub_env": {"OAUTH_CALLBACK_URL": "https://hub.example.org/hub/oauth_callback"},
    "naic_hub_authenticator_class": "generic-oauth",
    "naic_hub_authenticator_config": {
        "GenericOAuthenticator": {
            "client_id": "naic-hub",
            "scope": ["openid", "email"],
            "allow_all": True,
            "login_service": 'Feide "institution" login — Ålesund',
            "manage_groups": None,
        }
    },
    "naic_hub_hub_config": {"LocalSpawner": {"material_dir": "/srv/notebooks"}},
    "naic_hub_nginx_enabled": True,
    "naic_hub_postgres_host": "db.example.org",
    "naic_hub_postgres_name": "naic_hub",
    "naic_hub_postgres_user": "naic_hub",
    "naic_hub_postgres_password": r"not:a\real-secret",
    "__naic_hub_config_file_found": {
        "stdout": "/opt/naic-hub/venv/lib/python3.11/site-packages/naic/hub/jupyterhub_config.py"
    },
    "__naic_hub_secrets": {
        "CONFIGPROXY_AUTH_TOKEN": "c" * 64,
        "JPY_COOKIE_SECRET": "b" * 64,
        "JUPYTERHUB_CRYPT_KEY": "a" * 64,
        "OAUTH_CLIENT_SECRET": "not-a-real-secret",
    },
    "slurm_submit_host_cluster_name": "saga",
    "slurm_submit_host_controllers": ["ctl1(10.1.0.1)", "ctl2(10.1.0.2)"],
    "slurm_submit_host_slurm_conf": {
        "SlurmctldPort": 6817,
        "SelectType": "select/cons_tres",
        "GresTypes": "gpu",
    },
    "slurm_submit_host_nodes": [
        {"NodeName": "gpu[01-04]", "CPUs": 64, "RealMemory": 512000, "Gres": "gpu:a100:4"}
    ],
    "slurm_submit_host_partitions": [
        {"PartitionName": "accel", "Nodes": "gpu[01-04]", "MaxTime": "1-00:00:00"}
    ],
    "gpu_node_nvml_exporter_enabled": True,
    "__gpu_node_nvidia_smi": "/usr/bin/nvidia-smi",
}

# golden file name -> (role, template)
GOLDEN_FILES = {
    "naic-hub.env": ("naic_hub", "naic-hub.env.j2"),
    "secrets.env": ("naic_hub", "secrets.env.j2"),
    "50-ansible.py.golden": ("naic_hub", "50-ansible.py.j2"),
    "naic-hub-start": ("naic_hub", "naic-hub-start.j2"),
    "naic-hub-proxy": ("naic_hub", "naic-hub-proxy.j2"),
    "naic-hub.service": ("naic_hub", "naic-hub.service.j2"),
    "nginx-naic-hub.conf": ("naic_hub", "nginx-naic-hub.conf.j2"),
    "logrotate-naic-hub": ("naic_hub", "logrotate-naic-hub.j2"),
    "proxy-package.json": ("naic_hub", "proxy-package.json.j2"),
    "pgpass": ("naic_hub", "pgpass.j2"),
    "slurm.conf": ("slurm_submit_host", "slurm.conf.j2"),
    "naic-gpu-metrics": ("gpu_node", "naic-gpu-metrics.j2"),
    "naic-gpu-metrics.service": ("gpu_node", "naic-gpu-metrics.service.j2"),
}


def render_templates(folder: Path, variables: dict, files: dict[str, tuple[str, str]]) -> Path:
    """`files` rendered from the roles' templates with their defaults and `variables`."""
    out = folder / "out"
    out.mkdir()
    write_yaml(folder / "golden-vars.yml", {**variables, "render_out": str(out)})
    write_yaml(
        folder / "render.yml",
        [
            {
                "name": "Render the roles' templates with fixed settings",
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "vars_files": [
                    str(ROLES / role / "defaults" / "main.yml")
                    for role in ("naic_hub", "slurm_submit_host", "gpu_node")
                ],
                "tasks": [
                    {
                        "name": "Render",
                        "ansible.builtin.template": {
                            "src": str(ROLES / role / "templates" / template),
                            "dest": f"{{{{ render_out }}}}/{name}",
                            "mode": "0644",
                        },
                    }
                    for name, (role, template) in files.items()
                ],
            }
        ],
    )
    result = run_playbook(
        folder,
        "-i",
        "localhost,",
        "-e",
        "@golden-vars.yml",
        "-e",
        "ansible_python_interpreter=/usr/bin/python3",
        "render.yml",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The roles' templates rendered with their defaults and GOLDEN_VARS into a folder."""
    out = render_templates(tmp_path_factory.mktemp("ansible-render"), GOLDEN_VARS, GOLDEN_FILES)
    # The login and hub settings as the role's defaults leave them (no authenticator).
    defaults = {k: v for k, v in GOLDEN_VARS.items() if not k.startswith("naic_hub_")}
    default_files = {"50-ansible.py.golden": GOLDEN_FILES["50-ansible.py.golden"]}
    default_out = render_templates(
        tmp_path_factory.mktemp("ansible-render-defaults"), defaults, default_files
    )
    shutil.copyfile(default_out / "50-ansible.py.golden", out / DEFAULT_LOGIN_GOLDEN)
    return out


DEFAULT_LOGIN_GOLDEN = "50-ansible-defaults.py.golden"


@pytest.mark.parametrize("name", sorted([*GOLDEN_FILES, DEFAULT_LOGIN_GOLDEN]))
def test_rendered_file_matches_golden(rendered: Path, name: str) -> None:
    text = (rendered / name).read_bytes()
    golden = GOLDEN / name
    if os.environ.get("NAIC_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        golden.write_bytes(text)
    assert text == golden.read_bytes()


def test_rendered_hub_settings_are_valid_python_that_sets_what_was_asked(rendered: Path) -> None:
    from traitlets.config import Config

    c = Config()
    code = compile((rendered / "50-ansible.py.golden").read_text(), "50-ansible.py", "exec")
    exec(code, {"c": c})  # noqa: S102 - our own rendered file
    oauth = GOLDEN_VARS["naic_hub_authenticator_config"]["GenericOAuthenticator"]
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert dict(c.GenericOAuthenticator) == oauth
    assert c.LocalSpawner.material_dir == "/srv/notebooks"
    # JupyterHub and the ledger on PostgreSQL; the password only in the pgpass file.
    assert c.JupyterHub.db_url == (
        "postgresql+psycopg://naic_hub@/naic_hub?host=db.example.org&passfile=%2Fetc%2F"
        "naic-hub%2Fpgpass&port=5432"
    )
    assert (rendered / "pgpass").read_text() == "*:*:*:*:not\\:a\\\\real-secret\n"


def test_rendered_defaults_leave_the_login_to_naic_hub(rendered: Path) -> None:
    """Without `naic_hub_authenticator_class`, the catalogue decides (OIDC with `identity:`)."""
    from traitlets.config import Config

    c = Config()
    code = compile((rendered / DEFAULT_LOGIN_GOLDEN).read_text(), "50-ansible.py", "exec")
    exec(code, {"c": c})  # noqa: S102 - our own rendered file
    assert "authenticator_class" not in c.JupyterHub
    assert "db_url" not in c.JupyterHub  # SQLite in the data folder, naic-hub's default


def test_role_refuses_the_dev_login_over_a_catalogue_identity(tmp_path: Path) -> None:
    """Before it installs anything: `naic-dev` would replace the catalogue's OIDC login."""
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text(oidc_catalogue("https://idp.example.org", ["ola@uio.no"]))
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "/usr/bin/python3",
        "naic_hub_service_manager": "none",
        "naic_hub_prefix": str(tmp_path / "opt"),
        "naic_hub_catalogue_src": str(catalogue),
        "naic_hub_authenticator_class": "naic-dev",
    }
    write_yaml(tmp_path / "hosts.yml", {"all": {"hosts": {"hub-under-test": host}}})
    write_yaml(
        tmp_path / "play.yml",
        [{"name": "Deploy naic-hub here", "hosts": "all", "roles": ["naic_hub"]}],
    )
    result = run_playbook(tmp_path, "-i", "hosts.yml", "play.yml")
    assert result.returncode != 0
    assert recap(result)["changed"] == 0
    assert "leave naic_hub_authenticator_class empty" in result.stdout, result.stdout
    assert not (tmp_path / "opt").exists()

    # The dev login on purpose passes the role's checks.
    host["naic_hub_env"] = {"NAIC_DEV_LOGIN": "1"}
    write_yaml(tmp_path / "hosts.yml", {"all": {"hosts": {"hub-under-test": host}}})
    checks = {"ansible.builtin.include_role": {"name": "naic_hub", "tasks_from": "validate"}}
    write_yaml(
        tmp_path / "checks.yml",
        [{"name": "Check", "hosts": "all", "gather_facts": False, "tasks": [checks]}],
    )
    checked = run_playbook(tmp_path, "-i", "hosts.yml", "checks.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rendered_scripts_are_valid_shell(rendered: Path) -> None:
    for name in ("naic-hub-start", "naic-hub-proxy", "naic-gpu-metrics"):
        result = subprocess.run(["sh", "-n", str(rendered / name)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_gpu_metrics_script_writes_prometheus_text(rendered: Path, tmp_path: Path) -> None:
    """Against a stand-in nvidia-smi with two GPUs, one of which lacks two sensors."""
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "0, GPU-aaa, NVIDIA A100-SXM4-80GB, 35, 1024, 81920, 41, 75.23"\n'
        'echo "1, GPU-bbb, NVIDIA A100-SXM4-80GB, 0, 0, 81920, [N/A], [Not Supported]"\n'
    )
    fake.chmod(0o755)
    script = (rendered / "naic-gpu-metrics").read_text()
    script = script.replace("/usr/bin/nvidia-smi", str(fake))
    script = script.replace("/var/lib/prometheus/node-exporter", str(tmp_path))
    runnable = tmp_path / "naic-gpu-metrics"
    runnable.write_text(script)
    runnable.chmod(0o755)
    subprocess.run([str(runnable), "--once"], check=True, timeout=30)
    text = (tmp_path / "naic_gpu.prom").read_text()
    labels = '{gpu="0",uuid="GPU-aaa",name="NVIDIA A100-SXM4-80GB"}'
    assert f"naic_gpu_utilization_ratio{labels} 0.35\n" in text
    assert f"naic_gpu_memory_total_bytes{labels} 85899345920\n" in text
    assert f"naic_gpu_power_watts{labels} 75.23\n" in text
    assert 'naic_gpu_power_watts{gpu="1"' not in text
    assert text.count("# TYPE naic_gpu_power_watts gauge") == 1
