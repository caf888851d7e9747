"""App latency budget on this machine, measured with Streamlit's AppTest (server-side script time).

    python bench/app_latency.py [--moves 30] [--sessions 10]

Prints:

- the median and p95 rerun after a slider change on Sliders, with 1 model shown and with 8
  (the slider model plus 7 models of the same latent size decoding the same z);
- the cold time to first render of each page (caches cleared before each page);
- the peak RSS of a fresh server process (a subprocess of this script) with every shipped
  checkpoint of both datasets loaded through the app;
- the same slider figures for ``--sessions`` concurrent AppTest sessions moving sliders at
  once (one process each: AppTest's runtime is process-global; they share the cores).

AppTest reruns the whole page script on a slider change; in a browser the sliders sit in an
``st.fragment``, so only the slider panel reruns. Both are printed: the fragment's server time
(recorded by the page) is what a slider move costs in a browser; the whole-page rerun bounds it.
Targets (2 CPU cores): median slider rerun <= 30 ms with 1 model, <= 100 ms with 8.
"""
import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ui.apptest import as_running_server  # noqa: E402
from ui.catalog import checkpoints  # noqa: E402
from ui.common import APP_DATASETS  # noqa: E402

PAGES = ["home", "coverage", "sliders", "drift", "sampler", "particle_flow", "imaginings", "your_input",
         "leaderboard"]
MODEL = "vae"  # the slider model; the 8-model case adds 7 models with its latent size


def summary(times: list[float]) -> str:
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    return f"median {statistics.median(times) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms over {len(times)} reruns"


def open_sliders(n_models: int) -> AppTest:
    ok = checkpoints("mnist")[0]
    d = ok[MODEL]["config"]["latent_dim"]
    same = sorted(n for n, h in ok.items() if n != MODEL and h["config"].get("latent_dim") == d)[:n_models - 1]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params.update({"page": "sliders", "dataset": "mnist", "models": ",".join([MODEL, *same]),
                            "browser": "0"})  # the server-side sliders (the latent pad: bench/browser_sliders.py)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [im for im in at.image if any("decode(z)" in c for c in im.captions)]
    assert len(shown) == n_models, f"{len(shown)} decoded images shown, wanted {n_models}"
    return at


def slider_moves(at: AppTest, moves: int, panel: list | None = None) -> list[float]:
    """Move z1 ``moves`` times; the full-page rerun times (s). With ``panel``, also append the
    server time of the slider fragment alone (s): what a slider move costs in a browser."""
    key = f"z_mnist_{MODEL}_0"
    times = []
    for i in range(moves):
        at.slider(key=key).set_value(round(-2 + 4 * i / moves, 2))
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        if panel is not None:
            panel.append(at.session_state["_sliders_panel_ms"] / 1000)
    assert not at.exception, [e.value for e in at.exception]
    return times


def cold_pages() -> None:
    for page in PAGES:
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.query_params.update({"page": page, "dataset": "mnist"})
        t0 = time.perf_counter()
        at.run()
        dt = time.perf_counter() - t0
        assert not at.exception, [e.value for e in at.exception]
        print(f"  {page:14s} {dt * 1000:7.0f} ms")


def load_everything() -> None:
    """Every shipped checkpoint of both datasets through the app (Coverage with all models)."""
    for dataset in APP_DATASETS:
        names = sorted(checkpoints(dataset)[0])
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.query_params.update({"page": "coverage", "dataset": dataset, "models": ",".join(names)})
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    print(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


def session_child(moves: int, start_at: float) -> None:
    """One session of the concurrent run: open Sliders, wait for the common start, move."""
    at = open_sliders(1)
    slider_moves(at, 3)
    time.sleep(max(0.0, start_at - time.time()))
    panel = []
    page = slider_moves(at, moves, panel)
    print(",".join(f"{t:.6f}" for t in page))
    print(",".join(f"{t:.6f}" for t in panel))


def concurrent(sessions: int, moves: int) -> None:
    """``sessions`` AppTest sessions moving sliders at the same time. AppTest's runtime is
    process-global, so each session is a process; they share the 2 cores as a server's do."""
    start_at = time.time() + 25  # time for every child to import and open its page
    procs = [subprocess.Popen([sys.executable, __file__, "--session-child", str(start_at), "--moves", str(moves)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for _ in range(sessions)]
    outs = [p.communicate()[0] for p in procs]
    wall = time.time() - start_at
    page = [float(x) for out in outs for x in out.strip().splitlines()[-2].split(",")]
    panel = [float(x) for out in outs for x in out.strip().splitlines()[-1].split(",")]
    print(f"{sessions} concurrent sessions, 1 model each: fragment {summary(panel)}; whole page {summary(page)}; "
          f"{len(page) / wall:.1f} reruns/s in all")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--moves", type=int, default=30)
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--session-child", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rss_child:
        load_everything()
        return
    if args.session_child is not None:
        session_child(args.moves, args.session_child)
        return

    # Warm the process (imports, dataset file cache) so "cold" means cold caches, not cold Python.
    AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    for n in (1, 8):
        at = open_sliders(n)
        slider_moves(at, 3)  # warm-up: first decode of these shapes
        panel = []
        page = slider_moves(at, args.moves, panel)
        print(f"slider move, {n} model{'s' if n > 1 else ''} shown: fragment (browser) {summary(panel)}; "
              f"whole page (AppTest) {summary(page)}")
    print("cold first render per page (mnist, caches cleared):")
    cold_pages()
    out = subprocess.run([sys.executable, __file__, "--rss-child"], capture_output=True, text=True, check=True)
    n_ckpt = sum(len(checkpoints(d)[0]) for d in APP_DATASETS)
    print(f"peak RSS of a fresh server with all {n_ckpt} shipped checkpoints loaded: "
          f"{out.stdout.strip().splitlines()[-1]} MiB")
    if args.sessions:
        concurrent(args.sessions, args.moves)


if __name__ == "__main__":
    with as_running_server():
        main()
