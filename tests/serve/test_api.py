"""The REST API through FastAPI's test client: answers, and every bad request the issue lists.

    .venv/bin/python -m pytest tests/serve/test_api.py -q

Answer keys are konbu's own functions: `konbu predict --json` (predict_files) for a predict, the
run's evaluation.json for the confusion cells, the run's figures on disk for the figure routes.
"""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from konbu.predict import predict_files
from konbu.runs import Run


def one(size=280, width=22) -> bytes:
    """A "1" drawn the way a mouse draws it: a thick white stroke on black, PNG bytes."""
    image = Image.new("L", (size, size), 0)
    ImageDraw.Draw(image).line([(size * 0.52, size * 0.15), (size * 0.48, size * 0.85)], fill=255, width=width)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def upload(data: bytes, name="one.png"):
    return {"files": {"file": (name, data, "image/png")}}


def decoded(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2])))


# ----------------------------------------------------------------------------- reading runs

def test_runs_lists_both_runs_with_their_accuracy(client):
    rows = {row["name"]: row for row in client.get("/api/runs").json()}
    assert set(rows) == {"digits", "kana"}
    assert rows["digits"]["status"] == "finished" and rows["digits"]["live"] is False
    assert rows["digits"]["model"] == "tfjs-mnist" and rows["digits"]["dataset"] == "mnist-sample"
    assert 0.5 < rows["digits"]["test_accuracy"] <= 1


def test_a_run_has_its_files_figures_and_report(client, runs):
    answer = client.get("/api/runs/digits").json()
    assert answer["info"]["name"] == "digits" and answer["preprocess"]["image_shape"] == [1, 28, 28]
    assert answer["figures"] == sorted(p.name for p in (runs / "digits" / "figures").glob("*.png"))
    assert {"curves.png", "confusion.png", "filters.png", "filters-initial.png"} <= set(answer["figures"])
    assert answer["report"] is True and len(answer["evaluation"]["confusion"]) == 10
    figure = client.get("/api/runs/digits/figures/curves.png")
    assert figure.status_code == 200 and figure.content == (runs / "digits" / "figures" / "curves.png").read_bytes()
    report = client.get("/runs/digits/report.html")
    assert report.status_code == 200 and "<html" in report.text.lower()
    assert client.get("/runs/digits/figures/confusion.png").status_code == 200   # the report's relative links


def test_metrics_as_json_and_as_a_finished_stream(client, runs):
    records = client.get("/api/runs/digits/metrics").json()
    lines = (runs / "digits" / "metrics.jsonl").read_text().splitlines()
    assert records == [json.loads(line) for line in lines]
    stream = client.get("/api/runs/digits/metrics?follow=1")
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = [block for block in stream.text.split("\n\n") if block]
    kinds = [block.split("\n")[0].removeprefix("event: ") for block in events]
    assert kinds[0] == "metrics" and kinds[-1] == "end"
    sent = json.loads(events[0].split("\n")[1].removeprefix("data: "))
    assert sent == records


def test_confusion_cells_match_the_evaluation(client):
    confusion = client.get("/api/runs/digits").json()["evaluation"]["confusion"]
    for true, predicted in [(1, 1), (4, 9), (7, 2)]:
        cell = client.get(f"/api/runs/digits/confusion/{true}/{predicted}?limit=5").json()
        assert cell["count"] == confusion[true][predicted]
        assert len(cell["images"]) == min(5, cell["count"])
        for image in cell["images"]:
            assert (image["true_index"], image["predicted_index"]) == (true, predicted)
            assert decoded(image["image"]).size == (28, 28)
        probabilities = [image["probability"] for image in cell["images"]]
        assert probabilities == sorted(probabilities, reverse=True)
    assert client.get("/api/runs/digits/confusion/10/0").status_code == 404


