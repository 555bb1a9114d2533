"""What runs after the indexer stores a batch's model results: custom tags, then the personal model.

Kept apart from ``indexer/index.py`` so the index pass needs one call and knows nothing of either.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session


def after_store(session: Session, photo_ids: Sequence[int]) -> None:
    """Score custom tags on ``photo_ids`` and apply the active personal model, in the batch's transaction."""
    if not photo_ids:
        return
    from indexer import custom_tags, finetune

    custom_tags.score_photos(session, photo_ids)
    finetune.apply_to_photos(session, photo_ids)
