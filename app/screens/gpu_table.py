"""The GPUs pane's table: a ResourceTable whose `/` filter keeps the tree whole.

Rows are nodes (key `node:<name>`) and their GPUs and MIG slices (keys `<node>/...`). A filter that matches a node
keeps all of its devices; one that matches a device (its holder's team, say) keeps the device and its node's row.
"""

from __future__ import annotations

from app.model.filters import row_matches
from widgets.resource_table import ResourceTable, Row


def node_of(key: str) -> str:
    return key[5:] if key.startswith("node:") else key.split("/", 1)[0]


class GpuTable(ResourceTable):
    def _visible(self) -> list[Row]:
        rows = list(self._rows.values())
        if not self.filter_text.strip():
            return rows
        matched = {row.key for row in rows if row_matches(row.cells, self.filter_text)}
        whole = {node_of(key) for key in matched if key.startswith("node:")}
        partly = {node_of(key) for key in matched}
        return [row for row in rows
                if row.key in matched or node_of(row.key) in whole
                or (row.key.startswith("node:") and node_of(row.key) in partly)]
