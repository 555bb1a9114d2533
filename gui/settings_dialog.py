"""The settings dialog: device, batch size, threshold offset, tag language, metadata writing — Phototag settings
(:class:`indexer.settings.Settings`), which the app keeps as the user's choices (:mod:`gui.preferences`)."""

from __future__ import annotations

from typing import Any

from annotated_types import Ge, Le
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from indexer.metadata.profiles import PROFILES
from indexer.settings import Settings

DEVICES = ("auto", "cpu", "cuda", "mps")


class SettingsDialog(QDialog):
    """Shows the settings in use; :meth:`values` returns the edited ones, by setting name."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Phototag settings")
        self.device = QComboBox()
        self.device.setEditable(True)  # cuda:1 and the like
        self.device.addItems(DEVICES)
        self.device.setCurrentText(settings.device)
        self.device.setToolTip("auto: CUDA, then MPS, then CPU. Takes effect at the next index pass.")
        self.batch_size = QSpinBox()
        self.batch_size.setRange(0, 512)
        self.batch_size.setSpecialValueText("auto")  # 0: 8 on a CPU, from free memory on a GPU
        self.batch_size.setValue(settings.batch_size or 0)
        self.batch_size.setToolTip("Images per model call: larger is faster on a GPU, until memory runs out; "
                                   "auto: 8 on a CPU, the largest that fits on a GPU")
        self.threshold_offset = QDoubleSpinBox()
        self.threshold_offset.setRange(*_bounds("threshold_offset"))
        self.threshold_offset.setDecimals(2)
        self.threshold_offset.setSingleStep(0.01)
        self.threshold_offset.setValue(settings.threshold_offset)
        self.threshold_offset.setToolTip("Hide model suggestions scoring less than their tag's threshold plus this "
                                         "while reviewing (0: show every suggestion)")
        self.tag_language = QComboBox()
        self.tag_language.addItem("English", "en")
        self.tag_language.addItem("中文 (Chinese)", "zh")
        self.tag_language.setCurrentIndex(max(0, self.tag_language.findData(settings.tag_language)))
        self.metadata_profile = QComboBox()
        for profile in PROFILES.values():
            self.metadata_profile.addItem(profile.app[:1].upper() + profile.app[1:], profile.name)
        self.metadata_profile.setCurrentIndex(max(0, self.metadata_profile.findData(settings.metadata_profile)))
        self.metadata_profile.setToolTip("The photo apps that should see the tags: this decides the fields, the "
                                         "sidecar names and whether JPEGs are written into")
        self.sidecar_naming = QComboBox()
        self.sidecar_naming.addItem("As the app needs", "")  # "": None, the profile's
        self.sidecar_naming.addItem("IMG.jpg.xmp for every photo", "ext")
        self.sidecar_naming.addItem("IMG.xmp for every photo", "replace")
        self.sidecar_naming.setCurrentIndex(max(0, self.sidecar_naming.findData(settings.sidecar_naming or "")))
        self.metadata_mode = QComboBox()
        self.metadata_mode.addItem("As the app needs", "")
        self.metadata_mode.addItem("XMP sidecar next to the photo (never touches photos)", "sidecar")
        self.metadata_mode.addItem("Into the JPEG itself (others get a sidecar)", "embed")
        self.metadata_mode.addItem("Both", "both")
        self.metadata_mode.setCurrentIndex(max(0, self.metadata_mode.findData(settings.metadata_mode or "")))
        form = QFormLayout()
        form.addRow("Device", self.device)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Threshold offset", self.threshold_offset)
        form.addRow("Tag language", self.tag_language)
        form.addRow("Write metadata for", self.metadata_profile)
        form.addRow("Sidecar naming", self.sidecar_naming)
        form.addRow("Write metadata to", self.metadata_mode)
        where = QLabel(f"Catalog: {settings.catalog_dir}<br>Models: {settings.models_dir}<br>"
                       f"Tagger: {settings.tagger} · Embedder: {settings.embedder}")
        where.setStyleSheet("color: gray;")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(where)
        layout.addWidget(buttons)

    def values(self) -> dict[str, Any]:
        """The settings as edited, by name (None: unset — auto, the profile's)."""
        return {
            "device": self.device.currentText().strip() or "auto",
            "batch_size": self.batch_size.value() or None,
            "threshold_offset": round(self.threshold_offset.value(), 2),
            "tag_language": self.tag_language.currentData(),
            "metadata_profile": self.metadata_profile.currentData(),
            "sidecar_naming": self.sidecar_naming.currentData() or None,
            "metadata_mode": self.metadata_mode.currentData() or None,
        }


def _bounds(name: str) -> tuple[float, float]:
    """The lowest and highest value Settings accepts for ``name``."""
    limits = Settings.model_fields[name].metadata
    return (float(next(limit.ge for limit in limits if isinstance(limit, Ge))),  # type: ignore[arg-type]
            float(next(limit.le for limit in limits if isinstance(limit, Le))))  # type: ignore[arg-type]
