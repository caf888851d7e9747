"""Plotly figures for the pages. Pure functions of arrays; no Streamlit calls."""
from __future__ import annotations

import base64
import math

import numpy as np
import plotly.graph_objects as go

# Categorical class colours (plotly's qualitative "Plotly" set, 10 hues, none of them grey), and one neutral
# dark marker for sampler codes that no class uses.
CLASS_COLOURS = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880",
                 "#FF97FF", "#FECB52")
SAMPLER_COLOUR = "rgba(30,30,30,0.55)"
SAMPLER_NAMES = {"prior": "prior", "gmm-10": "GMM-10", "gmm-100": "GMM-100", "two-stage": "two-stage",
                 "sampler-net": "sampler net"}  # legend names of sampler codes (a legend entry is half a map wide)
LEGEND_ENTRY = 0.48  # of the plot's width per legend entry: two entries per row at any width
SVG_MAX_POINTS = 4000  # figures with at most this many points draw as SVG: a page may hold only ~16 WebGL contexts


def _scatter_type(n_points: int):
    """go.Scatter (SVG) up to :data:`SVG_MAX_POINTS` points, else go.Scattergl (one WebGL context per figure)."""
    return go.Scatter if n_points <= SVG_MAX_POINTS else go.Scattergl


def typed_array(values) -> dict:
    """A 1-D array as a plotly.js typed-array spec (``{"dtype", "bdata"}``, base64 of little-endian
    float32 or int32), which plotly.py passes through without validating or converting it again:
    building and serialising a 4,000-point map costs a fraction of what numpy arrays cost (plotly
    converts those to this spec on every ``to_dict``), and float32 halves what is sent."""
    a = np.asarray(values)
    if a.dtype.kind in "iub":
        a, dtype = a.astype("<i4"), "i4"
    else:
        a, dtype = a.astype("<f4"), "f4"
    return {"dtype": dtype, "bdata": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")}


def class_colour(i: int) -> str:
    return CLASS_COLOURS[int(i) % len(CLASS_COLOURS)]


def is_latent_plane(projection: str, latent_dim: int) -> bool:
    """Whether a map of a ``latent_dim`` model under ``projection`` shows the true latent plane up to a
    rotation (``identity``, or PCA of d = 2, which only centres and rotates), so it must keep equal aspect."""
    return projection == "identity" or (projection == "pca" and latent_dim == 2)


def latent_scatter(test_xy: np.ndarray, labels: np.ndarray, class_names, sampler_xy: np.ndarray | None = None,
                   sampler: str = "prior", title: str = "", axis_titles=("1", "2"),
                   ranges: tuple | None = None, height: int = 380, points_name: str = "encoder means",
                   covered: np.ndarray | None = None, equal_aspect: bool = False,
                   point_opacity: float = 0.8) -> go.Figure:
    """Encoder codes ``(N, 2)`` (means, or posterior draws: ``points_name``, the legend's title), one
    legend group per class in a categorical palette with the dataset's class names (click a legend entry
    to hide the class, double-click to isolate it), with sampler codes ``(M, 2)`` overlaid as dark
    crosses. With ``covered`` ``(N,)`` bool, the points a sampler code covers are filled and the
    others drawn as faint open circles, so the map shows the coverage number. ``equal_aspect``
    locks the y scale to the x scale (the true latent plane, d = 2: :func:`is_latent_plane`). SVG up to
    :data:`SVG_MAX_POINTS` points, WebGL above.

    A class's covered and uncovered points are two traces of its legend group, with scalar marker
    properties (cheap to build on every rerun). Every class trace carries its points' test-image indices as ``customdata``, so a plotly
    selection (``ui.inspect.selected_indices``) names the images.
    """
    labels = np.asarray(labels)
    scatter = _scatter_type(len(test_xy) + (0 if sampler_xy is None else len(sampler_xy)))
    fig = go.Figure()
    if sampler_xy is not None:
        fig.add_trace(scatter(x=typed_array(sampler_xy[:, 0]), y=typed_array(sampler_xy[:, 1]), mode="markers",
                              name=SAMPLER_NAMES.get(sampler, sampler), legendrank=1,
                              marker=dict(size=5, color=SAMPLER_COLOUR, symbol="x-thin",
                                          line=dict(width=1, color=SAMPLER_COLOUR)), hoverinfo="skip"))
    if covered is not None:
        covered = np.asarray(covered, dtype=bool)
        points_name += " (filled: covered by the samples)"
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        name = class_names[c] if c < len(class_names) else str(c)
        # covered and uncovered points are two traces of one legend group (a legend click hides the class),
        # each with scalar marker properties: per-point symbol arrays cost plotly ~50 ms of validation per map
        # and rerun, the largest share of the Coverage page's server time under load (bench/load.py, py-spy)
        parts = [(idx, dict(size=5, opacity=point_opacity), name)]
        if covered is not None:
            cov = covered[idx]
            parts = [(idx[cov], dict(size=5, opacity=0.85), f"{name} (covered)"),
                     (idx[~cov], dict(size=6, symbol="circle-open", opacity=0.35), f"{name} (not covered)")]
        shown = False  # the legend draws a class with its first non-empty part's marker (covered ones first)
        for part, marker, text in parts:
            if not len(part):
                continue
            fig.add_trace(scatter(x=typed_array(test_xy[part, 0]), y=typed_array(test_xy[part, 1]), mode="markers",
                                  name=name,
                                  marker=dict(color=class_colour(c), **marker), legendgroup=f"class {int(c)}",
                                  showlegend=not shown, customdata=typed_array(part), legendrank=2 + int(c), text=text,
                                  hovertemplate="%{text}<extra>test image %{customdata}</extra>"))
            shown = True
    # the legend (up to 10 classes and the samplers, a few per row) sits in a bottom band of its own, below the
    # x-axis title, anchored to the figure rather than the plot area so that no text overlaps at any width
    entries = sum(1 for t in fig.data if t.showlegend is not False)
    band = 30 + 20 * -(-entries // 2)  # the legend's title and two 20-px entries per row (measured in Chromium)
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=height + band,
                      margin=dict(l=10, r=30, t=40, b=band + 10),
                      modebar=dict(orientation="v"),  # on the right edge, clear of the title and legend
                      legend=dict(orientation="h", x=0, y=0, xanchor="left", yanchor="bottom", yref="container",
                                  font=dict(size=10), title=dict(text=points_name, side="top"),
                                  itemsizing="constant", entrywidth=LEGEND_ENTRY, entrywidthmode="fraction",
                                  traceorder="normal"),  # a class is a legend group, laid out as one entry
                      xaxis_title=axis_titles[0], yaxis_title=axis_titles[1])
    if ranges is not None:
        fig.update_xaxes(range=ranges[0])
        fig.update_yaxes(range=ranges[1])
    if equal_aspect:  # the true latent plane: one unit is as long on both axes
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def shared_ranges(arrays: list[np.ndarray], pad: float = 0.05) -> tuple:
    """Common x and y ranges over several ``(N, 2)`` point sets (1st-99.9th percentile, padded)."""
    pts = np.concatenate(arrays)
    lo, hi = np.percentile(pts, 0.05, axis=0), np.percentile(pts, 99.95, axis=0)
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - pad * span, hi + pad * span
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


SHARE_MAX_RATIO = 5.0  # PCA axes are shared only when the panels' spans differ by at most this factor


def panel_ranges(points: dict[str, tuple[str, np.ndarray]], share_pca: bool = False,
                 max_ratio: float = SHARE_MAX_RATIO) -> tuple[dict[str, tuple], bool]:
    """Axis ranges for side-by-side latent maps: ``{panel: (projection, (N, 2) points)}`` ->
    ``({panel: ((x0, x1), (y0, y1))}, shared)``.

    Each panel gets its own ranges (:func:`shared_ranges` of its points), so a model whose codes span
    ±30 does not shrink the others to a dot. With ``share_pca``, the PCA panels share one range when
    their spans differ by at most ``max_ratio``; ``shared`` says whether they did. UMAP and other
    projections are never shared: their coordinates mean nothing across models.
    """
    out = {name: shared_ranges([xy]) for name, (_, xy) in points.items()}
    pca = [name for name, (proj, _) in points.items() if proj == "pca"]
    if not share_pca or len(pca) < 2:
        return out, False
    spans = [max(out[n][0][1] - out[n][0][0], out[n][1][1] - out[n][1][0]) for n in pca]
    if max(spans) > max_ratio * min(spans):
        return out, False
    common = shared_ranges([points[n][1] for n in pca])
    out.update({n: common for n in pca})
    return out, True


def drift_arrows(fig: go.Figure, start: np.ndarray, end: np.ndarray, labels=None,
                 colour: str = "crimson") -> go.Figure:
    """Draw arrows from ``start (K, 2)`` (z) to ``end (K, 2)`` (z'), z as white rings labelled with
    ``labels`` (test-image indices; default 0..K-1) and z' as filled diamonds, so a pair stays
    visible at the full map's zoom even when the arrow between them is a few pixels long."""
    labels = [str(i) for i in (range(len(start)) if labels is None else labels)]
    for (x0, y0), (x1, y1) in zip(start, end):
        fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y", showarrow=True,
                           arrowhead=2, arrowsize=1.3, arrowwidth=2.4, arrowcolor=colour, standoff=4)
    fig.add_trace(go.Scatter(x=end[:, 0], y=end[:, 1], mode="markers", name="z′ = encode(decode(z))",
                             text=labels, hovertemplate="z′ of test image %{text}<extra></extra>",
                             marker=dict(size=10, symbol="diamond", color=colour, line=dict(width=1, color="white"))))
    fig.add_trace(go.Scatter(x=start[:, 0], y=start[:, 1], mode="markers+text", name="z (test image index)",
                             text=labels, textposition="top center", textfont=dict(size=13),
                             hovertemplate="z of test image %{text}<extra></extra>",
                             marker=dict(size=11, color="white", line=dict(width=2.5, color="black"))))
    return fig


