"""`hyperdesk get spaces|templates` and `hyperdesk space create|start|stop|delete|edit`, run as a user runs them: a
subprocess against the simulated cluster's kubeconfig, its output and its exit code."""

from __future__ import annotations

import json

import pytest
import yaml

from app.demo.sim import DemoThread
from tests.plugins.tui import closed_port, write_kubeconfig
from tests.reference import REFERENCE
from tests.test_jobs_cli import hyperdesk
from tests.test_spaces_actions import notebook_yaml

pytestmark = pytest.mark.usefixtures("isolated_home")

NLP = "hyperpod-ns-nlp"
JSON_FIELDS = {"name", "namespace", "display_name", "owner", "app_type", "status", "image", "gpus", "mig_profile",
               "idle_minutes", "template"}


def test_get_spaces_lists_the_scenarios_spaces_with_their_status_and_compute(hyperpod_cluster: DemoThread) -> None:
    result = hyperdesk("get", "spaces", "-A", "-o", "json", kubeconfig=hyperpod_cluster.kubeconfig_path)
    assert result.returncode == 0, result.stderr
    items = {i["name"]: i for i in json.loads(result.stdout)}
    assert JSON_FIELDS <= set(items["alice-notebook"])
    alice, bob, carol = items["alice-notebook"], items["bob-mig-lab"], items["carol-code-editor"]
    assert (alice["status"], alice["gpus"], alice["owner"], alice["app_type"]) == (
        "Running", 1, "alice@example.com", "JupyterLab")
    assert (bob["mig_profile"], bob["gpus"], bob["namespace"]) == ("2g.20gb", 0, "hyperpod-ns-vision")
    assert (carol["status"], carol["app_type"], carol["template"]) == (
        "Stopped", "Code Editor", "sagemaker-code-editor-template")
    assert alice["idle_minutes"] == 240 and alice["display_name"] == "Alice's GPU notebook"
    assert isinstance(alice["idle_for_minutes"], int) and alice["idle_for_minutes"] >= 0, "from its JupyterLab"
    assert carol["idle_for_minutes"] is None
    erin = items["erin-lora-debug"]
    assert (erin["status"], erin["reason"], erin["queue"]) == (
        "Preempted", "Workspace preempted due to resource contention", "hyperpod-ns-nlp-localqueue")

    table = hyperdesk("get", "spaces", "-n", "hyperpod-ns-vision", kubeconfig=hyperpod_cluster.kubeconfig_path)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAMESPACE", "NAME", "DISPLAY"]
    assert len(lines) == 2 and "bob-mig-lab" in lines[1] and "1×2g.20gb" in lines[1] and "Running" in lines[1]


def test_get_templates_shows_defaults_images_and_bounds(hyperpod_cluster: DemoThread) -> None:
    result = hyperdesk("get", "templates", "-o", "yaml", kubeconfig=hyperpod_cluster.kubeconfig_path)
    assert result.returncode == 0, result.stderr
    templates = {t["name"]: t for t in yaml.safe_load(result.stdout)}
    jupyter = templates["sagemaker-jupyter-template"]
    assert jupyter["bounds"]["cpu"] == {"min": "1", "max": "16"}
    assert jupyter["storage"] == {"default": "20Gi", "min": "5Gi", "max": "200Gi"}
    assert jupyter["allowed_images"] == ["public.ecr.aws/sagemaker/sagemaker-distribution:2.4-gpu"]
    table = hyperdesk("get", "templates", kubeconfig=hyperpod_cluster.kubeconfig_path)
    assert "cpu 1-16, memory 2Gi-128Gi, gpu 0-1" in table.stdout


