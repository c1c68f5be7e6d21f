"""The exception types users see; torch-free so the ONNX path and the CLI can catch them cheaply."""


class DataError(RuntimeError):
    """The data cannot be used; the message names the folder or dataset and what is wrong."""


class ModelFolderError(RuntimeError):
    """The folder is not a cropdx/timm model folder; the message says what is missing."""


class WeightsUnavailableError(RuntimeError):
    """No ImageNet weights can be had for this backbone on this machine."""


class HubError(RuntimeError):
    """Publishing to or reading from a Hub failed; the message names the endpoint or repo and the cause."""


class UnknownModelError(ModelFolderError):
    """A request named a model this service or folder does not have; the message lists the ones it has."""

    def __init__(self, name: str, available: list[str], message: str | None = None):
        self.name, self.available = name, available
        super().__init__(message or f"unknown model {name!r}; available: {', '.join(available) or 'none'}")


class ExtraNotInstalledError(RuntimeError):
    """A command needs an optional extra (e.g. Ray for `cropdx diagnose`); the message names the pip command."""
