"""User-facing errors.

Every mistake a user can make (unknown name, missing file, corrupt data, bad image, impossible
shape) raises a `KonbuError` subclass whose message says what was expected, what was found and
what to do. The CLI prints it in one or two lines and exits 2; a traceback reaching a user is a bug.
"""


class KonbuError(Exception):
    """Base class of every error konbu reports to a user instead of a traceback."""

    exit_code = 2   # the CLI's: a mistake in what was asked


class ProcessError(KonbuError):
    """A training process of several died or was killed (--nproc): not the user's input, so exit 1."""

    exit_code = 1


class UnknownNameError(KonbuError):
    """A dataset, model, optimizer or other registry name that does not exist."""


class MissingDataError(KonbuError):
    """Data files a dataset needs are not on disk."""


class DatasetFormatError(KonbuError):
    """A data file exists but is truncated, corrupt or of another format."""


class ModelSpecError(KonbuError):
    """A model spec (layer list) names an unknown layer or has a bad field."""


class ShapeError(KonbuError):
    """A model cannot run on the given input shape (e.g. the image shrinks below 1x1)."""


class RunDirectoryError(KonbuError):
    """A run directory is missing, incomplete or unreadable."""


class ImageError(KonbuError):
    """An image file cannot be read or decoded."""


class ConfigError(KonbuError):
    """A training or evaluation setting is out of range."""


class WriteError(KonbuError, OSError):
    """A file could not be written (disk full, read-only folder, no permission). Also an OSError,
    so code that handles failed writes in general still catches it."""
