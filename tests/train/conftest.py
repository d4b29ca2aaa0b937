"""`tiny-mnist`: 300 train / 100 test images drawn from mnist-sample, registered for the training tests.

Small enough that a whole `fit` (validation, test evaluation, figures, report) takes about a second,
real enough that a model learns something from it.
"""

import torch

from konbu.data import DatasetInfo, load_dataset, register_dataset
from konbu.data._registry import list_datasets

TINY = "tiny-mnist"

if TINY not in list_datasets():
    @register_dataset(DatasetInfo(name=TINY, classes=tuple(str(d) for d in range(10)), image_shape=(1, 28, 28),
                                  split_sizes={"train": 300, "test": 100}, source="tests: the first images of mnist-sample",
                                  ink="mnist", ink_box=20))
    def _tiny(data_dir):
        train, test = load_dataset("mnist-sample", "train"), load_dataset("mnist-sample", "test")
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:300]   # the sample is sorted by class
        pick_test = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:100]
        return {"train": (train.images[pick], train.labels[pick]), "test": (test.images[pick_test], test.labels[pick_test])}
