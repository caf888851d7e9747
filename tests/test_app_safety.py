"""AppTest: strings from outside never render as markdown, and one bad entry in the checkpoint
folder never takes down a page or hides the good models (issue 16).

Markdown is judged the way a browser would show it: each text element and widget label of a page
is rendered with markdown-it (GFM-like, with linkify), and no link or image may point at the
payloads' host. The real-browser check of a few crafted links is in tests/test_browser.py.
"""
import html as html_lib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from safetensors.torch import load_file, save_file
from streamlit.testing.v1 import AppTest

from ui.apptest import as_running_server

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "checkpoints" / "mnist"
HOST = "evil.invalid"
PAYLOADS = [f"[Session expired - sign in](http://{HOST})", f"![x](http://{HOST}/p.png)",
            f"<img src=http://{HOST}/p.png>", f"<a href='http://{HOST}'>x</a>", f"<http://{HOST}>",
            f"see http://{HOST}/now", f"www.{HOST}", f"[x]\n\n[x]: http://{HOST}", ":red[alert] :material/warning:",
            "`code` **bold** _i_ # head"]
payloads = st.tuples(st.text(max_size=4), st.sampled_from(PAYLOADS), st.text(max_size=4)).map("".join)
RENDER = MarkdownIt("gfm-like", {"linkify": True})
TEXT_ELEMENTS = ("markdown", "caption", "warning", "error", "info", "success", "title", "header", "subheader")
WIDGETS = ("selectbox", "multiselect", "radio", "slider", "select_slider", "number_input", "text_input", "checkbox",
           "toggle", "button")
PAGE_PARAMS = {  # the URL parameters each page reads
    "home": ["model"], "coverage": ["models", "projection", "sampler", "reference", "share_axes"],
    "sliders": ["models", "index", "z"], "drift": ["models", "projection", "images"],
    "sampler": ["models", "projection"], "particle_flow": ["models", "index"],
    "imaginings": ["models", "images"], "your_input": ["models", "projection"],
    "leaderboard": ["backbone", "metric"]}


@pytest.fixture(autouse=True)
def running_server():
    with as_running_server():
        yield


def live_links(at: AppTest) -> list[str]:
    """Every link or image address in the page's text elements and widget labels and options, as
    markdown-it renders them, that points at the payloads' host."""
    texts = [e.value for kind in TEXT_ELEMENTS for e in getattr(at, kind)]
    for kind in WIDGETS:
        for w in getattr(at, kind):
            texts.append(w.label)
            if kind == "radio":
                texts += [str(o) for o in w.options]
    html = "\n".join(RENDER.render(str(t)) for t in texts if t)
    shown = html_lib.unescape(re.sub(r"<[^>]+>", " ", html))  # what a reader sees, escapes resolved
    # Streamlit's renderer (remark-gfm) also links "http://..." and "www." found in the shown text, even
    # when the source escaped them; markdown-it's linkify does not, so look for them in the text too
    return (re.findall(rf'(?:href|src)="[^"]*{re.escape(HOST)}[^"]*"', html) +
            re.findall(rf"(?i)(?:https?://|www\.)[^\s<]*{re.escape(HOST)}", shown))


def open_url(**params) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update({k: str(v) for k, v in params.items()})
    at.run()
    return at


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(page=st.sampled_from(sorted(PAGE_PARAMS)), data=st.data())
def test_no_url_parameter_renders_as_markdown(page, data):
    """A link whose parameters carry markdown or HTML (a phishing link in an official-looking
    warning, an image fetched from elsewhere) renders the page, shows the value as text, and makes
    no link or image."""
    param = data.draw(st.sampled_from(["page", "dataset", *PAGE_PARAMS[page]]))
    value = data.draw(payloads)
    at = open_url(**{"page": page, "dataset": "mnist", param: value})
    assert not at.exception, [e.value for e in at.exception]
    assert not live_links(at), (page, param, value)


