"""The export tests record the largest differences they see; the summary prints them."""

import pytest

_LARGEST: dict[str, float] = {}


@pytest.fixture(scope="session")
def largest_differences() -> dict[str, float]:
    """Name -> largest absolute difference seen (kept with ``_helpers.note``)."""
    return _LARGEST


def pytest_terminal_summary(terminalreporter) -> None:  # pragma: no cover - reporting only
    if _LARGEST:
        terminalreporter.write_sep("-", "largest export differences (absolute)")
        for name in sorted(_LARGEST):
            terminalreporter.write_line(f"{name}: {_LARGEST[name]:.3g}")
