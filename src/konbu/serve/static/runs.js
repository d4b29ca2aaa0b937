// The Runs pages: the list of runs (#/runs), one run (#/runs/NAME) and a comparison (#/compare?runs=a,b).
//
// A run page draws its curves from GET /api/runs/{run}/metrics, or, while the run trains, from the
// live stream (follow.js), and shows what the learners asked for: the confusion matrix whose cells
// open their images, the mistakes gallery, the filters before and after training, the model
// summary (shapes at every layer) and the config.

import { Curves, epochChart } from "./charts.js";
import { followRun, progressText } from "./follow.js";
import { api, ApiError, append, guard, h, liveBadge, number, percent, pixelImage, runPath, seconds, statusBadge,
         when } from "./util.js";

const REFRESH_MS = 5000;   // the list refreshes this often while some run is training
const FINISHING_MS = 1000; // a run page looks again this often while a finished run's evaluation is written

// ----------------------------------------------------------------------------- the list

export function runsPage(root) {
  const selected = new Set();
  const table = h("div", { id: "runs-table" });
  const compareButton = h("button", { type: "button", id: "compare", disabled: true, onclick: () => {
    location.hash = `#/compare?runs=${[...selected].map(encodeURIComponent).join(",")}`;
  } }, "Compare selected");
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Runs"),
      h("p", { class: "lead" }, "Every run in the server's runs folder, newest first. Tick two or more to compare them.")),
    h("div", { class: "toolbar" }, compareButton),
    h("div", { class: "card" }, table));

  let timer = null;
  const refresh = async () => {
    const runs = await api("/api/runs");
    if (!root.isConnected) return;   // the page was left while we waited
    for (const name of [...selected]) if (!runs.some((run) => run.name === name)) selected.delete(name);
    table.replaceChildren(runsTable(runs, selected, () => {
      compareButton.disabled = selected.size < 2;
    }));
    compareButton.disabled = selected.size < 2;
    // while a run trains its accuracy and status change: look again in a while
    if (runs.some((run) => run.status === "running" || run.live)) timer = setTimeout(guard(refresh), REFRESH_MS);
  };
  guard(refresh)();
  return () => clearTimeout(timer);
}

