"""The GPUs pane: GPU and MIG utilisation across the cluster, and who holds each GPU."""

from __future__ import annotations

from app.screens.pane import Pane


class GpusPane(Pane):
    pane_id = "gpus"
    title = "GPUs"
    key = "3"
    columns = ("NODE", "GPU", "MODEL", "MIG", "UTIL", "MEMORY", "HOLDER")
    purpose = "Live GPU and MIG utilisation across the cluster, and who holds each GPU — coming soon."
    kinds = ("nodes", "pods")
