"""The Endpoints pane: inference endpoints (HyperPod inference operator, KServe), with invoke, scale and logs."""

from __future__ import annotations

from datetime import datetime
from typing import Mapping

from rich.text import Text
from textual.binding import Binding

from app.model.endpoints import STATES, endpoint_rows, human_duration
from app.model.jobs import utcnow
from app.screens.pane import Pane, sort_bindings
from widgets.resource_table import ResourceTable, Row


class EndpointsPane(Pane):
    pane_id = "endpoints"
    title = "Endpoints"
    key = "5"
    columns = ("NAME", "NAMESPACE", "KIND", "MODEL", "INSTANCE", "STATE", "READY", "AUTOSCALE", "AGE", "URL")
    purpose = "Inference endpoints (HyperPod inference operator, KServe): invoke, load-test, scale, logs."
    kinds = ("jumpstartmodels", "inferenceendpointconfigs", "inferenceservices", "pods", "services")
    BINDINGS = [
        Binding("d", "detail", "Describe", id="endpoints.detail"),
        Binding("i", "invoke", "Invoke", id="endpoints.invoke"),
        Binding("s", "scale", "Scale", id="endpoints.scale"),
        Binding("l", "logs", "Logs", id="endpoints.logs"),
        Binding("y", "yaml", "YAML", id="endpoints.yaml"),
        Binding("n", "deploy", "Deploy", id="endpoints.deploy"),
        Binding("ctrl+d", "delete", "Delete", id="endpoints.delete"),
        *sort_bindings({"N": "NAME", "K": "KIND", "M": "MODEL", "I": "INSTANCE", "S": "STATE", "R": "READY",
                        "A": "AGE"}, "endpoints"),
    ]

    def rows(self, stores: Mapping[str, Mapping[str, dict]], now: datetime | None = None) -> list[Row]:
        now = now or utcnow()
        return [
            Row(row.key, (
                row.name, row.namespace, row.kind, clip(row.model, 40), row.instance_type, state_text(row.state),
                row.ready_text, row.autoscaling_text, human_duration(row.age_seconds(now)), clip(row.url, 48),
            ), sort=(
                row.name, row.namespace, row.kind, row.model, row.instance_type,
                STATES.index(row.state) if row.state in STATES else len(STATES), row.replicas_ready,
                row.autoscaling, -(row.age_seconds(now) or 0), row.url,
            ))
            for row in endpoint_rows(stores)
        ]

    def on_data_table_row_selected(self, event: ResourceTable.RowSelected) -> None:
        event.stop()
        self.action_detail()

    def _call(self, name: str) -> None:
        from app.screens import endpoint_actions

        key = self.table.cursor_key
        if key is not None:
            getattr(endpoint_actions, name)(self.app, key)

    def action_detail(self) -> None:
        self._call("open_detail")

    def action_invoke(self) -> None:
        self._call("open_invoke")

    def action_scale(self) -> None:
        self._call("scale")

    def action_logs(self) -> None:
        self._call("open_logs")

    def action_yaml(self) -> None:
        self._call("open_yaml")

    def action_delete(self) -> None:
        from app.screens import endpoint_actions

        endpoint_actions.delete(self.app, self.table.selection())

    def action_deploy(self) -> None:
        from app.screens import endpoint_actions

        endpoint_actions.deploy(self.app)


STATE_STYLES = {"DeploymentComplete": "green", "Ready": "green", "DeploymentInProgress": "cyan", "NotReady": "cyan",
                "DeploymentPending": "yellow", "Pending": "yellow", "DeploymentFailed": "bold red",
                "FailedToLoad": "bold red", "DeletionFailed": "bold red", "DeletionPending": "dim",
                "DeletionInProgress": "dim"}


def clip(text: str, width: int) -> str:
    """Long model sources and URLs end in `…` in the table; the detail view shows them whole."""
    return text if len(text) <= width else text[: width - 1] + "…"


STATE_WIDTH = max(len(s) for s in STATES)


def state_text(state: str) -> Text:
    """Padded to the longest state: the table sizes a column by its first values and does not widen it when a
    cell changes later (`DeploymentPending` becoming `DeploymentInProgress` would be cut)."""
    return Text(state.ljust(STATE_WIDTH), style=STATE_STYLES.get(state, ""))
