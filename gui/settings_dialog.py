"""The settings dialog: device, batch size, threshold offset, tag language, metadata writing."""

from __future__ import annotations

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

from gui.preferences import Preferences
from indexer.metadata.profiles import PROFILES
from indexer.settings import Settings

DEVICES = ("auto", "cpu", "cuda", "mps")


class SettingsDialog(QDialog):
    """Edits a copy of the preferences; ``preferences()`` returns the edited values."""

    def __init__(self, preferences: Preferences, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Phototag settings")
        self.device = QComboBox()
        self.device.setEditable(True)  # cuda:1 and the like
        self.device.addItems(DEVICES)
        self.device.setCurrentText(preferences.device or settings.device)
        self.device.setToolTip("auto: CUDA, then MPS, then CPU. Takes effect at the next index pass.")
        self.batch_size = QSpinBox()
        self.batch_size.setRange(0, 512)
        self.batch_size.setSpecialValueText("auto")  # 0: 8 on a CPU, from free memory on a GPU
        self.batch_size.setValue(preferences.batch_size or settings.batch_size or 0)
        self.batch_size.setToolTip("Images per model call: larger is faster on a GPU, until memory runs out; "
                                   "auto: 8 on a CPU, the largest that fits on a GPU")
        self.threshold_offset = QDoubleSpinBox()
        self.threshold_offset.setRange(0.0, 0.5)
        self.threshold_offset.setDecimals(2)
        self.threshold_offset.setSingleStep(0.01)
        self.threshold_offset.setValue(preferences.threshold_offset)
        self.threshold_offset.setToolTip("Hide model suggestions scoring less than their tag's threshold plus this "
                                         "while reviewing (0: show every suggestion)")
        self.tag_language = QComboBox()
        self.tag_language.addItem("English", "en")
        self.tag_language.addItem("中文 (Chinese)", "zh")
        self.tag_language.setCurrentIndex(max(0, self.tag_language.findData(preferences.tag_language)))
        self.metadata_profile = QComboBox()
        for profile in PROFILES.values():
            self.metadata_profile.addItem(profile.app[:1].upper() + profile.app[1:], profile.name)
        self.metadata_profile.setCurrentIndex(max(0, self.metadata_profile.findData(preferences.metadata_profile)))
        self.metadata_profile.setToolTip("The photo apps that should see the tags: this decides the fields, the "
                                         "sidecar names and whether JPEGs are written into")
        self.sidecar_naming = QComboBox()
        self.sidecar_naming.addItem("As the app needs", "")
        self.sidecar_naming.addItem("IMG.jpg.xmp for every photo", "ext")
        self.sidecar_naming.addItem("IMG.xmp for every photo", "replace")
        self.sidecar_naming.setCurrentIndex(max(0, self.sidecar_naming.findData(preferences.sidecar_naming)))
        self.metadata_mode = QComboBox()
        self.metadata_mode.addItem("As the app needs", "")
        self.metadata_mode.addItem("XMP sidecar next to the photo (never touches photos)", "sidecar")
        self.metadata_mode.addItem("Into the JPEG itself (others get a sidecar)", "embed")
        self.metadata_mode.addItem("Both", "both")
        self.metadata_mode.setCurrentIndex(max(0, self.metadata_mode.findData(preferences.metadata_mode)))
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
        self._settings = settings

    def preferences(self) -> Preferences:
        device = self.device.currentText().strip() or "auto"
        batch = self.batch_size.value() or None
        return Preferences(
            device=None if device == self._settings.device else device,
            batch_size=None if batch == self._settings.batch_size else batch,
            threshold_offset=round(self.threshold_offset.value(), 2),
            tag_language=self.tag_language.currentData(),
            metadata_profile=self.metadata_profile.currentData(),
            sidecar_naming=self.sidecar_naming.currentData(),
            metadata_mode=self.metadata_mode.currentData(),
        )
