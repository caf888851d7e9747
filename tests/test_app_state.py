"""AppTest: views live in the URL (set params -> page state -> params), the Your input page's
upload path, presentation mode, export buttons and the selection plumbing."""
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from ui.apptest import as_running_server
from ui.state import WORD_JOINER, escape_md
from ui.export import gif_bytes
from ui.inputs import canvas_png
from ui.inspect import selected_indices

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def running_server():
    with as_running_server():
        yield


def open_url(**params) -> AppTest:
    """A fresh session opened with these URL parameters, as a pasted link does."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update({k: str(v) for k, v in params.items()})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def params(at: AppTest) -> dict:
    return {k: at.query_params[k] for k in at.query_params}


def test_a_coverage_link_restores_the_view_and_the_url_follows_the_widgets():
    url = dict(page="coverage", dataset="fashion-mnist", models="beta-vae,vae", projection="umap", sampler="gmm-100")
    at = open_url(**url)
    assert at.title[0].value.startswith("Coverage")
    assert at.sidebar.selectbox(key="dataset").value == "fashion-mnist"
    assert at.multiselect(key="coverage_models_fashion-mnist").value == ["beta-vae", "vae"]
    assert at.radio(key="coverage_projection").value == "umap"
    assert at.radio(key="coverage_sampler").value == "gmm-100"
    assert not at.warning, [w.value for w in at.warning]
    assert params(at) == url  # state -> params: the same link
    at.radio(key="coverage_projection").set_value("pca").run()
    assert params(at)["projection"] == "pca"


def test_a_sliders_link_restores_the_model_the_test_image_and_the_latent_vector():
    z = [round(0.1 * i - 0.7, 2) for i in range(16)]
    url = dict(page="sliders", dataset="mnist", models="vae,beta-vae", index="7", z=",".join(map(str, z)))
    pad = json.loads(open_url(**url).get("bidi_component")[0].proto.json)  # decoded in the browser, by default
    assert np.allclose(pad["z"], z) and [m["name"] for m in pad["models"]] == ["vae", "beta-vae"]
    at = open_url(**url, browser="0")  # the sliders decoded on the server
    assert at.selectbox(key="sliders_model_mnist").value == "vae"
    assert at.multiselect(key="sliders_compare_mnist_vae").value == ["beta-vae"]
    assert at.number_input(key="sliders_index").value == 7
    got = [at.slider(key=f"z_mnist_vae_{i}").value for i in range(16)]
    assert np.allclose(got, z)
    assert len([im for im in at.image if any("decode(z)" in c for c in im.captions)]) == 2
    back = params(at)
    assert back["models"] == "vae,beta-vae" and back["index"] == "7"
    assert np.allclose([float(v) for v in back["z"].split(",")], z)
    star = current_z_marker(at)
    at.slider(key="z_mnist_vae_0").set_value(1.5).run()
    assert float(params(at)["z"].split(",")[0]) == 1.5
    assert current_z_marker(at) != star  # the point you are at moves on the map


def current_z_marker(at: AppTest):
    """The x, y of the "current z" star in the Sliders map (as serialised for the browser)."""
    for chart in at.get("plotly_chart"):
        for trace in json.loads(chart.proto.spec)["data"]:
            if trace.get("name") == "current z":
                return trace["x"], trace["y"]
    raise AssertionError("no current-z marker on the Sliders page")


def test_bad_url_parameters_are_named_and_ignored():
    at = open_url(page="sliders", dataset="mnist", models="no-such-model", z="1,2,3")
    warnings = " ".join(w.value for w in at.warning).replace("\\", "")  # as shown: escapes dropped
    assert "models='no-such-model'" in warnings and "vae" in warnings
    assert at.selectbox(key="sliders_model_mnist").value == "vae-2d"  # the default
    at = open_url(page="sliders", dataset="mnist", models="vae", z="1,2,3", browser="0")
    warnings = " ".join(w.value for w in at.warning).replace("\\", "")  # as shown: escapes dropped
    assert "z='1,2,3'" in warnings and "d = 16" in warnings
    assert at.slider(key="z_mnist_vae_0").value == 0.0
    at = open_url(page="nowhere")
    assert "page='nowhere'" in " ".join(w.value for w in at.warning).replace("\\", "")


LINKS = [dict(page="sliders", dataset="mnist", models="vae,beta-vae", index="7", browser="0"),
         dict(page="particle_flow", dataset="mnist", models="ldc-vae", index="7"),
         dict(page="coverage", dataset="mnist", models="vae", projection="umap", sampler="gmm-100"),
         dict(page="drift", dataset="mnist", models="vae", projection="umap", images="3,5"),
         dict(page="sampler", dataset="mnist", models="vae", projection="umap"),
         dict(page="leaderboard", dataset="mnist", backbone="inception", metric="fd"),
         dict(page="imaginings", dataset="mnist", models="lsr-gan-lambda0.002"),
         dict(page="your_input", dataset="mnist", projection="umap")]


@pytest.mark.parametrize("link", LINKS, ids=[link["page"] for link in LINKS])
def test_a_link_sets_widgets_without_the_default_value_warning(link, monkeypatch):
    """Streamlit logs "created with a default value but also had its value set via the Session
    State API" (once per process) when a widget restored from a link also passes a default."""
    from streamlit.elements.lib import policies

    logged = []
    monkeypatch.setattr(policies, "_shown_default_value_warning", False)
    monkeypatch.setattr(policies._LOGGER, "warning", lambda msg, *args, **kw: logged.append(msg % args))
    open_url(**link)
    assert not [m for m in logged if "default value" in m], logged


