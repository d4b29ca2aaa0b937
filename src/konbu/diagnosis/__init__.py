"""`konbu diagnose`: every run explains itself — what went wrong or could go better, the evidence,
and the next command to try, as a teacher reading the run would say it.

    import konbu
    findings = konbu.diagnose("runs/deep")          # or a loaded Run; most important first
    findings[0].id, findings[0].title, findings[0].evidence, findings[0].next

    konbu diagnose runs/deep                        # the same, printed; --json for tools

Each check is a plain function registered by name with `@check(...)` in a module of its own concern
(curves.py: the training curves and the learning rate; weights.py: dead units, frozen filters,
symmetry; classes.py: confusions, recall, imbalance; data.py: duplicates and likely label errors;
calibration.py; tutorial.py: a recipe's run against its tutorial). A check reads the run through a
`Context` and returns the findings it makes (an empty list when the run is healthy in its respect).
A check that needs data which is not on this machine (a run copied elsewhere) is skipped.

A finding's `id` is stable (tools and the web app key on it); `severity` orders them: 3 something
went wrong, 2 it could go better, 1 worth knowing. `next` holds real konbu commands.
"""

from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

from ..errors import ConfigError, MissingDataError, UnknownNameError
from ..runs import (CALIBRATION_FILE, EVALUATION_FILE, Run, figure_path, read_metrics, read_optional_json,
                    saved_config)

WRONG, BETTER, NOTE = 3, 2, 1    # severities: something went wrong / could go better / worth knowing


@dataclass
class Finding:
    id: str                  # stable, kebab-case: "overfitting", "dead-units", ...
    severity: int            # WRONG, BETTER or NOTE
    title: str               # one line: what is the matter
    evidence: str            # the numbers behind it, in a sentence or two
    next: list               # konbu commands to try, most promising first
    data: dict = field(default_factory=dict)   # the evidence as numbers, for tools
    figure: str | None = None                  # an evidence figure in the run's figures/, if drawn

    def to_dict(self) -> dict:
        return asdict(self)


_CHECKS: dict = {}


def check(name: str):
    """Register a check function `(ctx: Context) -> list[Finding]` under `name` (a duplicate name is
    refused as the decorator is made, before the second function exists)."""
    if name in _CHECKS:
        raise ValueError(f"diagnose check {name!r} is registered twice")

    def register(function):
        _CHECKS[name] = function
        return function
    return register


# The modules of checks, in the order their findings come at equal severity: the training, the
# model, the classes, the data, the percentages, the tutorial.
MODULES = ("curves", "weights", "classes", "data", "calibration", "tutorial")


def list_checks() -> list:
    """Every check's name, in MODULES order (then as each module lists them), whichever was imported first."""
    from . import calibration, classes, curves, data, tutorial, weights  # noqa: F401  (importing registers them)

    def place(item):
        index, (name, function) = item
        return MODULES.index(function.__module__.rsplit(".", 1)[-1]), index
    return [name for _, (name, _) in sorted(enumerate(_CHECKS.items()), key=place)]


class Context:
    """What the checks read, each piece loaded once and only when a check asks for it."""

    def __init__(self, run: Run, data_dir=None):
        self.run = run
        self.data_dir = data_dir

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def info(self) -> dict:
        return self.run.info

    @property
    def config(self) -> dict:
        """The run's TrainConfig fields (saved_config)."""
        return saved_config(self.run.info)

    @cached_property
    def records(self) -> list:
        return read_metrics(self.run.path)

    @property
    def epochs(self) -> list:
        """The per-epoch records, in order."""
        return [r for r in self.records if r.get("kind") == "epoch"]

    @property
    def batches(self) -> list:
        """The per-step records, in order."""
        return [r for r in self.records if r.get("kind") == "batch"]

    @cached_property
    def evaluation(self) -> dict:
        """evaluation.json ({} when the report was never built)."""
        return read_optional_json(self.run.path, EVALUATION_FILE)

    @cached_property
    def calibration(self) -> dict:
        return read_optional_json(self.run.path, CALIBRATION_FILE)

    @cached_property
    def data(self):
        """(train, test) of the run's dataset; MissingDataError when it is not on this machine."""
        return self.run.data(self.data_dir)

    @cached_property
    def validation(self):
        """The validation split as fit() made it, or None for a run trained without one."""
        from ..reporting import run_validation_split   # here: reporting writes diagnoses, so imports this

        try:   # split from the train split `data` holds: the dataset is loaded once for every check
            return run_validation_split(self.run, self.data_dir, full_train=self.data[0])
        except ConfigError:
            return None

    def figure(self, name: str) -> Path:
        """Where an evidence figure goes: RUN/figures/diagnose-NAME.png."""
        return figure_path(self.run.path, f"diagnose-{name}")


def diagnose(run, data_dir=None, checks=None) -> list:
    """The findings of every registered check (or those named in `checks`) on `run` (a Run or a
    run directory), most important first."""
    run = run if isinstance(run, Run) else Run.load(run)
    context = Context(run, data_dir)
    registered = list_checks()
    findings = []
    for name in checks or registered:
        if name not in registered:
            raise UnknownNameError(f"unknown diagnose check {name!r}; expected one of {', '.join(registered)}")
        try:
            findings += _CHECKS[name](context)
        except MissingDataError:   # a run copied without its data: the checks that need it say nothing
            continue
    return sorted(findings, key=lambda finding: -finding.severity)


__all__ = ["Finding", "Context", "check", "diagnose", "list_checks", "WRONG", "BETTER", "NOTE"]