def particle_flow_figure(frames_xy: np.ndarray, background_xy: np.ndarray, target_xy: np.ndarray | None = None,
                         title: str = "", axis_titles=("1", "2"), height: int = 480) -> go.Figure:
    """Plotly animation of particles: ``frames_xy (T, N, 2)`` over grey ``background_xy (M, 2)``.

    ``target_xy (2,)`` (e.g. the image's encoder mean) is marked with a star. One frame per step.
    """
    lo = np.minimum(frames_xy.reshape(-1, 2).min(0), background_xy.min(0))
    hi = np.maximum(frames_xy.reshape(-1, 2).max(0), background_xy.max(0))
    pad = 0.05 * np.maximum(hi - lo, 1e-6)
    particles = lambda t: go.Scatter(x=frames_xy[t, :, 0], y=frames_xy[t, :, 1], mode="markers",  # noqa: E731
                                     name="SVGD particles", marker=dict(size=7, color="rgba(31,119,180,0.85)"))
    data = [_scatter_type(len(background_xy))(x=background_xy[:, 0], y=background_xy[:, 1], mode="markers", name="encoder means",
                         marker=dict(size=3, color="rgba(150,150,150,0.35)"), hoverinfo="skip")]
    if target_xy is not None:
        data.append(go.Scatter(x=[target_xy[0]], y=[target_xy[1]], mode="markers", name="this image's encoder mean",
                               marker=dict(size=16, symbol="star", color="gold", line=dict(width=1, color="black"))))
    data.append(particles(0))
    k = len(data) - 1
    frames = [go.Frame(data=[particles(t)], traces=[k], name=str(t)) for t in range(len(frames_xy))]
    steps = [dict(method="animate", label=str(t), args=[[str(t)], dict(mode="immediate", frame=dict(duration=0, redraw=False),
                                                                         transition=dict(duration=0))])
             for t in range(len(frames_xy))]
    fig = go.Figure(data=data, frames=frames)
    fig.update_layout(  # the play buttons and the step slider sit in a bottom band, below the x-axis title
        title=dict(text=title, font=dict(size=14), y=0.99, yanchor="top", yref="container"),
        height=height + 160, margin=dict(l=10, r=10, t=90, b=130),
        xaxis=dict(range=[lo[0] - pad[0], hi[0] + pad[0]], title=axis_titles[0]),
        yaxis=dict(range=[lo[1] - pad[1], hi[1] + pad[1]], title=axis_titles[1]),
        legend=dict(orientation="h", x=0, y=1.01, xanchor="left", yanchor="bottom"),  # under the title
        updatemenus=[dict(type="buttons", showactive=False, x=0, y=-0.16, xanchor="left", yanchor="top",
                          direction="right", pad=dict(t=0, l=0),
                          buttons=[dict(label="▶ play", method="animate",
                                        args=[None, dict(frame=dict(duration=60, redraw=False), fromcurrent=True,
                                                         transition=dict(duration=0))]),
                                   dict(label="❚❚ pause", method="animate",
                                        args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))])])],
        sliders=[dict(active=0, steps=steps, x=0.32, len=0.68, y=-0.16, yanchor="top", pad=dict(t=0, b=0),
                      font=dict(color="rgba(0,0,0,0)"),  # one tick label per step would overlap: the current one shows
                      currentvalue=dict(prefix="SVGD step ", font=dict(color="#444")))],
    )
    return fig


