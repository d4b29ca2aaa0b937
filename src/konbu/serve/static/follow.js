// Following a training run live: Server-Sent Events from GET /api/runs/{run}/metrics?follow=1.
//
// Events: "metrics" (a list of new records), "reset" (the file was rewritten by a resume: start
// over), "progress" (progress.json: epoch, step, images/s, ETA, state) and "end" (the run stopped
// training). The run page and the train page both use it.

import { percent, runPath, seconds, showMessage } from "./util.js";

/** Follows run `name`; returns a function that stops following. */
export function followRun(name, { onRecords, onReset, onProgress, onEnd }) {
  const source = new EventSource(`${runPath(name)}/metrics?follow=1`);
  let ended = false;
  // each connection (a reconnect too) replays the file from its first line: drop what we had
  source.addEventListener("open", () => onReset && onReset());
  source.addEventListener("reset", () => onReset && onReset());
  source.addEventListener("metrics", (event) => onRecords && onRecords(parseEvent(event.data)));
  source.addEventListener("progress", (event) => onProgress && onProgress(parseEvent(event.data)));
  source.addEventListener("end", (event) => {
    // close before the browser's automatic reconnect would replay the whole run again
    ended = true;
    source.close();
    if (onEnd) onEnd(parseEvent(event.data));
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED && !ended) {
      showMessage(`lost the live stream of run ${name}: reload the page to try again`);
    }
  });
  return () => {
    ended = true;
    source.close();
  };
}

/** JSON.parse that survives a diverged run: Python writes a NaN or infinite loss as the bare words
 *  NaN / Infinity, which are not JSON; they become null (a gap in the chart). */
function parseEvent(text) {
  try {
    return JSON.parse(text);
  } catch {
    return JSON.parse(text.replace(/-?\bInfinity\b|\bNaN\b/g, "null"));
  }
}

/** progress.json in words, as the TensorFlow.js demo's status line: where training is, how fast,
 *  how long is left. */
export function progressText(progress) {
  if (!progress) return "Starting…";
  const parts = [];
  const state = { training: "Training…", finished: "Finished", interrupted: "Interrupted", stopped: "Stopped",
                  failed: "Failed" };
  parts.push(state[progress.state] || progress.state || "Training");
  if (progress.epochs) parts.push(`epoch ${progress.epoch} of ${progress.epochs}`);
  if (progress.total_steps) {
    parts.push(`step ${progress.step} of ${progress.total_steps} (${percent(progress.step / progress.total_steps, 0)} complete)`);
  }
  if (progress.images_per_second) parts.push(`${Math.round(progress.images_per_second)} images/s`);
  if (progress.eta_seconds) parts.push(`about ${seconds(progress.eta_seconds)} left`);
  return parts.join(" · ");
}