def test_mistakes_are_the_wrong_answers_by_loss(client):
    answer = client.get("/api/runs/digits/mistakes?limit=200").json()
    evaluation = client.get("/api/runs/digits").json()["evaluation"]
    assert answer["count"] == round(evaluation["n"] * (1 - evaluation["accuracy"]))
    losses = [image["loss"] for image in answer["images"]]
    assert losses == sorted(losses, reverse=True)
    assert all(image["true"] != image["predicted"] for image in answer["images"])


def test_compare_gives_the_table_and_curves_of_each_run(client):
    answer = client.get("/api/compare?runs=digits,kana").json()
    assert [row["name"] for row in answer["table"]] == ["digits", "kana"]
    assert set(answer["histories"]) == {"digits", "kana"} and len(answer["histories"]["digits"]) == 3
    assert client.get("/api/compare?runs=digits").status_code == 400
    assert client.get("/api/compare?runs=digits,nope").status_code == 404


def test_what_can_be_trained(client):
    models = {row["name"]: row for row in client.get("/api/models").json()}
    assert models["chollet-mnist"]["params"] == 93322 and "tfjs-mnist" in models
    datasets = {row["name"]: row for row in client.get("/api/datasets").json()}
    assert datasets["mnist-sample"]["available"] is True and datasets["mnist-sample"]["classes"] == 10
    recipes = {row["name"] for row in client.get("/api/recipes").json()}
    assert "chollet" in recipes


# ----------------------------------------------------------------------------- one image

def test_predict_gives_konbu_predicts_answer(client, runs, tmp_path):
    path = tmp_path / "one.png"
    path.write_bytes(one())
    expected, = predict_files(Run.load(runs / "digits", device="cpu"), [path], top=5)
    answer = client.post("/api/runs/digits/predict", **upload(one())).json()
    assert answer["label"] == "1"
    assert {**answer, "image": None} == {**expected, "image": None}   # the same model on the same bytes: exactly


