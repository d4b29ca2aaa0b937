// The Train page (#/train): start a training job, watch it live, stop it, resume it.
//
// POST /api/train starts a `konbu train` process on the server (202 {job, run, status, run_ready});
// the page polls GET /api/train/{job} until the run directory exists, then follows the run's metrics
// stream like the run page does. Stop is DELETE /api/train/{job}: the job finishes its step, writes
// a checkpoint and becomes "interrupted"; Resume is POST /api/train {"resume": run}.

import { Curves } from "./charts.js";
import { followRun, progressText } from "./follow.js";
import { api, ApiError, clearMessages, guard, h, number, runPath, showMessage, statusBadge } from "./util.js";

const POLL_MS = 1000;
const ACTIVE = ["running", "stopping"];
const AUGMENT = [["auto", "auto: “digits” for MNIST-style handwriting, none for other data"],
                 ["digits", "digits: turns up to 10°, shifts and zooms up to 10%"],
                 ["none", "none: the training images as they are"]];

export function trainPage(root) {
  const errors = h("div", { class: "messages", id: "train-errors" });
  const jobBox = h("section", { class: "card job", id: "job" },
    h("h2", {}, "Live training"),
    h("p", { class: "hint" }, "Start a run: its loss and accuracy appear here as it trains (per batch, and per epoch ",
      "on the validation set), with its speed and the time left. Stop it at any time: it keeps a checkpoint ",
      "and can be resumed."));
  const job = new JobView(jobBox);
  const form = new TrainForm((settings) => job.start(settings, errors));
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Train"),
      h("p", { class: "lead" }, "Train a model from the zoo, or a tutorial's recipe, and watch its curves live. ",
        "Leave a field empty for konbu's default (or the recipe's value).")),
    h("div", { class: "train-grid" }, h("div", { class: "card" }, form.element, errors), jobBox));
  guard(async () => {
    await form.load();
    // a job started earlier (from this page before, or in another tab): show where it is
    const jobs = await api("/api/train");
    const latest = jobs.sort((a, b) => b.started - a.started)[0];
    if (latest && !job.job && root.isConnected) job.watch(latest);
  }, errors)();
  return () => job.destroy();
}

// ----------------------------------------------------------------------------- the form

class TrainForm {
  constructor(onSubmit) {
    this.recipes = [];
    this.recipe = h("select", { id: "recipe", name: "recipe", onchange: () => this.showRecipe() });
    this.recipeNote = h("p", { class: "note", id: "recipe-note" });
    this.dataset = h("select", { id: "dataset", name: "dataset" });
    this.model = h("select", { id: "model", name: "model", onchange: () => this.showModel() });
    this.modelNote = h("p", { class: "note", id: "model-note" });
    this.epochs = h("input", { id: "epochs", name: "epochs", type: "number", min: 1, step: 1, inputmode: "numeric" });
    this.lr = h("input", { id: "lr", name: "lr", type: "number", min: 0, step: "any" });
    this.batchSize = h("input", { id: "batch_size", name: "batch_size", type: "number", min: 1, step: 1 });
    this.augment = h("select", { id: "augment", name: "augment" },
      h("option", { value: "" }, "default"), AUGMENT.map(([value, text]) => h("option", { value }, text)));
    this.name = h("input", { id: "run-name", name: "name", type: "text", placeholder: "made from the model, dataset and time",
                             pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]*", title: "letters, digits, '.', '_' and '-'" });
    this.button = h("button", { type: "submit", id: "start", class: "primary" }, "Start training");
    this.element = h("form", { id: "train-form", onsubmit: guard(async (event) => {
      event.preventDefault();
      this.button.disabled = true;
      try {
        await onSubmit(this.settings());
      } finally {
        this.button.disabled = false;
      }
    }) },
    field("Recipe", this.recipe, this.recipeNote),
    field("Dataset", this.dataset),
    field("Model", this.model, this.modelNote),
    h("div", { class: "field-row" },
      field("Epochs", this.epochs), field("Learning rate", this.lr), field("Batch size", this.batchSize)),
    field("Augmentation", this.augment),
    field("Run name (optional)", this.name),
    this.button);
  }

  async load() {
    const [datasets, models, recipes] = await Promise.all([api("/api/datasets"), api("/api/models"), api("/api/recipes")]);
    this.recipes = recipes;
    this.models = models;
    this.recipe.replaceChildren(h("option", { value: "" }, "none: choose the settings below"),
      ...recipes.map((r) => h("option", { value: r.name }, `${r.name} — ${r.description}`)));
    // datasets on this machine first: the others download on first use, which needs the internet
    const here = datasets.filter((d) => d.available);
    const away = datasets.filter((d) => !d.available);
    const option = (d) => h("option", { value: d.name },
      `${d.name} — ${d.classes} classes, ${d.image_shape.join("×")}, ${number(d.train)} training images` +
      (d.available ? " ✓ offline" : " (download needed)"));
    this.dataset.replaceChildren(h("option", { value: "" }, "default"),
      h("optgroup", { label: "on this machine (works offline)" }, here.map(option)),
      h("optgroup", { label: "downloaded on first use (needs the internet)" }, away.map(option)));
    this.model.replaceChildren(h("option", { value: "" }, "default"),
      ...models.map((m) => h("option", { value: m.name }, `${m.name} — ${number(m.params)} parameters`)));
    this.showRecipe();
  }

  /** A recipe's values become the placeholders: what is sent when a field is left empty. */
  showRecipe() {
    const recipe = this.recipes.find((r) => r.name === this.recipe.value);
    const settings = recipe ? recipe.settings : {};
    const fallback = recipe ? "recipe's" : "default";
    const say = (key) => (settings[key] !== undefined ? `${fallback}: ${settings[key]}` : fallback);
    this.dataset.options[0].textContent = say("dataset");
    this.model.options[0].textContent = say("model");
    this.augment.options[0].textContent = say("augment");
    this.epochs.placeholder = settings.steps ? `recipe's: ${number(settings.steps)} steps` : say("epochs");
    this.lr.placeholder = say("lr");
    this.batchSize.placeholder = say("batch_size");
    this.recipeNote.textContent = recipe
      ? `${recipe.source}. ${recipe.reported && recipe.reported.note ? `Reported: ${recipe.reported.note}.` : ""}` : "";
  }

  showModel() {
    const model = (this.models || []).find((m) => m.name === this.model.value);
    this.modelNote.textContent = model ? `${model.description} (${model.source})` : "";
  }

  /** The filled-in fields as TrainConfig settings; empty ones are left out. */
  settings() {
    const settings = {};
    const text = { recipe: this.recipe, dataset: this.dataset, model: this.model, augment: this.augment, name: this.name };
    for (const [key, input] of Object.entries(text)) if (input.value.trim()) settings[key] = input.value.trim();
    const numbers = { epochs: this.epochs, lr: this.lr, batch_size: this.batchSize };
    for (const [key, input] of Object.entries(numbers)) if (input.value !== "") settings[key] = Number(input.value);
    return settings;
  }
}

function field(label, input, ...after) {
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, ...after);
}