function runsTable(runs, selected, onSelect) {
  if (!runs.length) {
    return h("p", { class: "hint" }, "No runs yet. ", h("a", { href: "#/train" }, "Train one"),
             ", or start konbu serve with --runs pointing at a folder of runs.");
  }
  const rows = runs.map((run) => {
    const box = h("input", { type: "checkbox", "aria-label": `select ${run.name}`, value: run.name,
                             checked: selected.has(run.name), onchange: () => {
      if (box.checked) selected.add(run.name);
      else selected.delete(run.name);
      onSelect();
    } });
    return h("tr", { dataset: { run: run.name } },
      h("td", {}, box),
      h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(run.name)}` }, run.name)),
      h("td", {}, run.dataset ?? "–"),
      h("td", {}, run.model ?? "–", run.recipe ? h("span", { class: "note" }, ` (recipe ${run.recipe})`) : null),
      h("td", { class: "num" }, percent(run.test_accuracy)),
      h("td", {}, when(run.started)),
      h("td", {}, statusBadge(run.status), run.live ? [" ", liveBadge()] : null));
  });
  return h("table", { class: "data runs" },
    h("thead", {}, h("tr", {}, ["", "name", "dataset", "model", "test accuracy", "started", "status"]
      .map((title) => h("th", { class: title === "test accuracy" ? "num" : "" }, title)))),
    h("tbody", {}, rows));
}

// ----------------------------------------------------------------------------- one run

export function runPage(root, { params }) {
  const name = params[0];
  const stops = [];
  const load = async () => {
    const run = await api(runPath(name));
    if (!root.isConnected) return;
    renderRun(root, run, stops, () => {
      // the run finished while we watched: read it again for its evaluation, figures and report
      for (const stop of stops.splice(0)) stop();
      root.replaceChildren();
      guard(load)();
    });
  };
  guard(load)();
  return () => stops.forEach((stop) => stop());
}

function renderRun(root, run, stops, onEnd) {
  const name = run.name;
  const info = run.info || {};
  // "running" with no process writing it: training crashed or was killed, there is nothing to follow
  const live = run.status === "running" && run.live;
  const stale = run.status === "running" && !run.live;
  // training has ended but its process is still writing the evaluation, figures and report
  const finishing = run.status !== "running" && run.live;
  const progress = h("p", { id: "progress", class: "progress", hidden: !live && !finishing },
                     live ? progressText(run.progress) : finishing ? "Evaluating on the test set, writing the report…" : "");
  const counter = h("span", { id: "records", class: "note" });
  const curvesBox = h("div", { id: "curves" });
  append(root,
    h("div", { class: "page-head" },
      h("h1", {}, name, " ", statusBadge(run.status), run.live ? [" ", liveBadge()] : null),
      h("p", { class: "lead" },
        `${run.model} on ${run.dataset}`, info.model_source ? ` (${info.model_source})` : "",
        " · started ", when(run.started), run.seconds ? ` · trained ${seconds(run.seconds)}` : "",
        run.test_accuracy != null ? ` · test accuracy ${percent(run.test_accuracy)}` : ""),
      h("p", { class: "links" },
        h("a", { href: `#/draw?run=${encodeURIComponent(name)}` }, "Draw with this run"),
        run.report ? h("a", { href: `/runs/${encodeURIComponent(name)}/report.html`, target: "_blank", id: "report-link" },
                       "Full report (report.html)") : null)),
    section("Training curves", "curves-section", progress,
            h("p", { class: "note" }, "Training per batch and per epoch, validation per epoch. Drag across a chart to zoom, ",
              "double-click to zoom out. ", counter),
            curvesBox),
    stale ? h("p", { class: "message error" }, "This run says it is training, but no process is writing it: the ",
                `training was killed. Continue it with: konbu train --resume ${name}`) : null,
    findings(run.diagnosis));

  const curves = new Curves(curvesBox);
  stops.push(() => curves.destroy());
  const showCount = () => { counter.textContent = `${curves.records.length} records`; };
  if (live) {
    stops.push(followRun(name, {
      onRecords: (records) => { curves.add(records); showCount(); },
      onReset: () => { curves.reset(); showCount(); },
      onProgress: (p) => { progress.textContent = progressText(p); },
      onEnd: onEnd,
    }));
  } else {
    if (finishing) {
      const timer = setTimeout(onEnd, FINISHING_MS);   // read it again until its process is done
      stops.push(() => clearTimeout(timer));
    }
    guard(async () => {
      await loadCurves(name, curves, stops);
      showCount();
    })();
  }

  if (run.evaluation && run.evaluation.confusion) root.append(confusionSection(name, run.evaluation));
  if (run.evaluation) root.append(mistakesSection(name));
  const filters = ["filters-initial.png", "filters.png"].filter((figure) => run.figures.includes(figure));
  if (filters.length) root.append(filtersSection(name, filters));
  append(root, h("div", { class: "two-columns" },
    info.summary ? summarySection(info.summary) : null,
    info.config ? configSection(info.config) : null));
}

/** A finished run's curves from GET metrics. A run whose metrics the server can't send as JSON (see
 *  the report: a diverged run's NaN loss) is read through the stream instead, which ends at once. */
async function loadCurves(name, curves, stops) {
  try {
    curves.add(await api(`${runPath(name)}/metrics`));
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 500) throw error;
    await new Promise((resolve) => stops.push(followRun(name, {
      onRecords: (records) => curves.add(records), onReset: () => curves.reset(), onEnd: resolve })));
  }
}

function section(title, id, ...children) {
  return h("section", { class: "card", id }, h("h2", {}, title), ...children);
}

/** konbu's diagnosis of the run (divergence, overfitting, too short...), with what to try next. */
function findings(diagnosis) {
  if (!diagnosis || !diagnosis.findings || !diagnosis.findings.length) return null;
  return section("What the diagnosis found", "diagnosis",
    h("ul", { class: "findings" }, diagnosis.findings.map((finding) => h("li", { class: `severity-${finding.severity}` },
      h("strong", {}, finding.title), h("p", {}, finding.evidence),
      finding.next && finding.next.length ? h("p", {}, "Try: ", finding.next.map((command) => h("code", {}, command))) : null))));
}