def test_predict_from_json_base64_a_data_url_and_pixels(client):
    encoded = base64.b64encode(one()).decode()
    for body in ({"image": encoded}, {"image": "data:image/png;base64," + encoded},
                 {"pixels": np.asarray(Image.open(io.BytesIO(one()))).tolist()}):
        answer = client.post("/api/runs/digits/predict?top=3", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["label"] == "1" and len(answer.json()["predictions"]) == 3


def test_predict_can_show_the_input_the_model_saw(client):
    answer = client.post("/api/runs/digits/predict?input=1", **upload(one())).json()
    seen = np.asarray(decoded(answer["input"]))
    assert seen.shape == (28, 28)
    assert seen[:4].max() == 0 and seen[10:18, 12:16].max() > 200   # centred MNIST-style: ink in the middle


def test_blank_canvas_is_no_digit_not_a_guess(client):
    answer = client.post("/api/runs/digits/predict", json={"pixels": [[0] * 280] * 280}).json()
    assert answer["label"] is None and answer["predictions"] == [] and "no digit" in answer["reason"]


def test_reject_below_answers_unknown(client):
    answer = client.post("/api/runs/digits/predict?reject_below=1", **upload(one())).json()
    assert answer["label"] is None and answer["predictions"][0]["label"] == "1"


def test_kana_run_answers_with_glyphs(client):
    from konbu.data import dataset_info

    kana = dataset_info("tiny-kana").classes          # registered by conftest: hiragana class names
    answer = client.post("/api/runs/kana/predict", **upload(one())).json()
    assert answer["label"] in kana and all(p["label"] in kana for p in answer["predictions"])


def test_activations_step_through_every_layer(client):
    answer = client.post("/api/runs/digits/activations", **upload(one())).json()
    summary = client.get("/api/runs/digits").json()["info"]["summary"]["rows"]
    names = [layer["name"] for layer in answer["layers"]]
    assert [row["name"] for row in summary] == [name for name in names if not name.endswith("_relu")]
    first = answer["layers"][0]
    assert first["type"] == "Conv2D" and first["shape"] == [16, 26, 26] and len(first["maps"]) == 16
    assert decoded(first["maps"][0]).size == (26, 26) and first["explain"]
    assert len(answer["layers"][-1]["values"]) == 10
    assert sum(p["probability"] for p in answer["probabilities"]) == pytest.approx(1, abs=1e-4)


def test_gradcam_overlays_the_evidence(client):
    answer = client.post("/api/runs/digits/gradcam", **upload(one())).json()
    assert answer["layer"] == "conv2d_2" and answer["label"] == "1"
    assert decoded(answer["overlay"]).size == (224, 224)
    other = client.post("/api/runs/digits/gradcam?target=7", **upload(one())).json()
    assert other["target"] == 7 and other["label"] == "7"
    assert client.post("/api/runs/digits/gradcam?target=10", **upload(one())).status_code == 400


def test_examples_of_a_class(client):
    answer = client.get("/api/runs/digits/examples/3?count=5").json()
    assert answer["label"] == "3" and len(answer["images"]) == 5


# ----------------------------------------------------------------------------- bad requests

def test_upload_over_10_mb_is_413(client):
    big = b"\x89PNG" + b"0" * (10 * 1024 * 1024)
    answer = client.post("/api/runs/digits/predict", **upload(big))
    assert answer.status_code == 413 and "10 MB" in answer.json()["error"]


def test_streamed_upload_over_10_mb_is_413_without_content_length(client):
    def chunks():   # a generator body goes out chunked: the server can only count as it reads
        for _ in range(11):
            yield b"0" * (1024 * 1024)
    answer = client.post("/api/runs/digits/predict", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413


def test_image_over_the_pixel_limit_is_400_naming_it(client):
    buffer = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buffer, "PNG")      # 64 megapixels in a few kB: a decompression bomb
    assert len(buffer.getvalue()) < 1024 * 1024
    answer = client.post("/api/runs/digits/predict", **upload(buffer.getvalue(), "bomb.png"))
    assert answer.status_code == 400
    assert "40,000,000 pixels" in answer.json()["error"] and "bomb.png" in answer.json()["error"]


@pytest.mark.parametrize("data, reason", [(b"", "empty"), (b"hello, not an image", "not a readable image"),
                                          (one()[:200], "not a readable image")])
def test_undecodable_upload_is_400_with_the_reason(client, data, reason):
    answer = client.post("/api/runs/digits/predict", **upload(data))
    assert answer.status_code == 400 and reason in answer.json()["error"]


@pytest.mark.parametrize("body", [{"image": "%%% not base64"}, {"pixels": [[1, 2], [3]]}, {"pixels": [[300]]},
                                  {"pixels": "abc"}, {"something": 1}, [1, 2]])
def test_bad_json_images_are_400(client, body):
    answer = client.post("/api/runs/digits/predict", json=body)
    assert answer.status_code == 400 and answer.json()["error"]


def test_wrong_content_type_and_missing_file_are_400(client):
    assert client.post("/api/runs/digits/predict", content=one(), headers={"content-type": "image/png"}).status_code == 400
    answer = client.post("/api/runs/digits/predict", data={"other": "x"}, files={"notfile": ("a.png", one())})
    assert answer.status_code == 400 and '"file"' in answer.json()["error"]


def test_bad_query_values_are_400(client):
    assert client.post("/api/runs/digits/predict?top=0", **upload(one())).status_code == 400
    assert client.post("/api/runs/digits/predict?reject_below=2", **upload(one())).status_code == 400


@pytest.mark.parametrize("path", ["/api/runs/nope", "/api/runs/nope/metrics", "/api/runs/..", "/api/runs/.git",
                                  "/api/runs/..%2F..%2Fetc%2Fpasswd", "/api/runs/%2E%2E", "/api/runs/%2Fetc",
                                  "/api/runs/digits/figures/..%2F..%2Frun.json", "/api/runs/digits/figures/run.json",
                                  "/api/runs/digits/figures/%2Fetc%2Fpasswd", "/runs/digits/run.json",
                                  "/runs/..%2Fdigits/report.html", "/runs/digits/figures/..%2Fweights.safetensors",
                                  "/api/runs/digits/figures/missing.png"])
def test_unknown_runs_and_traversal_are_404(client, path):
    answer = client.get(path)
    assert answer.status_code == 404, (path, answer.text)
    assert "root:" not in answer.text and "safetensors" not in answer.headers.get("content-type", "")


def test_symlinks_out_of_the_runs_folder_are_404(client, runs, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "run.json").write_text('{"name": "secret", "status": "finished"}')
    (outside / "secret.png").write_bytes(b"\x89PNG secret")
    (runs / "escape").symlink_to(outside, target_is_directory=True)
    (runs / "digits" / "figures" / "leak.png").symlink_to(outside / "secret.png")
    assert client.get("/api/runs/escape").status_code == 404
    assert "escape" not in {row["name"] for row in client.get("/api/runs").json()}
    assert client.get("/api/runs/digits/figures/leak.png").status_code == 404


def test_a_run_before_its_first_epoch_is_409_not_a_crash(client, runs):
    (runs / "digits" / "weights.safetensors").unlink()
    answer = client.post("/api/runs/digits/predict", **upload(one()))
    assert answer.status_code == 409 and "weights.safetensors" in answer.json()["error"]


def test_a_bug_is_a_500_without_a_traceback(runs, monkeypatch):
    from konbu.serve import predict_api

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")
    monkeypatch.setattr(predict_api, "answer_images", broken)
    client = app_client(runs, raise_server_exceptions=False)   # answer as a real server does, not re-raise
    answer = client.post("/api/runs/digits/predict", **upload(one()))
    assert answer.status_code == 500
    assert "Traceback" not in answer.text and "secret internal detail" not in answer.text
    assert answer.json()["error"].startswith("internal error")


# ----------------------------------------------------------------------------- safe defaults

def app_client(runs, raise_server_exceptions=True, **options):
    from fastapi.testclient import TestClient

    from konbu.serve import create_app

    return TestClient(create_app(runs, **options), base_url="http://127.0.0.1",
                      raise_server_exceptions=raise_server_exceptions)


def test_token_is_required_when_set(runs):
    with app_client(runs, token="s3cret-token") as client:
        assert client.get("/healthz").status_code == 200                 # a liveness probe needs no token
        assert client.get("/api/runs").status_code == 401
        assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/runs", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        page = client.get("/?token=s3cret-token")                       # the address konbu serve prints
        assert page.status_code == 200 and "konbu_token" in page.headers["set-cookie"]
        assert "HttpOnly" in page.headers["set-cookie"]
        assert client.get("/api/runs").status_code == 200                 # the browser's cookie carries it


def test_other_host_names_are_refused_without_a_token(runs):
    with app_client(runs) as client:
        assert client.get("/api/runs", headers={"host": "evil.example"}).status_code == 400
        assert client.get("/api/runs", headers={"host": "localhost:8000"}).status_code == 200


def test_cors_is_off_by_default_and_on_for_named_origins(runs):
    origin = {"Origin": "http://other.example"}
    with app_client(runs) as client:
        assert "access-control-allow-origin" not in client.get("/api/runs", headers=origin).headers
    with app_client(runs, cors_origins=["http://other.example"]) as client:
        assert client.get("/api/runs", headers=origin).headers["access-control-allow-origin"] == "http://other.example"


def test_page_and_assets_come_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text and "https://" not in page.text            # no CDN
    assert client.get("/static/vendor/uPlot.iife.min.js").status_code == 200
    assert client.get("/static/../serve/app.py").status_code == 404
    assert "/api/runs/{run}/predict" in client.get("/openapi.json").json()["paths"]


def test_docs_page_loads_swagger_from_the_package(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "/static/vendor/swagger-ui-bundle.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text                # offline: no CDN
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert client.get(f"/static/vendor/{asset}").status_code == 200
