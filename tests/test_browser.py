"""The app in a real browser: `streamlit run app.py` headless on a free loopback port, driven by
Debian's chromium through selenium (chromium-driver; nothing is downloaded).

Opens every page and checks that no Streamlit exception box appears, moves a latent slider and
checks that the decoded image changed (pixels of element screenshots), selects two models on
Coverage, and draws a stroke on the Your input canvas. One screenshot per page is written to
``$LATENT_EXPLORER_SCREENSHOTS`` (the README's pictures come from
``LATENT_EXPLORER_SCREENSHOTS=docs python -m pytest tests/test_browser.py``), else to a
temporary folder.

Skipped where chromium, chromium-driver or selenium is missing, except under CI (``CI=true``),
where the README's commands install them, so a missing browser fails.
"""
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlsplit
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import explorer

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
PAGES = {"home": "", "coverage": "coverage", "sliders": "sliders", "drift": "drift", "samplers": "sampler",
         "particle-flow": "particle_flow", "imaginings": "imaginings", "your-input": "your_input",
         "leaderboard": "leaderboard"}

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.common.exceptions import StaleElementReferenceException
except ImportError:  # pragma: no cover - reported by the skip below
    webdriver = None

MISSING = [what for what, ok in (("chromium", CHROMIUM), ("chromium-driver", DRIVER), ("selenium", webdriver))
           if not ok]
if MISSING and os.environ.get("CI") != "true":
    pytest.skip(f"needs {', '.join(MISSING)} (apt-get install chromium chromium-driver; pip install selenium)",
                allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    assert not MISSING, f"CI must have {', '.join(MISSING)}: see the README's test command"
    port = free_port()
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"latent-explorer-browser-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                             "--server.headless=true", f"--server.port={port}", "--server.address=127.0.0.1",
                             "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"streamlit did not come up on {base} in 90 s; see {log.name}")
    yield base
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def chromium(*extra: str):
    """Headless Chromium with no network but the app's own host."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1500,1300", "--hide-scrollbars",
                # a room with no network: every host but the app's own fails to resolve
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", *extra):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # to list every request the pages make
    driver = webdriver.Chrome(options=opts, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    return driver


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    out = Path(os.environ.get("LATENT_EXPLORER_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def settle(driver, timeout: float = 120, quiet: float = 1.0) -> None:
    """Wait until the app has a title and has not been running (status widget, stale elements)
    for ``quiet`` seconds."""
    deadline, calm_since = time.time() + timeout, None
    while time.time() < deadline:
        busy = (driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]') or
                driver.find_elements(By.CSS_SELECTOR, '[data-stale="true"]') or
                not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMain"] h1'))
        if busy:
            calm_since = None
        elif calm_since is None:
            calm_since = time.time()
        elif time.time() - calm_since >= quiet:
            return
        time.sleep(0.2)
    raise AssertionError(f"the app was still running after {timeout} s at {driver.current_url}")


def no_exception(driver) -> None:
    boxes = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert not boxes, f"{driver.current_url}: " + " | ".join(b.text[:500] for b in boxes)


def image_with_caption(driver, text: str, timeout: float = 30):
    """The image captioned ``text``, waited for up to ``timeout`` s: on a cold, busy server a fragment
    can draw its images after the page has looked settled for a second."""
    deadline = time.time() + timeout
    while True:
        for el in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stImage"]'):
            try:
                if text in el.text:
                    return el.find_element(By.TAG_NAME, "img")
            except StaleElementReferenceException:
                pass
        if time.time() > deadline:
            raise AssertionError(f"no image captioned {text!r} at {driver.current_url}")
        time.sleep(0.3)


def decoded_image(driver, timeout: float = 30):
    """The first model's decoded image on Sliders: the latent pad's canvas, or the server-side image."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        canvases = driver.find_elements(By.CSS_SELECTOR, ".lx-pad canvas.lx-image")
        if canvases:
            return canvases[0]
        images = [el for el in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stImage"]')
                  if "decode(z)" in el.text]
        if images:
            return images[0].find_element(By.TAG_NAME, "img")
        time.sleep(0.3)
    raise AssertionError(f"no decoded image at {driver.current_url}")


def pixels(element) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(element.screenshot_as_png)).convert("L"), dtype=np.float32)


