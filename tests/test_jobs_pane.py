"""The Jobs pane on the simulated HyperPod cluster: one row per job across kinds, with Kueue's view of it."""

from __future__ import annotations

import pytest

from app.cluster.kubeconfig import load_kubeconfig
from app.config import Settings
from app.tui import HyperdeskApp
from tests.test_tui_navigation import wait_for

pytestmark = pytest.mark.usefixtures("isolated_home")


async def test_jobs_pane_lists_every_kind_with_its_queue_state(hyperpod_cluster) -> None:
    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(hyperpod_cluster.kubeconfig_path)))
    async with app.run_test(size=(220, 40)) as pilot:
        table = app.pane("jobs").table
        await wait_for(pilot, lambda: table.row_count >= 5, timeout=20)
        await pilot.pause(0.3)
        rows = {table.get_row_at(i)[0]: [str(c) for c in table.get_row_at(i)] for i in range(table.row_count)}
        columns = [str(c.label) for c in table.columns.values()]
        kinds = {row[columns.index("KIND")] for row in rows.values()}
        assert {"HyperPodPyTorchJob", "PyTorchJob", "Job", "JobSet"} <= kinds
        states = {row[columns.index("STATE")] for row in rows.values()}
        assert "Running" in states
        waiting = [row for row in rows.values() if row[columns.index("STATE")] in ("Queued", "Preempted")]
        assert waiting, "the scenario keeps a job waiting"
        assert all(row[columns.index("WHY")] for row in waiting), "a waiting job says why"
        assert all(row[columns.index("TEAM")] and not row[columns.index("TEAM")].startswith("hyperpod-ns-")
                   for row in rows.values())
