"""Sites and what they offer: resources (CPUs, memory, GPUs, hours), how the hub submits
and reaches machines (Slurm submit host, SSH, a node pool's hosts), and when the culler
stops sessions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from naic.hub.catalogue.base import HOST, SAFE_WORD, SUPPORT, URL, VENV_PATH, Model


def _fixed_or_range(value: Any) -> Any:
    """`cpus: 2` is shorthand for a fixed amount: `{min: 2, default: 2, max: 2}`."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError("must be ≥ 1")
        return {"min": value, "default": value, "max": value}
    return value


class Amount(Model):
    """A user-chosen whole amount (CPUs, GB of memory) with bounds and a default."""

    min: int = Field(1, ge=1)
    default: int | None = Field(None, ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Amount:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be ≥ min ({self.min})")
        if self.default is not None and not self.min <= self.default <= self.max:
            raise ValueError(
                f"default ({self.default}) must lie between min ({self.min}) and max ({self.max})"
            )
        return self

    @property
    def initial(self) -> int:
        return self.min if self.default is None else self.default


AmountField = Annotated[Amount, BeforeValidator(_fixed_or_range)]


class Gpu(Model):
    type: str = Field(pattern=SAFE_WORD, description="GPU type as Slurm's gres knows it")
    max: int = Field(ge=1, description="most GPUs one session may ask for")
    default: int = Field(1, ge=0)
    #: What makes resources of different sites comparable (an "any site" request).
    model: str | None = Field(
        None, min_length=1, max_length=80, description="the GPU's model, e.g. NVIDIA A100"
    )
    memory_gb: int | None = Field(None, ge=1, le=4096, description="memory of one GPU")

    @model_validator(mode="after")
    def _default_in_bounds(self) -> Gpu:
        if self.default > self.max:
            raise ValueError(f"default ({self.default}) must be ≤ max ({self.max})")
        return self


class Resource(Model):
    title: str = Field(min_length=1)
    partition: str | None = Field(None, pattern=SAFE_WORD)
    gpu: Gpu | None = None
    cpus: AmountField = Amount(min=1, default=1, max=1)
    memory_gb: AmountField = Amount(min=1, default=2, max=2)
    max_hours: float = Field(gt=0)
    default_hours: float | None = Field(None, gt=0)
    environments: list[str] | None = Field(
        None, description="environments offered on this resource (default: the site's)"
    )
    #: Extending a running session: how often, and by how much; `max_hours` bounds the total.
    max_extensions: int = Field(
        0, ge=0, description="times a running session may be extended (0: not offered)"
    )
    extend_step_hours: float = Field(1.0, gt=0, description="hours one extension adds")
    interconnect: str | None = Field(
        None, min_length=1, max_length=80, description="between nodes, e.g. InfiniBand HDR"
    )

    @model_validator(mode="after")
    def _hours(self) -> Resource:
        if self.default_hours is not None and self.default_hours > self.max_hours:
            raise ValueError(
                f"default_hours ({self.default_hours:g}) must be ≤ max_hours ({self.max_hours:g})"
            )
        if self.max_extensions and self.extend_step_hours > self.max_hours:
            raise ValueError(
                f"extend_step_hours ({self.extend_step_hours:g}) must be ≤ max_hours "
                f"({self.max_hours:g})"
            )
        return self

    @property
    def initial_hours(self) -> float:
        return self.default_hours if self.default_hours is not None else min(1.0, self.max_hours)


class Submit(Model):
    """Where sbatch, squeue and scancel run: on the hub's machine, or on a login node over SSH
    (the site's `ssh:` says how)."""

    host: str = Field("localhost", pattern=HOST)
    via: Literal["local", "ssh"] = "local"
    port: int = Field(22, ge=1, le=65535)

    @model_validator(mode="after")
    def _local_is_here(self) -> Submit:
        if self.via == "local" and self.host not in {"localhost", "127.0.0.1"}:
            raise ValueError(f"host {self.host!r} is another machine: add `via: ssh`")
        return self


class SSH(Model):
    """How the hub logs in to a site's machines: as `user` (root, or an account that may
    `sudo -n` to root and to users), with the private key at `identity_file` (a path on the
    hub, never the key itself), trusting only the host keys in `known_hosts` (unknown keys
    are refused)."""

    user: str = Field("root", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    identity_file: str = Field(pattern=VENV_PATH, description="the hub's private key")
    known_hosts: str = Field(pattern=VENV_PATH, description="the hosts' pinned public keys")
    connect_timeout_s: float = Field(10, gt=0, le=120)


class Host(Model):
    """One machine of a node pool (a cloud VM) and the GPUs it has, numbered 0 … n-1."""

    address: str = Field(pattern=HOST)
    port: int = Field(22, ge=1, le=65535)
    gpus: dict[str, Annotated[int, Field(ge=1, le=64)]] = Field(
        default_factory=dict, description="GPU type → count, e.g. {l40s: 4}"
    )
    #: The GPUs' device files, e.g. "/dev/nvidia{index}": while a session runs, its GPUs'
    #: files belong to its user alone (mode 0600), so no other user's process can open
    #: them; after, root's and everyone's again (0666, NVIDIA's default). Without it,
    #: `CUDA_VISIBLE_DEVICES` is advice that a session's code may ignore.
    gpu_devices: str | None = Field(None, pattern=r"^/dev/[\w./-]*\{index\}[\w./-]*$")


class Culling(Model):
    """When the hub's culler stops a site's sessions, and how early it warns (null: never).

    A session counts as active while its browser, kernels or terminals are, *or* while one of
    its GPUs is busy, so a long training run is never stopped for an idle browser; a session
    whose GPUs all sit below `gpu_busy_percent` for `gpu_idle_minutes` is stopped even while
    its browser tab is open."""

    idle_minutes: float | None = Field(
        120.0, gt=0, description="minutes without browser, kernel or GPU activity before a stop"
    )
    gpu_idle_minutes: float | None = Field(
        60.0, gt=0, description="minutes a session may hold GPUs that it does not use"
    )
    gpu_busy_percent: float = Field(
        1.0, ge=0, lt=100, description="a GPU whose utilisation exceeds this is in use"
    )
    max_age_hours: float | None = Field(
        None, gt=0, description="hours after which any session is stopped"
    )
    warn_minutes: float = Field(10.0, gt=0, description="minutes of warning before a stop")
    time_left_notice_minutes: float = Field(
        30.0, ge=0, description='the session says "N minutes left" this long before its end'
    )

    @model_validator(mode="after")
    def _warn_fits(self) -> Culling:
        for name in ("idle_minutes", "gpu_idle_minutes"):
            limit = getattr(self, name)
            if limit is not None and self.warn_minutes >= limit:
                raise ValueError(
                    f"warn_minutes ({self.warn_minutes:g}) must be shorter than {name} "
                    f"({limit:g}), or the warning would come before anything was idle"
                )
        return self


class Site(Model):
    title: str = Field(min_length=1)
    backend: Literal["local", "slurm", "nodes"]
    submit: Submit | None = None
    ssh: SSH | None = Field(None, description="how the hub reaches this site's machines")
    hosts: dict[str, Host] | None = Field(None, description="a node pool's machines")
    when_full: Literal["wait", "refuse"] = Field(
        "wait", description="a node pool with no free GPU: queue the session, or say no"
    )
    culling: Culling = Field(default_factory=Culling, description="when sessions are stopped")
    accounting: Literal["hub", "slurm"] = Field(
        "hub",
        description="where GPU-hours used here are counted against projects' budgets: the "
        "hub's ledger (its sessions only), or Slurm's accounting (slurmdbd: every job charged "
        "to the project's Slurm account, `sbatch -A` outside the hub included)",
    )
    gpus_per_node: dict[str, Annotated[int, Field(ge=1)]] | None = Field(
        None, description="GPUs of each type one node has, e.g. {a100: 4}"
    )
    environments: list[str] | None = Field(
        None, description="environments offered at this site (default: all)"
    )
    docs_url: str | None = Field(
        None, pattern=URL, description="the site's user documentation, linked on the home page"
    )
    support_url: str | None = Field(
        None,
        pattern=SUPPORT,
        description="where users report a problem: a web page, or mailto:ADDRESS (the hub "
        "then prefills the message with the session's facts)",
    )
    session_env: str | None = Field(
        None,
        pattern=VENV_PATH,
        description="the venv on this site's nodes with naic-hub's `session` extra, which "
        "every session's server runs from; the environments are then kernels (the chosen "
        "one the default) and need no naic-hub. Unset: the server runs from the chosen "
        "environment, which must contain naic-hub",
    )
    transfer_partition: str | None = Field(
        None,
        pattern=SAFE_WORD,
        description="a Slurm partition for data transfers (`naic-data stage --job`); "
        "unset: the session's own partition",
    )
    resources: dict[str, Resource] = Field(min_length=1)

    @model_validator(mode="after")
    def _submit_fits_backend(self) -> Site:
        if self.backend != "slurm" and self.submit is not None:
            raise ValueError("only Slurm sites have a submit host; remove `submit`")
        if self.backend != "slurm" and self.accounting == "slurm":
            raise ValueError("only Slurm sites have Slurm's accounting: use `accounting: hub`")
        if self.backend == "slurm" and self.submit is None:
            object.__setattr__(self, "submit", Submit())
        if self.backend == "nodes" and not self.hosts:
            raise ValueError("a `nodes` site needs `hosts`, the machines of its pool")
        if self.backend != "nodes" and self.hosts is not None:
            raise ValueError("only `nodes` sites have `hosts`")
        needs_ssh = self.backend == "nodes" or (self.submit and self.submit.via == "ssh")
        if needs_ssh and self.ssh is None:
            raise ValueError(
                "this site is reached over SSH: add `ssh` (identity_file, known_hosts)"
            )
        if self.backend == "nodes" and self.gpus_per_node is None:
            # The most GPUs of each type one host has: what a single session can ask for.
            most: dict[str, int] = {}
            for h in self.hosts.values():
                for kind, n in h.gpus.items():
                    most[kind] = max(most.get(kind, 0), n)
            object.__setattr__(self, "gpus_per_node", most)
        return self
