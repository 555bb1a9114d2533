"""What runs after the indexer stores a batch's model results: custom tags, then the personal model.

``after_store`` is an ``indexer.index.AfterStore``: whoever builds an Indexer passes it
(``Indexer(..., after_store=[after_store])``), so the index pass knows nothing of personal learning.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from indexer.personal import custom_tags, finetune


def after_store(session: Session, photo_ids: Sequence[int]) -> None:
    """Score custom tags on ``photo_ids`` and apply the active personal model, in the batch's transaction."""
    if not photo_ids:
        return
    custom_tags.score_photos(session, photo_ids)
    finetune.apply_to_photos(session, photo_ids)
