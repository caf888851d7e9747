"""Shareable views: the page's state lives in ``st.query_params``, so a pasted URL restores it.

Parameters (all optional; the page is also in the URL path):

========== ===================================================== ==========================
param      meaning                                               example
========== ===================================================== ==========================
page       the page's URL path                                   ``coverage``
dataset    sidebar dataset                                       ``fashion-mnist``
models     chosen models (comma-separated; one on single-model   ``vae,ar-elbo-iso-i``
           pages)
projection ``pca``, ``umap`` or ``identity``                     ``umap``
sampler    sampler shown on Coverage                             ``gmm-100``
index      the chosen test image (index among the 2,000 stored)  ``17``
images     chosen test images (Drift, Imaginings)                ``0,1,2``
z          the latent vector on Sliders (comma-separated)        ``0.5,-1.2,...``
present    presentation mode                                     ``1``
========== ===================================================== ==========================

How it works: the first run of a session copies the URL's parameters into
``st.session_state`` (``capture``); :func:`restore` sets a widget's value from them the first
time the widget is made in the session, when the value is valid (otherwise a warning names the
bad value and what is allowed, and the widget keeps its default); each page ends with
:func:`publish`, which writes the view's current parameters back to the URL.
"""
from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import streamlit as st

URL_PARAMS = "_url_params"  # the parameters the session was opened with
RESTORED = "_url_restored"  # widget keys already restored once
PRESENT = "present"  # presentation-mode toggle key


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&\"'=])")
WORD_JOINER = "\u2060"  # invisible; breaks a GFM autolink literal without changing what a reader sees
_AUTOLINK = re.compile(r"(?i)(https?|ftp|mailto|xmpp|www)(?=[:.])|(@)")


def escape_md(text) -> str:
    """``text`` as literal characters inside Streamlit markdown (warnings, captions, labels): every
    ASCII punctuation mark that markdown, HTML or Streamlit's ``:colour[...]``/``:icon:`` directives
    could read is backslash-escaped (CommonMark §2.4), and newlines become spaces. For strings from
    outside: URL parameters, file names, checkpoint metadata.

    Backslashes do not stop GitHub-flavoured markdown's *literal* autolinks (``http://...``,
    ``www.``, ``a@b.c``): Streamlit's renderer finds those in the text after escapes are resolved
    (seen in Chromium: an escaped ``http\\://evil.invalid`` became a live link). So a
    :data:`WORD_JOINER` (U+2060, invisible) goes after each scheme, ``www`` and ``@``."""
    flat = str(text).replace("\r", " ").replace("\n", " ")
    flat = _AUTOLINK.sub(lambda m: m.group(0) + WORD_JOINER, flat)
    return _MD_SPECIAL.sub(r"\\\1", flat)


def capture() -> dict:
    """On a session's first run, keep the URL's parameters (later runs: the kept copy)."""
    if URL_PARAMS not in st.session_state:
        st.session_state[URL_PARAMS] = {k: st.query_params[k] for k in st.query_params}
    return st.session_state[URL_PARAMS]


def csv(raw: str) -> list[str]:
    return [s.strip() for s in str(raw).split(",") if s.strip()]


def csv_ints(raw: str) -> list[int]:
    return [int(s) for s in csv(raw)]


def csv_floats(raw: str) -> list[float]:
    return [float(s) for s in csv(raw)]


