"""The Jobs pane on the simulated HyperPod cluster: one row per job across kinds, with Kueue's view of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cluster.kubeconfig import load_kubeconfig
from app.config import Settings
from app.tui import HyperdeskApp
from tests.plugins.tui import record_notifications, wait_for

pytestmark = pytest.mark.usefixtures("isolated_home")


async def test_jobs_pane_lists_every_kind_with_its_queue_state(hyperpod_cluster) -> None:
    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(hyperpod_cluster.kubeconfig_path)))
    async with app.run_test(size=(220, 40)) as pilot:
        table = app.pane("jobs").table
        await wait_for(pilot, lambda: table.row_count >= 5, timeout=20)
        await pilot.pause(0.3)
        rows = {str(table.get_row_at(i)[1]): [str(c) for c in table.get_row_at(i)] for i in range(table.row_count)}
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


def cell_texts(table, column: str) -> list[str]:
    labels = [str(c.label) for c in table.columns.values()]
    index = labels.index(column)
    return [str(table.get_row_at(i)[index]) for i in range(table.row_count)]


async def test_sort_mark_detail_and_yaml(hyperpod_cluster) -> None:
    from app.screens.job_detail import JobDetailScreen
    from app.screens.yaml_view import YamlScreen

    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(hyperpod_cluster.kubeconfig_path)))
    async with app.run_test(size=(220, 50)) as pilot:
        table = app.pane("jobs").table
        await wait_for(pilot, lambda: table.row_count >= 5, timeout=20)
        await pilot.press("N")
        names = cell_texts(table, "NAME")
        assert names == sorted(names)
        await pilot.press("N")
        assert cell_texts(table, "NAME") == sorted(names, reverse=True)

        table.move_cursor(row=0)
        await pilot.press("space", "space")  # marks a row and moves down, as in k9s
        assert len(table.marked) == 2
        assert cell_texts(table, " ")[:3] == ["●", "●", ""]

        await pilot.press("S")  # by state: Queued jobs sort first
        assert cell_texts(table, "STATE")[0] == "Queued"
        table.move_cursor(row=0)
        await pilot.press("d")
        assert isinstance(app.screen, JobDetailScreen)
        await pilot.pause(0.2)
        summary = str(app.screen.query_one("#detail-summary").render())
        assert "Why:" in summary and "State Queued" in summary
        conditions = app.screen.query_one("#detail-conditions")
        assert any("QuotaReserved" in str(conditions.get_row_at(i)) for i in range(conditions.row_count))
        await pilot.press("y")
        assert isinstance(app.screen, YamlScreen)
        await wait_for(pilot, lambda: app.screen.yaml_text.startswith("apiVersion:"))
        assert "managedFields" not in app.screen.yaml_text
        await pilot.press("escape", "escape")
        assert app.screen.query("#panes")


async def test_logs_of_a_job_follow_search_and_save(hyperpod_cluster, tmp_path) -> None:
    from app.screens.logs import LogsScreen

    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(hyperpod_cluster.kubeconfig_path)))
    async with app.run_test(size=(200, 45)) as pilot:
        table = app.pane("jobs").table
        await wait_for(pilot, lambda: "llama3-70b-pretrain" in cell_texts(table, "NAME"), timeout=20)
        table.move_cursor(row=cell_texts(table, "NAME").index("llama3-70b-pretrain"))
        await pilot.press("l")
        screen = app.screen
        assert isinstance(screen, LogsScreen)
        screen.save_dir = tmp_path
        await wait_for(pilot, lambda: len(screen.buffer) > 0, timeout=10)
        first = screen.buffer[0]
        assert first.startswith("[llama3-70b-pretrain-pod-"), "two pods interleave, each line says which"
        await pilot.press("slash", *"step", "enter")
        assert screen.view.search is not None and screen.view.matches()
        assert not screen.view.follow, "jumping to a match pauses following"
        await pilot.press("c")  # one pod only: no prefix
        await wait_for(pilot, lambda: len(screen.buffer) > 0)
        assert not any(line.startswith("[llama3-70b-pretrain-pod-") for line in screen.buffer)
        await pilot.press("ctrl+s")
        saved = list(tmp_path.glob("*.log"))
        assert len(saved) == 1 and saved[0].read_text().splitlines()[0] == screen.buffer[0]
        await pilot.press("escape")
        assert not isinstance(app.screen, LogsScreen)


JOB_YAML = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  namespace: hyperpod-ns-nlp
  labels:
    kueue.x-k8s.io/queue-name: hyperpod-ns-nlp-localqueue
    kueue.x-k8s.io/priority-class: fine-tuning-priority
spec:
  parallelism: 1
  completions: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: train
        image: pytorch/pytorch:2.5.1
        command: ["python", "train.py"]
        resources:
          limits:
            nvidia.com/gpu: "1"
"""