// ----------------------------------------------------------------------------- confusion matrix

function confusionSection(name, evaluation) {
  const classes = evaluation.per_class ? evaluation.per_class.map((c) => c.label) : evaluation.confusion.map((_, i) => String(i));
  const cellBox = h("div", { id: "cell-images", class: "cell-images" },
    h("p", { class: "hint" }, "Click a cell to see its test images."));
  const open = guard(async (truth, predicted, cell) => {
    for (const other of cell.closest("table").querySelectorAll("td.selected")) other.classList.remove("selected");
    cell.classList.add("selected");
    cellBox.replaceChildren(h("p", { class: "hint" }, "loading…"));
    const answer = await api(`${runPath(name)}/confusion/${truth}/${predicted}?limit=48`, { errorIn: cellBox });
    const title = truth === predicted ? ["“", answer.true, "” read correctly"]
                                      : ["true “", answer.true, "” predicted as “", answer.predicted, "”"];
    cellBox.replaceChildren(
      h("h3", {}, title.map((part, i) => (i % 2 ? h("span", { class: "glyph" }, part) : part)),
        h("span", { class: "note" }, ` · ${answer.count} image${answer.count === 1 ? "" : "s"}`,
          answer.images.length < answer.count ? `, the ${answer.images.length} most confident shown` : "")),
      imageGrid(answer.images, (image) => `p=${percent(image.probability)}`));
  }, cellBox);
  return section("Confusion matrix", "confusion",
    h("p", { class: "note" }, `Rows: the true class; columns: what the model predicted, on ${evaluation.n} test images. `,
      "The diagonal is right; anything else is a confusion."),
    h("div", { class: "confusion-layout" },
      h("div", { class: "matrix-scroll" }, confusionTable(evaluation.confusion, classes, open)),
      cellBox));
}

function confusionTable(confusion, classes, open) {
  const small = classes.length > 20;   // a 71-class matrix: shading only, counts in the tooltip
  const header = h("tr", {}, h("th", { class: "corner" }, "true ╲ predicted"),
                   classes.map((label) => h("th", { class: "glyph" }, label)));
  const rows = confusion.map((row, truth) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    return h("tr", {}, h("th", { class: "glyph" }, classes[truth]), row.map((count, predicted) => {
      const share = count / total;
      const right = truth === predicted;
      const cell = h("td", {
        class: `cell ${right ? "right" : "wrong"} ${count ? "filled" : "empty"}`,
        title: `true ${classes[truth]}, predicted ${classes[predicted]}: ${count} (${percent(share)} of the row)`,
        dataset: { true: truth, predicted, count },
        // shaded by the share of its row, so a rare class's confusions show as clearly as a common one's
        style: { background: count ? (right ? `rgba(31, 95, 168, ${0.1 + 0.9 * share})`
                                            : `rgba(214, 51, 51, ${0.15 + 0.85 * Math.min(1, share * 3)})`) : "",
                 color: share > 0.5 ? "#fff" : "" },
        onclick: count ? (event) => open(truth, predicted, event.currentTarget) : null,
      }, small || !count ? "" : String(count));
      return cell;
    }));
  });
  return h("table", { class: `confusion ${small ? "small" : ""}` }, h("thead", {}, header), h("tbody", {}, rows));
}

function imageGrid(images, caption) {
  return h("div", { class: "image-grid" }, images.map((image) =>
    h("figure", { title: `test image ${image.index}: true ${image.true}, predicted ${image.predicted} ` +
                         `with ${percent(image.probability)}` },
      pixelImage(image.image, { size: 56, alt: `${image.true} as ${image.predicted}` }),
      h("figcaption", {}, caption(image)))));
}

// ----------------------------------------------------------------------------- mistakes and filters

function mistakesSection(name) {
  const box = h("div", { id: "mistakes-images" }, h("p", { class: "hint" }, "loading…"));
  guard(async () => {
    const answer = await api(`${runPath(name)}/mistakes?limit=48`, { errorIn: box });
    box.replaceChildren(
      h("p", { class: "note" }, `${answer.count} of ${answer.n} test images wrong (${percent(answer.count / answer.n)}); `,
        "the worst first: those where the model gave the true class the lowest probability."),
      answer.images.length ? imageGrid(answer.images, (image) => [
        h("span", { class: "glyph true" }, image.true), " → ", h("span", { class: "glyph wrong" }, image.predicted),
        h("br"), percent(image.probability, 0)]) : h("p", {}, "No mistakes on the test set."));
  }, box)();
  return section("Mistakes", "mistakes", box);
}

