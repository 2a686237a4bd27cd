"""Kernel-free explorers for the static book: step through pre-rendered images with a slider.

In the HTML book there is no Python kernel, so ``ipywidgets.interact`` callbacks do nothing there. Two patterns
work without one; both take a list of images computed once when the chapter runs:

* :func:`image_slider` -- a plain HTML range input over base64 PNGs (no widget manager, no require.js; works
  in the static HTML, in JupyterLab and in a PDF-free export). Its output is a pure function of the image
  pixels, so nbval can compare it like any other output.
* :func:`image_stack_widget` -- an ``ipywidgets`` ``IntSlider`` linked in the browser (``jslink``) to a
  ``Stack`` of ``Image`` widgets. It renders in the static book through the vendored widget manager
  (``_vendor/widgets``) and in live Jupyter; nbval does not compare widget views.

Images may be NumPy arrays ``(H, W)``, ``(H, W, 3|4)`` (float in [0, 1] or uint8), torch tensors
``(C, H, W)`` / ``(H, W)`` in [0, 1], PIL images, or matplotlib figures.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
from typing import Any, List, Optional, Sequence

import numpy as np
from PIL import Image


def to_png_bytes(image: Any) -> bytes:
    """Encode one image as PNG bytes (deterministic for the same pixels).

    image: ``(H, W)`` or ``(H, W, 3|4)`` array (float in [0, 1] or uint8), ``(C, H, W)`` / ``(H, W)`` torch
    tensor in [0, 1] (C = 1 or 3), a PIL image, or a matplotlib Figure (rasterised at its own dpi).
    """
    if hasattr(image, "savefig") and hasattr(image, "canvas"):  # matplotlib Figure
        canvas = image.canvas
        if not hasattr(canvas, "buffer_rgba"):  # e.g. a figure closed under the inline backend
            # deferred: matplotlib's Agg backend costs ~0.6 s to import (python -X importtime), needed only here
            from matplotlib.backends.backend_agg import FigureCanvasAgg

            canvas = FigureCanvasAgg(image)
        canvas.draw()
        arr = np.asarray(canvas.buffer_rgba())[..., :3]
        return to_png_bytes(arr.copy())
    if isinstance(image, Image.Image):
        pil = image
    else:
        if hasattr(image, "detach"):  # torch tensor, channels first
            t = image.detach().float().cpu()
            if t.dim() == 3:
                if t.shape[0] not in (1, 3):
                    raise ValueError(f"a tensor image must be (C, H, W) with C 1 or 3, got {tuple(t.shape)}")
                t = t.permute(1, 2, 0)
                if t.shape[-1] == 1:
                    t = t[..., 0]
            arr = t.numpy()
        else:
            arr = np.asarray(image)
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
            raise ValueError(f"an image must be (H, W) or (H, W, 3|4), got shape {arr.shape}")
        if arr.dtype != np.uint8:
            if not np.isfinite(arr).all():
                raise ValueError("image contains NaN or infinite values")
            arr = np.clip(np.rint(np.asarray(arr, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
        pil = Image.fromarray(arr)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _labels(n: int, labels: Optional[Sequence[Any]]) -> List[str]:
    if n == 0:
        raise ValueError("need at least one image")
    if labels is None:
        return [str(i) for i in range(n)]
    labels = [str(x) for x in labels]
    if len(labels) != n:
        raise ValueError(f"got {n} images but {len(labels)} labels")
    return labels


class ImageSlider:
    """A JS-only image slider; displays as HTML (``_repr_html_``). Build it with :func:`image_slider`."""

    def __init__(self, pngs: Sequence[bytes], labels: Sequence[str], description: str, width: Optional[int],
                 start: int):
        self.pngs, self.labels, self.description, self.width, self.start = list(pngs), list(labels), \
            description, width, start

    def _repr_html_(self) -> str:
        digest = hashlib.sha1(b"".join(self.pngs) + "|".join(self.labels).encode()).hexdigest()[:12]
        uid = f"rc-slider-{digest}"
        style = f' style="width:{int(self.width)}px;max-width:100%;height:auto"' if self.width else \
            ' style="max-width:100%;height:auto"'
        imgs = "".join(
            f'<img class="rc-slider-frame" alt="{html.escape(lab)}" data-label="{html.escape(lab)}"{style}'
            f'{"" if i == self.start else " hidden"} src="data:image/png;base64,'
            f'{base64.b64encode(png).decode()}"/>'
            for i, (png, lab) in enumerate(zip(self.pngs, self.labels)))
        # One inline handler: show frame `value`, hide the others, print its label.
        on_input = ("var f=this.parentNode.parentNode.querySelectorAll('img.rc-slider-frame');"
                    "for(var i=0;i<f.length;i++){f[i].hidden=(i!=this.value);}"
                    "this.nextElementSibling.textContent=f[this.value].dataset.label;")
        desc = html.escape(self.description)
        return (f'<div class="rc-image-slider" id="{uid}">'
                f'<div class="rc-slider-controls"><label for="{uid}-range">{desc}</label> '
                f'<input type="range" id="{uid}-range" min="0" max="{len(self.pngs) - 1}" step="1" '
                f'value="{self.start}" oninput="{html.escape(on_input)}"/> '
                f'<span class="rc-slider-label">{html.escape(self.labels[self.start])}</span></div>'
                f'<div class="rc-slider-frames">{imgs}</div></div>')

    def __repr__(self) -> str:
        return f"ImageSlider({self.description!r}, {len(self.pngs)} frames: {', '.join(self.labels)})"


def image_slider(images: Sequence[Any], labels: Optional[Sequence[Any]] = None, description: str = "",
                 width: Optional[int] = None, start: int = 0) -> ImageSlider:
    """A kernel-free slider over pre-rendered images: display the returned object (last line of a cell).

    images: a sequence of images (see :func:`to_png_bytes`), e.g. one figure per value of a parameter.
    labels: one label per image, shown beside the slider (default: the index).
    description: text before the slider; width: display width in pixels (default: natural size).
    """
    pngs = [to_png_bytes(im) for im in images]
    labs = _labels(len(pngs), labels)
    if not 0 <= start < len(pngs):
        raise ValueError(f"start must index the images (0..{len(pngs) - 1}), got {start}")
    return ImageSlider(pngs, labs, description, width, start)


def image_stack_widget(images: Sequence[Any], labels: Optional[Sequence[Any]] = None, description: str = "",
                       width: Optional[int] = None, start: int = 0):
    """An ipywidgets explorer that needs no kernel: ``IntSlider`` jslink'ed to a ``Stack`` of images.

    Returns ``VBox([HBox([IntSlider, Label]), Stack([Image, ...])])``. The slider moves the stack in the
    browser (``jslink``), so it works in the static HTML book (vendored widget manager) as well as live;
    the label beside it follows the slider only with a kernel, so it shows the list of labels instead.
    images, labels, description, width: as in :func:`image_slider`.
    """
    # deferred: ipywidgets is an optional dependency (the book extra) and costs ~0.5 s to import
    import ipywidgets as widgets

    pngs = [to_png_bytes(im) for im in images]
    labs = _labels(len(pngs), labels)
    if not 0 <= start < len(pngs):
        raise ValueError(f"start must index the images (0..{len(pngs) - 1}), got {start}")
    layout = widgets.Layout(width=f"{int(width)}px") if width else widgets.Layout()
    frames = [widgets.Image(value=p, format="png", layout=layout) for p in pngs]
    stack = widgets.Stack(children=frames, selected_index=start)
    slider = widgets.IntSlider(value=start, min=0, max=len(pngs) - 1, step=1, description=description,
                               continuous_update=True, readout=True)
    widgets.jslink((slider, "value"), (stack, "selected_index"))
    legend = widgets.Label(value="  ".join(f"{i}: {lab}" for i, lab in enumerate(labs)))
    return widgets.VBox([widgets.HBox([slider, legend]), stack])
