// The Draw page (#/draw): draw a digit (or a character the run knows) and watch the model answer.
//
// The canvas is sent as a PNG while you draw, at most every DEBOUNCE_MS (one request at a time, the
// latest drawing always last), to POST /api/runs/{run}/predict; the answer's top-5 bars, the 28x28
// image the model saw and training images of the predicted class are shown beside it. "Look inside"
// adds every layer's output (POST .../activations) and Grad-CAM (POST .../gradcam), and keeps them
// current while you draw, as the ConvNetJS demos did.

import { api, ApiError, clearMessages, guard, h, percent, pixelImage, runPath, shapeInWords, showMessage,
         statusBadge } from "./util.js";

const SIZE = 280;          // canvas pixels: 10x the 28x28 the model sees
const BRUSH = 20;          // MNIST strokes are ~2-3 px of 28, so ~20 px of 280
const DEBOUNCE_MS = 150;   // at most ~6 requests a second while drawing
const TOP = 5;

export function drawPage(root, { query }) {
  const page = new DrawPage(root, query.get("run"));
  guard(() => page.start())();
  return () => page.stop();
}

class DrawPage {
  constructor(root, wantedRun) {
    this.root = root;
    this.wantedRun = wantedRun;
    this.run = null;
    this.runs = [];
    this.source = null;          // what to send: null (nothing yet), "canvas", or a File from the upload
    this.generation = 0;         // bumped by Clear and a new run: answers to older requests are dropped
    this.dirty = false;          // the drawing changed since the last request
    this.busy = false;           // a request is in flight
    this.timer = null;
    this.examples = new Map();   // "run/index" -> examples answer, so moving a stroke doesn't refetch them
    this.inside = { open: false, mode: "step", index: 0, steps: null, target: "" };
    this.build();
  }

  // ------------------------------------------------------------------------- layout

  build() {
    this.select = h("select", { id: "run-select", "aria-label": "run", onchange: () => this.chooseRun(this.select.value) });
    this.runInfo = h("span", { class: "run-info" });
    this.canvas = h("canvas", { id: "pad", width: SIZE, height: SIZE, "aria-label": "drawing pad" });
    this.context = this.canvas.getContext("2d");
    this.fileInput = h("input", { type: "file", accept: "image/*", id: "upload", onchange: guard(() => this.upload()) });
    this.insideButton = h("button", { type: "button", id: "look-inside", onclick: guard(() => this.toggleInside()) },
                          "Look inside");
    this.uploadNote = h("p", { class: "note upload-note" });
    this.errors = h("div", { class: "messages" });
    this.answerBox = h("div", { id: "answer", class: "answer" });
    this.inputBox = h("div", { id: "model-input", class: "model-input" });
    this.examplesBox = h("div", { id: "examples", class: "examples" });
    this.insideSection = h("section", { id: "inside", class: "card inside", hidden: true });

    this.root.append(
      h("div", { class: "page-head" },
        h("h1", {}, "Draw"),
        h("p", { class: "lead" }, "Draw in the black square: the model answers while you draw. ",
          "The percentages are calibrated: of the answers given with 90%, about 9 in 10 are right.")),
      h("div", { class: "toolbar" }, h("label", { for: "run-select" }, "Run"), this.select, this.runInfo),
      h("div", { class: "draw-grid" },
        h("div", { class: "card pad-card" },
          this.canvas,
          h("div", { class: "buttons" },
            h("button", { type: "button", id: "clear", onclick: () => this.clear() }, "Clear"),
            this.insideButton),
          h("label", { class: "upload" }, "…or upload an image instead: ", this.fileInput),
          this.uploadNote),
        h("div", { class: "card" }, h("h2", {}, "Prediction"), this.errors, this.answerBox),
        h("div", { class: "card" },
          h("h2", {}, "What the model sees"),
          h("p", { class: "note" }, "Your drawing shrunk to the model's input, centred as the training images were."),
          h("div", { class: "seen" }, this.inputBox, this.examplesBox))),
      this.insideSection);
    this.clearCanvas();
    this.showHint();
    this.listenToPointer();
  }

