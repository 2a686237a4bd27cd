"""Kernel-free explorers for the static book (restore_core.book.widgets); the browser test drives them."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from restore_core.book.widgets import image_slider, image_stack_widget, to_png_bytes


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_png_round_trip_from_arrays_and_tensors():
    gray = np.linspace(0, 1, 12).reshape(3, 4)
    assert _decode(to_png_bytes(gray)).tolist() == np.rint(gray * 255).astype(np.uint8).tolist()
    rgb = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))  # (C, H, W)
    out = _decode(to_png_bytes(rgb))
    assert out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, np.rint(rgb.permute(1, 2, 0).numpy().astype(np.float64) * 255))
    assert to_png_bytes(gray) == to_png_bytes(gray.copy())  # deterministic bytes: nbval can compare them


def test_png_from_matplotlib_figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2, 1), dpi=50)
    assert _decode(to_png_bytes(fig)).shape == (50, 100, 3)
    plt.close(fig)


@pytest.mark.parametrize("bad, message", [(np.zeros((2, 3, 5)), "must be"), (np.full((2, 2), np.nan), "NaN"),
                                          (torch.zeros(2, 4, 4), "C 1 or 3")])
def test_bad_images_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        to_png_bytes(bad)


def test_image_slider_html():
    frames = [np.zeros((2, 2)), np.ones((2, 2))]
    s = image_slider(frames, labels=["off", "on"], description="lamp", start=1)
    html = s._repr_html_()
    assert html.count("<img") == 2 and html.count(" hidden ") == 1
    assert 'max="1"' in html and 'value="1"' in html and ">on</span>" in html
    assert html == image_slider(frames, labels=["off", "on"], description="lamp", start=1)._repr_html_()
    assert repr(s) == "ImageSlider('lamp', 2 frames: off, on)"
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        image_slider(frames, labels=["x"])
    with pytest.raises(ValueError, match="start must index"):
        image_slider(frames, start=2)


def test_image_stack_widget_links_slider_to_stack():
    import ipywidgets as widgets
    from ipywidgets.embed import embed_data

    w = image_stack_widget([np.zeros((2, 2)), np.ones((2, 2)), np.full((2, 2), 0.5)], description="k")
    (slider, legend), stack = w.children[0].children, w.children[1]
    assert isinstance(stack, widgets.Stack) and stack.selected_index == 0 and slider.max == 2
    assert legend.value == "0: 0  1: 1  2: 2"
    # embed_data serialises every live widget of the process; keep the links that join *these* two widgets
    ours = {f"IPY_MODEL_{slider.model_id}", f"IPY_MODEL_{stack.model_id}"}
    links = [m for m in embed_data(views=[w])["manager_state"]["state"].values()
             if m["model_name"] == "LinkModel"
             and {m["state"]["source"][0], m["state"]["target"][0]} == ours]
    assert len(links) == 1
    assert links[0]["state"]["source"][1] == "value" and links[0]["state"]["target"][1] == "selected_index"


def test_png_from_a_closed_figure_under_the_inline_backend():
    """Chapters close figures once rendered; a closed inline figure has a bare canvas without pixels."""
    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import FigureCanvasBase

    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1], [1, 0])
    expected = to_png_bytes(fig)
    plt.close(fig)
    FigureCanvasBase(fig)  # what the inline backend leaves behind: no buffer_rgba
    assert not hasattr(fig.canvas, "buffer_rgba")
    assert to_png_bytes(fig) == expected
