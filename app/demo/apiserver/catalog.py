"""The kinds the demo server serves out of the box, written compactly.

Built-in Kubernetes kinds carry the printer columns and field selectors of the real server. The ML kinds hyperdesk
works with (jupyter-k8s, Kueue, Kubeflow, JobSet, HyperPod, KServe) are described by group, versions, names, scope
and printer columns, as their CRDs declare them; they have no schema until the real CRD is applied, at which point
`crds.py` refines the kind with the upstream openAPIV3Schema and validation starts.
"""

from __future__ import annotations

from .kinds import Kind, KindVersion, PrinterColumn, ScaleSpec
from .printers import (
    CONFIGMAP_COLUMNS,
    CRD_COLUMNS,
    DEPLOYMENT_COLUMNS,
    EVENT_COLUMNS,
    JOB_COLUMNS,
    NAMESPACE_COLUMNS,
    NODE_COLUMNS,
    POD_COLUMNS,
    PVC_COLUMNS,
    SECRET_COLUMNS,
    SERVICE_COLUMNS,
    SERVICEACCOUNT_COLUMNS,
)

AGE = PrinterColumn("Age", type="date", json_path=".metadata.creationTimestamp")


def _builtin(
    group: str,
    version: str,
    kind: str,
    plural: str,
    columns: tuple[PrinterColumn, ...],
    **options: object,
) -> Kind:
    options.setdefault("delete_returns_status", True)
    return Kind(
        group=group,
        kind=kind,
        plural=plural,
        versions=(KindVersion(version, storage=True, columns=columns),),
        builtin=True,
        **options,  # type: ignore[arg-type]
    )


Columns = tuple[tuple[str, str, str] | tuple[str, str, str, int], ...]


def _printer(columns: Columns) -> tuple[PrinterColumn, ...]:
    return tuple(
        PrinterColumn(name=c[0], type=c[1], json_path=c[2], priority=c[3] if len(c) > 3 else 0)  # type: ignore[misc]
        for c in columns
    ) or (AGE,)


def _custom(
    group: str,
    versions: tuple[str, ...],
    kind: str,
    plural: str,
    columns: Columns = (),
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    status: bool = True,
    scale: ScaleSpec | None = None,
    storage: str = "",
    version_columns: dict[str, Columns] | None = None,
) -> Kind:
    """A custom resource kind from a compact description: columns are (name, type, jsonPath[, priority]), the same
    for every version unless `version_columns` gives a version its own."""
    storage = storage or versions[-1]
    overrides = version_columns or {}
    return Kind(
        group=group,
        kind=kind,
        plural=plural,
        versions=tuple(
            KindVersion(v, storage=v == storage, columns=_printer(overrides.get(v, columns))) for v in versions
        ),
        namespaced=namespaced,
        short_names=short_names,
        status_subresource=status,
        scale=scale,
    )


_POD_FIELDS = (
    ("spec.nodeName", ".spec.nodeName"),
    ("spec.restartPolicy", ".spec.restartPolicy"),
    ("spec.schedulerName", ".spec.schedulerName"),
    ("spec.serviceAccountName", ".spec.serviceAccountName"),
    ("spec.hostNetwork", ".spec.hostNetwork"),
    ("status.phase", ".status.phase"),
    ("status.podIP", ".status.podIP"),
    ("status.nominatedNodeName", ".status.nominatedNodeName"),
)

_EVENT_FIELDS = (
    ("involvedObject.kind", ".involvedObject.kind"),
    ("involvedObject.namespace", ".involvedObject.namespace"),
    ("involvedObject.name", ".involvedObject.name"),
    ("involvedObject.uid", ".involvedObject.uid"),
    ("involvedObject.apiVersion", ".involvedObject.apiVersion"),
    ("involvedObject.resourceVersion", ".involvedObject.resourceVersion"),
    ("involvedObject.fieldPath", ".involvedObject.fieldPath"),
    ("reason", ".reason"),
    ("reportingComponent", ".reportingComponent"),
    ("source", ".source.component"),
    ("type", ".type"),
)

CRD_KIND = _builtin(
    "apiextensions.k8s.io",
    "v1",
    "CustomResourceDefinition",
    "customresourcedefinitions",
    CRD_COLUMNS,
    namespaced=False,
    short_names=("crd", "crds"),
    status_subresource=True,
    tracks_generation=True,
)

NAMESPACE_KIND = _builtin(
    "",
    "v1",
    "Namespace",
    "namespaces",
    NAMESPACE_COLUMNS,
    namespaced=False,
    short_names=("ns",),
    status_subresource=True,
    tracks_generation=False,
    name_rule="label",
    field_labels=(("status.phase", ".status.phase"),),
    verbs=("create", "delete", "get", "list", "patch", "update", "watch"),  # no deletecollection, as upstream
)

