"""Latent Explorer: `streamlit run app.py`.

The entry point only sets up the page, the shared sidebar (dataset, presentation mode, link to
the view) and the navigation; each view lives in pages/. The view's state is in the URL
(ui/state.py): a pasted link opens the same page, dataset, models, projection, test image and
latent vector.
"""
from pathlib import Path

import streamlit as st

from ui import state
from ui.catalog import begin_run, warm_default_flows
from ui.common import APP_DATASETS, NAV_FLAG, app_datasets, presentation_css, set_torch_threads

FAVICON = str(Path(__file__).resolve().parent / "ui" / "favicon.png")  # a file: a Material icon is fetched from Google
begin_run()  # the checkpoint folder is listed once per rerun
threads_error = set_torch_threads()  # one thread by default: measured in bench/particle_flow.py (README)
params = state.capture()
state.restore(state.PRESENT, "present", parse=lambda r: r.lower() in ("1", "true", "yes"))
present = bool(st.session_state.get(state.PRESENT))
st.set_page_config(page_title="Latent Explorer", page_icon=FAVICON, layout="wide",
                   initial_sidebar_state="collapsed" if present else "auto")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/coverage.py", title="Coverage", icon=":material/scatter_plot:"),
    st.Page("pages/sliders.py", title="Sliders", icon=":material/tune:"),
    st.Page("pages/drift.py", title="Drift", icon=":material/trending_flat:"),
    st.Page("pages/sampler.py", title="Samplers", icon=":material/grain:"),
    st.Page("pages/particle_flow.py", title="Particle flow", icon=":material/animation:"),
    st.Page("pages/imaginings.py", title="Imaginings", icon=":material/auto_awesome:"),
    st.Page("pages/your_input.py", title="Your input", icon=":material/draw:"),
    st.Page("pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
]

with st.sidebar:
    datasets = app_datasets()
    state.restore("dataset", "dataset", allowed=datasets)
    st.selectbox("Dataset", datasets, key="dataset")
    st.toggle("Presentation mode", key=state.PRESENT,
              help="Wide layout, larger fonts, sidebar collapsed on load, one model per column. "
                   "Add present=1 to a link to open it this way.")
    if st.button("Copy link to this view", icon=":material/link:", key="share_link"):
        state.link_dialog()
if present:
    st.html(presentation_css())
if threads_error:
    st.warning(threads_error)

warm_default_flows(st.session_state.get("dataset", APP_DATASETS[0]))  # Particle flow's default view, in the background
page = st.navigation(PAGES, position="top" if present else "sidebar")  # a room: navigation along the top
wanted = params.get("page")
if wanted is not None and not st.session_state.get("_url_page_done"):
    st.session_state["_url_page_done"] = True  # only the link's first run follows its page parameter
    target = next((p for p in PAGES if (p.url_path or "home") == wanted), None)
    if target is None:
        st.warning(f"URL parameter page={state.escape_md(repr(wanted))} is not a page; allowed: "
                   f"{', '.join(p.url_path or 'home' for p in PAGES)}")
    elif target.url_path != page.url_path:
        st.switch_page(target)
st.session_state[NAV_FLAG] = True  # this run goes through st.navigation; see ui.common.ensure_navigation
try:
    page.run()
finally:
    st.session_state.pop(NAV_FLAG, None)