// ----------------------------------------------------------------------------- the job

class JobView {
  constructor(box) {
    this.box = box;
    this.job = null;          // the last answer about the job
    this.timer = null;
    this.stopFollowing = null;
    this.curves = null;
  }

  async start(settings, errors) {
    clearMessages(errors);
    this.watch(await api("/api/train", { method: "POST", json: settings, errorIn: errors }));
  }

  /** Shows a job and keeps it current: its status by polling, its curves by the run's stream. */
  watch(job) {
    // a resumed run keeps its curves on screen until its stream replays them
    const kept = this.curves && this.job && this.job.run === job.run ? this.curves.records : [];
    this.unfollow();
    clearTimeout(this.timer);
    this.job = job;
    this.following = false;      // a stream of the run's metrics is open
    this.followed = false;       // one was, at some point: the chart has the run's records
    this.build(job);
    this.curves.add(kept);
    this.count();
    this.update(job);
    if (ACTIVE.includes(job.status)) this.schedule();
    else guard(() => this.ended(job), this.errors)();
  }

  build(job) {
    this.errors = h("div", { class: "messages", id: "job-errors" });
    this.status = h("span", { id: "job-status" });
    this.progress = h("p", { class: "progress", id: "train-progress" }, "Starting a training process…");
    this.counter = h("span", { id: "train-records", class: "counter" }, "0");
    this.stopButton = h("button", { type: "button", id: "stop", onclick: guard(() => this.stop(), this.errors) }, "Stop");
    this.resumeButton = h("button", { type: "button", id: "resume", class: "primary", hidden: true,
                                      onclick: guard(() => this.resume(), this.errors) }, "Resume");
    this.links = h("p", { class: "links" });
    this.log = h("pre", { class: "log" });
    const chartBox = h("div", { id: "train-curves" });
    this.chartArea = h("div", {}, h("p", { class: "note" }, "records received: ", this.counter), chartBox);
    this.box.hidden = false;
    this.box.replaceChildren(
      h("h2", {}, "Run ", h("span", { class: "mono" }, job.run), " ", this.status),
      this.progress,
      this.chartArea,
      h("div", { class: "buttons" }, this.stopButton, this.resumeButton),
      this.errors, this.links,
      h("details", {}, h("summary", {}, "the training process's output"), this.log));
    if (this.curves) this.curves.destroy();
    this.curves = new Curves(chartBox);
  }