async def test_suspend_priority_cancel_and_quotas(bare_cluster, demo_kubectl) -> None:
    from app.screens.dialogs import ChoiceScreen, ConfirmScreen
    from app.screens.quotas import QuotaScreen

    kubectl = demo_kubectl(bare_cluster)
    kubectl("create", "-f", "-", stdin=JOB_YAML.format(name="ft-a"))
    bare_cluster.advance(5)
    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    async with app.run_test(size=(220, 45)) as pilot:
        table = app.pane("jobs").table
        await wait_for(pilot, lambda: cell_texts(table, "NAME") == ["ft-a"], timeout=20)
        assert cell_texts(table, "STATE")[0] in ("Admitted", "Running")

        await pilot.press("z")
        await wait_for(pilot, lambda: cell_texts(table, "STATE") == ["Suspended"])
        await pilot.press("z")
        await wait_for(pilot, lambda: cell_texts(table, "STATE")[0] != "Suspended")

        await pilot.press("p")
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("home", "enter")  # the highest class first
        await wait_for(pilot, lambda: cell_texts(table, "PRIORITY") == ["inference-priority"])

        await pilot.press("g")
        assert isinstance(app.screen, QuotaScreen)
        await pilot.pause(0.2)
        nlp = next(q for q in app.screen.queues if q.name == "hyperpod-ns-nlp-clusterqueue")
        assert nlp.cohort and any(row.resource == "nvidia.com/gpu" and row.used >= 1 for row in nlp.quota)
        assert len(app.screen.query(".quota-block")) == len(app.screen.queues) == 3
        await pilot.press("escape")

        await pilot.press("ctrl+d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: table.row_count == 0)
    assert "ft-a" not in kubectl("get", "jobs", "-n", "hyperpod-ns-nlp", "-o", "name")


async def test_read_only_refuses_every_job_action(bare_cluster, demo_kubectl) -> None:
    kubectl = demo_kubectl(bare_cluster)
    kubectl("create", "-f", "-", stdin=JOB_YAML.format(name="ft-ro"))
    app = HyperdeskApp(Settings(all_namespaces=True, readonly=True),
                       kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    notes = record_notifications(app)
    async with app.run_test(size=(220, 45)) as pilot:
        table = app.pane("jobs").table
        await wait_for(pilot, lambda: cell_texts(table, "NAME") == ["ft-ro"], timeout=20)
        before = kubectl.json("get", "job", "ft-ro", "-n", "hyperpod-ns-nlp")["metadata"]["resourceVersion"]
        for key in ("z", "p", "ctrl+d", "e"):
            await pilot.press(key)
            await pilot.pause(0.1)
            assert app.screen.query("#panes"), f"{key}: no dialog opens under --readonly"
        messages = [str(n.message) for n in notes]
        assert sum("read-only" in m for m in messages) == 4
    after = kubectl.json("get", "job", "ft-ro", "-n", "hyperpod-ns-nlp")["metadata"]["resourceVersion"]
    assert after == before, "nothing was sent"


async def test_submit_from_the_pane_and_its_bad_input(bare_cluster, demo_kubectl, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # short relative paths: every character is a key press
    good = Path("job.yaml")
    good.write_text(JOB_YAML.format(name="from-pane"))
    broken = Path("broken.yaml")
    broken.write_text("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: [oops\n")
    unknown = Path("unknown.yaml")
    unknown.write_text("apiVersion: example.com/v1\nkind: Frobnicator\nmetadata:\n  name: x\n  namespace: default\n")
    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    notes = record_notifications(app)
    async with app.run_test(size=(220, 45)) as pilot:
        table = app.pane("jobs").table
        await wait_for(pilot, lambda: app.engine is not None)
        for path, expected in ((broken, f"{broken}:5: invalid YAML"), (unknown, "Frobnicator")):
            await pilot.press("colon", *f"submit {path}", "enter")
            await wait_for(pilot, lambda: any(n.title == "Not submitted" for n in notes))
            assert any(expected in str(n.message) for n in notes)
            notes.clear()
        await pilot.press("colon", *f"submit {good}", "enter")
        await wait_for(pilot, lambda: cell_texts(table, "NAME") == ["from-pane"], timeout=20)
        messages = [str(n.message) for n in notes]
        assert any("submitted Job/hyperpod-ns-nlp/from-pane" in m for m in messages)
    assert demo_kubectl(bare_cluster)("get", "jobs", "-A", "-o", "name").split() == ["job.batch/from-pane"]


async def test_new_job_from_a_template_form(bare_cluster, demo_kubectl) -> None:
    from textual.widgets import Input

    from app.screens.dialogs import ChoiceScreen
    from app.screens.job_form import JobFormScreen

    app = HyperdeskApp(Settings(namespace="hyperpod-ns-nlp"),
                       kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and len(app.engine.stores["localqueues"]) > 0)
        await pilot.press("n")
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("home", "enter")  # fine-tune
        form = app.screen
        assert isinstance(form, JobFormScreen)
        assert form.queues == ["hyperpod-ns-nlp-localqueue"]
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, JobFormScreen), "name and image are required: nothing submitted"
        assert any(p.startswith("name") for p in form.problems)
        form.query_one("#f-name", Input).value = "Bad_Name"
        form.query_one("#f-image", Input).value = "pytorch/pytorch:2.5.1"
        await pilot.pause()
        assert any("name" in p for p in form.problems), "an invalid name is caught before anything is sent"
        form.query_one("#f-name", Input).value = "lora-ft"
        form.query_one("#f-queue").value = "hyperpod-ns-nlp-localqueue"
        await pilot.pause()
        assert form.problems == []
        assert form.manifest["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "hyperpod-ns-nlp-localqueue"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "lora-ft" in cell_texts(app.pane("jobs").table, "NAME"), timeout=20)
    assert demo_kubectl(bare_cluster)("get", "jobs", "-n", "hyperpod-ns-nlp", "-o", "name").split() == ["job.batch/lora-ft"]
