"""`konbu export`: a run as a bundle that classifies images without konbu, checked against konbu.

    konbu export runs/deep                                   # -> runs/deep/export-onnx/
    konbu export runs/deep --format torchscript --out deep-ts
    python runs/deep/export-onnx/predict.py digit.png        # pip install onnxruntime numpy pillow

Prints the parity figures (largest probability difference, top-1 agreement) and the files. Exit
code 2, with nothing written, for a bad run directory, a missing onnx extra or a failed parity check.
"""

from pathlib import Path
from typing import Optional

import typer

from ._app import command, console


@command("export")
def export_command(run: Path = typer.Argument(..., help="a run directory"),
                   format: str = typer.Option("onnx", "--format",
                                              help="onnx (ONNX Runtime; pip install 'konbu\\[onnx]') or torchscript"),
                   out: Optional[Path] = typer.Option(None, help="the bundle's folder \\[default: RUN/export-FORMAT]")):
    """Export a run as a bundle that classifies images without konbu (ONNX or TorchScript).

    Writes model.onnx (or model.pt), preprocess.json, classes.json, a predict.py and a README; fails,
    writing nothing, unless the exported model agrees with konbu on test images."""
    from ..export import export

    result = export(run, out, format=format)
    ties = f" (+{result['top1_ties']} exact ties)" if result["top1_ties"] else ""
    console.print(f"parity on {result['images']}: max |p_torch - p_{result['format']}| "
                  f"{result['max_abs_diff']:.2g} (allowed {result['tolerance']:g}), top-1 agrees on "
                  f"{result['top1_agree']}/{result['n']}{ties}", highlight=False, soft_wrap=True)
    folder = Path(result["out"])
    console.print(f"bundle: {folder}  ({result['seconds']:.1f} s)", highlight=False, soft_wrap=True)
    for name in result["files"]:
        console.print(f"  {name:<16} {(folder / name).stat().st_size:>12,} bytes", highlight=False)
    console.print(f"try: python {folder / 'predict.py'} IMAGE --top 3", highlight=False, soft_wrap=True)
