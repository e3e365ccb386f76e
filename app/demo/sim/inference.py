"""Inference endpoints: the HyperPod inference operator (JumpStartModel, InferenceEndpointConfig) and KServe.

Each endpoint gets a Deployment of model-server pods (GPU requests, the instance type as node selector, a readiness
probe that waits for the model to load) and a Service, and moves through its real states:

- HyperPod: `status.state` `DeploymentPending` -> `DeploymentInProgress` -> `DeploymentComplete`, with
  `deploymentStatus`, `replicas`, `selector`, `endpoints.sagemaker{state: CreationInProgress -> InService,
  endpointArn}` and a `Ready` condition. The Service `<name>-service` (port 8080) answers `POST /invocations`.
- KServe InferenceService: conditions `PredictorReady`, `IngressReady`, `Ready`, `url`, `address.url`,
  `components.predictor{url, latestReadyRevision, traffic}`, `modelStatus`. The Service `<name>-predictor`
  (port 80) answers `POST /v1/models/<name>:predict` and `POST /openai/v1/completions`.

The model servers speak what real ones do, through `services/<svc>:<port>/proxy/...`: OpenAI-style
`/v1/chat/completions` and `/v1/completions` (also under `/openai`, with `"stream": true` as server-sent events),
KServe v1 `/v1/models/<name>:predict` (`instances`) and v2 `/v2/models/<name>/infer` (`inputs` tensors), SageMaker
`/invocations` (`inputs`). A body that is not JSON or lacks what the protocol needs is a 400 (422 for a `max_tokens`
beyond the model's context), a batch too large for the GPU a 500 ("CUDA out of memory"), an unknown route a 404; an
endpoint with no ready pod is a 503 as from the real proxy. Each model pod exposes Prometheus metrics on port 9091
(`pods/<pod>:9091/proxy/metrics`): `model_invocations_total{code}` and the histogram `model_latency_milliseconds`.

An endpoint that cannot deploy fails with its reason: a HyperPod endpoint whose instance type no node offers goes
to `DeploymentFailed` (`deploymentStatus.reason` `InstanceTypeNotAvailable`, a Warning event); an InferenceService
whose `storageUri` scheme no storage initializer knows gets `modelStatus.states.activeModelState: FailedToLoad` with
`lastFailureInfo`, and `Ready` False. Changing replicas (spec, or the `scale` subresource) resizes the Deployment.
The HyperPod kinds carry the operator's finalizer: a deleted endpoint shows `DeletionPending`, then
`DeletionInProgress` while its model servers stop, and is gone once they are (the last write says
`DeletionComplete`, which no reader sees, as with the real operator). A model server pod that is still there
`DELETION_TIMEOUT_SECONDS` after the deletion began (one a finalizer of its own keeps `Terminating`) turns the
endpoint `DeletionFailed`: `deploymentStatus.reason` `DeletionTimedOut` and a message naming the pods and what holds
them, a Warning event, and the operator's finalizer kept; once the pods are gone the deletion finishes.

Answers are deterministic: the same prompt gives the same completion, after a latency that grows with its length
(reported in the `X-Demo-Latency-Ms` header).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from aiohttp import web

from .base import Controller, World
from .objects import copy, owner_reference, set_condition

SAGEMAKER = "inference.sagemaker.aws.amazon.com"
SAGEMAKER_API = f"{SAGEMAKER}/v1"
KSERVE_API = "serving.kserve.io/v1beta1"
PENDING_SECONDS = 5.0
METRICS_PORT = 9091
FINALIZER = "inference.sagemaker.aws.amazon.com/endpoint-cleanup"
DELETION_SECONDS = 3.0
DELETION_TIMEOUT_SECONDS = 60.0
"""How long the operator waits for the model server pods to go before it reports `DeletionFailed`."""
MAX_BATCH = 32
MAX_TOKENS = 4096
LATENCY_BUCKETS = (25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
STORAGE_SCHEMES = ("s3://", "gs://", "hf://", "pvc://", "https://", "http://", "oci://")
ACCOUNT = "123456789012"
REGION = "us-west-2"

_COMPLETIONS = (
    "A GPU cluster is only as fast as its slowest collective; keep the ranks on one spine.",
    "Gradient checkpointing trades compute for memory: about a third more FLOPs for a fraction of the activations.",
    "MIG slices isolate memory and compute, so a small notebook never starves a training job on the same GPU.",
    "Queue fairness is a contract between teams: borrow when the cohort is idle, give it back when it is not.",
    "Loss curves flatten before they improve; watch the eval loss, not the last hundred steps.",
)


def completion(prompt: str, model: str) -> tuple[str, int]:
    """(text, latency in ms) for a prompt: deterministic, longer prompts take longer."""
    digest = int(hashlib.sha256(f"{model}|{prompt}".encode()).hexdigest(), 16)
    text = f"[demo completion from {model}] {_COMPLETIONS[digest % len(_COMPLETIONS)]}"
    latency = 60 + 4 * min(len(prompt.split()), 200) + digest % 40
    return text, latency


def _prompt_of(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("inputs", "prompt", "text"):
            if isinstance(body.get(key), str):
                return body[key]
        instances = body.get("instances")
        if isinstance(instances, list) and instances:
            first = instances[0]
            return first if isinstance(first, str) else json.dumps(first)
        messages = body.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
            return str(messages[-1].get("content", ""))
    return json.dumps(body)


def _replicas(value: Any, fallback: Any) -> int:
    for candidate in (value, fallback):
        try:
            if candidate is not None and int(candidate) >= 0:
                return int(candidate)
        except (TypeError, ValueError):
            continue
    return 1


class PodMetrics:
    """What one model pod has served, as its Prometheus exposition says it."""

    def __init__(self) -> None:
        self.codes: dict[int, int] = {}
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.count = 0
        self.total_ms = 0.0

    def observe(self, status: int, latency_ms: float) -> None:
        self.codes[status] = self.codes.get(status, 0) + 1
        self.count += 1
        self.total_ms += latency_ms
        for index, bound in enumerate(LATENCY_BUCKETS):
            if latency_ms <= bound:
                self.buckets[index] += 1

    def exposition(self) -> str:
        lines = ["# HELP model_invocations_total Requests the model server answered, by HTTP status code.",
                 "# TYPE model_invocations_total counter"]
        lines += [f'model_invocations_total{{code="{code}"}} {count}' for code, count in sorted(self.codes.items())]
        lines += ["# HELP model_latency_milliseconds Time to answer a request, in milliseconds.",
                  "# TYPE model_latency_milliseconds histogram"]
        lines += [f'model_latency_milliseconds_bucket{{le="{float(bound)}"}} {count}'
                  for bound, count in zip(LATENCY_BUCKETS, self.buckets, strict=True)]
        lines += [f'model_latency_milliseconds_bucket{{le="+Inf"}} {self.count}',
                  f"model_latency_milliseconds_sum {self.total_ms:.3f}", f"model_latency_milliseconds_count {self.count}"]
        return "\n".join(lines) + "\n"


def _error(status: int, message: str, openai: bool = False) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
                      "code": status}} if openai else {"error": message}
    return web.json_response(body, status=status)


async def serve(request: web.Request, path: str, model: str) -> web.StreamResponse:
    """One request to a model server, answered as the protocol its route belongs to does."""
    route = path.split("?", 1)[0]
    openai = route.startswith("/openai/") or route in ("/v1/chat/completions", "/v1/completions")
    if request.method == "GET":
        if route in ("/ping", "/health", "/v1/models", f"/v1/models/{model}", "/v2/health/ready", f"/v2/models/{model}",
                     "/openai/v1/models"):
            return web.json_response({"status": "Healthy", "name": model, "ready": True})
        return _error(404, f"no route GET {route}", openai)
    if request.method != "POST":
        return _error(405, f"{request.method} {route} is not supported", openai)
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _error(400, f"the body must be JSON: {exc}", openai)
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object", openai)
    chat = route.endswith("/chat/completions")
    if route.endswith("/completions"):
        if chat and not (isinstance(body.get("messages"), list) and body["messages"]):
            return _error(400, "'messages' is a required property and must be a non-empty list", True)
        if not chat and not isinstance(body.get("prompt"), str):
            return _error(400, "'prompt' is a required property", True)
        max_tokens = body.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens > MAX_TOKENS):
            return _error(422, f"max_tokens must be an integer of at most {MAX_TOKENS} (the model's context)", True)
    elif route.endswith(":predict"):
        if not isinstance(body.get("instances"), list) or not body["instances"]:
            return _error(400, "KServe v1 expects a non-empty 'instances' list")
        if len(body["instances"]) > MAX_BATCH:
            return _error(500, f"CUDA out of memory: a batch of {len(body['instances'])} does not fit (at most {MAX_BATCH})")
    elif route.startswith("/v2/models/") and route.endswith("/infer"):
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs or not all(
                isinstance(i, dict) and {"name", "shape", "datatype", "data"} <= set(i) for i in inputs):
            return _error(400, "KServe v2 expects 'inputs': a list of tensors with name, shape, datatype and data")
        if any(len(i["data"]) > MAX_BATCH for i in inputs if isinstance(i["data"], list)):
            return _error(500, f"CUDA out of memory: a batch larger than {MAX_BATCH} does not fit")
    elif route == "/invocations":
        if not isinstance(body.get("inputs"), str):
            return _error(400, "'inputs' (the prompt, a string) is required")
        new_tokens = (body.get("parameters") or {}).get("max_new_tokens")
        if isinstance(new_tokens, int) and new_tokens > MAX_TOKENS:
            return _error(422, f"max_new_tokens must be at most {MAX_TOKENS}")
    else:
        return _error(404, f"no route POST {route}", openai)
    if route.endswith("/infer"):
        data = body["inputs"][0]["data"]
        prompt = str(data[0]) if isinstance(data, list) and data else str(data)
    else:
        prompt = _prompt_of(body)
    text, latency = completion(str(prompt), model)
    headers = {"X-Demo-Latency-Ms": str(latency)}
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    if openai and body.get("stream") is True:
        response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        words = text.split(" ")
        for index, word in enumerate(words):
            await asyncio.sleep(latency / 1000 / len(words))
            piece = word if index == 0 else " " + word
            choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
            chunk = {"id": f"chatcmpl-demo-{digest}", "object": "chat.completion.chunk" if chat else "text_completion",
                     "model": model, "choices": [{**choice, "finish_reason": "stop" if index == len(words) - 1 else None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
    await asyncio.sleep(latency / 1000)
    usage = {"prompt_tokens": len(str(prompt).split()), "completion_tokens": len(text.split())}
    if route.endswith(":predict"):
        return web.json_response({"predictions": [text] * len(body["instances"])}, headers=headers)
    if route.endswith("/infer"):
        return web.json_response({"model_name": model, "id": f"demo-{digest}", "outputs": [
            {"name": "output0", "datatype": "BYTES", "shape": [1], "data": [text]}]}, headers=headers)
    if chat:
        return web.json_response({"id": f"chatcmpl-demo-{digest}", "object": "chat.completion", "model": model,
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                               "finish_reason": "stop"}], "usage": usage}, headers=headers)
    if openai:
        return web.json_response({"id": f"cmpl-demo-{digest}", "object": "text_completion", "model": model,
                                  "choices": [{"index": 0, "text": text, "finish_reason": "stop"}], "usage": usage},
                                 headers=headers)
    return web.json_response([{"generated_text": text}], headers=headers)


class Inference(Controller):
    name = "inference-controllers"
    watches = frozenset({(SAGEMAKER, "JumpStartModel"), (SAGEMAKER, "InferenceEndpointConfig"),
                         ("serving.kserve.io", "InferenceService"), ("apps", "Deployment"), ("", "Pod")})

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._seen: dict[str, float] = {}
        self._served: set[tuple[str, str, int]] = set()
        self._logged: dict[str, str] = {}  # pod uid -> what its log says so far ("start", "ready")
        self._metrics: dict[tuple[str, str], PodMetrics] = {}
        self._turn = 0
        self._failed: set[str] = set()  # uids of endpoints whose failure was announced with an event
        self._deleting: dict[str, float] = {}  # uid -> simulated second its deletion began
        self._deletion_failed: set[str] = set()  # uids of endpoints whose DeletionFailed was announced

    def reconcile(self) -> None:
        for kind in ("JumpStartModel", "InferenceEndpointConfig"):
            for endpoint in self.cache.all(SAGEMAKER_API, kind):
                self._hyperpod(endpoint)
        for service in self.cache.all(KSERVE_API, "InferenceService"):
            self._kserve(service)
        self._activity()

    # --- shared -------------------------------------------------------------------------------------------------

    def _pending(self, obj: dict[str, Any]) -> bool:
        """True while the operator has not picked the endpoint up yet (the first few simulated seconds)."""
        uid = obj["metadata"]["uid"]
        first = self._seen.setdefault(uid, self.world.clock.elapsed)
        if self.world.clock.elapsed - first < PENDING_SECONDS:
            if self.world.clock.elapsed == first:
                self.world.after(PENDING_SECONDS, self._poke)
            return True
        return False

    def _poke(self) -> None:
        self.dirty = True

    def _instance_types(self) -> set[str]:
        return {(n["metadata"].get("labels") or {}).get("node.kubernetes.io/instance-type", "")
                for n in self.cache.all("v1", "Node")} - {""}

    def _offered(self, instance_type: str) -> bool:
        return instance_type in self._instance_types()

    def _ensure(self, owner: dict[str, Any], deployment: dict[str, Any], service: dict[str, Any], port: int,
                model: str) -> dict[str, Any] | None:
        world = self.world
        namespace = owner["metadata"]["namespace"]
        for obj in (deployment, service):
            obj["metadata"]["namespace"] = namespace
            obj["metadata"]["ownerReferences"] = [owner_reference(owner)]
        if world.cache.get("v1", "Service", service["metadata"]["name"], namespace) is None:
            world.create(service)
        key = (namespace, service["metadata"]["name"], port)
        if key not in self._served:
            endpoint = (deployment["spec"]["template"]["metadata"].get("labels") or {}).get("hyperdesk.demo/endpoint", "")
            world.proxies.register_service(namespace, service["metadata"]["name"], port,
                                           self._handler(namespace, endpoint, model))
            self._served.add(key)
        current = world.cache.get("apps/v1", "Deployment", deployment["metadata"]["name"], namespace)
        if current is None:
            current = world.create(deployment)
        elif (current.get("spec") or {}).get("replicas") != deployment["spec"]["replicas"]:
            resized = copy(current)
            resized["spec"]["replicas"] = deployment["spec"]["replicas"]
            current = world.put(resized) or current
        return current

    def _serving_pods(self, namespace: str, endpoint: str) -> list[dict[str, Any]]:
        pods = []
        for pod in self.cache.all("v1", "Pod", namespace):
            if (pod["metadata"].get("labels") or {}).get("hyperdesk.demo/endpoint") != endpoint:
                continue
            conditions = (pod.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                pods.append(pod)
        return sorted(pods, key=lambda p: p["metadata"]["name"])

    def _register_metrics(self, pod: dict[str, Any]) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if key not in self._metrics:
            self._metrics[key] = PodMetrics()
            self.world.proxies.register_pod(key[0], key[1], METRICS_PORT, self._metrics_handler(self._metrics[key]))

    @staticmethod
    def _metrics_handler(metrics: "PodMetrics") -> Any:
        async def handle(request: web.Request, path: str) -> web.StreamResponse:
            if path.split("?", 1)[0] != "/metrics":
                return web.Response(status=404, text="404 page not found\n")
            return web.Response(text=metrics.exposition(), content_type="text/plain", charset="utf-8",
                                headers={"X-Prometheus-Format": "0.0.4"})

        return handle

    @staticmethod
    def _model_pod_template(labels: dict[str, str], image: str, port: int, resources: dict[str, Any],
                            instance_type: str, model: str, load_seconds: int) -> dict[str, Any]:
        return {
            "metadata": {"labels": labels},
            "spec": {
                "nodeSelector": {"node.kubernetes.io/instance-type": instance_type} if instance_type else {},
                "containers": [{
                    "name": "model-server",
                    "image": image,
                    "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"},
                              {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
                    "env": [{"name": "MODEL_ID", "value": model}],
                    "resources": resources,
                    "readinessProbe": {"httpGet": {"path": "/ping", "port": port}, "initialDelaySeconds": load_seconds,
                                       "periodSeconds": 10},
                }],
            },
        }

    def _activity(self) -> None:
        for pod in self.cache.all("v1", "Pod"):
            labels = pod["metadata"].get("labels") or {}
            if "hyperdesk.demo/endpoint" not in labels or (pod.get("status") or {}).get("phase") != "Running":
                continue
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or [])
            self.world.activity[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = "serve" if ready else "load"
            self._log(pod, ready)
            self._register_metrics(pod)

    def _log(self, pod: dict[str, Any], ready: bool) -> None:
        uid = pod["metadata"]["uid"]
        said = self._logged.get(uid)
        if said == "ready" or (said == "start" and not ready):
            return
        container = pod["spec"]["containers"][0]
        model = next((e.get("value", "") for e in container.get("env") or [] if e.get("name") == "MODEL_ID"), "model")
        port = ((container.get("ports") or [{}])[0]).get("containerPort", 8080)
        lines = []
        if said is None:
            lines += [f"INFO Downloading {model} weights to /opt/ml/model", f"INFO Loading {model} onto the GPU"]
        if ready:
            lines += [f"INFO Model {model} loaded; warmup done", f"INFO Uvicorn running on http://0.0.0.0:{port} (Press CTRL+C to quit)"]
        self.world.logs.write(pod["metadata"]["namespace"], pod["metadata"]["name"], container["name"], lines,
                              at=self.world.clock.now())
        self._logged[uid] = "ready" if ready else "start"

    def _handler(self, namespace: str, endpoint: str, model: str) -> Any:
        async def handle(request: web.Request, path: str) -> web.StreamResponse:
            pods = self._serving_pods(namespace, endpoint)
            if not pods:
                return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                          "message": f"no endpoints available for service \"{endpoint}\"",
                                          "reason": "ServiceUnavailable", "code": 503}, status=503)
            self._turn += 1
            pod = pods[self._turn % len(pods)]
            self._register_metrics(pod)
            metrics = self._metrics[(namespace, pod["metadata"]["name"])]
            started = asyncio.get_running_loop().time()
            response = await serve(request, path, model)
            metrics.observe(response.status, (asyncio.get_running_loop().time() - started) * 1000)
            return response

        return handle

    # --- HyperPod inference operator ------------------------------------------------------------------------------

    def _hyperpod(self, endpoint: dict[str, Any]) -> None:
        world = self.world
        meta, spec = endpoint["metadata"], endpoint.get("spec") or {}
        name = meta["name"]
        now = world.clock.timestamp()
        status = copy(endpoint.get("status") or {})
        conditions = status.setdefault("conditions", [])
        if meta.get("deletionTimestamp"):
            self._delete_hyperpod(endpoint, status, conditions, now)
            return
        jumpstart = endpoint["kind"] == "JumpStartModel"
        if jumpstart:
            model = (spec.get("model") or {}).get("modelId", name)
            instance_type = (spec.get("server") or {}).get("instanceType", "")
            endpoint_name = (spec.get("sageMakerEndpoint") or {}).get("name", name)
            replicas = _replicas(spec.get("replicas"), (spec.get("server") or {}).get("minAutoScaleReplicas"))
            port = 8080
            resources = {"requests": {"nvidia.com/gpu": "1", "cpu": "8", "memory": "30Gi"}, "limits": {"nvidia.com/gpu": "1"}}
            image = f"763104351884.dkr.ecr.{REGION}.amazonaws.com/djl-inference:0.31.0-lmi13.0.0-cu124"
        else:
            model = spec.get("modelName", name)
            instance_type = spec.get("instanceType", "")
            endpoint_name = spec.get("endpointName", name)
            replicas = _replicas(spec.get("replicas"), None)
            worker = spec.get("worker") or {}
            port = int((worker.get("modelInvocationPort") or {}).get("containerPort", 8080))
            resources = worker.get("resources") or {"requests": {"nvidia.com/gpu": "1"}}
            image = worker.get("image", "ghcr.io/huggingface/text-generation-inference:2.4.0")
        status["observedGeneration"] = meta.get("generation", 1)
        if self._pending(endpoint):
            status["state"] = "DeploymentPending"
            set_condition(conditions, "Ready", "False", "DeploymentPending", "Waiting for the deployment to be created", now)
        elif instance_type and not self._offered(instance_type):
            offered = ", ".join(sorted(self._instance_types())) or "none"
            message = (f"Instance type {instance_type} is not available in the cluster (instance groups offer: "
                       f"{offered}); no model server pod can be scheduled")
            status["state"] = "DeploymentFailed"
            status["deploymentStatus"] = {"name": name, "deploymentObjectOverallState": "DeploymentFailed",
                                          "reason": "InstanceTypeNotAvailable", "message": message,
                                          "lastUpdated": (status.get("deploymentStatus") or {}).get("lastUpdated", now)}
            set_condition(conditions, "Ready", "False", "DeploymentFailed", message, now)
            if meta["uid"] not in self._failed:
                self._failed.add(meta["uid"])
                world.event(endpoint, "DeploymentFailed", message, type_="Warning", component="hyperpod-inference-operator")
        else:
            labels = {"app": name, "hyperdesk.demo/endpoint": name}
            template = self._model_pod_template(labels, image, port, resources, instance_type, model, 45)
            deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                          "metadata": {"name": name, "labels": {"app": name}},
                          "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template}}
            service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{name}-service", "labels": {"app": name}},
                       "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port, "targetPort": port}]}}
            current = self._ensure(endpoint, deployment, service, port, model) or {}
            dstatus = current.get("status") or {}
            ready = int(dstatus.get("readyReplicas", 0) or 0)
            complete = ready >= replicas
            overall = "DeploymentComplete" if complete else "DeploymentInProgress"
            previous_state = status.get("state")
            status["state"] = overall
            status["replicas"] = int(dstatus.get("replicas", 0) or 0)
            status["selector"] = f"app={name}"
            status["deploymentStatus"] = {
                "name": name,
                "deploymentObjectOverallState": overall,
                "reason": "NativeDeploymentObjectFound",
                "message": "Deployment is available" if complete else f"Waiting for model server pods: {ready}/{replicas} ready",
                "status": {k: dstatus[k] for k in ("replicas", "readyReplicas", "availableReplicas", "updatedReplicas",
                                                    "unavailableReplicas", "conditions") if k in dstatus},
                "lastUpdated": now if previous_state != overall else (status.get("deploymentStatus") or {}).get("lastUpdated", now),
            }
            arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
            status["endpoints"] = {"sagemaker": {
                "state": "InService" if complete else "CreationInProgress",
                "endpointArn": f"{arn}:endpoint/{endpoint_name}",
                "configArn": f"{arn}:endpoint-config/{endpoint_name}-config",
                "modelArn": f"{arn}:model/{endpoint_name}-model",
            }}
            set_condition(conditions, "Ready", "True" if complete else "False", overall,
                          f"Endpoint {endpoint_name} is in service" if complete else "Model server pods are starting", now)
        finalizers = meta.get("finalizers") or []
        if status != (endpoint.get("status") or {}) or FINALIZER not in finalizers:
            updated = copy(endpoint)
            updated["status"] = status
            updated["metadata"]["finalizers"] = [*finalizers, FINALIZER] if FINALIZER not in finalizers else finalizers
            world.put(updated)

    def _delete_hyperpod(self, endpoint: dict[str, Any], status: dict[str, Any], conditions: list[dict[str, Any]],
                         now: str) -> None:
        """The operator's finalizer: DeletionPending, then DeletionInProgress while the model servers stop; once
        they are gone the finalizer goes and the API server removes the object (DeletionComplete is never seen).
        Pods still there after DELETION_TIMEOUT_SECONDS: DeletionFailed, the finalizer kept, checked again on every
        change of a pod until they are gone."""
        world = self.world
        meta = endpoint["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        elapsed = world.clock.elapsed
        started = self._deleting.setdefault(meta["uid"], elapsed)
        if started == elapsed:
            world.after(DELETION_SECONDS, self._poke)
            world.after(2 * DELETION_SECONDS, self._poke)
            world.after(DELETION_TIMEOUT_SECONDS, self._poke)
        finalizers = meta.get("finalizers") or []
        reason = "DeletionRequested"
        if elapsed - started < DELETION_SECONDS:
            state, message = "DeletionPending", "Waiting to delete the model deployment"
        else:
            state, message = "DeletionInProgress", "Deleting the model deployment and its service"
            reason = "DeletingNativeDeploymentObjects"
            deployment = world.cache.get("apps/v1", "Deployment", name, namespace)
            if deployment is not None:
                world.delete(deployment)
            service = world.cache.get("v1", "Service", f"{name}-service", namespace)
            if service is not None:
                world.delete(service)
                self._served = {k for k in self._served if k[:2] != (namespace, f"{name}-service")}
            pods = sorted((p for p in self.cache.all("v1", "Pod", namespace)
                           if (p["metadata"].get("labels") or {}).get("hyperdesk.demo/endpoint") == name),
                          key=lambda p: p["metadata"]["name"])
            if elapsed - started >= 2 * DELETION_SECONDS and not pods:
                updated = copy(endpoint)
                updated["metadata"]["finalizers"] = [f for f in finalizers if f != FINALIZER]
                updated["status"] = {**status, "state": "DeletionComplete"}
                world.put(updated)
                self._deleting.pop(meta["uid"], None)
                self._deletion_failed.discard(meta["uid"])
                return
            if pods and elapsed - started >= DELETION_TIMEOUT_SECONDS:
                state, reason = "DeletionFailed", "DeletionTimedOut"
                held = "; ".join(
                    f"{p['metadata']['name']}" + (f" (finalizers: {', '.join(p['metadata']['finalizers'])})"
                                                  if p["metadata"].get("finalizers") else "")
                    for p in pods)
                message = (f"Model server pods still present {DELETION_TIMEOUT_SECONDS:.0f}s after deletion began: "
                           f"{held}; the endpoint keeps its finalizer until they are gone")
                if meta["uid"] not in self._deletion_failed:
                    self._deletion_failed.add(meta["uid"])
                    world.event(endpoint, "DeletionFailed", message, type_="Warning",
                                component="hyperpod-inference-operator")
        status["state"] = state
        previous = status.get("deploymentStatus") or {}
        status["deploymentStatus"] = {
            **{k: previous[k] for k in ("name",) if k in previous},
            "deploymentObjectOverallState": state, "reason": reason, "message": message,
            "lastUpdated": previous.get("lastUpdated", now) if previous.get("deploymentObjectOverallState") == state else now}
        set_condition(conditions, "Ready", "False", state, message, now)
        if status != (endpoint.get("status") or {}):
            updated = copy(endpoint)
            updated["status"] = status
            world.put(updated)

    # --- KServe ---------------------------------------------------------------------------------------------------

    def _kserve(self, isvc: dict[str, Any]) -> None:
        world = self.world
        meta, spec = isvc["metadata"], isvc.get("spec") or {}
        name, namespace = meta["name"], meta["namespace"]
        now = world.clock.timestamp()
        predictor = spec.get("predictor") or {}
        model_spec = predictor.get("model") or {}
        status = copy(isvc.get("status") or {})
        conditions = status.setdefault("conditions", [])
        status["observedGeneration"] = meta.get("generation", 1)
        storage = str(model_spec.get("storageUri") or "")
        if self._pending(isvc):
            for type_ in ("PredictorReady", "IngressReady", "Ready"):
                set_condition(conditions, type_, "Unknown", "", "", now)
            status["modelStatus"] = {"transitionStatus": "InProgress", "states": {"activeModelState": "", "targetModelState": "Pending"}}
        elif storage and not storage.startswith(STORAGE_SCHEMES):
            message = (f"storage-initializer: cannot download {storage}: unsupported storage URI scheme "
                       f"(supported: {', '.join(s.rstrip(':/') for s in STORAGE_SCHEMES)})")
            set_condition(conditions, "PredictorReady", "False", "ModelLoadFailed", message, now)
            set_condition(conditions, "IngressReady", "False", "PredictorNotReady", "", now)
            set_condition(conditions, "Ready", "False", "ModelLoadFailed", message, now)
            status["modelStatus"] = {"transitionStatus": "BlockedByFailedLoad",
                                     "states": {"activeModelState": "FailedToLoad", "targetModelState": "FailedToLoad"},
                                     "lastFailureInfo": {"reason": "ModelLoadFailed", "message": message,
                                                         "location": "storage-initializer"}}
            if meta["uid"] not in self._failed:
                self._failed.add(meta["uid"])
                world.event(isvc, "InternalError", message, type_="Warning", component="kserve-controller")
        else:
            deployment_name = f"{name}-predictor"
            labels = {"app": deployment_name, "serving.kserve.io/inferenceservice": name, "component": "predictor",
                      "hyperdesk.demo/endpoint": name}
            resources = model_spec.get("resources") or predictor.get("resources") or {"requests": {"nvidia.com/gpu": "1"}}
            instance_type = (predictor.get("nodeSelector") or {}).get("node.kubernetes.io/instance-type", "")
            template = self._model_pod_template(labels, model_spec.get("image", "kserve/huggingfaceserver:v0.14.1-gpu"),
                                                8080, resources, instance_type, name, 40)
            template["spec"]["containers"][0]["name"] = "kserve-container"
            if predictor.get("nodeSelector"):
                template["spec"]["nodeSelector"] = dict(predictor["nodeSelector"])
            if model_spec.get("storageUri"):
                template["spec"]["containers"][0]["env"].append({"name": "STORAGE_URI", "value": model_spec["storageUri"]})
            deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                          "metadata": {"name": deployment_name, "labels": {"app": deployment_name}},
                          "spec": {"replicas": _replicas(predictor.get("minReplicas"), None),
                                   "selector": {"matchLabels": {"app": deployment_name}}, "template": template}}
            service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": deployment_name, "labels": {"app": deployment_name}},
                       "spec": {"selector": {"app": deployment_name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
            current = self._ensure(isvc, deployment, service, 80, name) or {}
            ready = int((current.get("status") or {}).get("readyReplicas", 0) or 0) >= 1
            revision = f"{deployment_name}-00001"
            url = f"http://{name}.{namespace}.example.com"
            set_condition(conditions, "PredictorReady", "True" if ready else "False", "" if ready else "ModelLoading",
                          "" if ready else "Model server is loading the model", now)
            set_condition(conditions, "IngressReady", "True", "", "", now)
            set_condition(conditions, "Ready", "True" if ready else "False", "" if ready else "PredictorNotReady",
                          "" if ready else "Predictor is not ready", now)
            status["url"] = url
            status["address"] = {"url": f"http://{deployment_name}.{namespace}.svc.cluster.local"}
            status["components"] = {"predictor": {
                "url": f"http://{deployment_name}.{namespace}.example.com",
                "latestCreatedRevision": revision,
                **({"latestReadyRevision": revision} if ready else {}),
                "traffic": [{"revisionName": revision, "percent": 100, "latestRevision": True}],
            }}
            status["modelStatus"] = {
                "transitionStatus": "UpToDate" if ready else "InProgress",
                "states": {"activeModelState": "Loaded" if ready else "Loading", "targetModelState": "Loaded"},
                "copies": {"failedCopies": 0, "totalCopies": 1},
            }
        if status != (isvc.get("status") or {}):
            updated = copy(isvc)
            updated["status"] = status
            world.put(updated)
