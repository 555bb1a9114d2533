"""Search latency on synthetic catalogs of 100k and 1M photos: tag, semantic, mixed and similar: queries,
exact (flat) and approximate (auto: IVF from 250k vectors) FAISS, recall@50 and memory.

    .venv/bin/python bench/bench_search.py                       # both sizes (the first run builds the catalogs)
    .venv/bin/python bench/bench_search.py --sizes 100k --repeat 1
    .venv/bin/python bench/bench_search.py --rebuild             # build the catalogs again
    .venv/bin/python bench/bench_search.py --explain             # also write SQLite's plan of each query (timed too)

Data     catalogs under bench/.cache/search-100k and search-1m (built once, about 20 s and 3 minutes on
         2 cores; reused while their build.json matches), rows inserted straight into a catalog that
         Alembic made: photos in YEAR/DATE EVENT folders (events of ~150 photos over 2010-2024, seven
         cameras, a third with GPS, 85% jpeg, 12% heif, 3% png, 1% undated, 0.1% missing); the 4585
         built-in tags (names and Chinese names); 20 tags per photo drawn without replacement from a
         log-normal popularity over the tags (the most common on ~20% of photos, the 30th on ~5%, the
         median one on 0.2%, the rarest on a handful), half of them from 8 tags typical of the photo's
         embedding cluster; score in (threshold, 1); 98% model tags (96.5% suggested, 3% accepted, 0.5%
         rejected), 1% user and 1% file tags (accepted, no score); a 512-d float32 unit embedding per photo
         shaped like CLIP's: normalise(0.67 common + 0.55 centre + 0.5 noise) around 2000 cluster centres
         grouped in 100 topics, so two unrelated photos have cosine ~0.45 and two of one cluster ~0.75.
Queries  per kind, at least 30 varied ones, each run --repeat times (its median counts), after one
         warm-up per kind; p50/p95 over the queries. tag: `tag:X`, `tag:X tag:Y`, `tag:X OR tag:Y -tag:Z`,
         `tag:X date:2019`, Chinese names, with common, mid and rare tags. semantic: free words. mixed:
         `words tag:X date:2015..2020`. similar: `similar:PATH` of an indexed photo. limit 50, the default
         relevance cutoff (0.2).
Text     a stand-in text embedder gives each phrase a vector near one cluster centre (cosine ~0.3 with
         that cluster's photos, ~0.15 ± 0.03 with the others: as CLIP ViT-B/16's text-to-image scores,
         so ~5% of the library passes the 0.2 cutoff). Its cost (~0.1 ms) is in the timings; CLIP's own
         text encoding is timed apart, with the full-size random CLIP ViT-B/16.
Process  each (size, index) runs in a fresh process: the index is built once if needed (by a process of
         its own), then loaded (RSS before and after), then the queries, with catalog.db read into the
         OS page cache beforehand (warm: the disk is not timed). The tag queries do not touch
         FAISS and run with the flat index only. recall@50: share of the exact top 50 that the
         approximate mode also returns in its top 50, averaged over the queries.
Results go to bench/results/search.md.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Collection, Iterable, Iterator
from contextlib import closing
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from _machine import cpu_name  # noqa: E402 - bench/ is the script folder, first on sys.path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

CACHE = HERE / ".cache"
OUT = HERE / "results" / "search.md"
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}  # 10k: a quick check
DEFAULT_SIZES = ("100k", "1m")
MODES = ("flat", "auto")
KINDS = ("tag", "semantic", "mixed", "similar")
TEXT_ENCODER_BUNDLE = "bench_clip_random"  # the full-size random CLIP ViT-B/16 of bench_indexer.py

SEED = 0
GENERATOR = 2  # bump when the data below changes: catalogs built by another generator are rebuilt
VERSION = f"bench_clip@seed{SEED}"
TAGGER_VERSION = "ram_plus_swin_l_384@497c1788e87d"  # as long as the real RAM++'s
DIM = 512
CLUSTERS, TOPICS = 2000, 100
IMAGE_MIX = (0.45, 0.30, 0.25)  # squared weights of the common direction, the cluster centre, the noise
TEXT_MIX = (0.22, 0.27)  # a phrase's weights on the image common direction and its cluster's centre
TOPIC_SHARE = 0.4  # squared weight of a cluster centre's topic
TAG_SIGMA = 1.3  # log-normal spread of tag popularity
TAGS_PER_PHOTO, SIGNATURE_TAGS = 20, 8
ROOT = "/home/bench/Pictures"
STAMP = "2024-05-01 03:00:00.000000"  # SQLAlchemy's DATETIME text format on SQLite
CHUNK = 20_000

# Aims from the issue, at 1M photos: p50 ms (exact, approximate) and the approximate recall@50.
AIMS = {"tag": (50.0, 50.0), "semantic": (150.0, 20.0), "mixed": (150.0, 20.0)}
AIM_RECALL = 0.95
COMMON_TAGS = ("person", "outdoor", "sky", "tree", "man", "woman", "building", "water", "car", "city", "grass",
               "cloud", "food", "table", "child", "dog", "road", "beach", "mountain", "flower", "sea", "girl", "boy",
               "cat", "night", "snow", "sunset", "plant", "house", "smile")
EVENTS = ("Birthday", "Summer trip", "Beach", "Christmas", "Hike", "Wedding", "Weekend", "School", "Garden",
          "Zoo", "Paris", "Ski", "Concert", "Family", "Road trip", "Picnic", "New Year", "Camping")
CAMERAS = (("Apple", "iPhone 13", 0.3), ("Apple", "iPhone 8", 0.15), ("samsung", "SM-G991B", 0.15),
           ("Google", "Pixel 7", 0.1), ("Canon", "Canon EOS 80D", 0.12), ("SONY", "ILCE-7M3", 0.1),
           ("FUJIFILM", "X-T3", 0.08))
PHRASES = ("a dog on the beach", "sunset over the sea", "birthday cake with candles", "snowy mountain peak",
           "children playing in a park", "city street at night", "red sports car", "bowl of ramen",
           "cat sleeping on a sofa", "wedding ceremony", "fireworks over a river", "autumn forest path",
           "family dinner at home", "boats in a harbour", "hiking in the alps", "old castle on a hill",
           "christmas tree with lights", "surfing a big wave", "flowers in a garden", "rain on a window",
           "desert road trip", "baby's first steps", "concert crowd", "waterfall in the jungle", "skiing downhill",
           "northern lights", "picnic by the lake", "a selfie with friends", "海滩上的狗", "train station platform",
           "coffee and croissant", "kids at the zoo")


# --- the embedding space -----------------------------------------------------------------------------
class EmbeddingSpace:
    """Cluster centres and the common direction of the synthetic CLIP-like embeddings (from the seed)."""

    def __init__(self, seed: int = SEED) -> None:
        rng = np.random.default_rng([seed, 1])
        self.seed = seed
        self.common = _unit(rng.standard_normal(DIM))
        topics = _unit(rng.standard_normal((TOPICS, DIM)))
        self.topic_of = rng.integers(TOPICS, size=CLUSTERS)
        own = _unit(rng.standard_normal((CLUSTERS, DIM)))
        self.centres = _unit(np.sqrt(TOPIC_SHARE) * topics[self.topic_of] + np.sqrt(1 - TOPIC_SHARE) * own)
        self.popularity = rng.lognormal(0.0, 1.0, CLUSTERS)
        self.popularity /= self.popularity.sum()

    def images(self, clusters: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        weights = np.sqrt(IMAGE_MIX).astype(np.float32)
        noise = _unit(rng.standard_normal((len(clusters), DIM), dtype=np.float32))
        vectors = weights[0] * self.common + weights[1] * self.centres[clusters] + weights[2] * noise
        return _unit(vectors).astype(np.float32)

    def phrase_cluster(self, phrase: str) -> int:
        """The cluster a phrase is about: any, weighted by photos (people look for what they have)."""
        rng = np.random.default_rng([self.seed, 2, zlib.crc32(phrase.encode())])
        return int(rng.choice(CLUSTERS, p=self.popularity))

    def text(self, phrase: str) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 3, zlib.crc32(phrase.encode())])
        centre = self.centres[self.phrase_cluster(phrase)]
        rest = rng.standard_normal(DIM)
        for direction in (self.common, _unit(centre - (centre @ self.common) * self.common)):
            rest -= (rest @ direction) * direction  # so every phrase has the same baseline score
        weights = (*TEXT_MIX, np.sqrt(1 - TEXT_MIX[0] ** 2 - TEXT_MIX[1] ** 2))
        vector = weights[0] * self.common + weights[1] * centre + weights[2] * _unit(rest)
        return _unit(vector).astype(np.float32)


class StandInTextEmbedder:
    """Stands in for CLIP's text encoder, as ``KnownTextEmbedder`` does in tests/indexer/search/test_engine.py."""

    def __init__(self, space: EmbeddingSpace) -> None:
        self.space = space
        self.bundle = SimpleNamespace(version=VERSION)

    def embed_texts(self, texts: list[str]) -> Any:
        import torch

        return torch.from_numpy(np.stack([self.space.text(t) for t in texts]))


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


