// The latent pad (Streamlit custom component, components v2): one range input per latent dimension and
// one canvas per model. Every model's decoder runs here, in the browser (onnxruntime-web on
// WebAssembly, files served by the app itself), on every `input` event, so the images follow the
// hand while the mouse button is held. z goes back to Python only on release (`change`), for the link
// and the views drawn on the server. Instrumented for tests and bench/browser_sliders.py through
// window.__latentPad (input-to-drawn times measured with performance.now()).

const ORT = { promise: null };
const SESSIONS = new Map();  // model URL -> Promise<InferenceSession>, shared by every pad of the page
const PADS = new WeakMap();  // the component's parent element -> its pad

function bytesOf(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
const floatsOf = (b64) => new Float32Array(bytesOf(b64).buffer);

function loadOrt(data) {
  if (typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function") {
    return Promise.reject(new Error("WebAssembly is not available in this browser"));
  }
  if (!ORT.promise) {
    ORT.promise = import(new URL(data.ort, document.baseURI).href).then((ort) => {
      ort.env.wasm.wasmPaths = new URL(data.wasm_dir, document.baseURI).href;
      ort.env.wasm.numThreads = 1;  // no cross-origin isolation here, so no threads; one model is ~1 ms anyway
      ort.env.wasm.proxy = false;
      return ort;
    });
  }
  return ORT.promise;
}

function session(ort, url) {
  if (!SESSIONS.has(url)) {
    SESSIONS.set(url, ort.InferenceSession.create(new URL(url, document.baseURI).href,
                                                   { executionProviders: ["wasm"], graphOptimizationLevel: "all" }));
  }
  return SESSIONS.get(url);
}

function el(tag, cls, parent, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

function gaussian() {  // Box-Muller
  let u = 0;
  while (u === 0) u = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
}

class Pad {
  constructor(root, data, api) {
    this.api = api;
    this.signature = data.signature;
    this.d = data.d;
    this.z = Float32Array.from(data.z);
    this.zVersion = data.z_version;
    this.busy = false;
    this.pending = null;
    this.stats = { times: [], frames: [], decodes: 0, ready: false, error: null, drags: 0 };
    this.box = el("div", "lx-pad", root);
    this.box.dataset.testid = "latent-pad";
    this.status = el("div", "lx-status", this.box, "Loading the decoders into the browser ...");
    const body = el("div", "lx-body", this.box);
    const left = el("div", "lx-left", body);
    const buttons = el("div", "lx-buttons", left);
    const random = el("button", "lx-button", buttons, "random z ~ prior");
    random.type = "button";
    random.addEventListener("click", () => this.setZ(Array.from({ length: this.d }, () => gaussian()), true));
    const zero = el("button", "lx-button", buttons, "z = 0");
    zero.type = "button";
    zero.addEventListener("click", () => this.setZ(new Array(this.d).fill(0), true));
    this.readout = el("code", "lx-readout", left);
    const grid = el("div", "lx-sliders", left);
    grid.style.gridTemplateColumns = `repeat(${data.per_row}, minmax(0, 1fr))`;
    this.inputs = [];
    this.values = [];
    for (let i = 0; i < this.d; i++) {
      const cell = el("label", "lx-slider", grid);
      const head = el("span", "lx-head", cell);
      el("span", "lx-name", head, data.labels[i]);
      this.values.push(el("span", "lx-value", head));
      const input = el("input", "", cell);
      Object.assign(input, { type: "range", min: -data.limit, max: data.limit, step: data.step });
      input.setAttribute("aria-label", data.labels[i]);
      input.dataset.dim = String(i);
      input.addEventListener("input", (ev) => {
        this.z[i] = parseFloat(input.value);
        this.values[i].textContent = this.z[i].toFixed(2);
        this.decode(ev.timeStamp);
      });
      input.addEventListener("change", () => this.release());
      input.addEventListener("keydown", (ev) => {  // arrows 0.1 (Shift: 0.5), Page Up/Down 1, Home/End the ends
        const steps = { ArrowRight: 0.1, ArrowUp: 0.1, ArrowLeft: -0.1, ArrowDown: -0.1, PageUp: 1, PageDown: -1 };
        let v = null;
        if (ev.key in steps) v = this.z[i] + steps[ev.key] * (ev.shiftKey && ev.key.startsWith("Arrow") ? 5 : 1);
        else if (ev.key === "Home" || ev.key === "End") v = (ev.key === "End" ? 1 : -1) * data.limit;
        if (v === null) return;
        ev.preventDefault();
        this.z[i] = Math.min(data.limit, Math.max(-data.limit, Math.round(v * 100) / 100));
        input.value = String(this.z[i]);
        this.values[i].textContent = this.z[i].toFixed(2);
        this.decode(ev.timeStamp);
      });
      input.addEventListener("keyup", (ev) => { if (ev.key.startsWith("Arrow") || ev.key.startsWith("Page")
        || ev.key === "Home" || ev.key === "End") this.release(); });
      this.inputs.push(input);
    }
    const right = el("div", "lx-right", body);
    const pics = el("div", "lx-images", right);
    this.models = data.models.map((m) => {
      const fig = el("figure", "lx-figure", pics);
      const [c, h, w] = m.shape;
      const small = Object.assign(document.createElement("canvas"), { width: w, height: h });
      const big = el("canvas", "lx-image", fig);
      Object.assign(big, { width: w * data.scale, height: h * data.scale });
      big.dataset.model = m.name;
      const ctx = big.getContext("2d");
      ctx.imageSmoothingEnabled = false;
      el("figcaption", "", fig, `decode(z) — ${m.name}`);  // textContent: a name is never markup
      return { ...m, c, h, w, small, sctx: small.getContext("2d", { willReadFrequently: true }), ctx, big,
               image: new ImageData(w, h) };
    });
    this.map = data.map ? this.buildMap(right, data.map) : null;
    this.showZ();
    loadOrt(data)
      .then((ort) => Promise.all(this.models.map((m) => session(ort, m.url))).then((ss) => [ort, ss]))
      .then(([ort, sessions]) => {
        this.ort = ort;
        this.sessions = sessions;
        this.stats.ready = true;
        this.status.textContent = "";
        this.status.hidden = true;
        this.decode(performance.now());
      })
      .catch((err) => {
        this.stats.error = String(err && err.message ? err.message : err);
        this.status.textContent = `Decoding in the browser is unavailable: ${this.stats.error}`;
        this.api.setTriggerValue("fallback", this.stats.error);
      });
  }

  buildMap(parent, m) {
    const box = el("div", "lx-map", parent);
    el("div", "lx-map-title", box, m.title);
    const stack = el("div", "lx-map-stack", box);
    const base = el("canvas", "lx-map-points", stack);
    const over = el("canvas", "lx-map-star", stack);
    for (const c of [base, over]) Object.assign(c, { width: m.width, height: m.height });
    stack.style.width = `${m.width}px`;
    stack.style.height = `${m.height}px`;
    const xy = floatsOf(m.xy);
    const labels = bytesOf(m.labels);
    const [[x0, x1], [y0, y1]] = m.ranges;
    const px = (x) => ((x - x0) / (x1 - x0)) * m.width;
    const py = (y) => (1 - (y - y0) / (y1 - y0)) * m.height;
    const ctx = base.getContext("2d");
    ctx.globalAlpha = 0.45;
    for (let i = 0; i < labels.length; i++) {
      ctx.fillStyle = m.colours[labels[i] % m.colours.length];
      ctx.beginPath();
      ctx.arc(px(xy[2 * i]), py(xy[2 * i + 1]), 2.2, 0, 2 * Math.PI);
      ctx.fill();
    }
    const legend = el("div", "lx-legend", box);
    m.classes.forEach((name, k) => {
      const item = el("span", "lx-legend-item", legend);
      el("span", "lx-swatch", item).style.background = m.colours[k % m.colours.length];
      el("span", "", item, name);
    });
    if (m.clickable) {  // d = 2, the true latent plane: a click decodes there
      over.classList.add("lx-clickable");
      over.title = "Click to decode this point of the latent plane";
      over.addEventListener("click", (ev) => {
        const r = over.getBoundingClientRect();
        const x = x0 + ((ev.clientX - r.left) / r.width) * (x1 - x0);
        const y = y0 + (1 - (ev.clientY - r.top) / r.height) * (y1 - y0);
        this.setZ([x, y], true, ev.timeStamp);
      });
    }
    const mean = m.mean ? Float32Array.from(m.mean) : null;
    const comps = m.components ? m.components.map((r) => Float32Array.from(r)) : null;
    const project = (z) => {
      if (!comps) return [z[0], z[1]];
      let a = 0, b = 0;
      for (let i = 0; i < z.length; i++) {
        const v = z[i] - mean[i];
        a += v * comps[0][i];
        b += v * comps[1][i];
      }
      return [a, b];
    };
    const sctx = over.getContext("2d");
    return {
      draw: (z) => {
        const [a, b] = project(z);
        sctx.clearRect(0, 0, m.width, m.height);
        const cx = Math.min(Math.max(px(a), 6), m.width - 6), cy = Math.min(Math.max(py(b), 6), m.height - 6);
        sctx.beginPath();
        for (let k = 0; k < 10; k++) {
          const r = k % 2 ? 4 : 10, t = (Math.PI / 5) * k - Math.PI / 2;
          sctx.lineTo(cx + r * Math.cos(t), cy + r * Math.sin(t));
        }
        sctx.closePath();
        sctx.fillStyle = "crimson";
        sctx.strokeStyle = "white";
        sctx.lineWidth = 1.5;
        sctx.fill();
        sctx.stroke();
      },
    };
  }

  showZ() {
    for (let i = 0; i < this.d; i++) {
      this.inputs[i].value = String(this.z[i]);
      this.values[i].textContent = this.z[i].toFixed(2);
    }
    this.readout.textContent = `z = [${Array.from(this.z, (v) => v.toFixed(2)).join(", ")}]`;
    if (this.map) this.map.draw(this.z);
  }

  setZ(values, send, t0) {
    const lim = parseFloat(this.inputs[0].max);
    for (let i = 0; i < this.d; i++) this.z[i] = Math.min(lim, Math.max(-lim, values[i] || 0));
    this.showZ();
    this.decode(t0 === undefined ? performance.now() : t0);
    if (send) this.release();
  }

  release() {
    this.readout.textContent = `z = [${Array.from(this.z, (v) => v.toFixed(2)).join(", ")}]`;
    this.api.setStateValue("z", Array.from(this.z, (v) => Math.round(v * 100) / 100));
  }

  // Decode the current z with every model; inputs that arrive meanwhile are coalesced into one more decode.
  decode(t0) {
    if (!this.sessions) return;
    if (this.busy) {
      this.pending = Math.min(this.pending === null ? t0 : this.pending, t0);
      return;
    }
    this.busy = true;
    const z = Float32Array.from(this.z);
    const tensor = new this.ort.Tensor("float32", z, [1, this.d]);
    Promise.all(this.sessions.map((s) => s.run({ z: tensor })))
      .then((outs) => {
        outs.forEach((out, k) => this.draw(this.models[k], out.x.data));
        if (this.map) this.map.draw(z);
        const done = performance.now();
        this.stats.times.push(done - t0);
        this.stats.decodes += 1;
        requestAnimationFrame(() => this.stats.frames.push(performance.now() - t0));
      })
      .catch((err) => { this.stats.error = String(err); })
      .finally(() => {
        this.busy = false;
        if (this.pending !== null) {
          const t = this.pending;
          this.pending = null;
          this.decode(t);
        }
      });
  }

  draw(m, x) {  // x: Float32Array (C, H, W) in [0, 1] -> the small canvas, then scaled up, nearest neighbour
    const px = m.image.data, n = m.h * m.w;
    for (let i = 0; i < n; i++) {
      const r = Math.round(Math.min(1, Math.max(0, x[i])) * 255);
      const g = m.c === 3 ? Math.round(Math.min(1, Math.max(0, x[n + i])) * 255) : r;
      const b = m.c === 3 ? Math.round(Math.min(1, Math.max(0, x[2 * n + i])) * 255) : r;
      px[4 * i] = r; px[4 * i + 1] = g; px[4 * i + 2] = b; px[4 * i + 3] = 255;
    }
    m.sctx.putImageData(m.image, 0, 0);
    m.ctx.drawImage(m.small, 0, 0, m.big.width, m.big.height);
  }

  update(data) {
    if (data.z_version !== this.zVersion) {  // z set on the server: a test image's code, a link
      this.zVersion = data.z_version;
      this.setZ(data.z, false);
    }
  }
}

export default function (component) {
  const { parentElement, data, setStateValue, setTriggerValue } = component;
  let pad = PADS.get(parentElement);
  if (pad && pad.signature !== data.signature) {
    pad.box.remove();
    pad = null;
  }
  if (!pad) {
    pad = new Pad(parentElement, data, { setStateValue, setTriggerValue });
    PADS.set(parentElement, pad);
    window.__latentPad = pad.stats;
    window.__latentPad.pixels = (k) => Array.from(
      pad.models[k].sctx.getImageData(0, 0, pad.models[k].w, pad.models[k].h).data.filter((_, i) => i % 4 === 0));
    window.__latentPad.z = () => Array.from(pad.z);
  } else {
    pad.update(data);
  }
}
