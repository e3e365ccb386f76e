"""Structural schemas of the built-in kinds: the types Go's JSON decoding enforces before anything else runs.

The real server decodes a body into typed Go structs, so `"finalizers": "x"` or `"containers": "x"` never reach a
registry: the request fails with `json: cannot unmarshal string into Go struct field ...`. These schemas give the
same guarantee for the fields the strategies and printers read (and ObjectMeta, for every kind); unknown fields are
kept, nulls are allowed (Go decodes them as zero values), and nothing is defaulted or pruned. `decode_problem`
runs them through the schema validation of `validation.py` and words the first type error as Go would.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import FieldError
from .validation import type_errors

S: dict[str, Any] = {"type": "string"}
I32: dict[str, Any] = {"type": "integer", "format": "int32"}
I64: dict[str, Any] = {"type": "integer", "format": "int64"}
B: dict[str, Any] = {"type": "boolean"}
INT_OR_STRING: dict[str, Any] = {"x-kubernetes-int-or-string": True}
QUANTITIES: dict[str, Any] = {"type": "object", "additionalProperties": {}}  # resource.Quantity: number or string


def obj(go_type: str, **properties: dict[str, Any]) -> dict[str, Any]:
    """A Go struct: typed `properties`, other fields kept as they are."""
    return {
        "type": "object",
        "x-go-type": go_type,
        "properties": properties,
        "x-kubernetes-preserve-unknown-fields": True,
    }


def arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def strings(values: dict[str, Any] = S) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": values}


OBJECT_META: dict[str, Any] = obj(
    "v1.ObjectMeta",
    name=S,
    generateName=S,
    namespace=S,
    selfLink=S,
    uid=S,
    resourceVersion=S,
    generation=I64,
    creationTimestamp=S,
    deletionTimestamp=S,
    deletionGracePeriodSeconds=I64,
    labels=strings(),
    annotations=strings(),
    ownerReferences=arr(
        obj("v1.OwnerReference", apiVersion=S, kind=S, name=S, uid=S, controller=B, blockOwnerDeletion=B)
    ),
    finalizers=arr(S),
    managedFields=arr(
        obj("v1.ManagedFieldsEntry", manager=S, operation=S, apiVersion=S, time=S, fieldsType=S, subresource=S)
    ),
)


def _conditions(go_type: str) -> dict[str, Any]:
    return arr(obj(go_type, type=S, status=S, reason=S, message=S, lastTransitionTime=S, lastProbeTime=S))


def _root(kind: str, **properties: dict[str, Any]) -> dict[str, Any]:
    return obj(f"v1.{kind}", apiVersion=S, kind=S, metadata=OBJECT_META, **properties)


_CONTAINER = obj(
    "v1.Container",
    name=S,
    image=S,
    imagePullPolicy=S,
    command=arr(S),
    args=arr(S),
    workingDir=S,
    ports=arr(obj("v1.ContainerPort", name=S, containerPort=I32, hostPort=I32, protocol=S, hostIP=S)),
    env=arr(obj("v1.EnvVar", name=S, value=S)),
    resources=obj("v1.ResourceRequirements", requests=QUANTITIES, limits=QUANTITIES),
    terminationMessagePath=S,
    terminationMessagePolicy=S,
)
_POD_SPEC = obj(
    "v1.PodSpec",
    containers=arr(_CONTAINER),
    initContainers=arr(_CONTAINER),
    restartPolicy=S,
    terminationGracePeriodSeconds=I64,
    activeDeadlineSeconds=I64,
    dnsPolicy=S,
    nodeSelector=strings(),
    serviceAccountName=S,
    nodeName=S,
    hostNetwork=B,
    schedulerName=S,
    priorityClassName=S,
    priority=I32,
    tolerations=arr(obj("v1.Toleration", key=S, operator=S, value=S, effect=S, tolerationSeconds=I64)),
    readinessGates=arr(obj("v1.PodReadinessGate", conditionType=S)),
)
_CONTAINER_STATE = obj(
    "v1.ContainerState",
    waiting=obj("v1.ContainerStateWaiting", reason=S, message=S),
    running=obj("v1.ContainerStateRunning", startedAt=S),
    terminated=obj(
        "v1.ContainerStateTerminated",
        exitCode=I32,
        signal=I32,
        reason=S,
        message=S,
        startedAt=S,
        finishedAt=S,
        containerID=S,
    ),
)
_CONTAINER_STATUS = obj(
    "v1.ContainerStatus",
    name=S,
    state=_CONTAINER_STATE,
    lastState=_CONTAINER_STATE,
    ready=B,
    restartCount=I32,
    image=S,
    imageID=S,
    containerID=S,
    started=B,
)
_POD_TEMPLATE = obj("v1.PodTemplateSpec", metadata=OBJECT_META, spec=_POD_SPEC)
_LABEL_SELECTOR = obj(
    "v1.LabelSelector",
    matchLabels=strings(),
    matchExpressions=arr(obj("v1.LabelSelectorRequirement", key=S, operator=S, values=arr(S))),
)
_OBJECT_REFERENCE = obj(
    "v1.ObjectReference", kind=S, namespace=S, name=S, uid=S, apiVersion=S, resourceVersion=S, fieldPath=S
)

# (group, kind) -> the schema of the whole object; kinds not listed here get `_ENVELOPE` (ObjectMeta only).
BUILTIN: dict[tuple[str, str], dict[str, Any]] = {
    ("", "Namespace"): _root(
        "Namespace",
        spec=obj("v1.NamespaceSpec", finalizers=arr(S)),
        status=obj("v1.NamespaceStatus", phase=S, conditions=_conditions("v1.NamespaceCondition")),
    ),
    ("", "Node"): _root(
        "Node",
        spec=obj(
            "v1.NodeSpec",
            podCIDR=S,
            providerID=S,
            unschedulable=B,
            taints=arr(obj("v1.Taint", key=S, value=S, effect=S, timeAdded=S)),
        ),
        status=obj(
            "v1.NodeStatus",
            capacity=QUANTITIES,
            allocatable=QUANTITIES,
            conditions=_conditions("v1.NodeCondition"),
            addresses=arr(obj("v1.NodeAddress", type=S, address=S)),
            nodeInfo=obj(
                "v1.NodeSystemInfo",
                **{
                    name: S
                    for name in (
                        "machineID",
                        "systemUUID",
                        "bootID",
                        "kernelVersion",
                        "osImage",
                        "containerRuntimeVersion",
                        "kubeletVersion",
                        "kubeProxyVersion",
                        "operatingSystem",
                        "architecture",
                    )
                },
            ),
        ),
    ),
    ("", "Pod"): _root(
        "Pod",
        spec=_POD_SPEC,
        status=obj(
            "v1.PodStatus",
            phase=S,
            conditions=_conditions("v1.PodCondition"),
            message=S,
            reason=S,
            nominatedNodeName=S,
            hostIP=S,
            podIP=S,
            startTime=S,
            initContainerStatuses=arr(_CONTAINER_STATUS),
            containerStatuses=arr(_CONTAINER_STATUS),
            qosClass=S,
        ),
    ),
    ("", "Service"): _root(
        "Service",
        spec=obj(
            "v1.ServiceSpec",
            ports=arr(
                obj(
                    "v1.ServicePort",
                    name=S,
                    protocol=S,
                    appProtocol=S,
                    port=I32,
                    targetPort=INT_OR_STRING,
                    nodePort=I32,
                )
            ),
            selector=strings(),
            clusterIP=S,
            clusterIPs=arr(S),
            type=S,
            externalIPs=arr(S),
            sessionAffinity=S,
            externalName=S,
            ipFamilies=arr(S),
            ipFamilyPolicy=S,
            internalTrafficPolicy=S,
        ),
        status=obj(
            "v1.ServiceStatus",
            loadBalancer=obj("v1.LoadBalancerStatus", ingress=arr(obj("v1.LoadBalancerIngress", ip=S, hostname=S))),
        ),
    ),
    ("", "Event"): _root(
        "Event",
        involvedObject=_OBJECT_REFERENCE,
        reason=S,
        message=S,
        source=obj("v1.EventSource", component=S, host=S),
        firstTimestamp=S,
        lastTimestamp=S,
        count=I32,
        type=S,
        eventTime=S,
        action=S,
        reportingComponent=S,
        reportingInstance=S,
    ),
    ("", "ConfigMap"): _root("ConfigMap", immutable=B, data=strings(), binaryData=strings()),
    ("", "Secret"): _root("Secret", immutable=B, data=strings(), stringData=strings(), type=S),
    ("", "PersistentVolumeClaim"): _root(
        "PersistentVolumeClaim",
        spec=obj(
            "v1.PersistentVolumeClaimSpec",
            accessModes=arr(S),
            selector=_LABEL_SELECTOR,
            resources=obj("v1.VolumeResourceRequirements", requests=QUANTITIES, limits=QUANTITIES),
            volumeName=S,
            storageClassName=S,
            volumeMode=S,
            volumeAttributesClassName=S,
        ),
        status=obj("v1.PersistentVolumeClaimStatus", phase=S, accessModes=arr(S), capacity=QUANTITIES),
    ),
    ("", "ServiceAccount"): _root(
        "ServiceAccount",
        secrets=arr(_OBJECT_REFERENCE),
        imagePullSecrets=arr(obj("v1.LocalObjectReference", name=S)),
        automountServiceAccountToken=B,
    ),
    ("batch", "Job"): _root(
        "Job",
        spec=obj(
            "v1.JobSpec",
            parallelism=I32,
            completions=I32,
            activeDeadlineSeconds=I64,
            backoffLimit=I32,
            selector=_LABEL_SELECTOR,
            manualSelector=B,
            template=_POD_TEMPLATE,
            ttlSecondsAfterFinished=I32,
            completionMode=S,
            suspend=B,
        ),
        status=obj(
            "v1.JobStatus",
            conditions=_conditions("v1.JobCondition"),
            startTime=S,
            completionTime=S,
            active=I32,
            succeeded=I32,
            failed=I32,
            ready=I32,
        ),
    ),
    ("apps", "Deployment"): _root(
        "Deployment",
        spec=obj(
            "v1.DeploymentSpec",
            replicas=I32,
            selector=_LABEL_SELECTOR,
            template=_POD_TEMPLATE,
            strategy=obj(
                "v1.DeploymentStrategy",
                type=S,
                rollingUpdate=obj("v1.RollingUpdateDeployment", maxUnavailable=INT_OR_STRING, maxSurge=INT_OR_STRING),
            ),
            minReadySeconds=I32,
            revisionHistoryLimit=I32,
            paused=B,
            progressDeadlineSeconds=I32,
        ),
        status=obj(
            "v1.DeploymentStatus",
            observedGeneration=I64,
            replicas=I32,
            updatedReplicas=I32,
            readyReplicas=I32,
            availableReplicas=I32,
            unavailableReplicas=I32,
            conditions=_conditions("v1.DeploymentCondition"),
        ),
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _root(
        "CustomResourceDefinition",
        spec=obj(
            "v1.CustomResourceDefinitionSpec",
            group=S,
            names=obj(
                "v1.CustomResourceDefinitionNames",
                plural=S,
                singular=S,
                shortNames=arr(S),
                kind=S,
                listKind=S,
                categories=arr(S),
            ),
            scope=S,
            versions=arr(
                obj(
                    "v1.CustomResourceDefinitionVersion",
                    name=S,
                    served=B,
                    storage=B,
                    deprecated=B,
                    deprecationWarning=S,
                    schema=obj("v1.CustomResourceValidation", openAPIV3Schema=obj("v1.JSONSchemaProps")),
                    subresources=obj(
                        "v1.CustomResourceSubresources",
                        status=obj("v1.CustomResourceSubresourceStatus"),
                        scale=obj(
                            "v1.CustomResourceSubresourceScale",
                            specReplicasPath=S,
                            statusReplicasPath=S,
                            labelSelectorPath=S,
                        ),
                    ),
                    additionalPrinterColumns=arr(
                        obj(
                            "v1.CustomResourceColumnDefinition",
                            name=S,
                            type=S,
                            format=S,
                            description=S,
                            priority=I32,
                            jsonPath=S,
                        )
                    ),
                    selectableFields=arr(obj("v1.SelectableField", jsonPath=S)),
                )
            ),
        ),
    ),
    ("authorization.k8s.io", "SelfSubjectAccessReview"): _root(
        "SelfSubjectAccessReview",
        spec=obj(
            "v1.SelfSubjectAccessReviewSpec",
            resourceAttributes=obj(
                "v1.ResourceAttributes",
                namespace=S,
                verb=S,
                group=S,
                version=S,
                resource=S,
                subresource=S,
                name=S,
            ),
            nonResourceAttributes=obj("v1.NonResourceAttributes", path=S, verb=S),
        ),
    ),
    ("authorization.k8s.io", "SelfSubjectRulesReview"): _root(
        "SelfSubjectRulesReview", spec=obj("v1.SelfSubjectRulesReviewSpec", namespace=S)
    ),
}
_ENVELOPE = _root("Object")

DELETE_OPTIONS = obj(
    "v1.DeleteOptions",
    kind=S,
    apiVersion=S,
    gracePeriodSeconds=I64,
    preconditions=obj("v1.Preconditions", uid=S, resourceVersion=S),
    orphanDependents=B,
    propagationPolicy=S,
    dryRun=arr(S),
)


def schema_of(group: str, kind: str) -> dict[str, Any]:
    """The structural schema a `kind` object is decoded with (ObjectMeta only, for kinds not built in)."""
    return BUILTIN.get((group, kind), _ENVELOPE)


_JSON_NAMES = {"integer": "number", "number": "number", "boolean": "bool"}
_SCALARS = {"string": "string", "boolean": "bool", "number": "float64"}
_PATH_TOKEN = re.compile(r"\[[^\]]*\]|[^.\[]+")


def _go_type(schema: dict[str, Any]) -> str:
    if "x-go-type" in schema:
        return str(schema["x-go-type"])
    if schema.get("x-kubernetes-int-or-string"):
        return "intstr.IntOrString"
    kind = schema.get("type")
    if kind == "array":
        return "[]" + _go_type(schema.get("items") or {})
    if kind == "object":
        return "map[string]" + _go_type(schema.get("additionalProperties") or {})
    if kind == "integer":
        return "int32" if schema.get("format") == "int32" else "int64"
    return _SCALARS.get(kind or "", "interface {}")


def _unmarshal_message(schema: dict[str, Any], error: FieldError, struct: str) -> str:
    """`json: cannot unmarshal string into Go struct field ObjectMeta.metadata.finalizers of type []string`."""
    node, names = schema, []
    for token in _PATH_TOKEN.findall(error.field):
        if token.startswith("["):  # an index or a map key: Go's field path does not show it
            node = node.get("items") or node.get("additionalProperties") or {}
            continue
        if "x-go-type" in node and names:
            struct = str(node["x-go-type"]).rpartition(".")[2]
        node = (node.get("properties") or {}).get(token) or {}
        names.append(token)
    actual = _JSON_NAMES.get(error.value, error.value)
    if not names:
        return f"json: cannot unmarshal {actual} into Go value of type {struct}"
    return f"json: cannot unmarshal {actual} into Go struct field {struct}.{'.'.join(names)} of type {_go_type(node)}"


def decode_problem(schema: dict[str, Any], value: Any, struct: str) -> str | None:
    """Why decoding `value` into the typed struct `schema` describes would fail, or None when it would not."""
    found = type_errors(value, schema)
    return _unmarshal_message(schema, found[0], struct) if found else None
