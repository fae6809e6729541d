"""DepotFileSystem: fsspec's own abstract test suite on memory://, file:// and sftp://, plus what it adds."""

from __future__ import annotations

import asyncio
import os
import posixpath
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

fsspec = pytest.importorskip("fsspec")  # the [fsspec] extra, part of the dev extras
from fsspec.tests import abstract  # noqa: E402

from aiodepot import Store  # noqa: E402
from aiodepot.integrations.fsspec import DepotFileSystem  # noqa: E402
from tests.servers.sshd import Sshd, sshd  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def openssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def drop(fs: DepotFileSystem) -> None:
    """Close the file system and remove its store (memory stores live as long as the process)."""
    fs.close()
    asyncio.run(fs.store.destroy())


def make_fs(kind: str, tmp: Path, request: pytest.FixtureRequest) -> DepotFileSystem:
    if kind == "memory":
        url, options = f"memory://fsspec-{uuid.uuid4().hex}", {}
    elif kind == "file":
        url, options = f"file://{tmp}/depot", {}
    else:
        server: Sshd = request.getfixturevalue("openssh")
        url, options = server.url(tmp / "depot"), {"backend_options": server.options()}
    return DepotFileSystem(url=url, store_options=options, skip_instance_cache=True)


class DepotFixtures(abstract.AbstractFixtures):  # type: ignore[misc]
    kind = "memory"

    @pytest.fixture
    def fs(self, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Any]:
        fs = make_fs(self.kind, tmp_path_factory.mktemp("remote"), request)
        yield fs
        drop(fs)

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return posixpath.join

    @pytest.fixture
    def fs_path(self) -> str:
        return "root"

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return False


for _kind in ("memory", "file", "sftp"):
    for _suite in ("Copy", "Get", "Put", "Open", "Pipe"):
        _name = f"Test{_kind.capitalize()}{_suite}"
        globals()[_name] = type(_name, (getattr(abstract, f"Abstract{_suite}Tests"), DepotFixtures), {"kind": _kind})


@pytest.fixture(params=["memory", "file"])
def fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DepotFileSystem]:
    fs = make_fs(request.param, tmp_path, request)
    yield fs
    drop(fs)


def test_protocol_is_registered_and_declared_as_entry_point(tmp_path: Path) -> None:
    fs = fsspec.filesystem("aiodepot", url=f"memory://registered-{uuid.uuid4().hex}", skip_instance_cache=True)
    assert isinstance(fs, DepotFileSystem)
    fs.pipe("x", b"1")
    drop(fs)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = project["project"]["entry-points"]["fsspec.specs"]["aiodepot"]
    assert target == "aiodepot.integrations.fsspec:DepotFileSystem"


def test_any_file_name_round_trips_through_listings(fs: DepotFileSystem) -> None:
    names = ["Data/Read Me.TXT", "data/ünïcode ✓.bin", "data/a..b.tmp", "data/.hidden", "data/100%"]
    for i, name in enumerate(names):
        fs.pipe(name, bytes([i]) * 3)
    assert fs.find("") == sorted(names)
    assert fs.ls("data", detail=False) == sorted(n for n in names if n.startswith("data/"))
    assert fs.ls("", detail=False) == ["Data", "data"]
    assert fs.info("Data") == {"name": "Data", "size": 0, "type": "directory"}
    assert fs.cat("data/ünïcode ✓.bin") == b"\x01\x01\x01"
    assert sorted(fs.glob("data/*.tmp")) == ["data/a..b.tmp"]


def test_ranges_and_errors(fs: DepotFileSystem) -> None:
    fs.pipe("f", b"0123456789")
    assert fs.cat_file("f", start=2, end=5) == b"234"
    assert fs.cat_file("f", start=-3) == b"789"
    assert fs.cat_file("f", start=1, end=-1) == b"12345678"
    assert fs.cat_file("f", start=20) == b""  # past the end: empty, as fsspec's local file system
    with fs.open("f", "rb") as f:
        f.seek(7)
        assert f.read(10) == b"789"
    with pytest.raises(FileNotFoundError):
        fs.cat_file("missing")
    with pytest.raises(FileNotFoundError):
        fs.open("missing", "rb")
    with pytest.raises(FileNotFoundError):
        fs.rm_file("missing")
    with pytest.raises(ValueError):
        fs.pipe("x" * 200, b"too long a name")
    with pytest.raises(ValueError):
        fs.open("f", "ab")


