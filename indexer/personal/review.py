"""The review queue: the suggestions most worth a person's look, for ``phototag review`` and the app.

A suggestion's priority is its uncertainty — how close its score is to the tag's threshold, in
logit units (built-in tags score probabilities; a custom tag's cosine margin is scaled by
``finetune.CUSTOM_MARGIN_SCALE``; a personal model's suggestion is its probability against 0.5) —
boosted for tags the person often rejects: ``priority = exp(-|margin|) × (0.5 + rejection rate)``,
the rate smoothed towards one half by ``PRIOR`` imaginary corrections.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select

from indexer.catalog import Catalog
from indexer.personal.finetune import DEFAULT_THRESHOLD, PERSONAL_PREFIX, score_margin
from indexer.schema import (
    ACCEPTED,
    CUSTOM,
    MISSING,
    REJECTED,
    SOURCE_MODEL,
    SUGGESTED,
    Photo,
    PhotoTag,
    Tag,
)

PRIOR = 2.0  # imaginary corrections, half accepted and half rejected, behind every tag's rejection rate
DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class ReviewItem:
    photo_id: int
    path: str
    tag: str
    score: float
    threshold: float
    margin: float  # in logit units; 0 is on the threshold
    rejection_rate: float
    priority: float

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _margin(score: float, threshold: float, kind: str, model_version: str | None) -> tuple[float, float]:
    """The suggestion's margin and the threshold it is shown against (a personal model's is 0.5)."""
    if (model_version or "").startswith(PERSONAL_PREFIX):
        return float(score_margin(score, 0.5, cosine=False)), 0.5
    return float(score_margin(score, threshold, cosine=kind == CUSTOM)), threshold


def review_queue(catalog: Catalog, tag: str | None = None, limit: int | None = DEFAULT_LIMIT) -> list[ReviewItem]:
    """Suggestions (not yet accepted or rejected) on present photos, most worth a look first."""
    with catalog.session() as session:
        decided = session.execute(select(PhotoTag.tag_id, PhotoTag.state, func.count())
                                  .where(PhotoTag.state.in_([ACCEPTED, REJECTED]), PhotoTag.source == SOURCE_MODEL)
                                  .group_by(PhotoTag.tag_id, PhotoTag.state)).all()
        statement = (select(PhotoTag.photo_id, Photo.path, Tag.id, Tag.name, Tag.kind, Tag.threshold, PhotoTag.score,
                            PhotoTag.model_version)
                     .join(Tag, Tag.id == PhotoTag.tag_id).join(Photo, Photo.id == PhotoTag.photo_id)
                     .where(PhotoTag.state == SUGGESTED, PhotoTag.score.is_not(None), Photo.status != MISSING))
        if tag is not None:
            from indexer.personal.corrections import resolve_tag

            statement = statement.where(Tag.id == resolve_tag(session, tag).id)
        rows = session.execute(statement).all()
    accepted: dict[int, int] = {}
    rejected: dict[int, int] = {}
    for tag_id, state, count in decided:
        (accepted if state == ACCEPTED else rejected)[tag_id] = count
    items = []
    for photo_id, path, tag_id, name, kind, threshold, score, model_version in rows:
        if score is None:  # the query keeps scored suggestions only
            continue
        margin, shown = _margin(score, DEFAULT_THRESHOLD if threshold is None else threshold, kind, model_version)
        rate = (rejected.get(tag_id, 0) + PRIOR / 2) / (rejected.get(tag_id, 0) + accepted.get(tag_id, 0) + PRIOR)
        items.append(ReviewItem(photo_id, path, name, float(score), float(shown), margin, rate,
                                math.exp(-abs(margin)) * (0.5 + rate)))
    order: Sequence[int] = np.lexsort(([i.photo_id for i in items], [-i.priority for i in items])).tolist() \
        if items else []
    ranked = [items[i] for i in order]
    return ranked if limit is None else ranked[:limit]
