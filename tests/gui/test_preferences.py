"""The settings chosen in the app (gui.json): Settings values by name, over the environment's."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gui.preferences import PREFERENCES_FILE, Preferences
from indexer.settings import Settings

pytestmark = pytest.mark.gui


def store(home: Path, data: object) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / PREFERENCES_FILE).write_text(json.dumps(data), encoding="utf-8")


def test_a_choice_round_trips_through_settings(tmp_path) -> None:  # noqa: ANN001
    base = Settings(home=tmp_path, device="cpu")
    chosen = Preferences(base).choose({"tag_language": "zh", "threshold_offset": 0.25, "batch_size": 16,
                                       "device": "cpu", "metadata_mode": None})
    chosen.save()
    assert json.loads((tmp_path / PREFERENCES_FILE).read_text(encoding="utf-8")) == {
        "batch_size": 16, "tag_language": "zh", "threshold_offset": 0.25}  # the device as given and None: no choice
    loaded = Preferences.load(base)
    assert loaded.chosen == {"batch_size": 16, "tag_language": "zh", "threshold_offset": 0.25}
    assert (loaded.settings.tag_language, loaded.settings.threshold_offset, loaded.settings.batch_size,
            loaded.settings.device) == ("zh", 0.25, 16, "cpu")
    assert loaded.settings.chosen("tag_language") and not loaded.settings.chosen("metadata_mode")


def test_the_app_s_choice_wins_over_the_environment(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("PHOTOTAG_TAG_LANGUAGE", "zh")
    monkeypatch.setenv("PHOTOTAG_THRESHOLD_OFFSET", "0.1")
    monkeypatch.setenv("PHOTOTAG_METADATA_PROFILE", "digikam")
    base = Settings(home=tmp_path)
    assert (base.tag_language, base.threshold_offset) == ("zh", 0.1)  # the app's knobs are settings
    store(tmp_path, {"tag_language": "en"})
    settings = Preferences.load(base).settings
    assert (settings.tag_language, settings.threshold_offset, settings.metadata_profile) == ("en", 0.1, "digikam")
    # Choosing the environment's value again is no choice: a later PHOTOTAG_TAG_LANGUAGE applies.
    assert Preferences.load(base).choose({"tag_language": "zh"}).chosen == {}


def test_files_of_earlier_versions_keep_working(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("PHOTOTAG_DEVICE", "cuda:1")
    store(tmp_path, {"device": None, "batch_size": 4, "threshold_offset": 0.05, "tag_language": "zh",
                     "metadata_profile": "lightroom", "sidecar_naming": "", "metadata_mode": "embed"})
    preferences = Preferences.load(Settings(home=tmp_path))
    settings = preferences.settings
    assert (settings.device, settings.batch_size, settings.threshold_offset, settings.tag_language,
            settings.metadata_profile, settings.sidecar_naming, settings.metadata_mode) == (
        "cuda:1", 4, 0.05, "zh", "lightroom", None, "embed")  # null and "": no choice (the environment's, unset)
    assert set(preferences.chosen) == {"batch_size", "threshold_offset", "tag_language", "metadata_profile",
                                       "metadata_mode"}


def test_a_value_settings_rejects_falls_back_with_a_warning(tmp_path, monkeypatch, caplog) -> None:  # noqa: ANN001
    monkeypatch.setenv("PHOTOTAG_BATCH_SIZE", "32")
    store(tmp_path, {"tag_language": "fr", "threshold_offset": 3, "batch_size": -1, "metadata_mode": "sidecar",
                     "metadata_profile": "picasa", "home": "/elsewhere", "no_such_setting": 1})
    with caplog.at_level(logging.WARNING, logger="gui.preferences"):
        preferences = Preferences.load(Settings(home=tmp_path))
    settings = preferences.settings
    assert (settings.tag_language, settings.threshold_offset, settings.batch_size, settings.metadata_mode,
            settings.home) == ("en", 0.0, 32, "sidecar", tmp_path)  # defaults, the environment's, the valid one
    assert preferences.chosen == {"metadata_mode": "sidecar"}
    warned = " ".join(record.getMessage() for record in caplog.records)
    rejected = ("tag_language", "threshold_offset", "batch_size", "metadata_profile")
    assert all(f"{name} = " in warned for name in rejected)
    assert settings.metadata_profile == "all"


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]", "\udcff"])
def test_a_missing_or_unreadable_file_gives_the_environment_s_settings(tmp_path, content) -> None:  # noqa: ANN001
    if content is not None:
        (tmp_path / PREFERENCES_FILE).write_bytes(content.encode("utf-8", "surrogateescape"))
    base = Settings(home=tmp_path, batch_size=2)
    preferences = Preferences.load(base)
    assert preferences.chosen == {} and preferences.settings == base
