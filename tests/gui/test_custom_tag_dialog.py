"""Library ▸ New custom tag…: two selected photos as examples, Preview (off the UI thread), then Save."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from indexer.personal.custom_tags import EXAMPLE_THRESHOLD, list_custom
from indexer.report import photo_tags
from indexer.schema import Embedding

pytestmark = pytest.mark.gui


def open_custom_tag_dialog(qtbot, window):  # noqa: ANN001, ANN201
    """Library ▸ New custom tag…: the dialog opens once the selection's ids are read (off the UI thread)."""
    from gui.custom_tag_dialog import CustomTagDialog

    window.new_custom_tag()
    qtbot.waitUntil(lambda: bool(window.findChildren(CustomTagDialog)))
    return window.findChildren(CustomTagDialog)[0]


def test_new_custom_tag_from_selected_photos(qtbot, window) -> None:  # noqa: ANN001
    rows = [i for i, row in enumerate(window.grid_model.photos()) if row.status == "indexed"][:2]
    window.grid.select_row(rows[0])
    window.grid.select_row(rows[1], extend=True)
    examples = [window.grid_model.photo(r) for r in rows]

    action = next(a for a in window.menuBar().actions()[0].menu().actions() if "custom tag" in a.text())
    assert action.isEnabled()
    dialog = open_custom_tag_dialog(qtbot, window)
    assert dialog.use_examples.isChecked() and dialog.examples() == [p.id for p in examples]
    assert dialog.threshold.value() == pytest.approx(EXAMPLE_THRESHOLD)
    assert not dialog.save_button.isEnabled()

    dialog.name.setText("my pair")
    dialog.threshold.setValue(-1.0)  # every photo with an embedding is listed
    dialog.preview_button.click()
    qtbot.waitUntil(lambda: dialog.save_button.isEnabled(), timeout=20_000)
    found = dialog.preview_rows()
    scores = [score for _, score in found]
    assert scores == sorted(scores, reverse=True)
    assert f"{len(found)} photo" in dialog.status.text()
    by_path = dict(found)
    assert {p.path for p in examples} <= set(by_path)
    # The prototype is the normalised mean of the two examples' embeddings: each scores sqrt((1 + c) / 2),
    # c the cosine between them (1.0 only when they coincide), and they score the same.
    first, second = (by_path[p.path] for p in examples)
    assert first == pytest.approx(second, abs=1e-5)
    with window.library.catalog.session() as session:
        vectors = dict(session.execute(select(Embedding.photo_id, Embedding.vector).where(
            Embedding.photo_id.in_([p.id for p in examples]))).all())
    a, b = (vectors[p.id] for p in examples)
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert first == pytest.approx(np.sqrt((1 + cosine) / 2), abs=1e-4)

    saved: list[str] = []
    dialog.saved.connect(saved.append)
    dialog.save_button.click()
    qtbot.waitUntil(lambda: bool(saved), timeout=20_000)
    assert saved == ["my pair"] and dialog.applied == len(found)
    assert not window.errors.messages and not dialog.errors.messages
    (defined,) = [t for t in list_custom(window.library.catalog) if t["name"] == "my pair"]
    assert defined["examples"] == [p.id for p in examples] and defined["threshold"] == -1.0
    entry = photo_tags(window.library.catalog, examples[0].path)
    mine = next(t for t in entry["tags"] if t["name"] == "my pair")
    assert mine["state"] == "accepted"  # an example is the person's own statement
    other = next(path for path in by_path if path not in {p.path for p in examples})
    assert any(t["name"] == "my pair" and t["state"] == "suggested" for t in photo_tags(window.library.catalog,
                                                                                        other)["tags"])
    dialog.close()


def test_preview_without_examples_or_descriptions_is_a_message(qtbot, window) -> None:  # noqa: ANN001
    window.grid.clearSelection()
    dialog = open_custom_tag_dialog(qtbot, window)
    assert not dialog.use_examples.isChecked()
    dialog.name.setText("nothing")
    dialog.preview_button.click()
    assert "at least one description" in dialog.errors.messages[-1]
    assert not dialog.save_button.isEnabled()
    dialog.close()
