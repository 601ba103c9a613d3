"""Stateful Proxmox VE API simulator for tests (HTTPS on 127.0.0.1, state in a JSON file)."""

from .server import Simulator
from .state import default_state

__all__ = ["Simulator", "default_state"]
