"""The example catalogues and users the unit tests share."""

from pathlib import Path

from naic.hub.catalogue import load
from naic.spawners.request import UserFacts

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
DEMO = load(REPO / "examples" / "catalogue.yaml")
TC = load(REPO / "examples" / "catalogue-testcluster.yaml")
ALICE = UserFacts("alice", frozenset({"alice"}))
