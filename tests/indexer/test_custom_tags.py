"""Custom tags on synthetic catalogs with constructed embeddings (every right answer known), and one
end-to-end check that indexing new photos scores them (tiny random models: scores only, no meaning)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sqlalchemy import select

from indexer.catalog import Catalog
from indexer.personal import custom_tags
from indexer.personal.corrections import set_state
from indexer.personal.review import review_queue
from indexer.schema import ACCEPTED, REJECTED, SUGGESTED, Embedding, Photo, PhotoTag, Tag
from main import main
from tests.indexer.test_index import index, tags_of

DIM = 8
VERSION = "clip_test@v1"
STAMP = datetime(2024, 1, 1)


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def add_photos(catalog: Catalog, vectors: dict[str, np.ndarray]) -> dict[str, int]:
    ids = {}
    with catalog.session() as session, session.begin():
        for name, vector in vectors.items():
            photo = Photo(path=f"/lib/{name}.jpg", size=1, mtime_ns=1, content_hash=name, status="indexed",
                          attempts=0, first_seen=STAMP, last_seen=STAMP, embedder_version=VERSION)
            session.add(photo)
            session.flush()
            session.add(Embedding(photo_id=photo.id, model_version=VERSION, dim=DIM, vector=vector))
            ids[name] = photo.id
    return ids


def clusters(seed: int = 0, per: int = 6) -> dict[str, np.ndarray]:
    """Two tight clusters around axis 0 (cats) and axis 1 (boats), plus scattered photos on axis 2+."""
    rng = np.random.default_rng(seed)
    vectors = {}
    for label, axis in (("cat", 0), ("boat", 1)):
        for i in range(per):
            v = np.zeros(DIM)
            v[axis] = 1.0
            v += rng.normal(0, 0.1, DIM)
            vectors[f"{label}{i}"] = (v / np.linalg.norm(v)).astype(np.float32)
    for i in range(per):
        v = rng.normal(0, 1, DIM)
        v[:2] = -abs(v[:2])
        vectors[f"other{i}"] = (v / np.linalg.norm(v)).astype(np.float32)
    return vectors


@pytest.fixture()
def catalog(tmp_path: Path) -> Catalog:
    with Catalog.open(tmp_path / "catalog") as catalog:
        yield catalog


def suggested(catalog: Catalog, name: str) -> dict[int, tuple[str, str, float | None]]:
    with catalog.session() as session:
        rows = session.execute(select(PhotoTag.photo_id, PhotoTag.source, PhotoTag.state, PhotoTag.score)
                               .join(Tag, Tag.id == PhotoTag.tag_id).where(Tag.name == name)).all()
    return {photo_id: (source, state, score) for photo_id, source, state, score in rows}


class KnownTextEmbedder:
    """Stands in for CLIP's text encoder: each prompt has a fixed vector in the test's space."""

    bundle = SimpleNamespace(version=VERSION)

    def __init__(self, phrases: dict[str, np.ndarray]) -> None:
        self.phrases = phrases

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.phrases[t] for t in texts]))


def test_examples_find_their_cluster_and_corrections_stay(catalog: Catalog) -> None:
    ids = add_photos(catalog, clusters())
    tag = custom_tags.build(catalog, "my cat", examples=[ids["cat0"], ids["cat1"]])
    assert tag.threshold == custom_tags.EXAMPLE_THRESHOLD
    assert {path for path, _ in custom_tags.matches(catalog, tag)} == {f"/lib/cat{i}.jpg" for i in range(6)}
    custom_tags.save(catalog, tag)
    assert custom_tags.apply(catalog) == {"my cat": 6}
    rows = suggested(catalog, "my cat")
    assert set(rows) == {ids[f"cat{i}"] for i in range(6)}
    assert rows[ids["cat0"]][:2] == ("user", ACCEPTED)  # an example is a person's statement
    assert rows[ids["cat3"]][:2] == ("model", SUGGESTED) and rows[ids["cat3"]][2] >= 0.8

    # A person rejects one and accepts another; a stricter threshold and a re-apply keep both decisions.
    set_state(catalog, [ids["cat4"]], "my cat", REJECTED)
    set_state(catalog, [ids["cat5"]], "my cat", ACCEPTED)
    custom_tags.save(catalog, custom_tags.build(catalog, "my cat", examples=[ids["cat0"], ids["cat1"]],
                                                threshold=0.9999))
    custom_tags.apply(catalog, ["my cat"])
    rows = suggested(catalog, "my cat")
    assert rows[ids["cat4"]][1] == REJECTED and rows[ids["cat5"]][1] == ACCEPTED
    assert not any(state == SUGGESTED for _, state, _ in rows.values())  # nothing fires at 0.9999 now

    listed = custom_tags.list_custom(catalog)
    assert [(t["name"], t["examples"], t["example_paths"][0]) for t in listed] == [
        ("my cat", [ids["cat0"], ids["cat1"]], "/lib/cat0.jpg")]

    assert custom_tags.remove(catalog, "my cat") == {"suggestions_removed": 0, "accepted_kept": 3}
    rows = suggested(catalog, "my cat")
    assert {(source, state) for source, state, _ in rows.values()} == {("user", ACCEPTED), ("model", REJECTED)}
    assert custom_tags.list_custom(catalog) == []


def test_descriptions_with_known_text_vectors(catalog: Catalog) -> None:
    ids = add_photos(catalog, clusters())
    # Two descriptions whose mean points at the boat cluster.
    embedder = KnownTextEmbedder({"a photo of a sailing boat.": unit(0.3, 1, 0.3),
                                  "a photo of a dinghy.": unit(-0.3, 1, -0.3)})
    tag = custom_tags.build(catalog, "boat trip", ["a sailing boat", "a dinghy"], text_embedder=embedder,
                            threshold=0.7)
    np.testing.assert_allclose(tag.prototype, unit(0, 1), atol=1e-6)
    custom_tags.save(catalog, tag)
    custom_tags.apply(catalog)
    assert set(suggested(catalog, "boat trip")) == {ids[f"boat{i}"] for i in range(6)}
    with pytest.raises(custom_tags.CustomTagError, match="built-in tag"):
        with catalog.session() as session, session.begin():
            session.add(Tag(name="dog", kind="builtin", threshold=0.5))
        custom_tags.save(catalog, custom_tags.build(catalog, "dog", examples=[ids["cat0"]]))
    with pytest.raises(custom_tags.CustomTagError, match="--description"):
        custom_tags.build(catalog, "empty")


def test_new_photos_are_scored_by_the_hook(catalog: Catalog) -> None:
    from indexer.personal.hooks import after_store

    ids = add_photos(catalog, clusters())
    custom_tags.save(catalog, custom_tags.build(catalog, "my cat", examples=[ids["cat0"]]))
    new = add_photos(catalog, {"newcat": unit(1, 0.05), "newboat": unit(0.05, 1)})
    with catalog.session() as session, session.begin():
        after_store(session, list(new.values()))
    rows = suggested(catalog, "my cat")
    assert new["newcat"] in rows and new["newboat"] not in rows


def test_review_puts_uncertain_and_often_corrected_first(catalog: Catalog) -> None:
    ids = add_photos(catalog, clusters())
    with catalog.session() as session, session.begin():
        for name in ("dog", "sky"):
            session.add(Tag(name=name, kind="builtin", threshold=0.6))
        session.flush()
        dog, sky = (session.scalar(select(Tag.id).where(Tag.name == n)) for n in ("dog", "sky"))
        for photo, tag_id, score, state in [("cat0", dog, 0.95, SUGGESTED), ("cat1", dog, 0.62, SUGGESTED),
                                            ("cat2", sky, 0.62, SUGGESTED), ("cat3", sky, 0.99, SUGGESTED),
                                            ("boat0", dog, 0.9, REJECTED), ("boat1", dog, 0.9, REJECTED)]:
            session.add(PhotoTag(photo_id=ids[photo], tag_id=tag_id, score=score, source="model", state=state,
                                 updated_at=STAMP))
    queue = review_queue(catalog)
    assert [(i.tag, i.score) for i in queue] == [("dog", 0.62), ("sky", 0.62), ("dog", 0.95), ("sky", 0.99)]
    assert [i.photo_id for i in review_queue(catalog, tag="sky", limit=1)] == [ids["cat2"]]


def test_cli_end_to_end_with_indexing(home, photos, capsys) -> None:  # noqa: ANN001
    """Retroactive on `add`, then new photos scored while indexing; the tiny CLIP's scores mean nothing,
    so the threshold is set where every photo fires and only the plumbing is checked."""
    first, second = photos / "library" / "orientation", photos / "library" / "space"
    index(capsys, first)
    example = first / "hopper_orientation_1.jpg"
    assert main(["custom-tag", "add", "grandma", "--example", str(example), "--threshold", "-1", "--dry-run"]) == 0
    assert str(example) in capsys.readouterr().out
    assert main(["custom-tag", "add", "grandma", "--example", str(example), "--threshold", "-1"]) == 0
    capsys.readouterr()
    assert tags_of(home, example)["grandma"][:2] == ("user", "accepted")
    other = first / "hopper_orientation_2.jpg"
    assert tags_of(home, other)["grandma"][:2] == ("model", "suggested")
    index(capsys, second)
    new = next(second.iterdir())
    source, state, score = tags_of(home, new)["grandma"]
    assert (source, state) == ("model", "suggested") and -1 <= score <= 1
    assert main(["custom-tag", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "grandma"
    assert main(["review", "--json", "--tag", "grandma"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main(["custom-tag", "remove", "grandma"]) == 0
    assert "grandma" not in tags_of(home, new) and tags_of(home, example)["grandma"][:2] == ("user", "accepted")
