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
"""

__version__ = "0.1.0"

from .data import Dataset, list_datasets, load_data, load_dataset  # noqa: E402
from .diagnosis import diagnose  # noqa: E402
from .errors import KonbuError  # noqa: E402
from .models import build_model, list_models, summary  # noqa: E402
from .runs import Run  # noqa: E402
from .train import TrainConfig, fit, fit_recipe  # noqa: E402

__all__ = ["__version__", "Dataset", "load_data", "load_dataset", "list_datasets", "build_model", "list_models",
           "summary", "fit", "fit_recipe", "TrainConfig", "Run", "diagnose", "KonbuError"]
