"""Helpers for driving the app with Streamlit's ``AppTest`` (tests and bench/ only)."""
import contextlib

import streamlit.testing.v1.app_test as app_test
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner.script_cache import ScriptCache


@contextlib.contextmanager
def as_running_server():
    """Make ``AppTest`` run the app the way a running server does.

    Two things AppTest does before *every* run that a server does not:

    - it resets ``PagesManager.uses_pages_directory``, so with a ``pages/`` folder each run
      would start in Streamlit's v1 multipage mode and reach app.py only through
      :func:`ui.common.ensure_navigation`'s rerun. A server is in that state only for the
      first request after start-up, before any ``st.navigation`` call;
    - it makes a new ``ScriptCache``, so every page script is re-parsed and compiled
      (about 10 ms here); a server compiles each script once.

    Inside this context every AppTest run goes straight through app.py's ``st.navigation``
    and reuses one script cache.
    """
    original_init, original_cache = PagesManager.__init__, app_test.ScriptCache
    shared_cache = ScriptCache()

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init
    app_test.ScriptCache = lambda: shared_cache
    try:
        yield
    finally:
        PagesManager.__init__, app_test.ScriptCache = original_init, original_cache
