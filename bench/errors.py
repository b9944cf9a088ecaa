"""One error type for everything the user can fix, printed as one line."""

from __future__ import annotations


class BenchError(Exception):
    """A problem with the user's input or environment, worded as a fix.

    ``where`` names the file (and ``key`` the dotted key path inside it) so the
    message reads ``suites/x.yaml: models[2].source.sha256: expected ...``.
    """

    def __init__(self, message: str, where: str | None = None, key: str | None = None) -> None:
        self.message = message
        self.where = where
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [p for p in (self.where, self.key) if p]
        return ": ".join([*parts, self.message])


class SuiteError(BenchError):
    """A suite file that does not validate; nothing of it runs."""


class ModelError(BenchError):
    """A model that cannot be loaded, frozen or imported."""


class BuildError(BenchError):
    """TVM could not compile, tune or apply records for a case."""


class GateError(BenchError):
    """Input the gate cannot decide on (exit code 2)."""


class BaselineError(BenchError):
    """A run that cannot be accepted, or a baseline folder that cannot be written."""


class ChangesError(BenchError):
    """Settings change-point detection cannot use."""


class HistoryError(BenchError):
    """One results file that cannot be used; the message says why.

    ``corrupt``: damaged (truncated, missing fields) rather than merely foreign;
    such files found in a history folder are moved to its ``quarantine/``.
    """

    def __init__(self, message: str, corrupt: bool = True) -> None:
        super().__init__(message)
        self.corrupt = corrupt


class TvmError(BenchError):
    """The TVM under test cannot be installed, found or imported, or is outside the supported range."""


class RemoteError(BenchError):
    """The tracker or a device could not be reached or used; the message names target and address."""


class CaseFailed(BenchError):
    """The worker died, hung or ran out of memory on this case; the session goes on."""


class CaseSkipped(BenchError):
    """The case cannot run here (e.g. its device is absent); not a failure."""
