"""Leaderboard: the image-space tables in results/ (FID or classifier FD, precision/recall,
density/coverage of reconstructions, samples and interpolations), sortable, with bar charts,
next to the seeds' published numbers. Clicking a row opens that model on the other pages."""

import pandas as pd
import plotly.express as px
import streamlit as st

from explorer.io import file_sha256
from explorer.metrics.protocol import remeasured, stale_models
from explorer.published import PROTOCOL_DIFFERENCES, PUBLISHED_SOURCES, published_rows
from ui import state
from ui.catalog import checkpoints, model_version, results_tables
from ui.common import current_dataset, ensure_navigation
from ui.export import chart
from ui.plots import log_ticks


@st.cache_data(show_spinner=False)
def _sha(path: str, version: tuple) -> str:
    return file_sha256(path)


def stale_rows(dataset: str, table: dict) -> list[str]:
    """Models whose shipped checkpoint is not the file the table's rows measured."""
    shipped = checkpoints(dataset)[0]
    recorded = table.get("checkpoints", {})
    return stale_models(table, {n: _sha(h["path"], model_version(dataset, n)) for n, h in shipped.items() if n in recorded})


ensure_navigation()
dataset = current_dataset()
st.title("Leaderboard")
st.caption("Every shipped model under the papers' protocol (000 Table I, 002 Tables 3-4): Fréchet distance and "
           "precision/recall/density/coverage in a backbone's feature space, against the training set, for test "
           "reconstructions (`rec`), samples from each sampler (`sample/...`) and decoded spherical interpolations "
           "of random test pairs (`interp/mid` at t = 0.5, `interp/rand` at random t). `test-data` is the test "
           "set itself: the floor. Click a row to open that model on the other pages.")

tables, unusable = results_tables(dataset)
for why in unusable.values():  # a file's name and contents: shown as text, never as markdown
    st.warning(f"Skipped: {state.escape_md(why)}")
if not tables:
    st.info(f"No results for {dataset} yet. Make them with `python -m explorer.evaluate --dataset {dataset} "
            f"--backbone classifier --out results/{dataset}-classifier.json`.")
    st.stop()

METRICS = {"fd": "Fréchet distance ↓", "precision": "precision ↑", "recall": "recall ↑", "density": "density ↑",
           "coverage": "coverage ↑", "class_entropy": "class entropy ↑", "nn_ratio": "nearest-train ratio (1 = as novel as test)"}
FIDELITY = ("precision", "density")  # a collapsed model scores these high: shown and ranked with class entropy
LOWER_IS_BETTER = {"fd"}
c1, c2 = st.columns(2)
state.restore(f"lb_backbone_{dataset}", "backbone", allowed=list(tables))
state.restore("lb_metric", "metric", allowed=list(METRICS))
backbone = c1.radio("Backbone", list(tables), horizontal=True, key=f"lb_backbone_{dataset}",
                    format_func=lambda b: tables[b]["label"] if b in tables[b]["label"] else f"{tables[b]['label']} ({b})")
table = tables[backbone]
rows = pd.DataFrame(table["rows"])
if "nn_median" in rows and table.get("nn_median_test"):
    rows["nn_ratio"] = rows["nn_median"] / table["nn_median_test"]
offered = [m for m in METRICS if m in rows]
metric = c2.radio("Metric", offered, horizontal=True, key="lb_metric", format_func=METRICS.get)
state.publish("leaderboard", backbone=backbone, metric=metric)
label = table["label"] if metric == "fd" else metric
acc = table.get("backbone_info", {}).get("test_accuracy")
st.markdown(f"**{state.escape_md(table['label'])}**, n = {table['n']:,} images per set against "
            f"{state.escape_md(table['reference'])}; precision/recall with k = {table['prdc_k']} on "
            f"{table['prdc_n']:,} per side; device {state.escape_md(table['device'])}; made {state.escape_md(table['created'])}" +
            (f"; classifier test accuracy {acc:.4f}" if isinstance(acc, (int, float)) else "") + ".")
again, last = remeasured(table)
present = [r.get("model") for r in table["rows"] if r.get("model") != "test-data"]
again = [m for m in again if m in present]
if again:  # names and dates from the file: escaped, never rendered
    which = "every model's rows" if set(again) == set(present) else "the rows of " + ", ".join(again)
    st.caption(f"Since then {state.escape_md(which)} were measured again on retrained checkpoints under the same "
               f"protocol, last on {state.escape_md(last[:10] or 'an unrecorded date')}; each update's command is "
               f"in the file's `updates` list.")
