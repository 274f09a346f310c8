"""Fixtures for the skim tests; the input writer lives in miniaod_inputs.py (a module name of
its own: ``from conftest import`` picked whichever conftest another test folder had loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
from miniaod_inputs import write_miniaod


@pytest.fixture(scope="session")
def miniaod_files(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("inputs")
    return [write_miniaod(d / f"good_{i}.root", 300, seed=i) for i in range(2)]
