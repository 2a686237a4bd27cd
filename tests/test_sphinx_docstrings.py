"""The book's docstring pre-processing: the library's argument style renders without RST warnings."""
from restore_core.book.sphinx_ext import join_continuation_lines


def test_argument_continuations_join_their_paragraph():
    lines = ["Train a model.", "", "config: a preset name or a YAML path",
             "    (profile and overrides apply).", "resume: a checkpoint path.", "Returns (H, W)."]
    assert join_continuation_lines(lines) == [
        "Train a model.", "", "config: a preset name or a YAML path", "(profile and overrides apply).",
        "resume: a checkpoint path.", "Returns (H, W)."]


def test_literal_blocks_and_list_items_keep_their_layout():
    lines = ["Example::", "", "    model = build(", "        preset)", "", "* an item that", "    wraps",
             "  text", "", "    quoted block"]
    assert join_continuation_lines(lines) == [
        "Example::", "", "    model = build(", "        preset)", "", "* an item that", "  wraps", "  text",
        "", "    quoted block"]