def requested_urls(driver) -> list[str]:
    """Every URL the browser asked for since the last call (Chrome's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_every_page_renders_without_an_exception_or_the_network(server, browser, shots):
    """Each page renders, and nothing on it asks a host other than the app's own: talks happen
    offline (the page icon used to come from Google's font server)."""
    requested_urls(browser)  # drop what came before
    outside = []
    for shot, path in PAGES.items():
        browser.get(f"{server}/{path}")
        settle(browser)
        no_exception(browser)
        if shot == "sliders":
            pad_ready(browser)  # the latent pad's decoders are in the browser: its images are drawn
        browser.save_screenshot(str(shots / f"{shot}.png"))
        urls = requested_urls(browser)
        assert any(u.startswith(server) for u in urls), f"no request to the app seen on {path!r}: the log is empty"
        outside += [(path, u) for u in urls
                    if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).hostname not in ("127.0.0.1", "localhost")]
    assert len(list(shots.glob("*.png"))) >= len(PAGES)
    assert not outside, f"requests to other hosts: {outside[:10]}"


def test_moving_a_latent_slider_changes_the_decoded_image(server, browser):
    """The server-side sliders (Decode in the browser: off, browser=0 in a link)."""
    browser.get(f"{server}/sliders?models=vae&browser=0")
    settle(browser)
    before = pixels(image_with_caption(browser, "decode(z)"))
    z1 = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stSlider"] input[type="range"]')[0]
    thumb = z1.find_element(By.XPATH, "../..")  # the visible handle around the hidden range input
    ActionChains(browser).click_and_hold(thumb).move_by_offset(60, 0).move_by_offset(60, 0).release().perform()
    settle(browser)
    no_exception(browser)
    after = pixels(image_with_caption(browser, "decode(z)"))
    assert before.shape == after.shape
    assert np.abs(after - before).mean() > 2.0, "the decoded image did not change"
    assert "z=" in browser.current_url  # and the new z is in the link


