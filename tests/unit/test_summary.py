"""`render_summary`: the one-screen text `naic catalogue check` prints, byte for byte."""

from __future__ import annotations

from pathlib import Path

from naic.hub.app.summary import render_summary
from naic.hub.catalogue import load, parse

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"

DEMO_SUMMARY = """\
examples/catalogue.yaml: OK — NAIC demo
Sites (2, 2 resources):
  local            This machine (local)
    cpu-small      2 CPUs, 4 GB             2 CPUs, 4 GB, ≤ 8 h
  saga             Saga (Sigma2) (slurm via localhost)
    a100           NVIDIA A100              partition accel, up to 4 × a100, 8 CPUs (up to 32), \
32 GB (up to 256), ≤ 24 h
Environments: python (Python 3; venv /opt/naic/envs/base), pytorch (PyTorch + CUDA; module \
PyTorch/2.1.2-foss-2023a-CUDA-12.1.1)
Storage (4):
  home             /home/{username} (20 GB)
  project          /cluster/projects/{project} (1000 GB)
  scratch          /cluster/work/{username} (purged after 21 days)
  datasets         /datasets (read-only)
Projects (1):
  nn1234k          Deep learning for weather — 1000 GPU-hours per year, 1 member, 1 group
"""


def test_demo_summary_golden():
    cat = load(REPO / "examples" / "catalogue.yaml")
    out = render_summary(cat, "examples/catalogue.yaml")
    assert out == DEMO_SUMMARY
    assert out.encode() == (GOLDEN / "summary-demo.txt").read_bytes()


def test_testcluster_summary_golden():
    cat = load(REPO / "examples" / "catalogue-testcluster.yaml")
    out = render_summary(cat, "examples/catalogue-testcluster.yaml")
    assert out.encode() == (GOLDEN / "summary-testcluster.txt").read_bytes()


def test_summary_is_pure():
    text = (REPO / "examples" / "catalogue.yaml").read_text(encoding="utf-8")
    assert render_summary(parse(text), "x") == render_summary(parse(text), "x")


def test_minimal_catalogue_summary():
    cat = parse(
        "name: Tiny\nsites:\n  here:\n    title: Here\n    backend: local\n"
        "    resources:\n      r: {title: One, max_hours: 1.5}\n"
    )
    assert render_summary(cat, "t.yaml") == (
        "t.yaml: OK — Tiny\n"
        "Sites (1, 1 resource):\n"
        "  here             Here (local)\n"
        "    r              One                      1 CPU, 2 GB, ≤ 1.5 h\n"
        "Environments: none\n"
        "Storage: none\n"
        "Projects: none\n"
    )