def manifold_figure(png: bytes, ranges: tuple, test_xy: np.ndarray, labels: np.ndarray, class_names,
                    title: str = "", height: int = 560) -> go.Figure:
    """A d = 2 model's decoded manifold (Kingma & Welling 2014, Fig. 4): ``png``, a grid of decoded
    images tiling the latent plane over ``ranges`` ((x0, x1), (y0, y1)), top row at the largest z2,
    drawn under the encoder means ``test_xy (N, 2)`` coloured by class, in latent units, equal aspect."""
    fig = latent_scatter(test_xy, labels, class_names, title=title, axis_titles=("z1", "z2"), ranges=ranges,
                         height=height, equal_aspect=True, point_opacity=0.55)
    (x0, x1), (y0, y1) = ranges
    fig.add_layout_image(source="data:image/png;base64," + base64.b64encode(png).decode("ascii"), xref="x", yref="y",
                         x=x0, y=y1, sizex=x1 - x0, sizey=y1 - y0, sizing="stretch", layer="below", opacity=1.0)
    fig.update_xaxes(showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(showgrid=False, zeroline=False, constrain="domain")
    return fig


def pin_points(fig: go.Figure, xy: np.ndarray, labels: list[str], name: str = "your input",
               colour: str = "black", size: int = 16) -> go.Figure:
    """Draw ``xy (M, 2)`` as large star markers with text labels on top of a map."""
    fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers+text", name=name, text=labels,
                             textposition="top center",
                             marker=dict(symbol="star", size=size, color=colour, line=dict(width=1, color="white"))))
    return fig