  async start() {
    this.runs = await api("/api/runs");
    if (!this.root.isConnected) return;   // the page was left while we waited
    if (!this.runs.length) {
      this.answerBox.replaceChildren(h("p", { class: "hint" }, "No runs yet: ",
        h("a", { href: "#/train" }, "train one"), " first, or start konbu serve with --runs FOLDER."));
      return;
    }
    for (const run of this.runs) {
      const training = run.status === "running" ? " (training)" : "";
      this.select.append(h("option", { value: run.name }, `${run.name} — ${run.model} on ${run.dataset}${training}`));
    }
    // the run asked for in the address, else the newest one that has finished training
    const named = this.runs.find((run) => run.name === this.wantedRun);
    const ready = this.runs.find((run) => run.status !== "running");
    this.chooseRun((named || ready || this.runs[0]).name);
  }

  stop() {
    clearTimeout(this.timer);
    this.generation += 1;
  }

  chooseRun(name) {
    this.run = name;
    this.select.value = name;
    this.generation += 1;
    this.inside.steps = null;
    this.inside.target = "";
    // the run goes into the address, so a reload or a shared link opens the same one (no re-render)
    history.replaceState(null, "", `#/draw?run=${encodeURIComponent(name)}`);
    const run = this.runs.find((r) => r.name === name);
    this.classes = null;
    this.readClasses(name);
    this.runInfo.replaceChildren(
      `${run.model} on ${run.dataset}`,
      run.test_accuracy != null ? ` · test accuracy ${percent(run.test_accuracy)} · ` : " · ",
      statusBadge(run.status), " ",
      h("a", { href: `#/runs/${encodeURIComponent(name)}` }, "run page"));
    if (this.source) this.requestUpdate();
    else this.showHint();
  }

  // ------------------------------------------------------------------------- drawing

