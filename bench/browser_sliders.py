"""What a person sees when dragging a latent slider: input event to drawn image, in the browser.

    python bench/browser_sliders.py [--steps 200] [--server-steps 30]

Starts ``streamlit run app.py`` headless on a free 127.0.0.1 port and drives Debian's Chromium (selenium).
Everything is timed in the page with ``performance.now()``:

- **latent pad** (decoded in the browser, ``ui/latent_pad.js``): ``--steps`` synthetic drag steps on z1, one per
  animation frame as a real drag delivers them, each an ``input`` event; the time from the event to the
  canvases being drawn (and to the next frame), for 1 model and for 4 models side by side on ``vae``
  (d = 16), and for ``vae-2d`` (the only shipped d = 2 model: 1 model);
- **server-side sliders** (today's path, ``browser=0``): ``--server-steps`` key presses (→) on z1's slider,
  each from the keydown event to the new ``decode(z)`` image being loaded, with the same models;
- **first load**: from navigation to the first decoded image (pad: the first canvas drawn; server: the
  image loaded), decoders already exported (the one-time export is timed apart, per model).

Prints a markdown table. Chromium's CPU competes with the server's on this machine, as in a talk on a laptop.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from explorer.onnx_export import decoder_export  # noqa: E402
from app_server import app_server  # noqa: E402
CASES = [("vae", ["vae"]), ("vae", ["vae", "ar-elbo-iso-i", "consistency-vae", "beta-vae"]), ("vae-2d", ["vae-2d"])]

DRAG = """
const [steps, done] = [arguments[0], arguments[arguments.length - 1]];
const input = document.querySelector('.lx-pad input[type="range"][data-dim="0"]');
const pad = window.__latentPad, start = pad.times.length, lim = parseFloat(input.max);
let i = 0;
function step() {
  if (i === steps) {  // wait for the last decode, then report
    const wait = () => pad.busy || pad.times.length - start < 1 ? setTimeout(wait, 10)
      : setTimeout(() => done({times: pad.times.slice(start), frames: pad.frames.slice(start)}), 100);
    return wait();
  }
  input.value = String(-lim + (2 * lim * i) / steps);
  input.dispatchEvent(new Event("input", {bubbles: true}));
  i += 1;
  requestAnimationFrame(step);
}
requestAnimationFrame(step);
"""

ARM = """
window.__serverStep = null;
const img = Array.from(document.querySelectorAll('[data-testid="stImage"]')).find(e => e.innerText.includes('decode(z)'))
  .querySelector('img');
const before = img.src;
document.addEventListener('keydown', (ev) => { window.__serverStep = {t0: ev.timeStamp}; }, {once: true, capture: true});
const obs = new MutationObserver(() => {
  const now = Array.from(document.querySelectorAll('[data-testid="stImage"]')).find(e => e.innerText.includes('decode(z)'));
  const im = now && now.querySelector('img');
  if (im && im.src !== before) {
    obs.disconnect();
    const finish = () => { if (window.__serverStep) window.__serverStep.t1 = performance.now(); };
    im.complete ? finish() : im.addEventListener('load', finish, {once: true});
  }
});
obs.observe(document.querySelector('[data-testid="stMain"]'), {subtree: true, childList: true, attributes: true});
"""


def chromium():
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1300",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(300)
    return driver


def wait_for(driver, script: str, timeout: float = 120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"{script!r} not true after {timeout} s")


def quantiles(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    return statistics.median(xs), xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def pad_case(driver, base: str, models: list[str], steps: int) -> dict:
    driver.get("about:blank")
    t = time.perf_counter()
    driver.get(f"{base}/sliders?dataset=mnist&models={','.join(models)}")
    first = wait_for(driver, "const p = window.__latentPad; if (p && p.error) throw new Error(p.error); "
                             "return p && p.decodes > 0 && performance.now();")
    wall = time.perf_counter() - t
    time.sleep(1.0)
    out = driver.execute_async_script(DRAG, steps)
    return {"times": out["times"], "frames": out["frames"], "first": first / 1000, "first_wall": wall}


def server_case(driver, base: str, models: list[str], steps: int) -> dict:
    driver.get("about:blank")
    t = time.perf_counter()
    driver.get(f"{base}/sliders?dataset=mnist&browser=0&models={','.join(models)}")
    wait_for(driver, "const e = Array.from(document.querySelectorAll('[data-testid=stImage]'))"
                     ".find(e => e.innerText.includes('decode(z)')); const i = e && e.querySelector('img'); "
                     "return i && i.complete && i.naturalWidth > 0;")
    first = time.perf_counter() - t
    time.sleep(1.0)
    thumb = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSlider"] input[type="range"]')[0]
    times = []
    for _ in range(steps):
        driver.execute_script(ARM)
        thumb.send_keys(Keys.ARROW_RIGHT)
        step = wait_for(driver, "const s = window.__serverStep; return s && s.t1 ? s : null;", timeout=30)
        times.append(step["t1"] - step["t0"])
        time.sleep(0.05)
        thumb = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSlider"] input[type="range"]')[0]
    return {"times": times, "first_wall": first}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200, help="synthetic drag steps on the pad (default 200)")
    p.add_argument("--server-steps", type=int, default=30, help="key presses on the server sliders (default 30)")
    args = p.parse_args()
    if not (1 <= args.steps <= 5000 and 1 <= args.server_steps <= 500):
        p.error(f"--steps must be in 1..5000 and --server-steps in 1..500, got {args.steps}, {args.server_steps}")
    exports = {}  # the one-time exports, timed apart
    for name in sorted({m for _, ms in CASES for m in ms}):
        t = time.perf_counter()
        decoder_export(ROOT / "checkpoints" / "mnist" / f"{name}.safetensors", ROOT / "static" / "onnx")
        exports[name] = time.perf_counter() - t
    driver = None
    with app_server() as (_, port):
        try:
            base = f"http://127.0.0.1:{port}"
            driver = chromium()
            pad_case(driver, base, ["vae"], 5)  # warm the server's caches and the browser's
            print(f"{os.cpu_count()} CPUs; exports (cached afterwards, s): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in exports.items()))
            print("| path | model(s) | d | steps | input → drawn median (ms) | p95 (ms) | input → next frame median (ms) "
                  "| first load (s) |")
            print("|---|---|---:|---:|---:|---:|---:|---:|")
            for main_model, models in CASES:
                d = 2 if main_model.endswith("2d") else 16
                label = f"{len(models)}: {', '.join(models)}"
                r = pad_case(driver, base, models, args.steps)
                med, p95 = quantiles(r["times"])
                fmed, _ = quantiles(r["frames"])
                print(f"| browser (latent pad) | {label} | {d} | {len(r['times'])} | {med:.1f} | {p95:.1f} | {fmed:.1f} "
                      f"| {r['first_wall']:.2f} |", flush=True)
                s = server_case(driver, base, models, args.server_steps)
                smed, sp95 = quantiles(s["times"])
                print(f"| server (st.slider) | {label} | {d} | {len(s['times'])} | {smed:.1f} | {sp95:.1f} | – "
                      f"| {s['first_wall']:.2f} |", flush=True)
                print(f"|  | ratio server / browser (median) | | | {smed / med:.0f}× | | | |", flush=True)
        finally:
            if driver is not None:
                driver.quit()


if __name__ == "__main__":
    main()
