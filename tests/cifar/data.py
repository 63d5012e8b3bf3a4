"""Where the tests find CIFAR-10: ``$INFINET_CIFAR10``, else ``shared/data`` near the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_NAME = "cifar-10-subset.tar.gz"


def cifar_path() -> Path | None:
    """The CIFAR-10 archive or directory to test with, or ``None``."""
    env = os.environ.get("INFINET_CIFAR10")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]  # the repository root
    for base in (root, *root.parents[:2]):
        for cand in (base / "shared" / "data" / _NAME, base / ".." / "shared" / "data" / _NAME):
            if cand.exists():
                return cand
    return None


def require_cifar() -> Path:
    """The data path, or skip the test with the reason."""
    p = cifar_path()
    if p is None:
        pytest.skip(f"CIFAR-10 not found: set INFINET_CIFAR10 or place {_NAME} in ../shared/data/")
    return p
