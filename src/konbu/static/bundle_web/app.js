// The bundle's web page: draw or open a picture, and model.onnx answers in this browser.
//
// The model and its contract are the bundle's own files, one folder up (../model.onnx,
// ../preprocess.json, ../classes.json): the page never holds a copy that could drift from them.
// A picture goes the way predict.py takes it: decoded (EXIF orientation applied, colour profiles
// ignored, as PIL does), then pixels.js (konbu/pixels.py in JavaScript) makes the uint8 [1, C, H, W]
// the model takes; model.onnx normalises and calibrates inside, so its "probabilities" are what
// `konbu predict` shows. A drawing goes the same way, from the canvas's pixels.
//
// For programs and tests: window.konbu.ready (a promise), window.konbuPredict(source) -> the
// probabilities (an Array, in classes.json's order), window.konbuPrepare(source) -> the model's input
// (an Array of C*H*W bytes). `source`: an image URL (http:, data:, blob:), a Blob or File (what the
// "Open an image" button passes), a canvas, ImageData, or the model input itself (C*H*W numbers).

import * as ort from "./ort/ort.wasm.min.mjs";
import { modelInput, NoInkFound, PixelError, toGreyOrRgb } from "./pixels.js";

// One thread: more need SharedArrayBuffer, which browsers only give a page served with
// cross-origin isolation headers (a plain `python -m http.server` sends none); a small CNN needs
// no more. The runtime's .mjs and .wasm sit in ./ort/, beside this file: never a CDN.
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;

const BUNDLE = new URL("../", import.meta.url);
const TOP = 3;
const BRUSH = 20;          // canvas pixels: MNIST strokes are ~2-3 px of 28, so ~20 of 280
const REDRAW_MS = 120;     // while drawing, at most ~8 answers a second

const $ = (id) => document.getElementById(id);
const page = { session: null, preprocess: null, classes: null, queue: Promise.resolve() };

// ---------------------------------------------------------------------------------------------
// Loading the bundle
// ---------------------------------------------------------------------------------------------

async function fetchOk(name) {
  const response = await fetch(new URL(name, BUNDLE));
  if (!response.ok) throw new Error(`cannot load ${name} from the bundle folder (HTTP ${response.status})`);
  return response;
}

async function load() {
  status("Loading the model…");
  const [preprocess, classes, record] = await Promise.all([
    fetchOk("preprocess.json").then((r) => r.json()),
    fetchOk("classes.json").then((r) => r.json()),
    fetchOk("export.json").then((r) => r.json()),
  ]);
  const model = new Uint8Array(await (await fetchOk(record.model_file || "model.onnx")).arrayBuffer());
  page.session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
  Object.assign(page, { preprocess, classes });
  describe(record, preprocess);
  document.documentElement.dataset.state = "ready";
  status("Ready.");
}

function describe(record, preprocess) {
  const run = record.run || {};
  const [channels, height, width] = preprocess.image_shape;
  $("title").textContent = `${run.name || "konbu classifier"}`;
  $("subtitle").textContent = `${run.model || "a CNN"} on ${run.dataset || "its dataset"}: ` +
    `${page.classes.length} classes, answered in this browser (nothing is uploaded)`;
  document.title = `${run.name || "konbu"}: classifier`;
  $("hint").textContent = preprocess.ink === "mnist"
    ? "Draw a digit on the black square, or open a photo of one (dark ink on paper works too)."
    : "Draw on the black square, or open an image file.";
  $("seen").width = width;
  $("seen").height = height;
  $("seen-caption").textContent = `what the model sees: ${width}×${height}, ${channels === 1 ? "grey" : "colour"}`;
}

// ---------------------------------------------------------------------------------------------
// A source -> the model's input -> probabilities
// ---------------------------------------------------------------------------------------------

/** An image file as the browser decodes it: EXIF orientation applied, the colour profile ignored
 * (PIL ignores it too), alpha not premultiplied. */
async function decode(blob) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: "from-image", colorSpaceConversion: "none",
                                             premultiplyAlpha: "none" });
  } catch {
    throw new PixelError("not a readable image (the browser cannot decode this file)");
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  return context.getImageData(0, 0, canvas.width, canvas.height);
}

function isModelInput(source) {
  const [channels, height, width] = page.preprocess.image_shape;
  return (Array.isArray(source) || ArrayBuffer.isView(source)) && source.length === channels * height * width;
}

/** Any source -> uint8 [C * H * W], the model's input. */
async function prepare(source) {
  await ready;
  if (isModelInput(source)) return Uint8Array.from(source);
  if (typeof source === "string" || source instanceof URL) {
    const response = await fetch(source);
    if (!response.ok) throw new PixelError(`cannot fetch ${source} (HTTP ${response.status})`);
    source = await response.blob();
  }
  let pixels;
  if (source instanceof Blob) pixels = await decode(source);
  else if (source instanceof HTMLCanvasElement) {
    pixels = source.getContext("2d").getImageData(0, 0, source.width, source.height);
  }
  else if (source && source.data && source.width && source.height) pixels = source;   // ImageData or alike
  else throw new PixelError("expected an image URL, a Blob, a canvas, ImageData or the model's input");
  return modelInput(toGreyOrRgb(pixels), page.preprocess);
}

