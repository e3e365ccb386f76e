"""Fixtures for the Endpoints pane: manifests of each inference kind the simulated cluster serves.

- `jumpstart()`, `endpoint_config()`, `inference_service()`: manifests of each kind in the bare cluster's
  `hyperpod-ns-nlp` namespace, on an instance type its nodes offer (pass another, or a `storage` URI with an unknown
  scheme, to make it fail); `create(handle, *objects)` creates them as a client would: hyperdesk's own submit
  (checked, server dry run, then POST) over HTTP, on its own event loop in a helper thread, so both plain and async
  tests can call it.
- `serving_cluster` (module scope): the bare cluster with one endpoint of each kind serving, plus a JumpStartModel
  and an InferenceService that fail to deploy.

`DeletionFailed` is reached by giving a model server pod a finalizer of its own before deleting the endpoint (the
operator's deletion timeout passes); `DeletionComplete` is never seen (the object goes with that write), so the
model tests cover it from plain objects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from app.demo.sim import DemoCluster, DemoThread

NAMESPACE = "hyperpod-ns-nlp"
G5 = "ml.g5.12xlarge"


def jumpstart(name: str = "deepseek-small", instance_type: str = G5, replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "inference.sagemaker.aws.amazon.com/v1", "kind": "JumpStartModel",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"sageMakerEndpoint": {"name": f"{name}-ep"}, "replicas": replicas,
                     "model": {"modelHubName": "SageMakerPublicHub", "modelId": "deepseek-llm-r1-distill-qwen-1-5b",
                               "modelVersion": "2.0.4"},
                     "server": {"instanceType": instance_type}}}


def endpoint_config(name: str = "llama3-8b", instance_type: str = G5, replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "inference.sagemaker.aws.amazon.com/v1", "kind": "InferenceEndpointConfig",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"modelName": "llama3-8b-instruct", "endpointName": f"{name}-ep", "instanceType": instance_type,
                     "replicas": replicas,
                     "autoScalingSpec": {"minReplicaCount": 1, "maxReplicaCount": 4},
                     "modelSourceConfig": {"modelSourceType": "s3", "modelLocation": "llama-3-8b-instruct",
                                           "s3Storage": {"bucketName": "demo-models", "region": "us-west-2"}},
                     "worker": {"image": "ghcr.io/huggingface/text-generation-inference:2.4.0",
                                "resources": {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 1}},
                                "modelInvocationPort": {"containerPort": 8080, "name": "http"}}}}


def inference_service(name: str = "clip", storage: str = "s3://demo-models/clip") -> dict[str, Any]:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 3,
                                   "nodeSelector": {"node.kubernetes.io/instance-type": G5},
                                   "model": {"modelFormat": {"name": "huggingface"}, "storageUri": storage,
                                             "resources": {"requests": {"nvidia.com/gpu": "1"},
                                                           "limits": {"nvidia.com/gpu": "1"}}}}}}


def create(handle: DemoThread, *objects: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _create(handle, list(objects))).result(timeout=60)


async def _create(handle: DemoThread, objects: list[dict[str, Any]]) -> None:
    from app.cluster.actions import submit
    from app.cluster.connection import ClusterConnection
    from app.cluster.discovery import discover

    conn = ClusterConnection([handle.kubeconfig_path], None)
    try:
        await conn.open()
        await submit(conn, objects, readonly=False, discovery=await discover(conn), namespace=NAMESPACE)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def serving_cluster() -> Iterator[DemoThread]:
    """One endpoint of each kind, serving (1 replica each), plus one of each that fails to deploy."""
    with DemoCluster.start_in_thread(scenario="bare", seed=5, speed=0, mlflow=False) as handle:
        create(handle, jumpstart(), endpoint_config(), inference_service(),
               jumpstart("too-big", instance_type="ml.g5.48xlarge"), inference_service("broken", storage="ftp://x/y"))
        handle.advance(90)
        yield handle
        simulation = handle.cluster.simulation
        assert simulation is None or list(simulation.errors) == []