def mark_selected(fig: go.Figure, xy: np.ndarray, indices) -> go.Figure:
    """Ring the encoder means ``xy[indices]`` (test images selected in any map), so one selection
    shows where those images sit in every model's map (linked brushing)."""
    idx = np.asarray(list(indices), dtype=int)
    if len(idx):
        fig.add_trace(go.Scatter(x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=f"selected ({len(idx)})",
                                   marker=dict(size=8, color="rgba(0,0,0,0)", line=dict(width=1, color="rgba(0,0,0,0.75)")),
                                   hoverinfo="skip"))
    return fig


# Per-epoch entries that are bookkeeping, not curves.
NOT_CURVES = {"epoch", "images_per_s", "seconds"}
CURVE_LABELS = {"loss": "objective (nats/image)", "rec": "reconstruction term (nats/image)", "kl": "KL (nats)",
                "mse": "MSE (SSE/image)", "drift_kl": "drift KL (nats)", "sigma2": "σx²",
                "d_loss": "discriminator loss", "g_adv": "generator adversarial loss", "latent_nll": "−log q(z|G(z))",
                "d_real": "D(x)", "d_fake": "D(G(z))", "g_loss": "generator loss"}


MEASURE_LABELS = {"class_entropy": "class entropy", "min_class_share": "smallest class share",
                  "fd": "Fréchet distance (classifier)", "coverage": "coverage of encoder means",
                  "nn_median": "nearest-train median"}


