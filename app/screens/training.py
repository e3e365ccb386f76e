"""The Training pane: MLflow runs and their curves, next to the jobs that produce them."""

from __future__ import annotations

from app.screens.pane import Pane


class TrainingPane(Pane):
    pane_id = "training"
    title = "Training"
    key = "4"
    columns = ("RUN", "EXPERIMENT", "STATUS", "STEP", "LOSS", "JOB")
    purpose = "Live loss curves from MLflow, next to the job that produces them — coming soon."
    kinds = ()