  listenToPointer() {
    // pointer events cover the mouse, a pen and touch; touch-action: none (app.css) stops the page
    // from scrolling under a finger that draws
    let last = null;
    this.canvas.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      event.preventDefault();
      this.canvas.setPointerCapture(event.pointerId);
      if (this.source !== "canvas") this.startDrawing();
      last = this.point(event);
      this.dot(last);
      this.requestUpdate();
    });
    this.canvas.addEventListener("pointermove", (event) => {
      if (!last) return;
      const next = this.point(event);
      this.line(last, next);
      last = next;
      this.requestUpdate();
    });
    const end = () => {
      if (!last) return;
      last = null;
      this.requestUpdate();   // the finished stroke is always the last one asked about
    };
    this.canvas.addEventListener("pointerup", end);
    this.canvas.addEventListener("pointercancel", end);
  }

  /** The event's position in canvas pixels (the canvas may be drawn smaller than 280 on a small screen). */
  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return { x: (event.clientX - box.left) * (SIZE / box.width), y: (event.clientY - box.top) * (SIZE / box.height) };
  }

  dot({ x, y }) {
    this.context.fillStyle = "#fff";
    this.context.beginPath();
    this.context.arc(x, y, BRUSH / 2, 0, 2 * Math.PI);
    this.context.fill();
  }

  line(from, to) {
    const c = this.context;
    c.strokeStyle = "#fff";
    c.lineWidth = BRUSH;
    c.lineCap = "round";
    c.lineJoin = "round";
    c.beginPath();
    c.moveTo(from.x, from.y);
    c.lineTo(to.x, to.y);
    c.stroke();
  }

  clearCanvas() {
    // black, not transparent: the PNG must look like an MNIST digit, white on black
    this.context.fillStyle = "#000";
    this.context.fillRect(0, 0, SIZE, SIZE);
  }

  startDrawing() {
    // drawing after an upload starts a new picture rather than scribbling over the photo
    this.clearCanvas();
    this.source = "canvas";
    this.uploadNote.textContent = "";
  }

  clear() {
    this.clearCanvas();
    this.source = null;
    this.generation += 1;
    this.dirty = false;
    this.fileInput.value = "";
    this.uploadNote.textContent = "";
    this.inside.steps = null;
    this.showHint();
    if (this.inside.open) this.renderInside();
  }

  /** The run's class names, for the hint: a kana run asks for kana, not digits. */
  async readClasses(name) {
    const run = await api(runPath(name), { errorIn: this.errors }).catch(() => null);
    if (!run || name !== this.run) return;
    this.classes = (run.preprocess && run.preprocess.classes) || null;
    if (!this.source) this.showHint();
  }

  showHint() {
    clearMessages(this.errors);
    const classes = this.classes && this.classes.length <= 100
      ? [" It knows: ", h("span", { class: "glyph known" }, this.classes.join(" ")), "."] : null;
    this.answerBox.replaceChildren(h("p", { class: "hint" }, "Draw in the black square, or upload an image.", classes));
    this.inputBox.replaceChildren();
    this.examplesBox.replaceChildren();
  }

  async upload() {
    const file = this.fileInput.files[0];
    if (!file) return;
    this.source = file;
    this.uploadNote.textContent = `Uploaded ${file.name}: drawing on the square starts a new picture.`;
    await this.preview(file);
    this.requestUpdate();
  }

  /** The uploaded picture on the canvas, fitted inside it, so you see what you sent. */
  preview(file) {
    return new Promise((resolve) => {
      const reader = new FileReader();
      reader.onload = () => {
        const image = new Image();
        image.onload = () => {
          this.clearCanvas();
          const scale = Math.min(SIZE / image.width, SIZE / image.height);
          const w = image.width * scale;
          const ht = image.height * scale;
          this.context.drawImage(image, (SIZE - w) / 2, (SIZE - ht) / 2, w, ht);
          resolve();
        };
        image.onerror = () => resolve();   // the server says why it can't read it
        image.src = reader.result;
      };
      reader.onerror = () => resolve();
      reader.readAsDataURL(file);
    });
  }

  // ------------------------------------------------------------------------- asking the model

  /** Asks again soon: at most one request every DEBOUNCE_MS and never two at once, so an answer
   *  arrives while the stroke goes on, and the last drawing is always the last one asked about. */
  requestUpdate() {
    if (!this.run || !this.source) return;
    this.dirty = true;
    if (this.timer || this.busy) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.update();
    }, DEBOUNCE_MS);
  }

  async update() {
    if (!this.dirty || !this.source) return;
    this.dirty = false;
    this.busy = true;
    try {
      await this.ask();
    } catch (error) {
      if (!(error instanceof ApiError)) showMessage(String(error.message || error), { where: this.errors });
    } finally {
      this.busy = false;
      if (this.dirty) this.requestUpdate();
    }
  }

  /** The request body for the current picture: the canvas as a PNG data URL, or the uploaded file. */
  body() {
    if (this.source === "canvas") return { json: { image: this.canvas.toDataURL("image/png"), name: "drawing" } };
    const form = new FormData();
    form.append("file", this.source, this.source.name);
    return { form };
  }

  async ask() {
    const generation = this.generation;
    clearMessages(this.errors);
    const answer = await api(`${runPath(this.run)}/predict?input=1&top=${TOP}`,
                             { method: "POST", ...this.body(), errorIn: this.errors });
    if (generation !== this.generation) return;
    this.showAnswer(answer);
    if (this.inside.open) await this.lookInside(generation);
  }

  showAnswer(answer) {
    this.inputBox.replaceChildren();
    if (answer.input) {
      const image = pixelImage(answer.input, { size: 168, alt: "the model's input" });
      const caption = h("p", { class: "caption" }, "the model's input");
      image.addEventListener("load", () => {
        caption.textContent = `the model's input, ${image.naturalWidth}×${image.naturalHeight} pixels`;
      });
      this.inputBox.append(image, caption);
    }
    if (answer.label === null || answer.label === undefined) {
      // a digit run refuses a picture with no digit in it, and says why
      this.answerBox.replaceChildren(h("p", { class: "reason" }, answer.reason || "no answer for this image"));
      this.examplesBox.replaceChildren();
      return;
    }
    this.answerBox.replaceChildren(bars(answer.predictions));
    guard(() => this.showExamples(answer.index, answer.label), this.errors)();
  }

  async showExamples(index, label) {
    const key = `${this.run}/${index}`;
    const generation = this.generation;
    if (!this.examples.has(key)) {
      this.examples.set(key, await api(`${runPath(this.run)}/examples/${index}?count=8`, { errorIn: this.errors }));
    }
    if (generation !== this.generation) return;
    const answer = this.examples.get(key);
    this.examplesBox.replaceChildren(
      h("h3", {}, "Training images of ", h("span", { class: "glyph" }, label)),
      answer.images.length
        ? h("div", { class: "thumbs" }, answer.images.map((src) => pixelImage(src, { size: 56, alt: label })))
        : h("p", { class: "note" }, answer.note || "no training images on this machine"));
  }

  // ------------------------------------------------------------------------- inside the network

  async toggleInside() {
    this.inside.open = !this.inside.open;
    this.insideSection.hidden = !this.inside.open;
    this.insideButton.textContent = this.inside.open ? "Hide the inside" : "Look inside";
    this.insideButton.classList.toggle("active", this.inside.open);
    if (!this.inside.open) return;
    this.renderInside();
    if (this.source) await this.lookInside(this.generation);
    this.insideSection.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  async lookInside(generation) {
    const target = this.inside.target === "" ? "" : `?target=${this.inside.target}`;
    const [activations, cam] = await Promise.all([
      api(`${runPath(this.run)}/activations`, { method: "POST", ...this.body(), errorIn: this.errors }),
      api(`${runPath(this.run)}/gradcam${target}`, { method: "POST", ...this.body(), errorIn: this.errors }),
    ]);
    if (generation !== this.generation) return;
    const classes = activations.probabilities.map((p) => p.label);
    this.inside.steps = [
      { name: "input", type: "Input", shape: null, input: activations.input,
        explain: "the picture as the model takes it in: shrunk, centred and scaled like the training images" },
      ...activations.layers,
      { name: "output", type: "Softmax", shape: [classes.length], probabilities: activations.probabilities,
        explain: "the calibrated probability of each class: what the Prediction panel shows" },
    ];
    this.inside.classes = classes;
    this.inside.cam = cam;
    this.inside.index = Math.min(this.inside.index, this.inside.steps.length - 1);
    this.renderInside();
  }

  renderInside() {
    const { steps, mode } = this.inside;
    const head = h("div", { class: "inside-head" },
      h("h2", {}, "Inside the network"),
      h("div", { class: "segmented", role: "group", "aria-label": "how to show the layers" },
        h("button", { type: "button", class: mode === "step" ? "active" : "", id: "mode-step",
                      onclick: () => this.setMode("step") }, "One layer at a time"),
        h("button", { type: "button", class: mode === "all" ? "active" : "", id: "mode-all",
                      onclick: () => this.setMode("all") }, "All layers")));
    if (!steps) {
      this.insideSection.replaceChildren(head, h("p", { class: "hint" }, "Draw something to see each layer act on it."));
      return;
    }
    const layers = mode === "step" ? this.stepView() : h("div", { class: "layer-stack" },
      steps.map((step, i) => layerCard(step, i, steps.length, this.inside.classes, 44)));
    this.insideSection.replaceChildren(head, h("div", { class: "inside-grid" }, layers, this.camCard()));
  }

  setMode(mode) {
    this.inside.mode = mode;
    this.renderInside();
  }

  stepView() {
    const { steps, index } = this.inside;
    const go = (i) => {
      this.inside.index = Math.max(0, Math.min(steps.length - 1, i));
      this.renderInside();
    };
    // the whole path as chips, so you see where this layer sits between the image and the answer
    const path = h("ol", { class: "layer-path" }, steps.map((step, i) =>
      h("li", {}, h("button", { type: "button", class: i === index ? "active" : "", title: step.explain,
                                onclick: () => go(i) },
        step.name, h("small", {}, step.shape ? step.shape.join("×") : "image")))));
    return h("div", { class: "layer-step" },
      path,
      h("div", { class: "stepper" },
        h("button", { type: "button", id: "prev-layer", disabled: index === 0, onclick: () => go(index - 1) }, "‹ Previous"),
        h("span", { class: "step-count" }, `step ${index + 1} of ${steps.length}`),
        h("button", { type: "button", id: "next-layer", disabled: index === steps.length - 1,
                      onclick: () => go(index + 1) }, "Next ›")),
      layerCard(steps[index], index, steps.length, this.inside.classes, 72));
  }

  camCard() {
    const cam = this.inside.cam;
    const select = h("select", { id: "cam-target", "aria-label": "Grad-CAM class", onchange: guard(async () => {
      this.inside.target = select.value;
      await this.lookInside(this.generation);
    }, this.errors) },
    h("option", { value: "" }, "the predicted class"),
    this.inside.classes.map((label, i) => h("option", { value: String(i) }, label)));
    select.value = this.inside.target;
    return h("aside", { class: "cam", id: "gradcam" },
      h("h3", {}, "Where the evidence is (Grad-CAM)"),
      h("label", {}, "evidence for ", select),
      pixelImage(cam.overlay, { size: 224, alt: `Grad-CAM for ${cam.label}` }),
      h("p", {}, "Red: where the maps of ", h("code", {}, cam.layer), " pushed the answer towards ",
        h("span", { class: "glyph" }, cam.label), ` (${percent(cam.probability)}); blue: where they did not.`));
  }
}

