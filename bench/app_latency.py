"""App latency on this machine, measured with Streamlit's AppTest (server-side script time).

    python bench/app_latency.py [--moves 30]

Prints the median and p95 rerun time after a slider change on the Sliders page, and the
cold time to render the Coverage page with every shipped MNIST model (caches cleared).
AppTest reruns the whole page script on a slider change; in a browser the sliders sit in an
``st.fragment``, so only the slider panel reruns: the figure printed is an upper bound.
Targets (2 CPU cores): median slider rerun <= 30 ms; cold Coverage <= 2 s.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ui.apptest import as_running_server  # noqa: E402
from ui.common import checkpoints  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--moves", type=int, default=30)
    args = p.parse_args()

    # Warm the process (imports, dataset file cache) so "cold" means cold caches, not cold Python.
    warm = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    warm.run()
    names = sorted(checkpoints("mnist")[0])

    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.switch_page("pages/coverage.py")
    at.session_state["coverage_models_mnist"] = names
    t0 = time.perf_counter()
    at.run()
    cold = time.perf_counter() - t0
    assert not at.exception, [e.value for e in at.exception]
    print(f"cold Coverage render, {len(names)} MNIST models: {cold * 1000:.0f} ms "
          f"({len(at.get('plotly_chart'))} plots)")

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("pages/sliders.py").run()
    slider = [s for s in at.slider if s.label == "z1"][0]
    times = []
    for i in range(args.moves):
        slider.set_value(round(-2 + 4 * i / args.moves, 2))
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        slider = [s for s in at.slider if s.label == "z1"][0]
    times.sort()
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(f"slider rerun over {args.moves} moves: median {statistics.median(times) * 1000:.1f} ms, "
          f"p95 {p95 * 1000:.1f} ms")


if __name__ == "__main__":
    with as_running_server():
        main()
