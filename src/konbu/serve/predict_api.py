"""Asking a run about one image: what it predicts, what each layer sees, where the evidence is.

    POST /api/runs/{run}/predict?top=5&input=1     -> `konbu predict --json`'s answer for the image
    POST /api/runs/{run}/activations               -> every layer's feature maps (`konbu show activations`)
    POST /api/runs/{run}/gradcam?target=3          -> the Grad-CAM heat map over the input
    GET  /api/runs/{run}/examples/{class}?count=8  -> training images of one class

The image comes as a multipart upload (field "file"), or as JSON: {"image": base64 or a data URL}
or {"pixels": [[0..255, ...], ...]} (H x W grey, or H x W x C). It is prepared exactly as `konbu
predict` prepares a file (konbu.preprocess: MNIST-style centring for digit runs), and refused with
a 400 naming the reason when it can't be read.
"""

import base64
import binascii
import json

import numpy as np
import torch
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from ..errors import ImageError, KonbuError
from ..images import read_image_bytes
from ..inspect.features import EXPLAIN, feature_maps, model_batch, named_modules
from ..inspect.gradcam import cam_module, gradcam
from ..predict import answer_images
from .finite import FiniteJSONResponse
from .pictures import data_url, scaled
from .safety import MAX_UPLOAD_PIXELS, run_dir

router = APIRouter()
MAX_MAPS = 16            # feature maps sent per layer, as `konbu show activations` draws them
MAX_UNITS = 1024         # a vector layer's values are sent when it has at most this many
HEAT_SIZE = 224          # the Grad-CAM overlay's side in pixels: the 28x28 input enlarged 8x