def curve_label(key: str) -> str:
    """A readable panel title for a history key: ``class_entropy_sampler-net`` -> "class entropy, sampler-net"."""
    for prefix, label in MEASURE_LABELS.items():
        if key.startswith(prefix + "_"):
            return f"{label}, {key[len(prefix) + 1:]} samples"
    return CURVE_LABELS.get(key, key)


def curve_panels(history: list[dict], monitor: str | None = None) -> list[tuple[str, str | None, str | None]]:
    """The panels of a learning-curve figure: ``(title, train key, test key)`` for every loss term
    recorded per epoch (a train term ``k`` pairs with its held-out ``test_k``), then one panel per
    other per-epoch measure (class entropy, Fréchet distance, coverage of a sampler). The
    ``monitor`` key (the stopping rule's) comes first, its title marked."""
    keys = []
    for h in history:
        keys += [k for k in h if k not in keys and k not in NOT_CURVES]
    panels, used = [], set()
    for k in keys:
        if k.startswith("test_") or k in used:
            continue
        test = f"test_{k}" if f"test_{k}" in keys else None
        panels.append((curve_label(k), k, test))
        used |= {k, test}
    for k in keys:
        if k.startswith("test_") and k not in used:
            panels.append((curve_label(k[5:]) + " (test)", None, k))
            used.add(k)
    first = [p for p in panels if monitor in (p[1], p[2])]
    return [(f"<b>{t}: stopping rule</b>", a, b) for t, a, b in first] + [p for p in panels if p not in first]


