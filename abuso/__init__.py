"""abuso: turn the mail arriving at an abuse@ mailbox into incidents an abuse desk can act on.

    import abuso
    pipeline = abuso.Pipeline.from_config("etc/abuso.yaml")
    report = pipeline.process(raw_bytes)
    report.valid, report.incidents, report.verdicts

Names are imported lazily: ``abuso run`` from procmail pays for what it uses only.
"""

__version__ = "0.1.0"
__all__ = ["Pipeline", "Report", "Incident", "Verdict", "ConfigError", "TransientError", "MessageError",
           "__version__"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of a piped message)
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from .errors import ConfigError, MessageError, TransientError
    from .model import Incident, Report, Verdict
    from .pipeline import Pipeline

_LAZY = {
    "Pipeline": "abuso.pipeline",
    "Report": "abuso.model",
    "Incident": "abuso.model",
    "Verdict": "abuso.model",
    "ConfigError": "abuso.errors",
    "TransientError": "abuso.errors",
    "MessageError": "abuso.errors",
}


def __getattr__(name: str) -> "Any":
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'abuso' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