/** The model's input -> its probabilities (a Float32Array), one run at a time. */
function classify(input) {
  const [channels, height, width] = page.preprocess.image_shape;
  const run = async () => {
    const images = new ort.Tensor("uint8", input, [1, channels, height, width]);
    const outputs = await page.session.run({ images }, ["probabilities"]);
    return outputs.probabilities.data;
  };
  const answer = page.queue.then(run);
  page.queue = answer.catch(() => {});
  return answer;
}

async function predict(source) {
  return Array.from(await classify(await prepare(source)));
}

// ---------------------------------------------------------------------------------------------
// The page: drawing, opening a file, showing the answer
// ---------------------------------------------------------------------------------------------

function status(text, kind = "") {
  $("status").textContent = text;
  $("status").className = kind;
}

function showInput(input) {
  const canvas = $("seen");
  const [channels, height, width] = page.preprocess.image_shape;
  const image = new ImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < 3; c++) image.data[4 * i + c] = input[(channels === 1 ? 0 : c) * width * height + i];
    image.data[4 * i + 3] = 255;
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
}

function showAnswer(probabilities, from) {
  const order = Array.from(probabilities.keys()).sort((a, b) => probabilities[b] - probabilities[a] || a - b);
  const list = $("results");
  list.replaceChildren(...order.slice(0, TOP).map((index) => {
    const item = document.createElement("li");
    item.dataset.index = index;
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = String(page.classes[index]);
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.append(document.createElement("span"));
    bar.firstChild.style.width = `${(100 * probabilities[index]).toFixed(1)}%`;
    const value = document.createElement("span");
    value.className = "probability";
    value.textContent = `${(100 * probabilities[index]).toFixed(1)}%`;
    item.append(label, bar, value);
    return item;
  }));
  list.dataset.from = from;
  status(`From the ${from}:`);
}

/** The whole path of the page's two buttons: a source -> input -> answer on screen. */
async function answer(source, from) {
  try {
    const input = await prepare(source);
    showInput(input);
    showAnswer(await classify(input), from);
  } catch (error) {
    $("results").replaceChildren();
    if (error instanceof NoInkFound) status(error.message, "note");
    else if (error instanceof PixelError) status(error.message, "error");
    else throw error;
  }
}

class Pad {
  constructor(canvas) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d", { willReadFrequently: true });
    this.drawn = false;
    this.timer = null;
    this.clear();
    // pointer events cover the mouse, a pen and a finger; touch-action: none (style.css) keeps a
    // finger that draws from scrolling the page
    let last = null;
    canvas.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      if (!this.drawn) this.clear();   // drawing after an opened picture starts a new one
      this.drawn = true;
      last = this.point(event);
      this.line(last, last);
      this.soon();
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!last) return;
      const next = this.point(event);
      this.line(last, next);
      last = next;
      this.soon();
    });
    const end = () => {
      if (!last) return;
      last = null;
      clearTimeout(this.timer);
      this.timer = null;
      answer(this.canvas, "drawing");   // the finished stroke is always answered
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
  }

  /** The event's position in canvas pixels (CSS may show the canvas smaller than its 280 pixels). */
  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return { x: ((event.clientX - box.left) * this.canvas.width) / box.width,
             y: ((event.clientY - box.top) * this.canvas.height) / box.height };
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

  soon() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      answer(this.canvas, "drawing");
    }, REDRAW_MS);
  }

  clear() {
    // black, opaque: white strokes on black are MNIST's look, and opaque pixels need no flattening
    this.context.fillStyle = "#000";
    this.context.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.drawn = false;
  }

  /** Shows an opened picture, fitted and centred (the answer is computed from the file itself). */
  async show(file) {
    this.clear();
    try {
      const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
      const scale = Math.min(this.canvas.width / bitmap.width, this.canvas.height / bitmap.height);
      const width = bitmap.width * scale, height = bitmap.height * scale;
      this.context.imageSmoothingQuality = "high";
      this.context.drawImage(bitmap, (this.canvas.width - width) / 2, (this.canvas.height - height) / 2, width, height);
      bitmap.close();
    } catch {
      // not an image: answer() says so
    }
  }
}

function start() {
  const pad = new Pad($("pad"));
  $("clear").addEventListener("click", () => {
    pad.clear();
    $("file").value = "";
    $("results").replaceChildren();
    status("Ready.");
  });
  $("file").addEventListener("change", async () => {
    const file = $("file").files[0];
    if (!file) return;
    await pad.show(file);
    await answer(file, `file ${file.name}`);
  });
}

const ready = load();
window.konbu = { ready, predict, prepare: async (source) => Array.from(await prepare(source)), ort };
window.konbuPredict = window.konbu.predict;
window.konbuPrepare = window.konbu.prepare;
ready.then(start, (error) => {
  document.documentElement.dataset.state = "failed";
  status(`The model did not load: ${error.message}`, "error");
  console.error(error);
});