def learning_curves(history: list[dict], monitor: str | None = None, columns: int = 3,
                    height_per_row: int = 210) -> go.Figure:
    """Per-epoch training (solid) and held-out (dashed) values of every term in ``history`` (a
    checkpoint's ``meta["history"]``), one panel each (:func:`curve_panels`), the stopping rule's
    ``monitor`` first; SVG traces."""
    from plotly.subplots import make_subplots

    panels = curve_panels(history, monitor)
    rows = max(1, -(-len(panels) // columns))
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[p[0] for p in panels],
                        horizontal_spacing=0.07, vertical_spacing=0.5 / rows)
    epochs = [h.get("epoch") for h in history]
    shown = set()
    for i, (_, train, test) in enumerate(panels):
        r, c = i // columns + 1, i % columns + 1
        is_measure = train is not None and any(train.startswith(p + "_") for p in MEASURE_LABELS)
        styles = ((train, "solid", "measured on samples after the epoch", "#2ca02c") if is_measure else
                  (train, "solid", "train (epoch mean)", "#1f77b4"), (test, "dash", "test (after the epoch)", "#d62728"))
        for key, dash, name, colour in styles:
            if key is None:
                continue
            ys = [h.get(key) for h in history]
            fig.add_trace(go.Scatter(x=epochs, y=ys, mode="lines", name=name, legendgroup=name,
                                     showlegend=name not in shown, line=dict(dash=dash, width=2, color=colour),
                                     hovertemplate=f"{key}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>"),
                          row=r, col=c)
            shown.add(name)
    height = rows * height_per_row + 80
    fig.update_layout(height=height, margin=dict(l=10, r=40, t=70, b=10), modebar=dict(orientation="v"),
                      legend=dict(orientation="h", x=0, y=1 + 45 / (height - 80), xanchor="left", yanchor="bottom"))
    fig.update_annotations(font_size=12)
    fig.update_xaxes(title_text="epoch", title_standoff=2, title_font_size=10)
    return fig


def log_ticks(low: float, high: float, max_ticks: int = 6) -> tuple[list[float], list[str]]:
    """Tick values and labels for a log axis spanning ``[low, high]`` (both > 0): the 1-2-5 series
    (…, 0.5, 1, 2, 5, 10, 20, …) inside the range, or powers of ten alone when that gives more than
    ``max_ticks``; each labelled in full (``"0.5"``, ``"200"``), where plotly's default labels 0.5
    and 200 as a bare "5" and "2" beside "1" and "100". A range inside one 1-2-5 step gets its ends.

    Raises:
        ValueError: ``low`` or ``high`` not finite and > 0, or ``low > high``.
    """
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
        raise ValueError(f"log_ticks needs 0 < low <= high, both finite; got low={low!r}, high={high!r}")
    lo_exp, hi_exp = math.floor(math.log10(low)), math.ceil(math.log10(high))
    eps = 1e-9 * high

    def series(mantissas):
        return [m * 10.0 ** e for e in range(lo_exp, hi_exp + 1) for m in mantissas
                if low - eps <= m * 10.0 ** e <= high + eps]

    values = series((1, 2, 5))
    if len(values) > max_ticks:
        values = series((1,))
    if len(values) < 2:
        values = sorted({float(f"{low:.2g}"), float(f"{high:.2g}")})
    return values, [f"{v:g}" for v in values]


def class_histogram_bar(shares, class_names, height: int = 150) -> go.Figure:
    """A sampler's class shares (``(K,)`` summing to 1) as a small bar chart with a dashed line at
    the uniform share 1/K; bars under 1 % are red (a missing class)."""
    shares = np.asarray(shares, dtype=float)
    k = len(shares)
    names = [class_names[i] if i < len(class_names) else str(i) for i in range(k)]
    colours = ["#d62728" if s < 0.01 else "#1f77b4" for s in shares]
    fig = go.Figure(go.Bar(x=names, y=shares, marker_color=colours,
                           hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    fig.add_hline(y=1 / k, line=dict(dash="dash", width=1, color="grey"))
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=4, b=0), yaxis=dict(tickformat=".0%", title=None),
                      xaxis=dict(type="category", tickangle=-45, tickfont=dict(size=9)), showlegend=False)
    return fig


def finite_number(value) -> bool:
    """True for a finite int or float that is not a bool: a number read from a file that can be shown."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def refit_curve(curve) -> go.Figure | None:
    """LDC-VAE reading 9's refit record (``meta["sampler_refit"]["curve"]``: dicts with ``step``,
    ``sampler_loglik`` and ``gmm_loglik``, nats) as two lines over SVGD steps: the sampler net's
    draws and the target GMM's own draws, mean log-density under the GMM. Entries that are not such
    dicts (a foreign or damaged file) are skipped; None when none is left."""
    keys = ("step", "sampler_loglik", "gmm_loglik")
    rows = [r for r in (curve if isinstance(curve, list) else [])
            if isinstance(r, dict) and all(finite_number(r.get(k)) for k in keys)]
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    fig = go.Figure([go.Scatter(x=steps, y=[r["sampler_loglik"] for r in rows], mode="lines+markers", name="sampler net"),
                     go.Scatter(x=steps, y=[r["gmm_loglik"] for r in rows], mode="lines", name="the GMM's own draws",
                                line=dict(dash="dash"))])
    fig.update_layout(height=260, margin=dict(l=70, r=0, t=10, b=0), xaxis_title="SVGD step of the refit",
                      yaxis_title="log-density under<br>the GMM (nats)", legend=dict(x=1, xanchor="right", y=0.5))
    return fig
