"""Errors a user can cause. The CLI turns each into one red line and exit 1."""


class Cis490Error(Exception):
    """Base of every error that is the user's to fix (bad input, missing stage)."""


class HomeError(Cis490Error):
    """The lab home is missing or unwritable."""


class RegistryError(Cis490Error):
    """The channel registry file is unreadable or invalid."""


class StoreError(Cis490Error):
    """The receiver store, or one episode in it, cannot be used."""


class ManifestError(StoreError):
    """An episode's manifest.json cannot be parsed or lacks what format v1 needs."""


class NotebookError(Cis490Error):
    """The lab notebook cannot be read, or a run id does not exist."""


class ConfigError(Cis490Error):
    """An option value is out of range or inconsistent with another."""


class ArtifactError(Cis490Error):
    """A derived file (index, features, tensors, split, checkpoint, report) is
    missing or damaged: the message names the file and the command that rebuilds it."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (how a scheduler or systemd stops a job), raised in the main
    thread and handled as Ctrl-C: the run is recorded as interrupted."""


class DiskFullError(Cis490Error):
    """A write ran out of space: the file, what is free, nothing replaced."""
