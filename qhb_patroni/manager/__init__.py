"""Everything that touches the local QHB (or PostgreSQL) server."""
from __future__ import annotations

from .facade import Manager
from .settings import ManagerError

__all__ = ["Manager", "ManagerError"]