BUILTIN_KINDS: tuple[Kind, ...] = (
    NAMESPACE_KIND,
    _builtin(
        "",
        "v1",
        "Node",
        "nodes",
        NODE_COLUMNS,
        namespaced=False,
        short_names=("no",),
        status_subresource=True,
        tracks_generation=False,
        field_labels=(("spec.unschedulable", ".spec.unschedulable"),),
    ),
    _builtin(
        "",
        "v1",
        "Pod",
        "pods",
        POD_COLUMNS,
        short_names=("po",),
        categories=("all",),
        status_subresource=True,
        tracks_generation=False,
        field_labels=_POD_FIELDS,
        delete_returns_status=False,
    ),
    _builtin(
        "",
        "v1",
        "Service",
        "services",
        SERVICE_COLUMNS,
        short_names=("svc",),
        categories=("all",),
        status_subresource=True,
        tracks_generation=False,
        name_rule="dns1035",
        delete_returns_status=False,
    ),
    _builtin(
        "",
        "v1",
        "Event",
        "events",
        EVENT_COLUMNS,
        short_names=("ev",),
        tracks_generation=False,
        field_labels=_EVENT_FIELDS,
    ),
    _builtin("", "v1", "ConfigMap", "configmaps", CONFIGMAP_COLUMNS, short_names=("cm",), tracks_generation=False),
    _builtin(
        "",
        "v1",
        "Secret",
        "secrets",
        SECRET_COLUMNS,
        tracks_generation=False,
        field_labels=(("type", ".type"),),
    ),
    _builtin(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        PVC_COLUMNS,
        short_names=("pvc",),
        status_subresource=True,
        tracks_generation=False,
        delete_returns_status=False,
    ),
    _builtin(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        SERVICEACCOUNT_COLUMNS,
        short_names=("sa",),
        tracks_generation=False,
        delete_returns_status=False,
    ),
    _builtin(
        "batch",
        "v1",
        "Job",
        "jobs",
        JOB_COLUMNS,
        categories=("all",),
        status_subresource=True,
        field_labels=(("status.successful", ".status.succeeded"),),
    ),
    _builtin(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        DEPLOYMENT_COLUMNS,
        short_names=("deploy",),
        categories=("all",),
        status_subresource=True,
        scale=ScaleSpec(".spec.replicas", ".status.replicas", ".spec.selector"),
    ),
    CRD_KIND,
    _builtin(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        (),
        namespaced=False,
        verbs=("create",),
        tracks_generation=False,
    ),
    _builtin(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        (),
        namespaced=False,
        verbs=("create",),
        tracks_generation=False,
    ),
    _builtin(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        (),
        namespaced=False,
        verbs=("create",),
        tracks_generation=False,
    ),
)

_KUEUE = "kueue.x-k8s.io"
_KUEUE_VERSIONS = ("v1beta1", "v1beta2")
_REPLICAS = ScaleSpec(".spec.replicas", ".status.replicas", ".status.selector")
_CLUSTER_QUEUE_COLUMNS: Columns = (
    ("Cohort", "string", ".spec.cohortName"),  # v1beta1: .spec.cohort (see conversion.py)
    ("Strategy", "string", ".spec.queueingStrategy", 1),
    ("Pending Workloads", "integer", ".status.pendingWorkloads"),
    ("Admitted Workloads", "integer", ".status.admittedWorkloads", 1),
)