def test_a_crafted_page_parameter_is_shown_as_text():
    at = open_url(page=f"[Session expired - sign in](http://{HOST})")
    assert not at.exception and not live_links(at)
    assert any("Session expired" in w.value for w in at.warning)  # named in the warning, as text


def test_empty_and_repeated_list_parameters_render():
    """``models=`` empty, ``,``, spaces or ``,,,`` used to raise IndexError; ``images=0,0,0`` a
    duplicate-key error."""
    for page in ("sliders", "imaginings", "particle_flow", "coverage", "drift"):
        for models in ("", ",", "  ", ",,,"):
            at = open_url(page=page, dataset="mnist", models=models)
            assert not at.exception, (page, repr(models), [e.value for e in at.exception])
    at = open_url(page="imaginings", dataset="mnist", images="0,0,0")
    assert not at.exception and at.multiselect(key="imagine_indices").value == [0]


# --- the checkpoint folder ---------------------------------------------------------------------

def rewrite(src: Path, dst: Path, meta_edit=None, tensor_edit=None) -> None:
    """Copy checkpoint ``src`` to ``dst`` with its string metadata and/or tensors edited."""
    from safetensors import safe_open
    with safe_open(str(src), "pt") as f:
        md = dict(f.metadata())
    tensors = load_file(str(src))
    if meta_edit:
        meta_edit(md)
    if tensor_edit:
        tensor_edit(tensors)
    save_file(tensors, str(dst), metadata=md)


def _json_edit(field, fn):
    def edit(md):
        value = json.loads(md[field])
        md[field] = json.dumps(fn(value))
    return edit


