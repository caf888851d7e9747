"""Click-to-inspect: selections in any latent scatter show the selected test images, their
reconstructions through each chosen model, and their drift."""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from ui.catalog import safe_dataset_images
from ui.common import class_names, to_grid, to_png
from ui.export import picture

MAX_SHOWN = 24


def selected_indices(*events) -> list[int]:
    """Test-image indices of the points selected in plotly selection states (``st.plotly_chart``
    with ``on_select``); the encoder-means trace carries them as ``customdata``. Sorted, unique."""
    out = set()
    for event in events:
        if not event:
            continue
        points = (event.get("selection") or {}).get("points", []) if isinstance(event, dict) else \
            getattr(getattr(event, "selection", None), "points", []) or []
        for p in points:
            cd = p.get("customdata")
            if isinstance(cd, (list, tuple)):
                cd = cd[0] if cd else None
            if cd is not None:
                out.add(int(cd))
    return sorted(out)


def sticky_selection(page: str, keys: list[str]) -> list[int]:
    """The test images last selected in any of the charts ``keys`` on this page.

    Read from ``st.session_state`` before the charts are drawn, so every map of this run can ring
    them (linked brushing). Kept until a new selection or :func:`show_selection`'s clear button:
    redrawing a map with the rings resets its selection in the browser, and that empty report
    must not drop what the user chose. The newest non-empty selection wins.
    """
    seen = st.session_state.setdefault(f"_selection_seen_{page}", {})
    current = st.session_state.get(f"_selection_{page}", [])
    for k in keys:
        idx = selected_indices(st.session_state.get(k))
        if idx and idx != seen.get(k):
            current = idx
        seen[k] = idx
    st.session_state[f"_selection_{page}"] = current
    return current


def drift_table(models: list[tuple[str, object]], idx: np.ndarray) -> dict[str, list]:
    """Per selected image and model: the stored ‖z′ − z‖² and, for Gaussian encoders, drift KL (nats)."""
    rows = {"test image": [int(i) for i in idx]}
    for name, m in models:
        a = m.arrays
        rows[f"{name} ‖z′−z‖²"] = (a["drift_mu"][idx] - a["test_mu"][idx]).pow(2).sum(1).tolist()
        if "drift_kl" in a:
            rows[f"{name} KL"] = a["drift_kl"][idx].tolist()
    return rows


def show_selection(dataset: str, models: list[tuple[str, object]], indices: list[int], key: str) -> None:
    """The selected test images, their reconstructions decode(μ(x)) by each model, and drift;
    ``key`` is the page name given to :func:`sticky_selection`."""
    if not indices:
        st.caption("Select points in a map (click, box or lasso) to inspect those test images here.")
        return
    st.button("Clear the selection", key=f"{key}_clear_selection", icon=":material/deselect:",
              on_click=lambda: st.session_state.__setitem__(f"_selection_{key}", []))
    data = safe_dataset_images(dataset)
    if data is None:
        return
    idx = np.array(indices[:MAX_SHOWN], dtype=int)
    more = f" (showing the first {MAX_SHOWN})" if len(indices) > MAX_SHOWN else ""
    st.subheader(f"Selected: {len(indices)} test images{more}")
    names = class_names(dataset)
    st.caption("Classes: " + ", ".join(f"{i}: {names[int(data[1][i])]}" for i in idx[:12]) +
               (" …" if len(idx) > 12 else ""))
    rows = [torch.from_numpy(data[0][idx])]
    with torch.no_grad():
        rows += [m.decode(m.arrays["test_mu"][idx]) for _, m in models]
    picture(to_png(to_grid(torch.cat(rows), nrow=len(idx), scale=3)),
            "rows: the selected test images x, then decode(μ(x)) for " + ", ".join(n for n, _ in models),
            key=f"{key}_selection", filename=f"{dataset}-selection")
    table = drift_table(models, idx)
    st.dataframe(table, hide_index=True, width="stretch", placeholder="–",
                 column_config={k: st.column_config.NumberColumn(format="%.3f") for k in table if k != "test image"})
