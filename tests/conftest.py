"""Shared fixtures: a temporary studio home, the shared third-party fixtures (skip when absent)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STUDIO_SHARED_FIXTURES", ROOT.parent / "shared" / "fixtures"))


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def shared():
    if not SHARED.is_dir():
        pytest.skip("../shared/fixtures is not present")
    return SHARED
