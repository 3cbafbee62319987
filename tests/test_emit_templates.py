"""The README templates of qnnfab.boards.emit (package data) and their renderer."""

import pytest

from qnnfab.boards.emit.render import render


def test_render_fills_every_field_of_a_template():
    text = render("overlay_README_runtime_weights.md", weights_file="w.bin", load_weights_bit=2, wload_code=9)
    assert "Load `w.bin`" in text and "(bit 2)" in text and "(code 9," in text and "$" not in text


@pytest.mark.parametrize("fields, named", [
    ({"weights_file": "w.bin", "load_weights_bit": 2}, "missing ['wload_code']"),
    ({"weights_file": "w.bin", "load_weights_bit": 2, "wload_code": 9, "extra": 1}, "not in the template ['extra']"),
])
def test_render_refuses_fields_that_do_not_match_the_template(fields, named):
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        render("overlay_README_runtime_weights.md", **fields)