# --- the tags ----------------------------------------------------------------------------------------
def tag_popularity(names: tuple[str, ...], seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(vocabulary indices by popularity rank, draw probability of each vocabulary index)."""
    count = len(names)
    index = {name: i for i, name in enumerate(names)}
    head = [index[name] for name in COMMON_TAGS if name in index]
    rest = [i for i in range(count) if i not in set(head)]
    random.Random(seed).shuffle(rest)
    by_rank = np.asarray(head + rest)
    normal = statistics.NormalDist()
    weights = np.exp(TAG_SIGMA * np.asarray([normal.inv_cdf((count - r - 0.5) / count) for r in range(count)]))
    probability = np.empty(count)
    probability[by_rank] = weights / weights.sum()
    return by_rank, probability


def tag_signatures(rng: np.random.Generator, probability: np.ndarray) -> np.ndarray:
    """Each embedding cluster's SIGNATURE_TAGS typical tags (vocabulary indices): build_catalog's first draws from
    its generator ``np.random.default_rng([SEED, 3])``."""
    return np.stack([rng.choice(len(probability), SIGNATURE_TAGS, replace=False, p=probability)
                     for _ in range(CLUSTERS)])


def draw_tags(rng: np.random.Generator, probability: np.ndarray, signatures: np.ndarray) -> np.ndarray:
    """TAGS_PER_PHOTO distinct vocabulary indices per photo, sorted: the first distinct ones of iid draws
    (= sampling without replacement), half of the first SIGNATURE_TAGS draws being the cluster's own."""
    rows = len(signatures)
    out = np.empty((rows, TAGS_PER_PHOTO), np.int64)
    todo = np.arange(rows)
    draws = 48
    while len(todo):
        drawn = rng.choice(len(probability), size=(len(todo), draws), p=probability)
        mine = rng.random((len(todo), SIGNATURE_TAGS)) < 0.5
        drawn[:, :SIGNATURE_TAGS] = np.where(mine, signatures[todo], drawn[:, :SIGNATURE_TAGS])
        order = np.argsort(drawn, axis=1, kind="stable")
        ordered = np.take_along_axis(drawn, order, axis=1)
        repeated = np.zeros_like(ordered, dtype=bool)
        repeated[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
        first = np.empty_like(repeated)
        np.put_along_axis(first, order, ~repeated, axis=1)
        keep = first & (np.cumsum(first, axis=1) <= TAGS_PER_PHOTO)
        full = keep.sum(axis=1) == TAGS_PER_PHOTO
        out[todo[full]] = np.sort(drawn[full][keep[full]].reshape(-1, TAGS_PER_PHOTO), axis=1)
        todo, draws = todo[~full], draws * 2
    return out


# --- building a catalog ------------------------------------------------------------------------------
def catalog_dir(size: str) -> Path:
    return CACHE / f"search-{size}"


def build_spec(count: int) -> dict:
    return {"count": count, "seed": SEED, "generator": GENERATOR, "version": VERSION}


def ensure_catalog(size: str, count: int, rebuild: bool) -> dict:
    """The catalog of ``count`` photos under bench/.cache (built if missing, stale or ``rebuild``); its build.json."""
    folder = catalog_dir(size)
    info = folder / "build.json"
    if not rebuild and info.exists():
        built = json.loads(info.read_text(encoding="utf-8"))
        if built.get("spec") == build_spec(count):
            upgrade(folder)
            return built
    if folder.exists():
        shutil.rmtree(folder)
    start = time.perf_counter()
    built = build_catalog(folder, count)
    built["seconds"] = round(time.perf_counter() - start, 1)
    info.write_text(json.dumps(built, indent=1) + "\n", encoding="utf-8")
    print(f"{size}: catalog built in {built['seconds']:.0f} s", file=sys.stderr)
    return built


def upgrade(folder: Path) -> None:
    """Bring a kept catalog to the current schema now, without keeping the multi-GB backup an upgrade makes."""
    from indexer.catalog import DATABASE_FILE, Catalog

    Catalog.open(folder, create=False).close()
    for backup in folder.glob(f"{DATABASE_FILE}.backup-*"):
        backup.unlink()


def build_catalog(folder: Path, count: int, legacy: bool = False, only_tags: Collection[int] | None = None,
                  embeddings: bool = True) -> dict:
    """``legacy``: a catalog at schema revision 0005, as Phototag wrote it before migration 0006 (float32
    embeddings, photo tags' source, state and time as text), for bench_catalog.py to measure and upgrade.
    ``only_tags`` (vocabulary indices): write only these tags' photo_tags rows; ``embeddings``: False writes
    none. Both draw everything as a full build does, so the rows written are the full catalog's rows."""
    from indexer.catalog import Catalog
    from indexer.index import GENERATION_KEY
    from indexer.schema import encode_vector
    from ram_model.vocab import builtin_vocabulary

    if legacy:
        create_schema(folder, "0005")
    else:
        Catalog.open(folder).close()  # the schema, through Alembic
    vocabulary = builtin_vocabulary()
    by_rank, probability = tag_popularity(vocabulary.names)
    space = EmbeddingSpace()
    rng = np.random.default_rng([SEED, 3])
    signatures = tag_signatures(rng, probability)
    thresholds = np.asarray(vocabulary.thresholds)
    photos, clusters = photo_rows(count, space, rng)
    keep = None if only_tags is None else np.isin(np.arange(len(probability)), list(only_tags))
    tag_counts = np.zeros(len(probability), np.int64)
    with closing(sqlite3.connect(folder / "catalog.db")) as db:
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1000000", "temp_store=MEMORY"):
            db.execute(f"PRAGMA {pragma}")
        # The indexes of photos and photo_tags, made again after the inserts from their stored SQL: sorting once
        # is faster than inserting into them row by row (a primary key's or UNIQUE's own index has no SQL: kept).
        indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                             "AND tbl_name IN ('photos', 'photo_tags') ORDER BY name").fetchall()
        for name, _sql in indexes:
            db.execute(f'DROP INDEX "{name}"')
        with db:
            db.executemany("INSERT INTO tags (name, name_zh, kind, threshold) VALUES (?, ?, 'builtin', ?)",
                           zip(vocabulary.names, [zh or None for zh in vocabulary.names_zh], vocabulary.thresholds,
                               strict=True))
            columns = ", ".join(PHOTO_COLUMNS)
            db.executemany(f"INSERT INTO photos ({columns}) VALUES ({', '.join('?' * len(PHOTO_COLUMNS))})", photos)
        for start in range(0, count, CHUNK):
            ids = np.arange(start + 1, min(start + CHUNK, count) + 1)
            chunk_clusters = clusters[start:start + len(ids)]
            tags = draw_tags(rng, probability, signatures[chunk_clusters])
            tag_counts += np.bincount(tags.ravel(), minlength=len(probability))
            with db:
                rows = tag_rows(ids, tags, thresholds, rng, keep)
                db.executemany(
                    "INSERT INTO photo_tags (photo_id, tag_id, score, source, state, model_version, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", rows if legacy else stored_tag_rows(rows))
                vectors = space.images(chunk_clusters, rng)  # drawn even when not written: the next chunk's tags
                encode = np.ndarray.tobytes if legacy else encode_vector
                if embeddings:
                    db.executemany("INSERT INTO embeddings (photo_id, model_version, dim, vector) VALUES (?, ?, ?, ?)",
                                   ((int(i), VERSION, DIM, encode(v)) for i, v in zip(ids, vectors, strict=True)))
            if (start // CHUNK) % 10 == 9 or start + len(ids) == count:
                print(f"  {start + len(ids):,} / {count:,} photos: tags and embeddings", file=sys.stderr)
        with db:
            for _name, sql in indexes:
                db.execute(sql)
            db.execute("INSERT INTO catalog_meta (key, value) VALUES (?, '1') "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (GENERATION_KEY,))
        db.execute("PRAGMA journal_mode=WAL")
    coverage = tag_counts / count
    written = int(tag_counts.sum() if keep is None else tag_counts[keep].sum())
    return {"spec": build_spec(count), "tag_rows": {"written": written, "drawn": int(tag_counts.sum())},
            "tags_by_rank": [vocabulary.names[i] for i in by_rank],
            "tags_zh_by_rank": [vocabulary.names_zh[i] for i in by_rank],
            "coverage_by_rank": [round(float(coverage[i]), 6) for i in by_rank],
            "cluster_photos": np.bincount(clusters, minlength=CLUSTERS).tolist(),
            "signatures": [[vocabulary.names[i] for i in row] for row in signatures]}


def create_schema(folder: Path, revision: str) -> None:
    """A new, empty catalog at schema ``revision`` (Alembic, as indexer.catalog upgrades)."""
    from alembic import command

    from indexer.catalog import _alembic_config, catalog_engine, schema_transaction

    folder.mkdir(parents=True, exist_ok=True)
    engine = catalog_engine(f"sqlite:///{folder / 'catalog.db'}")
    config = _alembic_config()
    try:
        with engine.connect() as connection, schema_transaction(connection):
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


PHOTO_COLUMNS = ("path", "size", "mtime_ns", "content_hash", "format", "width", "height", "orientation", "taken_at",
                 "camera_make", "camera_model", "gps_lat", "gps_lon", "status", "attempts", "tagger_version",
                 "embedder_version", "first_seen", "last_seen", "indexed_at", "missing_since")
FORMATS = (("jpeg", "jpg", 0.85), ("heif", "HEIC", 0.12), ("png", "png", 0.03))


def photo_rows(count: int, space: EmbeddingSpace, rng: np.random.Generator) -> tuple[Iterator[tuple], np.ndarray]:
    """Rows of ``count`` photos in event folders, in path order (as a first scan inserts them), and the
    embedding cluster of each (every event draws from three clusters). The clusters are drawn now, from
    ``rng``; the rows are made as they are read (at 10M, a list of them would take many GB), from a
    generator of their own."""
    py = random.Random(SEED)
    first_day, days = datetime(2010, 1, 1), (datetime(2025, 1, 1) - datetime(2010, 1, 1)).days
    events = []
    total = 0
    while total < count:
        size = min(count - total, max(1, int(py.lognormvariate(np.log(120), 0.8))))
        start = first_day + timedelta(days=py.randrange(days), hours=py.uniform(7, 19))
        events.append((start, py.choice(EVENTS), size))
        total += size
    events.sort()
    clusters = []
    for *_event, size in events:
        own = rng.choice(CLUSTERS, size=3, p=space.popularity)
        clusters.append(rng.choice(own, size=size))
    return _event_photos(events, py), np.concatenate(clusters)


def _event_photos(events: list[tuple[datetime, str, int]], py: random.Random) -> Iterator[tuple]:
    """photo_rows' rows, event by event; ``py`` draws only these (the clusters come from the other generator)."""
    makes = [c[:2] for c in CAMERAS]
    camera_weights = [c[2] for c in CAMERAS]
    number = 0
    for start, name, size in events:
        folder = f"{ROOT}/{start.year}/{start:%Y-%m-%d} {name}"
        camera = py.choices(makes, camera_weights)[0]
        hours = py.choice((2, 6, 12, 48, 96))
        for offset in sorted(py.uniform(0, hours * 3600) for _ in range(size)):
            number += 1
            fmt, ext = py.choices([f[:2] for f in FORMATS], [f[2] for f in FORMATS])[0]
            make, model = camera if py.random() < 0.9 else py.choices(makes, camera_weights)[0]
            taken = None if py.random() < 0.01 else (start + timedelta(seconds=offset)).strftime("%Y-%m-%d %H:%M:%S.%f")
            gps = (py.uniform(-60, 70), py.uniform(-180, 180)) if py.random() < 1 / 3 else (None, None)
            missing = py.random() < 0.001
            yield (f"{folder}/IMG_{number:07d}.{ext}", py.randrange(1_500_000, 6_000_000),
                   1_700_000_000_000_000_000 + number, py.randbytes(32).hex(), fmt, 4000, 3000, 1, taken,
                   make, model, *gps, "missing" if missing else "indexed", 0, TAGGER_VERSION, VERSION,
                   STAMP, STAMP, STAMP, STAMP if missing else None)


def tag_rows(ids: np.ndarray, tags: np.ndarray, thresholds: np.ndarray, rng: np.random.Generator,
             keep: np.ndarray | None = None) -> Iterator[tuple]:
    """photo_tags rows: photo by photo, tags in id order (as Indexer._store_results writes them). ``keep``
    (a boolean per vocabulary index): only those tags' rows, drawn as all rows are."""
    shape = tags.shape
    floor = thresholds[tags]
    scores = (floor + (1 - floor) * rng.random(shape) ** 2).round(4)
    who, verdict = rng.random(shape), rng.random(shape)
    sources = np.where(who < 0.01, "user", np.where(who < 0.02, "file", "model"))
    states = np.where(who < 0.02, "accepted", np.where(verdict < 0.03, "accepted",
                                                       np.where(verdict < 0.035, "rejected", "suggested")))
    wanted = np.ones(shape, bool) if keep is None else keep[tags]
    photo_ids = np.repeat(ids, shape[1]).reshape(shape)[wanted].tolist()
    tag_ids = (tags + 1)[wanted].tolist()  # tag rows were inserted in vocabulary order: id = index + 1
    for photo_id, tag_id, score, source, state in zip(photo_ids, tag_ids, scores[wanted].tolist(),
                                                      sources[wanted].tolist(), states[wanted].tolist(), strict=True):
        model = source == "model"
        yield (photo_id, tag_id, score if model else None, source, state, TAGGER_VERSION if model else None, STAMP)


def stored_tag_rows(rows: Iterable[tuple]) -> Iterator[tuple]:
    """tag_rows' rows as schema 0006 stores them: source and state as codes (indexer.schema.Code), the time as
    integer microseconds (indexer.schema.Microseconds)."""
    from indexer.schema import TAG_SOURCES, TAG_STATES

    sources, states = {w: i for i, w in enumerate(TAG_SOURCES)}, {w: i for i, w in enumerate(TAG_STATES)}
    stamp = int((datetime.fromisoformat(STAMP) - datetime(1970, 1, 1)) / timedelta(microseconds=1))
    for row in rows:
        yield (*row[:3], sources[row[3]], states[row[4]], row[5], stamp)


# --- queries -----------------------------------------------------------------------------------------
def quote(value: str) -> str:
    if value and all(c.isalnum() or c in "-_'." for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


TAG_SHAPES = ("tag:common", "tag:mid", "tag:rare", "tag:common tag:common", "tag:common tag:rare",
              "tag:common OR tag:common -tag:common", "tag:rare OR tag:mid -tag:common", "tag:common date:2019",
              "tag:mid date:2019", "tag:中文 (common)")


def make_queries(built: dict, count: int, folder: Path) -> dict[str, list[tuple[str, str]]]:
    """(shape, query) pairs per kind; the same tags and phrases at every size."""
    return text_queries(built) | {"similar": similar_queries(count, folder)}


def text_queries(built: dict) -> dict[str, list[tuple[str, str]]]:
    """make_queries' tag, semantic and mixed queries: from build_catalog's ``tags_by_rank``, ``tags_zh_by_rank``
    and ``signatures``, no catalog needed."""
    rng = random.Random(SEED)
    names = built["tags_by_rank"]
    tag_queries = make_tag_queries(names, built["tags_zh_by_rank"], rng)
    space = EmbeddingSpace()
    semantic = [("words", phrase) for phrase in PHRASES]
    mixed = []
    for number, phrase in enumerate(PHRASES):
        signature = built["signatures"][space.phrase_cluster(phrase)]
        name = rng.choice(signature) if number % 3 else names[rng.randrange(0, 30)]
        mixed.append(("words tag:X date:2015..2020", f"{phrase} tag:{quote(name)} date:2015..2020"))
    return {"tag": tag_queries, "semantic": semantic, "mixed": mixed}


def similar_queries(count: int, folder: Path) -> list[tuple[str, str]]:
    """make_queries' ``similar:PATH`` queries: indexed photos of the catalog in ``folder`` (``count`` photos)."""
    with closing(sqlite3.connect(folder / "catalog.db")) as db:
        picks = random.Random(SEED + count).sample(range(1, count + 1), 60)
        paths = [row[0] for row in db.execute(
            f"SELECT path FROM photos WHERE status = 'indexed' AND id IN ({','.join(map(str, picks))}) ORDER BY id")]
    return [("similar:PATH", f"similar:{quote(path)}") for path in paths[:len(PHRASES)]]


def make_tag_queries(names: list[str], names_zh: list[str], rng: random.Random | None = None) -> list[tuple[str, str]]:
    """make_queries' (shape, query) pairs of kind "tag", 4 of each shape in TAG_SHAPES: from the tags' names
    by popularity rank (build_catalog's ``tags_by_rank``, ``tags_zh_by_rank``), no catalog needed. ``rng``:
    make_queries' generator, which goes on to the mixed queries (default: a new one, as make_queries starts)."""
    rng = random.Random(SEED) if rng is None else rng

    def tag(band: str) -> str:
        low, high = {"common": (0, 30), "mid": (100, 1000), "rare": (3000, len(names))}[band]
        return "tag:" + quote(names[rng.randrange(low, high)])

    shapes = {
        "tag:common": lambda: tag("common"),
        "tag:mid": lambda: tag("mid"),
        "tag:rare": lambda: tag("rare"),
        "tag:common tag:common": lambda: f"{tag('common')} {tag('common')}",
        "tag:common tag:rare": lambda: f"{tag('common')} {tag('rare')}",
        "tag:common OR tag:common -tag:common": lambda: f"{tag('common')} OR {tag('common')} -{tag('common')}",
        "tag:rare OR tag:mid -tag:common": lambda: f"{tag('rare')} OR {tag('mid')} -{tag('common')}",
        "tag:common date:2019": lambda: f"{tag('common')} date:2019",
        "tag:mid date:2019": lambda: f"{tag('mid')} date:2019",
        "tag:中文 (common)": lambda: "tag:" + quote(names_zh[rng.randrange(0, 30)]),
    }
    assert tuple(shapes) == TAG_SHAPES
    return [(shape, make()) for _ in range(4) for shape, make in shapes.items()]


# --- measuring, in a fresh process per (size, index) -------------------------------------------------
def rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def worker(spec: dict) -> dict:
    """Open the catalog and the index (``spec["prepare"]``: only that), then time the queries."""
    from indexer.catalog import Catalog
    from indexer.search.engine import Searcher

    catalog = Catalog.open(spec["catalog"], create=False)
    options = {}
    if "vector_index" in inspect.signature(Searcher).parameters:
        options["vector_index"] = spec["mode"]
    elif spec["mode"] != "flat":
        raise SystemExit("this Searcher has no vector_index parameter: only the flat index can be measured")
    searcher = Searcher(catalog, StandInTextEmbedder(EmbeddingSpace()), **options)
    before, _ = rss_mb()
    start = time.perf_counter()
    index = searcher.vectors()
    loaded = time.perf_counter() - start
    after, peak = rss_mb()
    result: dict[str, Any] = {"load_s": loaded, "rss_before": before, "rss_after": after, "hwm_after": peak,
                              "kind": getattr(index, "kind", "flat"), "count": len(index)}
    if spec.get("prepare"):
        return result
    faiss_seconds: list[float] = []
    fetch_seconds: list[float] = []  # of faiss_seconds, an IVF-PQ index's reads of its candidates' exact vectors

    def timed(method: Any, into: list[float] = faiss_seconds) -> Any:
        def timed_method(*args: Any, **kwargs: Any) -> Any:
            begin = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                into.append(time.perf_counter() - begin)
        return timed_method

    # The engine calls searcher.vectors().search (and search_ids for a filter's photos): this same object.
    index.search = timed(index.search)
    if hasattr(index, "search_ids"):
        index.search_ids = timed(index.search_ids)
    if getattr(index, "exact_vectors", None) is not None:
        index.exact_vectors = timed(index.exact_vectors, fetch_seconds)
    plans = explain_hook(catalog) if spec.get("explain") else None
    result["queries"] = {}
    for kind, queries in spec["queries"].items():
        searcher.search(queries[0][1])  # warm-up
        measured = []
        for shape, text in queries:
            runs = []
            for _ in range(spec["repeat"]):
                faiss_seconds.clear()
                fetch_seconds.clear()
                if plans is not None:
                    plans.clear()
                begin = time.perf_counter()
                found = searcher.search(text, limit=50)
                runs.append((time.perf_counter() - begin, sum(faiss_seconds), sum(fetch_seconds)))
            seconds, in_faiss, fetching = sorted(runs)[(len(runs) - 1) // 2]
            measured.append({"shape": shape, "query": text, "ms": seconds * 1000, "faiss_ms": in_faiss * 1000,
                             "fetch_ms": fetching * 1000,
                             "total": found.total, "paths": [r.path for r in found.results],
                             "plan": list(plans) if plans is not None else None})
        result["queries"][kind] = measured
        print(f"  {kind}: p50 {statistics.median(m['ms'] for m in measured):.1f} ms", file=sys.stderr)
    result["rss_end"], result["hwm_end"] = rss_mb()
    catalog.close()
    return result


def explain_hook(catalog: Any) -> list[str]:
    """Record SQLite's plan of each search's main statement (the one with ``count(*) OVER ()``)."""
    from sqlalchemy import event

    plans: list[str] = []

    def before(connection: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "OVER ()" in statement and not statement.startswith("EXPLAIN"):
            plan = cursor.connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            plans.append(statement)
            plans.extend(f"{row[0]}/{row[1]}: {row[3]}" for row in plan)

    event.listen(catalog.engine, "before_cursor_execute", before)
    return plans


def run_worker(spec: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker"], input=json.dumps(spec), capture_output=True,
                          text=True, check=False)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"worker for {spec['catalog']} ({spec['mode']}) exited with {done.returncode}")
    return json.loads(done.stdout)


def into_page_cache(path: Path) -> None:
    """Read a file once so that queries time a warm catalog, not the disk."""
    with open(path, "rb") as handle:
        while handle.read(1 << 24):
            pass


def vector_files(folder: Path, mode: str | None) -> tuple[Path, Path]:
    stem = "vectors" if mode is None else f"vectors.{mode}"
    return folder / f"{stem}.faiss", folder / f"{stem}.json"


def use_kept_vectors(folder: Path, mode: str) -> tuple[tuple[Path, Path], tuple[Path, Path]]:
    """Move ``mode``'s kept index (vectors.MODE.*) into the live place, clearing what was live; (live, kept)."""
    live, kept = vector_files(folder, None), vector_files(folder, mode)
    for path in live:
        path.unlink(missing_ok=True)
    if kept[0].exists() and kept[1].exists():
        for source, target in zip(kept, live, strict=True):
            source.rename(target)
    return live, kept


def measure(folder: Path, mode: str, queries: dict, repeat: int, explain: bool) -> dict:
    """Prepare (build once) and measure ``mode``; each mode keeps its FAISS file as vectors.MODE.faiss."""
    live, kept = use_kept_vectors(folder, mode)
    built = not live[0].exists()
    build_info = folder / f"vectors.{mode}.build.json"  # the one-off build's time, for later runs' tables
    try:
        spec = {"catalog": str(folder), "mode": mode, "repeat": repeat, "explain": explain}
        prepared = run_worker(spec | {"prepare": True})
        into_page_cache(folder / "catalog.db")
        if built:
            build_info.write_text(json.dumps({"build_s": prepared["load_s"], "build_hwm": prepared["hwm_after"],
                                              "date": date.today().isoformat()}) + "\n", encoding="utf-8")
        result = run_worker(spec | {"queries": queries})
        if build_info.exists():
            result |= json.loads(build_info.read_text(encoding="utf-8")) | {"built_now": built}
        result["faiss_mb"] = live[0].stat().st_size / 2**20
    finally:
        if live[0].exists() and live[1].exists():
            for source, target in zip(live, kept, strict=True):
                source.rename(target)
    return result


def text_encoder_latency(runs: int = 20) -> tuple[float, float, int]:
    """Median and p95 ms of the full-size random CLIP ViT-B/16 encoding one phrase; torch threads."""
    import torch

    from ram_model.store import ModelStore

    store = ModelStore(CACHE)
    if not store.exists(TEXT_ENCODER_BUNDLE):
        print(f"writing random-weight clip_vit_b16 bundle {TEXT_ENCODER_BUNDLE} to {CACHE} (once)", file=sys.stderr)
        store.create_random("clip_vit_b16", TEXT_ENCODER_BUNDLE, seed=0)
    embedder = store.load_embedder(TEXT_ENCODER_BUNDLE)
    embedder.embed_texts(["a dog on the beach"])
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        embedder.embed_texts(["a dog on the beach"])
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), float(np.percentile(times, 95)), torch.get_num_threads()


# --- the report --------------------------------------------------------------------------------------
def machine() -> str:
    import faiss

    cpu = cpu_name()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB; FAISS {faiss.__version__}, SQLite "
            f"{sqlite3.sqlite_version}, NumPy {np.__version__}, Python {platform.python_version()}")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def recall(exact: list[dict], approximate: list[dict]) -> tuple[float, float] | None:
    shares = [len(set(a["paths"]) & set(e["paths"])) / len(e["paths"])
              for e, a in zip(exact, approximate, strict=True) if e["paths"]]
    return (statistics.mean(shares), min(shares)) if shares else None


def verdict(kind: str, mode: str, p50: float, share: tuple[float, float] | None) -> str:
    if kind not in AIMS:
        return ""
    approximate = mode != "flat" and kind != "tag"
    limit = AIMS[kind][approximate]
    aim = f"≤ {limit:.0f} ms" + (f", recall ≥ {AIM_RECALL}" if approximate else "")
    met = p50 <= limit and (not approximate or (share is not None and share[0] >= AIM_RECALL))
    return f"{aim}: {'met' if met else '**missed**'}"


def source_state() -> str:
    """The commit measured, and whether indexer/ had changes not committed (read-only git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "indexer"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' with uncommitted changes in indexer/' if dirty else ''}"


def report(results: dict, builds: dict, text: tuple[float, float, int] | None, repeat: int,
           load: float) -> list[str]:
    command = " ".join(["bench/bench_search.py", *sys.argv[1:]])
    lines = ["# Search benchmark (synthetic catalogs)", "",
             f"Machine: {machine()}; load average {load:.1f} at the start (a shared machine). Code: {source_state()}. "
             f"Command: `.venv/bin/python {command}` ({date.today().isoformat()}), each query "
             f"run {repeat} time(s), its median counted; p50/p95 over the queries. What is measured and how the data "
             "look: the docstring of `bench/bench_search.py`.", ""]
    for size, built in builds.items():
        coverage = built["coverage_by_rank"]
        lines.append(f"- {size}: {built['spec']['count']:,} photos, built in {built.get('seconds', 0):.0f} s. Tag "
                     f"coverage: most common ({built['tags_by_rank'][0]}) {coverage[0]:.1%}, 30th {coverage[29]:.1%}, "
                     f"1000th {coverage[999]:.2%}, median {coverage[len(coverage) // 2]:.2%}, rarest on "
                     f"{round(coverage[-1] * built['spec']['count'])} photos; photos per embedding cluster: median "
                     f"{statistics.median(built['cluster_photos']):.0f}, max {max(built['cluster_photos'])}.")
    lines += ["", "Aims (the issue, at 1M photos): tag queries p50 ≤ 50 ms; semantic and mixed p50 ≤ 150 ms exact "
              "and ≤ 20 ms approximate with recall@50 ≥ 0.95.", "",
              "## Latency", "",
              "| photos | index | kind of query | queries | p50 ms | p95 ms | FAISS p50 ms | matches (median) "
              "| recall@50 vs flat (mean / min) | aim at 1M (p50) |",
              "|---|---|---|---:|---:|---:|---:|---:|---|---|"]
    for size, modes in results.items():
        for mode, result in modes.items():
            label = f"{mode} ({result['kind']})" if mode == "auto" else mode
            for kind in KINDS:
                measured = result["queries"].get(kind)
                if not measured:
                    continue
                times = [m["ms"] for m in measured]
                faiss_ms = statistics.median(m["faiss_ms"] for m in measured)
                share = recall(modes["flat"]["queries"][kind], measured) if mode != "flat" and "flat" in modes else None
                aim = verdict(kind, mode, percentile(times, 50), share) if size == "1m" else ""
                lines.append(f"| {size} | {label} | {kind} | {len(times)} | {percentile(times, 50):.1f} | "
                             f"{percentile(times, 95):.1f} | {faiss_ms:.1f} | "
                             f"{statistics.median(m['total'] for m in measured):,.0f} | "
                             f"{f'{share[0]:.3f} / {share[1]:.2f}' if share else ''} | {aim} |")
    lines += ["", "## Tag queries by shape (flat worker; p50 over the queries of each shape)", "",
              "| shape | example | " + " | ".join(f"{size} p50 ms | {size} matches" for size in results) + " |",
              "|---|---|" + "---:|---:|" * len(results)]
    for shape in TAG_SHAPES:
        cells, example = [], ""
        for modes in results.values():
            measured = [m for m in modes["flat"]["queries"].get("tag", []) if m["shape"] == shape]
            example = example or (measured[0]["query"] if measured else "")
            cells += [f"{statistics.median(m['ms'] for m in measured):.1f}" if measured else "",
                      f"{statistics.median(m['total'] for m in measured):,.0f}" if measured else ""]
        lines.append(f"| {shape} | `{example}` | " + " | ".join(cells) + " |")
    lines += ["", "## Memory and files", "",
              "RSS of the query process (MiB) after opening the catalog, then after loading the index (FAISS reads the "
              "whole file into memory); 'build' is the one-off rebuild from the catalog's embeddings in a process of "
              "its own, with that process's peak RSS.", "",
              "| photos | index | kind | vectors | RSS before index | RSS after load | index in RSS | load s "
              "| build s (peak RSS) | vectors.faiss MiB | catalog.db MiB |",
              "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for size, modes in results.items():
        database = (catalog_dir(size) / "catalog.db").stat().st_size / 2**20
        for mode, result in modes.items():
            build = (f"{result['build_s']:.1f} ({result['build_hwm']:,.0f})"
                     + ("" if result["built_now"] else f", {result['date']}")) if result.get("build_s") else ""
            lines.append(f"| {size} | {mode} | {result['kind']} | {result['count']:,} | {result['rss_before']:,.0f} | "
                         f"{result['rss_after']:,.0f} | {result['rss_after'] - result['rss_before']:,.0f} | "
                         f"{result['load_s']:.2f} | {build} | {result['faiss_mb']:,.0f} | {database:,.0f} |")
    lines += ["", "Float16 storage (`IndexScalarQuantizer` QT_fp16, 'SQfp16') would halve the flat index's memory and "
              "file (1 KiB instead of 2 KiB per vector: ~1 GB at 1M) with scores equal to about 1e-3 and exact search "
              "no faster (see the `indexer/vectors.py` docstring and bench/results/vectors.md)."]
    if text is not None:
        lines += ["", "## CLIP text encoding", "",
                  f"The queries above use a stand-in text embedder (~0.1 ms). CLIP ViT-B/16's own text encoder "
                  f"(`ModelStore('bench/.cache').load_embedder('{TEXT_ENCODER_BUNDLE}')`, full size, random weights, "
                  f"CPU, {text[2]} torch threads) takes `embed_texts(['a dog on the beach'])`: "
                  f"median {text[0]:.1f} ms, p95 {text[1]:.1f} ms over 20 calls after one warm-up — add it to each "
                  "semantic and mixed query."]
    plans = [(size, m) for size, modes in results.items() for kinds in modes["flat"]["queries"].values()
             for m in kinds if m.get("plan")]
    if plans:
        lines += ["", "## Query plans (flat, first query of each shape; `EXPLAIN QUERY PLAN`)", ""]
        seen = set()
        for size, m in plans:
            if (size, m["shape"]) in seen:
                continue
            seen.add((size, m["shape"]))
            lines += [f"{size} `{m['query']}` ({m['ms']:.1f} ms):", "", "```", *m["plan"][1:], "```", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(DEFAULT_SIZES),
                        help=f"comma-separated catalog sizes ({','.join(SIZES)})")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated vector_index modes (flat first)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each query (its median counts)")
    parser.add_argument("--rebuild", action="store_true", help="build the catalogs again")
    parser.add_argument("--build-only", action="store_true", help="build the catalogs and stop")
    parser.add_argument("--no-text-encoder", action="store_true", help="skip timing CLIP's text encoder")
    parser.add_argument("--explain", action="store_true", help="record the SQLite query plan of each tag query")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(sys.stdin.read()))))
        return
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := sorted(set(sizes) - set(SIZES)):
        parser.error(f"unknown size {', '.join(unknown)}: choose from {', '.join(SIZES)}")
    if not modes or modes[0] != "flat":
        parser.error("--modes must start with flat (the exact results recall is measured against)")
    load = os.getloadavg()[0]
    builds = {size: ensure_catalog(size, SIZES[size], args.rebuild) for size in sizes}
    if args.build_only:
        return
    results: dict[str, dict[str, dict]] = {}
    for size in sizes:
        queries = make_queries(builds[size], SIZES[size], catalog_dir(size))
        for mode in modes:
            print(f"{size}, vector_index={mode}", file=sys.stderr)
            wanted = queries if mode == "flat" else {k: v for k, v in queries.items() if k != "tag"}
            results.setdefault(size, {})[mode] = measure(catalog_dir(size), mode, wanted, args.repeat,
                                                         args.explain and mode == "flat")
    text = None if args.no_text_encoder else text_encoder_latency()
    lines = report(results, builds, text, args.repeat, load)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(args.out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
