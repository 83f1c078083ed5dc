"""Shared fixtures: the Slurm test cluster (tests/slurm_cluster.py) and a real hub process."""

pytest_plugins = [
    "tests.slurm_cluster",
    "tests.hub_process",
    "tests.postgres",
    "tests.oidc_provider",
    "tests.sshd",
    "tests.ldap_server",
]
