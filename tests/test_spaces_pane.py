"""The Spaces pane in the TUI against real servers: the simulated HyperPod cluster's spaces, the new-space form and
the actions on the bare cluster (with the upstream Workspace CRD applied), read-only, and the Mine filter on a server
that knows who the user is."""

from __future__ import annotations

import re

import pytest
from textual.widgets import Input, Select

from app.cluster.kubeconfig import load_kubeconfig
from app.config import Settings
from app.demo.apiserver import LocalApiServer
from app.screens.spaces import SpacesPane
from app.tui import HyperdeskApp
from tests.plugins.tui import record_notifications, wait_for
from tests.reference import REFERENCE
from tests.test_jobs_pane import cell_texts
from tests.test_spaces_actions import notebook_yaml

pytestmark = pytest.mark.usefixtures("isolated_home")

NLP = "hyperpod-ns-nlp"
CRD = str(REFERENCE / "crds" / "workspace.jupyter.org_workspaces.yaml")


def row_of(table, name: str) -> dict[str, str]:
    labels = [str(c.label) for c in table.columns.values()]
    for i in range(table.row_count):
        cells = [str(c) for c in table.get_row_at(i)]
        if cells[labels.index("NAME")] == name:
            return dict(zip(labels, cells))
    raise AssertionError(f"no row {name}")


async def test_the_pane_lists_spaces_with_status_compute_and_connection(hyperpod_cluster) -> None:
    from app.screens.space_views import SpaceDetailScreen, TemplatesScreen

    app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(hyperpod_cluster.kubeconfig_path)))
    notes = record_notifications(app)
    async with app.run_test(size=(220, 45)) as pilot:
        await pilot.press("1")
        pane = app.pane("spaces")
        assert isinstance(pane, SpacesPane)
        table = pane.table
        await wait_for(pilot, lambda: table.row_count == 5, timeout=20)
        bob = row_of(table, "bob-mig-lab")
        assert (bob["STATUS"], bob["GPUS"], bob["OWNER"], bob["APP"]) == ("Running", "1×2g.20gb", "bob@example.com",
                                                                          "JupyterLab")
        assert bob["QUEUE"] == "hyperpod-ns-vision" and bob["PRIORITY"] == "experimentation-priority"
        assert row_of(table, "carol-code-editor")["STATUS"] == "Stopped"
        assert row_of(table, "erin-lora-debug")["STATUS"] == "Preempted"
        assert row_of(table, "carol-code-editor")["IDLE"] == "240m", "stopped: only the timeout"
        # idle since its JupyterLab's last activity, asked through the API server's service proxy
        await wait_for(pilot, lambda: re.fullmatch(r"\d+m/240m", row_of(table, "alice-notebook")["IDLE"]))

        pane.connections = {"hyperpod-ns-vision/bob-mig-lab": "127.0.0.1:18888 ssh"}
        app._show_pane_state(pane)
        assert row_of(table, "bob-mig-lab")["CONNECTION"] == "127.0.0.1:18888 ssh"

        await pilot.press("N")
        table.move_cursor(row=cell_texts(table, "NAME").index("bob-mig-lab"))
        await pilot.press("d")
        assert isinstance(app.screen, SpaceDetailScreen)
        await wait_for(pilot, lambda: "Access URL" in str(app.screen.query_one("#detail-summary").render()))
        summary = str(app.screen.query_one("#detail-summary").render())
        assert "Access URL https://spaces.demo.hyperpod.local/workspaces/hyperpod-ns-vision/bob-mig-lab/" in summary
        assert "Template bounds (jupyter-k8s-system/sagemaker-jupyter-template): cpu 1–16" in summary
        conditions = app.screen.query_one("#detail-conditions")
        assert any("ResourcesReady" in str(conditions.get_row_at(i)) for i in range(conditions.row_count))
        pods = app.screen.query_one("#detail-pods")
        assert pods.row_count == 1 and str(pods.get_row_at(0)[1]).startswith("hyperpod-i-")
        await pilot.press("escape", "t")
        await wait_for(pilot, lambda: isinstance(app.screen, TemplatesScreen))
        await wait_for(pilot, lambda: app.screen.query_one("#templates-table").row_count == 2)
        await pilot.press("escape", "m")
        await wait_for(pilot, lambda: any("did not say who you are" in str(n.message) for n in notes))
        assert table.row_count == 5, "anonymous: every space is shown"


