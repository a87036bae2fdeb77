"""Shared test settings: hypothesis profiles and the path of the staged real data."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Derandomized so CI runs are repeatable; no deadline (CI machines are noisy and small).
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The convscope command makes glibc keep freed memory (settings.retain_freed_memory); the CLI
# tests call it in this process, which should keep its allocator as it is.
os.environ.setdefault("CONVSCOPE_MALLOC", "default")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the project; tests using it skip cleanly when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"staged real data not found at {SHARED_DATA} (only CI and developers have it)")
    return SHARED_DATA


try:  # The PyTorch reference runs single-threaded: on a 2-core machine it is faster and steadier.
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - the test extra installs torch
    pass