st.code(str(table.get("command", "")), language=None, wrap_lines=True)  # a file's text: shown, never rendered
if table["backbone"] != "inception":
    st.info(f"{state.escape_md(table['label'])} is not FID: its values are comparable only within this table.")
stale = stale_rows(dataset, table)
if stale:
    st.warning(f"Rows of {', '.join(stale)} were measured on an earlier version of the checkpoint (it was retrained "
               f"since); rerun `python -m explorer.evaluate --dataset {dataset} --backbone {table['backbone']} "
               f"--n {table['n']} --out results/{dataset}-{backbone}.json --update --models {' '.join(stale)}`.")

rows["set"] = rows["protocol"].where(rows["variant"] == "-", rows["protocol"] + "/" + rows["variant"])
wide = rows.pivot(index="model", columns="set", values=metric).astype(float)
order = ["data", "rec"] + sorted(c for c in wide.columns if c.startswith("sample/")) + ["interp/mid", "interp/rand"]
wide = wide[[c for c in order if c in wide.columns]].dropna(axis=1, how="all")  # no empty columns
if metric in FIDELITY and "class_entropy" in rows:
    # Never rank by fidelity alone: every sample of a collapsed model is the same good image (precision 1,
    # density > 1, class entropy 0). Each column gets its class entropy beside it, and rows are ranked by
    # the mean over the sample sets of precision (or density) x class entropy.
    entropy = rows.pivot(index="model", columns="set", values="class_entropy").astype(float)[wide.columns]
    samples = [c for c in wide.columns if c.startswith("sample/")] or list(wide.columns)
    rank = (wide[samples] * entropy[samples]).mean(axis=1)
    paired = pd.concat({metric: wide, "class entropy": entropy}, axis=1).swaplevel(axis=1)
    wide = paired[[(c, k) for c in wide.columns for k in (metric, "class entropy")]]
    wide.columns = [f"{c} · {k}" for c, k in wide.columns]
    wide = wide.astype(float).loc[rank.sort_values(ascending=False, na_position="last").index]
    st.caption(f"Ranked by the mean over the sample sets of {metric} × class entropy: a mode-collapsed model draws "
               f"the same good image every time (high {metric}, class entropy near 0).")
else:
    ascending = metric in LOWER_IS_BETTER
    if metric == "nn_ratio":  # best is 1: neither copies (below) nor unlike any training image (above)
        key = (wide["rec"] if "rec" in wide.columns else wide.iloc[:, 0]).sub(1).abs()
        wide = wide.loc[key.sort_values().index]
    else:
        wide = wide.sort_values("rec" if "rec" in wide.columns else wide.columns[0], ascending=ascending)
if metric == "nn_ratio":
    st.caption(f"Median squared distance (pixel space) from an image of the set to its nearest training image, "
               f"over the first {table.get('nn_n', 2000):,} images, divided by the same median for test images "
               f"({table['nn_median_test']:.2f}). Well below 1: copies of training images; well above 1: images "
               f"unlike any training image.")
if metric == "class_entropy":
    st.caption("Entropy of the classes the dataset's classifier assigns to the set, over log 10 (1: every class "
               "equally often; the test set itself is near 1).")

shipped = set(checkpoints(dataset)[0])
open_key = f"lb_open_{dataset}"
table_key = f"lb_table_{dataset}_{backbone}_{metric}"


def open_models(names: list[str]) -> None:
    """Make ``names`` the chosen models on the other pages (their widget keys are per dataset); the
    single-model pages (Sliders, Imaginings) get the first."""
    names = [n for n in names if n in shipped]
    if not names:
        return
    for key in ("coverage_models", "drift_models", "sampler_models"):
        st.session_state[f"{key}_{dataset}"] = list(names)
    st.session_state[f"sliders_model_{dataset}"] = names[0]
    if gans := [n for n in names if n.startswith("lsr-gan")]:
        st.session_state[f"imagine_model_{dataset}"] = gans[0]


def on_row_click() -> None:
    picked = st.session_state[table_key].selection.rows
    names = [wide.index[i] for i in picked if wide.index[i] in shipped]
    st.session_state[open_key] = names
    open_models(names)


st.dataframe(wide.style.format("{:.3f}", na_rep="–"), on_select=on_row_click, selection_mode="multi-row",
             key=table_key, width="stretch", placeholder="–")  # the browser ignores the Styler's na_rep
st.caption("Select one or several rows (or pick below) to open those models together on the other pages.")