def test_create_start_stop_and_delete_from_the_command_line(bare_cluster: DemoThread, demo_kubectl) -> None:
    kubectl = demo_kubectl(bare_cluster)
    kubectl("apply", "--server-side", "-f", str(REFERENCE / "crds" / "workspace.jupyter.org_workspaces.yaml"))
    config = bare_cluster.kubeconfig_path
    dry = hyperdesk("space", "create", "cli-lab", "-n", NLP, "--template", "sagemaker-jupyter-template", "--cpu", "4",
                    "--dry-run", kubeconfig=config)
    assert dry.returncode == 0, dry.stderr
    assert yaml.safe_load(dry.stdout)["spec"]["resources"]["requests"]["cpu"] == "4"
    assert "nothing was created" in dry.stderr
    assert kubectl("get", "workspaces", "-n", NLP, "-o", "name") == ""

    bad = hyperdesk("space", "create", "cli-lab", "-n", NLP, "--template", "sagemaker-jupyter-template",
                    "--mig", "7g.80gb", kubeconfig=config)
    assert bad.returncode == 2 and "MIG profile 7g.80gb: no node offers it" in bad.stderr
    created = hyperdesk("space", "create", "cli-lab", "-n", NLP, "--template", "sagemaker-jupyter-template",
                        "--display-name", "CLI lab", kubeconfig=config)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "space hyperpod-ns-nlp/cli-lab created"
    assert kubectl.json("get", "workspace", "cli-lab", "-n", NLP)["spec"]["displayName"] == "CLI lab"

    stop = hyperdesk("space", "stop", "cli-lab", "-n", NLP, kubeconfig=config)
    assert stop.returncode == 0 and "stopping" in stop.stdout
    assert kubectl.json("get", "workspace", "cli-lab", "-n", NLP)["spec"]["desiredStatus"] == "Stopped"
    start = hyperdesk("space", "start", "cli-lab", "-n", NLP, kubeconfig=config)
    assert start.returncode == 0 and "starting" in start.stdout
    assert kubectl.json("get", "workspace", "cli-lab", "-n", NLP)["spec"]["desiredStatus"] == "Running"

    readonly = hyperdesk("space", "delete", "cli-lab", "-n", NLP, "--readonly", kubeconfig=config)
    assert readonly.returncode == 2 and "read-only" in readonly.stderr
    piped = hyperdesk("space", "delete", "cli-lab", "-n", NLP, kubeconfig=config, stdin="y\n")
    assert piped.returncode == 2 and piped.stderr == ("hyperdesk: error: refusing to delete without --yes when not "
                                                      "on a terminal\n")
    assert kubectl.json("get", "workspace", "cli-lab", "-n", NLP)["metadata"]["name"] == "cli-lab"
    deleted = hyperdesk("space", "delete", "cli-lab", "-n", NLP, "--yes", kubeconfig=config, stdin="")
    assert deleted.returncode == 0 and "home volume is deleted with it" in deleted.stdout
    missing = hyperdesk("space", "stop", "cli-lab", "-n", NLP, kubeconfig=config)
    assert missing.returncode == 2 and "no space 'cli-lab' in namespace hyperpod-ns-nlp" in missing.stderr


def test_usage_errors_and_an_unreachable_cluster_are_one_line(tmp_path) -> None:
    config = write_kubeconfig(tmp_path / "kubeconfig", {"down": f"http://127.0.0.1:{closed_port()}"}, "down")
    no_verb = hyperdesk("space", kubeconfig=config)
    assert no_verb.returncode == 2 and "space needs a verb" in no_verb.stderr
    down = hyperdesk("get", "spaces", kubeconfig=config)
    assert down.returncode == 1 and down.stderr.startswith("hyperdesk: error: cannot reach")
    create = hyperdesk("space", "create", "x", "--cpu", "1", kubeconfig=config)
    assert create.returncode == 1 and len(create.stderr.strip().splitlines()) == 1


def test_edit_changes_a_stopped_kubeflow_notebook_and_refuses_what_it_cannot_do(bare_cluster: DemoThread,
                                                                                demo_kubectl) -> None:
    kubectl = demo_kubectl(bare_cluster)
    config = bare_cluster.kubeconfig_path
    kubectl("create", "-f", "-", stdin=notebook_yaml("nb"))
    kubectl("create", "-f", "-", stdin=notebook_yaml("live", stopped=False))
    kubectl("patch", "notebook", "live", "-n", NLP, "--subresource=status", "--type=merge",
            "-p", '{"status": {"readyReplicas": 1}}')

    def resources(name: str) -> dict:
        return kubectl.json("get", "notebook", name, "-n", NLP)["spec"]["template"]["spec"]["containers"][0]["resources"]

    edited = hyperdesk("space", "edit", "nb", "-n", NLP, "--cpu", "3", "--memory", "12Gi", "--gpus", "0",
                       kubeconfig=config)
    assert edited.returncode == 0, edited.stderr
    assert edited.stdout.strip() == f"space {NLP}/nb resources changed; start it to use them"
    assert resources("nb") == {"requests": {"cpu": "3", "memory": "12Gi"}, "limits": {"cpu": "3", "memory": "12Gi"}}

    before = {n: kubectl.json("get", "notebook", n, "-n", NLP)["metadata"]["resourceVersion"] for n in ("nb", "live")}
    refusals = {
        ("nb", "--mig", "7g.80gb"): "MIG profile 7g.80gb: no node offers it",
        ("nb", "--cpu", "two"): "CPU 'two' is not a quantity",
        ("nb", "--gpus", "-2"): "GPUs: must not be negative",
        ("live", "--cpu", "8"): f"space {NLP}/live is Running: stop it before changing its resources",
        ("ghost", "--cpu", "8"): f"no space 'ghost' in namespace {NLP}",
    }
    for args, expected in refusals.items():
        refused = hyperdesk("space", "edit", *args, "-n", NLP, kubeconfig=config)
        assert refused.returncode == 2, (args, refused.stderr)
        assert expected in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    readonly = hyperdesk("space", "edit", "nb", "-n", NLP, "--cpu", "8", "--readonly", kubeconfig=config)
    assert readonly.returncode == 2 and "read-only" in readonly.stderr and "editing space nb" in readonly.stderr
    assert {n: kubectl.json("get", "notebook", n, "-n", NLP)["metadata"]["resourceVersion"]
            for n in ("nb", "live")} == before, "nothing was changed"


