"""`hyperdesk get endpoints`, `invoke`, `scale`, `deploy`, `undeploy` as a user runs them, against the simulated
cluster, with kubectl as a second client to check what changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from tests.plugins.endpoints import NAMESPACE, endpoint_config, jumpstart


def hyperdesk(handle, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(handle.kubeconfig_path)}
    env = {k: v for k, v in env.items() if not k.startswith("HYPERDESK_")}
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=120,
                          env=env, input=stdin)


def test_get_endpoints_json_and_table(serving_cluster) -> None:
    result = hyperdesk(serving_cluster, "get", "endpoints", "-A", "-o", "json")
    assert result.returncode == 0, result.stderr
    items = {i["name"]: i for i in json.loads(result.stdout)}
    assert {"deepseek-small", "llama3-8b", "clip", "too-big", "broken"} <= set(items)
    clip = items["clip"]
    for key in ("name", "namespace", "kind", "model", "state", "replicas_ready", "replicas_desired", "url"):
        assert key in clip
    assert (clip["kind"], clip["state"], clip["replicas_ready"], clip["replicas_desired"]) == ("InferenceService", "Ready", 1, 1)
    assert items["too-big"]["reason"].startswith("InstanceTypeNotAvailable")

    table = hyperdesk(serving_cluster, "get", "endpoint", "-n", NAMESPACE)
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split()[:7] == ["NAMESPACE", "NAME", "KIND", "MODEL", "INSTANCE", "STATE", "READY"]
    assert any("llama3-8b" in line and "DeploymentComplete" in line and "1/1" in line and "1-4" in line for line in lines)


def test_invoke_once_and_as_a_load_test(serving_cluster, tmp_path) -> None:
    body = tmp_path / "body.json"
    body.write_text('{"inputs": "What is MIG?"}')
    once = hyperdesk(serving_cluster, "invoke", "deepseek-small", "-n", NAMESPACE, "--path", "/invocations",
                     "--body", f"@{body}")
    assert once.returncode == 0, once.stderr
    assert json.loads(once.stdout)[0]["generated_text"].startswith("[demo completion from deepseek")
    assert once.stderr.startswith("200 from the model server in ")
    piped = hyperdesk(serving_cluster, "invoke", "deepseek-small", "-n", NAMESPACE, "--protocol", "sagemaker",
                      "--body", "@-", "-o", "json", stdin='{"inputs": "What is MIG?"}')
    assert piped.returncode == 0, piped.stderr
    answer = json.loads(piped.stdout)
    assert (answer["status"], answer["from"], answer["path"]) == (200, "model", "/invocations")
    assert answer["response"] == json.loads(once.stdout)  # the same prompt gives the same completion

    listed = hyperdesk(serving_cluster, "invoke", "isvc/clip", "-n", NAMESPACE, "--list-protocols")
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["openai-chat", "kserve-v1", "kserve-v2"]

    load = hyperdesk(serving_cluster, "invoke", "isvc/clip", "-n", NAMESPACE, "--protocol", "kserve-v2",
                     "--requests", "200", "--concurrency", "25", "-o", "json")
    assert load.returncode == 0, load.stderr
    figures = json.loads(load.stdout)
    assert (figures["requests"], figures["ok"], figures["errors"], figures["concurrency"]) == (200, 200, {}, 25)
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    assert figures["path"] == "/v2/models/clip/infer"


def test_invoke_prints_a_stream_as_it_arrives(serving_cluster) -> None:
    prompt = " ".join(["hello"] * 200)  # the simulated model streams its answer over about 860 ms
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERDESK_")}
    body = json.dumps({"messages": [{"role": "user", "content": prompt}], "stream": True})
    with subprocess.Popen([sys.executable, "-m", "app", "invoke", "clip", "-n", NAMESPACE, "--body", body],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env={**env, "KUBECONFIG": str(serving_cluster.kubeconfig_path)}) as process:
        first = os.read(process.stdout.fileno(), 65536)  # what arrived first, while the model is still answering
        assert first and process.poll() is None, "the first words are printed before the answer is complete"
        rest = process.stdout.read()
        assert process.wait(timeout=120) == 0, process.stderr.read()
    text = (first + rest).decode()
    assert text.startswith("[demo completion from clip]") and len(first) < len(text.rstrip("\n"))


def test_invoke_streams_and_reports_model_errors(serving_cluster) -> None:
    stream = hyperdesk(serving_cluster, "invoke", "clip", "-n", NAMESPACE, "--body",
                       '{"messages": [{"role": "user", "content": "hi"}], "stream": true}')
    assert stream.returncode == 0, stream.stderr
    assert stream.stdout.startswith("[demo completion from clip]") and "data:" not in stream.stdout

    bad = hyperdesk(serving_cluster, "invoke", "clip", "-n", NAMESPACE, "--protocol", "kserve-v1", "--body",
                    '{"instances": []}')
    assert bad.returncode == 1
    assert "400 from the model server" in bad.stderr and "Traceback" not in bad.stderr


def test_a_model_slower_than_the_timeout_is_not_called_an_api_server_failure(serving_cluster) -> None:
    prompt = " ".join(["word"] * 200)  # the simulated model takes 860 ms or more for it
    slow = hyperdesk(serving_cluster, "invoke", "deepseek-small", "-n", NAMESPACE, "--protocol", "sagemaker",
                     "--body", json.dumps({"inputs": prompt}), "--timeout", "0.3")
    assert slow.returncode == 1
    line = slow.stderr.strip()
    assert line.startswith("no answer after ") and line.endswith(": no answer from the model within 0.3 s (--timeout)")
    assert serving_cluster.url.split("//")[1] not in line, "the API server answered: it is not named as the culprit"


def test_bad_input_is_refused_before_sending(serving_cluster) -> None:
    broken = hyperdesk(serving_cluster, "invoke", "clip", "-n", NAMESPACE, "--body", '{"instances": [1,]}')
    assert broken.returncode == 2
    assert "invalid JSON at line 1 column 18" in broken.stderr and "nothing was sent" in broken.stderr
    deep = hyperdesk(serving_cluster, "invoke", "clip", "-n", NAMESPACE, "--body", "[" * 100_000)
    assert deep.returncode == 2 and "Traceback" not in deep.stderr
    assert deep.stderr.strip() == "hyperdesk: error: --body: the request body is nested too deeply to read; nothing was sent"

    not_ready = hyperdesk(serving_cluster, "invoke", "too-big", "-n", NAMESPACE, "--body", '{"inputs": "x"}')
    assert not_ready.returncode == 1
    assert "is not ready (DeploymentFailed" in not_ready.stderr and "InstanceTypeNotAvailable" in not_ready.stderr

    unknown = hyperdesk(serving_cluster, "invoke", "nope", "-n", NAMESPACE)
    assert unknown.returncode == 2 and "no endpoint 'nope'" in unknown.stderr

    wrong = hyperdesk(serving_cluster, "invoke", "clip", "-n", NAMESPACE, "--requests", "0")
    assert wrong.returncode == 2 and "1..100000" in wrong.stderr

    alone = hyperdesk(serving_cluster, "invoke", "clip", "-n", NAMESPACE, "-c", "5")
    assert alone.returncode == 2 and "--concurrency needs --requests" in alone.stderr
    for timeout in ("0", "-1"):
        never = hyperdesk(serving_cluster, "invoke", "clip", "-n", NAMESPACE, "--timeout", timeout)
        assert never.returncode == 2 and "--timeout must be a positive number" in never.stderr


def test_readonly_invoke_sends_inference_requests_only(serving_cluster) -> None:
    seen: list[str] = []

    async def record(request, info) -> None:
        seen.append(f"{request.method} {request.path_qs}")

    serving_cluster.cluster.server.api.add_request_hook(record)
    refused = hyperdesk(serving_cluster, "invoke", "clip", "-n", NAMESPACE, "--readonly",
                        "--path", "/v2/repository/models/clip/unload", "--body", "{}")
    assert refused.returncode == 2
    assert "read-only" in refused.stderr and "/v2/repository/models/clip/unload" in refused.stderr
    assert "nothing was sent" in refused.stderr
    load = hyperdesk(serving_cluster, "invoke", "clip", "-n", NAMESPACE, "--readonly", "--path", "/sleep", "-N", "2")
    assert load.returncode == 2 and "read-only" in load.stderr
    assert seen == [], "refused before any request: no discovery, no lists"
    allowed = hyperdesk(serving_cluster, "invoke", "clip", "-n", NAMESPACE, "--readonly", "--protocol", "kserve-v1",
                        "-N", "3", "-c", "2", "-o", "json")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["ok"] == 3


def test_scale_deploy_undeploy_and_readonly(bare_cluster, demo_kubectl) -> None:
    kubectl = demo_kubectl(bare_cluster)
    manifest = yaml.safe_dump_all([jumpstart("cli-model"), endpoint_config("cli-config")])
    refused = hyperdesk(bare_cluster, "deploy", "-", "--readonly", stdin=manifest)
    assert refused.returncode == 2 and "read-only" in refused.stderr
    deployed = hyperdesk(bare_cluster, "deploy", "-", stdin=manifest)
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.splitlines() == [f"JumpStartModel/{NAMESPACE}/cli-model created",
                                            f"InferenceEndpointConfig/{NAMESPACE}/cli-config created"]
    invalid = hyperdesk(bare_cluster, "deploy", "-", stdin="kind: [unclosed\n")
    assert invalid.returncode == 2 and "invalid YAML" in invalid.stderr
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "side", "namespace": NAMESPACE}}
    mixed = hyperdesk(bare_cluster, "deploy", "-", stdin=yaml.safe_dump_all([jumpstart("mixed"), config_map]))
    assert mixed.returncode == 2 and "ConfigMap/side" in mixed.stderr and "nothing was sent" in mixed.stderr
    assert kubectl.run("get", "jumpstartmodel", "mixed", "-n", NAMESPACE, check=False).returncode == 1

    bare_cluster.advance(60)
    seen: list[str] = []

    async def record(request, info) -> None:
        seen.append(f"{request.method} {request.path_qs}")

    listed = json.loads(hyperdesk(bare_cluster, "get", "endpoints", "-n", NAMESPACE, "-o", "json").stdout)
    ready_before = next(i["replicas_ready"] for i in listed if i["name"] == "cli-model")
    bare_cluster.cluster.server.api.add_request_hook(record)
    refused = hyperdesk(bare_cluster, "scale", "cli-model", "-n", NAMESPACE, "--replicas", "2", "--readonly")
    assert refused.returncode == 2 and "read-only" in refused.stderr
    assert kubectl.json("get", "jumpstartmodel", "cli-model", "-n", NAMESPACE)["spec"]["replicas"] == 1
    scaled = hyperdesk(bare_cluster, "scale", "jumpstartmodel/cli-model", "-n", NAMESPACE, "--replicas", "2")
    assert scaled.returncode == 0, scaled.stderr
    assert f"JumpStartModel {NAMESPACE}/cli-model: replicas set to 2 (scale subresource)" in scaled.stdout
    assert f"(was {ready_before}/1 ready)" in scaled.stdout, "the same readiness as the full listing's"
    # resolved from the endpoint kinds' lists; then only its own pods, by its selector: no Service, no other pod
    lists = [r for r in seen if r.startswith("GET /api/v1/")]
    assert lists == [f"GET /api/v1/namespaces/{NAMESPACE}/pods?labelSelector=app%3Dcli-model"], lists
    seen.clear()
    across = hyperdesk(bare_cluster, "invoke", "cli-model", "-A", "--path", "/invocations", "--body", '{"inputs": "x"}')
    assert across.returncode == 1 and "is not ready (DeploymentInProgress" in across.stderr  # scaling: refused
    lists = sorted(r.split("?")[0] for r in seen if r.startswith("GET /api/v1/"))
    assert lists == [f"GET /api/v1/namespaces/{NAMESPACE}/pods", f"GET /api/v1/namespaces/{NAMESPACE}/services"], lists
    assert kubectl.json("get", "jumpstartmodel", "cli-model", "-n", NAMESPACE)["spec"]["replicas"] == 2

    gone = hyperdesk(bare_cluster, "undeploy", "cli-config", "-n", NAMESPACE)
    assert gone.returncode == 0, gone.stderr
    assert kubectl.json("get", "inferenceendpointconfig", "cli-config", "-n", NAMESPACE)["status"]["state"] == "DeletionPending"
    bare_cluster.advance(40)  # the operator's finalizer lets go once the model servers stopped
    assert kubectl.run("get", "inferenceendpointconfig", "cli-config", "-n", NAMESPACE, check=False).returncode == 1


def test_kinds_the_user_may_not_list_are_said(demo_cluster) -> None:
    from tests.plugins.endpoints import create, inference_service

    access = {"users": [
        {"name": "admin", "token": "admin-token", "rules": [
            {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]},
        {"name": "hyperpod-only", "token": "hp-token", "rules": [
            {"verbs": ["get", "list", "watch"], "apiGroups": ["", "inference.sagemaker.aws.amazon.com"],
             "resources": ["*"]}]},
        {"name": "nothing", "token": "no-token", "rules": [
            {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["namespaces"]}]},
    ]}
    handle = demo_cluster(scenario="bare", seed=5, mlflow=False, access=access)
    create(handle, jumpstart(), inference_service())

    def as_user(user: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERDESK_")}
        env["KUBECONFIG"] = str(handle.cluster.server.kubeconfig_for(user))
        return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=120,
                              env=env)

    partial = as_user("hyperpod-only", "get", "endpoints", "-n", NAMESPACE, "-o", "json")
    assert partial.returncode == 0, partial.stderr
    assert [i["name"] for i in json.loads(partial.stdout)] == ["deepseek-small"]
    assert f"warning: cannot list inferenceservices in {NAMESPACE} (forbidden)" in partial.stderr
    hidden = as_user("hyperpod-only", "invoke", "clip", "-n", NAMESPACE)
    assert hidden.returncode == 2
    assert f"no endpoint 'clip' in namespace {NAMESPACE} (cannot list inferenceservices" in hidden.stderr
    blind = as_user("nothing", "get", "endpoints", "-n", NAMESPACE)
    assert blind.returncode == 1 and "cannot list jumpstartmodels" in blind.stderr and "(forbidden)" in blind.stderr