@pytest.mark.parametrize("page, models, widget, value", [
    ("coverage", "nonexistent,vae", "coverage_models_mnist", ["vae"]),
    ("sliders", "nonexistent,vae", "sliders_model_mnist", "vae"),
    ("sliders", "vae,nonexistent,beta-vae", "sliders_compare_mnist_vae", ["beta-vae"]),
    ("imaginings", "nonexistent,lsr-gan-lambda0.002", "imagine_model_mnist", "lsr-gan-lambda0.002"),
    ("particle_flow", "nonexistent,ldc-vae", "flow_model_mnist", "ldc-vae"),
], ids=["coverage", "sliders", "sliders-compare", "imaginings", "particle_flow"])
def test_a_link_with_some_unknown_models_keeps_the_known_ones(page, models, widget, value):
    at = open_url(page=page, dataset="mnist", models=models)
    assert not at.exception
    kind = "multiselect" if isinstance(value, list) else "radio" if page == "imaginings" else "selectbox"
    got = getattr(at, kind)(key=widget).value
    assert got == value
    warnings = " ".join(w.value for w in at.warning).replace("\\", "")  # as shown: escapes dropped
    assert "nonexistent" in warnings and "'vae'" not in warnings


def test_the_share_link_names_the_page_and_the_parameters():
    at = open_url(page="drift", dataset="mnist", models="vae", images="3,5")
    assert at.multiselect(key="drift_images").value == [3, 5]
    at.button(key="share_link").click().run()
    assert not at.exception, [e.value for e in at.exception]
    link = [c.value for c in at.code][0]
    assert link.startswith("http") and "/drift?" in link and "models=vae" in link and "images=3%2C5" in link


def test_presentation_mode_puts_one_model_per_column():
    at = open_url(page="coverage", dataset="mnist", models="vae,beta-vae,ar-elbo-iso-i,consistency-vae",
                  present="1")
    assert at.sidebar.toggle(key="present").value is True
    assert params(at)["present"] == "1"
    charts = [e for e in at.get("plotly_chart")]
    assert len(charts) == 4
    # the four charts sit in four equal columns, one chart each
    chart_columns = [c for c in at.columns if len(c.get("plotly_chart")) == 1]
    assert len(chart_columns) == 4 and all(abs(c.weight - 0.25) < 1e-9 for c in chart_columns)


def test_every_figure_has_a_download_button():
    at = open_url(page="coverage", dataset="mnist", models="vae,beta-vae")
    assert {"dl_cov_vae", "dl_cov_beta-vae"} <= {b.key for b in at.get("download_button")}
    at = open_url(page="sliders", dataset="mnist", models="vae", browser="0")
    keys = {b.key for b in at.get("download_button")}
    assert {"dl_sliders_map", "dl_interp_linear", "gif_linear"} <= keys
    at = open_url(page="sliders", dataset="mnist", models="vae")  # the latent pad: its traversal grid
    assert {"dl_traversal", "dl_interp_linear"} <= {b.key for b in at.get("download_button")}


