"""Personal fine-tuning: learn from a person's corrections, and keep the result only if it is better.

The training data are the corrections themselves: photo–tag rows a person accepted (positive) or
rejected (negative), on photos with a stored CLIP embedding. No photo is decoded again. For every
tag with at least ``MIN_POSITIVES`` and ``MIN_NEGATIVES`` corrections, two candidate rules are fitted:

* **threshold**: a calibrated threshold on the base model's score (raised only: scores below the
  base threshold are not stored, so a lower one could not be applied to the library);
* **adapter**: a logistic regression on ``[CLIP embedding, base fired, base margin]`` (the margin
  is ``logit(score) − logit(threshold)`` for built-in tags, ``(cosine − threshold) × 20`` for custom
  ones), L2-regularised, class-balanced, fitted by Newton's method in float64 — deterministic.

Both are evaluated by stratified k-fold (k=5, seed 0) on held-out corrections; the tag keeps the
better one. "Before" is the base decision (did the model fire?) on the same corrections. Activation
is decided on macro-F1 (the mean of the positive and negative classes' F1, so firing everywhere does
not look good): the new model is activated only if the mean gain over its tags is at least
``MIN_MEAN_GAIN``, no tag loses more than ``MAX_TAG_LOSS``, and the held-out corrections it gets
right that the base got wrong outnumber the reverse significantly (McNemar, z ≥ ``SIGNIFICANCE_Z``)
— with a few dozen corrections per tag, a macro-F1 gain alone is often luck. Every run is kept as a version.

Applying a personal model never touches a person's decisions. For the tags it covers it adds
suggestions (model version ``personal:ID``) and withholds base suggestions — moved to
``personal_hidden`` so that a rollback puts back exactly what the base model had suggested.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, and_, delete, select, true, update
from sqlalchemy.orm import Session

from indexer.catalog import Catalog
from indexer.errors import IndexerError
from indexer.index import now
from indexer.pipeline import batched
from indexer.schema import (
    ACCEPTED,
    CUSTOM,
    KEYWORD,
    REJECTED,
    SOURCE_MODEL,
    SUGGESTED,
    Embedding,
    PersonalHidden,
    PersonalModel,
    PersonalTagParams,
    PhotoTag,
    Tag,
)

MIN_POSITIVES = 4
MIN_NEGATIVES = 4
FOLDS = 5
SEED = 0
MIN_MEAN_GAIN = 0.02  # mean macro-F1 gain over the covered tags needed to activate
MAX_TAG_LOSS = 0.05  # no tag may lose more macro-F1 than this
SIGNIFICANCE_Z = 2.0  # McNemar: corrections fixed minus broken must exceed this many standard deviations
L2 = 1.0  # ridge penalty (on standardised features, summed loss)
NEWTON_STEPS = 25
CUSTOM_MARGIN_SCALE = 20.0  # 0.05 of cosine ≈ 1 logit unit
DEFAULT_THRESHOLD = 0.5
PERSONAL_PREFIX = "personal:"
CHUNK = 5_000


class FinetuneError(IndexerError):
    """Fine-tuning cannot run, or a version cannot be found (the message says what to do)."""


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def score_margin(scores: np.ndarray | float, threshold: float, cosine: bool) -> np.ndarray:
    """A score relative to its threshold, in logit units (nan score → 0).

    Probabilities (built-in tags, personal models) compare by logit; a custom tag's cosine
    similarity by its difference scaled by ``CUSTOM_MARGIN_SCALE``.
    """
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=threshold)
    if cosine:
        return (scores - threshold) * CUSTOM_MARGIN_SCALE
    return _logit(scores) - float(_logit(threshold))


@dataclass(frozen=True)
class _TagInfo:
    id: int
    name: str
    kind: str
    threshold: float

    def margin(self, scores: np.ndarray) -> np.ndarray:
        """Base score relative to the tag's threshold, in logit-like units (nan score → 0)."""
        return score_margin(scores, self.threshold, self.kind == CUSTOM)

    def raw_threshold(self, margin: float) -> float:
        if self.kind == CUSTOM:
            return self.threshold + margin / CUSTOM_MARGIN_SCALE
        return float(_sigmoid(np.asarray(float(_logit(self.threshold)) + margin)))