async def read_upload(request: Request):
    """(the image as konbu.images reads it, its name) from a multipart upload or a JSON body."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ImageError('the form has no file: send the image in a field named "file"')
        name = upload.filename or "upload"
        return read_image_bytes(await upload.read(), name, MAX_UPLOAD_PIXELS), name
    if kind.startswith("application/json"):
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ImageError(f"the body is not valid JSON ({error})") from None
        if isinstance(body, dict) and isinstance(body.get("image"), str):
            return _from_base64(body["image"], str(body.get("name") or "image")), str(body.get("name") or "image")
        if isinstance(body, dict) and "pixels" in body:
            return _from_pixels(body["pixels"]), str(body.get("name") or "pixels")
        raise ImageError('expected JSON {"image": "<base64 PNG/JPEG or a data: URL>"} or {"pixels": [[...], ...]}')
    raise ImageError(f"send the image as multipart/form-data (field \"file\") or application/json, "
                     f"not {kind or 'a body without a Content-Type'}")


def _from_base64(text: str, name: str):
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError(f"{name}: \"image\" is not valid base64") from None
    return read_image_bytes(data, name, MAX_UPLOAD_PIXELS)


def _from_pixels(pixels):
    try:
        array = np.asarray(pixels, dtype=np.float64)
    except (TypeError, ValueError):
        raise ImageError('"pixels" must be a rectangular array of numbers: H x W (grey) or H x W x C') from None
    if array.ndim not in (2, 3) or array.size == 0:
        raise ImageError(f'"pixels" must be H x W or H x W x C, found shape {list(array.shape)}')
    if array.shape[0] * array.shape[1] > MAX_UPLOAD_PIXELS:
        raise ImageError(f'"pixels" holds {array.shape[0] * array.shape[1]:,} pixels, more than the '
                         f"{MAX_UPLOAD_PIXELS:,} this server decodes")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
        raise ImageError('"pixels" values must be numbers from 0 to 255')
    return np.round(array).astype(np.uint8)


def _loaded(request: Request, run: str):
    return request.app.state.cache.get(run_dir(request.app.state.runs, run))


@router.post("/api/runs/{run}/predict", tags=["predict"])
async def predict(run: str, request: Request, top: int = Query(5, ge=1, le=1000),
                  reject_below: float | None = Query(None, ge=0, le=1),
                  input: bool = Query(False, description="also return the image the model saw, as a PNG data URL")):
    """The image's top-`top` classes with calibrated probabilities: the object `konbu predict
    --json` prints for a file ("image", "label", "index", "probability", "predictions"; for a
    digit run shown no digit, label null and a "reason")."""
    loaded = _loaded(request, run)
    image, name = await read_upload(request)

    def answer():
        results, inputs = answer_images(loaded.run, [image], [name], top, reject_below)
        result = results[0]
        if input and inputs[0] is not None:
            result["input"] = data_url(inputs[0])
        return FiniteJSONResponse(result)   # built here: FastAPI's encoder would walk it once more

    # Answered on the event loop itself when the model is free: one image takes ~1.7 ms, and handing
    # it to a worker thread and back cost ~1.4 ms more on 2 cores (the GIL's hand-over), 214 -> 327
    # requests/s in benchmarks/serve_load.py. When the model is busy (a Grad-CAM or feature-map
    # request holds it for tens of ms) the answer waits in a worker thread instead, never the loop.
    if loaded.model_lock.acquire(blocking=False):
        try:
            return answer()
        finally:
            loaded.model_lock.release()

    def answer_when_free():
        with loaded.model_lock:
            return answer()
    return await run_in_threadpool(answer_when_free)


@router.post("/api/runs/{run}/activations", tags=["predict"])
async def activations(run: str, request: Request):
    """Every layer's output for the image, in model order: the same step-through as `konbu show
    activations`. A layer with feature maps sends up to 16 of them as PNGs (red above 0, blue below,
    one scale per layer); a vector layer sends its values. "probabilities": the calibrated answer."""
    loaded = _loaded(request, run)
    image, _ = await read_upload(request)

    def answer():
        with loaded.model_lock:
            prepared, _ = model_batch(image, loaded.run)
            outputs = feature_maps(loaded.run, prepared)
            kinds = {name: kind for name, _, kind in named_modules(loaded.run.model)}
            with torch.no_grad():
                probabilities = loaded.run.probabilities(prepared[None])[0]
        layers = [_layer(name, kinds.get(name, ""), output) for name, output in outputs.items()]
        classes = loaded.run.classes
        return {"input": data_url(prepared), "layers": layers,
                "probabilities": [{"label": str(label), "probability": round(float(p), 6)}
                                  for label, p in zip(classes, probabilities.tolist())]}
    return await run_in_threadpool(answer)


def _layer(name: str, kind: str, output: torch.Tensor) -> dict:
    row = {"name": name, "type": kind, "shape": list(output.shape), "explain": EXPLAIN.get(kind, "")}
    if output.ndim == 3:                                          # (C, H, W) feature maps
        limit = float(output.abs().max()) or 1.0
        row["maps"] = [data_url(_diverging(scaled(m, limit))) for m in output[:MAX_MAPS]]
        row["range"] = [round(float(output.min()), 6), round(float(output.max()), 6)]
    elif output.numel() <= MAX_UNITS:
        row["values"] = [round(v, 6) for v in output.flatten().tolist()]
    return row


def _diverging(levels: torch.Tensor) -> np.ndarray:
    """uint8 [H, W] (127.5 = 0) -> RGB through a blue-white-red scale, as the figures draw maps."""
    t = levels.numpy().astype(np.float32) / 255.0
    below, above = np.clip(1 - 2 * t, 0, 1), np.clip(2 * t - 1, 0, 1)
    red = 255 * (1 - below * 0.75)
    green = 255 * (1 - np.maximum(below, above) * 0.8)
    blue = 255 * (1 - above * 0.75)
    return np.stack([red, green, blue], axis=-1).round().astype(np.uint8)


@router.post("/api/runs/{run}/gradcam", tags=["predict"])
async def gradcam_view(run: str, request: Request, target: int | None = Query(None, ge=0),
                       layer: str | None = None):
    """Grad-CAM for the image: where the evidence for class `target` (default: the predicted one) is,
    read at conv layer `layer` (default: the last). "overlay": the heat map over the input."""
    loaded = _loaded(request, run)
    image, _ = await read_upload(request)

    def answer():
        with loaded.model_lock:
            prepared, x = model_batch(image, loaded.run)
            probabilities = loaded.run.probabilities(prepared[None])[0]
            chosen = int(probabilities.argmax()) if target is None else target
            if chosen >= len(loaded.run.classes):
                raise KonbuError(f"target must be a class index 0..{len(loaded.run.classes) - 1}, found {chosen}")
            heat = gradcam(loaded.run.model, x, target=chosen, layer=layer)
            name, _ = cam_module(loaded.run.model, layer)
        return {"layer": name, "target": chosen, "label": loaded.run.classes[chosen],
                "probability": round(float(probabilities[chosen]), 6), "overlay": data_url(_overlay(prepared, heat))}
    return await run_in_threadpool(answer)


def _overlay(prepared: torch.Tensor, heat: torch.Tensor) -> np.ndarray:
    """The input in grey with the heat map (0 blue .. 1 red) laid over it, HEAT_SIZE pixels a side."""
    from PIL import Image

    grey = prepared.float().mean(0)                                   # (H, W) 0..255
    size = (HEAT_SIZE, HEAT_SIZE * grey.shape[0] // grey.shape[1])
    base = np.asarray(Image.fromarray(grey.numpy().astype(np.uint8)).resize(size, Image.Resampling.NEAREST))
    level = np.asarray(Image.fromarray((heat.numpy() * 255).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR))
    t = level.astype(np.float32)[..., None] / 255.0
    colour = np.concatenate([np.clip(1.5 - np.abs(4 * t - 3), 0, 1), np.clip(1.5 - np.abs(4 * t - 2), 0, 1),
                             np.clip(1.5 - np.abs(4 * t - 1), 0, 1)], axis=-1) * 255     # jet
    blended = 0.55 * base[..., None].astype(np.float32) + 0.45 * colour
    return blended.round().clip(0, 255).astype(np.uint8)


@router.get("/api/runs/{run}/examples/{index}", tags=["predict"])
def examples(run: str, index: int, request: Request, count: int = Query(8, ge=1, le=64)):
    """Training images of class `index`, to set beside an input the model called that class; none
    when the run's dataset is not on this machine."""
    path = run_dir(request.app.state.runs, run)
    cache = request.app.state.cache
    classes = cache.get(path).run.classes
    if not 0 <= index < len(classes):
        raise KonbuError(f"class index must be 0..{len(classes) - 1}, found {index}")
    try:
        train = cache.split(path, "train")
    except KonbuError as error:
        return {"label": classes[index], "images": [], "note": str(error)}
    chosen = train.images[train.labels == index][:count]
    return {"label": classes[index], "images": [data_url(image) for image in chosen]}
