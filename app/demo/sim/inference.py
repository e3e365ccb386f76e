"""Inference endpoints: the HyperPod inference operator (JumpStartModel, InferenceEndpointConfig) and KServe.

Each endpoint gets a Deployment of model-server pods (GPU requests, the instance type as node selector, a readiness
probe that waits for the model to load) and a Service, and moves through its real states:

- HyperPod: `status.state` `DeploymentPending` -> `DeploymentInProgress` -> `DeploymentComplete`, with
  `deploymentStatus`, `replicas`, `selector`, `endpoints.sagemaker{state: CreationInProgress -> InService,
  endpointArn}` and a `Ready` condition. The Service `<name>-service` (port 8080) answers `POST /invocations`.
- KServe InferenceService: conditions `PredictorReady`, `IngressReady`, `Ready`, `url`, `address.url`,
  `components.predictor{url, latestReadyRevision, traffic}`, `modelStatus`. The Service `<name>-predictor`
  (port 80) answers `POST /v1/models/<name>:predict` and `POST /openai/v1/completions`.

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


class Inference(Controller):
    name = "inference-controllers"
    watches = frozenset({(SAGEMAKER, "JumpStartModel"), (SAGEMAKER, "InferenceEndpointConfig"),
                         ("serving.kserve.io", "InferenceService"), ("apps", "Deployment"), ("", "Pod")})

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._seen: dict[str, float] = {}
        self._served: set[tuple[str, str, int]] = set()
        self._logged: dict[str, str] = {}  # pod uid -> what its log says so far ("start", "ready")

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
            world.proxies.register_service(namespace, service["metadata"]["name"], port, self._handler(model))
            self._served.add(key)
        current = world.cache.get("apps/v1", "Deployment", deployment["metadata"]["name"], namespace)
        if current is None:
            current = world.create(deployment)
        return current

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
                    "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
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

    def _handler(self, model: str) -> Any:
        async def handle(request: web.Request, path: str) -> web.StreamResponse:
            route = path.split("?", 1)[0]
            if request.method == "GET" and route in ("/ping", "/health", "/v1/models", f"/v1/models/{model}"):
                return web.json_response({"status": "Healthy", "name": model, "ready": True})
            if request.method != "POST":
                return web.json_response({"error": f"{request.method} {route} is not supported"}, status=405)
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                return web.json_response({"error": "the body must be JSON"}, status=400)
            text, latency = completion(_prompt_of(body), model)
            await asyncio.sleep(latency / 1000)
            headers = {"X-Demo-Latency-Ms": str(latency)}
            if route.endswith(":predict"):
                return web.json_response({"predictions": [text]}, headers=headers)
            if route.startswith("/openai/v1/"):
                digest = hashlib.sha256(text.encode()).hexdigest()[:12]
                return web.json_response({"id": f"cmpl-demo-{digest}", "object": "text_completion",
                                          "model": model, "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                                          "usage": {"prompt_tokens": len(_prompt_of(body).split()),
                                                    "completion_tokens": len(text.split())}}, headers=headers)
            return web.json_response([{"generated_text": text}], headers=headers)

        return handle

    # --- HyperPod inference operator ------------------------------------------------------------------------------

    def _hyperpod(self, endpoint: dict[str, Any]) -> None:
        world = self.world
        meta, spec = endpoint["metadata"], endpoint.get("spec") or {}
        name, namespace = meta["name"], meta["namespace"]
        now = world.clock.timestamp()
        status = copy(endpoint.get("status") or {})
        conditions = status.setdefault("conditions", [])
        jumpstart = endpoint["kind"] == "JumpStartModel"
        if jumpstart:
            model = (spec.get("model") or {}).get("modelId", name)
            instance_type = (spec.get("server") or {}).get("instanceType", "")
            endpoint_name = (spec.get("sageMakerEndpoint") or {}).get("name", name)
            replicas = int((spec.get("server") or {}).get("minAutoScaleReplicas", 1) or 1)
            port = 8080
            resources = {"requests": {"nvidia.com/gpu": "1", "cpu": "8", "memory": "30Gi"}, "limits": {"nvidia.com/gpu": "1"}}
            image = f"763104351884.dkr.ecr.{REGION}.amazonaws.com/djl-inference:0.31.0-lmi13.0.0-cu124"
        else:
            model = spec.get("modelName", name)
            instance_type = spec.get("instanceType", "")
            endpoint_name = spec.get("endpointName", name)
            replicas = int(spec.get("replicas", 1) or 1)
            worker = spec.get("worker") or {}
            port = int((worker.get("modelInvocationPort") or {}).get("containerPort", 8080))
            resources = worker.get("resources") or {"requests": {"nvidia.com/gpu": "1"}}
            image = worker.get("image", "ghcr.io/huggingface/text-generation-inference:2.4.0")
        status["observedGeneration"] = meta.get("generation", 1)
        if self._pending(endpoint):
            status["state"] = "DeploymentPending"
            set_condition(conditions, "Ready", "False", "DeploymentPending", "Waiting for the deployment to be created", now)
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
        model = (model_spec.get("modelFormat") or {}).get("name", "huggingface")
        status = copy(isvc.get("status") or {})
        conditions = status.setdefault("conditions", [])
        status["observedGeneration"] = meta.get("generation", 1)
        if self._pending(isvc):
            for type_ in ("PredictorReady", "IngressReady", "Ready"):
                set_condition(conditions, type_, "Unknown", "", "", now)
            status["modelStatus"] = {"transitionStatus": "InProgress", "states": {"activeModelState": "", "targetModelState": "Pending"}}
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
                          "spec": {"replicas": int(predictor.get("minReplicas", 1) or 1),
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
