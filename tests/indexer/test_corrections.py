"""Corrections through `phototag tag`: they persist through re-index and model changes."""

from __future__ import annotations

import json

from main import main
from tests.indexer.conftest import TAGGER_2
from tests.indexer.test_index import index, tags_of


def test_accept_reject_add_and_undo_survive_reindex_and_model_change(home, photos, capsys) -> None:  # noqa: ANN001
    folder = photos / "library" / "orientation"
    index(capsys, folder)
    photo = folder / "hopper_orientation_1.jpg"
    other = folder / "hopper_orientation_2.jpg"
    model_tags = sorted(tags_of(home, photo))
    assert len(model_tags) >= 3, "the tiny tagger fires on these photos (see conftest)"
    keep, drop, undo = model_tags[:3]
    assert main(["tag", str(photo), str(other), f"+{keep}", f"-{drop}", "+my grandmother", "--json"]) == 0
    changes = json.loads(capsys.readouterr().out)
    assert {(c["tag"], c["after"]) for c in changes} >= {(keep, "accepted"), (drop, "rejected"),
                                                          ("my grandmother", "accepted")}
    assert main(["tag", str(photo), f"-{undo}"]) == 0 and main(["tag", str(photo), f"={undo}"]) == 0
    tags = tags_of(home, photo)
    assert tags[keep][:2] == ("model", "accepted") and tags[drop][:2] == ("model", "rejected")
    assert tags["my grandmother"] == ("user", "accepted", None) and tags[undo][1] == "suggested"

    # A re-index and a new tagger: the rejected tag is never suggested again, the accepted ones stay.
    for tagger in (None, TAGGER_2):
        extra = ["--tagger", tagger] if tagger else []
        index(capsys, folder, *extra)
        tags = tags_of(home, photo)
        assert tags[drop][1] == "rejected"
        assert tags[keep][1] == "accepted" and tags["my grandmother"][:2] == ("user", "accepted")
    assert tags_of(home, other)[drop][1] == "rejected"


def test_mistakes_are_clear_errors(home, photos, capsys) -> None:  # noqa: ANN001
    index(capsys, photos / "library" / "space")
    photo = photos / "library" / "space" / "rocket.jpg"
    assert main(["tag", str(photos / "nowhere.jpg"), "+dog"]) == 2
    assert "not in the catalog" in capsys.readouterr().err
    assert main(["tag", str(photo), "-no such tag at all"]) == 2
    assert "unknown tag" in capsys.readouterr().err
    assert main(["tag", str(photo)]) == 2
    assert "+ accept or add" in capsys.readouterr().err