def restore(key: str, param: str, parse: Callable[[str], Any] = str, allowed=None,
            describe: str | None = None) -> None:
    """Before widget ``key`` is made: take its value from URL parameter ``param``, once per session.

    ``allowed`` is a collection of allowed values, or a predicate. A value that does not parse or
    is not allowed is ignored with a warning that names it and what is allowed (``describe``, or
    the allowed values). A list value checked against a collection keeps its allowed items and
    warns about the others (``models=nonexistent,vae`` opens ``vae``).
    """
    done = st.session_state.setdefault(RESTORED, set())
    if key in done:
        return
    done.add(key)
    raw = capture().get(param)
    if raw is None or key in st.session_state:
        return
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if isinstance(value, list):
        value = list(dict.fromkeys(value))  # images=0,0,0 names image 0 once (a widget refuses repeated options)
    if isinstance(value, list) and allowed is not None and not callable(allowed):
        dropped = [v for v in value if v not in allowed]
        value = [v for v in value if v in allowed] or None
        if dropped and value is not None:
            st.warning(f"URL parameter {param}: {escape_md(', '.join(map(repr, map(str, dropped))))} not available "
                       f"here and ignored; allowed: {escape_md(', '.join(map(str, allowed)))}")
    elif value is not None and allowed is not None:
        ok = allowed(value) if callable(allowed) else value in allowed
        value = value if ok else None
    if value is None:
        what = describe or (", ".join(map(str, allowed)) if allowed is not None and not callable(allowed) else "")
        st.warning(f"URL parameter {param}={escape_md(repr(raw))} is not valid here and was ignored" +
                   (f"; allowed: {escape_md(what)}" if what else ""))
        return
    st.session_state[key] = value


def restore_first(key: str, param: str, allowed, describe: str | None = None) -> list[str]:
    """A single-choice widget fed by a list parameter (``models=A,B,C``): before widget ``key`` is made,
    set it to the first allowed name, once per session (:func:`restore` into a scratch key, so the
    names not allowed are named in a warning and the others kept). Returns all the allowed names in
    the link's order (``[]`` when the link has none, or the key was already set), for pages that use
    the rest (Sliders compares them)."""
    scratch = f"_url_list_{key}"
    restore(scratch, param, csv, allowed=allowed, describe=describe)
    names = st.session_state.pop(scratch, None) or []
    if not names or key in st.session_state:
        return []
    st.session_state[key] = names[0]
    return names


def restore_vector(keys: list[str], param: str = "z", low: float = -float("inf"), high: float = float("inf")) -> bool:
    """Set the sliders ``keys`` (one per latent dimension) from URL parameter ``param``, once per
    session (:func:`restore` into a scratch key, then spread). Returns True when it did. A vector
    of the wrong length, or with values outside ``[low, high]``, is ignored with a warning that
    says what is allowed."""
    scratch = f"_url_vector_{param}"
    restore(scratch, param, csv_floats, allowed=lambda z: len(z) == len(keys) and all(low <= v <= high for v in z),
            describe=f"{len(keys)} comma-separated numbers (the model's latent size d = {len(keys)}) "
                     f"in [{low:g}, {high:g}]")
    z = st.session_state.pop(scratch, None)
    if z is None:
        return False
    for k, v in zip(keys, z):
        st.session_state[k] = float(v)
    return True


def _fmt(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_fmt(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def view_params(page: str, **params) -> dict[str, str]:
    """The URL parameters of a view: ``page``, the dataset, presentation mode, and ``params``
    (``None`` and empty values are left out)."""
    out = {"page": page, "dataset": st.session_state.get("dataset", "mnist")}
    out.update({k: _fmt(v) for k, v in params.items() if v is not None and v != [] and v != ""})
    if st.session_state.get(PRESENT):
        out["present"] = "1"
    return out


def publish(page: str, **params) -> dict[str, str]:
    """Write the current view to the URL (only when it changed). Returns the parameters."""
    want = view_params(page, **params)
    if {k: st.query_params[k] for k in st.query_params} != want:
        st.query_params.from_dict(want)
    return want


def share_url(params: dict[str, str] | None = None) -> str:
    """The address of this view: the server's address, the page's path and the current parameters."""
    params = {k: st.query_params[k] for k in st.query_params} if params is None else params
    try:
        base = st.context.url or ""
    except Exception:  # no browser context (AppTest, bare mode)
        base = ""
    u = urlsplit(base or "http://localhost:8501/")
    page = params.get("page", "")
    path = "" if page in ("", "home") else page
    return f"{u.scheme}://{u.netloc}/{path}?{urlencode(params)}"


@st.dialog("Link to this view")
def link_dialog():
    """Shows the view's URL in a code box (its copy button copies it)."""
    st.caption("Paste it into a browser to open this exact view: page, dataset, models, projection, test image "
               "and latent vector.")
    st.code(share_url(), language=None, wrap_lines=True)
