"""The app's own preferences (the settings dialog), kept in ``$PHOTOTAG_HOME/gui.json``.

Device and batch size are Phototag settings: the app applies its stored choice over the environment's
(:meth:`Preferences.apply`). The rest are choices of the app: the tag language shown, the threshold
offset used to hide weak suggestions while reviewing, and how metadata is written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from indexer.metadata.profiles import DEFAULT_PROFILE, PROFILES
from indexer.settings import Settings

if TYPE_CHECKING:
    from indexer.metadata.write import Mode, Naming

PREFERENCES_FILE = "gui.json"
LANGUAGES = ("en", "zh")
SIDECAR_NAMINGS = ("", "ext", "replace")  # "": the write profile's names
METADATA_MODES = ("", "sidecar", "embed", "both")  # "": the write profile's choice


@dataclass
class Preferences:
    device: str | None = None  # None: the setting from the environment (PHOTOTAG_DEVICE) or its default
    batch_size: int | None = None
    threshold_offset: float = 0.0  # hide model suggestions scoring below their tag's threshold + this
    tag_language: str = "en"  # names shown in the photo pane: en or zh (completion offers both)
    metadata_profile: str = "all"  # the photo app(s) metadata is written for (indexer.metadata.profiles)
    # IMG.jpg.xmp (ext) or IMG.xmp (replace) for every photo; "": as the profile says
    sidecar_naming: Naming | Literal[""] = ""
    metadata_mode: Mode | Literal[""] = ""  # sidecar, embed or both; "": as the profile says

    @classmethod
    def load(cls, home: Path) -> Preferences:
        """The stored preferences; defaults for a missing or unreadable file (it is rewritten on save)."""
        try:
            data = json.loads((home / PREFERENCES_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v for k, v in data.items() if k in known} if isinstance(data, dict) else {}
        preferences = cls(**values)
        if preferences.tag_language not in LANGUAGES:
            preferences.tag_language = "en"
        if preferences.sidecar_naming not in SIDECAR_NAMINGS:
            preferences.sidecar_naming = ""
        if preferences.metadata_mode not in METADATA_MODES:
            preferences.metadata_mode = ""
        if preferences.metadata_profile not in PROFILES:
            preferences.metadata_profile = DEFAULT_PROFILE
        return preferences

    def save(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        target = home / PREFERENCES_FILE
        temporary = target.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        temporary.replace(target)

    def apply(self, settings: Settings) -> Settings:
        """``settings`` with this device and batch size (where chosen)."""
        return settings.with_overrides(device=self.device or None, batch_size=self.batch_size or None)
