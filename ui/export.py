"""Figures with their download buttons: plotly charts as standalone HTML, image grids as PNG,
interpolations as GIF.

The files are made only when a button is clicked (``st.download_button`` with a callable),
so a rerun pays nothing for them; the buttons do not rerun the app (``on_click="ignore"``).
"""
from __future__ import annotations

import io
import re

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from ui.common import PRESENT_IMAGE_SCALE, presenting

PRESENT_FONT = 18  # plotly font size in presentation mode (tick labels included)
PRESENT_HEIGHT = 680  # px, a chart's least height in presentation mode: >= 60 % of a 1080-px-high window


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "figure"


def figure_html(fig: go.Figure) -> str:
    """A plotly figure as one standalone HTML file (plotly.js inlined: opens offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


def style_for_app(fig: go.Figure, on_select=None, present: bool | None = None) -> go.Figure:
    """Apply, in place, what :func:`chart` changes for the app: larger fonts and a least height in
    presentation mode (``present``; default: the session's mode), and box-select dragging when the
    chart reports selections (``on_select``). Cached, shared figures are built with this once and
    passed to :func:`chart` with ``styled=True``, which then leaves them untouched."""
    if presenting() if present is None else present:
        fig.update_layout(font=dict(size=PRESENT_FONT), title_font=dict(size=PRESENT_FONT + 4),
                          height=max(fig.layout.height or 450, PRESENT_HEIGHT))
        fig.update_xaxes(tickfont=dict(size=PRESENT_FONT))
        fig.update_yaxes(tickfont=dict(size=PRESENT_FONT))
    if on_select:
        fig.update_layout(dragmode="select")  # dragging box-selects; zoom and pan stay in the mode bar
    return fig


def chart(fig: go.Figure, key: str, filename: str | None = None, container=None, on_select=None,
          styled: bool = False, **kwargs):
    """``st.plotly_chart`` plus a "download HTML" button; larger fonts in presentation mode
    (:func:`style_for_app`, unless ``styled``: the figure is shared and already styled, and is
    not modified here).

    With ``on_select`` (e.g. ``"rerun"``) the chart reports point, box and lasso selections and
    this returns the selection state; otherwise it returns None.
    """
    c = container if container is not None else st
    if not styled:
        style_for_app(fig, on_select)
    extra = dict(on_select=on_select, selection_mode=("points", "box", "lasso")) if on_select else {}
    event = c.plotly_chart(fig, width="stretch", key=key, **extra, **kwargs)
    c.download_button("HTML", lambda: figure_html(fig), file_name=f"{_slug(filename or key)}.html",
                      mime="text/html", key=f"dl_{key}", icon=":material/download:", on_click="ignore",
                      type="tertiary", help="Download this figure as an interactive HTML file (works offline)")
    return event if on_select else None


def picture(png: bytes, caption: str, key: str, filename: str | None = None, container=None) -> None:
    """``st.image`` of PNG bytes plus a "download PNG" button."""
    c = container if container is not None else st
    shown = _enlarged(png, PRESENT_IMAGE_SCALE) if presenting() else png
    c.image(shown, caption=caption, output_format="PNG")
    c.download_button("PNG", png, file_name=f"{_slug(filename or key)}.png", mime="image/png", key=f"dl_{key}",
                      icon=":material/download:", on_click="ignore", type="tertiary",
                      help="Download this image grid as PNG")


def _enlarged(png: bytes, scale: int) -> bytes:
    """PNG bytes drawn ``scale`` times larger, nearest neighbour (pixels stay sharp)."""
    img = Image.open(io.BytesIO(png))
    buf = io.BytesIO()
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


def gif_bytes(frames: list[np.ndarray], duration_ms: int = 120, bounce: bool = True) -> bytes:
    """uint8 pictures ``(H, W)`` or ``(H, W, 3)`` -> an endlessly looping GIF (Pillow); with
    ``bounce`` the frames play forwards then backwards.

    Raises:
        ValueError: no frames, or frames of different shapes.
    """
    if not frames:
        raise ValueError("gif_bytes: no frames")
    if len({f.shape for f in frames}) != 1:
        raise ValueError(f"gif_bytes: frames of different shapes {sorted({f.shape for f in frames})}")
    seq = list(frames) + (list(frames[-2:0:-1]) if bounce else [])
    images = [Image.fromarray(f) for f in seq]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return buf.getvalue()