async def test_new_space_form_checks_bounds_then_creates_and_the_actions_follow(bare_cluster, demo_kubectl) -> None:
    from app.screens.dialogs import ConfirmScreen
    from app.screens.space_views import EditResourcesScreen, SpaceFormScreen

    kubectl = demo_kubectl(bare_cluster)
    kubectl("apply", "--server-side", "-f", CRD)
    kubectl("create", "-f", "-", stdin=f"""
apiVersion: workspace.jupyter.org/v1alpha1
kind: Workspace
metadata: {{name: taken, namespace: {NLP}}}
spec: {{displayName: Taken, desiredStatus: Stopped}}
""")
    app = HyperdeskApp(Settings(namespace=NLP), kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.press("1")
        await wait_for(pilot, lambda: app.engine is not None and len(app.engine.stores["nodes"]) == 8, timeout=20)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, SpaceFormScreen))
        form = app.screen
        assert sorted(form.templates) == ["jupyter-k8s-system/sagemaker-code-editor-template",
                                          "jupyter-k8s-system/sagemaker-jupyter-template"]
        assert isinstance(form, SpaceFormScreen)
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SpaceFormScreen) and "name: required" in form.problems
        form.query_one("#f-name", Input).value = "pane-lab"
        form.query_one("#f-cpu", Input).value = "64"
        form.query_one("#f-mig", Select).value = "3g.40gb"
        form.query_one("#f-gpus", Input).value = "1"
        await pilot.pause()
        assert "CPU 64 is above the template's maximum 16" in form.problems
        assert "GPUs: ask for whole GPUs or a MIG profile, not both" in form.problems
        form.query_one("#f-cpu", Input).value = "4"
        form.query_one("#f-gpus", Input).value = "0"
        form.query_one("#f-queue", Select).value = f"{NLP}-localqueue"
        await pilot.pause()
        assert form.problems == []
        assert form.manifest["spec"]["resources"]["limits"] == {"nvidia.com/mig-3g.40gb": "1"}
        assert form.manifest["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == f"{NLP}-localqueue"
        form.query_one("#f-name", Input).value = "taken"
        await pilot.press("ctrl+s")  # the server's checks run while the form is open, which stays open on a refusal
        await wait_for(pilot, lambda: form.problems == [
            f"a space named 'taken' already exists in {NLP} (nothing was created)"], timeout=20)
        assert app.screen is form and "already exists" in str(form.query_one("#form-problems").render())
        form.query_one("#f-name", Input).value = "pane-lab"
        await pilot.press("ctrl+s")
        table = app.pane("spaces").table
        await wait_for(pilot, lambda: not isinstance(app.screen, SpaceFormScreen), timeout=20)
        await wait_for(pilot, lambda: sorted(cell_texts(table, "NAME")) == ["pane-lab", "taken"], timeout=20)
        assert kubectl.json("get", "workspace", "pane-lab", "-n", NLP)["spec"]["resources"]["requests"]["cpu"] == "4"
        for _ in range(60):
            if row_of(table, "pane-lab")["STATUS"] == "Running":
                break
            bare_cluster.advance(2)
            await pilot.pause(0.1)
        assert row_of(table, "pane-lab")["STATUS"] == "Running"

        table.move_cursor(row=cell_texts(table, "NAME").index("pane-lab"))
        await pilot.press("d")  # a namespaced view: the template's bounds come from jupyter-k8s-system all the same
        await wait_for(pilot, lambda: "Template bounds (jupyter-k8s-system/sagemaker-code-editor-template): cpu 1–16"
                       in str(app.screen.query_one("#detail-summary").render()))
        await pilot.press("escape")

        await pilot.press("s")
        await wait_for(pilot, lambda: row_of(table, "pane-lab")["STATUS"] in ("Stopping", "Stopped"))
        assert kubectl.json("get", "workspace", "pane-lab", "-n", NLP)["spec"]["desiredStatus"] == "Stopped"
        bare_cluster.advance(1)
        await wait_for(pilot, lambda: row_of(table, "pane-lab")["STATUS"] == "Stopped")

        await pilot.press("e")  # the compute of a stopped space
        await wait_for(pilot, lambda: isinstance(app.screen, EditResourcesScreen))
        edit = app.screen
        assert edit.query_one("#e-cpu", Input).value == "4"
        edit.query_one("#e-cpu", Input).value = "64"
        await wait_for(pilot, lambda: "CPU 64 is above the template's maximum 16" in edit.problems)
        edit.query_one("#e-cpu", Input).value = "8"
        edit.query_one("#e-mig", Select).value = "1g.10gb"
        await wait_for(pilot, lambda: edit.problems == [])
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: row_of(table, "pane-lab")["GPUS"] == "1×1g.10gb", timeout=20)
        assert not isinstance(app.screen, EditResourcesScreen)
        assert row_of(table, "pane-lab")["COMPUTE"].startswith("8 CPU")

        await pilot.press("ctrl+d")
        assert isinstance(app.screen, ConfirmScreen)
        question = str(app.screen.query_one("#confirm-question").render())
        assert "? Its 20Gi home volume is deleted with it and its files are lost (stop keeps them)" in question
        await pilot.press("y")
        await wait_for(pilot, lambda: cell_texts(table, "NAME") == ["taken"])
    assert kubectl("get", "workspaces", "-n", NLP, "-o", "name").strip() == "workspace.workspace.jupyter.org/taken"


