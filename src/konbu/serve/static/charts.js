// Charts drawn with uPlot (vendored in static/vendor/, the global `uPlot`).
//
// Curves: a run's loss and accuracy side by side, x = the training step, as the TensorFlow.js MNIST
// demo draws them: training per batch (thin), and per epoch the training mean and the validation
// figure (points). It grows as records arrive, so the run page and the train page share it.
// EpochCurves: one line per run and epoch, for comparing runs.

import { h, number, percent } from "./util.js";

const COLOURS = { batch: "#9dbbe0", train: "#1f5fa8", val: "#e07000" };
const PALETTE = ["#1f5fa8", "#e07000", "#2a9d4b", "#c0392b", "#8e44ad", "#7f6000", "#d6339b", "#17a2b8"];
const HEIGHT = 250;
// whole steps and epochs only: an axis at 1, 1.25, 1.5 ... epochs means nothing
const WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000];

const formatLoss = (u, value) => (value === null || value === undefined ? "–" : number(value, 4));
const formatAccuracy = (u, value) => (value === null || value === undefined ? "–" : percent(value, 1));

// accuracy always on 0..100%, so runs and moments compare at a glance; loss from 0 to its top
const accuracyRange = () => [0, 1];
const lossRange = (u, low, high) => [0, high > 0 && Number.isFinite(high) ? high * 1.05 : 1];

function chartOptions({ title, xLabel, yLabel, width, series, accuracy }) {
  return {
    title, width, height: HEIGHT,
    scales: { x: { time: false }, y: { range: accuracy ? accuracyRange : lossRange } },
    axes: [
      { label: xLabel, incrs: WHOLE },
      { label: yLabel, size: 60,
        values: (u, ticks) => ticks.map((v) => (accuracy ? `${Math.round(v * 100)}%` : number(v, 3))) },
    ],
    series: [{ label: xLabel }, ...series],
    cursor: { drag: { x: true, y: false } },   // drag to zoom into a stretch of steps, double-click to undo
  };
}

/** The width a chart gets: its box's width, or a reasonable one while the box is not laid out. */
function widthOf(box) {
  return Math.max(240, Math.floor(box.clientWidth || 560));
}

/** Keeps charts as wide as their boxes when the window changes size. Returns the unsubscribe. */
function followWidth(pairs) {
  const resize = () => {
    for (const [chart, box] of pairs) {
      const width = widthOf(box);
      if (Math.abs(chart.width - width) > 2) chart.setSize({ width, height: HEIGHT });
    }
  };
  window.addEventListener("resize", resize);
  return () => window.removeEventListener("resize", resize);
}

/** metrics.jsonl records -> uPlot's column arrays, one row per step that has any value. */
export function curveData(records) {
  const byStep = new Map();
  const row = (step) => {
    if (!byStep.has(step)) byStep.set(step, {});
    return byStep.get(step);
  };
  for (const record of records) {
    if (typeof record.step !== "number") continue;
    if (record.kind === "batch") {
      Object.assign(row(record.step), { loss: record.loss, accuracy: record.accuracy });
    } else if (record.kind === "epoch") {
      Object.assign(row(record.step), {
        trainLoss: record.train_loss, trainAccuracy: record.train_accuracy,
        valLoss: record.val_loss, valAccuracy: record.val_accuracy,
      });
    }
  }
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  // a diverged run logs NaN or Infinity: leave those points out rather than break the scale
  const column = (key) => steps.map((step) => {
    const value = byStep.get(step)[key];
    return typeof value === "number" && Number.isFinite(value) ? value : null;
  });
  return {
    loss: [steps, column("loss"), column("trainLoss"), column("valLoss")],
    accuracy: [steps, column("accuracy"), column("trainAccuracy"), column("valAccuracy")],
  };
}

function runSeries(format) {
  return [
    { label: "train (batch)", stroke: COLOURS.batch, width: 1, spanGaps: true, points: { show: false }, value: format },
    { label: "train (epoch)", stroke: COLOURS.train, width: 2, spanGaps: true, points: { show: true, size: 6 },
      value: format },
    { label: "validation (epoch)", stroke: COLOURS.val, width: 2, spanGaps: true, points: { show: true, size: 7 },
      value: format },
  ];
}

export class Curves {
  /** Two charts in `container`; add() records as they come. container.dataset.records counts them
   *  (the page shows the count too, and the tests read it). */
  constructor(container) {
    this.container = container;
    this.records = [];
    this.lossBox = h("div", { class: "chart loss-chart" });
    this.accuracyBox = h("div", { class: "chart accuracy-chart" });
    container.append(h("div", { class: "chart-pair" }, this.lossBox, this.accuracyBox));
    const empty = curveData([]);
    this.loss = new uPlot(chartOptions({ title: "Loss", xLabel: "step", yLabel: "loss", width: widthOf(this.lossBox),
                                         series: runSeries(formatLoss) }), empty.loss, this.lossBox);
    this.accuracy = new uPlot(chartOptions({ title: "Accuracy", xLabel: "step", yLabel: "accuracy", accuracy: true,
                                             width: widthOf(this.accuracyBox), series: runSeries(formatAccuracy) }),
                              empty.accuracy, this.accuracyBox);
    this.unfollow = followWidth([[this.loss, this.lossBox], [this.accuracy, this.accuracyBox]]);
  }

  add(records) {
    this.records.push(...records);
    this.redraw();
  }

  reset() {
    this.records = [];
    this.redraw();
  }

  redraw() {
    const data = curveData(this.records);
    this.loss.setData(data.loss);
    this.accuracy.setData(data.accuracy);
    this.container.dataset.records = String(this.records.length);
  }

  destroy() {
    this.unfollow();
    this.loss.destroy();
    this.accuracy.destroy();
  }
}

/** Per-epoch curves of several runs overlaid: `histories` is {run: [epoch records]} as GET
 *  /api/compare answers; `key` the field to draw (val_accuracy, val_loss, ...). */
export function epochChart(box, histories, { key, title, accuracy }) {
  const runs = Object.keys(histories);
  const epochs = [...new Set(runs.flatMap((run) => histories[run].map((r) => r.epoch)))].sort((a, b) => a - b);
  const columns = runs.map((run) => {
    const byEpoch = new Map(histories[run].map((r) => [r.epoch, r[key]]));
    return epochs.map((epoch) => {
      const value = byEpoch.get(epoch);
      return typeof value === "number" && Number.isFinite(value) ? value : null;
    });
  });
  const format = accuracy ? formatAccuracy : formatLoss;
  const series = runs.map((run, i) => ({ label: run, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true,
                                         points: { show: true, size: 7 }, value: format }));
  const chart = new uPlot(chartOptions({ title, xLabel: "epoch", yLabel: accuracy ? "accuracy" : "loss", accuracy,
                                         width: widthOf(box), series }), [epochs, ...columns], box);
  const unfollow = followWidth([[chart, box]]);
  return () => {
    unfollow();
    chart.destroy();
  };
}
