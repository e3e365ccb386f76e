"""The GPUs pane on the simulated HyperPod cluster: figures from the dcgm-exporter pods, the tree of nodes, GPUs and
MIG slices, the waste view and the jump to the holder's pane; the states when metrics cannot be had."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from app.cluster.kubeconfig import load_kubeconfig
from app.config import Settings
from app.tui import HyperdeskApp
from tests.plugins.gpus import VIEWER
from tests.plugins.tui import wait_for

pytestmark = pytest.mark.usefixtures("isolated_home")


def cells(table, column: str) -> list[str]:
    labels = [str(c.label) for c in table.columns.values()]
    index = labels.index(column)
    return [str(table.get_row_at(i)[index]) for i in range(table.row_count)]


def rendered(renderable) -> str:
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def keys(table) -> list[str]:
    return [row.key.value for row in table.ordered_rows]


def app_for(handle, **gpus) -> HyperdeskApp:
    settings = Settings(all_namespaces=True)
    for name, value in gpus.items():
        setattr(settings.gpus, name, value)
    return HyperdeskApp(settings, kubeconfig=load_kubeconfig(str(handle.kubeconfig_path)))


async def test_nodes_gpus_and_mig_slices_with_live_figures(hyperpod_cluster) -> None:
    app = app_for(hyperpod_cluster, poll_seconds=0.5)
    async with app.run_test(size=(180, 60)) as pilot:
        await pilot.press("3")
        pane = app.pane("gpus")
        table = pane.table
        await wait_for(pilot, lambda: pane.view is not None and any(h for h in cells(table, "HISTORY")), timeout=20)
        assert sum(k.startswith("node:") for k in keys(table)) == 8
        assert table.row_count == 8 + 128
        holders = cells(table, "HOLDER")
        assert "hyperpod-ns-research/llama3-70b-pretrain (hpjob)" in holders
        assert "hyperpod-ns-nlp/alice-notebook (space)" in holders
        assert any(m.startswith("3g.40gb #") for m in cells(table, "MODEL / MIG"))
        summary = rendered(pane.query_one("#gpus-summary").content)
        assert "3g.40gb" in summary and "whole GPU" in summary
        # a second poll adds to every sparkline: the worker reschedules itself
        before = len(pane.view.devices[0].history)
        await wait_for(pilot, lambda: len(pane.view.devices[0].history) > before, timeout=10)
        # between polls a pod or node change leaves the table alone (the figures change only per poll)
        pane._dirty = False
        assert pane.rows({"nodes": {}, "pods": {}}) is None

        # collapse all, expand one node with enter
        await pilot.press("c")
        assert table.row_count == 8 and all(k.startswith("node:") for k in keys(table))
        mig_node = next(n.name for n in pane.view.nodes if n.mig_config.startswith("mixed-"))
        table.move_cursor(row=keys(table).index(f"node:{mig_node}"))
        await pilot.press("enter")
        assert table.row_count == 8 + 32
        assert table.cursor_key == f"node:{mig_node}"

        # sort by utilisation: the busiest node first
        await pilot.press("c", "U")
        first = keys(table)[0]
        assert first.startswith("node:") and "allocated" in cells(table, "HOLDER")[0]
        assert float(cells(table, "UTIL")[0].rstrip("%")) > 90

        # the filter keeps the tree: a team shows its devices under their nodes
        await pilot.press("slash", *"vision", "enter")
        visible = keys(table)
        assert visible and all(k.startswith("node:") or "vision" in cells(table, "HOLDER")[i]
                               for i, k in enumerate(visible))


async def test_waste_view_and_jump_to_the_holder(hyperpod_cluster) -> None:
    app = app_for(hyperpod_cluster, poll_seconds=0.5, idle_minutes=0)
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("3")
        pane = app.pane("gpus")
        await wait_for(pilot, lambda: pane.view is not None, timeout=20)
        await pilot.press("w")
        table = pane.table
        await wait_for(pilot, lambda: table.row_count == 2)
        assert sorted(cells(table, "HOLDER")) == ["hyperpod-ns-nlp/alice-notebook (space)",
                                                  "hyperpod-ns-vision/bob-mig-lab (space)"]
        assert "Waste:" in rendered(pane.query_one(".empty").content)
        await pilot.press("w")  # back to the nodes: jump from a training GPU to its job
        busy = next(d for d in pane.view.devices if d.holder and d.holder.kind == "PyTorchJob")
        await wait_for(pilot, lambda: busy.key in keys(pane.table))
        pane.table.move_cursor(row=keys(pane.table).index(busy.key))
        await pilot.press("o")
        assert app.active_pane == "jobs"
        assert app.pane("jobs").table.cursor_key == f"pytorchjobs/{busy.holder.namespace}/{busy.holder.name}"


async def test_forbidden_metrics_keep_the_allocation(demo_cluster) -> None:
    handle = demo_cluster(scenario="bare", seed=3, mlflow=False, access=VIEWER)
    handle.advance(5)  # the exporter pods start
    viewer = handle.call(handle.cluster.server.kubeconfig_for, "viewer")
    app = HyperdeskApp(Settings(all_namespaces=True, kubeconfig=str(viewer)), kubeconfig=load_kubeconfig(str(viewer)))
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("3")
        pane = app.pane("gpus")
        notice = pane.query_one(".empty")
        await wait_for(pilot, lambda: "metrics forbidden" in rendered(notice.content), timeout=20)
        assert "pods/proxy" in rendered(notice.content)
        assert pane.table.row_count > 8  # nodes and their devices, from the allocation
        assert set(cells(pane.table, "UTIL")) == {"–"}


async def test_no_running_exporter_shows_the_allocation_and_says_so(bare_cluster) -> None:
    """The bare cluster, paused before its exporter pods start: no figures, the nodes' allocation all the same."""
    app = app_for(bare_cluster, poll_seconds=0.5)
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("3")
        pane = app.pane("gpus")
        notice = pane.query_one(".empty")
        await wait_for(pilot, lambda: "no dcgm-exporter found" in rendered(notice.content), timeout=20)
        assert sum(k.startswith("node:") for k in keys(pane.table)) == 8
        assert all("no exporter" in c for c, k in zip(cells(pane.table, "HOLDER"), keys(pane.table))
                   if k.startswith("node:"))


