"""`hyperdesk get jobs|queues`, `submit`, `cancel`, `suspend`, `resume`, `priority`, `edit`, `logs` and `template`,
run as a user runs them: a subprocess against the simulated cluster's kubeconfig, its output and its exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.demo.apiserver import LocalApiServer
from app.demo.sim import DemoThread
from tests.plugins.tui import closed_port, write_kubeconfig
from tests.reference import REFERENCE

pytestmark = pytest.mark.usefixtures("isolated_home")

SAMPLES = REFERENCE / "samples" / "queue"
NLP = "hyperpod-ns-nlp"
IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
JSON_FIELDS = {"name", "namespace", "kind", "queue", "priority", "state", "position", "gpus", "mig", "pods", "restarts",
               "age_seconds"}


def hyperdesk(*args: str, kubeconfig: Path | None = None, stdin: str | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    extra = {"KUBECONFIG": str(kubeconfig)} if kubeconfig else {}
    result = subprocess.run([sys.executable, "-m", "app", *args], input=stdin, capture_output=True, text=True,
                            timeout=60, env={**os.environ, **extra, **(env or {})})
    assert "Traceback" not in result.stderr, result.stderr
    return result


def started(*args: str, kubeconfig: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    extra = {"KUBECONFIG": str(kubeconfig)} if kubeconfig else {}
    return subprocess.Popen([sys.executable, "-m", "app", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **extra, **(env or {})})


def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=60)
    assert "Traceback" not in err, err
    return process.returncode, out, err


def together(*commands: tuple[str, ...], kubeconfig: Path) -> list[str]:
    """Run independent commands at once (the machine has two cores); each must succeed. Their outputs, in order."""
    processes = [started(*args, kubeconfig=kubeconfig) for args in commands]
    outputs = []
    for args, process in zip(commands, processes):
        code, out, err = finished(process)
        assert code == 0, (args, err)
        outputs.append(out)
    return outputs


def ok(*args: str, kubeconfig: Path, stdin: str | None = None) -> str:
    result = hyperdesk(*args, kubeconfig=kubeconfig, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


def jobs(kubeconfig: Path, *scope: str) -> dict[str, dict[str, Any]]:
    listed = json.loads(ok("get", "jobs", "-o", "json", *scope, kubeconfig=kubeconfig))
    return {job["name"]: job for job in listed}


def job_yaml(name: str, *, gpus: int = 8, command: str = "sleep 3600") -> str:
    return yaml.safe_dump({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": IMAGE, "command": ["/bin/sh", "-c", command],
            "resources": {"requests": {"nvidia.com/gpu": str(gpus)}, "limits": {"nvidia.com/gpu": str(gpus)}}}]}}}})


# --- the upstream samples ------------------------------------------------------------------------------------------

def test_the_upstream_queue_samples_submit_and_run(bare_cluster: DemoThread, tmp_path: Path) -> None:
    kubeconfig = bare_cluster.kubeconfig_path
    single, shared = together(("submit", str(SAMPLES / "single-clusterqueue-setup.yaml")),
                              ("submit", str(SAMPLES / "shared-quota-setup.yaml")), kubeconfig=kubeconfig)
    assert single.splitlines() == ["ResourceFlavor/default-flavor created", "ClusterQueue/cluster-queue created",
                                   "LocalQueue/default/user-queue created"]
    assert shared.splitlines()[-1] == "LocalQueue/default/team-queue created"
    checked = ok("submit", "--dry-run", str(SAMPLES / "sample-pytorchjob.yaml"), kubeconfig=kubeconfig)
    assert checked == "PyTorchJob/default/pytorch-simple validated (server dry run)\n"
    assert jobs(kubeconfig) == {}, "a dry run creates nothing"
    created, pytorch = together(("submit", str(SAMPLES / "sample-job.yaml")),
                                ("submit", str(SAMPLES / "sample-pytorchjob.yaml")), kubeconfig=kubeconfig)
    assert created.startswith("Job/default/sample-job-") and created.endswith(" created\n"), "generateName: the server's name"
    assert pytorch == "PyTorchJob/default/pytorch-simple created\n"

    bare_cluster.advance(30)
    listed, queued = together(("get", "jobs", "-o", "json"), ("get", "queues", "-o", "yaml"), kubeconfig=kubeconfig)
    listed = {job["name"]: job for job in json.loads(listed)}
    sample = listed[created.split("/")[2].split()[0]]
    assert set(sample) >= JSON_FIELDS
    assert (sample["kind"], sample["queue"], sample["state"], sample["gpus"], sample["position"]) == (
        "Job", "user-queue", "Running", 0, None)
    assert len(sample["pods"]) == 3 and isinstance(sample["age_seconds"], int)
    assert (listed["pytorch-simple"]["state"], sorted(listed["pytorch-simple"]["pods"])) == (
        "Running", ["pytorch-simple-master-0", "pytorch-simple-worker-0"])
    queues = {q["name"]: q for q in yaml.safe_load(queued)}
    assert list(queues) == ["cluster-queue", "team-cluster-queue"], "the queues the default namespace submits to"
    assert queues["cluster-queue"]["admitted"] == 2
    assert queues["cluster-queue"]["local_queues"] == [{"namespace": "default", "name": "user-queue", "pending": 0,
                                                        "admitted": 2}]
    cpu = next(q for q in queues["cluster-queue"]["quota"] if q["resource"] == "cpu")
    assert (cpu["flavor"], cpu["nominal"], cpu["used"]) == ("default-flavor", 9, 5)

    bare_cluster.advance(60)
    assert jobs(kubeconfig)[sample["name"]]["state"] == "Succeeded", "the sample sleeps 60 s, then completes"


# --- the HyperPod scenario -----------------------------------------------------------------------------------------

def test_get_jobs_on_hyperpod_shows_every_kind_state_position_and_restart(hyperpod_cluster: DemoThread) -> None:
    kubeconfig = hyperpod_cluster.kubeconfig_path
    listed, table, previous, both = together(
        ("get", "jobs", "-o", "json", "-A"), ("get", "jobs", "-n", "hyperpod-ns-vision"),
        ("logs", "mistral-7b-sft", "-n", NLP, "--pod", "worker-0", "--previous"),
        ("logs", "hyperpodpytorchjob/llama3-70b-pretrain", "-n", "hyperpod-ns-research", "--tail", "3"),
        kubeconfig=kubeconfig)
    listed = {job["name"]: job for job in json.loads(listed)}
    assert {job["kind"] for job in listed.values()} == {"HyperPodPyTorchJob", "PyTorchJob", "Job", "JobSet"}
    for job in listed.values():
        assert set(job) >= JSON_FIELDS
        assert isinstance(job["gpus"], int) and isinstance(job["mig"], dict) and isinstance(job["pods"], list)
        assert isinstance(job["age_seconds"], int) and job["position"] is None or job["state"] == "Queued"
    pretrain = listed["llama3-70b-pretrain"]
    assert (pretrain["kind"], pretrain["state"], pretrain["gpus"], pretrain["priority"]) == (
        "HyperPodPyTorchJob", "Running", 16, "training-priority")
    assert pretrain["pods"] == ["llama3-70b-pretrain-pod-0", "llama3-70b-pretrain-pod-1"]
    assert listed["whisper-distill"]["mig"] == {"3g.40gb": 2} and listed["whisper-distill"]["gpus"] == 0
    waiting = listed["sam2-hiera-pretrain"]
    assert (waiting["state"], waiting["position"], waiting["pods"]) == ("Queued", 0, [])
    assert "insufficient quota for nvidia.com/gpu" in waiting["reason"]
    assert listed["mistral-7b-sft"]["restarts"] == 1, "its worker crashed once on an NCCL timeout and restarted"

    table = table.splitlines()
    assert table[0].split() == ["NAMESPACE", "NAME", "KIND", "QUEUE", "PRIORITY", "STATE", "POS", "GPUS", "PODS",
                                "RESTARTS", "AGE", "REASON"]
    assert [line.split()[1] for line in table[1:]] == ["sam2-hiera-pretrain", "vit-h-finetune"]
    queued = table[1].split()
    assert queued[5:8] == ["Queued", "0", "24"] and table[1].endswith("…")

    assert "Watchdog caught collective operation timeout" in previous
    assert previous.splitlines()[-1].startswith("ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: 1)")
    both = both.splitlines()
    assert len(both) == 6 and {line.split()[0] for line in both} == {"[llama3-70b-pretrain-pod-0]",
                                                                     "[llama3-70b-pretrain-pod-1]"}
    assert any(" step " in line and " | loss " in line for line in both)
    none = hyperdesk("logs", "sam2-hiera-pretrain", "-n", "hyperpod-ns-vision", kubeconfig=kubeconfig)
    assert none.returncode == 1
    assert none.stderr.startswith("hyperdesk: error: PyTorchJob hyperpod-ns-vision/sam2-hiera-pretrain has no pods "
                                  "(it is Queued: couldn't assign flavors")


# --- actions -------------------------------------------------------------------------------------------------------

def test_preemption_from_a_template_submitted_through_stdin(bare_cluster: DemoThread) -> None:
    kubeconfig = bare_cluster.kubeconfig_path
    rendered = ok("template", "ddp", "--set", "name=mistral-sft", "--set", f"image={IMAGE}", "--set", "nodes=2",
                  "--set", "gpus=8", "--set", f"queue={NLP}-localqueue", "--set", "priority=fine-tuning-priority",
                  "-n", NLP, kubeconfig=kubeconfig)
    assert "kind: HyperPodPyTorchJob" in rendered, "the cluster serves HyperPodPyTorchJob"
    assert ok("submit", "-", "-n", NLP, stdin=rendered, kubeconfig=kubeconfig) == \
        f"HyperPodPyTorchJob/{NLP}/mistral-sft created\n"
    bare_cluster.advance(30)
    assert jobs(kubeconfig, "-n", NLP)["mistral-sft"]["state"] == "Running"

    urgent = ok("submit", "-", "-n", NLP, "--queue", f"{NLP}-localqueue", "--priority", "experimentation-priority",
                stdin=job_yaml("urgent-eval"), kubeconfig=kubeconfig)
    assert urgent == f"Job/{NLP}/urgent-eval created\n"
    bare_cluster.advance(1)
    listed, table = together(("get", "jobs", "-n", NLP, "-o", "json"), ("get", "jobs", "-n", NLP), kubeconfig=kubeconfig)
    listed = {job["name"]: job for job in json.loads(listed)}
    victim = listed["mistral-sft"]
    assert victim["state"] == "Preempted" and victim["pods"] == []
    assert victim["reason"].startswith("InClusterQueue: Preempted to accommodate a workload (UID: ")
    assert listed["urgent-eval"]["priority"] == "experimentation-priority"
    assert "Preempted" in next(line for line in table.splitlines() if "mistral-sft" in line)


def test_suspend_resume_priority_cancel_and_follow(bare_cluster: DemoThread) -> None:
    kubeconfig = bare_cluster.kubeconfig_path
    queue = ("--queue", f"{NLP}-localqueue")
    ok("submit", "-", "-n", NLP, *queue, "--priority", "fine-tuning-priority",
       stdin=job_yaml("tune", command="python sft.py --max-steps 900"), kubeconfig=kubeconfig)
    bare_cluster.advance(25)
    suspended = ok("suspend", "tune", "-n", NLP, kubeconfig=kubeconfig)
    assert suspended.startswith(f"Job {NLP}/tune suspended (Workload {NLP}/job-tune-") and \
        suspended.endswith(" spec.active=false)\n")
    bare_cluster.advance(2)
    tune = jobs(kubeconfig, "-n", NLP)["tune"]
    assert (tune["state"], tune["pods"]) == ("Suspended", []), "its pods are gone"
    assert ok("resume", "job/tune", "-n", NLP, kubeconfig=kubeconfig).startswith(f"Job {NLP}/tune resumed (")
    assert ok("priority", "tune", "training-priority", "-n", NLP, kubeconfig=kubeconfig) == \
        f"Job {NLP}/tune priority is now training-priority (70)\n"
    bare_cluster.advance(40)
    tune = jobs(kubeconfig, "-A")["tune"]
    assert (tune["state"], tune["priority"]) == ("Running", "training-priority")

    follower = started("logs", "tune", "-n", NLP, "-f", "--tail", "1", "--timestamps", kubeconfig=kubeconfig)
    try:
        first = follower.stdout.readline()
        assert first[:4].isdigit() and " | loss " in first, first
        bare_cluster.advance(4)
        assert " | loss " in follower.stdout.readline(), "a new step, as it is written"
        assert ok("cancel", "tune", "-n", NLP, kubeconfig=kubeconfig) == f"Job {NLP}/tune cancelled (deleted)\n"
        bare_cluster.advance(1)
        code, _, err = finished(follower)
        assert (code, err) == (0, ""), "following ends when the pod is deleted"
    finally:
        follower.kill()
    again = started("cancel", "tune", "-n", NLP, kubeconfig=kubeconfig)
    assert jobs(kubeconfig, "-n", NLP) == {}
    assert finished(again) == (2, "", f"hyperdesk: error: no job 'tune' in namespace {NLP}\n")


def test_edit_applies_what_the_editor_saved(bare_cluster: DemoThread, tmp_path: Path) -> None:
    kubeconfig = bare_cluster.kubeconfig_path
    ok("submit", "-", "-n", NLP, "--queue", f"{NLP}-localqueue", stdin=job_yaml("labelled"), kubeconfig=kubeconfig)
    editor = tmp_path / "editor.py"
    editor.write_text("import sys, yaml\npath = sys.argv[1]\ndoc = yaml.safe_load(open(path))\n"
                      "doc['metadata']['labels']['owner'] = 'alice'\nopen(path, 'w').write(yaml.safe_dump(doc))\n")
    edited = hyperdesk("edit", "labelled", "-n", NLP, kubeconfig=kubeconfig, env={"EDITOR": f"{sys.executable} {editor}"})
    assert (edited.returncode, edited.stdout) == (0, f"Job/{NLP}/labelled edited\n"), edited.stderr
    unchanged = started("edit", "labelled", "-n", NLP, kubeconfig=kubeconfig, env={"EDITOR": "true"})
    refused = started("edit", "labelled", "-n", NLP, kubeconfig=kubeconfig, env={"EDITOR": "false"})
    assert finished(unchanged) == (0, "Edit cancelled, no changes made.\n", "")
    assert finished(refused) == (1, "", "hyperdesk: error: the editor exited with 1; nothing was applied\n")
    labels = json.loads(subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "job", "labelled", "-n", NLP,
                                        "-o", "json"], capture_output=True, text=True, check=True).stdout)["metadata"]["labels"]
    assert labels["owner"] == "alice" and labels["kueue.x-k8s.io/queue-name"] == f"{NLP}-localqueue"


# --- refusals and bad input ----------------------------------------------------------------------------------------

def test_read_only_refuses_every_change_and_sends_nothing(tmp_path: Path) -> None:
    # Nothing listens behind this kubeconfig: any request would fail with exit 1 ("cannot reach").
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"c": f"http://127.0.0.1:{closed_port()}"}, current="c")
    manifest = tmp_path / "job.yaml"
    manifest.write_text(job_yaml("x"))
    commands = {
        ("submit", str(manifest)): f"submitting {manifest}",
        ("cancel", "x"): "cancelling x",
        ("suspend", "pytorchjob/x"): "suspending pytorchjob/x",
        ("resume", "x"): "resuming x",
        ("priority", "x", "training-priority"): "changing the priority of x",
        ("edit", "x"): "editing x",
    }
    runs = {args: started(*args, "--readonly", kubeconfig=kubeconfig) for args in commands}
    runs[("submit", "env")] = started("submit", str(manifest), kubeconfig=kubeconfig, env={"HYPERDESK_READONLY": "true"})
    for args, process in runs.items():
        code, out, err = finished(process)
        doing = commands.get(args, f"submitting {manifest}")
        assert (code, out, err) == (2, "", f"hyperdesk: error: hyperdesk is read-only (--readonly): not {doing}\n")


def test_bad_input_is_one_clear_line_a_nonzero_exit_and_nothing_created(bare_cluster: DemoThread, tmp_path: Path) -> None:
    kubeconfig = bare_cluster.kubeconfig_path
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: a\n spec: {}\n")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(job_yaml("fine") + "---\napiVersion: example.com/v1\nkind: Frob\nmetadata: {name: f}\n")
    bad_name = tmp_path / "bad-name.yaml"
    bad_name.write_text(job_yaml("Bad_Name"))
    unqueued = tmp_path / "unqueued.yaml"
    unqueued.write_text(job_yaml("fine"))
    cases = [
        (("submit", str(broken)), 2, f"hyperdesk: error: {broken}:5: invalid YAML: "),
        (("submit", str(unknown), "-n", NLP, "--queue", f"{NLP}-localqueue"), 2,
         "hyperdesk: error: unknown kind Frob: the cluster does not serve the API example.com/v1\n"),
        (("submit", str(bad_name), "-n", NLP, "--queue", f"{NLP}-localqueue"), 2,
         f'hyperdesk: error: the server rejected Job {NLP}/Bad_Name: Job.batch "Bad_Name" is invalid: metadata.name: '),
        (("submit", str(tmp_path / "missing.yaml")), 2, f"hyperdesk: error: cannot read {tmp_path / 'missing.yaml'}: "),
        (("submit", str(unqueued), "-n", NLP), 2, f"hyperdesk: error: Job {NLP}/fine has no kueue.x-k8s.io/queue-name label"),
        (("suspend", "nosuch", "-n", NLP), 2, f"hyperdesk: error: no job 'nosuch' in namespace {NLP}\n"),
        (("logs", "widget/x"), 2, "hyperdesk: error: unknown job kind 'widget' in 'widget/x'"),
        (("template", "ddp", "--set", "name=Bad"), 2, "hyperdesk: error: ddp: image: required; name: lower-case letters"),
        (("--context", "prod", "cancel", "x"), 2,
         "hyperdesk: error: no context 'prod' in the kubeconfig (contexts: hyperdesk-demo)\n"),
    ]
    runs = [(args, code, message, started(*args, kubeconfig=kubeconfig)) for args, code, message in cases]
    for args, code, message, process in runs:
        got, out, err = finished(process)
        assert (got, out) == (code, ""), (args, err)
        assert err.startswith(message) and err.count("\n") == 1, (args, err)
    assert jobs(kubeconfig, "-A") == {}


def test_a_forbidden_namespace_is_refused(tmp_path: Path) -> None:
    access = {"anonymous": False, "users": [
        {"name": "alice", "token": "alice-token", "rules": [
            {"verbs": ["get", "list", "create"], "apiGroups": ["batch"], "resources": ["jobs"], "namespaces": ["team-a"]}]},
        {"name": "admin", "token": "admin-token", "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]},
    ]}
    with LocalApiServer.start_in_thread(access=access, user="alice") as handle:
        for name in ("team-a", "team-b"):
            handle.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        manifest = tmp_path / "job.yaml"
        manifest.write_text(job_yaml("train"))
        refused = hyperdesk("submit", str(manifest), "-n", "team-b", kubeconfig=handle.kubeconfig_path)
        assert refused.returncode == 2
        assert refused.stderr == ('hyperdesk: error: the server rejected Job team-b/train: jobs.batch is forbidden: User '
                                  '"alice" cannot create resource "jobs" in API group "batch" in the namespace "team-b" '
                                  "(nothing was created)\n")
        assert handle.store.list("batch/v1", "Job") == []
        assert ok("submit", str(manifest), "-n", "team-a", kubeconfig=handle.kubeconfig_path) == "Job/team-a/train created\n"
