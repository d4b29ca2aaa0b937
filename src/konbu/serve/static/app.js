// konbu serve's page: a hash router over the three sections (Draw, Runs, Train).
//
//   #/draw[?run=NAME]      draw and predict (the default)
//   #/runs                 every run;  #/runs/NAME  one run;  #/compare?runs=a,b  runs side by side
//   #/train                start, watch, stop and resume training
//
// Each page is a function (root, {params, query}) that fills `root` and may return a cleanup
// function (closing its live streams and timers), called when the page is left.

import { comparePage, runPage, runsPage } from "./runs.js";
import { drawPage } from "./draw.js";
import { trainPage } from "./train.js";
import { clearMessages, h } from "./util.js";

const ROUTES = [
  { pattern: /^draw$/, page: drawPage, section: "draw" },
  { pattern: /^runs$/, page: runsPage, section: "runs" },
  { pattern: /^runs\/([^/]+)$/, page: runPage, section: "runs" },
  { pattern: /^compare$/, page: comparePage, section: "runs" },
  { pattern: /^train$/, page: trainPage, section: "train" },
];

let cleanup = null;

/** "#/runs/digits?x=1" -> {path: "runs/digits", query: URLSearchParams("x=1")} */
function parseHash() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = hash.split("?");
  return { path: path.replace(/\/+$/, ""), query: new URLSearchParams(search) };
}

function render() {
  const { path, query } = parseHash();
  if (!path) {
    location.replace("#/draw");   // fires hashchange, which renders the Draw page
    return;
  }
  if (cleanup) cleanup();
  cleanup = null;
  clearMessages();
  const main = document.getElementById("page");
  const root = h("div", { class: "page" });
  main.replaceChildren(root);
  window.scrollTo(0, 0);

  const route = ROUTES.find((r) => r.pattern.test(path));
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", route !== undefined && link.dataset.section === route.section);
  }
  if (!route) {
    root.append(h("h1", {}, "Not found"), h("p", {}, "No page at #/", path, ". ", h("a", { href: "#/draw" }, "Draw"), "?"));
    return;
  }
  const params = path.match(route.pattern).slice(1).map(decodeURIComponent);
  document.title = `konbu · ${params[0] || route.section}`;
  cleanup = route.page(root, { params, query }) || null;
}

window.addEventListener("hashchange", render);
render();
