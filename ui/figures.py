"""Coverage maps built once and shared by every session (``st.cache_resource``): the Coverage page
reruns as a whole on every widget move.

Building a 4,000-point plotly figure costs tens of milliseconds of plotly validation, and on
Coverage (three maps per rerun) it was half of the server's time under load (``bench/load.py``,
py-spy). A map is keyed by names and the checkpoint's version, not by its arrays, so a rerun
that hits the cache neither hashes nor fetches them. A cached map is returned to every session
as the same object: it goes to :func:`ui.export.chart` with ``styled=True`` and is never modified.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from ui.catalog import covered_points, loaded_model, reference_xy, sampler_xy
from ui.common import axis_titles, class_names
from ui.export import style_for_app
from ui.plots import is_latent_plane, latent_scatter, mark_selected, panel_ranges


@st.cache_data(show_spinner=False, max_entries=256)
def coverage_ranges(*, dataset: str, panels: tuple[tuple[str, str, str], ...], reference: str, share: bool,
                    versions: tuple) -> tuple[dict, bool]:
    """:func:`ui.plots.panel_ranges` of Coverage maps ``(name, projection, sampler)``: each map's
    axis ranges over its test-image codes (``reference``) and sampler codes, shared across PCA maps
    when ``share`` allows. ``versions``: the checkpoints' versions (``ui.catalog.model_version``),
    part of the cache key only. Keyword-only: Streamlit's cache looks up the signature once per
    positional argument on every call."""
    points = {name: (proj, np.concatenate([reference_xy(dataset, name, reference, proj),
                                           sampler_xy(dataset, name, samp, proj)]))
              for name, proj, samp in panels}
    return panel_ranges(points, share)


@st.cache_resource(show_spinner=False, max_entries=96)
def coverage_map(*, dataset: str, name: str, projection: str, sampler: str, reference: str, ranges: tuple,
                 marked: tuple[int, ...], present: bool, version: tuple) -> go.Figure:
    """One model's Coverage map: :func:`ui.plots.latent_scatter` of its test-image codes
    (``reference``: ``draw`` or ``means``, ``ui.catalog.REFERENCES``) in ``projection``, coloured by
    class, filled where ``sampler``'s codes cover them, with those codes overlaid, the selected test
    images ``marked`` ringed, and the app's styling for a selectable chart (presentation mode:
    ``present``). Shared and read-only; ``version`` (``ui.catalog.model_version``) keys the cache."""
    model = loaded_model(dataset, name)
    ref = reference_xy(dataset, name, reference, projection)
    fig = latent_scatter(ref, model.arrays["test_labels"].numpy(), class_names(dataset),
                         sampler_xy(dataset, name, sampler, projection), sampler=sampler,
                         title=f"{name} (d = {model.latent_dim})", axis_titles=axis_titles(projection), ranges=ranges,
                         points_name="z ~ q(z|x)" if reference == "draw" else "encoder means",
                         covered=covered_points(dataset, name, sampler, reference),
                         equal_aspect=is_latent_plane(projection, model.latent_dim))
    mark_selected(fig, ref, marked)
    return style_for_app(fig, "rerun", present)