// ----------------------------------------------------------------------------- pieces

/** The top-K answer as bars, each with its label (a digit or a glyph) and its probability. */
export function bars(predictions) {
  return h("ol", { class: "bars" }, predictions.map((p, i) =>
    h("li", { class: i === 0 ? "top" : "" },
      h("span", { class: "bar-label glyph" }, p.label),
      h("span", { class: "bar-track" }, h("span", { class: "bar-fill", style: { width: `${(100 * p.probability).toFixed(1)}%` } })),
      h("span", { class: "bar-value" }, percent(p.probability)))));
}

/** One step of the way through the network: its name, type, shape, what it does, and its output. */
function layerCard(step, index, count, classes, mapSize) {
  const shown = step.maps ? step.maps.length : 0;
  const more = step.shape && step.shape.length === 3 && shown < step.shape[0] ? ` (the first ${shown} shown)` : "";
  return h("article", { class: "layer", dataset: { layer: step.name } },
    h("header", {},
      h("span", { class: "layer-number" }, `${index + 1}/${count}`),
      h("strong", {}, step.name), " ",
      h("span", { class: "badge type" }, step.type), " ",
      h("span", { class: "shape" }, step.shape ? shapeInWords(step.shape) + more : "the image the model sees")),
    step.explain ? h("p", { class: "explain" }, step.explain) : null,
    layerBody(step, classes, mapSize));
}

