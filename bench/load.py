"""Many viewers on one server: N sessions move widgets over the real server's websocket.

    python bench/load.py [--sessions 1 5 20 50] [--moves 10] [--page sliders coverage] [--budget 180]

Starts ``streamlit run app.py`` headless on a free 127.0.0.1 port, then for each N opens N sessions with
``websocket-client``, each speaking Streamlit's protobuf messages (``streamlit.proto``: a BackMsg
``rerun_script`` out, ForwardMsgs back until ``script_finished``), as a browser tab does:

- Sliders (``models=vae``, the server-side sliders: ``browser=0``): each move sets latent slider z1 to a new value and reruns the sliders'
  fragment (what a browser's slider release sends);
- Coverage (``models=vae,ar-elbo-iso-i,consistency-vae``): each move flips the sampler radio between the
  prior and GMM-10, a whole-page rerun.

A session's first page load is timed apart (cold). Prints, per page and N: the rerun latency a session
sees (send to ``script_finished``, median and p95), reruns per second over all sessions, and the server's
resident memory after the run and at its peak (VmRSS, VmHWM of the server process). Bounded in count
(``--moves`` per session) and in time (``--budget`` seconds per N). Measures the server on this machine;
the browser's drawing time comes on top (bench/app_latency.py, tests/test_browser.py).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
from pathlib import Path

import websocket
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from app_server import app_server

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"sliders": ("sliders", "dataset=mnist&models=vae&browser=0", "slider", "z1"),
         "coverage": ("coverage", "dataset=mnist&models=vae,ar-elbo-iso-i,consistency-vae", "radio", "Sampler")}
DONE = (0, 3)  # ScriptFinishedStatus: FINISHED_SUCCESSFULLY, FINISHED_FRAGMENT_RUN_SUCCESSFULLY


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return tuple(int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))


class Session:
    """One viewer: a websocket speaking Streamlit's protocol."""

    def __init__(self, port: int, page: str):
        self.page_name, self.query, self.kind, self.label = PAGES[page]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"],
                                              timeout=300)
        self.widget = None  # (id, fragment id, options)

    def rerun(self, widget_state=None, fragment_id: str = "") -> float:
        msg = BackMsg()
        msg.rerun_script.query_string = self.query
        msg.rerun_script.page_name = self.page_name
        if widget_state is not None:
            msg.rerun_script.widget_states.widgets.append(widget_state)
        if fragment_id:
            msg.rerun_script.fragment_id = fragment_id
        t0 = time.perf_counter()
        self.ws.send_binary(msg.SerializeToString())
        while True:
            f = ForwardMsg()
            f.ParseFromString(self.ws.recv())
            kind = f.WhichOneof("type")
            if kind == "delta" and f.delta.WhichOneof("type") == "new_element":
                el = f.delta.new_element
                if el.WhichOneof("type") == self.kind and getattr(el, self.kind).label == self.label:
                    w = getattr(el, self.kind)
                    self.widget = (w.id, f.delta.fragment_id, list(getattr(w, "options", [])))
            elif kind == "script_finished" and f.script_finished in DONE:
                return time.perf_counter() - t0

    def move(self, rng: random.Random, k: int) -> float:
        wid, fragment, _ = self.widget
        state = WidgetState(id=wid)
        if self.kind == "slider":
            state.double_array_value.data.append(round(rng.uniform(-3, 3), 2))
        else:  # radio: alternate the first two options
            state.int_value = k % 2
        return self.rerun(state, fragment if self.kind == "slider" else "")

    def close(self):
        self.ws.close()


def run_level(port: int, page: str, n: int, moves: int, budget: float) -> dict:
    cold, warm, errors, spans = [], [], [], []
    deadline = time.time() + budget
    start = threading.Barrier(n)

    def viewer(i: int):
        rng = random.Random(i)
        try:
            s = Session(port, page)
            cold.append(s.rerun())
            if s.widget is None:
                raise RuntimeError(f"no {s.kind} {s.label!r} on {page}")
            start.wait(timeout=300)
            t_first = time.perf_counter()
            for k in range(moves):
                if time.time() > deadline:
                    break
                warm.append(s.move(rng, k + 1))
            spans.append((t_first, time.perf_counter()))
            s.close()
        except Exception as e:  # noqa: BLE001 - reported in the table
            errors.append(f"{type(e).__name__}: {e}")
            start.abort()

    threads = [threading.Thread(target=viewer, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = (max(b for _, b in spans) - min(a for a, _ in spans)) if spans else float("nan")  # the moving phase
    q = statistics.quantiles(warm, n=20) if len(warm) >= 2 else [float("nan")] * 19
    return {"n": n, "reruns": len(warm), "median": statistics.median(warm) if warm else float("nan"), "p95": q[18],
            "cold": statistics.median(cold) if cold else float("nan"), "rate": len(warm) / wall, "errors": errors}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 5, 20, 50])
    p.add_argument("--moves", type=int, default=10, help="moves per session (default 10)")
    p.add_argument("--page", nargs="+", choices=sorted(PAGES), default=sorted(PAGES, reverse=True))
    p.add_argument("--budget", type=float, default=180, help="seconds per level at most (default 180)")
    args = p.parse_args()
    if any(n < 1 or n > 200 for n in args.sessions) or args.moves < 1:
        p.error(f"--sessions must be in 1..200 and --moves >= 1, got {args.sessions} and {args.moves}")
    with app_server() as (server, port):
        print(f"server pid {server.pid}, {os.cpu_count()} CPUs, LATENT_EXPLORER_THREADS="
              f"{os.environ.get('LATENT_EXPLORER_THREADS', 'default')}; start RSS {memory_mb(server.pid)[0]:.0f} MB")
        print("| page | sessions | reruns | median (s) | p95 (s) | reruns/s | first load median (s) | RSS after (MB) "
              "| peak RSS (MB) | errors |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for page in args.page:
            for n in args.sessions:
                r = run_level(port, page, n, args.moves, args.budget)
                rss, hwm = memory_mb(server.pid)
                err = f"{len(r['errors'])}: {r['errors'][0][:60]}" if r["errors"] else "0"
                print(f"| {page} | {n} | {r['reruns']} | {r['median']:.3f} | {r['p95']:.3f} | {r['rate']:.1f} | "
                      f"{r['cold']:.2f} | {rss:.0f} | {hwm:.0f} | {err} |", flush=True)


if __name__ == "__main__":
    main()