def test_start_stop_and_delete_find_a_kubeflow_notebook_by_its_name(bare_cluster: DemoThread, demo_kubectl) -> None:
    kubectl = demo_kubectl(bare_cluster)
    config = bare_cluster.kubeconfig_path
    kubectl("create", "-f", "-", stdin=notebook_yaml("nb"))

    def annotations() -> dict:
        return kubectl.json("get", "notebook", "nb", "-n", NLP)["metadata"].get("annotations") or {}

    start = hyperdesk("space", "start", "nb", "-n", NLP, kubeconfig=config)
    assert start.returncode == 0, start.stderr
    assert start.stdout.strip() == f"space {NLP}/nb starting (was Stopped)"
    assert "kubeflow-resource-stopped" not in annotations()
    stop = hyperdesk("space", "stop", "nb", "-n", NLP, kubeconfig=config)
    assert stop.returncode == 0 and "stopping" in stop.stdout, stop.stderr
    assert annotations()["kubeflow-resource-stopped"]
    deleted = hyperdesk("space", "delete", "nb", "-n", NLP, "-y", kubeconfig=config, stdin="")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == (f"space {NLP}/nb deleted: its volumes are the Notebook's own claims: deleting "
                                      "the Notebook does not delete them")
    assert kubectl("get", "notebooks", "-n", NLP, "-o", "name") == ""


def on_a_terminal(*args: str, kubeconfig, answer: str) -> tuple[int, str]:
    """`hyperdesk ARGS` with a pseudo-terminal as stdin, stdout and stderr, as a user at a shell runs it: what it
    wrote before and after `answer` was typed, and its exit code."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    main, child = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "app", *args], stdin=child, stdout=child, stderr=child,
                               env={**os.environ, "KUBECONFIG": str(kubeconfig)}, close_fds=True)
    os.close(child)
    said, answered, deadline = b"", False, time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # EIO: every end of the terminal is closed, the process has exited
                    break
                if not chunk:
                    break
                said += chunk
            if not answered and b"[y/N]" in said:
                os.write(main, answer.encode() + b"\n")
                answered = True
            if process.poll() is not None and not ready:
                break
        return process.wait(timeout=30), said.decode().replace("\r\n", "\n")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)


def test_delete_on_a_terminal_says_what_goes_and_asks_first(bare_cluster: DemoThread, demo_kubectl) -> None:
    kubectl = demo_kubectl(bare_cluster)
    config = bare_cluster.kubeconfig_path
    for crd in ("workspaces", "workspacetemplates"):
        kubectl("apply", "--server-side", "-f", str(REFERENCE / "crds" / f"workspace.jupyter.org_{crd}.yaml"))
    created = hyperdesk("space", "create", "asked", "-n", NLP, "--template", "sagemaker-jupyter-template",
                        "--storage", "30Gi", kubeconfig=config)
    assert created.returncode == 0, created.stderr

    code, said = on_a_terminal("space", "delete", "asked", "-n", NLP, kubeconfig=config, answer="")
    assert code == 1 and "Traceback" not in said
    assert (f"delete space {NLP}/asked? its 30Gi home volume is deleted with it and its files are lost (stop keeps "
            "them) [y/N]") in said
    assert f"space {NLP}/asked not deleted" in said
    assert kubectl.json("get", "workspace", "asked", "-n", NLP)["metadata"]["name"] == "asked"

    code, said = on_a_terminal("space", "delete", "asked", "-n", NLP, kubeconfig=config, answer="y")
    assert code == 0 and f"space {NLP}/asked deleted: its 30Gi home volume" in said
    gone = kubectl.run("get", "workspace", "asked", "-n", NLP, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr

