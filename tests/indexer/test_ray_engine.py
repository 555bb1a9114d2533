"""The Ray engine (``--engine ray``, indexer/ray_engine.py) on a local Ray instance of 2 CPUs, tiny random models:
the same catalog as the local engine, a worker killed mid-pass, the driver killed mid-pass, files the workers
cannot read, node affinity by path prefix, and the error without Ray.

Faults happen inside Ray's worker processes, set up there by :func:`_inject_faults` and asked for by marker files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from indexer.catalog import Catalog
from indexer.index import embedding_rows
from indexer.schema import Embedding, Photo, PhotoTag, Tag
from main import main
from tests.conftest import PHOTOS, REPO
from tests.indexer.conftest import EMBEDDER, TAGGER

FAULTS = "PHOTOTAG_TEST_FAULTS"  # the folder of marker files that ask Ray's workers for faults


def _inject_faults() -> None:
    """Run by every Ray worker process of this module's cluster as it starts (``worker_process_setup_hook``): the
    faults the marker files in $PHOTOTAG_TEST_FAULTS ask for, as a worker meets them.

    * ``die-decoding`` names a photo: the first worker to decode it takes the marker and dies (``os._exit``);
    * ``die-computing``: the first model actor to get a batch takes the marker and dies;
    * ``unreadable`` lists file names that no worker can open (storage the workers do not see): PermissionError.
    """
    import errno
    import os
    from pathlib import Path

    from indexer.metadata import _files
    from indexer.pipeline import ModelStage

    control = Path(os.environ[FAULTS])

    def marker(name: str) -> str | None:
        try:
            return (control / name).read_text()
        except FileNotFoundError:
            return None

    def take(name: str) -> bool:
        try:
            (control / name).unlink()  # atomic: one worker takes it
            return True
        except FileNotFoundError:
            return False

    def refuse_unreadable(path: Any) -> None:
        if Path(path).name in (marker("unreadable") or "").split():
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

    def check_regular(path: Any, _real: Any = _files.check_regular) -> Any:
        refuse_unreadable(path)
        if marker("die-decoding") == Path(path).name and take("die-decoding"):
            os._exit(1)
        return _real(path)

    def open_regular(path: Any, _real: Any = _files.open_regular) -> Any:
        refuse_unreadable(path)
        return _real(path)

    def prepare(self: ModelStage, batch: Any, _real: Any = ModelStage.prepare) -> Any:
        if take("die-computing"):
            os._exit(1)
        return _real(self, batch)

    _files.check_regular, _files.open_regular, ModelStage.prepare = check_regular, open_regular, prepare


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A local Ray instance of 2 CPUs for this module (its address), and the folder of fault markers."""
    ray = pytest.importorskip("ray")

    control = tmp_path_factory.mktemp("faults")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             runtime_env={"worker_process_setup_hook": _inject_faults, "env_vars": {FAULTS: str(control)}})
    try:
        yield ray.get_runtime_context().gcs_address, control
    finally:
        ray.shutdown()


def home_env(home: Path) -> dict[str, str]:
    """The environment of the ``home`` fixture (tests/indexer/conftest.py): tiny random models, CPU, batches of 4."""
    return {"PHOTOTAG_HOME": str(home), "PHOTOTAG_DEVICE": "cpu", "PHOTOTAG_TAGGER": TAGGER,
            "PHOTOTAG_EMBEDDER": EMBEDDER, "PHOTOTAG_WORKERS": "0", "PHOTOTAG_AUTO_DOWNLOAD": "false",
            "PHOTOTAG_BATCH_SIZE": "4"}


# A few of ../shared/photos, for the tests of faults: each Ray pass starts its workers and actors, seconds on 2 CPUs.
SOME = ("library/space/rocket.jpg", "library/animals/pug.heic", "library/food/coffee.png", "library/flowers/dahlia.jpg",
        "library/people/grace_hopper.jpg", "library/orientation/hopper_orientation_6.jpg", "edge/zero_bytes.jpg",
        "edge/truncated_jpeg.jpg")


def copy_photos(target: Path, names: tuple[str, ...] | None = None) -> Path:
    """A copy of ../shared/photos (library and edge files), or of the files ``names`` of it, in ``target``."""
    if names is None:
        for part in ("library", "edge"):
            shutil.copytree(PHOTOS / part, target / part)
    for name in names or ():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PHOTOS / name, target / name)
    return target


def records(catalog_dir: Path, root: Path) -> dict[str, dict[str, Any]]:
    """Every photo of the catalog by its path relative to ``root``: status, failure (reason, message with the path
    made relative, attempts), content hash, size and capture facts, tags (source, state, score) and embedding."""
    prefix = f"{root}{os.sep}"
    with Catalog.open(catalog_dir, create=False) as catalog:
        with catalog.session() as session:
            photos = session.scalars(select(Photo)).all()
            tags = session.execute(select(PhotoTag.photo_id, Tag.name, PhotoTag.source, PhotoTag.state,
                                          PhotoTag.score).join(Tag, Tag.id == PhotoTag.tag_id)).all()
            version, dim = session.execute(select(Embedding.model_version, Embedding.dim).limit(1)).one()
        vectors = {int(i): v for ids, block in embedding_rows(catalog, version, dim)
                   for i, v in zip(ids, block, strict=True)}
    by_photo: dict[int, dict[str, tuple[str, str, float | None]]] = {}
    for photo_id, name, source, state, score in tags:
        by_photo.setdefault(photo_id, {})[name] = (source, state, score)
    result = {}
    for p in photos:
        assert p.path.startswith(prefix), p.path
        result[p.path[len(prefix):]] = {
            "status": p.status, "reason": p.error_reason, "attempts": p.attempts,
            "message": p.error_message.replace(prefix, "") if p.error_message else None,
            "facts": (p.content_hash, p.size, p.width, p.height, p.orientation, p.taken_at, p.camera_model),
            "tags": by_photo.get(p.id, {}), "vector": vectors.get(p.id)}
    return result


def assert_same(got: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]],
                fields: tuple[str, ...] = ("status", "reason", "message", "attempts", "facts")) -> None:
    """Photo for photo, the same record: scores and embeddings within float tolerance, ``fields`` equal."""
    assert got.keys() == expected.keys()
    for path, want in expected.items():
        have = got[path]
        for key in fields:
            assert have[key] == want[key], (path, key)
        assert have["tags"].keys() == want["tags"].keys(), path
        for name, (source, state, score) in want["tags"].items():
            assert have["tags"][name][:2] == (source, state), (path, name)
            assert (score is None) == (have["tags"][name][2] is None), (path, name)
            assert score is None or abs(have["tags"][name][2] - score) < 1e-5, (path, name)
        assert (want["vector"] is None) == (have["vector"] is None), path
        assert want["vector"] is None or np.allclose(have["vector"], want["vector"], atol=1e-3), path


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> dict[str, dict[str, Any]]:
    """What the local engine makes of ../shared/photos (library and edge files), by relative path."""
    top = tmp_path_factory.mktemp("local")
    photos = copy_photos(top / "photos")
    (top / "home").mkdir()
    os.symlink(model_dir, top / "home" / "models")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in home_env(top / "home").items():
            patch.setenv(key, value)
        assert main(["index", str(photos), "--engine", "local"]) == 0
    result = records(top / "home" / "catalog", photos)
    assert sum(r["status"] == "indexed" for r in result.values()) > 20  # the comparisons compare real results
    assert sum(r["status"] == "failed" for r in result.values()) >= 5
    assert all(r["vector"] is not None and r["tags"] for r in result.values() if r["status"] == "indexed")
    return result


@pytest.fixture()
def ray_home(home: Path, cluster: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The ``home`` fixture, with the Ray engine chosen by the environment."""
    monkeypatch.setenv("PHOTOTAG_ENGINE", "ray")
    return home


def index_json(*args: Any, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code = main(["index", *map(str, args), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return dict(json.loads(out))


def test_the_ray_engine_gives_the_local_engines_catalog(ray_home: Path, photos: Path, expected: dict[str, Any],
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every photo's tags, scores, embedding, status and failure equal the local engine's; the library folder is
    read on the local node by affinity (the edge files anywhere), which takes the two-part dataset path."""
    import ray

    node = ray.nodes()[0]["NodeManagerAddress"]
    monkeypatch.setenv("PHOTOTAG_RAY_NODES", json.dumps({str(photos / "library"): node}))
    summary = index_json(photos, capsys=capsys)
    assert_same(records(ray_home / "catalog", photos), expected)
    files = [p for p in photos.rglob("*") if p.is_file()]
    assert summary["new"] == len(files) and summary["failed"] == sum(r["status"] == "failed" for r in expected.values())
    # Bytes first: identifying hashes every byte of each new file, counted where the workers read them.
    identify = summary["read"]["identify"]
    assert identify["photos"] == len(files) and identify["bytes"] >= sum(p.stat().st_size for p in files)
    decode = summary["read"]["decode"]
    assert decode["photos"] >= summary["tagged"] and decode["bytes"] > 0 and decode["mb_per_s"] > 0


def test_workers_that_die_or_cannot_read_lose_no_photo(ray_home: Path, tmp_path: Path, cluster: tuple[str, Path],
                                                       expected: dict[str, Any]) -> None:
    """A decode worker dies on one photo and a model actor on its first batch: Ray runs their tasks again. Two files
    the driver can read the workers cannot (their storage is not mounted there): one from the start (identify
    fails: reported, and tried again next pass, as a file that vanished), one from after identification (its row
    is failed, with the reason). Every other photo gets the local engine's results."""
    from indexer.index import Indexer
    from indexer.settings import Settings
    from ram_model.cli import lazy_models

    _address, control = cluster
    photos = copy_photos(tmp_path / "photos", SOME)
    (control / "die-decoding").write_text("rocket.jpg")
    (control / "die-computing").touch()
    (control / "unreadable").write_text("dahlia.jpg")

    def on_progress(stage: str, done: int, _total: int | None) -> None:
        if stage == "model" and done == 0:  # identified: now the workers lose coffee.png as well
            (control / "unreadable").write_text("dahlia.jpg coffee.png")

    settings = Settings()
    try:
        with Catalog.open(settings.catalog_dir) as catalog:
            summary = Indexer.from_settings(catalog, *lazy_models(settings), settings, on_progress=on_progress).run(
                [photos])
    finally:
        (control / "unreadable").unlink()
    assert not (control / "die-decoding").exists() and not (control / "die-computing").exists()  # both died
    unreadable = {f.path: (f.reason, f.message) for f in summary.failures if f.reason == "unreadable"}
    assert unreadable == {str(photos / name): ("unreadable", f"{photos / name}: cannot read it (Permission denied)")
                          for name in ("library/flowers/dahlia.jpg", "library/food/coffee.png")}
    got = records(ray_home / "catalog", photos)
    assert "library/flowers/dahlia.jpg" not in got  # never identified: no row, read again by the next pass
    coffee = got.pop("library/food/coffee.png")
    assert (coffee["status"], coffee["reason"], coffee["attempts"]) == ("failed", "unreadable", 1)
    assert coffee["message"] == "library/food/coffee.png: cannot read it (Permission denied)"
    assert_same(got, {name: expected[name] for name in SOME if name in got})
    assert len(got) == len(SOME) - 2


def photo_counts(database: Path) -> tuple[int, int]:
    """(photos with an embedding, photos indexed) in a catalog another process is writing."""
    if not database.exists():
        return 0, 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
            row = connection.execute("SELECT count(embedder_version), sum(status = 'indexed') FROM photos").fetchone()
    except sqlite3.OperationalError:  # the schema is still being created
        return 0, 0
    return int(row[0] or 0), int(row[1] or 0)


def test_a_driver_killed_mid_pass_loses_nothing_and_does_nothing_twice(
        ray_home: Path, tmp_path: Path, cluster: tuple[str, Path], expected: dict[str, Any],
        capsys: pytest.CaptureFixture[str]) -> None:
    """``phototag index --engine ray`` killed (SIGKILL) once its first batches are stored; run again, it does the
    rest: every photo once, with the local engine's results."""
    import time

    address, _control = cluster
    photos = copy_photos(tmp_path / "photos", SOME)
    database = ray_home / "catalog" / "catalog.db"
    driver = subprocess.Popen([sys.executable, str(REPO / "main.py"), "index", str(photos), "--ray-address", address,
                               "--batch-size", "1"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while photo_counts(database)[0] < 2:  # the first batches (of embeddings) are stored
            assert driver.poll() is None, driver.stderr.read() if driver.stderr else ""
            assert time.monotonic() < deadline, "the driver stored no batch"
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    finally:
        driver.kill()
    embedded, indexed = photo_counts(database)
    want = {name: expected[name] for name in SOME}
    tagged = sum(r["status"] == "indexed" for r in want.values())
    assert indexed < tagged, "the driver was killed mid-way"
    summary = index_json(photos, capsys=capsys)
    assert summary["new"] == 0 and summary["tagged"] == tagged - indexed and summary["embedded"] == tagged - embedded
    # Each photo once, as the local engine has it; a file that failed before the kill was tried again, as every
    # pass tries a failed file again (up to max_attempts).
    got = records(ray_home / "catalog", photos)
    assert_same(got, want, fields=("status", "reason", "message", "facts"))
    assert all(r["attempts"] in (1, 2) for r in got.values() if r["status"] == "failed")


def test_path_prefixes_name_nodes_by_id_or_address(cluster: tuple[str, Path]) -> None:
    import ray

    from indexer.errors import EngineError
    from indexer.ray_engine import node_ids

    node = ray.nodes()[0]
    assert node_ids({"/a": node["NodeManagerAddress"], "/b": node["NodeID"]}) == {"/a": node["NodeID"],
                                                                                  "/b": node["NodeID"]}
    with pytest.raises(EngineError, match="not a live node of the cluster"):
        node_ids({"/c": "203.0.113.9"})


def test_the_ray_engine_without_ray_says_how_to_install_it(home: Path, photos: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    monkeypatch.setitem(sys.modules, "ray.data", None)
    assert main(["index", str(photos), "--engine", "ray"]) == 2
    assert "pip install 'phototag[ray]'" in capsys.readouterr().err
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        assert session.scalars(select(Photo)).all() == []  # nothing was read or recorded