BAD_ENTRIES = {
    "config-list": lambda d: rewrite(SRC / "vae.safetensors", d / "config-list.safetensors",
                                     lambda md: md.update(config="[]")),
    "config-null": lambda d: rewrite(SRC / "vae.safetensors", d / "config-null.safetensors",
                                     lambda md: md.update(config="null")),
    "meta-list": lambda d: rewrite(SRC / "vae.safetensors", d / "meta-list.safetensors", lambda md: md.update(meta="[]")),
    "metrics-string": lambda d: rewrite(SRC / "vae.safetensors", d / "metrics-string.safetensors",
                                        _json_edit("meta", lambda m: {**m, "metrics": "fast"})),
    "coverage-string": lambda d: rewrite(SRC / "vae.safetensors", d / "coverage-string.safetensors",
                                         _json_edit("meta", lambda m: {**m, "metrics": {**m["metrics"], "coverage": "x"}})),
    "deep-json": lambda d: rewrite(SRC / "vae.safetensors", d / "deep-json.safetensors",
                                   lambda md: md.update(meta='{"a": ' + "[" * 100000 + "]" * 100000 + "}")),
    "huge-latent": lambda d: rewrite(SRC / "vae.safetensors", d / "huge-latent.safetensors",
                                     _json_edit("config", lambda c: {**c, "latent_dim": 50000})),
    "unknown-family": lambda d: rewrite(SRC / "vae.safetensors", d / "unknown-family.safetensors",
                                        lambda md: md.update(family="teleporter")),
    "nan-weights": lambda d: rewrite(SRC / "vae.safetensors", d / "nan-weights.safetensors",
                                     tensor_edit=lambda t: t[next(k for k in t if k.startswith("model."))].fill_(float("nan"))),
    "nan-arrays": lambda d: rewrite(SRC / "vae.safetensors", d / "nan-arrays.safetensors",
                                    tensor_edit=lambda t: t["arrays.test_mu"].fill_(float("nan"))),
    "flat-test-mu": lambda d: rewrite(SRC / "vae.safetensors", d / "flat-test-mu.safetensors",
                                      tensor_edit=lambda t: t.update({"arrays.test_mu": t["arrays.test_mu"][:, 0].clone()})),
    "self-base": lambda d: rewrite(SRC / "lsr-gan.safetensors", d / "self-base.safetensors",
                                   _json_edit("config", lambda c: {**c, "base_path": str(d / "self-base.safetensors"),
                                                                   "base_sha256": ""})),  # unpinned: refused
    "dangling-link": lambda d: os.symlink(d / "nowhere.safetensors", d / "dangling-link.safetensors"),
    "link-loop": lambda d: (os.symlink(d / "link-loop-b.safetensors", d / "link-loop.safetensors"),
                            os.symlink(d / "link-loop.safetensors", d / "link-loop-b.safetensors")),
    "outside-link": lambda d: os.symlink(SRC / "vae-2d.safetensors", d / "outside-link.safetensors"),
    "bad-name": lambda d: shutil.copy(SRC / "vae-2d.safetensors", d / "[x](http:evil.invalid).safetensors"),
}
NOT_LISTED = {"nan-weights", "nan-arrays", "flat-test-mu"}  # their headers are fine: refused when loaded


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A checkpoint folder with the good ``vae`` and ``ar-elbo-iso-i`` and every kind of bad entry."""
    root = tmp_path_factory.mktemp("checkpoints")
    d = root / "mnist"
    d.mkdir()
    for name in ("vae", "ar-elbo-iso-i"):
        shutil.copy(SRC / f"{name}.safetensors", d / f"{name}.safetensors")
    for make in BAD_ENTRIES.values():
        make(d)
    # a NaN ex-post sidecar beside the good vae: the model loads without gmm-100 and two-stage, with a warning
    rewrite(SRC / "vae.expost.safetensors", d / "vae.expost.safetensors",
            tensor_edit=lambda t: [v.fill_(float("nan")) for k, v in t.items() if v.is_floating_point()][:1])
    return root


def test_home_lists_every_bad_entry_as_broken_and_keeps_the_good_ones(folder, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_CHECKPOINTS", str(folder))
    at = open_url(page="home", dataset="mnist")
    assert not at.exception, [e.value for e in at.exception]
    shown = at.dataframe[0].value["model"].tolist()
    assert {"vae", "ar-elbo-iso-i"} <= set(shown)
    warned = " ".join(w.value for w in at.warning).replace("\\", "")
    for name in set(BAD_ENTRIES) - NOT_LISTED - {"bad-name"}:
        assert name in warned and name not in shown, name
    assert "not allowed" in warned  # the file named as a markdown link
    assert not live_links(at)


@pytest.mark.parametrize("page", ["coverage", "sliders", "drift", "sampler", "imaginings", "your_input"])
def test_every_page_keeps_working_beside_bad_entries(folder, monkeypatch, page):
    """Each page renders with the good models; the entries whose header is fine but whose weights,
    arrays or base chain are not are refused with one line when chosen, not with a traceback."""
    monkeypatch.setenv("LATENT_EXPLORER_CHECKPOINTS", str(folder))
    at = open_url(page=page, dataset="mnist", models="vae,nan-weights,nan-arrays,flat-test-mu,self-base")
    assert not at.exception, [e.value for e in at.exception]
    assert not live_links(at)
    if page in ("coverage", "drift", "sampler"):
        warned = " ".join(w.value for w in at.warning).replace("\\", "")
        for name in ("nan-weights", "nan-arrays", "flat-test-mu", "self-base"):
            assert name in warned, (page, name)
    if page == "sampler":
        assert any("NaN or infinite" in w.value.replace("\\", "") for w in at.warning)  # the sidecar's


# --- the results folder ------------------------------------------------------------------------

def test_a_bad_results_file_is_named_and_skipped_and_the_good_tables_still_show(tmp_path, monkeypatch):
    """A table cut short, one with another dataset's rows under a markdown-link file name, and one
    with a duplicated row: the Leaderboard names each as text and shows the good table; Imaginings
    (which reads the classifier table for its default λ) renders."""
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(ROOT / "results" / "mnist-classifier.json", results / "mnist-classifier.json")
    (results / "mnist-inception.json").write_bytes((ROOT / "results" / "mnist-inception.json").read_bytes()[:500])
    shutil.copy(ROOT / "results" / "fashion-mnist-classifier.json", results / f"mnist-[sign in]({HOST}).json")
    table = json.loads((ROOT / "results" / "mnist-classifier.json").read_text())
    (results / "mnist-twice.json").write_text(json.dumps({**table, "rows": table["rows"] + table["rows"][-1:]}))
    monkeypatch.setenv("LATENT_EXPLORER_RESULTS", str(results))
    at = open_url(page="leaderboard", dataset="mnist")
    assert not at.exception, [e.value for e in at.exception]
    assert not live_links(at)
    warned = " ".join(w.value for w in at.warning).replace("\\", "")
    assert "mnist-inception.json: not JSON" in warned
    assert f"mnist-[sign in]({HOST}).json holds 'fashion-mnist' rows, not mnist's" in warned
    assert "mnist-twice.json is not a results table: rows." in warned and "a second row for model" in warned
    assert [r.value for r in at.radio if r.label == "Backbone"][0] == "classifier"  # the good table is shown
    assert at.dataframe and "vae" in at.dataframe[0].value.index
    at = open_url(page="imaginings", dataset="mnist")
    assert not at.exception, [e.value for e in at.exception]


def test_a_crafted_updates_list_on_a_results_table_renders_as_text(tmp_path, monkeypatch):
    """The Leaderboard's "measured again" caption takes model names and a date from the file's ``updates``."""
    results = tmp_path / "results"
    results.mkdir()
    table = json.loads((ROOT / "results" / "mnist-classifier.json").read_text())
    table["updates"] = [{"models": ["vae", f"[x](http://{HOST})"], "created": f"[sign in](http://{HOST})"}, "junk",
                        {"models": "vae"}, {"models": [1, 2]}]
    (results / "mnist-classifier.json").write_text(json.dumps(table))
    monkeypatch.setenv("LATENT_EXPLORER_RESULTS", str(results))
    at = open_url(page="leaderboard", dataset="mnist")
    assert not at.exception, [e.value for e in at.exception]
    assert not live_links(at)
    said = [c.value.replace("\\", "") for c in at.caption if "measured again" in c.value]
    assert len(said) == 1 and "the rows of vae" in said[0] and HOST not in said[0].split("last on")[0]


def test_a_crafted_sampler_refit_record_renders_as_text_and_its_bad_curve_points_are_skipped(tmp_path, monkeypatch):
    """LDC-VAE reading 9's ``meta["sampler_refit"]`` comes from the file: its command is shown as text, and
    curve entries that are not numbers are dropped from the chart, not raised on."""
    d = tmp_path / "mnist"
    d.mkdir()
    curve = [{"step": 1, "sampler_loglik": -60.0, "gmm_loglik": -57.0}, {"step": "x", "sampler_loglik": 1, "gmm_loglik": 1},
             "junk", {"step": 2, "sampler_loglik": float("inf"), "gmm_loglik": 1}, {"step": 3, "sampler_loglik": -58.0,
                                                                                     "gmm_loglik": -57.0}]
    record = {"steps": PAYLOADS[0], "command": PAYLOADS[1] + " " + PAYLOADS[5], "curve": curve}
    rewrite(SRC / "ldc-vae.safetensors", d / "ldc-vae.safetensors",
            _json_edit("meta", lambda m: {**m, "sampler_refit": record}))
    monkeypatch.setenv("LATENT_EXPLORER_CHECKPOINTS", str(tmp_path))
    at = open_url(page="home", dataset="mnist", model="ldc-vae")
    assert not at.exception, [e.value for e in at.exception]
    assert not live_links(at)
    refit = [c for c in at.get("plotly_chart") if c.key == "refit_mnist_ldc-vae"]
    assert len(refit) == 1 and json.loads(refit[0].proto.spec)["data"][0]["x"] == [1, 3]
    assert any(PAYLOADS[1] in t.value for t in at.text)  # the command, verbatim, as text
    at = open_url(page="sampler", dataset="mnist", models="ldc-vae")
    assert not at.exception, [e.value for e in at.exception]
    assert not live_links(at)
    assert any("an unrecorded number of SVGD steps" in c.value for c in at.caption)
