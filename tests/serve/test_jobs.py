"""Training jobs from the web app: real `konbu train` processes, started, listed, stopped with a
clean checkpoint, resumed; and the settings refused before any process starts.

    .venv/bin/python -m pytest tests/serve/test_jobs.py -q

Jobs train an MLP on the embedded `digits` (1,797 8x8 images): a process starts, imports torch and
finishes an epoch in a few seconds.
"""

import json
import time

import pytest

SMALL = {"model": "mlp", "dataset": "digits", "threads": 1}


def wait_for(client, job, states, timeout=180.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(f"/api/train/{job}").json()
        if answer["status"] in states:
            return answer
        assert time.monotonic() < deadline, f"job still {answer['status']} after {timeout} s: {answer['log']}"
        time.sleep(0.2)


def wait_for_steps(runs, run, timeout=180.0):
    """Until the job's run has trained a few steps (its progress.json says so)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if json.loads((runs / run / "progress.json").read_text()).get("step", 0) >= 3:
                return
        except (OSError, ValueError):
            pass
        assert time.monotonic() < deadline, "the job did not train within the time allowed"
        time.sleep(0.1)


def test_a_job_trains_a_run_the_runs_page_lists(client, runs):
    started = client.post("/api/train", json={**SMALL, "epochs": 1, "name": "web-run"})
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["run"] == "web-run" and job["status"] == "running"
    finished = wait_for(client, job["job"], {"finished", "failed"})
    assert finished["status"] == "finished", finished["log"]
    assert finished["run_ready"] and finished["error"] is None
    row = {r["name"]: r for r in client.get("/api/runs").json()}["web-run"]
    assert row["status"] == "finished" and row["dataset"] == "digits" and row["live"] is False
    assert (runs / "web-run" / "report.html").is_file()
    assert [j["job"] for j in client.get("/api/train").json()] == [job["job"]]


def test_stop_is_a_clean_checkpoint_and_resume_continues(client, runs):
    job = client.post("/api/train", json={**SMALL, "epochs": 1000, "name": "long"}).json()   # never ends first
    wait_for_steps(runs, "long")
    busy = client.post("/api/train", json={**SMALL, "epochs": 1})
    assert busy.status_code == 409 and "--max-jobs" in busy.json()["error"]       # one job at a time
    assert client.delete(f"/api/train/{job['job']}").json()["status"] in ("stopping", "interrupted")
    stopped = wait_for(client, job["job"], {"interrupted", "failed", "finished"})
    assert stopped["status"] == "interrupted", stopped["log"]
    info = json.loads((runs / "long" / "run.json").read_text())
    assert info["status"] == "interrupted" and (runs / "long" / "last.ckpt").is_dir()
    step = info["interrupted"]["step"]

    resumed = client.post("/api/train", json={"resume": "long"})
    assert resumed.status_code == 202, resumed.text
    wait_for_steps(runs, "long")
    deadline = time.monotonic() + 60
    while json.loads((runs / "long" / "run.json").read_text()).get("resumed") is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    client.delete(f"/api/train/{resumed.json()['job']}")
    again = wait_for(client, resumed.json()["job"], {"interrupted", "failed", "finished"})
    assert again["status"] == "interrupted", again["log"]
    info = json.loads((runs / "long" / "run.json").read_text())
    assert info["resumed"][0]["step"] == step and info["interrupted"]["step"] >= step


def test_a_job_that_fails_says_why(client):
    job = client.post("/api/train", json={**SMALL, "model": "no-such-model", "epochs": 1}).json()
    failed = wait_for(client, job["job"], {"failed", "finished"})
    assert failed["status"] == "failed" and "no-such-model" in failed["error"]


@pytest.mark.parametrize("body, message", [
    ({"epochs": 0}, "--epochs"), ({"epochs": "many"}, "epochs"), ({"learning_rate": 0.1}, "learning_rate"),
    ({"out": "/tmp/elsewhere"}, "'out'"), ({"name": "../escape"}, "run name"), ({"name": "digits"}, "exists"),
    ({"resume": "digits"}, "finished"), ({"tensorboard": True}, "tensorboard")])
def test_bad_settings_are_refused_before_a_process_starts(client, body, message):
    answer = client.post("/api/train", json=body)
    assert answer.status_code == 400 and message in answer.json()["error"], answer.text
    assert client.get("/api/train").json() == []


def test_bad_bodies_and_unknown_jobs(client):
    assert client.post("/api/train", content=b"not json", headers={"content-type": "application/json"}).status_code == 400
    assert client.post("/api/train", json=[1, 2]).status_code == 400
    assert client.post("/api/train", json={"resume": "nope"}).status_code == 404
    assert client.get("/api/train/nope").status_code == 404
    assert client.delete("/api/train/nope").status_code == 404