def _drawing(size=(300, 300)) -> bytes:
    img = Image.new("L", size, 0)
    ImageDraw.Draw(img).line((150, 40, 150, 260), fill=255, width=30)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_your_input_encodes_an_upload_with_every_chosen_model_and_rejects_bad_files():
    at = open_url(page="your_input", dataset="mnist", models="vae,ar-elbo-iso-i")
    at.radio(key="input_source").set_value("upload").run()
    at.file_uploader(key="input_upload").set_value(("one.png", _drawing(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Converted one.png" in i.value.replace("\\", "") for i in at.info)
    assert {c for im in at.image for c in im.captions} >= {"x′ — vae", "x′ — ar-elbo-iso-i"}
    assert {"dl_input_map_vae", "dl_input_map_ar-elbo-iso-i"} <= {b.key for b in at.get("download_button")}
    at.file_uploader(key="input_upload").set_value(("fake.png", b"GIF89a nonsense", "image/png")).run()
    assert any("not an image file" in e.value for e in at.error)
    big = Image.new("L", (5000, 10), 0)
    buf = io.BytesIO()
    big.save(buf, "PNG")
    at.file_uploader(key="input_upload").set_value(("wide.png", buf.getvalue(), "image/png")).run()
    assert any("limit is 4096 pixels" in e.value for e in at.error)
    frames = [Image.new("L", (20, 20), v) for v in (0, 255)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    at.file_uploader(key="input_upload").set_value(("moving.png", buf.getvalue(), "image/png")).run()
    assert any("animated image" in e.value for e in at.error) and not at.exception


def test_canvas_strokes_become_a_light_on_dark_png():
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., 3] = 255
    assert canvas_png(rgba) is None  # nothing drawn
    rgba[100:180, 130:150, :3] = 255
    img = np.asarray(Image.open(io.BytesIO(canvas_png(rgba))))
    assert img.shape == (280, 280) and img[140, 140] == 255 and img[10, 10] == 0
    with pytest.raises(ValueError, match=r"\(280, 280\)"):
        canvas_png(np.zeros((280, 280)))


def test_selected_points_name_their_test_images():
    event = {"selection": {"points": [{"customdata": 4}, {"customdata": [2]}, {"point_index": 9}, {"customdata": 4}]}}
    assert selected_indices(event, None, {"selection": {"points": [{"customdata": 11}]}}) == [2, 4, 11]


def test_interpolation_gif_has_every_frame_and_loops():
    frames = [np.full((8, 8), v, np.uint8) for v in (0, 80, 160, 240)]
    gif = Image.open(io.BytesIO(gif_bytes(frames)))
    assert gif.n_frames == 6 and gif.info.get("loop") == 0  # 4 forwards, 2 back
    with pytest.raises(ValueError, match="different shapes"):
        gif_bytes([np.zeros((8, 8), np.uint8), np.zeros((4, 4), np.uint8)])


def _sticky_script():
    import streamlit as st

    from ui.inspect import sticky_selection

    st.session_state["shown"] = sticky_selection("page", ["map_a", "map_b"])


def test_a_selection_survives_the_redraw_that_rings_it_and_the_newest_wins():
    at = AppTest.from_function(_sticky_script)
    pick = lambda *idx: {"selection": {"points": [{"customdata": i} for i in idx]}}  # noqa: E731
    at.session_state["map_a"] = pick(3, 1)
    at.run()
    assert at.session_state["shown"] == [1, 3]
    at.session_state["map_a"] = pick()  # the browser resets the redrawn map's selection
    at.run()
    assert at.session_state["shown"] == [1, 3]
    at.session_state["map_b"] = pick(7)  # a new selection in another map wins
    at.run()
    assert at.session_state["shown"] == [7]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_escaped_text_has_no_live_markdown_and_reads_the_same(text):
    """Every markdown, HTML or Streamlit-directive character comes out backslash-escaped, and dropping
    the escapes gives the text back (newlines as spaces)."""
    out = escape_md(text)
    flat = text.replace("\r", " ").replace("\n", " ")
    assert re.sub(r"\\(.)", r"\1", out.replace(WORD_JOINER, "")) == flat.replace(WORD_JOINER, "")
    assert not re.search(r"(?i)(https?|ftp|mailto|xmpp|www)(\\?[:.])|@(?!\u2060)", out)  # no GFM autolink literal
    assert not re.search(r"(?<!\\)(?:\\\\)*[\[\]()<>`*_:!]", re.sub(r"\\.", "", out))
