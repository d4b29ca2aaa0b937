"""konbu: from an image dataset to a trained, inspected and explained CNN classifier, on PyTorch.

    import konbu
    train = konbu.load_dataset("mnist-sample", "train")
    net = konbu.build_model("chollet-mnist", train.image_shape, train.num_classes)
    print(konbu.summary(net, train.image_shape))
    run = konbu.fit(model="chollet-mnist", dataset="mnist-sample", epochs=5)
    runs = konbu.fit_recipe("symmetry", dataset="digits")    # {"zeros": Run, "tf": Run}
    run = konbu.Run.load(run.path)
    run.predict("my_digit.jpg", top=3)
    run.evaluate()
    konbu.diagnose(run)                   # what went wrong or could go better, and the next command

The words match the CLI: `konbu datasets | models | summary | train | evaluate | predict`.

The names above load on first use (PEP 562), not on `import konbu`: `konbu --help` and
`from konbu.errors import KonbuError` must not pay for torch, matplotlib and the dataset registry.
"""

import importlib
import importlib.util

__version__ = "0.1.0"

# public name -> the submodule that defines it; imported by __getattr__ the first time it is read
_API = {
    "Dataset": "data", "load_data": "data", "load_dataset": "data", "list_datasets": "data",
    "build_model": "models", "list_models": "models", "summary": "models",
    "fit": "train", "fit_recipe": "train", "TrainConfig": "train",
    "Run": "runs",
    "diagnose": "diagnosis",
    "KonbuError": "errors",
}

__all__ = ["__version__", "Dataset", "load_data", "load_dataset", "list_datasets", "build_model", "list_models",
           "summary", "fit", "fit_recipe", "TrainConfig", "Run", "diagnose", "KonbuError"]


def __getattr__(name: str):
    """`konbu.fit` and the other public names, imported when first read (then cached as attributes).
    Any submodule too (`konbu.runs.read_metrics` after a bare `import konbu`), as when this file
    imported the whole API eagerly and every submodule came with it."""
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