CUSTOM_KINDS: tuple[Kind, ...] = (
    # jupyter-k8s (SageMaker HyperPod Spaces)
    _custom(
        "workspace.jupyter.org",
        ("v1alpha1",),
        "Workspace",
        "workspaces",
        (
            ("Available", "string", '.status.conditions[?(@.type=="Available")].status'),
            ("Progressing", "string", '.status.conditions[?(@.type=="Progressing")].status'),
            ("Degraded", "string", '.status.conditions[?(@.type=="Degraded")].status'),
            ("Age", "date", ".metadata.creationTimestamp"),
            ("CreatedBy", "string", ".metadata.annotations['workspace\\.jupyter\\.org/created-by']", 1),
            ("AccessType", "string", ".spec.accessType", 1),
        ),
    ),
    _custom(
        "workspace.jupyter.org",
        ("v1alpha1",),
        "WorkspaceTemplate",
        "workspacetemplates",
        (
            ("Display Name", "string", ".spec.displayName"),
            ("Default Image", "string", ".spec.defaultImage"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ),
    ),
    _custom("workspace.jupyter.org", ("v1alpha1",), "WorkspaceAccessStrategy", "workspaceaccessstrategies"),
    # Create-only, never stored or listed: the reply's status.workspaceConnectionUrl is the URL. Served only once
    # something registers its answer (ApiServer.register_review; the simulator's jupyter-k8s does), else 404.
    Kind(
        group="connection.workspace.jupyter.org",
        kind="WorkspaceConnection",
        plural="workspaceconnections",
        versions=(KindVersion("v1alpha1", storage=True, columns=(AGE,)),),
        verbs=("create",),
        tracks_generation=False,
    ),
    # Kueue
    _custom(
        _KUEUE,
        _KUEUE_VERSIONS,
        "Workload",
        "workloads",
        (
            ("Queue", "string", ".spec.queueName"),
            ("Reserved in", "string", ".status.admission.clusterQueue"),
            ("Admitted", "string", ".status.conditions[?(@.type=='Admitted')].status"),
            ("Finished", "string", ".status.conditions[?(@.type=='Finished')].status"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ),
        short_names=("kwl", "kueueworkload", "kueueworkloads"),
    ),
    _custom(
        _KUEUE,
        _KUEUE_VERSIONS,
        "ClusterQueue",
        "clusterqueues",
        _CLUSTER_QUEUE_COLUMNS,
        namespaced=False,
        short_names=("cq",),
        version_columns={"v1beta1": (("Cohort", "string", ".spec.cohort"), *_CLUSTER_QUEUE_COLUMNS[1:])},
    ),
    _custom(
        _KUEUE,
        _KUEUE_VERSIONS,
        "LocalQueue",
        "localqueues",
        (
            ("ClusterQueue", "string", ".spec.clusterQueue"),
            ("Pending Workloads", "integer", ".status.pendingWorkloads"),
            ("Admitted Workloads", "integer", ".status.admittedWorkloads"),
        ),
        short_names=("queue", "queues", "lq"),
    ),
    _custom(
        _KUEUE,
        _KUEUE_VERSIONS,
        "WorkloadPriorityClass",
        "workloadpriorityclasses",
        (("Value", "integer", ".value"),),
        namespaced=False,
        short_names=("wpc",),
        status=False,
    ),
    _custom(
        _KUEUE,
        _KUEUE_VERSIONS,
        "ResourceFlavor",
        "resourceflavors",
        namespaced=False,
        short_names=("flavor", "flavors", "rf"),
        status=False,
    ),
    # Training
    _custom(
        "sagemaker.amazonaws.com",
        ("v1",),
        "HyperPodPyTorchJob",
        "hyperpodpytorchjobs",
        (
            ("State", "string", ".status.conditions[-1:].type"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ),
    ),
    _custom(
        "kubeflow.org",
        ("v1",),
        "PyTorchJob",
        "pytorchjobs",
        (
            ("State", "string", ".status.conditions[-1:].type"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ),
        scale=ScaleSpec(
            ".spec.pytorchReplicaSpecs.Worker.replicas",
            ".status.replicaStatuses.Worker.active",
            ".status.replicaStatuses.Worker.selector",
        ),
    ),
    _custom("kubeflow.org", ("v1",), "Notebook", "notebooks"),
    _custom(
        "jobset.x-k8s.io",
        ("v1alpha2",),
        "JobSet",
        "jobsets",
        (
            ("TerminalState", "string", ".status.terminalState"),
            ("Restarts", "string", ".status.restarts"),
            ("Completed", "string", '.status.conditions[?(@.type=="Completed")].status'),
            ("Suspended", "string", ".spec.suspend"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ),
    ),
    # Inference
    _custom(
        "inference.sagemaker.aws.amazon.com",
        ("v1alpha1", "v1"),
        "JumpStartModel",
        "jumpstartmodels",
        scale=_REPLICAS,
        storage="v1",
    ),
    _custom(
        "inference.sagemaker.aws.amazon.com",
        ("v1alpha1", "v1"),
        "InferenceEndpointConfig",
        "inferenceendpointconfigs",
        scale=_REPLICAS,
        storage="v1",
    ),
    _custom(
        "serving.kserve.io",
        ("v1beta1",),
        "InferenceService",
        "inferenceservices",
        (
            ("URL", "string", ".status.url"),
            ("Ready", "string", ".status.conditions[?(@.type=='Ready')].status"),
            ("LatestReadyRevision", "string", ".status.components.predictor.latestReadyRevision", 1),
            ("Age", "date", ".metadata.creationTimestamp"),
        ),
        short_names=("isvc",),
    ),
)

DEFAULT_KINDS: tuple[Kind, ...] = BUILTIN_KINDS + CUSTOM_KINDS