async def test_read_only_refuses_every_space_action(bare_cluster, demo_kubectl) -> None:
    kubectl = demo_kubectl(bare_cluster)
    kubectl("create", "-f", "-", stdin="""
apiVersion: workspace.jupyter.org/v1alpha1
kind: Workspace
metadata: {name: ro-lab, namespace: hyperpod-ns-nlp}
spec: {displayName: RO, desiredStatus: Stopped}
""")
    app = HyperdeskApp(Settings(all_namespaces=True, readonly=True),
                       kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    notes = record_notifications(app)
    async with app.run_test(size=(200, 45)) as pilot:
        await pilot.press("1")
        table = app.pane("spaces").table
        await wait_for(pilot, lambda: cell_texts(table, "NAME") == ["ro-lab"], timeout=20)
        before = kubectl.json("get", "workspace", "ro-lab", "-n", NLP)["metadata"]["resourceVersion"]
        for key in ("n", "s", "ctrl+d", "e"):
            await pilot.press(key)
            await pilot.pause(0.1)
            assert app.screen.query("#panes"), f"{key}: no dialog opens under --readonly"
        assert sum("read-only" in str(n.message) for n in notes) == 4
    assert kubectl.json("get", "workspace", "ro-lab", "-n", NLP)["metadata"]["resourceVersion"] == before


def workspace(name: str, owner: str) -> dict:
    return {"apiVersion": "workspace.jupyter.org/v1alpha1", "kind": "Workspace",
            "metadata": {"name": name, "namespace": "team-a", "annotations": {"workspace.jupyter.org/created-by": owner}},
            "spec": {"displayName": name, "desiredStatus": "Stopped"}}


async def test_mine_shows_the_users_own_spaces_by_default_and_m_shows_all() -> None:
    access = {"anonymous": False, "users": [
        {"name": "alice", "token": "alice-token", "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]},
    ]}
    async with LocalApiServer(access=access, user="alice") as server:
        server.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        for name, owner in (("alice-1", "alice"), ("bob-1", "bob"), ("alice-2", "alice")):
            server.store.create(workspace(name, owner))
        app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(server.kubeconfig_path)))
        async with app.run_test(size=(200, 40)) as pilot:
            await pilot.press("1")
            pane = app.pane("spaces")
            await wait_for(pilot, lambda: pane.user == "alice" and pane.table.row_count == 2, timeout=20)
            assert sorted(cell_texts(pane.table, "NAME")) == ["alice-1", "alice-2"]
            notice = str(pane.query_one(".empty").render())
            assert "Mine (alice): 2 of 3 spaces" in notice
            await pilot.press("m")
            await wait_for(pilot, lambda: pane.table.row_count == 3)
            await pilot.press("m")
            await wait_for(pilot, lambda: pane.table.row_count == 2)


def test_the_spaces_keys_can_be_remapped() -> None:
    app = HyperdeskApp(Settings(keys={"spaces.start_stop": "S", "space_form.submit": "ctrl+enter",
                                      "space_detail.yaml": "Y"}), kubeconfig=None)
    assert not any("unknown binding id" in e for e in app.startup_errors)
    unknown = HyperdeskApp(Settings(keys={"spaces.nope": "x"}), kubeconfig=None)
    assert any("unknown binding id 'spaces.nope'" in e for e in unknown.startup_errors)