choices = [m for m in wide.index if m in shipped]
c1, c2 = st.columns([1, 3])
if open_key in st.session_state:  # the multiselect offers only this table's models
    st.session_state[open_key] = [n for n in st.session_state[open_key] if n in choices]
chosen = c1.multiselect("Open models", choices, key=open_key, placeholder="select rows or pick",
                        on_change=lambda: open_models(st.session_state[open_key]))
if chosen:
    with c2:
        st.write(f"**{', '.join(chosen)}** {'is' if len(chosen) == 1 else 'are'} selected on:")
        links = st.columns(4)
        for col, (page, title) in zip(links, [("pages/coverage.py", "Coverage"), ("pages/sliders.py", "Sliders"),
                                              ("pages/drift.py", "Drift"), ("pages/sampler.py", "Samplers")]):
            col.page_link(page, label=title, query_params={"dataset": dataset, "models": ",".join(chosen)})

with st.spinner("Drawing charts ..."):
    st.subheader(f"{METRICS[metric]} per column")
    per_row = 3
    columns = [c for c in wide.columns if not c.endswith(" · class entropy")]
    for start in range(0, len(columns), per_row):
        cols = st.columns(per_row)
        for col, name in zip(cols, columns[start:start + per_row]):
            s = wide[name].dropna().sort_values(ascending=metric in LOWER_IS_BETTER)
            if s.empty:  # e.g. class entropy of a set whose rows predate the measure
                col.caption(f"{name}: no {metric} measured yet")
                continue
            log = metric == "fd" and bool((s > 0).all())  # FDs span orders of magnitude (0.4 for data, 10³ collapsed)
            fig = px.bar(x=s.values, y=s.index, orientation="h", title=name, log_x=log,
                         labels={"x": label + (" (log scale)" if log else ""), "y": ""}, height=120 + 22 * len(s))
            fig.update_layout(margin=dict(l=0, r=10, t=40, b=0), yaxis=dict(autorange="reversed"))
            if log:  # 1-2-5 ticks labelled in full: plotly's default labels 200 as a bare "2" beside "100"
                ticks, labels = log_ticks(float(s.min()), float(s.max()), max_ticks=4)  # ~250 px wide
                fig.update_xaxes(tickvals=ticks, ticktext=labels)
            # No mode bar: at this size it covers the chart's title (the column name); the HTML download stays.
            chart(fig, key=f"lb_bar_{name}", container=col, filename=f"{dataset}-{backbone}-{metric}-{name}",
                  config={"displayModeBar": False})

st.divider()
st.subheader("As published")
published = pd.DataFrame(published_rows(dataset))
if published.empty:
    st.info(f"The seeds publish no FID numbers for {dataset}; only MNIST has an \"as published\" column.")
else:
    long = published.melt(id_vars=["model", "source", "paper row"], var_name="set", value_name="as published").dropna()
    ours = rows[["model", "set", "fd"]].rename(columns={"fd": "ours"})
    best = ours.assign(set=ours["set"].str.replace(r"^sample/.*$", "sample", regex=True))
    best = best[best["set"] == "sample"].groupby(["model", "set"], as_index=False).min()  # 000's single "sample"
    mse = pd.DataFrame([{"model": m, "set": "mse", "ours": h["meta"].get("metrics", {}).get("test_mse")}
                        for m, h in checkpoints(dataset)[0].items()])
    merged = long.merge(pd.concat([ours, best, mse]), on=["model", "set"], how="left")
    merged["source"] = merged["source"].map(PUBLISHED_SOURCES)
    st.caption(f"As published: TF-Inception FIDs on MNIST; `mse` is the per-image squared error on the test set. "
               f"Ours: the {state.escape_md(table['label'])} of the table above (for 000's single \"sample\" column, "
               f"the best of the model's samplers), or our test MSE on the `mse` rows. Two columns on purpose: the protocols differ.")
    show = merged[["model", "set", "as published", "ours", "paper row", "source"]].dropna(axis=1, how="all")
    text = [c for c in ("model", "set", "paper row", "source") if c in show]
    show = show.astype({c: object for c in text}).where(show.notna(), None)
    show[text] = show[text].fillna("–")
    st.dataframe(show.style.format({c: f for c, f in (("as published", "{:.2f}"), ("ours", "{:.3f}")) if c in show},
                                   na_rep="–"),
                 hide_index=True, width="stretch", key=f"lb_published_{dataset}", placeholder="–")
    with st.expander("Protocol differences", expanded=False):
        st.markdown("\n".join(f"- {d}" for d in PROTOCOL_DIFFERENCES))