@dataclass
class TagData:
    """One tag's corrections: embeddings ``[n, D]``, base fired ``[n]``, base margin ``[n]``, labels ``[n]``."""

    tag: _TagInfo
    embeddings: np.ndarray
    fired: np.ndarray
    margin: np.ndarray
    labels: np.ndarray

    def features(self) -> np.ndarray:
        return _features(self.embeddings, self.fired, self.margin)


def _features(embeddings: np.ndarray, fired: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """The adapter's input: ``[CLIP embedding, base fired, base margin where it fired]``."""
    return np.hstack([embeddings, fired[:, None], (margin * fired)[:, None]])


def _base_fired(score: float | None, source: str | None, model_version: str | None) -> bool:
    return score is not None and source == SOURCE_MODEL and not (model_version or "").startswith(PERSONAL_PREFIX)


def _tag_infos(session: Session, tag_ids: Sequence[int] | None = None) -> dict[int, _TagInfo]:
    statement = select(Tag.id, Tag.name, Tag.kind, Tag.threshold).where(Tag.kind != KEYWORD)
    if tag_ids is not None:
        statement = statement.where(Tag.id.in_(list(tag_ids)))
    return {i: _TagInfo(i, n, k, DEFAULT_THRESHOLD if t is None else float(t))
            for i, n, k, t in session.execute(statement)}


def collect(catalog: Catalog, embedder_version: str | None = None) -> tuple[str | None, dict[int, TagData]]:
    """Every correction usable for training, by tag (all tags, however few corrections they have)."""
    from indexer.personal.custom_tags import catalog_embedder_version

    with catalog.session() as session:
        version = embedder_version or catalog_embedder_version(session)
        if version is None:
            return None, {}
        infos = _tag_infos(session)
        rows = session.execute(
            select(PhotoTag.tag_id, PhotoTag.state, PhotoTag.score, PhotoTag.source, PhotoTag.model_version,
                   Embedding.vector)
            .join(Embedding, Embedding.photo_id == PhotoTag.photo_id)
            .where(PhotoTag.state.in_([ACCEPTED, REJECTED]), Embedding.model_version == version)
            .order_by(PhotoTag.tag_id, PhotoTag.photo_id)).all()
    grouped: dict[int, list] = {}
    for row in rows:
        if row.tag_id in infos:
            grouped.setdefault(row.tag_id, []).append(row)
    data = {}
    for tag_id, items in grouped.items():
        info = infos[tag_id]
        fired = np.asarray([_base_fired(r.score, r.source, r.model_version) for r in items], dtype=np.float64)
        scores = np.asarray([r.score if f else np.nan for r, f in zip(items, fired, strict=True)], dtype=np.float64)
        data[tag_id] = TagData(info, np.stack([r.vector for r in items])
                               .astype(np.float64), fired, info.margin(scores) * fired,
                               np.asarray([r.state == ACCEPTED for r in items], dtype=np.float64))
    return version, data


# --- the two candidate rules ---------------------------------------------------------------------
def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = L2) -> tuple[np.ndarray, float]:
    """Class-balanced L2 logistic regression by Newton's method; weights and bias in the raw feature space."""
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    std[std < 1e-9] = 1.0
    z = np.hstack([(features - mean) / std, np.ones((len(features), 1))])
    positives = labels.mean()
    sample = np.where(labels > 0.5, 0.5 / positives, 0.5 / (1 - positives))
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not shrunk
    w = np.zeros(z.shape[1])
    for _ in range(NEWTON_STEPS):
        p = _sigmoid(z @ w)
        gradient = z.T @ (sample * (p - labels)) + penalty * w
        hessian = (z * (sample * p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = w[:-1] / std
    return weights, float(w[-1] - weights @ mean)


def _macro_f1(predicted: np.ndarray, labels: np.ndarray) -> float:
    return (_f1(predicted, labels) + _f1(1 - predicted, 1 - labels)) / 2


def _f1(predicted: np.ndarray, labels: np.ndarray) -> float:
    tp = float((predicted * labels).sum())
    denominator = float(predicted.sum() + labels.sum())
    return 2 * tp / denominator if denominator else 1.0


def metrics(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    tp = float((predicted * labels).sum())
    precision = tp / predicted.sum() if predicted.sum() else 0.0
    recall = tp / labels.sum() if labels.sum() else 0.0
    return {"precision": round(float(precision), 4), "recall": round(float(recall), 4),
            "f1": round(_f1(predicted, labels), 4),
            "macro_f1": round(_macro_f1(predicted, labels), 4)}


def fit_threshold(margin: np.ndarray, fired: np.ndarray, labels: np.ndarray) -> float:
    """The margin at or above which a fired tag is kept that best separates the corrections (0: as is)."""
    best, best_score = 0.0, _macro_f1(fired, labels)
    for cut in np.unique(margin[(fired > 0) & (margin > 0)]):
        score = _macro_f1(fired * (margin >= cut), labels)
        if score > best_score + 1e-12:
            best, best_score = float(cut), score
    return best


def stratified_folds(labels: np.ndarray, k: int = FOLDS, seed: int = SEED) -> np.ndarray:
    """Fold number per sample; each class is spread evenly over the folds, in a seeded order."""
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(labels), dtype=np.int64)
    for value in (0.0, 1.0):
        members = np.flatnonzero(labels == value)
        folds[rng.permutation(members)] = np.arange(len(members)) % k
    return folds


def evaluate(data: TagData, k: int = FOLDS) -> dict[str, Any]:
    """Held-out predictions of both rules (k-fold); the better one is the tag's rule."""
    labels, fired, margin = data.labels, data.fired, data.margin
    features = data.features()
    folds = stratified_folds(labels, k)
    by_rule = {"threshold": np.zeros(len(labels)), "adapter": np.zeros(len(labels))}
    for fold in range(k):
        test, train = folds == fold, folds != fold
        if not test.any():
            continue
        cut = fit_threshold(margin[train], fired[train], labels[train])
        by_rule["threshold"][test] = fired[test] * (margin[test] >= cut)
        if labels[train].min() == labels[train].max():
            by_rule["adapter"][test] = labels[train][0]
            continue
        weights, bias = fit_logistic(features[train], labels[train])
        by_rule["adapter"][test] = (features[test] @ weights + bias) >= 0
    scored = {rule: metrics(predicted, labels) for rule, predicted in by_rule.items()}
    rule = "adapter" if scored["adapter"]["macro_f1"] > scored["threshold"]["macro_f1"] else "threshold"
    before = metrics(fired, labels)
    right_before, right_after = fired == labels, by_rule[rule] == labels
    return {"tag": data.tag.name, "corrections": len(labels), "positives": int(labels.sum()),
            "negatives": int(len(labels) - labels.sum()), "before": before, "after": scored[rule], "method": rule,
            "candidates": scored, "gain": round(scored[rule]["macro_f1"] - before["macro_f1"], 4),
            "fixed": int((right_after & ~right_before).sum()), "broken": int((right_before & ~right_after).sum())}


# --- training, versions ------------------------------------------------------------------------
@dataclass
class FinetuneResult:
    model_id: int | None  # None for a dry run
    accepted: bool
    activated: bool
    report: dict[str, Any]


def train(catalog: Catalog, *, dry_run: bool = False, activate: bool = True) -> FinetuneResult:
    """Fit, evaluate and (unless ``dry_run``) store a new personal model; activate it if it is better."""
    version, data = collect(catalog)
    eligible = {tag_id: d for tag_id, d in sorted(data.items())
                if d.labels.sum() >= MIN_POSITIVES and len(d.labels) - d.labels.sum() >= MIN_NEGATIVES}
    tags = [evaluate(d) for d in eligible.values()]
    gains = [t["gain"] for t in tags]
    mean_gain = float(np.mean(gains)) if gains else 0.0
    worst = float(min(gains)) if gains else 0.0
    # Held-out corrections the new rules get right that the base got wrong, and the reverse (McNemar):
    # on a few dozen corrections per tag, a macro-F1 gain alone can be luck.
    fixed, broken = sum(t["fixed"] for t in tags), sum(t["broken"] for t in tags)
    z = (fixed - broken) / np.sqrt(fixed + broken) if fixed + broken else 0.0
    accepted = bool(tags and mean_gain >= MIN_MEAN_GAIN and worst >= -MAX_TAG_LOSS and z >= SIGNIFICANCE_Z)
    if not tags:
        reason = (f"no tag has {MIN_POSITIVES} accepted and {MIN_NEGATIVES} rejected corrections on embedded "
                  "photos yet: correct more with 'phototag tag' or 'phototag review'")
    elif accepted:
        reason = (f"better: mean macro-F1 gain {mean_gain:+.3f} >= {MIN_MEAN_GAIN}, worst tag {worst:+.3f}, "
                  f"{fixed} held-out corrections fixed vs {broken} broken (z {z:.1f})")
    else:
        reason = (f"not better: mean macro-F1 gain {mean_gain:+.3f} (needs >= {MIN_MEAN_GAIN}), worst tag "
                  f"{worst:+.3f} (needs >= {-MAX_TAG_LOSS}), {fixed} held-out corrections fixed vs {broken} broken "
                  f"(z {z:.1f}, needs >= {SIGNIFICANCE_Z})")
    report = {"embedder_version": version, "corrections": int(sum(len(d.labels) for d in data.values())),
              "tags": tags, "mean_gain": round(mean_gain, 4), "worst_gain": round(worst, 4),
              "fixed": fixed, "broken": broken, "z": round(float(z), 2),
              "accepted": accepted, "reason": reason, "folds": FOLDS, "seed": SEED,
              "skipped_tags": len(data) - len(eligible)}
    if dry_run or version is None:
        return FinetuneResult(None, accepted, False, report)
    with catalog.session() as session, session.begin():
        model = PersonalModel(created_at=now(), embedder_version=version, active=False, accepted=accepted,
                              corrections=report["corrections"], report=json.dumps(report))
        session.add(model)
        session.flush()
        for (tag_id, d), result in zip(eligible.items(), tags, strict=True):
            params = PersonalTagParams(model_id=model.id, tag_id=tag_id, method=result["method"])
            if result["method"] == "threshold":
                params.threshold = d.tag.raw_threshold(fit_threshold(d.margin, d.fired, d.labels))
            else:
                weights, bias = fit_logistic(d.features(), d.labels)
                params.weights, params.bias = weights.astype(np.float64).tobytes(), bias
            session.add(params)
        if accepted and activate:
            session.execute(update(PersonalModel).values(active=False))
            model.active = True
        model_id = model.id
    return FinetuneResult(model_id, accepted, accepted and activate, report)


def versions(catalog: Catalog) -> list[dict[str, Any]]:
    """Every stored personal model, oldest first, with its evaluation."""
    with catalog.session() as session:
        rows = session.scalars(select(PersonalModel).order_by(PersonalModel.id)).all()
    return [{"id": m.id, "created_at": m.created_at.isoformat(timespec="seconds"), "active": m.active,
             "accepted": m.accepted, "corrections": m.corrections, "report": json.loads(m.report)} for m in rows]


def active_model_id(session: Session) -> int | None:
    return session.scalar(select(PersonalModel.id).where(PersonalModel.active.is_(True)))


def rollback(catalog: Catalog) -> int | None:
    """Deactivate the active model and re-activate the accepted one before it (or none); the library
    goes back to the previous model's suggestions exactly. Returns the model now active."""
    with catalog.session() as session, session.begin():
        current = active_model_id(session)
        if current is None:
            raise FinetuneError("no personal model is active: nothing to roll back")
        previous = session.scalar(select(PersonalModel.id).where(PersonalModel.id < current,
                                                                 PersonalModel.accepted.is_(True))
                                  .order_by(PersonalModel.id.desc()).limit(1))
        session.execute(update(PersonalModel).values(active=False))
        if previous is not None:
            session.execute(update(PersonalModel).where(PersonalModel.id == previous).values(active=True))
        _reset(session, None, None)
    if previous is not None:
        apply_active(catalog)
    return previous


# --- applying ------------------------------------------------------------------------------------
@dataclass
class _Rule:
    tag: _TagInfo
    method: str
    threshold: float | None
    weights: np.ndarray | None
    bias: float | None


def _rules(session: Session, model_id: int) -> list[_Rule]:
    rows = session.scalars(select(PersonalTagParams).where(PersonalTagParams.model_id == model_id)
                           .order_by(PersonalTagParams.tag_id)).all()
    infos = _tag_infos(session, [r.tag_id for r in rows])
    return [_Rule(infos[r.tag_id], r.method, r.threshold,
                  None if r.weights is None else np.frombuffer(r.weights, dtype=np.float64), r.bias)
            for r in rows if r.tag_id in infos]


def _chunks(ids: Sequence[int]) -> list[list[int]]:
    return list(batched(ids, 900))  # below SQLite's limit on bound parameters


def _reset(session: Session, photo_ids: Sequence[int] | None, tag_ids: Sequence[int] | None) -> None:
    """Back to the base model's suggestions: withheld ones return, personal ones go."""
    def scope(model: Any, ids: list[int] | None) -> Any:
        condition = model.photo_id.in_(ids) if ids is not None else true()
        return and_(condition, model.tag_id.in_(list(tag_ids))) if tag_ids is not None else condition

    for ids in _chunks(photo_ids) if photo_ids is not None else [None]:
        hidden = session.execute(select(PersonalHidden.photo_id, PersonalHidden.tag_id, PersonalHidden.score,
                                        PersonalHidden.model_version).where(scope(PersonalHidden, ids))).all()
        if hidden:
            present = set(session.execute(select(PhotoTag.photo_id, PhotoTag.tag_id).where(
                PhotoTag.photo_id.in_({h.photo_id for h in hidden}))).all())
            stamp = now()
            restore = [{"photo_id": h.photo_id, "tag_id": h.tag_id, "score": h.score, "source": SOURCE_MODEL,
                        "state": SUGGESTED, "model_version": h.model_version, "updated_at": stamp}
                       for h in hidden if (h.photo_id, h.tag_id) not in present]
            if restore:
                session.execute(cast(Table, PhotoTag.__table__).insert(), restore)
            session.execute(delete(PersonalHidden).where(scope(PersonalHidden, ids)))
        session.execute(delete(PhotoTag).where(scope(PhotoTag, ids), PhotoTag.state == SUGGESTED,
                                               PhotoTag.model_version.like(f"{PERSONAL_PREFIX}%")))


def _decide(rule: _Rule, embeddings: np.ndarray, fired: np.ndarray, margin: np.ndarray,
            scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fires, score to show) for each photo."""
    if rule.method == "threshold":
        return (fired > 0) & (np.nan_to_num(scores, nan=-np.inf) >= rule.threshold), scores
    probability = _sigmoid(_features(embeddings, fired, margin) @ rule.weights + rule.bias)
    return probability >= 0.5, probability


def _apply_rules(session: Session, model_id: int, rules: list[_Rule], photo_ids: np.ndarray,
                 embeddings: np.ndarray) -> dict[str, int]:
    counts = {"added": 0, "withheld": 0}
    if not len(photo_ids) or not rules:
        return counts
    ids = photo_ids.tolist()
    tag_ids = [r.tag.id for r in rules]
    _reset(session, ids, tag_ids)
    rows: dict[tuple[int, int], Any] = {}
    for chunk in _chunks(ids):
        for row in session.execute(select(PhotoTag.photo_id, PhotoTag.tag_id, PhotoTag.score, PhotoTag.source,
                                          PhotoTag.state, PhotoTag.model_version)
                                   .where(PhotoTag.photo_id.in_(chunk), PhotoTag.tag_id.in_(tag_ids))):
            rows[(row.photo_id, row.tag_id)] = row
    position = {photo_id: i for i, photo_id in enumerate(ids)}
    stamp = now()
    version = f"{PERSONAL_PREFIX}{model_id}"
    for rule in rules:
        fired = np.zeros(len(ids))
        scores = np.full(len(ids), np.nan)
        for (photo_id, tag_id), row in rows.items():
            if tag_id == rule.tag.id and _base_fired(row.score, row.source, row.model_version):
                fired[position[photo_id]], scores[position[photo_id]] = 1.0, row.score
        fires, shown = _decide(rule, embeddings, fired, rule.tag.margin(scores) * fired, scores)
        hide: list[dict[str, Any]] = []
        add: list[dict[str, Any]] = []
        for i, photo_id in enumerate(ids):
            current = rows.get((photo_id, rule.tag.id))
            if current is not None:
                if fired[i] and not fires[i] and current.state == SUGGESTED:
                    hide.append({"photo_id": photo_id, "tag_id": rule.tag.id, "score": current.score,
                                 "model_version": current.model_version})
            elif fires[i]:
                add.append({"photo_id": photo_id, "tag_id": rule.tag.id, "score": float(shown[i]),
                            "source": SOURCE_MODEL, "state": SUGGESTED, "model_version": version,
                            "updated_at": stamp})
        if hide:
            session.execute(cast(Table, PersonalHidden.__table__).insert(), hide)
            for chunk in _chunks([h["photo_id"] for h in hide]):
                session.execute(delete(PhotoTag).where(PhotoTag.tag_id == rule.tag.id, PhotoTag.photo_id.in_(chunk),
                                                       PhotoTag.state == SUGGESTED))
        if add:
            session.execute(cast(Table, PhotoTag.__table__).insert(), add)
        counts["added"] += len(add)
        counts["withheld"] += len(hide)
    return counts


def _embeddings_for(session: Session, version: str, photo_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    rows: list[Any] = []
    for chunk in _chunks(photo_ids):
        rows += session.execute(select(Embedding.photo_id, Embedding.vector).where(
            Embedding.photo_id.in_(chunk), Embedding.model_version == version).order_by(Embedding.photo_id)).all()
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0))
    return (np.asarray([r[0] for r in rows], dtype=np.int64),
            np.stack([r[1] for r in rows]).astype(np.float64))


def apply_to_photos(session: Session, photo_ids: Sequence[int]) -> None:
    """Apply the active personal model to these photos (the indexer calls this for each batch)."""
    model_id = active_model_id(session)
    if model_id is None or not photo_ids:
        return
    version = session.scalar(select(PersonalModel.embedder_version).where(PersonalModel.id == model_id))
    if version is None:  # a model without its embedder cannot be applied: the photos keep the base tags
        return
    ids, embeddings = _embeddings_for(session, version, photo_ids)
    _apply_rules(session, model_id, _rules(session, model_id), ids, embeddings)


def apply_active(catalog: Catalog) -> dict[str, int]:
    """Apply the active personal model to the whole library (retroactively); counts of what changed."""
    totals = {"added": 0, "withheld": 0, "photos": 0}
    with catalog.session() as session:
        model_id = active_model_id(session)
        if model_id is None:
            raise FinetuneError("no personal model is active: run 'phototag finetune' first")
        version = session.scalar(select(PersonalModel.embedder_version).where(PersonalModel.id == model_id))
        if version is None:
            raise FinetuneError("the active personal model records no embedder: run 'phototag finetune' again")
        all_ids = session.scalars(select(Embedding.photo_id).where(Embedding.model_version == version)
                                  .order_by(Embedding.photo_id)).all()
        rules = _rules(session, model_id)  # plain values: read once, not once per chunk
    with catalog.session() as session, session.begin():
        _reset(session, None, None)  # whatever an earlier model did goes first
    for start in range(0, len(all_ids), CHUNK):
        with catalog.session() as session, session.begin():
            ids, embeddings = _embeddings_for(session, version, all_ids[start:start + CHUNK])
            counts = _apply_rules(session, model_id, rules, ids, embeddings)
        totals["added"] += counts["added"]
        totals["withheld"] += counts["withheld"]
        totals["photos"] += len(ids)
    return totals