async def test_identity_and_templates_are_asked_again_when_the_namespace_changes() -> None:
    access = {"anonymous": False, "users": [
        {"name": "alice", "token": "alice-token", "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]},
    ]}
    async with LocalApiServer(access=access, user="alice") as server:
        server.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        server.store.create(workspace("alice-1", "alice"))
        app = HyperdeskApp(Settings(all_namespaces=True), kubeconfig=load_kubeconfig(str(server.kubeconfig_path)))
        async with app.run_test(size=(200, 40)) as pilot:
            await pilot.press("1")
            pane = app.pane("spaces")
            await wait_for(pilot, lambda: pane.user == "alice" and pane.table.row_count == 1, timeout=20)
            assert pane.templates == {}
            server.store.create({"apiVersion": "workspace.jupyter.org/v1alpha1", "kind": "WorkspaceTemplate",
                                 "metadata": {"name": "team-template", "namespace": "team-a"},
                                 "spec": {"displayName": "Team", "defaultImage": "img:1"}})
            app._set_namespace("team-a")
            await wait_for(pilot, lambda: "team-a/team-template" in pane.templates, timeout=20)
            assert pane.user == "alice" and pane.table.row_count == 1


async def test_a_custom_image_typed_for_one_template_does_not_block_another() -> None:
    from textual.app import App

    from app.model.spaces import template_info
    from app.screens.space_views import SpaceFormScreen

    def template(name: str, custom: bool) -> object:
        return template_info({"metadata": {"name": name, "namespace": "jupyter-k8s-system"},
                              "spec": {"displayName": name, "defaultImage": f"{name}:1", "allowCustomImages": custom}})

    class FormApp(App[None]):
        def on_mount(self) -> None:
            self.push_screen(SpaceFormScreen([template("open", True), template("closed", False)], namespace="team-a",
                                             namespaces=["team-a"], gpu_offer=None, queues={}, priorities=[]))

    app = FormApp()
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SpaceFormScreen))
        form = app.screen
        form.query_one("#f-name", Input).value = "lab"
        form.query_one("#f-template", Select).value = "jupyter-k8s-system/open"
        await wait_for(pilot, lambda: form.query_one("#f-custom-image").display)
        form.query_one("#f-custom-image", Input).value = "me/custom:1"
        await wait_for(pilot, lambda: form.manifest is not None and form.manifest["spec"]["image"] == "me/custom:1")
        form.query_one("#f-template", Select).value = "jupyter-k8s-system/closed"
        await wait_for(pilot, lambda: not form.query_one("#f-custom-image").display)
        await wait_for(pilot, lambda: form.manifest is not None)
        assert form.problems == [] and form.manifest["spec"]["image"] == "closed:1"
        assert form.query_one("#f-custom-image", Input).value == ""


async def test_the_edit_form_opens_for_a_space_without_a_mig_slice_and_checks_the_bounds() -> None:
    from textual.app import App

    from app.model.spaces import template_info
    from app.screens.space_views import EditResourcesScreen

    bounded = template_info({"metadata": {"name": "t", "namespace": "jupyter-k8s-system"},
                             "spec": {"resourceBounds": {"resources": {"cpu": {"max": "16"}}}}})
    sent: list[dict] = []

    async def submit(values: dict) -> str | None:
        sent.append(values)
        return None

    class EditApp(App[None]):
        def on_mount(self) -> None:
            self.push_screen(EditResourcesScreen("Resources", cpu="2", memory="8Gi", gpus=0, mig_profile=None,
                                                 template=bounded, gpu_offer={"nvidia.com/gpu": 8}, submit=submit))

    app = EditApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, EditResourcesScreen))
        edit = app.screen
        edit.query_one("#e-cpu", Input).value = "32"
        await wait_for(pilot, lambda: edit.problems == ["CPU 32 is above the template's maximum 16"])
        await pilot.press("ctrl+s")
        assert sent == [] and app.screen is edit
        edit.query_one("#e-cpu", Input).value = "6"
        edit.query_one("#e-gpus", Input).value = "1"
        await wait_for(pilot, lambda: edit.problems == [])
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, EditResourcesScreen))
    assert sent == [{"cpu": "6", "memory": "8Gi", "gpus": 1, "mig_profile": ""}]


