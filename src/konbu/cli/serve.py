"""`konbu serve`: the web app (draw, runs, train) and REST API over a folder of runs.

    konbu serve                                      http://127.0.0.1:8000, runs from ./runs
    konbu serve --runs ~/runs --port 8080
    konbu serve --host 0.0.0.0 --token SECRET        from other machines: only with a token
"""

from pathlib import Path
from typing import List, Optional

import typer

from ._app import command, console


@command()
def serve(runs: Path = typer.Option(Path("runs"), help="the folder of run directories to serve"),
          host: str = typer.Option("127.0.0.1", help="address to listen on; other than the loopback needs --token"),
          port: int = typer.Option(8000, help="port to listen on"),
          token: Optional[str] = typer.Option(None, help="require this token (Bearer header, or ?token= once in "
                                                         "the browser)", envvar="KONBU_TOKEN"),
          max_jobs: int = typer.Option(1, "--max-jobs", min=0, help="training jobs the server runs at once"),
          cors_origin: Optional[List[str]] = typer.Option(None, "--cors-origin",
                                                          help="let pages from this origin call the API (off)"),
          device: str = typer.Option("cpu", help="where models answer: cpu, cuda, auto")):
    """Serve the web app: draw a digit and watch the prediction, look inside the model, browse and
    compare runs, and train with live charts. REST API documented at /docs."""
    from ..serve import serve as run_server

    address = f"http://{'[' + host + ']' if ':' in host else host}:{port}/" + (f"?token={token}" if token else "")

    def ready():
        console.print(f"konbu serve: {address}  (runs from {runs.resolve()}; Ctrl-C stops)", highlight=False,
                      soft_wrap=True)
    try:
        run_server(runs, host=host, port=port, token=token, max_jobs=max_jobs,
                   cors_origins=tuple(cors_origin or ()), device=device, on_ready=ready)
    except KeyboardInterrupt:   # uvicorn shut down cleanly, then re-raised the Ctrl-C: stopping is success
        console.print("konbu serve: stopped", highlight=False)
