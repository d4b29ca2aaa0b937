"""Following a run that trains: the metrics stream (Server-Sent Events) sends what the trainer
writes as it writes it, starts over after a resume rewrote the file, and ends with the run.

    .venv/bin/python -m pytest tests/serve/test_follow.py -q

The "trainer" here is the test itself, writing the files of a copied run the way fit does (lines
appended to metrics.jsonl, progress.json replaced, run.json's status) while holding the run
directory like a training process (konbu.atomic.one_writer), so the stream can be checked step by step.
"""

import contextlib
import json
import threading

from konbu import atomic


def events(response):
    """(kind, data) per Server-Sent Event, as they arrive."""
    kind = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield kind, json.loads(line.removeprefix("data: "))


def set_status(run_dir, status):
    info = json.loads((run_dir / "run.json").read_text())
    info["status"] = status
    atomic.write_json(run_dir / "run.json", info)


def test_a_training_run_streams_live_and_ends(client, runs):
    run_dir = runs / "digits"
    lines = (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    set_status(run_dir, "running")
    (run_dir / "metrics.jsonl").write_text("".join(lines[:10]))
    (run_dir / "progress.json").unlink()                   # not written yet
    trainer = contextlib.ExitStack()
    trainer.enter_context(atomic.one_writer(run_dir))      # "training": the OS says the run is live
    with trainer:
        assert client.get("/api/runs/digits").json()["live"] is True
        with client.stream("GET", "/api/runs/digits/metrics?follow=1") as response:
            stream = events(response)
            kind, records = next(stream)
            assert kind == "metrics" and records == [json.loads(line) for line in lines[:10]]

            with open(run_dir / "metrics.jsonl", "a") as f:   # the trainer appends five steps
                f.write("".join(lines[10:15]))
            kind, records = next(stream)
            assert kind == "metrics" and records == [json.loads(line) for line in lines[10:15]]

            progress = {"epoch": 1, "epochs": 3, "step": 15, "total_steps": 171, "images_per_second": 2500.0,
                        "eta_seconds": 4.0, "state": "training"}
            atomic.write_json(run_dir / "progress.json", progress)
            kind, data = next(stream)
            assert kind == "progress" and data == progress

            atomic.write_text(run_dir / "metrics.jsonl", "".join(lines[:5]))   # a resume went back to step 5
            assert next(stream) == ("reset", {})
            kind, records = next(stream)
            assert kind == "metrics" and records == [json.loads(line) for line in lines[:5]]

            atomic.write_text(run_dir / "metrics.jsonl", "".join(lines))        # the run's last epoch
            set_status(run_dir, "finished")
            assert next(stream)[0] == "metrics"     # "finished", but the process still writes its report
            trainer.close()                          # the training process ends: so does the stream
            rest = list(stream)
            assert rest[-1] == ("end", {"status": "finished", "live": False})
            assert all(kind != "metrics" for kind, _ in rest)


def test_a_running_run_whose_process_died_ends_the_stream(client, runs):
    """kill -9 leaves run.json saying "running"; no process holds the folder, so the stream ends."""
    set_status(runs / "digits", "running")
    done = threading.Event()
    kinds = []

    def read():
        with client.stream("GET", "/api/runs/digits/metrics", headers={"Accept": "text/event-stream"}) as response:
            kinds.extend(kind for kind, _ in events(response))
        done.set()
    threading.Thread(target=read, daemon=True).start()
    assert done.wait(30), "the stream of a dead run did not end"
    assert kinds[0] == "metrics" and kinds[-1] == "end"
    assert client.get("/api/runs/digits").json()["live"] is False
