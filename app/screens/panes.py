"""The five panes in tab order. Each lives in its own module; this one only lists them."""

from __future__ import annotations

from app.screens.endpoints import EndpointsPane
from app.screens.gpus import GpusPane
from app.screens.jobs import JobsPane
from app.screens.pane import Pane
from app.screens.spaces import SpacesPane
from app.screens.training import TrainingPane

__all__ = ["PANE_CLASSES", "PANE_IDS", "Pane", "SpacesPane", "JobsPane", "GpusPane", "TrainingPane", "EndpointsPane"]

PANE_CLASSES: tuple[type[Pane], ...] = (SpacesPane, JobsPane, GpusPane, TrainingPane, EndpointsPane)
PANE_IDS = tuple(cls.pane_id for cls in PANE_CLASSES)
