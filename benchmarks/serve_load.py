"""Load on `konbu serve`: many clients posting 28x28 PNGs to the predict endpoint at once.

    .venv/bin/python benchmarks/serve_load.py                         # trains a chollet-mnist run first
    .venv/bin/python benchmarks/serve_load.py --run runs/chollet --requests 5000 --clients 32

The server is a real `konbu serve` process on 127.0.0.1 (uvicorn, one worker); the clients are
threads of this process, each with its own keep-alive connection, all on the same machine (so on
2 cores the clients take CPU from the server: the figures are what a laptop sees). Every request
posts one test digit as a multipart PNG, like the page's upload; an answer that is not a 200 with
a label, or a request past --max-seconds, is an error.

The baseline, measured in the same run: the same images answered in-process by `konbu.predict`
one at a time (preprocessing + model, no HTTP), so "outside the model" is the server's share.
Prints requests/s, p50/p99 latency and errors for --clients concurrent clients and for 1 client.
"""

import argparse
import http.client
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from PIL import Image

BOUNDARY = uuid.uuid4().hex


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a chollet-mnist run directory (default: train one, 2 epochs)")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=300, help="stop sending after this long")
    parser.add_argument("--target-p99-ms", type=float, default=10.0)
    return parser.parse_args()


def multipart(png: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"digit.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{BOUNDARY}--\r\n".encode()


def test_digits(count=100) -> list:
    from konbu.data import load_dataset

    images = load_dataset("mnist-sample", "test").images[:count]
    pngs = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image[0].numpy()).save(buffer, "PNG")
        pngs.append(buffer.getvalue())
    return pngs


def trained_run(folder: Path) -> Path:
    import konbu

    out = folder / "runs" / "chollet"
    konbu.fit(model="chollet-mnist", epochs=2, out=str(out), quiet=True)
    return out


def start_server(runs: Path) -> tuple:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "konbu", "serve", "--runs", str(runs), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return server, port
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("konbu serve did not start within 120 s")


def load(port: int, path: str, bodies: list, requests: int, clients: int, max_seconds: float) -> dict:
    """`requests` POSTs from `clients` threads; per request its latency in seconds, or an error."""
    latencies, errors, lock = [], [], threading.Lock()
    counter = iter(range(requests))
    stop_at = time.monotonic() + max_seconds

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        while time.monotonic() < stop_at:
            with lock:
                number = next(counter, None)
            if number is None:
                return
            started = time.perf_counter()
            try:
                connection.request("POST", path, body=bodies[number % len(bodies)], headers=headers)
                response = connection.getresponse()
                answer = response.read()
                ok = response.status == 200 and b'"label"' in answer
            except OSError as error:
                ok, answer = False, str(error).encode()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            elapsed = time.perf_counter() - started
            with lock:
                (latencies if ok else errors).append(elapsed if ok else answer[:200])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "seconds": seconds,
            "unsent": requests - len(latencies) - len(errors)}


def in_process(run_dir: Path, pngs: list, count: int = 500) -> list:
    """The baseline: konbu.predict on one decoded upload at a time, no HTTP (what the server calls)."""
    from konbu.images import read_image_bytes
    from konbu.predict import answer_images
    from konbu.runs import Run

    run = Run.load(run_dir, device="cpu")
    latencies = []
    for number in range(count):
        started = time.perf_counter()
        image = read_image_bytes(pngs[number % len(pngs)], "digit.png")
        answer_images(run, [image], ["digit.png"], top=5)
        latencies.append(time.perf_counter() - started)
    return latencies[50:]   # the first calls warm the allocator


def percentile(values, q) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else float("nan")


def report(name: str, result: dict, requests: int):
    latencies = result["latencies"]
    print(f"{name:<28} {len(latencies) / result['seconds']:>9,.0f} req/s  p50 {percentile(latencies, 50):6.2f} ms  "
          f"p99 {percentile(latencies, 99):6.2f} ms  errors {len(result['errors'])}  unsent {result['unsent']}"
          f"  ({len(latencies):,} of {requests:,} in {result['seconds']:.1f} s)")


def main():
    arguments = parse_arguments()
    import torch

    cpu = "AVX512-BF16" if "avx512_bf16" in Path("/proc/cpuinfo").read_text() else "no AVX512-BF16"
    print(f"machine: {os.cpu_count()} cores, {cpu}; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as folder:
        run_dir = arguments.run.resolve() if arguments.run else trained_run(Path(folder))
        pngs = test_digits()
        bodies = [multipart(png) for png in pngs]
        baseline = in_process(run_dir, pngs)
        server, port = start_server(run_dir.parent)
        try:
            path = f"/api/runs/{run_dir.name}/predict"
            load(port, path, bodies, 200, 4, 60)                                  # warm-up: load the run, JIT paths
            single = load(port, path, bodies, min(1000, arguments.requests), 1, arguments.max_seconds)
            many = load(port, path, bodies, arguments.requests, arguments.clients, arguments.max_seconds)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)
    print(f"in-process konbu.predict      p50 {percentile(baseline, 50):6.2f} ms  p99 {percentile(baseline, 99):6.2f} ms"
          "  (the baseline: decode + preprocess + model, no HTTP)")
    report("konbu serve, 1 client", single, min(1000, arguments.requests))
    report(f"konbu serve, {arguments.clients} clients", many, arguments.requests)
    p99 = percentile(many["latencies"], 99)
    print(f"p99 at {arguments.clients} clients / target {arguments.target_p99_ms:g} ms: {p99 / arguments.target_p99_ms:.2f}x;"
          f"  1-client p50 outside the model: {percentile(single['latencies'], 50) - percentile(baseline, 50):.2f} ms")
    print(json.dumps({"single_p50_ms": percentile(single["latencies"], 50), "p99_ms": p99,
                      "requests_per_second": len(many["latencies"]) / many["seconds"], "errors": len(many["errors"]),
                      "baseline_p50_ms": percentile(baseline, 50)}))


if __name__ == "__main__":
    main()
