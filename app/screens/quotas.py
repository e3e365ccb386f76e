"""Team quotas: each ClusterQueue per flavor and resource — nominal, used, borrowed, lendable — as bars, with its
cohort and its LocalQueues' pending and admitted counts. Plain data in (`app.cluster.queues.ClusterQueueRow`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from app.cluster.queues import ClusterQueueRow, format_quantity

BAR_WIDTH = 30
REFRESH_SECONDS = 1.0


def bar(used: Decimal, nominal: Decimal, width: int = BAR_WIDTH) -> Text:
    """`used` against `nominal`: the part within quota in the theme's normal colour, borrowing beyond it marked."""
    if nominal <= 0:
        return Text("·" * width, style="dim") if used <= 0 else Text("▇" * width, style="yellow")
    scale = max(nominal, used)
    within = int(min(used, nominal) / scale * width)
    beyond = int(max(used - nominal, 0) / scale * width)
    text = Text("▇" * within, style="green")
    text.append("▇" * beyond, style="yellow")
    text.append("·" * (width - within - beyond), style="dim")
    return text


def quota_table(queue: ClusterQueueRow) -> Table:
    table = Table(box=None, expand=False, pad_edge=False, show_edge=False)
    for header in ("FLAVOR", "RESOURCE", "USE", "USED", "NOMINAL", "BORROWED", "LENDABLE", "BORROW LIMIT"):
        table.add_column(header, no_wrap=True, justify="right" if header not in ("FLAVOR", "RESOURCE", "USE") else "left")
    for row in queue.quota:
        table.add_row(
            row.flavor, row.resource, bar(row.used, row.nominal),
            format_quantity(row.resource, row.used), format_quantity(row.resource, row.nominal),
            format_quantity(row.resource, row.borrowed) if row.borrowed else "",
            format_quantity(row.resource, row.lendable),
            "∞" if row.borrowing_limit is None and queue.cohort else format_quantity(row.resource, row.borrowing_limit),
        )
    return table


class QuotaScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="quotas.back")]

    def __init__(self, load: Callable[[], list[ClusterQueueRow]]) -> None:
        super().__init__()
        self._load = load
        self.queues: list[ClusterQueueRow] = []
        """What is shown."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="quotas") as scroll:
            scroll.border_title = "Team quotas (Kueue ClusterQueues)"
        yield Footer()

    def on_mount(self) -> None:
        self.show()
        self.set_interval(REFRESH_SECONDS, self.show)

    def show(self) -> None:
        self.queues = queues = self._load()
        container = self.query_one("#quotas", VerticalScroll)
        blocks = list(container.query(Static))
        if len(blocks) != max(len(queues), 1):
            container.remove_children()
            blocks = [Static(classes="quota-block") for _ in range(max(len(queues), 1))]
            container.mount_all(blocks)
        if not queues:
            blocks[0].update("No ClusterQueues: this cluster has no Kueue task governance, or you may not see it.")
            return
        for block, queue in zip(blocks, queues):
            head = Text.assemble((queue.name, "bold"), (f"   cohort {queue.cohort or '—'}", "dim"),
                                 f"   pending {queue.pending}   admitted {queue.admitted}")
            if queue.stopped:
                head.append("   STOPPED", style="bold red")
            local = "   ".join(f"{lq.namespace}/{lq.name}: {lq.pending} pending, {lq.admitted} admitted"
                               for lq in queue.local_queues)
            parts: list = [head, quota_table(queue)]
            if local:
                parts.append(Text(f"LocalQueues  {local}", style="dim"))
            block.update(Group(*parts))
