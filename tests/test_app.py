"""AppTest: every page renders on the shipped checkpoints, and the sliders really decode."""
import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import torch

import explorer
import ui.common
import ui.plots
from explorer.models import ZOO
from ui.apptest import as_running_server

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["pages/home.py", "pages/coverage.py", "pages/sliders.py", "pages/drift.py", "pages/sampler.py", "pages/your_input.py",
         "pages/particle_flow.py", "pages/imaginings.py", "pages/leaderboard.py"]


@pytest.fixture(autouse=True)
def running_server(request):
    """AppTest runs as a running server does (ui.apptest.as_running_server), except in tests
    marked ``fresh_server``, which keep AppTest's v1-pages reset: the first request after
    start-up."""
    if request.node.get_closest_marker("fresh_server"):
        yield
        return
    with as_running_server():
        yield


def open_page(page: str, dataset: str = "mnist", in_browser: bool = False) -> AppTest:
    """A session on ``page``; Sliders with its server-side sliders unless ``in_browser`` (AppTest has
    no browser to run the latent pad)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["sliders_in_browser"] = in_browser
    at.run()
    at.sidebar.selectbox[0].set_value(dataset)
    at.run()
    if page != "pages/home.py":
        at.switch_page(page)
        at.run()
    return at


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exception(page, dataset):
    at = open_page(page, dataset)
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.selectbox(key="dataset").value == dataset
    assert not at.warning, [w.value for w in at.warning]
    assert at.title, "page rendered no title"


def test_moving_a_slider_changes_the_decoded_image():
    at = open_page("pages/sliders.py")
    decoded = lambda: [im for im in at.image if any("decode(z)" in c for c in im.captions)][0].value
    first = decoded()
    z1 = at.slider(key=[s.key for s in at.slider if s.label == "z1"][0])
    start = z1.value
    z1.set_value(start + 2.5).run()
    assert not at.exception
    moved = decoded()
    assert moved != first  # media URLs are content hashes: different bytes
    z1.set_value(start).run()
    assert decoded() == first  # and the same z decodes to the same bytes


def test_sliders_mount_the_latent_pad_with_each_models_decoder_exported_for_the_browser():
    """By default Sliders is the latent pad (ui/latent_pad.py): every chosen model's decoder is exported to
    static/onnx/<checkpoint SHA-256>.onnx and named in the pad's data with its image shape; the onnxruntime
    files it loads are the app's own; a test image's code reaches the pad as a new z version; and the
    traversal grid is drawn from the released z."""
    from explorer.io import file_sha256
    from explorer.onnx_export import check_export
    from ui.latent_pad import ORT_DIR, STATIC

    at = open_page("pages/sliders.py", in_browser=True)
    at.selectbox(key="sliders_model_mnist").set_value("vae").run()
    at.multiselect(key="sliders_compare_mnist_vae").set_value(["ar-elbo-iso-i"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [s for s in at.slider if s.label.startswith("z")]  # no server-side sliders
    pad = json.loads(at.get("bidi_component")[0].proto.json)
    assert [m["name"] for m in pad["models"]] == ["vae", "ar-elbo-iso-i"] and pad["d"] == 16
    for m in pad["models"]:
        digest = file_sha256(ROOT / "checkpoints" / "mnist" / f"{m['name']}.safetensors")
        assert m["url"] == f"app/static/onnx/{digest}.onnx" and m["shape"] == [1, 28, 28]
        check_export(STATIC / "onnx" / f"{digest}.onnx", digest, latent_dim=16)
    assert (STATIC / pad["ort"].removeprefix("app/static/")).is_file() and (ORT_DIR / "ort-wasm-simd-threaded.wasm").is_file()
    assert pad["map"]["components"] and len(pad["map"]["mean"]) == 16  # the star is placed in the browser
    version = pad["z_version"]
    at.radio(key="sliders_start").set_value("test image").run()
    at.number_input(key="sliders_index").set_value(7).run()
    pad = json.loads(at.get("bidi_component")[0].proto.json)
    model = explorer.load(ROOT / "checkpoints" / "mnist" / "vae.safetensors")
    assert pad["z_version"] > version and pad["z"] == pytest.approx(model.arrays["test_mu"][7].tolist(), abs=0.006)
    assert any("latent traversal" in c for im in at.image for c in im.captions)


def test_starting_from_a_test_image_sets_the_sliders_to_its_code():
    at = open_page("pages/sliders.py")
    at.radio(key="sliders_start").set_value("test image").run()
    at.number_input(key="sliders_index").set_value(7).run()
    assert not at.exception
    values = [s.value for s in at.slider if s.label.startswith("z")]
    assert any(abs(v) > 0.05 for v in values)
    import explorer
    model = explorer.load(ROOT / "checkpoints" / "mnist" / "vae-2d.safetensors")
    expected = model.arrays["test_mu"][7].tolist()
    assert values == pytest.approx(expected, abs=0.006)


def test_coverage_with_two_models_umap_and_gmm():
    at = open_page("pages/coverage.py")
    at.multiselect(key="coverage_models_mnist").set_value(["vae", "ar-elbo-iso-i"]).run()
    at.radio(key="coverage_projection").set_value("umap").run()
    at.radio(key="coverage_sampler").set_value("gmm-10").run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2
    tables = [m.value for m in at.markdown if m.value.startswith("coverage **")]
    assert len(tables) == 2 and all(any(ch.isdigit() for ch in t) for t in tables)


def test_broken_checkpoint_warns_and_the_rest_still_loads(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    shutil.copy(ROOT / "checkpoints" / "mnist" / "vae.safetensors", tmp_path / "mnist" / "vae.safetensors")
    (tmp_path / "mnist" / "broken.safetensors").write_bytes(b"not a checkpoint")
    monkeypatch.setenv("LATENT_EXPLORER_CHECKPOINTS", str(tmp_path))
    at = open_page("pages/home.py")
    assert not at.exception
    assert any("broken.safetensors" in w.value.replace("\\", "") for w in at.warning)  # shown escaped
    assert len(at.dataframe) >= 1 and "vae" in at.dataframe[0].value["model"].tolist()
    at.switch_page("pages/coverage.py")
    at.run()
    assert not at.exception and len(at.get("plotly_chart")) == 1


def test_home_plots_the_learning_curves_with_the_stopping_rule_first():
    at = open_page("pages/home.py")
    at.selectbox(key="home_curves_mnist").set_value("vae").run()
    assert not at.exception, [e.value for e in at.exception]
    meta = explorer.load(ROOT / "checkpoints" / "mnist" / "vae.safetensors").meta
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert "stopping rule" in titles[0] and "MSE" in titles[0]  # the monitored test MSE comes first
    test_curve = next(t for t in spec["data"] if t["name"].startswith("test") and "test_mse" in t["hovertemplate"])
    assert test_curve["y"] == [h["test_mse"] for h in meta["history"]]  # one point per epoch, as stored
    assert len(meta["history"]) >= 30 and meta["stop_reason"].startswith("converged")
    assert any("converged" in t.value for t in at.text)


def test_home_shows_the_shipped_mnist_ldc_vae_sampler_refit_after_its_epochs():
    """Reading 9: the MNIST LDC-VAE's sampler net was refitted after training; Home says so and plots the
    refit's log-density curve, ending closer to the GMM's own draws than it started."""
    at = open_page("pages/home.py")
    at.selectbox(key="home_curves_mnist").set_value("ldc-vae").run()
    assert not at.exception, [e.value for e in at.exception]
    refit = [c for c in at.get("plotly_chart") if c.key == "refit_mnist_ldc-vae"]
    assert len(refit) == 1
    sampler, own = json.loads(refit[0].proto.spec)["data"][:2]
    assert len(sampler["x"]) >= 10 and own["y"][-1] - sampler["y"][-1] < own["y"][0] - sampler["y"][0]
    assert any("--model ldc-sampler" in t.value for t in at.text)
    at.selectbox(key="home_curves_mnist").set_value("vae").run()
    assert not [c for c in at.get("plotly_chart") if c.key.startswith("refit_")]  # only where one was made
    for dataset, shown in (("mnist", True), ("fashion-mnist", False)):  # Samplers says so under the grid
        at = open_page("pages/sampler.py", dataset)
        assert any("Refitted after training" in c.value and "36,000 SVGD steps" in c.value for c in at.caption) == shown


def test_sidecars_are_not_listed_as_models_and_a_stale_one_warns(tmp_path, monkeypatch):
    src = ROOT / "checkpoints" / "mnist"
    (tmp_path / "mnist").mkdir()
    for f in ("vae.safetensors", "vae.expost.safetensors", "ar-elbo-iso-i.safetensors"):
        shutil.copy(src / f, tmp_path / "mnist" / f)
    # vae's sidecar beside ar-elbo-iso-i: fitted on another file, so it must be refused
    shutil.copy(src / "vae.expost.safetensors", tmp_path / "mnist" / "ar-elbo-iso-i.expost.safetensors")
    monkeypatch.setenv("LATENT_EXPLORER_CHECKPOINTS", str(tmp_path))
    at = open_page("pages/sampler.py")
    names = at.multiselect(key="sampler_models_mnist")
    assert sorted(names.options) == ["ar-elbo-iso-i", "vae"]
    names.set_value(["vae", "ar-elbo-iso-i"]).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [w.value.replace("\\", "") for w in at.warning]  # as a browser shows them: escapes dropped
    stale = [w for w in shown if "ar-elbo-iso-i.expost.safetensors" in w]
    assert len(stale) == 1 and "python -m explorer.expost" in stale[0], [w.value for w in at.warning]
    def charts(prefix):
        return [c for c in at.get("plotly_chart") if c.key.startswith(prefix)]

    assert len(charts("sampler_")) == 4 + 2  # vae: prior, gmm-10, gmm-100, two-stage; ar-elbo-iso-i: prior, gmm-10
    # class histograms: both retrained checkpoints store their numbers (vae's sidecar: gmm-100, two-stage); the
    # refused sidecar's samplers get none (this folder has no classifier to compute them on demand)
    assert [c.key for c in charts("hist_")] == [f"hist_vae_{s}" for s in ("prior", "gmm-10", "gmm-100", "two-stage")] \
        + [f"hist_ar-elbo-iso-i_{s}" for s in ("prior", "gmm-10")]
    at.radio(key="sampler_projection").set_value("umap").run()  # ex-post codes placed in the stored UMAP embedding
    assert not at.exception and len(charts("sampler_")) == 6
    assert any("15 nearest encoder means" in c.value for c in at.caption)


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_sliders_render_for_every_shipped_model(dataset):
    at = open_page("pages/sliders.py", dataset)
    names = at.selectbox(key=f"sliders_model_{dataset}").options
    assert sorted(names) == sorted(ZOO)
    for name in names:
        at.selectbox(key=f"sliders_model_{dataset}").set_value(name).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        d = len([s for s in at.slider if s.label.startswith("z")])
        assert d == (2 if name.endswith("2d") else 16), name


def test_coverage_maps_are_built_once_and_sent_as_typed_arrays(monkeypatch):
    """Load (issue 16): a Coverage rerun reuses each map from the shared cache instead of rebuilding it
    (plotly's validation was half the server's time under load), and the maps carry their points as
    float32 typed arrays with scalar marker styles, not per-point symbol arrays."""
    import ui.figures

    built = []
    monkeypatch.setattr(ui.figures, "latent_scatter",
                        lambda *a, **k: built.append(k["sampler"]) or ui.plots.latent_scatter(*a, **k))
    ui.figures.coverage_map.clear()
    at = open_page("pages/coverage.py")
    at.multiselect(key="coverage_models_mnist").set_value(["vae", "ar-elbo-iso-i"]).run()
    specs = lambda: [c.proto.spec for c in at.get("plotly_chart")]
    prior = specs()
    n = len(built)
    at.radio(key="coverage_sampler").set_value("gmm-10").run()
    assert len(built) == n + 2  # two new maps
    at.radio(key="coverage_sampler").set_value("prior").run()
    assert not at.exception and len(built) == n + 2 and specs() == prior  # from the cache, unchanged
    for spec in map(json.loads, prior):
        classes = [t for t in spec["data"] if str(t.get("legendgroup", "")).startswith("class ")]
        assert classes and all(t["x"]["dtype"] == "f4" and t["customdata"]["dtype"] == "i4" for t in classes)
        assert all(isinstance(t["marker"].get("symbol", "circle"), str) for t in classes)
        assert {t["legendgroup"] for t in classes if t["showlegend"]} == {t["legendgroup"] for t in classes}


def test_coverage_is_measured_against_posterior_draws_by_default_and_names_it():
    """One z ~ q(z|x) per test image by default: the vae's prior covers it (it scored ~0 against the
    encoder means, which sit near 0 on its inactive units); the means stay one click away."""
    at = open_page("pages/coverage.py")
    at.multiselect(key="coverage_models_mnist").set_value(["vae", "consistency-vae"]).run()
    at.radio(key="coverage_sampler").set_value("prior").run()
    assert at.radio(key="coverage_reference").value == "draw"

    def coverages():
        lines = [m.value for m in at.markdown if m.value.startswith("coverage **")]
        assert len(lines) == 2 and all("active units **" in line for line in lines)
        return [float(line.split("**")[1]) for line in lines]

    draws = coverages()
    assert all(c > 0.9 for c in draws), draws
    assert any("against one draw z ~ q(z|x)" in c.value for c in at.caption)
    legends = [json.loads(c.proto.spec)["layout"]["legend"]["title"]["text"] for c in at.get("plotly_chart")]
    assert all(t.startswith("z ~ q(z|x)") for t in legends), legends
    at.radio(key="coverage_reference").set_value("means").run()
    means = coverages()
    assert all(c < 0.05 for c in means), means
    assert any("against encoder means" in c.value for c in at.caption)


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_sampler_page_shows_every_sampler_of_ldc_vae(dataset):
    at = open_page("pages/sampler.py", dataset)
    at.multiselect(key=f"sampler_models_{dataset}").set_value(["ldc-vae", "vae"]).run()
    assert not at.exception, [e.value for e in at.exception]
    # ldc-vae: prior, gmm-10, gmm-100, two-stage, sampler net; vae: prior, gmm-10, gmm-100, two-stage
    # (gmm-100 and two-stage from the shipped ex-post sidecars) -> 9 scatter plots, 9 grids, 9 coverage lines,
    # and under each grid the classifier's class histogram (a bar chart) and the memorisation medians
    charts = at.get("plotly_chart")
    assert len(charts) == 18
    bars = [c for c in charts if json.loads(c.proto.spec)["data"][0]["type"] == "bar"]
    assert len(bars) == 9 and all(len(json.loads(c.proto.spec)["data"][0]["x"]) == 10 for c in bars)  # y: plotly's typed array
    assert len([m for m in at.markdown if m.value.startswith("coverage **")]) == 9
    assert len([m for m in at.markdown if m.value.startswith("class entropy **")]) == 9
    assert len([im for im in at.image if any("decode(z)" in c for c in im.captions)]) == 9
    assert any("sampler net" in m.value for m in at.markdown)
    assert any("two-stage VAE" in m.value for m in at.markdown) and any("GMM-100" in m.value for m in at.markdown)
    # ldc-vae's N(0, I) panel says it is only a control (no prior term); the vae's prior panel does not
    assert len([c for c in at.caption if "objective has no prior term" in c.value]) == 1


def test_particle_flow_animates_towards_the_posterior():
    """The default view (computed in the background from app start) shows at once; other settings
    run when "Run SVGD" is pressed (the settings sit in a form)."""
    at = open_page("pages/particle_flow.py")
    assert not at.exception, [e.value for e in at.exception]
    assert len(json.loads(at.get("plotly_chart")[0].proto.spec)["frames"]) == 101  # the default: 100 steps
    at.select_slider(key="flow_particles").set_value(16)
    at.select_slider(key="flow_steps").set_value(50)
    next(b for b in at.button if b.label == "Run SVGD").click().run()
    assert not at.exception, [e.value for e in at.exception]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(spec["frames"]) == 51  # one frame per step, plus the start
    start, end = (float(m.value) for m in at.metric)
    assert end < start  # the particles reconstruct the image better after SVGD


def test_log_ticks_are_the_1_2_5_series_labelled_in_full():
    assert ui.plots.log_ticks(0.46, 97.3) == ([1.0, 10.0], ["1", "10"])  # 1-2-5 would be 7 ticks, over 6
    assert ui.plots.log_ticks(0.46, 97.3, max_ticks=8)[1] == ["0.5", "1", "2", "5", "10", "20", "50"]
    assert ui.plots.log_ticks(14.7, 292.1)[1] == ["20", "50", "100", "200"]
    assert ui.plots.log_ticks(0.4, 2369.0)[1] == ["1", "10", "100", "1000"]  # the 1-2-5 series would be 12 ticks
    assert ui.plots.log_ticks(40.46, 40.46)[1] == ["40"]  # one bar: its own value
    assert ui.plots.log_ticks(3.0, 4.0)[1] == ["3", "4"]  # inside one 1-2-5 step: the ends
    for low, high in ((0.0, 1.0), (2.0, 1.0), (1.0, float("inf")), (float("nan"), 1.0)):
        with pytest.raises(ValueError, match="log_ticks needs 0 < low <= high"):
            ui.plots.log_ticks(low, high)


def test_drift_page_switches_to_squared_distance_with_an_implicit_encoder():
    at = open_page("pages/drift.py")
    at.multiselect(key="drift_models_mnist").set_value(["vae", "ldc-vae"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("‖z′ − z‖²" in c.value for c in at.caption)
    at.multiselect(key="drift_models_mnist").set_value(["vae", "consistency-vae"]).run()
    assert any("drift KL" in c.value for c in at.caption)
    bar = next(json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart") if c.key == "drift_bar")
    assert bar["yaxis"]["type"] == "log" and bar["yaxis"]["ticktext"] == ["0.5", "1", "2"]  # drift KL 0.46-1.26


@pytest.mark.fresh_server
@pytest.mark.parametrize("page", PAGES[1:])
def test_deep_link_on_a_fresh_server_goes_through_app_py(page):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(page)  # the first request names a page, as a bookmarked /coverage does
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.key for s in at.sidebar.selectbox] == ["dataset"], "page ran without app.py's sidebar"
    assert at.title and at.title[0].value != "Latent Explorer"


def _images_with(at, text):
    return [im for im in at.image if any(text in c for c in im.captions)]


def test_imaginings_show_rows_and_switch_lambda():
    at = open_page("pages/imaginings.py")
    assert not at.exception, [e.value for e in at.exception]
    assert len(_images_with(at, "imaginings")) == 4  # the four default test images, one row each
    assert len(_images_with(at, "LSR-GAN G(z)")) == 1 and len(_images_with(at, "VAE decoder D(z)")) == 1
    radio = at.radio(key="imagine_model_mnist")
    lams = [float(o.split(" ")[2]) for o in radio.options]
    assert lams == sorted(lams) and lams[0] == 0 and len(lams) == 3  # in λ order, the control first
    rows = json.loads((ROOT / "results" / "mnist-classifier.json").read_text())["rows"]
    fd = {r["model"]: r["fd"] for r in rows if r["model"].startswith("lsr-gan") and r["protocol"] == "sample"
          and r["variant"] == "prior"}
    with_term = {m: v for m, v in fd.items() if m != "lsr-gan-lambda0"}
    assert radio.value == min(with_term, key=with_term.get)  # the λ > 0 whose prior samples score best
    assert radio.value == "lsr-gan"  # the documented default, not the λ = 0 control (better FD, ignores x)
    dreams = _images_with(at, "imaginings")[0].value
    assert any("σ(x) = " in c.value for c in at.caption)
    at.select_slider(key="imagine_temperature").set_value(10.0).run()
    assert not at.exception
    assert _images_with(at, "imaginings")[0].value != dreams  # a wider posterior: other imaginings
    radio = at.radio(key="imagine_model_mnist")
    before = _images_with(at, "LSR-GAN G(z)")[0].value
    radio.set_value("lsr-gan-lambda0" if radio.value != "lsr-gan-lambda0" else "lsr-gan").run()
    assert not at.exception
    assert _images_with(at, "LSR-GAN G(z)")[0].value != before


def _png_bytes(mode="RGB", size=(64, 48)):
    import io
    from PIL import Image, ImageDraw

    img = Image.new(mode, size, "white")
    ImageDraw.Draw(img).line((20, 5, 40, 40), fill="black", width=6)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_imaginings_accept_an_uploaded_png_and_reject_a_bad_file():
    at = open_page("pages/imaginings.py")
    at.radio(key="imagine_source").set_value("upload").run()
    at.file_uploader(key="imagine_upload").set_value(("digit.png", _png_bytes(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Converted digit.png" in i.value.replace("\\", "") and "inverted" in i.value for i in at.info)
    assert len(_images_with(at, "imaginings")) == 1
    at.file_uploader(key="imagine_upload").set_value(("fake.png", b"not a png", "image/png")).run()
    assert not at.exception
    assert any("not an image file" in e.value for e in at.error)


def test_sliders_decode_the_same_z_through_the_lsr_gan_and_its_vae():
    at = open_page("pages/sliders.py")
    at.selectbox(key="sliders_model_mnist").set_value("lsr-gan").run()
    g, d = (lambda: _images_with(at, "decode(z)")[0].value), (lambda: _images_with(at, "VAE decoder D(z)")[0].value)
    first = (g(), d())
    z1 = at.slider(key=[s.key for s in at.slider if s.label == "z1"][0])
    z1.set_value(z1.value + 2.5).run()
    assert not at.exception
    assert g() != first[0] and d() != first[1]


def test_leaderboard_shows_the_results_and_opens_a_model_on_the_other_pages():
    table = json.loads((ROOT / "results" / "mnist-classifier.json").read_text())
    at = open_page("pages/leaderboard.py")
    assert not at.exception, [e.value for e in at.exception]
    frames = at.dataframe
    models = set(frames[0].value.index)
    assert models == {r["model"] for r in table["rows"]}
    assert "rec" in frames[0].value.columns and "test-data" in models
    rec = frames[0].value["rec"].dropna()
    assert list(rec) == sorted(rec), "the Fréchet table must list the best (lowest) reconstruction first"
    published = frames[1].value
    assert {"as published", "ours"} <= set(published.columns) and (published["model"] == "ldc-vae").any()
    assert not published.isna().any().any() and not (published.astype(str) == "None").any().any()
    assert not frames[0].value.isna().all().any(), "an empty column"
    assert all(f.proto.placeholder == "–" for f in frames), "missing cells must read '–', not 'None'"
    last = max(u["created"] for u in table["updates"] if "models" in u)[:10]  # every shipped row was remeasured
    said = [c.value.replace("\\", "") for c in at.caption]  # escaped markdown: drop the backslashes
    assert any("every model's rows were measured again" in c and last in c for c in said)
    at.multiselect(key="lb_open_mnist").set_value(["ar-elbo-iso-i", "vae"]).run()
    assert not at.exception
    at.switch_page("pages/coverage.py").run()
    assert at.multiselect(key="coverage_models_mnist").value == ["ar-elbo-iso-i", "vae"]


def test_leaderboard_bars_of_fd_are_on_a_log_scale_with_no_mode_bar_over_their_titles():
    at = open_page("pages/leaderboard.py")
    bars = [json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart")]
    assert bars and all(b["xaxis"].get("type") == "log" for b in bars if "sample" in b["title"]["text"])
    logs = [b["xaxis"] for b in bars if b["xaxis"].get("type") == "log"]
    assert logs and all(a["ticktext"] == [f"{v:g}" for v in a["tickvals"]] for a in logs), "log ticks labelled in full"
    charts = [c for c in at.get("plotly_chart") if c.key and c.key.startswith("lb_bar_")]
    assert charts and all(json.loads(c.proto.config)["displayModeBar"] is False for c in charts)


def test_leaderboard_never_ranks_by_precision_alone():
    """Precision comes with each set's class entropy beside it, and rows are ranked by the mean over
    the sample sets of precision x class entropy (issue 13: a collapsed model scores precision 1)."""
    table = json.loads((ROOT / "results" / "mnist-classifier.json").read_text())
    at = open_page("pages/leaderboard.py")
    at.radio(key="lb_metric").set_value("precision").run()
    assert not at.exception, [e.value for e in at.exception]
    wide = at.dataframe[0].value
    assert "sample/gmm-10 · precision" in wide.columns and "sample/gmm-10 · class entropy" in wide.columns
    rows = [r for r in table["rows"] if r["protocol"] == "sample"]
    score, unmeasured = {}, set()
    for r in rows:  # rows of tables made before issue 13 have no class entropy: ranked last
        if r.get("class_entropy") is None:
            unmeasured.add(r["model"])
        else:
            score.setdefault(r["model"], []).append(r["precision"] * r["class_entropy"])
    assert score, "the table has class entropies to rank by"
    expected = sorted(score, key=lambda m: -sum(score[m]) / len(score[m]))
    assert list(wide.index[:len(expected)]) == expected
    assert set(wide.index[len(expected):]) - {"test-data"} == unmeasured - set(score)
    at.radio(key="lb_metric").set_value("class_entropy").run()
    assert not at.exception and "sample/gmm-10" in at.dataframe[0].value.columns


def test_maps_keep_their_own_axes_unless_pca_sharing_is_asked_and_fair():
    """LDC-VAE's codes span about ±40: with shared axes every other model shrank to a dot. Axes are
    per model; "Share PCA axes" shares them only between comparable spans, and the true latent
    plane (d = 2) is drawn at equal aspect."""
    at = open_page("pages/coverage.py")
    at.multiselect(key="coverage_models_mnist").set_value(["vae", "ldc-vae", "ar-elbo-iso-i"]).run()

    def x_ranges():
        return {json.loads(c.proto.spec)["layout"]["title"]["text"].split(" ")[0]:
                tuple(json.loads(c.proto.spec)["layout"]["xaxis"]["range"]) for c in at.get("plotly_chart")}

    own = x_ranges()
    assert own["ldc-vae"][1] - own["ldc-vae"][0] > 5 * (own["vae"][1] - own["vae"][0])
    at.checkbox(key="coverage_share_axes").check().run()
    assert not at.exception, [e.value for e in at.exception]
    assert x_ranges() == own  # spans too different: not shared, and the page says so
    assert any("not shared" in c.value for c in at.caption)
    at.multiselect(key="coverage_models_mnist").set_value(["vae", "consistency-vae"]).run()
    shared = x_ranges()
    assert shared["vae"] == shared["consistency-vae"]
    at.radio(key="coverage_projection").set_value("umap").run()
    umap = x_ranges()
    assert umap["vae"] != umap["consistency-vae"]  # never shared
    at.multiselect(key="coverage_models_mnist").set_value(["vae-2d"]).run()
    at.radio(key="coverage_projection").set_value("identity").run()
    layout = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]
    assert layout["yaxis"].get("scaleanchor") == "x" and layout["yaxis"].get("scaleratio") == 1


def test_colour_datasets_from_a_local_folder_train_and_render_on_every_page(tmp_path, monkeypatch):
    """Synthetic CIFAR-10 and CelebA folders (tests/test_data.py writes them in torchvision's
    layout): train.py trains one epoch on each, and every page renders them in colour."""
    import train
    from test_data import write_celeba, write_cifar10
    data_root, ckpts = tmp_path / "data", tmp_path / "checkpoints"
    write_cifar10(data_root, n_per_batch=40)
    write_celeba(data_root, n=24)
    try:
        for dataset, batch in (("cifar10", "32"), ("celeba", "8")):
            assert train.main(["--model", "vae", "--dataset", dataset, "--epochs", "1", "--batch-size", batch,
                               "--no-umap", "--data-root", str(data_root), "--out", str(ckpts)]) == 0
    finally:
        explorer.data.set_data_root(None)
    monkeypatch.setenv("LATENT_EXPLORER_CHECKPOINTS", str(ckpts))
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(data_root))
    for dataset, side in (("cifar10", 32), ("celeba", 64)):  # sides as the loaders make them
        for page in PAGES:
            at = open_page(page, dataset)
            assert not at.exception, (dataset, page, [e.value for e in at.exception])
            assert at.sidebar.selectbox(key="dataset").value == dataset
        model = explorer.load(ckpts / dataset / "vae.safetensors")
        grid = ui.common.to_grid(model.decode(torch.zeros(4, model.latent_dim)).detach(), nrow=2, scale=1)
        assert grid.shape == (2 * side + 3, 2 * side + 3, 3)  # what the pages show: a colour picture