function filtersSection(name, figures) {
  const titles = { "filters-initial.png": "before training (random)", "filters.png": "after training" };
  return section("First-layer filters", "filters",
    h("p", { class: "note" }, "What each first-layer filter looks for, before and after training."),
    h("div", { class: "figures" }, figures.map((figure) => h("figure", {},
      h("img", { src: `${runPath(name)}/figures/${encodeURIComponent(figure)}`, alt: titles[figure], class: "figure" }),
      h("figcaption", {}, titles[figure])))));
}

// ----------------------------------------------------------------------------- summary and config

function summarySection(summary) {
  const shape = (s) => (Array.isArray(s) ? `(${s.map((d) => (d === null ? "None" : d)).join(", ")})` : String(s ?? ""));
  return section("Model summary", "summary",
    h("p", { class: "note" }, "Each layer's output shape, as Keras prints it: (batch, height, width, channels)."),
    h("table", { class: "data" },
      h("thead", {}, h("tr", {}, ["layer", "type", "output shape", "params"].map((t) => h("th", {}, t)))),
      h("tbody", {}, summary.rows.map((row) => h("tr", {},
        h("td", {}, row.name), h("td", {}, row.type), h("td", { class: "mono" }, shape(row.output_shape)),
        h("td", { class: "num" }, number(row.params))))),
      h("tfoot", {}, h("tr", {}, h("td", { colspan: 3 }, "total parameters",
        summary.non_trainable_params ? ` (${number(summary.non_trainable_params)} frozen)` : ""),
        h("td", { class: "num" }, number(summary.total_params))))));
}

function configSection(config) {
  const value = (v) => (v === null || v === undefined ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v));
  return section("Config", "config",
    h("table", { class: "data config" }, h("tbody", {}, Object.entries(config).map(([key, v]) =>
      h("tr", {}, h("th", {}, key), h("td", { class: "mono" }, value(v)))))));
}

// ----------------------------------------------------------------------------- compare

export function comparePage(root, { query }) {
  const names = (query.get("runs") || "").split(",").filter(Boolean);
  const stops = [];
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Compare runs"),
    h("p", { class: "lead" }, names.map((name, i) => [i ? ", " : "", h("a", { href: `#/runs/${encodeURIComponent(name)}` }, name)]),
      " · ", h("a", { href: "#/runs" }, "choose other runs"))));
  guard(async () => {
    const answer = await api(`/api/compare?runs=${names.map(encodeURIComponent).join(",")}`);
    if (!root.isConnected) return;
    const accuracyBox = h("div", { class: "chart" });
    const lossBox = h("div", { class: "chart" });
    root.append(
      section("Validation per epoch", "compare-curves", h("div", { class: "chart-pair" }, accuracyBox, lossBox)),
      section("Side by side", "compare-table", compareTable(answer.columns, answer.table)));
    stops.push(epochChart(accuracyBox, answer.histories, { key: "val_accuracy", title: "Validation accuracy", accuracy: true }));
    stops.push(epochChart(lossBox, answer.histories, { key: "val_loss", title: "Validation loss" }));
  })();
  return () => stops.forEach((stop) => stop());
}

function compareTable(columns, table) {
  const numeric = (key) => !["name", "model", "dataset"].includes(key);
  const format = (key, value) => {
    if (value === null || value === undefined) return "–";
    if (key.endsWith("accuracy")) return percent(value, 2);
    if (key === "seconds") return seconds(value);
    return number(value);
  };
  return h("table", { class: "data" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: numeric(c.key) ? "num" : "" }, c.title)))),
    h("tbody", {}, table.map((row) => h("tr", {}, columns.map((c) => h("td", { class: numeric(c.key) ? "num" : "" },
      c.key === "name" ? h("a", { href: `#/runs/${encodeURIComponent(row.name)}` }, row.name) : format(c.key, row[c.key])))))));
}

