// Helpers every page uses: the one request function, messages, building DOM, formatting numbers.
//
// Every request to the server goes through api(): an answer {"error": message} (400, 404, 409, 500)
// is shown on the page and thrown as an ApiError, so no failure is ever dropped silently.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
    this.shown = true;   // api() has put it on the page already: callers need not show it again
  }
}

/** A request to the konbu server: JSON in (`json`) or a FormData (`form`), JSON out.
 *  Errors are shown in `errorIn` (an element) or, by default, in the message bar under the nav. */
export async function api(path, { method = "GET", json, form, errorIn } = {}) {
  const options = { method, headers: { Accept: "application/json" } };
  if (json !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(json);
  } else if (form !== undefined) {
    options.body = form;   // the browser writes the multipart Content-Type with its boundary
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw fail(`the server did not answer (${error.message}): is \`konbu serve\` still running?`, 0, errorIn);
  }
  const body = await readJson(response);
  if (!response.ok) {
    const message = body && typeof body.error === "string" ? body.error : `${response.status} ${response.statusText}`;
    throw fail(message, response.status, errorIn);
  }
  return body;
}

async function readJson(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: `the server answered something that is not JSON: ${text.slice(0, 200)}` };
  }
}

function fail(message, status, errorIn) {
  showMessage(message, { where: errorIn });
  return new ApiError(message, status);
}

/** A message on the page: an error (default) or a note, with a button to dismiss it. */
export function showMessage(text, { where, kind = "error" } = {}) {
  const box = where || document.getElementById("messages");
  const message = h("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", { class: "message-text" }, text),
    h("button", { class: "dismiss", type: "button", title: "dismiss", "aria-label": "dismiss",
                  onclick: () => message.remove() }, "×"));
  box.append(message);
  return message;
}

export function clearMessages(where) {
  (where || document.getElementById("messages")).replaceChildren();
}

/** Runs an async event handler; an error api() has shown is done with, anything else is shown too,
 *  so a click never ends in an unhandled rejection. */
export function guard(action, errorIn) {
  return async (...args) => {
    try {
      await action(...args);
    } catch (error) {
      if (!(error instanceof ApiError)) {
        console.warn(error);
        showMessage(String(error.message || error), { where: errorIn });
      }
    }
  };
}

/** h("div", {class: "x", onclick: f}, "text", child, [more children]): an element. Text always goes
 *  in as text (never as HTML), so run names and labels from the server can't inject markup. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "style" && typeof value === "object") Object.assign(element.style, value);
    else if (key === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(key, value === true ? "" : value);
  }
  appendAll(element, children);
  return element;
}

/** element.append(...) that, like h(), flattens arrays and leaves out null, undefined and false
 *  (the DOM's own append would add the text "null"). */
export function append(element, ...children) {
  appendAll(element, children);
  return element;
}

function appendAll(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** A small image from a data URL (the server sends test images and maps as PNG data URLs), enlarged
 *  without smoothing so each of the 28x28 pixels stays visible. */
export function pixelImage(src, { size, alt = "", title } = {}) {
  return h("img", { src, alt, title, class: "pixelated", width: size, height: size });
}

// ----------------------------------------------------------------------------- formatting

export function percent(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return `${(100 * value).toFixed(digits)}%`;
}

export function number(value, digits = 4) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return Number(value.toPrecision(digits)).toString();
}

export function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 90) return `${Math.round(value)} s`;
  if (value < 5400) return `${Math.round(value / 60)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

/** "2026-12-01 05:29" in the browser's time zone, from run.json's ISO timestamp. */
export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const two = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ` +
         `${two(date.getHours())}:${two(date.getMinutes())}`;
}

/** A layer's output shape in words: [16, 26, 26] -> "16 maps of 26×26"; [64] -> "64 values". */
export function shapeInWords(shape) {
  if (!shape || !shape.length) return "";
  if (shape.length === 3) return `${shape[0]} map${shape[0] === 1 ? "" : "s"} of ${shape[1]}×${shape[2]}`;
  if (shape.length === 1) return `${shape[0]} values`;
  return shape.join("×");
}

/** The status of a run or job as a coloured badge. */
export function statusBadge(status) {
  return h("span", { class: `badge status-${status || "unknown"}` }, status || "unknown");
}

export function liveBadge() {
  return h("span", { class: "badge live", title: "a training process is writing this run now" }, "live");
}

/** Encodes a run name for a URL path segment. */
export function runPath(run) {
  return `/api/runs/${encodeURIComponent(run)}`;
}
