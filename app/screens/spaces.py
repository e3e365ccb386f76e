"""The Spaces pane: JupyterLab and Code Editor spaces (jupyter-k8s Workspaces or Kubeflow Notebooks)."""

from __future__ import annotations

from app.screens.pane import Pane


class SpacesPane(Pane):
    pane_id = "spaces"
    title = "Spaces"
    key = "1"
    columns = ("NAME", "DISPLAY NAME", "OWNER", "APP", "STATUS", "GPUS", "IDLE", "AGE")
    purpose = "Your JupyterLab and Code Editor spaces on the cluster — coming soon."
    kinds = ("workspaces", "workspacetemplates", "notebooks", "pods")
