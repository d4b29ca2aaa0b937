"""`konbu serve`: the local web app and REST API over a folder of runs.

    konbu serve                                  http://127.0.0.1:8000 over ./runs
    konbu serve --runs ~/runs --port 8080
    konbu serve --host 0.0.0.0 --token SECRET    reachable from other machines: only with a token

    from konbu.serve import create_app           # the FastAPI app, e.g. for TestClient
    app = create_app("runs")

Pages (one page, static/): Draw (a canvas -> live top-K, the input the model sees, feature maps and
Grad-CAM), Runs (curves, confusion matrix -> its images, mistakes, filters, summary, compare) and
Train (start, watch live, stop, resume). The REST API is documented at /docs (OpenAPI):
runs_api (reading runs), predict_api (one image), train_api (jobs). Every asset is served from this
package: no CDN, works offline. The server holds no model logic: it calls konbu.predict,
konbu.inspect, konbu.runs and konbu.train as the CLI does.

FastAPI, uvicorn and python-multipart are the optional extra `konbu[web]`.
"""

from ..errors import KonbuError

WEB_EXTRA = ("fastapi", "uvicorn", "multipart")


def require_web():
    """A KonbuError naming the extra when the web packages are not installed."""
    import importlib.util

    missing = [name for name in WEB_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise KonbuError(f"konbu serve needs the web extra ({', '.join(missing)} not installed): "
                         "pip install 'konbu[web]'")


def create_app(*args, **kwargs):
    """konbu.serve.app.create_app, after checking that the web extra is installed."""
    require_web()
    from .app import create_app as create

    return create(*args, **kwargs)


def serve(runs="runs", host: str = "127.0.0.1", port: int = 8000, token: str | None = None, max_jobs: int = 1,
          cors_origins=(), device="cpu", log_level: str = "warning", on_ready=None):
    """Run the app under uvicorn until Ctrl-C. A host other than the loopback needs a token: the
    API can start training jobs and read every run, so it is never open to a network by default."""
    from .safety import is_loopback

    require_web()
    if not is_loopback(host) and not token:
        raise KonbuError(f"--host {host} makes the server reachable from other machines; it needs --token "
                         "(e.g. --token $(python -c 'import secrets; print(secrets.token_urlsafe())'))")
    import uvicorn

    app = create_app(runs, token=token, max_jobs=max_jobs, cors_origins=cors_origins, device=device,
                     allowed_hosts=None if is_loopback(host) and not token else ["*"])
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    if on_ready is not None:
        _call_when_started(server, on_ready)
    server.run()


def _call_when_started(server, callback):
    import threading
    import time

    def wait():
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            callback()
    threading.Thread(target=wait, daemon=True).start()
