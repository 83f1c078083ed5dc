"""The service catalogue: the DESIGN.md example validates, typed access, and the exact
message every broken catalogue gives (an operator reads these; they are the interface)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from naic.hub import catalogue
from naic.hub.catalogue import Amount, CatalogueError, Problem, load, parse

REPO = Path(__file__).resolve().parents[2]
DEMO_FILE = REPO / "examples" / "catalogue.yaml"
TESTCLUSTER_FILE = REPO / "examples" / "catalogue-testcluster.yaml"
DESIGN_MD = REPO.parent / "shared" / "DESIGN.md"
DEMO = DEMO_FILE.read_text(encoding="utf-8")


def edit(old: str, new: str, text: str = DEMO) -> str:
    """The demo with one change; `old` must occur exactly once so the edit is the one meant."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def design_yaml_block() -> str:
    """The ```yaml block of DESIGN.md's section "Service catalogue: the shape"."""
    doc = DESIGN_MD.read_text(encoding="utf-8")
    section = doc.split("## Service catalogue: the shape", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match, "DESIGN.md's catalogue section has no ```yaml block"
    return match.group(1)


# --- the example validates ------------------------------------------------------------


def test_the_demo_file_validates():
    cat = load(DEMO_FILE)
    assert cat.name == "NAIC demo"
    assert list(cat.sites) == ["local", "saga"]


def test_the_demo_file_is_the_design_example():
    """DESIGN.md: "this example must keep validating and the README shows it"."""
    if not DESIGN_MD.exists():  # a checkout without the shared notes: the file still counts
        parse(DEMO, DEMO_FILE)
        return
    block = design_yaml_block()
    body = "".join(line for line in DEMO.splitlines(keepends=True) if not line.startswith("#"))
    assert body == block, "examples/catalogue.yaml differs from the YAML block in DESIGN.md"
    assert parse(block, "DESIGN.md") == parse(DEMO, DEMO_FILE)


@pytest.mark.parametrize(
    "path",
    [TESTCLUSTER_FILE, catalogue.DEFAULT_CATALOGUE],
    ids=["testcluster", "embedded-default"],
)
def test_the_other_shipped_catalogues_validate(path):
    load(path)


# --- typed access ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def cat():
    return parse(DEMO, "demo.yaml")


def test_gpu_resource(cat):
    a100 = cat.sites["saga"].resources["a100"]
    assert a100.gpu.max == 4
    assert a100.gpu.type == "a100"
    assert a100.gpu.default == 1
    assert a100.partition == "accel"
    assert a100.max_hours == 24


def test_amount_range_takes_min_1(cat):
    a100 = cat.sites["saga"].resources["a100"]
    assert a100.cpus == Amount(min=1, default=8, max=32)
    assert a100.cpus.initial == 8
    assert a100.memory_gb == Amount(min=1, default=32, max=256)


def test_amount_shorthand_is_fixed(cat):
    small = cat.sites["local"].resources["cpu-small"]
    assert (small.cpus.min, small.cpus.default, small.cpus.max) == (2, 2, 2)
    assert (small.memory_gb.min, small.memory_gb.default, small.memory_gb.max) == (4, 4, 4)
    assert small.gpu is None
    assert small.partition is None


def test_amount_without_default_starts_at_min():
    text = edit("cpus: {default: 8, max: 32}", "cpus: {min: 4, max: 32}")
    cpus = parse(text).sites["saga"].resources["a100"].cpus
    assert (cpus.default, cpus.initial) == (None, 4)


def test_resource_defaults():
    text = "name: x\nsites:\n  here:\n    title: H\n    backend: local\n"
    text += "    resources:\n      r: {title: R, max_hours: 8}\n"
    r = parse(text).sites["here"].resources["r"]
    assert r.cpus == Amount(min=1, default=1, max=1)
    assert r.memory_gb == Amount(min=1, default=2, max=2)
    assert r.environments is None


def test_culling_defaults_and_never(cat):
    c = cat.sites["saga"].culling
    assert (c.idle_minutes, c.gpu_idle_minutes, c.max_age_hours, c.warn_minutes) == (
        120.0,
        60.0,
        None,
        10.0,
    )
    text = edit(
        "    backend: slurm\n",
        "    backend: slurm\n    culling: {idle_minutes: null, gpu_idle_minutes: 20}\n",
    )
    c = parse(text, "c.yaml").sites["saga"].culling
    assert (c.idle_minutes, c.gpu_idle_minutes) == (None, 20.0)


def test_hours(cat):
    a100 = cat.sites["saga"].resources["a100"]
    assert a100.default_hours is None
    assert a100.initial_hours == 1.0  # no default_hours: one hour
    tc = load(TESTCLUSTER_FILE).sites["testcluster"].resources["a100"]
    assert (tc.default_hours, tc.initial_hours) == (2, 2)
    short = parse(edit("max_hours: 24", "max_hours: 0.5")).sites["saga"].resources["a100"]
    assert short.initial_hours == 0.5  # never more than max_hours


def test_submit(cat):
    assert cat.sites["local"].submit is None
    assert (cat.sites["saga"].submit.host, cat.sites["saga"].submit.via) == ("localhost", "local")
    no_submit = parse(edit("    submit: {host: localhost}", "    # no submit"))
    assert no_submit.sites["saga"].submit.host == "localhost"  # a Slurm site gets the default


def test_environments_storage_projects(cat):
    assert cat.environments["python"].venv == "/opt/naic/envs/base"
    assert cat.environments["python"].modules == []
    assert cat.environments["pytorch"].modules == ["PyTorch/2.1.2-foss-2023a-CUDA-12.1.1"]
    assert cat.storage["home"].path == "/home/{username}"
    assert cat.storage["home"].quota_gb == 20
    assert cat.storage["scratch"].purge_days == 21
    assert cat.storage["datasets"].read_only is True
    assert cat.storage["home"].read_only is False
    project = cat.projects["nn1234k"]
    assert (project.slurm_account, project.gpu_hours) == ("nn1234k", 1000)
    assert (project.members, project.groups) == (["ola@uio.no"], ["fc:org:uio.no"])


def test_environments_for(cat):
    assert cat.environments_for("local", "cpu-small") == ["python", "pytorch"]
    assert cat.environments_for("saga", "a100") == ["python", "pytorch"]
    site_level = parse(
        edit("    backend: slurm\n", "    backend: slurm\n    environments: [pytorch]\n")
    )
    assert site_level.environments_for("saga", "a100") == ["pytorch"]
    assert site_level.environments_for("local", "cpu-small") == ["python", "pytorch"]
    resource_level = parse(
        edit("max_hours: 24\n", "max_hours: 24\n        environments: [python]\n")
    )
    assert resource_level.environments_for("saga", "a100") == ["python"]


def test_models_are_frozen(cat):
    with pytest.raises(ValidationError):
        cat.sites["saga"].resources["a100"].max_hours = 48


# --- broken catalogues: the exact message ---------------------------------------------

H1 = "c.yaml: the service catalogue has 1 problem:\n  c.yaml: "
SAFE = "must be one word of letters, digits and . _ + / : - (no spaces or quotes)"
NAME = "names must be lowercase letters, digits, - or _, starting with a letter"
UNKNOWN_ENV = "names no environment of this catalogue (known: python, pytorch)"
SITE_ENVS = "    backend: slurm\n    environments: [python, tensorflow]\n"
RES_ENVS = "max_hours: 24\n        environments: [jax]\n"
GPUS_2 = "    backend: slurm\n    gpus_per_node: {a100: 2}\n"
GPUS_V100 = "    backend: slurm\n    gpus_per_node: {v100: 4}\n"
LOCAL_GPU = "gpu: {type: a100, max: 1}, cpus: 2,"
PYTHON_ENV = '{title: "Python 3", venv: /opt/naic/envs/base}'
PYTORCH_MODULE = '["PyTorch/2.1.2-foss-2023a-CUDA-12.1.1"]'

BROKEN = [
    pytest.param(
        edit('groups: ["fc:org:uio.no"]}', 'groups: ["fc:org:uio.no"], sites: [fram]}'),
        H1 + "projects.nn1234k.sites[0]: names no site of this catalogue (known: local, saga) "
        "(got 'fram')",
        id="project-at-an-unknown-site",
    ),
    pytest.param(
        edit("    backend: slurm\n", "    backend: slurm\n    culling: {idle_minutes: 5}\n"),
        H1 + "sites.saga.culling: warn_minutes (10) must be shorter than idle_minutes (5), "
        "or the warning would come before anything was idle",
        id="culling-warning-longer-than-the-timeout",
    ),
    pytest.param(
        edit("    backend: slurm\n", "    backend: slurm\n    culling: {gpu_idle_minutes: 0}\n"),
        H1 + "sites.saga.culling.gpu_idle_minutes: must be > 0 (got 0)",
        id="culling-zero-timeout",
    ),
    pytest.param(
        edit("max: 4}", "max: 0}"),
        H1 + "sites.saga.resources.a100.gpu.max: must be ≥ 1 (got 0)",
        id="gpu-max-0",
    ),
    pytest.param(
        edit("max_hours: 24\n", "max_hours: 24\n        default_hour: 2\n"),
        H1 + "sites.saga.resources.a100.default_hour: is not a known field; "
        "did you mean `default_hours`? (got 2)",
        id="unknown-field-did-you-mean",
    ),
    pytest.param(
        edit("max_hours: 24", "max_hour: 24"),
        "c.yaml: the service catalogue has 2 problems:\n"
        "  c.yaml: sites.saga.resources.a100.max_hours: is required\n"
        "  c.yaml: sites.saga.resources.a100.max_hour: is not a known field; "
        "did you mean `max_hours`? (got 24)",
        id="misspelt-required-field",
    ),
    pytest.param(
        edit("storage:\n", "storge:\n"),
        H1 + "storge: is not a known field; did you mean `storage`?",
        id="unknown-top-level-field",
    ),
    pytest.param(
        edit("    backend: slurm\n", "    backend: slurm\n    gpu_per_node: {a100: 4}\n"),
        H1 + "sites.saga.gpu_per_node: is not a known field; did you mean `gpus_per_node`?",
        id="unknown-site-field",
    ),
    pytest.param(
        # A resource named like a field (`gpu`) must not send the hint to the Gpu model.
        edit("      a100:\n", "      gpu:\n", edit("partition: accel", "partiton: accel")),
        H1 + "sites.saga.resources.gpu.partiton: is not a known field; "
        "did you mean `partition`? (got 'accel')",
        id="did-you-mean-in-resource-named-gpu",
    ),
    pytest.param(
        # ...nor a resource named `cpus` to the Amount model: `max` is no field of a resource.
        edit(
            "      a100:\n",
            "      cpus:\n",
            edit("max_hours: 24\n", "max_hours: 24\n        mx: 3\n"),
        ),
        H1 + "sites.saga.resources.cpus.mx: is not a known field (got 3)",
        id="no-wrong-hint-in-resource-named-cpus",
    ),
    pytest.param(
        edit("        max_hours: 24\n", ""),
        H1 + "sites.saga.resources.a100.max_hours: is required",
        id="missing-max-hours",
    ),
    pytest.param(
        "name: NAIC demo\n",
        H1 + "sites: is required",
        id="missing-sites",
    ),
    pytest.param(
        edit("max_hours: 24", "max_hours: a day"),
        H1 + "sites.saga.resources.a100.max_hours: must be a number (got 'a day')",
        id="text-for-number",
    ),
    pytest.param(
        edit("cpus: {default: 8, max: 32}", "cpus: {default: eight, max: 32}"),
        H1 + "sites.saga.resources.a100.cpus.default: must be a whole number (got 'eight')",
        id="text-for-whole-number",
    ),
    pytest.param(
        edit("purge_days: 21", "purge_days: 2.5"),
        H1 + "storage.scratch.purge_days: must be a whole number (got 2.5)",
        id="fraction-for-whole-number",
    ),
    pytest.param(
        edit("read_only: true", "read_only: maybe"),
        H1 + "storage.datasets.read_only: must be true or false (got 'maybe')",
        id="text-for-bool",
    ),
    pytest.param(
        edit("gpu: {type: a100, max: 4}", "gpu: yes"),
        H1 + "sites.saga.resources.a100.gpu: must be a mapping of settings (got true)",
        id="bool-for-mapping",
    ),
    pytest.param(
        edit('members: ["ola@uio.no"]', "members: ola@uio.no"),
        H1 + "projects.nn1234k.members: must be a list (got 'ola@uio.no')",
        id="text-for-list",
    ),
    pytest.param(
        "name: x\nsites: [local, saga]\n",
        H1 + "sites: must be a mapping of names to settings (got [local, saga])",
        id="list-for-sites",
    ),
    pytest.param(
        edit("title: NVIDIA A100", 'title: ""'),
        H1 + "sites.saga.resources.a100.title: must not be empty (got '')",
        id="empty-title",
    ),
    pytest.param(
        edit(
            '    resources:\n      cpu-small: {title: "2 CPUs, 4 GB", cpus: 2, '
            "memory_gb: 4, max_hours: 8}\n",
            "    resources: {}\n",
        ),
        H1 + "sites.local.resources: must not be empty",
        id="no-resources",
    ),
    pytest.param(
        edit("backend: slurm", "backend: pbs"),
        H1 + "sites.saga.backend: must be one of: local, slurm, nodes (got 'pbs')",
        id="unknown-backend",
    ),
    pytest.param(
        edit("  saga:\n", "  Saga:\n"),
        H1 + f"sites.Saga: {NAME} (got 'Saga')",
        id="site-name-uppercase",
    ),
    pytest.param(
        edit("      a100:\n", "      1a100:\n"),
        H1 + f"sites.saga.resources.1a100: {NAME} (got '1a100')",
        id="resource-name-starts-with-digit",
    ),
    pytest.param(
        edit("  pytorch: {", "  PyTorch: {"),
        H1 + f"environments.PyTorch: {NAME} (got 'PyTorch')",
        id="environment-name-uppercase",
    ),
    pytest.param(
        edit("    backend: slurm\n", SITE_ENVS),
        H1 + f"sites.saga.environments[1]: {UNKNOWN_ENV} (got 'tensorflow')",
        id="site-environment-unknown",
    ),
    pytest.param(
        edit("max_hours: 24\n", RES_ENVS),
        H1 + f"sites.saga.resources.a100.environments[0]: {UNKNOWN_ENV} (got 'jax')",
        id="resource-environment-unknown",
    ),
    pytest.param(
        edit(
            "    backend: slurm\n",
            "    backend: slurm\n    environments: [python]\n",
            edit("max_hours: 24\n", "max_hours: 24\n        environments: [pytorch]\n"),
        ),
        H1 + "sites.saga.resources.a100.environments[0]: is not offered by its site "
        "(got 'pytorch')",
        id="resource-environment-not-at-site",
    ),
    pytest.param(
        edit("    backend: slurm\n", GPUS_2),
        H1 + "sites.saga.resources.a100.gpu.max: must be ≤ 2, "
        "the a100 GPUs one node of this site has (got 4)",
        id="gpu-max-over-node",
    ),
    pytest.param(
        edit("    backend: slurm\n", GPUS_V100),
        H1 + "sites.saga.resources.a100.gpu.type: is not a GPU type of this site, "
        "which has: v100 (got 'a100')",
        id="gpu-type-not-on-site",
    ),
    pytest.param(
        edit("cpus: 2,", LOCAL_GPU),
        H1 + "sites.local.resources.cpu-small.gpu: the hub's own machine declares no GPUs; "
        "add `gpus_per_node` to its site",
        id="gpu-on-local-site-without-gpus-per-node",
    ),
    pytest.param(
        edit("max: 4}", "max: 4, default: 8}"),
        H1 + "sites.saga.resources.a100.gpu: default (8) must be ≤ max (4)",
        id="gpu-default-over-max",
    ),
    pytest.param(
        edit("        partition: accel\n", ""),
        H1 + "sites.saga.resources.a100.partition: is required on a Slurm site",
        id="slurm-resource-without-partition",
    ),
    pytest.param(
        edit("cpus: 2,", "partition: normal, cpus: 2,"),
        H1 + "sites.local.resources.cpu-small.partition: only Slurm resources have a partition "
        "(got 'normal')",
        id="partition-on-local-resource",
    ),
    pytest.param(
        edit("partition: accel", 'partition: "accel gpu"'),
        H1 + f"sites.saga.resources.a100.partition: {SAFE} (got 'accel gpu')",
        id="partition-with-space",
    ),
    pytest.param(
        edit('"/home/{username}"', '"/home/{user}"'),
        H1 + "storage.home.path: may use only {username} and {project}, not {user} "
        "(got '/home/{user}')",
        id="storage-unknown-placeholder",
    ),
    pytest.param(
        edit("path: /datasets", "path: datasets"),
        H1 + "storage.datasets.path: must be an absolute path (got 'datasets')",
        id="storage-relative-path",
    ),
    pytest.param(
        edit('"/home/{username}"', '"/home/{username"'),
        H1 + "storage.home.path: has a `{` or `}` that is not part of a {username} or "
        "{project} placeholder (got '/home/{username')",
        id="storage-unbalanced-brace",
    ),
    pytest.param(
        edit("quota_gb: 20", "quota_gb: 0"),
        H1 + "storage.home.quota_gb: must be > 0 (got 0)",
        id="storage-quota-zero",
    ),
    pytest.param(
        edit(PYTHON_ENV, '{title: "Python 3"}'),
        H1 + "environments.python: needs `modules` (Lmod module names), `venv` (a path) or "
        "`conda` (a prefix)",
        id="environment-without-venv-or-modules",
    ),
    pytest.param(
        edit(PYTHON_ENV, '{title: "Python 3", kind: conda, venv: /opt/naic/envs/base}'),
        H1 + "environments.python: is of kind conda but has no `conda`",
        id="environment-kind-without-its-field",
    ),
    pytest.param(
        edit(PYTHON_ENV, '{title: "P", venv: /opt/naic/envs/base, conda: /opt/conda}'),
        H1 + "environments.python: has both `venv` and `conda`: an environment is one or the other",
        id="environment-venv-and-conda",
    ),
    pytest.param(
        edit(PYTHON_ENV, '{title: "P", conda: /opt/conda/envs/ml}'),
        H1 + "environments.python.conda: a conda environment is a kernel only: site saga "
        "needs `session_env` (the venv with naic-hub[session] its servers run from)",
        id="conda-needs-a-session-env",
    ),
    pytest.param(
        edit("venv: /opt/naic/envs/base", "venv: envs/base"),
        H1 + "environments.python.venv: must be an absolute path of letters, digits and "
        ". _ + / - (got 'envs/base')",
        id="venv-relative",
    ),
    pytest.param(
        edit(PYTORCH_MODULE, '["x; rm -rf /"]'),
        H1 + f"environments.pytorch.modules[0]: {SAFE} (got 'x; rm -rf /')",
        id="module-shell-metacharacter",
    ),
    pytest.param(
        edit("slurm_account: nn1234k", 'slurm_account: "nn 1234k"'),
        H1 + f"projects.nn1234k.slurm_account: {SAFE} (got 'nn 1234k')",
        id="slurm-account-with-space",
    ),
    pytest.param(
        edit("max_hours: 24\n", "max_hours: 24\n        max_hours: 48\n"),
        H1 + "line 22, column 9: is not valid YAML: the key 'max_hours' appears twice "
        "in one mapping",
        id="duplicate-key",
    ),
    pytest.param(
        edit("  saga:\n", "  saga\n"),
        H1 + "line 11, column 10: is not valid YAML: could not find expected ':'",
        id="yaml-syntax-error",
    ),
    pytest.param(
        "name: x\n\tsites: {}\n",
        H1 + "line 2, column 1: is not valid YAML: found character '\\t' that cannot start "
        "any token",
        id="yaml-tab",
    ),
    pytest.param("", H1 + "the file is empty", id="empty-file"),
    pytest.param("# nothing yet\n", H1 + "the file is empty", id="only-comments"),
    pytest.param(
        "- name: NAIC demo\n",
        H1 + "the file must be a mapping with `name` and `sites` at the top",
        id="top-level-list",
    ),
    pytest.param(
        "NAIC demo\n",
        H1 + "the file must be a mapping with `name` and `sites` at the top",
        id="top-level-text",
    ),
    pytest.param(
        edit("cpus: {default: 8, max: 32}", "cpus: {default: 64, max: 32}"),
        H1 + "sites.saga.resources.a100.cpus: default (64) must lie between min (1) and max (32)",
        id="cpus-default-over-max",
    ),
    pytest.param(
        edit("cpus: {default: 8, max: 32}", "cpus: {min: 64, max: 32}"),
        H1 + "sites.saga.resources.a100.cpus: max (32) must be ≥ min (64)",
        id="cpus-min-over-max",
    ),
    pytest.param(
        edit("cpus: 2,", "cpus: 0,"),
        H1 + "sites.local.resources.cpu-small.cpus: must be ≥ 1 (got 0)",
        id="cpus-shorthand-zero",
    ),
    pytest.param(
        edit("max_hours: 24\n", "max_hours: 24\n        default_hours: 48\n"),
        H1 + "sites.saga.resources.a100: default_hours (48) must be ≤ max_hours (24)",
        id="default-hours-over-max",
    ),
    pytest.param(
        edit(
            "max_hours: 24\n",
            "max_hours: 24\n        max_extensions: 2\n        extend_step_hours: 30\n",
        ),
        H1 + "sites.saga.resources.a100: extend_step_hours (30) must be ≤ max_hours (24)",
        id="extend-step-over-max",
    ),
    pytest.param(
        edit("max_hours: 24\n", "max_hours: 24\n        max_extensions: -1\n"),
        H1 + "sites.saga.resources.a100.max_extensions: must be ≥ 0 (got -1)",
        id="max-extensions-negative",
    ),
    pytest.param(
        edit("max_hours: 24", "max_hours: 0"),
        H1 + "sites.saga.resources.a100.max_hours: must be > 0 (got 0)",
        id="max-hours-zero",
    ),
    pytest.param(
        edit("{host: localhost}", "{host: login.saga.example}"),
        H1 + "sites.saga.submit: host 'login.saga.example' is another machine: add `via: ssh`",
        id="submit-host-not-localhost",
    ),
    pytest.param(
        edit("{host: localhost}", "{host: login.saga.example, via: ssh}"),
        H1 + "sites.saga: this site is reached over SSH: add `ssh` (identity_file, known_hosts)",
        id="submit-via-ssh-needs-ssh",
    ),
    pytest.param(
        edit("    backend: local\n", "    backend: nodes\n"),
        H1 + "sites.local: a `nodes` site needs `hosts`, the machines of its pool",
        id="nodes-without-hosts",
    ),
    pytest.param(
        edit("    backend: local\n", "    backend: local\n    submit: {host: localhost}\n"),
        H1 + "sites.local: only Slurm sites have a submit host; remove `submit`",
        id="submit-on-local-site",
    ),
    pytest.param(
        edit("backend: local", "backend: pbs", edit("max: 4}", "max: 0}"))
        .replace("quota_gb: 20", "quota_gb: -1")
        .replace("  pytorch: {", "  PyTorch: {"),
        "c.yaml: the service catalogue has 4 problems:\n"
        f"  c.yaml: environments.PyTorch: {NAME} (got 'PyTorch')\n"
        "  c.yaml: sites.local.backend: must be one of: local, slurm, nodes (got 'pbs')\n"
        "  c.yaml: sites.saga.resources.a100.gpu.max: must be ≥ 1 (got 0)\n"
        "  c.yaml: storage.home.quota_gb: must be > 0 (got -1)",
        id="several-problems-in-order",
    ),
    pytest.param(
        edit("    backend: slurm\n", SITE_ENVS, edit("        partition: accel\n", ""))
        .replace("max_hours: 24\n", RES_ENVS)
        .replace("  saga:\n", "  Saga:\n"),
        "c.yaml: the service catalogue has 4 problems:\n"
        f"  c.yaml: sites.Saga: {NAME} (got 'Saga')\n"
        f"  c.yaml: sites.Saga.environments[1]: {UNKNOWN_ENV} (got 'tensorflow')\n"
        f"  c.yaml: sites.Saga.resources.a100.environments[0]: {UNKNOWN_ENV} (got 'jax')\n"
        "  c.yaml: sites.Saga.resources.a100.partition: is required on a Slurm site",
        id="several-cross-section-problems-in-order",
    ),
    pytest.param(
        DEMO + "identity: {issuer: https://idp.example.org, usernames: mapping}\n",
        H1 + "identity: usernames: mapping needs mapping_file (YAML of identity: name)",
        id="identity-mapping-without-file",
    ),
    pytest.param(
        DEMO + "identity: {issuer: https://idp.example.org}\n",
        H1 + "identity: usernames: local_part needs domains: the identity domains whose local "
        "parts are this site's user names (e.g. [uio.no]); otherwise the same name at another "
        "institution would take the account",
        id="identity-local-part-without-domains",
    ),
    pytest.param(
        DEMO + "identity: {issuer: https://idp.example.org, domains: [UiO.no]}\n",
        H1 + "identity: domains: 'UiO.no' is not a lower-case domain such as uio.no",
        id="identity-domain-not-lower-case",
    ),
    pytest.param(
        DEMO + "identity: {issuer: https://idp.example.org, usernames: ldap}\n",
        H1 + "identity: usernames: ldap needs ldap: {url, base_dn, …} (the user register)",
        id="identity-ldap-without-register",
    ),
    pytest.param(
        DEMO + "identity: {issuer: https://idp.example.org, usernames: ldap,\n"
        "  ldap: {url: 'http://ldap.example', base_dn: 'ou=people,dc=example'}}\n",
        H1 + "identity.ldap.url: must match ^ldaps?://[^\\s]+$ (got 'http://ldap.example')",
        id="identity-ldap-url",
    ),
    pytest.param(
        DEMO + "identity: {issuer: idp.example.org}\n",
        H1 + "identity.issuer: must be an http:// or https:// URL without spaces "
        "(got 'idp.example.org')",
        id="identity-issuer-not-a-url",
    ),
    pytest.param(
        DEMO + "identity: {issuer: https://idp.example.org, client_secret_env: my-secret}\n",
        H1 + "identity.client_secret_env: must be an environment variable name "
        "(capitals, digits and _) (got 'my-secret')",
        id="identity-secret-env-name",
    ),
    pytest.param(
        edit("gpu_hours: 1000,", "gpu_hours: 1000, budget_period: weekly,"),
        H1 + "projects.nn1234k.budget_period: must be one of: month, quarter, year, never "
        "(got 'weekly')",
        id="budget-period-unknown",
    ),
]


@pytest.mark.parametrize(("text", "message"), BROKEN)
def test_broken_catalogue_message(text, message):
    with pytest.raises(CatalogueError) as err:
        parse(text, "c.yaml")
    assert str(err.value) == message
    assert err.value.message == message
    assert err.value.file == "c.yaml"


def test_problems_are_structured():
    text = edit("backend: local", "backend: pbs", edit("max: 4}", "max: 0}"))
    with pytest.raises(CatalogueError) as err:
        parse(text, "c.yaml")
    assert err.value.problems == [
        Problem("sites.local.backend", "must be one of: local, slurm, nodes", "pbs", True),
        Problem("sites.saga.resources.a100.gpu.max", "must be ≥ 1", 0, True),
    ]


def test_a_long_value_is_shortened():
    long = "x" * 80
    with pytest.raises(CatalogueError) as err:
        parse(edit("backend: slurm", f"backend: {long}"), "c.yaml")
    assert str(err.value) == (
        H1 + f"sites.saga.backend: must be one of: local, slurm, nodes (got '{'x' * 56}...)"
    )


def test_parse_names_the_file_it_was_given():
    with pytest.raises(CatalogueError) as err:
        parse("")
    assert str(err.value) == (
        "<catalogue>: the service catalogue has 1 problem:\n  <catalogue>: the file is empty"
    )


# --- load -----------------------------------------------------------------------------


def test_load_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(CatalogueError) as err:
        load(missing)
    assert str(err.value) == (
        f"{missing}: the service catalogue has 1 problem:\n"
        f"  {missing}: cannot be read: No such file or directory"
    )


def test_load_file_not_utf8(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: Tromsø\n".encode("latin-1"))
    with pytest.raises(CatalogueError) as err:
        load(bad)
    assert str(err.value) == (
        f"{bad}: the service catalogue has 1 problem:\n"
        f"  {bad}: cannot be read: it is not UTF-8 text (byte 0xf8 at offset 11)"
    )


def test_load_names_the_file_in_problems(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(edit("max: 4}", "max: 0}"), encoding="utf-8")
    with pytest.raises(CatalogueError) as err:
        load(path)
    assert str(err.value) == (
        f"{path}: the service catalogue has 1 problem:\n"
        f"  {path}: sites.saga.resources.a100.gpu.max: must be ≥ 1 (got 0)"
    )


# --- the workshop policy --------------------------------------------------------------


def test_without_a_workshop_policy_instructors_have_only_the_resources_limits():
    assert parse(DEMO, "c.yaml").workshops is None


def test_a_workshop_policy_with_defaults_for_what_it_does_not_say():
    cat = parse(DEMO + "workshops: {max_seats: 20, max_hours: 6}\n", "c.yaml")
    p = cat.workshops
    assert (p.max_seats, p.max_gpus_per_seat, p.max_hours, p.max_active_per_instructor) == (
        20,
        1,
        6,
        2,
    )


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        ("{max_seats: 0}", "workshops.max_seats: must be ≥ 1 (got 0)"),
        ("{max_hours: 0}", "workshops.max_hours: must be > 0 (got 0)"),
        ("{max_active_per_instructor: 0}", "workshops.max_active_per_instructor: must be ≥ 1"),
        ("{max_seat: 40}", "workshops.max_seat:"),
    ],
)
def test_a_broken_workshop_policy_is_named(policy, problem):
    with pytest.raises(CatalogueError) as err:
        parse(DEMO + f"workshops: {policy}\n", "c.yaml")
    assert str(err.value).startswith(H1 + problem), str(err.value)
