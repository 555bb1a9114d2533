"""Personal fine-tuning on synthetic corrections: a learnable signal is learned, activated and rolled
back exactly; random corrections are refused. Constructed embeddings and scores, no model."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from indexer.catalog import Catalog
from indexer.personal import finetune
from indexer.schema import ACCEPTED, REJECTED, SUGGESTED, Embedding, Photo, PhotoTag, Tag
from main import main

DIM = 16
VERSION = "clip_test@v1"
STAMP = datetime(2024, 1, 1)
TAGS = ("dog", "beach", "sky")
THRESHOLD = 0.5


def build(catalog: Catalog, *, learnable: bool, photos: int = 80, corrected: int = 50, seed: int = 0) -> dict:
    """``photos`` photos with random unit embeddings; per tag, the truth is ``embedding · direction > 0``
    (or a coin flip when not ``learnable``) and the base model fires at random, independently of it.
    A person corrected the first ``corrected`` photos of every tag."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(photos, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    truth = {}
    with catalog.session() as session, session.begin():
        tag_ids = {}
        for name in TAGS:
            tag = Tag(name=name, kind="builtin", threshold=THRESHOLD)
            session.add(tag)
            session.flush()
            tag_ids[name] = tag.id
        ids = []
        for i, vector in enumerate(vectors):
            photo = Photo(path=f"/lib/{i:03d}.jpg", size=1, mtime_ns=1, content_hash=str(i), status="indexed",
                          attempts=0, first_seen=STAMP, last_seen=STAMP, embedder_version=VERSION)
            session.add(photo)
            session.flush()
            session.add(Embedding(photo_id=photo.id, model_version=VERSION, dim=DIM, vector=vector))
            ids.append(photo.id)
        for name in TAGS:
            direction = rng.normal(size=DIM)
            labels = vectors @ direction > 0 if learnable else rng.random(photos) < 0.5
            fired = rng.random(photos) < 0.5
            scores = np.where(fired, rng.uniform(0.5, 1.0, photos), np.nan)
            truth[name] = labels
            for i, photo_id in enumerate(ids):
                state = (ACCEPTED if labels[i] else REJECTED) if i < corrected else SUGGESTED
                if fired[i]:
                    session.add(PhotoTag(photo_id=photo_id, tag_id=tag_ids[name], score=float(scores[i]),
                                         source="model", state=state, model_version="tagger@1", updated_at=STAMP))
                elif state != SUGGESTED:
                    session.add(PhotoTag(photo_id=photo_id, tag_id=tag_ids[name], source="user", state=state,
                                         updated_at=STAMP))
    return {"ids": ids, "truth": truth, "vectors": vectors, "tag_ids": tag_ids}


def snapshot(catalog: Catalog) -> set[tuple]:
    with catalog.session() as session:
        return set(session.execute(select(PhotoTag.photo_id, PhotoTag.tag_id, PhotoTag.score, PhotoTag.source,
                                          PhotoTag.state, PhotoTag.model_version)).all())


def same_model(rows: set[tuple]) -> set[tuple]:
    """Rows with the personal model's version number left out."""
    return {row[:5] + ("personal" if (row[5] or "").startswith("personal:") else row[5],) for row in rows}


def shown(catalog: Catalog, tag_id: int) -> set[int]:
    """Photos that carry the tag (suggested or accepted)."""
    with catalog.session() as session:
        return set(session.scalars(select(PhotoTag.photo_id).where(PhotoTag.tag_id == tag_id,
                                                                   PhotoTag.state != REJECTED)))


@pytest.fixture()
def catalog(tmp_path: Path) -> Catalog:
    with Catalog.open(tmp_path / "catalog") as catalog:
        yield catalog


