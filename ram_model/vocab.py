"""The tag vocabulary: English names, Chinese names and per-class thresholds, in class order.

The official 4585-tag vocabulary ships as package data (Apache-2.0, see ``data/NOTICE``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from ram_model.errors import ConfigError

DEFAULT_THRESHOLD = 0.68  # the reference's global threshold, used where a tag file gives none


@dataclass(frozen=True)
class Vocabulary:
    """Tag names and thresholds; index ``i`` is class ``i`` of the model."""

    names: tuple[str, ...]
    names_zh: tuple[str, ...]
    thresholds: tuple[float, ...]

    def __post_init__(self) -> None:
        if not len(self.names) == len(self.names_zh) == len(self.thresholds):
            raise ConfigError(
                f"vocabulary lists differ in length: {len(self.names)} names, {len(self.names_zh)} "
                f"Chinese names, {len(self.thresholds)} thresholds"
            )

    def __len__(self) -> int:
        return len(self.names)

    def head(self, count: int) -> Vocabulary:
        """The first ``count`` tags (tiny test models use the first tags of the official list)."""
        if count > len(self):
            raise ConfigError(f"the vocabulary has {len(self)} tags, fewer than the {count} asked for")
        return Vocabulary(self.names[:count], self.names_zh[:count], self.thresholds[:count])

    def indices(self, tags: Iterable[str]) -> list[int]:
        """Class indices of tags given by English or Chinese name; an unknown tag is an error."""
        lookup = {name: index for index, name in enumerate(self.names)}
        for index, name in enumerate(self.names_zh):
            lookup.setdefault(name, index)
        result, unknown = [], []
        for tag in tags:
            if tag in lookup:
                result.append(lookup[tag])
            else:
                unknown.append(tag)
        if unknown:
            raise ConfigError(f"unknown tag(s): {', '.join(unknown)}")
        return result

    @classmethod
    def from_lists(
        cls, names: Sequence[str], names_zh: Sequence[str] | None = None, thresholds: Sequence[float] | None = None
    ) -> Vocabulary:
        names_zh = names_zh if names_zh is not None else names
        thresholds = thresholds if thresholds is not None else [DEFAULT_THRESHOLD] * len(names)
        return cls(tuple(names), tuple(n.strip() for n in names_zh), tuple(float(t) for t in thresholds))

    @classmethod
    def from_file(cls, path: str | Path) -> Vocabulary:
        """Read a tag file: one tag a line, optionally ``name<TAB>threshold<TAB>chinese name``."""
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read tag file {path}: {exc}") from exc
        names, names_zh, thresholds = [], [], []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            parts = line.split("\t")
            names.append(parts[0].strip())
            try:
                thresholds.append(float(parts[1]) if len(parts) > 1 and parts[1].strip() else DEFAULT_THRESHOLD)
            except ValueError:
                raise ConfigError(f"{path}:{number}: threshold {parts[1]!r} is not a number") from None
            names_zh.append(parts[2].strip() if len(parts) > 2 else parts[0].strip())
        return cls.from_lists(names, names_zh, thresholds)

    def to_file(self, path: str | Path) -> None:
        rows = (f"{n}\t{t!r}\t{z}" for n, t, z in zip(self.names, self.thresholds, self.names_zh, strict=True))
        Path(path).write_text("\n".join(rows) + "\n", encoding="utf-8")


def _read_data(name: str) -> list[str]:
    return resources.files("ram_model").joinpath("data", name).read_text(encoding="utf-8").splitlines()


@cache
def builtin_vocabulary() -> Vocabulary:
    """The official RAM/RAM++ vocabulary of 4585 tags (Chinese names stripped for display)."""
    names = _read_data("ram_tag_list.txt")
    names_zh = _read_data("ram_tag_list_chinese.txt")
    thresholds = [float(line) for line in _read_data("ram_tag_list_threshold.txt")]
    return Vocabulary.from_lists(names, names_zh, thresholds)
