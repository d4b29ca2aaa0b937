"""`konbu models` and `konbu summary` through the CLI runner: each model's description beside its
name, and the summary built for the input `konbu.models.default_input` chooses.

    .venv/bin/python -m pytest -q tests/cli/test_models.py
"""

import json

from konbu.cli.testing import invoke as konbu
from konbu.models import BACKBONES, build_model, default_input, get_model_entry, list_models, summary


def table_rows(output):
    """{name: [cell text, ...]} from a rich table printed with show_lines: a cell wrapped over
    several lines is joined back with spaces."""
    rows, current = {}, None
    for line in output.splitlines():
        if line.startswith(("├", "└")):
            current = None
        elif line.startswith("│"):
            cells = [cell.strip() for cell in line.split("│")[1:-1]]
            if current is None:
                current = rows.setdefault(cells[0], [[] for _ in cells])
            for parts, cell in zip(current, cells):
                if cell:
                    parts.append(cell)
    return {name: [" ".join(parts) for parts in cells] for name, cells in rows.items()}


def test_models_shows_each_description_and_source_beside_its_name():
    result = konbu("models")
    assert result.exit_code == 0, result.output
    assert "description" in result.output
    zoo, backbones = result.output.split("pretrained backbones")
    rows = table_rows(zoo)
    assert list(rows) == list_models()
    listed = [line.split("│")[1].strip() for line in backbones.splitlines()
              if line.startswith("│") and line.split("│")[1].strip()]
    assert listed == [f"pretrained:{name}" for name in BACKBONES]
    assert "│ pretrained:resnet18 " in backbones and "│ 5 " in backbones   # its five blocks
    for name, (_, shape, params, about) in rows.items():
        entry = get_model_entry(name)
        assert entry.description, name          # every seed says what it is
        assert about == f"{entry.description} {entry.source}", name
        assert shape == "×".join(map(str, entry.input_shape))
        net = build_model(name, entry.input_shape, entry.num_classes)
        assert params == f"{sum(p.numel() for p in net.parameters()):,}"


def test_summary_builds_for_the_models_own_input():
    # cifar10-net is built for 3x32x32: at MNIST's 1x28x28 its dense layer would be smaller
    result = konbu("summary", "cifar10-net")
    assert result.exit_code == 0, result.output
    assert "Total params: 2,122,186" in result.output
    assert summary(build_model("cifar10-net", *default_input("cifar10-net"))).total_params == 2122186


def test_summary_of_a_spec_file_defaults_to_mnist(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps([{"type": "flatten"}, {"type": "dense", "units": "classes"}]))
    result = konbu("summary", path)
    assert result.exit_code == 0, result.output
    assert f"Total params: {28 * 28 * 10 + 10:,}" in result.output