def pad_ready(driver, timeout: float = 90) -> dict:
    """The latent pad's stats (window.__latentPad) once its decoders are loaded; fails on its error."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        stats = driver.execute_script("const p = window.__latentPad; return p ? "
                                      "{ready: p.ready, error: p.error, decodes: p.decodes} : null")
        if stats and stats["error"]:
            raise AssertionError(f"the latent pad failed: {stats['error']}")
        if stats and stats["ready"] and stats["decodes"] > 0:
            return stats
        time.sleep(0.3)
    raise AssertionError(f"the latent pad was not ready after {timeout} s at {driver.current_url}")


def pad_pixels(driver, k: int) -> np.ndarray:
    return np.array(driver.execute_script(f"return window.__latentPad.pixels({k})"), dtype=np.int16)


def decoded_uint8(name: str, z, dataset: str = "mnist") -> np.ndarray:
    """What the server would show for z: ``decode(z)`` as uint8, as ``ui.common.to_image`` rounds it."""
    model = explorer.load(ROOT / "checkpoints" / dataset / f"{name}.safetensors")
    with torch.no_grad():
        x = model.decode(torch.tensor([z], dtype=torch.float32))[0, 0]
    return (x.clamp(0, 1) * 255).round().to(torch.int16).flatten().numpy()


def test_the_latent_pad_decodes_while_the_mouse_is_held(server, browser):
    """Issue 17: the image changes mid-drag (button held), the browser's image equals decode(z) within
    2/255 on each model, z reaches the link only on release, and nothing is fetched from another host."""
    requested_urls(browser)
    browser.get(f"{server}/sliders?dataset=mnist&models=vae,ar-elbo-iso-i")
    settle(browser)
    no_exception(browser)
    first = pad_ready(browser)
    before = pad_pixels(browser, 0)
    z1 = browser.find_element(By.CSS_SELECTOR, '.lx-pad input[type="range"][data-dim="0"]')
    ActionChains(browser).click_and_hold(z1).move_by_offset(30, 0).pause(0.2).move_by_offset(30, 0).pause(0.3) \
        .perform()  # the button is still held
    mid = pad_pixels(browser, 0)
    held = browser.execute_script("return window.__latentPad.decodes")
    url_mid = browser.current_url
    ActionChains(browser).release().perform()
    settle(browser)
    assert np.abs(mid - before).mean() > 2.0, "the image did not change while the mouse was held"
    assert held > first["decodes"]
    z = browser.execute_script("return window.__latentPad.z()")
    assert z[0] > 0.3 and all(abs(v) < 1e-6 for v in z[1:])
    assert "z=0%2C" in url_mid or "z=0," in url_mid  # not sent while dragging ...
    assert f"z={z[0]:.2f}," in browser.current_url.replace("%2C", ",")  # ... but on release
    z2 = browser.find_element(By.CSS_SELECTOR, '.lx-pad input[type="range"][data-dim="1"]')
    z2.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.SHIFT + Keys.ARROW_RIGHT)  # keyboard steps: 0.1, 0.1, 0.5
    settle(browser)
    z = browser.execute_script("return window.__latentPad.z()")
    assert abs(z[1] - 0.7) < 1e-6, z[1]
    for k, name in enumerate(["vae", "ar-elbo-iso-i"]):
        diff = np.abs(pad_pixels(browser, k) - decoded_uint8(name, z))
        assert diff.max() <= 2, (name, int(diff.max()))
    assert requested_urls(browser) and not [u for u in requested_urls(browser) if _outside(u, server)]


def _outside(url: str, server: str) -> bool:
    return not (url.startswith(server) or url.startswith(("data:", "blob:", "about:")))


def test_the_latent_pad_of_a_2d_model_decodes_where_the_plane_is_clicked(server, browser):
    browser.get(f"{server}/sliders?dataset=mnist&models=vae-2d")
    settle(browser)
    pad_ready(browser)
    plane = browser.find_element(By.CSS_SELECTOR, ".lx-map-star.lx-clickable")
    ActionChains(browser).move_to_element_with_offset(plane, -90, -60).click().perform()
    settle(browser)
    z = browser.execute_script("return window.__latentPad.z()")
    assert z[0] < -0.1 and z[1] > 0.1, z  # left of and above the centre: x < 0, y > 0
    assert np.abs(pad_pixels(browser, 0) - decoded_uint8("vae-2d", z)).max() <= 2


def test_without_webassembly_the_sliders_decode_on_the_server(server):
    driver = chromium()
    try:  # a browser without WebAssembly: removed before any of the app's scripts run
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": "delete window.WebAssembly;"})
        driver.get(f"{server}/sliders?dataset=mnist&models=vae")
        settle(driver)
        deadline = time.time() + 60
        while "cannot decode here" not in driver.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text:
            assert time.time() < deadline, "no fallback message"
            time.sleep(0.5)
        settle(driver)
        no_exception(driver)
        assert driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSlider"]')
        image_with_caption(driver, "decode(z)")
    finally:
        driver.quit()


def test_selecting_two_models_on_coverage(server, browser):
    browser.get(f"{server}/coverage")
    settle(browser)
    for name in [e.get_attribute("aria-label")[len("Remove "):] for e in
                 browser.find_elements(By.CSS_SELECTOR, '[data-testid="stMultiSelect"] button[aria-label^="Remove "]')]:
        browser.find_element(By.CSS_SELECTOR, f'button[aria-label="Remove {name}"]').click()
        settle(browser)
    for name in ("beta-vae", "ar-elbo-iso-d"):
        box = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMultiSelect"] input')
        box.click()
        box.send_keys(name)
        option = [o for o in browser.find_elements(By.CSS_SELECTOR, '[role="option"]') if o.text.strip() == name]
        assert option, f"no option {name!r} in the Models list"
        option[0].click()
        settle(browser)
        browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"] h1').click()  # close the list
    settle(browser)
    no_exception(browser)
    assert len(browser.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')) == 2
    assert "models=beta-vae%2Car-elbo-iso-d" in browser.current_url or \
        "models=beta-vae,ar-elbo-iso-d" in browser.current_url
    # box-select points in the first map: the selected test images are shown below
    plot = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')[0]
    ActionChains(browser).move_to_element_with_offset(plot, -40, -20).click_and_hold() \
        .move_by_offset(30, 15).move_by_offset(30, 15).release().perform()
    settle(browser)
    no_exception(browser)
    assert "Selected: " in browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text


def test_a_drawing_is_encoded_by_the_chosen_models(server, browser, shots):
    browser.get(f"{server}/your_input?models=vae,ar-elbo-iso-i")
    settle(browser)
    canvas = browser.find_element(By.CSS_SELECTOR, ".st-key-input_canvas")
    ActionChains(browser).move_to_element_with_offset(canvas, 0, -90).click_and_hold() \
        .move_by_offset(0, 60).move_by_offset(0, 60).move_by_offset(0, 60).release().perform()
    settle(browser)
    no_exception(browser)
    assert "Converted drawing to the mnist format" in browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text
    image_with_caption(browser, "x′ — vae")
    image_with_caption(browser, "x′ — ar-elbo-iso-i")
    browser.save_screenshot(str(shots / "your-input.png"))  # the page with a drawing, for the README


def test_no_map_is_blank_on_a_page_of_many_maps(server, browser):
    """The Samplers page with LDC-VAE and the VAE holds nine maps; drawn with WebGL, one stayed blank
    ("Too many active WebGL contexts"). Every map must show its points, and the browser must not warn."""
    browser.get_log("browser")  # drop what came before
    browser.get(f"{server}/sampler?dataset=mnist&models=ldc-vae,vae")
    settle(browser)
    no_exception(browser)
    maps = [p for p in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .js-plotly-plot')
            if any(t.text.startswith("PCA") for t in p.find_elements(By.CSS_SELECTOR, ".xtitle"))]  # not the bars
    assert len(maps) == 9, f"{len(maps)} maps"
    for k, plot in enumerate(maps):
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", plot)
        drawn = browser.execute_script(
            "return arguments[0].querySelectorAll('.scatterlayer path.point').length", plot)
        assert drawn >= 2000, f"map {k}: {drawn} points drawn as SVG"
    warnings = [e["message"] for e in browser.get_log("browser") if "WebGL" in e["message"]]
    assert not warnings, warnings[:3]


OVERLAP_JS = """
// Text boxes inside each plotly figure that intersect: titles, axis titles, legend entries and title,
// play buttons, slider labels, annotations; tick labels only against those (not against each other).
const out = [];
for (const plot of document.querySelectorAll('.js-plotly-plot')) {
  const pick = sel => Array.from(plot.querySelectorAll(sel)).filter(t => t.textContent.trim() &&
      getComputedStyle(t).fill !== 'rgba(0, 0, 0, 0)' && t.getBoundingClientRect().width > 0);
  const main = pick('.gtitle, .g-xtitle text, .g-ytitle text, .legendtext, .legendtitletext, ' +
                    '.updatemenu-item-text, .slider-current-value, .annotation-text');
  const ticks = pick('.xtick text, .ytick text');
  const boxes = main.map(t => [t, t.getBoundingClientRect()]);
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++)
      if (hit(boxes[i][1], boxes[j][1])) out.push(boxes[i][0].textContent + ' / ' + boxes[j][0].textContent);
    for (const t of ticks)
      if (hit(boxes[i][1], t.getBoundingClientRect())) out.push(boxes[i][0].textContent + ' / tick ' + t.textContent);
  }
}
return out;
"""


def _box(driver, element) -> dict:
    return driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", element)


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)], ids=["1280x800", "1920x1080"])
def test_presentation_mode_reads_from_the_back_of_the_room(server, browser, shots, size):
    """Presentation mode at a projector's resolutions: plots fill >= 60 % of the window's height, images
    are >= 2x their normal size, tick labels >= 18 px, the navigation is on screen, the toolbar is
    not, and no text inside a figure overlaps other text. Screenshots: presentation-*.png."""
    browser.set_window_size(*size)
    try:
        tag = f"{size[0]}x{size[1]}"

        def decoded_width(present: bool) -> float:
            browser.get(f"{server}/sliders?dataset=mnist&models=vae" + ("&present=1" if present else ""))
            settle(browser)
            no_exception(browser)
            return _box(browser, decoded_image(browser))["width"]

        normal = decoded_width(False)
        for page in ("coverage?dataset=mnist&models=vae,ldc-vae", "sampler?dataset=mnist&models=vae",
                     "particle_flow?dataset=mnist", "sliders?dataset=mnist&models=vae", "imaginings?dataset=mnist"):
            browser.get(f"{server}/{page}&present=1")
            settle(browser)
            no_exception(browser)
            where = page.split("?")[0]
            if where == "sliders":
                pad_ready(browser)
            browser.save_screenshot(str(shots / f"presentation-{where}-{tag}.png"))
            inner = browser.execute_script("return window.innerHeight")
            nav = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stTopNav"]')
            assert nav and _box(browser, nav[0])["width"] > 200, f"{where}: no navigation along the top"
            for hidden in ("stToolbarActions", "stMainMenu"):
                for e in browser.find_elements(By.CSS_SELECTOR, f'[data-testid="{hidden}"]'):
                    assert not e.is_displayed(), f"{where}: {hidden} is visible"
            assert "Deploy" not in browser.find_element(By.TAG_NAME, "header").text
            charts = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')
            maps = [c for c in charts if c.find_elements(By.CSS_SELECTOR, ".xtick")]
            for c in maps:
                h = _box(browser, c)["height"]
                assert h >= 0.6 * inner, f"{where}: a plot {h:.0f} px high in a {inner}-px window"
            sizes = browser.execute_script(
                "return Array.from(document.querySelectorAll('.xtick text, .ytick text'))"
                ".map(t => parseFloat(getComputedStyle(t).fontSize))")
            assert bool(sizes) == bool(maps) and min(sizes or [18]) >= 18, f"{where}: tick labels of {sizes[:3]} px"
            overlaps = browser.execute_script(OVERLAP_JS)
            assert not overlaps, f"{where}: overlapping text: {overlaps[:5]}"
            if where == "sliders":
                shown = _box(browser, decoded_image(browser))["width"]
                assert shown >= 2 * normal - 1, f"decode(z) {shown:.0f} px, normally {normal:.0f} px"
            if where == "imaginings":
                img = image_with_caption(browser, "imaginings")
                natural = browser.execute_script("return arguments[0].naturalWidth", img)
                assert _box(browser, img)["width"] >= natural - 1, "the imaginings were shrunk to fit"
    finally:
        browser.set_window_size(1500, 1300)


def test_coverage_names_its_codes_and_a_legend_click_hides_a_class(server, browser):
    """Coverage draws one z ~ q(z|x) per test image by default and says so; covered points are
    filled, the rest open; clicking a class in the legend hides that class's points."""
    browser.get(f"{server}/coverage?dataset=fashion-mnist&models=vae")
    settle(browser)
    no_exception(browser)
    main = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text
    assert "against one draw z ~ q(z|x) per test image" in main and "active units" in main
    plot = browser.find_element(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .js-plotly-plot')
    assert plot.find_element(By.CSS_SELECTOR, ".legendtitletext").text.startswith("z ~ q(z|x)")
    symbols = browser.execute_script(
        "return Array.from(arguments[0].querySelectorAll('.scatterlayer path.point'))"
        ".map(p => { const c = getComputedStyle(p); "
        "return !['none', 'transparent', 'rgba(0, 0, 0, 0)'].includes(c.fill) && c.fillOpacity !== '0'; })", plot)
    assert True in symbols and False in symbols, "no filled/open split between covered and uncovered points"
    entries = plot.find_elements(By.CSS_SELECTOR, ".legend .traces")
    names = [e.text for e in entries]
    assert "Trouser" in names and "Ankle boot" in names  # the dataset's class names
    legend_top, title_bottom, plot_h = browser.execute_script(
        "const p = arguments[0]; return [p.querySelector('.legend').getBoundingClientRect().top, "
        "p.querySelector('.xtitle').getBoundingClientRect().bottom, p._fullLayout._size.h]", plot)
    assert legend_top >= title_bottom, f"the legend overlaps the x-axis title ({legend_top} < {title_bottom} px)"
    assert plot_h >= 280, f"the plot area is {plot_h} px high"  # the 11-entry legend sits below it, not in it
    shown = ("return arguments[0].data.filter(t => t.visible !== 'legendonly')"
             ".map(t => t.legendgroup || t.name)")  # a class's covered and uncovered points: one legend group
    before = browser.execute_script(shown, plot)
    entries[names.index("Trouser")].find_element(By.CSS_SELECTOR, ".legendtoggle").click()
    time.sleep(1)
    after = browser.execute_script(shown, plot)
    assert "class 1" in before and "class 1" not in after, (before, after)  # Trouser is class 1
    assert set(before) - set(after) == {"class 1"}, (before, after)  # and only Trouser went


def test_drift_arrows_are_labelled_with_test_image_indices(server, browser):
    browser.get(f"{server}/drift?dataset=mnist&models=vae&images=3,17,250")
    settle(browser)
    no_exception(browser)
    maps = [p for p in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .js-plotly-plot')
            if any(t.text.startswith("PCA") for t in p.find_elements(By.CSS_SELECTOR, ".xtitle"))]
    assert len(maps) == 1
    labels = sorted(t.text for t in maps[0].find_elements(By.CSS_SELECTOR, ".scatterlayer .textpoint text"))
    assert labels == ["17", "250", "3"]
    shafts = [float(a.value_of_css_property("stroke-width").rstrip("px"))
              for a in maps[0].find_elements(By.CSS_SELECTOR, ".annotation-arrow-g path")]
    bold = [w for w in shafts if w > 0]  # shafts; the heads are filled paths of width 0
    assert bold and min(bold) >= 2, shafts  # an arrow shorter than its few-pixel stand-off is not drawn:
    assert browser.execute_script(  # ... so every z′ is a diamond of its own, drawn on top
        "return Array.from(arguments[0].querySelectorAll('.scatterlayer .trace')).filter(t => "
        "t.__data__ && t.__data__[0] && t.__data__[0].trace && t.__data__[0].trace.name.startsWith('z′'))"
        ".map(t => t.querySelectorAll('path.point').length)", maps[0]) == [3]


def test_each_map_keeps_its_own_axes_and_imaginings_list_lambda_in_order(server, browser):
    """LDC-VAE's codes span ±40 and the VAE's ±3: each map keeps its own range (they used to share one,
    shrinking the VAE to a dot). Imaginings offers λ = 0, then increasing λ."""
    browser.get(f"{server}/coverage?dataset=mnist&models=vae,ldc-vae")
    settle(browser)
    no_exception(browser)
    spans = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-testid=stPlotlyChart] .js-plotly-plot'))"
        ".map(p => p._fullLayout.xaxis.range[1] - p._fullLayout.xaxis.range[0])")
    assert len(spans) == 2 and max(spans) > 5 * min(spans), spans
    browser.get(f"{server}/imaginings?dataset=mnist")
    settle(browser)
    no_exception(browser)
    radio = [e.text for e in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stRadio"] label')
             if e.text.startswith("λ = ")]
    lams = [float(t.split(" ")[2]) for t in radio]
    assert len(lams) == 3 and lams == sorted(lams) and lams[0] == 0, radio


