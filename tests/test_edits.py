"""Strict SEARCH/REPLACE: a missing or ambiguous SEARCH is refused and nothing changes."""

from pathlib import Path

import pytest

from agent.edits import EditRefused, apply_edits
from agent.models import Edit

EDITABLE = {"a.py", "missing.py"}


def test_edits_apply_in_order(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("X = 1\nY = 2\n")
    apply_edits(tmp_path, [Edit(path="a.py", search="X = 1", replace="X = 3"),
                           Edit(path="a.py", search="X = 3\nY = 2", replace="X = 4\nY = 5")], EDITABLE)
    assert (tmp_path / "a.py").read_text() == "X = 4\nY = 5\n"


@pytest.mark.parametrize("edit,why", [
    (Edit(path="a.py", search="Z = 9", replace=""), "not found"),
    (Edit(path="a.py", search="= ", replace="="), "occurs 2 times"),
    (Edit(path="../outside.py", search="X", replace="Y"), "outside the work folder"),
    (Edit(path="missing.py", search="X", replace="Y"), "no such file"),
])
def test_bad_edits_are_refused_and_roll_back(tmp_path: Path, edit: Edit, why: str) -> None:
    (tmp_path / "a.py").write_text("X = 1\nY = 2\n")
    with pytest.raises(EditRefused, match=why):
        apply_edits(tmp_path, [Edit(path="a.py", search="X = 1", replace="X = 7"), edit], EDITABLE)
    assert (tmp_path / "a.py").read_text() == "X = 1\nY = 2\n", "the first edit is rolled back too"
