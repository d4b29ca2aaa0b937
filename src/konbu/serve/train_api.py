"""Training from the web app: start, watch, stop and resume jobs (konbu.serve.jobs).

    POST   /api/train          {"model": "chollet-mnist", "epochs": 3, ...}  -> 202 {"job", "run", ...}
    POST   /api/train          {"resume": "RUN"}                            -> 202, the run continues
    GET    /api/train          every job this server started
    GET    /api/train/{job}    one job: status, run, error, its last output lines
    DELETE /api/train/{job}    stop it the way Ctrl-C does: a clean checkpoint, resumable

A job's curves come from its run like any run's: GET /api/runs/{run}/metrics?follow=1.
"""

from fastapi import APIRouter, Request

from ..errors import ConfigError

router = APIRouter()


def _jobs(request: Request):
    return request.app.state.jobs


@router.post("/api/train", tags=["train"], status_code=202)
async def start(request: Request):
    """Start a job from TrainConfig fields (the flags of `konbu train`, with underscores: "batch_size",
    "lr", "augment", "recipe", ...) and an optional run "name"; or {"resume": RUN}. 409 when the
    server already runs --max-jobs jobs."""
    try:
        body = await request.json()
    except ValueError:
        raise ConfigError('expected a JSON object of training settings, e.g. {"epochs": 1}') from None
    if not isinstance(body, dict):
        raise ConfigError(f"expected a JSON object of training settings, found {type(body).__name__}")
    job = _jobs(request).resume(body["resume"]) if "resume" in body else _jobs(request).start(body)
    return job.describe()


@router.get("/api/train", tags=["train"])
def list_jobs(request: Request):
    return [job.describe() for job in _jobs(request).jobs.values()]


@router.get("/api/train/{job}", tags=["train"])
def get_job(job: str, request: Request):
    return _jobs(request).get(job).describe()


@router.delete("/api/train/{job}", tags=["train"])
def stop_job(job: str, request: Request):
    """Stop the job at the end of its current step, with a checkpoint (`konbu train --resume`)."""
    return _jobs(request).stop(job).describe()
