"""What the tests share: clients, servers, fakes, and the one way to wait (``polling``)."""

from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
"""The checkout's root (the working directory of the subprocesses tests start)."""
