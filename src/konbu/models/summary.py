"""Keras-style model summary: Layer (type), Output Shape, Param #, plus mult-adds per layer.

    print(konbu.summary(konbu.build_model("chollet-mnist"), (1, 28, 28)))

Output shapes are written as Keras writes them, channels last with the batch as None:
`(None, 26, 26, 32)`; param counts equal Keras's for the same architecture (the test suite checks
the tutorials' figures). Non-trainable params are frozen weights plus BatchNorm's running
mean/variance, as in Keras. Mult-adds count one multiply-accumulate per weight use.
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from ..errors import ShapeError
from .whiten import Whiten


@dataclass
class SummaryRow:
    name: str
    type: str
    output_shape: list   # Keras order, batch first as None: [None, H, W, C] or [None, units]
    params: int
    mult_adds: int


@dataclass
class Summary:
    name: str
    input_shape: tuple
    rows: list
    total_params: int
    trainable_params: int
    non_trainable_params: int
    total_mult_adds: int
    param_bytes: int

    def to_dict(self):
        return asdict(self)

    def table(self):
        """A rich Table (the CLI prints it; str() renders it to text)."""
        from rich import box
        from rich.table import Table

        table = Table(title=f'Model: "{self.name}"', box=box.HEAVY_HEAD, title_justify="left")
        table.add_column("Layer (type)")
        table.add_column("Output Shape")
        table.add_column("Param #", justify="right")
        table.add_column("Mult-adds", justify="right")
        for row in self.rows:
            table.add_row(f"{row.name} ({row.type})", format_shape(row.output_shape), f"{row.params:,}",
                          f"{row.mult_adds:,}")
        return table

    def totals_text(self):
        return (f" Total params: {self.total_params:,} ({_human_bytes(self.param_bytes)})\n"
                f" Trainable params: {self.trainable_params:,}\n"
                f" Non-trainable params: {self.non_trainable_params:,}\n"
                f" Total mult-adds: {self.total_mult_adds:,} ({self.total_mult_adds / 1e6:.2f} M)")

    def __str__(self):
        from rich.console import Console

        console = Console(width=100, force_terminal=False, color_system=None)
        with console.capture() as capture:
            console.print(self.table())
            console.print(self.totals_text(), highlight=False)
        return capture.get()


def format_shape(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _human_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def _keras_shape(tensor):
    shape = list(tensor.shape[1:])
    if len(shape) == 3:                     # (C, H, W) -> (H, W, C)
        shape = shape[1:] + shape[:1]
    return [None] + shape


def _mult_adds(module, output):
    if isinstance(module, nn.Conv2d):
        per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        return output.numel() * per_output
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, Whiten):
        return output.numel() * module.weight[0].numel()
    return 0


def _rows_of(model):
    """(name, type, [modules]) per row: a Net's spec layers, else every leaf module."""
    if hasattr(model, "layers") and hasattr(model, "module_named"):
        return [(layer.name, layer.type, [model.module_named(m) for m in layer.modules]) for layer in model.layers]
    return [(name, type(module).__name__, [module]) for name, module in model.named_modules()
            if not list(module.children())]


def _running_stats(module):
    """Weights a module keeps as buffers, which Keras counts as non-trainable parameters: BatchNorm's
    moving mean and variance, and a whitening layer's fitted filters."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
        return module.running_mean.numel() + module.running_var.numel()
    if isinstance(module, Whiten):
        return module.weight.numel()
    return 0


@torch.no_grad()
def summary(model: nn.Module, input_shape=None, name=None) -> Summary:
    """Trace one image of `input_shape` (C, H, W) through `model` and tabulate every layer."""
    input_shape = tuple(input_shape or getattr(model, "input_shape"))
    rows_of = _rows_of(model)
    outputs, mult_adds = {}, {}

    def hook(module, inputs, output):
        outputs[id(module)] = output
        mult_adds[id(module)] = _mult_adds(module, output)

    # every module inside a row is hooked: a pretrained backbone is one row holding a whole network
    handles = [m.register_forward_hook(hook) for _, _, modules in rows_of for top in modules for m in top.modules()]
    was_training = model.training
    model.eval()
    try:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else "cpu"
        model(torch.zeros((1, *input_shape), device=device))
    except RuntimeError as e:
        raise ShapeError(f"the model cannot run on input shape {input_shape}: {str(e).splitlines()[0]}") from None
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    rows = []
    for row_name, row_type, modules in rows_of:
        # like Keras, a row counts BatchNorm's moving mean/variance too (non-trainable weights)
        inside = [m for top in modules for m in top.modules()]
        params = sum(p.numel() for m in inside for p in m.parameters(recurse=False)) + sum(
            _running_stats(m) for m in inside)
        last = outputs[id(modules[-1])]
        rows.append(SummaryRow(row_name, row_type, _keras_shape(last), params,
                               sum(mult_adds.get(id(m), 0) for m in inside)))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    non_trainable = sum(p.numel() for p in model.parameters() if not p.requires_grad) + sum(
        _running_stats(m) for m in model.modules())
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return Summary(name or getattr(model, "name", None) or type(model).__name__, input_shape, rows,
                   trainable + non_trainable, trainable, non_trainable, sum(r.mult_adds for r in rows), param_bytes)
