"""Reading runs over HTTP: the list, one run, its metrics (live while it trains), its figures and
report, test images by confusion cell and by loss, comparisons; and what can be trained.

    GET /api/runs                                   every run under --runs, newest first
    GET /api/runs/{run}                             run.json, preprocess, evaluation, figures, progress
    GET /api/runs/{run}/metrics                     metrics.jsonl as a JSON list
    GET /api/runs/{run}/metrics?follow=1            the same as Server-Sent Events, live while it trains
    GET /api/runs/{run}/figures/{name}              a PNG from figures/
    GET /runs/{run}/report.html                     the run's report (its figures/ links resolve beside it)
    GET /api/runs/{run}/confusion/{true}/{pred}     test images of one confusion-matrix cell
    GET /api/runs/{run}/mistakes                    misclassified test images, highest loss first
    GET /api/compare?runs=a,b                       `konbu compare`'s table and each run's epoch curves
    GET /api/models, /api/datasets, /api/recipes    what the train page offers

Everything is read through konbu.runs and konbu.inspect, as the CLI reads it.
"""

import asyncio
import json
from functools import lru_cache
from types import SimpleNamespace

import torch
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from .. import atomic
from ..errors import ConfigError, KonbuError
from ..inspect.compare import COLUMNS, compare_table
from ..runs import (DIAGNOSIS_FILE, EVALUATION_FILE, FIGURES_DIR, REPORT_FILE, RUN_FILE, MetricsFollower,
                    read_info, read_metrics, read_optional_json, read_progress)
from .finite import finite
from .pictures import data_url
from .safety import NotFound, run_dir, run_file, run_names

router = APIRouter()
FOLLOW_INTERVAL = 0.25        # seconds between looks at a training run's files: 4 chart updates a second
MAX_IMAGES = 200              # images per confusion-cell or mistakes answer


def _runs(request: Request):
    return request.app.state.runs


def listing(path) -> dict:
    """One line of the runs table."""
    info = read_info(path)
    final = info.get("final") or {}
    config = info.get("config") or {}
    return {"name": path.name, "dataset": info.get("dataset"), "model": info.get("model"),
            "recipe": config.get("recipe"), "status": info.get("status"), "live": atomic.writer_active(path),
            "started": info.get("started"), "finished": info.get("finished"),
            "test_accuracy": final.get("test_accuracy"), "val_accuracy": final.get("val_accuracy"),
            "epochs": config.get("epochs"), "seconds": info.get("seconds")}


@router.get("/api/runs", tags=["runs"])
def list_runs(request: Request):
    """Every run under --runs, newest first."""
    runs = _runs(request)
    rows = []
    for name in run_names(runs):
        try:
            rows.append(listing(runs / name))
        except (KonbuError, OSError):   # a damaged run.json: leave the run out of the list, not the list out
            continue
    return sorted(rows, key=lambda row: row.get("started") or "", reverse=True)


@router.get("/api/runs/{run}", tags=["runs"])
def get_run(run: str, request: Request):
    """A run's run.json, preprocess.json, evaluation and diagnosis (when written), figure names,
    live progress, and whether it has a report."""
    path = run_dir(_runs(request), run)
    figures = sorted(p.name for p in (path / FIGURES_DIR).glob("*.png")) if (path / FIGURES_DIR).is_dir() else []
    return {**listing(path), "info": read_info(path),
            "preprocess": read_optional_json(path, "preprocess.json") or None,
            "evaluation": read_optional_json(path, EVALUATION_FILE) or None,
            "diagnosis": read_optional_json(path, DIAGNOSIS_FILE) or None,
            "progress": read_progress(path) or None, "figures": figures,
            "report": (path / REPORT_FILE).is_file()}


def _event(kind: str, data) -> str:
    return f"event: {kind}\ndata: {json.dumps(finite(data), allow_nan=False)}\n\n"