  schedule() {
    if (this.destroyed) return;   // the page was left while a request was in flight
    this.timer = setTimeout(guard(() => this.poll(), this.errors), POLL_MS);
  }

  async poll() {
    const watched = this.job;
    const job = await api(`/api/train/${watched.job}`, { errorIn: this.errors });
    if (this.job !== watched) return;   // another job is shown now (a resume): this answer is old news
    this.job = job;
    this.update(job);
    if (ACTIVE.includes(job.status)) {
      if (job.run_ready && !this.following) await this.followWhenTraining(job.run);
      this.schedule();
    } else {
      await this.ended(job);
    }
  }

  /** The job is over: its curves if they were never followed, and whether the run can be resumed. */
  async ended(job) {
    if (!this.followed) this.showFinal(job);
    if (!job.run_ready) {   // it ended before training began: no run, no curves
      this.progress.textContent = "";
      this.chartArea.hidden = true;
      return;
    }
    const run = await api(runPath(job.run), { errorIn: this.errors });
    if (this.job !== job) return;
    // progress.json may still say "training" when the stream ends: the job's status is the last word
    this.progress.textContent = progressText({ ...run.progress, state: job.status, eta_seconds: null });
    if (job.status !== "interrupted") return;
    // a stop that lands after the last step (during the final evaluation) ends the process as
    // interrupted but leaves the run marked "running", and the server refuses to resume it: offer
    // Resume only for a run that says it is interrupted
    if (run.status === "interrupted") {
      this.resumeButton.hidden = false;
    } else {
      showMessage(`The job stopped, but its run is marked “${run.status}”, so it can't be resumed ` +
                  "(it was stopped after its last training step, during the final evaluation).",
                  { where: this.errors, kind: "note" });
    }
  }

  /** Follows the run once it says "running". A resumed job's run.json exists from before and still
   *  says "interrupted" for the seconds its process takes to start: a stream opened then would end
   *  at once, so the page waits for the run itself to be training. */
  async followWhenTraining(run) {
    const info = await api(runPath(run), { errorIn: this.errors });
    if (info.status === "running" && !this.following) this.follow(run);
  }

  update(job) {
    this.status.replaceChildren(statusBadge(job.status));
    this.stopButton.hidden = !ACTIVE.includes(job.status);
    this.stopButton.disabled = job.status === "stopping";
    this.resumeButton.hidden = true;   // until ended() has checked the run
    this.log.textContent = (job.log || []).join("\n");
    if (job.status === "failed") {
      clearMessages(this.errors);
      showMessage(`training failed: ${job.error || "the process ended with an error"}`, { where: this.errors });
    }
    if (job.run_ready) {
      const draw = h("a", { href: `#/draw?run=${encodeURIComponent(job.run)}` }, "draw with it");
      this.links.replaceChildren(h("a", { href: `#/runs/${encodeURIComponent(job.run)}` }, "the run's page"),
                                 ...(job.status === "finished" ? [draw] : []));
    }
  }

  follow(run) {
    if (this.destroyed) return;
    this.following = true;
    this.followed = true;
    this.stopFollowing = followRun(run, {
      onRecords: (records) => {
        this.curves.add(records);
        this.count();
      },
      onReset: () => {
        this.curves.reset();
        this.count();
      },
      onProgress: (progress) => {
        this.progress.textContent = progressText(progress);
      },
      onEnd: () => {
        // the run stopped training; if the job is still active, the next poll follows it again
        this.stopFollowing = null;
        this.following = false;
      },
    });
  }

  /** A job that had ended when the page first saw it: its curves once, from the run's metrics. */
  showFinal(job) {
    if (!job.run_ready) return;
    guard(async () => {
      const records = await api(`${runPath(job.run)}/metrics`, { errorIn: this.errors });
      if (this.job !== job) return;
      this.curves.reset();
      this.curves.add(records);
      this.count();
    }, this.errors)();
  }

  count() {
    this.counter.textContent = String(this.curves.records.length);
  }

  async stop() {
    this.stopButton.disabled = true;
    this.update(await api(`/api/train/${this.job.job}`, { method: "DELETE", errorIn: this.errors }));
  }

  async resume() {
    this.resumeButton.disabled = true;
    clearMessages(this.errors);
    try {
      this.watch(await api("/api/train", { method: "POST", json: { resume: this.job.run }, errorIn: this.errors }));
    } catch (error) {
      this.resumeButton.disabled = false;
      if (!(error instanceof ApiError)) throw error;
    }
  }

  unfollow() {
    if (this.stopFollowing) this.stopFollowing();
    this.stopFollowing = null;
    this.following = false;
  }

  destroy() {
    this.destroyed = true;
    clearTimeout(this.timer);
    this.unfollow();
    if (this.curves) this.curves.destroy();
  }
}