function layerBody(step, classes, mapSize) {
  if (step.input) return pixelImage(step.input, { size: 3 * mapSize, alt: "input" });
  if (step.probabilities) {
    const sorted = [...step.probabilities].sort((a, b) => b.probability - a.probability).slice(0, 10);
    return bars(sorted);
  }
  if (step.maps) {
    return h("div", {},
      h("div", { class: "maps" }, step.maps.map((src, i) => pixelImage(src, { size: mapSize, alt: `map ${i}`,
                                                                            title: `map ${i}` }))),
      step.range ? h("p", { class: "caption" }, `values from ${step.range[0].toFixed(2)} to ${step.range[1].toFixed(2)}: `,
                     "red above 0, blue below, white 0") : null);
  }
  if (step.values) {
    const labels = step.values.length === classes.length ? classes : null;
    return h("div", {}, valueStrip(step.values, labels),
      h("p", { class: "caption" }, `${step.values.length} values: red above 0, blue below`));
  }
  return h("p", { class: "note" }, "too many values to draw");
}

/** A vector layer's values as a strip of bars around a zero line (red above, blue below), with the
 *  class labels under them when there is one value per class (the last layer's scores). */
function valueStrip(values, labels) {
  const width = Math.min(760, Math.max(200, values.length * 6));
  const height = labels ? 110 : 80;
  const canvas = h("canvas", { class: "strip", width, height });
  const c = canvas.getContext("2d");
  const top = Math.max(...values.map(Math.abs)) || 1;
  const middle = labels ? 45 : height / 2;
  const half = middle - 4;
  const step = width / values.length;
  values.forEach((value, i) => {
    const size = (Math.abs(value) / top) * half;
    c.fillStyle = value >= 0 ? "#d9480f" : "#1c7ed6";
    c.fillRect(i * step + step * 0.1, value >= 0 ? middle - size : middle, Math.max(1, step * 0.8), size);
  });
  c.fillStyle = "#888";
  c.fillRect(0, middle, width, 1);
  if (labels) {
    c.fillStyle = "#222";
    c.font = "16px system-ui, 'Noto Sans CJK JP', sans-serif";
    c.textAlign = "center";
    labels.forEach((label, i) => c.fillText(label, i * step + step / 2, height - 8));
  }
  return canvas;
}