@router.get("/api/runs/{run}/metrics", tags=["runs"])
async def metrics(run: str, request: Request, follow: bool = False):
    """metrics.jsonl's records. With follow=1 (or Accept: text/event-stream): Server-Sent Events,
    `metrics` (a list of new records), `reset` (the file was rewritten shorter by a resume: drop
    what you have, the records follow), `progress` (progress.json: images/s, ETA), and `end`
    ({"status"}) once no process trains the run any more. NaN (a diverged loss) is sent as null."""
    path = run_dir(_runs(request), run)
    if not (follow or "text/event-stream" in request.headers.get("accept", "")):
        return await run_in_threadpool(read_metrics, path)
    return StreamingResponse(_follow(path, request), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _new_records(follower) -> list:
    reset, records = follower.poll()
    return ([_event("reset", {})] if reset else []) + ([_event("metrics", records)] if records else [])


def _trained(request: Request, path) -> bool:
    """Whether a process trains the run now: one holding its folder (konbu train, here or in another
    terminal), or a job of this server that is starting (importing torch, loading data) and will."""
    return request.app.state.jobs.training(path.name) or atomic.writer_active(path)


async def _follow(path, request: Request):
    """The stream ends only when no process trains the run: run.json's status alone says "finished"
    before the report is written, and "interrupted" for a moment after a resume has started."""
    follower = MetricsFollower(path)
    progress = None
    while True:
        training = _trained(request, path)      # before reading: what training wrote until now is read below
        for event in await run_in_threadpool(_new_records, follower):
            yield event
        latest = read_progress(path)
        if latest and latest != progress:
            progress = latest
            yield _event("progress", latest)
        if not training:
            yield _event("end", {"status": read_optional_json(path, RUN_FILE).get("status"), "live": False})
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(FOLLOW_INTERVAL)


@router.get("/api/runs/{run}/figures/{name}", tags=["runs"])
def figure(run: str, name: str, request: Request):
    """A PNG from the run's figures/ folder (names as GET /api/runs/{run} lists them)."""
    return FileResponse(run_file(_runs(request), run, f"{FIGURES_DIR}/{name}"), media_type="image/png")


@router.get("/runs/{run}/report.html", include_in_schema=False)
def report(run: str, request: Request):
    """The run's report.html, served where its relative figures/ links resolve (below)."""
    return FileResponse(run_file(_runs(request), run, REPORT_FILE), media_type="text/html")


@router.get("/runs/{run}/figures/{name}", include_in_schema=False)
def report_figure(run: str, name: str, request: Request):
    return FileResponse(run_file(_runs(request), run, f"{FIGURES_DIR}/{name}"), media_type="image/png")


# ----------------------------------------------------------------------------- test images

def _test_answers(request: Request, run: str):
    """(the test split, its calibrated probabilities [N, K], predicted classes [N], classes)."""
    path = run_dir(_runs(request), run)
    cache = request.app.state.cache
    test, probabilities = cache.test_probabilities(path)
    return test, probabilities, probabilities.argmax(1), cache.get(path).run.classes


def _image_rows(test, probabilities, predicted, classes, indices) -> list:
    return [{"index": int(i), "image": data_url(test.images[i]), "true": classes[int(test.labels[i])],
             "true_index": int(test.labels[i]), "predicted": classes[int(predicted[i])],
             "predicted_index": int(predicted[i]), "probability": round(float(probabilities[i, predicted[i]]), 6),
             "true_probability": round(float(probabilities[i, test.labels[i]]), 6)} for i in indices.tolist()]


def _class_index(value: int, classes, what: str) -> int:
    if not 0 <= value < len(classes):
        raise NotFound(f"no {what} class {value}: the run has classes 0..{len(classes) - 1}")
    return value


@router.get("/api/runs/{run}/confusion/{true}/{predicted}", tags=["runs"])
def confusion_cell(run: str, true: int, predicted: int, request: Request, limit: int = Query(48, ge=1, le=MAX_IMAGES)):
    """The test images of class `true` the model called `predicted` (a confusion-matrix cell), the
    most confident first; "count" is the cell's size, "images" at most `limit` of them."""
    test, probabilities, guesses, classes = _test_answers(request, run)
    true, predicted = _class_index(true, classes, "true"), _class_index(predicted, classes, "predicted")
    cell = torch.nonzero((test.labels == true) & (guesses == predicted)).flatten()
    order = probabilities[cell, predicted].argsort(descending=True)
    return {"true": classes[true], "predicted": classes[predicted], "count": int(cell.numel()),
            "images": _image_rows(test, probabilities, guesses, classes, cell[order][:limit])}


@router.get("/api/runs/{run}/mistakes", tags=["runs"])
def mistakes(run: str, request: Request, limit: int = Query(48, ge=1, le=MAX_IMAGES)):
    """Misclassified test images, highest loss (-log p(true class)) first; "count": how many."""
    test, probabilities, guesses, classes = _test_answers(request, run)
    wrong = torch.nonzero(guesses != test.labels).flatten()
    loss = -probabilities[wrong, test.labels[wrong]].clamp_min(1e-12).log()
    order = loss.argsort(descending=True)
    rows = _image_rows(test, probabilities, guesses, classes, wrong[order][:limit])
    for row, value in zip(rows, loss[order][:limit].tolist()):
        row["loss"] = round(value, 6)
    return {"count": int(wrong.numel()), "n": int(test.labels.numel()), "images": rows}


@router.get("/api/compare", tags=["runs"])
def compare(request: Request, runs: str = Query(..., description="run names, comma-separated")):
    """`konbu compare`'s table for two or more runs, and each run's per-epoch records to overlay."""
    names = [name for name in runs.split(",") if name]
    if len(names) < 2:
        raise ConfigError(f"compare needs two or more runs (runs=a,b), found {len(names)}")
    paths = [run_dir(_runs(request), name) for name in names]
    loaded = [SimpleNamespace(info=read_info(path), path=path) for path in paths]
    return {"columns": [{"key": key, "title": title} for key, title in COLUMNS], "table": compare_table(loaded),
            "histories": {path.name: [r for r in read_metrics(path) if r.get("kind") == "epoch"] for path in paths}}


# ----------------------------------------------------------------------------- what can be trained

@lru_cache(maxsize=1)
def _models() -> list:
    from .. import models

    rows = []
    for name in models.list_models():
        entry = models.get_model_entry(name)
        shape, classes = models.default_input(name)
        params = sum(p.numel() for p in models.build_model(name, shape, classes).parameters())
        rows.append({"name": name, "description": entry.description, "source": entry.source,
                     "input_shape": list(shape), "params": params})
    return rows


@router.get("/api/models", tags=["train"])
def list_models():
    """The model zoo (`konbu models`): name, description, source, default input and parameters."""
    return _models()


@router.get("/api/datasets", tags=["train"])
def list_datasets():
    """Every registered dataset (`konbu datasets`), and whether it is on disk now."""
    from .. import data

    rows = []
    for name in data.list_datasets():
        info = data.dataset_info(name)
        rows.append({"name": name, "classes": len(info.classes), "image_shape": list(info.image_shape),
                     "train": info.split_sizes.get("train"), "test": info.split_sizes.get("test"),
                     "available": data.is_available(name), "source": info.source})
    return rows


@router.get("/api/recipes", tags=["train"])
def list_recipes():
    """The tutorials' recipes (`konbu recipes`): name, description, settings, reported figure."""
    from ..train.recipes import list_recipes as recipes

    return [{"name": r.name, "description": r.description, "source": r.source, "settings": r.settings,
             "reported": r.reported} for r in recipes()]
