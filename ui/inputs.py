"""The user's own input: an uploaded image or a drawing, converted to the dataset's format with
every conversion step shown (explorer.uploads does the conversion and the checks)."""
from __future__ import annotations

import io

import numpy as np
import streamlit as st
import torch
from PIL import Image

from explorer.data import dataset_info
from explorer.uploads import MAX_BYTES, MAX_SIDE, UploadError, image_from_bytes
from ui.state import escape_md

CANVAS_SIDE = 280  # pixels of the drawing canvas (10 x 28)


def convert(data: bytes, dataset: str, name: str) -> tuple[torch.Tensor, list[str]] | None:
    """Bytes of an image file -> ``(1, C, H, W)`` in the dataset's format and the steps; shows
    the steps, or the error (not an image, too large, odd mode) and returns None."""
    info = dataset_info(dataset)
    try:
        x, steps = image_from_bytes(data, info.shape, info.content_size, info.dark_background, name)
    except UploadError as e:
        st.error(escape_md(str(e)))
        return None
    st.info(f"Converted {escape_md(name)} to the {dataset} format: " + escape_md("; ".join(steps)) + ".")
    return x, steps


def upload(dataset: str, key: str, container=None) -> tuple[torch.Tensor, str] | None:
    """A file uploader; the converted image ``(1, C, H, W)`` and its file name, or None."""
    c = container if container is not None else st
    up = c.file_uploader(f"A PNG or JPEG (at most {MAX_BYTES // 2**20} MiB, {MAX_SIDE} pixels a side)",
                         type=["png", "jpg", "jpeg"], key=key)
    if up is None:
        return None
    out = convert(up.getvalue(), dataset, up.name)
    return None if out is None else (out[0], up.name)


def canvas_png(rgba: np.ndarray) -> bytes | None:
    """The drawing canvas's ``(H, W, 4)`` RGBA array -> PNG bytes of its strokes (light on dark),
    or None when nothing is drawn."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"canvas image of shape {rgba.shape}; expected (H, W, 4) RGBA")
    ink = rgba[..., :3].astype(np.float32).mean(2) * (rgba[..., 3].astype(np.float32) / 255.0)
    if ink.max() < 8:
        return None
    buf = io.BytesIO()
    Image.fromarray(ink.clip(0, 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def draw(dataset: str, key: str) -> tuple[torch.Tensor, str] | None:
    """A drawing canvas (white strokes on black, like MNIST); the converted drawing or None."""
    try:
        from streamlit_drawable_canvas import st_canvas
    except ImportError:
        st.error("Drawing needs the package streamlit-drawable-canvas (`pip install -r requirements.txt`); "
                 "upload an image instead.")
        return None
    c1, c2 = st.columns([1, 2])
    clears = st.session_state.get(f"{key}_clears", 0)  # a new canvas key is an empty canvas
    with c1:
        result = st_canvas(stroke_width=int(st.session_state.get(f"{key}_width", 22)), stroke_color="#FFFFFF",
                           background_color="#000000", height=CANVAS_SIDE, width=CANVAS_SIDE,
                           drawing_mode="freedraw", key=key if not clears else f"{key}_{clears}",
                           update_streamlit=True, return_image_data=True)
    c2.slider("Stroke width", 8, 40, 22, key=f"{key}_width")
    c2.button("Clear the canvas", key=f"{key}_clear", icon=":material/ink_eraser:",
              on_click=lambda: st.session_state.__setitem__(f"{key}_clears", clears + 1))
    c2.caption("Draw one digit or garment, light on dark, filling most of the box; the conversion below "
               "crops it and fits it into the dataset's frame.")
    if result is None or result.image_data is None:
        return None
    png = canvas_png(result.image_data)
    if png is None:
        return None
    with c2:
        out = convert(png, dataset, "drawing")
    return None if out is None else (out[0], "drawing")
