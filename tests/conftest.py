import pytest

from i2r_utils.simulate import simulate_screen

SEED = 0


@pytest.fixture(scope="session")
def tiny_screen(tmp_path_factory):
    """The tiny synthetic screen, generated once per test session."""
    return simulate_screen(tmp_path_factory.mktemp("screen") / "tiny", "tiny", SEED, progress=False)