def test_a_learnable_signal_is_learned_activated_and_rolled_back_exactly(catalog: Catalog) -> None:
    world = build(catalog, learnable=True)
    before = snapshot(catalog)
    result = finetune.train(catalog)
    report = result.report
    assert result.accepted and result.activated, report["reason"]
    assert [t["tag"] for t in report["tags"]] == list(TAGS)
    for tag in report["tags"]:  # held-out (5-fold) corrections
        assert tag["before"]["macro_f1"] < 0.65 and tag["after"]["macro_f1"] >= 0.75, tag
        assert tag["method"] == "adapter"
    assert report["mean_gain"] >= 0.2
    assert snapshot(catalog) == before  # activation alone changes nothing already in the library

    counts = finetune.apply_active(catalog)
    assert counts["photos"] == 80 and counts["added"] > 0 and counts["withheld"] > 0
    # On the photos nobody corrected, the personal model now mostly agrees with the truth.
    uncorrected = world["ids"][50:]
    for name in TAGS:
        carries = shown(catalog, world["tag_ids"][name])
        agree = np.mean([(pid in carries) == world["truth"][name][i + 50] for i, pid in enumerate(uncorrected)])
        assert agree >= 0.75, (name, agree)
    applied = snapshot(catalog)
    decisions = {row for row in before if row[4] != SUGGESTED}
    assert decisions <= applied  # every accept and reject is untouched

    # A new photo gets the personal model while indexing (the indexer's hook).
    from indexer.personal.hooks import after_store

    with catalog.session() as session, session.begin():
        photo = Photo(path="/lib/new.jpg", size=1, mtime_ns=1, content_hash="new", status="indexed", attempts=0,
                      first_seen=STAMP, last_seen=STAMP, embedder_version=VERSION)
        session.add(photo)
        session.flush()
        direction_vector = world["vectors"][0]
        session.add(Embedding(photo_id=photo.id, model_version=VERSION, dim=DIM, vector=direction_vector))
        after_store(session, [photo.id])
        versions = set(session.scalars(select(PhotoTag.model_version).where(PhotoTag.photo_id == photo.id)))
    assert versions <= {f"personal:{result.model_id}"} and versions

    assert finetune.rollback(catalog) is None
    with catalog.session() as session, session.begin():
        session.execute(PhotoTag.__table__.delete().where(PhotoTag.photo_id == photo.id))
        session.execute(Embedding.__table__.delete().where(Embedding.photo_id == photo.id))
        session.execute(Photo.__table__.delete().where(Photo.id == photo.id))
    assert snapshot(catalog) == before  # exactly the base model's suggestions again

    # Versions are kept; re-activating by training again gives the same model (deterministic).
    again = finetune.train(catalog)
    assert again.activated and again.report["tags"] == report["tags"]
    finetune.apply_active(catalog)
    assert same_model(snapshot(catalog)) == same_model(applied)  # the same decisions as version 1
    assert [v["active"] for v in finetune.versions(catalog)] == [False, True]
    assert finetune.rollback(catalog) == result.model_id  # the previous accepted version comes back
    assert snapshot(catalog) == applied


def test_random_corrections_are_refused(catalog: Catalog) -> None:
    build(catalog, learnable=False, photos=200, corrected=150)  # enough that luck stays below the bar
    before = snapshot(catalog)
    result = finetune.train(catalog)
    assert not result.accepted and not result.activated, result.report
    assert "not better" in result.report["reason"]
    with catalog.session() as session:
        assert finetune.active_model_id(session) is None
    assert [v["accepted"] for v in finetune.versions(catalog)] == [False]  # kept, for --status
    assert snapshot(catalog) == before


def test_too_few_corrections_and_cli(catalog: Catalog, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    build(catalog, learnable=True, corrected=6)
    assert finetune.train(catalog, dry_run=True).report["tags"] == []
    assert main(["finetune", "--catalog", str(catalog.directory), "--dry-run"]) == 0
    assert "no tag has" in capsys.readouterr().err
    assert main(["finetune", "--catalog", str(catalog.directory), "--rollback"]) == 2
    assert "nothing to roll back" in capsys.readouterr().err
    assert main(["finetune", "--catalog", str(catalog.directory), "--status"]) == 0


def test_stratified_folds_are_balanced_and_seeded() -> None:
    labels = np.asarray([1.0] * 10 + [0.0] * 15)
    folds = finetune.stratified_folds(labels)
    assert (folds == finetune.stratified_folds(labels)).all()
    for fold in range(5):
        assert labels[folds == fold].sum() == 2 and (folds == fold).sum() == 5
