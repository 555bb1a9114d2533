"""The settings chosen in the app (its settings dialog), kept in ``$PHOTOTAG_HOME/gui.json``.

They are :class:`indexer.settings.Settings` values by field name — the app's own knobs (``tag_language``,
``threshold_offset``) are settings like the device or the metadata profile — applied over the settings the
app was started with (flags, ``PHOTOTAG_…`` variables, defaults). Settings checks them: a stored value it
rejects is left out with a warning, and the value from the environment or the default applies. A stored
null or "" (older files wrote them for "as the environment says" and "as the profile says") is no choice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from indexer.settings import Settings

log = logging.getLogger(__name__)

PREFERENCES_FILE = "gui.json"


class Preferences:
    """``base`` (the settings the app was started with) with the ``chosen`` values over it: ``settings``."""

    def __init__(self, base: Settings, chosen: Mapping[str, Any] | None = None) -> None:
        self.base = base
        self.settings = base
        self.chosen: dict[str, Any] = {}  # name -> value, each accepted by Settings
        for name, value in (chosen or {}).items():
            if value is None or value == "" or name not in Settings.model_fields or name == "home":
                continue  # no choice; "home" holds this very file
            try:
                self.settings = self.settings.with_overrides(**{name: value})
            except ValidationError as error:
                reason = "; ".join(problem["msg"] for problem in error.errors())
                log.warning("%s: %s = %r is left out (%s): the setting from the environment or its default applies",
                            self.base.home / PREFERENCES_FILE, name, value, reason)
                continue
            self.chosen[name] = getattr(self.settings, name)

    @classmethod
    def load(cls, base: Settings) -> Preferences:
        """The choices stored in ``base.home``; none for a missing or unreadable file (it is rewritten on save)."""
        path = base.home / PREFERENCES_FILE
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            stored = {}
        except (OSError, ValueError) as error:
            log.warning("%s is unreadable (%s): the app starts from the settings of the environment", path, error)
            stored = {}
        if not isinstance(stored, dict):
            log.warning("%s holds no settings (a JSON object of setting names and values): it is ignored", path)
            stored = {}
        return cls(base, stored)

    def choose(self, values: Mapping[str, Any]) -> Preferences:
        """New preferences where ``values`` (a dialog's, by setting name) replace the choices of those names. A value
        equal to the environment's, or None, is no choice: the environment's then applies."""
        kept = {name: value for name, value in self.chosen.items() if name not in values}
        given = {name: value for name, value in values.items()
                 if value is not None and value != getattr(self.base, name)}
        return Preferences(self.base, {**kept, **given})

    def save(self) -> None:
        """Write the choices to ``gui.json`` (whole or not at all)."""
        home = self.base.home
        home.mkdir(parents=True, exist_ok=True)
        target = home / PREFERENCES_FILE
        temporary = target.with_suffix(".json.tmp")
        stored = self.settings.model_dump(mode="json", include=set(self.chosen))
        temporary.write_text(json.dumps(stored, indent=2), encoding="utf-8")
        temporary.replace(target)
