"""Pieces the app's dialogs share."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QPushButton


def action_buttons(dialog: QDialog, *actions: QPushButton) -> QDialogButtonBox:
    """A Close button (it rejects ``dialog``) with ``actions`` beside it."""
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    for button in actions:
        buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
    buttons.rejected.connect(dialog.reject)
    return buttons
