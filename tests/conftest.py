"""Shared test set-up: where the shared captures live, and tool checks.

Tests need tshark (the decoding oracle) and the shared material beside the
checkout; both are installed/provided by the README's test command.  A
missing tool fails the run loudly instead of skipping tests.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PCAPS = sorted((SHARED / "pcaps").glob("*.pcap*")) + sorted((SHARED / "pcaps").glob("*.cap"))
FIXTURES = ROOT / "fixtures"

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_sessionstart(session):
    missing = [tool for tool in ("tshark",) if shutil.which(tool) is None]
    if missing:
        raise pytest.UsageError(f"missing test tools {missing}: run the README's test command (scripts/bootstrap --dev)")
    if not PCAPS:
        raise pytest.UsageError(f"no shared captures under {SHARED / 'pcaps'}: the shared material must sit beside the checkout")


class KeepRecords:
    """A record sink that keeps copies of every batch (the pipeline reuses its arrays)."""

    def __init__(self):
        self.conns, self.features = [], []

    def write(self, conns, features):
        self.conns.append(conns.copy())
        self.features.append(features.copy())

    def close(self):
        pass


_LABS = itertools.count()


@pytest.fixture
def lab():
    """A private network namespace with a veth pair (netlab.py), torn down after the test."""
    import netlab

    with netlab.VethLab(f"sensor-test-{os.getpid()}-{next(_LABS)}") as veth:
        yield veth
