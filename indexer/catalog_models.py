"""Which tagger and embedder a command uses on a catalog: by default, the ones the catalog was built with.

A catalog records the model versions (``NAME@WEIGHTS``, :attr:`ram_model.store.Bundle.version`) of every
pass (``runs``) and of every photo's tags and embedding. A command that works on an existing catalog (index,
watch, search, write-metadata, custom-tag, the app) uses the catalog's models unless one was chosen on purpose
(a flag, ``PHOTOTAG_TAGGER`` / ``PHOTOTAG_EMBEDDER``). Indexing with another model on purpose re-tags or
re-embeds the photos; comparing with the stored embeddings (search, custom tags) with another embedder cannot
work — its vectors live in another space — and is refused with :class:`ModelMismatchError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import InstrumentedAttribute

from indexer.catalog import Catalog
from indexer.errors import ModelMismatchError
from indexer.schema import Photo, Run
from indexer.settings import Settings


@dataclass(frozen=True)
class CatalogModels:
    """The model versions a catalog was last indexed with; None before its first pass."""

    tagger: str | None
    embedder: str | None

    @classmethod
    def of(cls, catalog: Catalog) -> CatalogModels:
        """The versions of the latest pass (one interrupted while switching models counts: the next pass goes
        on with them); a catalog from before passes were recorded: the versions most of its photos carry."""
        with catalog.session() as session:
            latest = session.execute(select(Run.tagger_version, Run.embedder_version)
                                     .order_by(Run.id.desc()).limit(1)).first()
            tagger, embedder = latest if latest is not None else (None, None)
            if tagger is None:
                tagger = session.scalar(_most_common(Photo.tagger_version))
            if embedder is None:
                embedder = session.scalar(_most_common(Photo.embedder_version))
        return cls(tagger, embedder)


def _most_common(column: InstrumentedAttribute[str | None]) -> Select[str | None]:
    return (select(column).where(column.is_not(None)).group_by(column)
            .order_by(func.count().desc()).limit(1))


def bundle_name(version: str) -> str:
    """The model bundle a version (``NAME@WEIGHTS``) comes from."""
    return version.partition("@")[0]


@dataclass(frozen=True)
class ModelChoice:
    """What a command loads and searches on a catalog."""

    settings: Settings  # its tagger and embedder name the bundles to load
    embedder_version: str | None  # the embeddings to compare with (None: those of the embedder, once loaded)


def choose_models(catalog: Catalog, settings: Settings, *, comparing: bool = False) -> ModelChoice:
    """The one rule for which models a command uses on ``catalog``: the catalog's, unless ``settings`` chose
    others (:meth:`Settings.chosen`). A new catalog gets the settings' (the defaults).

    ``comparing``: the command compares with the stored embeddings (search, custom tags), so its embedder must
    be the catalog's, with the same weights; otherwise :class:`ModelMismatchError` says which models differ and
    what to do."""
    from ram_model.store import ModelStore

    recorded = CatalogModels.of(catalog)
    defaults = {kind: bundle_name(version) for kind, version in
                (("tagger", recorded.tagger), ("embedder", recorded.embedder))
                if version is not None and not settings.chosen(kind)}
    chosen = settings.with_overrides(**defaults) if defaults else settings
    store = ModelStore(chosen.models_dir)
    if recorded.embedder is None:  # a new catalog: the embeddings its embedder is going to make
        return ModelChoice(chosen, store.get(chosen.embedder).version if store.exists(chosen.embedder) else None)
    if not comparing:
        return ModelChoice(chosen, recorded.embedder)
    name = bundle_name(recorded.embedder)
    if chosen.embedder != name:
        raise ModelMismatchError(
            f"the catalog {catalog.directory} was indexed with the embedder {name} ({recorded.embedder}), not "
            f"{chosen.embedder}: embeddings from another model cannot be compared. Drop --embedder "
            f"(and PHOTOTAG_EMBEDDER) to use {name}, or re-index with 'phototag index PATH --embedder "
            f"{chosen.embedder}' to switch the catalog to {chosen.embedder}")
    stored = store.get(name).version if store.exists(name) else None
    if stored is not None and stored != recorded.embedder:
        raise ModelMismatchError(
            f"the catalog {catalog.directory} was indexed with {recorded.embedder}, but the model {name} in "
            f"{store.root} now has other weights ({stored}): embeddings from other weights cannot be compared. "
            f"Re-index with 'phototag index PATH' to embed the photos again, or restore the model it was built with")
    return ModelChoice(chosen, recorded.embedder)