async def test_e_on_a_stopped_kubeflow_notebook_changes_its_compute(bare_cluster, demo_kubectl) -> None:
    from app.screens.space_views import EditResourcesScreen

    kubectl = demo_kubectl(bare_cluster)
    kubectl("create", "-f", "-", stdin=notebook_yaml("nb"))
    kubectl("create", "-f", "-", stdin=notebook_yaml("waking", stopped=False))
    app = HyperdeskApp(Settings(namespace=NLP), kubeconfig=load_kubeconfig(str(bare_cluster.kubeconfig_path)))
    notes = record_notifications(app)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.press("1")
        table = app.pane("spaces").table
        await wait_for(pilot, lambda: sorted(cell_texts(table, "NAME")) == ["nb", "waking"], timeout=20)
        await wait_for(pilot, lambda: app.engine is not None and len(app.engine.stores["nodes"]) == 8, timeout=20)
        assert (row_of(table, "nb")["STATUS"], row_of(table, "waking")["STATUS"]) == ("Stopped", "Starting")

        table.move_cursor(row=cell_texts(table, "NAME").index("waking"))
        await pilot.press("e")
        await wait_for(pilot, lambda: any("waking is Starting: stop it (s) before changing its resources"
                                          in str(n.message) for n in notes))
        assert not isinstance(app.screen, EditResourcesScreen)

        table.move_cursor(row=cell_texts(table, "NAME").index("nb"))
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditResourcesScreen))
        edit = app.screen
        assert (edit.query_one("#e-cpu", Input).value, edit.query_one("#e-memory", Input).value,
                edit.query_one("#e-gpus", Input).value) == ("1", "4Gi", "1")
        assert not edit.query_one("#form-fields").border_subtitle, "a Notebook has no template bounds to show"
        edit.query_one("#e-cpu", Input).value = "lots"
        await wait_for(pilot, lambda: "CPU 'lots' is not a quantity (like 2, 500m, 16Gi)" in edit.problems)
        edit.query_one("#e-cpu", Input).value = "6"
        edit.query_one("#e-gpus", Input).value = "0"
        edit.query_one("#e-mig", Select).value = "2g.20gb"
        await wait_for(pilot, lambda: edit.problems == [])
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: row_of(table, "nb")["GPUS"] == "1×2g.20gb", timeout=20)
        assert not isinstance(app.screen, EditResourcesScreen)
        assert row_of(table, "nb")["COMPUTE"].startswith("6 CPU 4Gi")
        assert any("nb's resources changed; start it (s) to use them" in str(n.message) for n in notes)
    stored = kubectl.json("get", "notebook", "nb", "-n", NLP)
    assert stored["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "6", "memory": "4Gi", "nvidia.com/mig-2g.20gb": "1"},
        "limits": {"cpu": "6", "memory": "8Gi", "nvidia.com/mig-2g.20gb": "1"}}
    assert "kubeflow-resource-stopped" in stored["metadata"]["annotations"]


async def test_a_number_the_forms_cannot_read_is_a_problem_not_a_silent_default() -> None:
    """GPUs and idle minutes typed as something that is not a whole number ('-', '+', '1_': what an integer field
    lets through) say so in the form and keep ctrl+s from sending, instead of becoming 0 or the template's value."""
    from textual.app import App

    from app.model.spaces import template_info
    from app.screens.space_views import EditResourcesScreen, SpaceFormScreen

    template = template_info({"metadata": {"name": "t", "namespace": "jupyter-k8s-system"},
                              "spec": {"displayName": "t", "defaultImage": "t:1"}})
    sent: list[dict] = []

    async def submit(values: dict) -> str | None:
        sent.append(values)
        return None

    class EditApp(App[None]):
        def on_mount(self) -> None:
            self.push_screen(EditResourcesScreen("Resources", cpu="2", memory="8Gi", gpus=2, mig_profile=None,
                                                 template=template, gpu_offer={"nvidia.com/gpu": 8}, submit=submit))

    app = EditApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, EditResourcesScreen))
        edit = app.screen
        edit.query_one("#e-gpus", Input).focus()
        await pilot.press("end", "backspace", "minus")
        await wait_for(pilot, lambda: edit.problems == ["GPUs '-' is not a whole number"])
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert sent == [] and app.screen is edit
        await pilot.press("backspace", "plus", "3")
        await wait_for(pilot, lambda: edit.problems == [])
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, EditResourcesScreen))
    assert sent == [{"cpu": "2", "memory": "8Gi", "gpus": 3, "mig_profile": ""}]

    class FormApp(App[None]):
        def on_mount(self) -> None:
            self.push_screen(SpaceFormScreen([template], namespace="team-a", namespaces=["team-a"], gpu_offer=None,
                                             queues={}, priorities=[]))

    app = FormApp()
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SpaceFormScreen))
        form = app.screen
        form.query_one("#f-name", Input).value = "lab"
        await wait_for(pilot, lambda: form.manifest is not None)
        form.query_one("#f-gpus", Input).focus()
        await pilot.press("1", "underscore")
        form.query_one("#f-idle", Input).focus()
        await pilot.press("plus")
        await wait_for(pilot, lambda: form.problems == ["GPUs '1_' is not a whole number",
                                                        "idle minutes '+' is not a whole number"])
        assert form.manifest is None
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is form