def test_particle_flow_runs_only_when_asked(server, browser):
    """Moving a setting does not rerun SVGD; "Run SVGD" does (the figure's frame count follows the steps)."""
    browser.get(f"{server}/particle_flow?dataset=mnist")
    settle(browser, timeout=180)
    no_exception(browser)
    frames = lambda: browser.execute_script(  # noqa: E731
        "const p = document.querySelector('[data-testid=stPlotlyChart] .js-plotly-plot');"
        "return p && p._transitionData ? p._transitionData._frames.length : -1")
    assert frames() == 101  # the default view: 100 steps
    steps = [e for e in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stSlider"]') if "Steps" in e.text][0]
    thumb = steps.find_element(By.CSS_SELECTOR, 'input[type="range"]').find_element(By.XPATH, "../..")
    ActionChains(browser).click_and_hold(thumb).move_by_offset(-25, 0).move_by_offset(-25, 0).release().perform()
    time.sleep(2)
    assert frames() == 101, "a moved setting reran SVGD without the button"
    [b for b in browser.find_elements(By.CSS_SELECTOR, "button") if "Run SVGD" in b.text][0].click()
    settle(browser, timeout=180)
    no_exception(browser)
    assert frames() in (26, 51), frames()  # the steps chosen: 25 or 50


def test_leaderboard_rows_open_together_on_coverage(server, browser):
    """Ticking two rows of the Leaderboard table (the data grid's row markers, a canvas) selects both
    models, and its Coverage link opens them side by side."""
    browser.get(f"{server}/leaderboard")
    settle(browser)
    grid = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"] [data-testid="stDataFrame"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", grid)
    box = _box(browser, grid)
    for row in (0, 1):  # header and rows are 35 px tall; the row-marker column is the first 30 px or so
        ActionChains(browser).move_to_element_with_offset(grid, 12 - box["width"] / 2,
                                                          35 + 35 * row + 17 - box["height"] / 2).click().perform()
        settle(browser)
    no_exception(browser)
    main = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]')
    chosen = [e.get_attribute("aria-label")[len("Remove "):] for e in
              main.find_elements(By.CSS_SELECTOR, '[data-testid="stMultiSelect"] button[aria-label^="Remove "]')]
    assert len(chosen) == 2, f"two ticked rows should select two models, got {chosen}"
    assert "are selected on" in main.text
    link = [a for a in main.find_elements(By.CSS_SELECTOR, '[data-testid="stPageLink"] a') if a.text == "Coverage"]
    assert link, "no Coverage link beside the selection"
    link[0].click()
    settle(browser)
    no_exception(browser)
    assert "/coverage" in browser.current_url
    assert len(browser.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')) == 2
    for name in chosen:
        assert name in browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text


def test_a_room_sees_what_it_is_told(server, browser, tmp_path):
    """The rest of issue 15 in a real browser: the d = 2 plane at equal aspect; log-scale FD bars; a
    posterior-width control that makes a row of imaginings differ; a link with one unknown model keeps
    the good one and names the bad one, and restores its index without Streamlit's "default value"
    warning; a bad upload names the file, never ``<_io.BytesIO ...>``."""
    browser.get(f"{server}/coverage?dataset=mnist&models=vae-2d")
    settle(browser)
    no_exception(browser)
    ratio = browser.execute_script(  # pixels per latent unit along x over the same along y
        "const l = document.querySelector('[data-testid=stPlotlyChart] .js-plotly-plot')._fullLayout;"
        "return (l.xaxis._length / (l.xaxis.range[1] - l.xaxis.range[0])) /"
        "       (l.yaxis._length / Math.abs(l.yaxis.range[1] - l.yaxis.range[0]))")
    assert abs(ratio - 1) < 0.02, f"the d = 2 latent plane is stretched {ratio:.2f}:1"

    browser.get(f"{server}/leaderboard?dataset=mnist")
    settle(browser)
    no_exception(browser)
    types = browser.execute_script("return Array.from(document.querySelectorAll('[data-testid=stPlotlyChart] "
                                   ".js-plotly-plot')).map(p => p._fullLayout.xaxis.type)")
    assert types and all(t == "log" for t in types), types

    browser.get(f"{server}/sliders?dataset=mnist&models=nonexistent,vae&index=7")
    settle(browser)
    no_exception(browser)
    main = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text
    assert "'nonexistent'" in main and "ignored" in main
    assert "default value" not in main
    image_with_caption(browser, "test image 7")
    decoded_image(browser)

    bad = tmp_path / "holiday photo.png"
    bad.write_bytes(b"this is not an image")
    browser.get(f"{server}/your_input?dataset=mnist&models=vae")
    settle(browser)
    [r for r in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stRadio"] label') if r.text == "upload"][0].click()
    settle(browser)
    browser.find_element(By.CSS_SELECTOR, '[data-testid="stFileUploader"] input[type="file"]').send_keys(str(bad))
    settle(browser)
    no_exception(browser)
    alert = " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stAlert"]'))
    assert "holiday photo.png" in alert and "BytesIO" not in alert, alert

    browser.get(f"{server}/imaginings?dataset=mnist")
    settle(browser)
    no_exception(browser)
    row = lambda: image_with_caption(browser, "imaginings")  # noqa: E731
    sharp = pixels(row())
    width = [e for e in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stSlider"]')
             if "Posterior width" in e.text][0]
    thumb = width.find_element(By.CSS_SELECTOR, 'input[type="range"]').find_element(By.XPATH, "../..")
    span = _box(browser, width)["width"]  # drag the handle to the right end: T = 20
    ActionChains(browser).click_and_hold(thumb).move_by_offset(span / 2, 0).move_by_offset(span / 2, 0) \
        .release().perform()
    settle(browser)
    no_exception(browser)
    assert "20" in width.text
    assert np.abs(pixels(row()) - sharp).mean() > 1, "a wider posterior drew the same row"


def test_crafted_links_render_as_text(server, browser):
    """Markdown and HTML in URL parameters show as text: no link or image to another host appears,
    nothing is fetched from it, and the page renders."""
    requested_urls(browser)  # drop what came before
    for query in ("page=[Session expired - sign in](http://evil.invalid)",
                  "page=sliders&models=![x](http://evil.invalid/p.png),vae",
                  "page=coverage&models=see http://evil.invalid/now"):
        browser.get(f"{server}/?{query}")
        settle(browser)
        no_exception(browser)
        found = browser.execute_script(
            "return Array.from(document.querySelectorAll('a[href], img[src]')).map(e => e.href || e.src)"
            ".filter(u => { try { return new URL(u).hostname.endsWith('evil.invalid'); } catch (e) { return false; } })")
        assert not found, (query, found)
        assert "evil.invalid" in browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text, query
    assert not [u for u in requested_urls(browser) if (urlsplit(u).hostname or "").endswith("evil.invalid")]