def test_sparkline_scales_percentages_to_eight_levels():
    from app.screens.gpus import sparkline

    assert sparkline((0.0, 5.0, 12.5, 50.0, 100.0, 150.0, -3.0)) == "▁▁▂▅██▁"
    assert sparkline(tuple(float(v) for v in range(20)), width=4) == "▂▂▂▂" and sparkline(()) == ""


async def test_a_context_switch_drops_the_old_clusters_gpus(hyperpod_cluster, tmp_path) -> None:
    """`:ctx` to a cluster that does not answer: the old cluster's nodes and figures go at once, they do not stay
    on screen looking live."""
    import yaml

    from tests.plugins.tui import closed_port

    config = yaml.safe_load(hyperpod_cluster.kubeconfig_path.read_text())
    config["clusters"].append({"name": "gone", "cluster": {"server": f"http://127.0.0.1:{closed_port()}"}})
    config["contexts"].append({"name": "gone", "context": {"cluster": "gone", "user": config["users"][0]["name"]}})
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    settings = Settings(all_namespaces=True)
    settings.gpus.poll_seconds = 0.5
    app = HyperdeskApp(settings, kubeconfig=load_kubeconfig(str(path)))
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("3")
        pane = app.pane("gpus")
        await wait_for(pilot, lambda: pane.view is not None and pane.table.row_count == 8 + 128, timeout=20)
        await pilot.press("colon", *"ctx gone", "enter")
        await wait_for(pilot, lambda: pane.table.row_count == 0, timeout=10)
        assert pane.view is None and pane.nodes == []
        assert not pane.query_one("#gpus-summary").display


async def test_a_modal_screen_over_the_pane_pauses_its_polls(hyperpod_cluster) -> None:
    app = app_for(hyperpod_cluster, poll_seconds=0.5)
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("3")
        pane = app.pane("gpus")
        await wait_for(pilot, lambda: pane.view is not None, timeout=20)
        first = pane.view
        await wait_for(pilot, lambda: pane.view is not first, timeout=10)  # polls every 0.5 s while shown
        await pilot.press("question_mark")  # help covers the pane
        await wait_for(pilot, lambda: len(app.screen_stack) > 1)
        await pilot.pause(0.6)  # a round that had begun may still end
        covered = pane.view
        await pilot.pause(2.0)  # four poll periods
        assert pane.view is covered
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(app.screen_stack) == 1 and pane.view is not covered, timeout=10)


async def test_o_on_an_inference_endpoints_gpu_jumps_to_the_endpoint(hyperpod_cluster) -> None:
    """A HyperPod endpoint's model server pods belong to a Deployment; `o` finds the endpoint that runs them."""
    app = app_for(hyperpod_cluster, poll_seconds=0.5)
    async with app.run_test(size=(180, 60)) as pilot:
        await pilot.press("3")
        pane = app.pane("gpus")
        await wait_for(pilot, lambda: pane.view is not None
                       and any(d.holder and d.holder.kind == "Deployment" for d in pane.view.devices), timeout=20)
        served = next(d for d in pane.view.devices if d.holder and d.holder.kind == "Deployment")
        await wait_for(pilot, lambda: served.key in keys(pane.table))
        pane.table.move_cursor(row=keys(pane.table).index(served.key))
        await pilot.press("o")
        assert app.active_pane == "endpoints"
        cursor = app.pane("endpoints").table.cursor_key
        assert cursor.endswith(f"/{served.holder.namespace}/{served.holder.name}")
        assert cursor.split("/")[0] in ("jumpstartmodels", "inferenceendpointconfigs")


async def test_the_state_line_ages_between_polls(hyperpod_cluster) -> None:
    """A round that takes long (slow exporters) leaves the last figures on screen: the line under the table says
    how old they are, second by second, without waiting for the round to end."""
    import time

    app = app_for(hyperpod_cluster, poll_seconds=60)
    async with app.run_test(size=(180, 50)) as pilot:
        await pilot.press("3")
        pane = app.pane("gpus")
        notice = pane.query_one(".empty")
        await wait_for(pilot, lambda: pane.view is not None, timeout=20)
        assert "stale" not in rendered(notice.content)
        # a round that has not ended for six minutes (stale after three polls): its figures are all there is
        pane.view.scraped_at = time.time() - 370
        await wait_for(pilot, lambda: "stale: metrics from 6m ago" in rendered(notice.content), timeout=5)
