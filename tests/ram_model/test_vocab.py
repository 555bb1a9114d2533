"""The shipped vocabulary: 4585 tags, Chinese names stripped, thresholds as published."""

from __future__ import annotations

import pytest

from ram_model.errors import ConfigError
from ram_model.vocab import Vocabulary, builtin_vocabulary
from tests.conftest import SHARED


def test_builtin_vocabulary_is_the_official_one() -> None:
    vocabulary = builtin_vocabulary()
    data = SHARED / "ram_data"
    assert len(vocabulary) == 4585
    assert list(vocabulary.names) == (data / "ram_tag_list.txt").read_text(encoding="utf-8").splitlines()
    raw_zh = (data / "ram_tag_list_chinese.txt").read_text(encoding="utf-8").splitlines()
    assert sum(name != name.strip() for name in raw_zh) == 2579
    assert list(vocabulary.names_zh) == [name.strip() for name in raw_zh]
    thresholds = [float(t) for t in (data / "ram_tag_list_threshold.txt").read_text().splitlines()]
    assert list(vocabulary.thresholds) == thresholds
    assert sum(t == 1.0 for t in vocabulary.thresholds) == 10


def test_tag_file_round_trip(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "tags.tsv"
    path.write_text("dog\t0.7\t狗\ncat\n\nbird\t\t鸟\n", encoding="utf-8")
    vocabulary = Vocabulary.from_file(path)
    assert vocabulary.names == ("dog", "cat", "bird")
    assert vocabulary.names_zh == ("狗", "cat", "鸟")
    assert vocabulary.thresholds == (0.7, 0.68, 0.68)
    vocabulary.to_file(tmp_path / "again.tsv")
    assert Vocabulary.from_file(tmp_path / "again.tsv") == vocabulary


def test_bad_tag_file(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "tags.tsv"
    path.write_text("dog\thigh\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tags.tsv:1: threshold 'high' is not a number"):
        Vocabulary.from_file(path)
