from pathlib import Path

import pytest
from fetch_servers import isolate_aws, make_cpg_bucket, serve_http, serve_moto

from i2r_utils.simulate import simulate_screen

SEED = 0


@pytest.fixture(scope="session")
def tiny_screen(tmp_path_factory):
    """The tiny synthetic screen, generated once per test session."""
    return simulate_screen(tmp_path_factory.mktemp("screen") / "tiny", "tiny", SEED, progress=False)


# --- local servers of the fetcher tests (tests/fetch_servers.py) ---------------------------
@pytest.fixture
def no_real_aws(monkeypatch, tmp_path):
    """Dummy AWS credentials, no config files, no proxies for 127.0.0.1."""
    isolate_aws(monkeypatch, tmp_path)


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server over ``tmp_path/served``."""
    with serve_http(tmp_path / "served") as server:
        yield server


@pytest.fixture(scope="module")
def moto_url():
    """URL of a moto S3 server on 127.0.0.1, one per test module."""
    with serve_moto() as url:
        yield url


@pytest.fixture
def cpg_bucket(moto_url):
    """A bucket with the Cell Painting Gallery layout on the moto server."""
    return make_cpg_bucket(moto_url)


@pytest.fixture(scope="module")
def single_torch_thread():
    """One torch thread for a module: tiny models run fastest, and most predictably, on one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data():
    """The shared data folder: ``<repo>/../shared/data``, else /work/shared/data; else skip."""
    for folder in (
        Path(__file__).resolve().parents[2] / "shared" / "data",
        Path("/work/shared/data"),
    ):
        if folder.is_dir():
            return folder
    pytest.skip("shared data not found (../shared/data beside the repository)")
