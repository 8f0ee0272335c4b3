"""Errors of the export engine.

ExportEngineError
├── CatalogError          - a dataset or catalog entry is unknown or malformed (permanent)
├── ExportRequestError    - a request's parameters are invalid (permanent)
└── ExportPermanentError  - the export cannot succeed by retrying (table gone, permission denied)
"""

from __future__ import annotations


class ExportEngineError(Exception):
    """Base of every error this package raises on purpose."""


class CatalogError(ExportEngineError):
    pass


class ExportRequestError(ExportEngineError):
    pass


class ExportPermanentError(ExportEngineError):
    pass