def test_streamed_write_lands_whole_or_not_at_all(fs: DepotFileSystem) -> None:
    block = 5 * 2**20
    data = os.urandom(3 * block + 11)
    with fs.open("big", "wb", block_size=block) as f:
        for start in range(0, len(data), 1_000_000):
            f.write(data[start : start + 1_000_000])
        assert not fs.exists("big")  # nothing visible before close
    assert fs.cat("big") == data
    with pytest.raises(RuntimeError), fs.open("big", "wb", block_size=block) as f:
        f.write(os.urandom(2 * block))
        raise RuntimeError("the writer fails half-way")
    assert fs.cat("big") == data  # the old value is untouched
    with fs.open("big", "rb", block_size=2**20) as f:
        assert f.read() == data


def test_mv_cp_rm_and_put_get(fs: DepotFileSystem, tmp_path: Path) -> None:
    fs.pipe({"a/one": b"1", "a/sub/two": b"2"})
    fs.mv("a/one", "b/one")
    assert not fs.exists("a/one") and fs.cat("b/one") == b"1"
    fs.cp("a", "c", recursive=True)
    assert fs.find("c") == ["c/sub/two"]
    local = tmp_path / "local"
    local.mkdir()
    (local / "x.bin").write_bytes(os.urandom(100_000))
    fs.put(str(local), "up", recursive=True)
    assert fs.cat("up/x.bin") == (local / "x.bin").read_bytes()
    fs.get("up", str(tmp_path / "down"), recursive=True)
    assert (tmp_path / "down" / "x.bin").read_bytes() == (local / "x.bin").read_bytes()
    fs.rm("c", recursive=True)
    assert not fs.exists("c")
    assert fs.du("", total=True) == 1 + 1 + 100_000


def test_read_only_store_raises_permission_error(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/ro"
    asyncio.run(Store(url).create())
    fs = DepotFileSystem(url=url, store_options={"permissions": {"": "lr"}}, skip_instance_cache=True)
    try:
        with pytest.raises(PermissionError):
            fs.pipe("x", b"1")
        with pytest.raises(PermissionError), fs.open("y", "wb") as f:
            f.write(b"data")
        assert not fs.exists("y")
    finally:
        fs.close()


def test_a_store_given_by_the_caller(tmp_path: Path) -> None:
    async def main() -> None:
        store = Store(f"file://{tmp_path}/given")
        await store.create()
        async with store:
            fs = DepotFileSystem(store=store, namespace="files", asynchronous=True, skip_instance_cache=True)
            await fs._pipe_file("dir/x", b"v")
            assert await fs._cat_file("dir/x") == b"v"
            assert await store.load("files/dir%2fx") == b"v"
            assert await fs._ls("dir", detail=False) == ["dir/x"]

    asyncio.run(main())


def test_pandas_writes_and_reads_parquet(fs: DepotFileSystem) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"Station": ["A", "B", "C"] * 1000, "Value": range(3000)})
    with fs.open("Tables/readings.parquet", "wb") as f:
        frame.to_parquet(f)
    with fs.open("Tables/readings.parquet", "rb") as f:
        back = pd.read_parquet(f)
    pd.testing.assert_frame_equal(back, frame)
    assert fs.ls("Tables", detail=False) == ["Tables/readings.parquet"]
    # through a URL and storage_options, as users write it
    # through a URL and storage_options, as users write it ("url" is fsspec's own word there: store_url)
    options = {"store_url": fs.store.url}
    frame.to_parquet("aiodepot://Tables/via-url.parquet", storage_options=options)
    back = pd.read_parquet("aiodepot://Tables/via-url.parquet", storage_options=options)
    pd.testing.assert_frame_equal(back, frame)
    fsspec.filesystem("aiodepot", **options).close()


@pytest.mark.parametrize(("module", "extra"), [("fsspec", "fsspec"), ("zarr", "zarr")])
def test_a_missing_extra_says_which_to_install(module: str, extra: str) -> None:
    import subprocess
    import sys

    code = f"import sys; sys.modules[{module!r}] = None; import aiodepot.integrations.{module}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "ImportError" in result.stderr
    assert f"pip install 'aiodepot[{extra}]'" in result.stderr
