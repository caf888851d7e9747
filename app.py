"""Latent Explorer: `streamlit run app.py`.

The entry point only sets up the page, the shared dataset picker and the navigation;
each view lives in pages/.
"""
import streamlit as st

from ui.common import DATASETS, NAV_FLAG

st.set_page_config(page_title="Latent Explorer", page_icon=":material/scatter_plot:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/coverage.py", title="Coverage", icon=":material/scatter_plot:"),
    st.Page("pages/sliders.py", title="Sliders", icon=":material/tune:"),
    st.Page("pages/drift.py", title="Drift", icon=":material/trending_flat:"),
    st.Page("pages/sampler.py", title="Samplers", icon=":material/grain:"),
    st.Page("pages/particle_flow.py", title="Particle flow", icon=":material/animation:"),
    st.Page("pages/imaginings.py", title="Imaginings", icon=":material/auto_awesome:"),
    st.Page("pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
]

with st.sidebar:
    st.selectbox("Dataset", DATASETS, key="dataset")
st.session_state[NAV_FLAG] = True  # this run goes through st.navigation; see ui.common.ensure_navigation
try:
    st.navigation(PAGES).run()
finally:
    st.session_state.pop(NAV_FLAG, None)
