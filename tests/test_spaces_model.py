"""The pure functions behind the Spaces pane: status from conditions, quantities, template checks, Notebook rows."""

from __future__ import annotations

import pytest

from app.model.spaces import (
    COMPUTE_FIELDS, SpaceRequest, notebook_row, resource_block, offered_mig_profiles, quantity, resolve, space_rows, template_info, validate_request,
    workspace_manifest, workspace_status,
)


def ws(desired: str = "Running", conditions: list[dict] | None = None, annotations: dict | None = None,
       deleting: bool = False) -> dict:
    meta: dict = {"name": "w", "namespace": "ns", "annotations": annotations or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-27T12:00:00Z"
    return {"metadata": meta, "spec": {"desiredStatus": desired}, "status": {"conditions": conditions or []}}


def c(type_: str, status: str, reason: str = "R", message: str = "") -> dict:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def test_status_follows_the_conditions_and_the_desired_status() -> None:
    assert workspace_status(ws(conditions=[c("Available", "True")])) == ("Running", "")
    assert workspace_status(ws(conditions=[c("Available", "False", message="Waiting for pod")])) == (
        "Starting", "Waiting for pod")
    assert workspace_status(ws())[0] == "Starting", "no conditions yet: the controller has not acted"
    assert workspace_status(ws("Stopped", [c("Stopped", "False", message="Workspace is stopping")])) == (
        "Stopping", "Workspace is stopping")
    assert workspace_status(ws("Stopped", [c("Stopped", "True")])) == ("Stopped", "")
    assert workspace_status(ws("Stopped")) == ("Stopped", ""), "created stopped: nothing to stop"
    assert workspace_status(ws(conditions=[c("Available", "False"), c("Degraded", "True", message="crash")])) == (
        "Degraded", "crash")
    preempted = ws("Stopped", [c("Stopped", "True", "Preempted")],
                   {"workspace.jupyter.org/preemption-reason": "Workspace preempted due to resource contention"})
    assert workspace_status(preempted) == ("Preempted", "Workspace preempted due to resource contention")
    stale = ws("Stopped", [c("Stopped", "True", "DesiredStateStopped")],
               {"workspace.jupyter.org/preemption-reason": "Workspace preempted due to resource contention"})
    assert workspace_status(stale) == ("Stopped", ""), "an old note alone: stopped by its user since"
    assert workspace_status(ws(conditions=[c("Available", "True")], deleting=True))[0] == "Stopping"


def test_quantities() -> None:
    assert quantity("500m") == quantity("0.5")
    assert quantity("2Gi") == 2 * 1024**3 and quantity("1G") == 10**9
    assert quantity(4) == 4
    for bad in ("", "lots", "-1", "1.2.3", None, True):
        assert quantity(bad) is None


TEMPLATE = template_info({
    "metadata": {"name": "t", "namespace": "jupyter-k8s-system"},
    "spec": {"displayName": "T", "appType": "jupyterlab", "defaultImage": "img:1", "allowedImages": ["img:1", "img:2"],
             "defaultResources": {"requests": {"cpu": "2", "memory": "8Gi"}},
             "resourceBounds": {"resources": {"cpu": {"min": "500m", "max": "8"}, "nvidia.com/gpu": {"max": "1"},
                                              "nvidia.com/mig-1g.10gb": {"max": "1"}}},
             "primaryStorage": {"defaultSize": "20Gi", "minSize": "5Gi", "maxSize": "100Gi"},
             "defaultIdleShutdown": {"enabled": True, "idleTimeoutInMinutes": 60}},
})
OFFER = {"nvidia.com/gpu": 8, "nvidia.com/mig-1g.10gb": 7}


def test_defaults_come_from_the_template_and_bounds_are_inclusive() -> None:
    request = resolve(SpaceRequest(name="lab", namespace="ns"), TEMPLATE)
    assert (request.image, request.cpu, request.memory, request.storage, request.idle_minutes) == (
        "img:1", "2", "8Gi", "20Gi", 60)
    assert validate_request(request, TEMPLATE, gpu_offer=OFFER) == []
    edge = resolve(SpaceRequest(name="lab", namespace="ns", cpu="8", storage="100Gi", gpus=1, image="img:2"), TEMPLATE)
    assert validate_request(edge, TEMPLATE, gpu_offer=OFFER) == []
    manifest = workspace_manifest(edge, TEMPLATE)
    assert manifest["spec"]["resources"] == {"requests": {"cpu": "8", "memory": "8Gi", "nvidia.com/gpu": "1"},
                                             "limits": {"nvidia.com/gpu": "1"}}
    assert manifest["spec"]["idleShutdown"]["detection"]["httpGet"]["port"] == 8888


def test_every_problem_is_named() -> None:
    request = resolve(SpaceRequest(name="x" * 46, namespace="Bad NS", cpu="100m", storage="1Ti", gpus=1,
                                   mig_profile="1g.10gb", image="other:1", idle_minutes=-5), TEMPLATE)
    problems = validate_request(request, TEMPLATE, gpu_offer=OFFER, queues=[], priorities=["p"])
    assert problems == [
        f"name {'x' * 46!r}: at most 45 characters (its Service is workspace-<name>-service)",
        "namespace 'Bad NS' is not a valid namespace name",
        "image 'other:1' is not allowed by t (allowed: img:1, img:2; custom images are off)",
        "GPUs: ask for whole GPUs or a MIG profile, not both",
        "CPU 100m is below the template's minimum 500m",
        "storage 1Ti is above the template's maximum 100Gi",
        "idle shutdown: minutes must not be negative (0 turns it off)",
    ]
    bogus = resolve(SpaceRequest(name="lab", namespace="ns", mig_profile="9z", queue="q", priority="none"), TEMPLATE)
    assert validate_request(bogus, TEMPLATE, gpu_offer=OFFER, queues=["ns-localqueue"], priorities=["p"]) == [
        "MIG profile 9z: no node offers it (offered: 1g.10gb)",
        "queue 'q': no such LocalQueue in ns (known: ns-localqueue)",
        "priority 'none': no such WorkloadPriorityClass (known: p)",
    ]
    unknown_offer = validate_request(bogus, TEMPLATE)
    assert unknown_offer[0] == "MIG profile '9z' is not a profile name (like 1g.10gb)", "no offer known: the name is checked"
    for advertised in ("1g.23gb-me", "1c.3g.20gb", "1g.10gb+me"):
        odd = SpaceRequest(name="lab", namespace="ns", display_name="Lab", gpus=0, mig_profile=advertised)
        assert validate_request(odd, None, gpu_offer={f"nvidia.com/mig-{advertised}": 1}) == [], advertised
        assert validate_request(odd, None) == [], f"{advertised} looks like a profile name"
    assert validate_request(request, TEMPLATE, gpu_offer=OFFER, fields=COMPUTE_FIELDS) == [
        "GPUs: ask for whole GPUs or a MIG profile, not both", "CPU 100m is below the template's minimum 500m"]
    no_gpus = resolve(SpaceRequest(name="lab", namespace="ns", gpus=1), TEMPLATE)
    assert validate_request(no_gpus, TEMPLATE, gpu_offer={"nvidia.com/mig-1g.10gb": 7}) == [
        "GPUs: no schedulable node offers whole GPUs (nvidia.com/gpu)"]


def test_mig_profiles_offered_by_schedulable_nodes_only() -> None:
    nodes = [
        {"spec": {}, "status": {"allocatable": {"nvidia.com/mig-1g.10gb": "7", "cpu": "192"}}},
        {"spec": {"unschedulable": True}, "status": {"allocatable": {"nvidia.com/mig-3g.40gb": "2"}}},
        {"spec": {}, "status": {"allocatable": {"nvidia.com/mig-2g.20gb": "0", "nvidia.com/gpu": "8"}}},
    ]
    assert offered_mig_profiles(nodes) == ["1g.10gb"]


def test_kubeflow_notebooks_are_rows_too() -> None:
    notebook = {
        "metadata": {"name": "nb", "namespace": "kubeflow-user", "annotations": {"notebooks.kubeflow.org/creator": "ann"},
                     "creationTimestamp": "2026-11-27T10:00:00Z"},
        "spec": {"template": {"spec": {"containers": [{"name": "nb", "image": "kubeflownotebookswg/codeserver:v1",
                                                       "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                                                                     "limits": {"nvidia.com/gpu": "1"}}}]}}},
        "status": {"readyReplicas": 1},
    }
    row = notebook_row(notebook)
    assert (row.kind, row.status, row.owner, row.app_type, row.gpus, row.cpu) == (
        "Notebook", "Running", "ann", "Code Editor", 1, "1")
    notebook["metadata"]["annotations"]["kubeflow-resource-stopped"] = "2026-11-27T11:00:00Z"
    notebook["status"]["readyReplicas"] = 0
    assert notebook_row(notebook).status == "Stopped"
    rows = space_rows({"notebooks": {"kubeflow-user/nb": notebook}}, owner="someone-else")
    assert rows == []


LIMITED = template_info({
    "metadata": {"name": "lim", "namespace": "jupyter-k8s-system"},
    "spec": {"displayName": "L", "defaultImage": "img:1",
             "defaultResources": {"requests": {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": "1"},
                                  "limits": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}},
             "defaultIdleShutdown": {"enabled": True, "idleTimeoutInMinutes": 60},
             "idleShutdownOverrides": {"allow": True, "minIdleTimeoutInMinutes": 30, "maxIdleTimeoutInMinutes": 240}},
})


def test_a_new_space_keeps_the_templates_limits_and_zero_gpus_means_none() -> None:
    default = workspace_manifest(resolve(SpaceRequest(name="lab", namespace="ns"), LIMITED), LIMITED)
    assert default["spec"]["resources"] == {"requests": {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": "1"},
                                            "limits": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}}
    assert "labels" not in default["metadata"], "the template is named by spec.templateRef, not a label"
    cpu_only = resolve(SpaceRequest(name="lab", namespace="ns", gpus=0, cpu="4"), LIMITED)
    assert cpu_only.gpus == 0
    assert workspace_manifest(cpu_only, LIMITED)["spec"]["resources"] == {
        "requests": {"cpu": "4", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}, \
        "0 GPUs is none; a CPU limit below the new request rises to it"
    mig = resolve(SpaceRequest(name="lab", namespace="ns", mig_profile="1g.10gb"), LIMITED)
    assert mig.gpus == 0 and workspace_manifest(mig, LIMITED)["spec"]["resources"]["limits"] == {
        "cpu": "2", "memory": "8Gi", "nvidia.com/mig-1g.10gb": "1"}


def test_an_edit_changes_only_what_was_asked() -> None:
    own = {"limits": {"nvidia.com/gpu": "2", "memory": "32Gi"}, "requests": {"cpu": "4"},
           "claims": [{"name": "scratch"}]}
    assert resource_block("8", "", 2, "", own) == {
        "claims": [{"name": "scratch"}], "requests": {"cpu": "8", "nvidia.com/gpu": "2"},
        "limits": {"memory": "32Gi", "nvidia.com/gpu": "2"}}
    assert resource_block("", "", 0, "1g.10gb", own) == {
        "claims": [{"name": "scratch"}], "requests": {"cpu": "4", "nvidia.com/mig-1g.10gb": "1"},
        "limits": {"memory": "32Gi", "nvidia.com/mig-1g.10gb": "1"}}


def test_idle_shutdown_stays_within_the_templates_overrides() -> None:
    def problems(minutes, template=LIMITED):
        return validate_request(resolve(SpaceRequest(name="lab", namespace="ns", idle_minutes=minutes), template),
                                template)

    assert problems(None) == [] and problems(30) == [] and problems(240) == []
    assert problems(10) == ["idle shutdown 10 minutes is below the template's minimum 30"]
    assert problems(600) == ["idle shutdown 600 minutes is above the template's maximum 240"]
    assert problems(0) == ["idle shutdown: lim requires it (at most 240 minutes)"]
    fixed = template_info({"metadata": {"name": "fixed", "namespace": "x"},
                           "spec": {"defaultIdleShutdown": {"enabled": True, "idleTimeoutInMinutes": 60},
                                    "idleShutdownOverrides": {"allow": False}}})
    assert problems(60, fixed) == []
    assert problems(0, fixed) == ["idle shutdown: fixed does not let a space change it (it is 60 minutes)"]
    assert problems(90, fixed) == ["idle shutdown: fixed does not let a space change it (it is 60 minutes)"]
    assert "idleShutdown" not in workspace_manifest(resolve(SpaceRequest(name="l", namespace="n"), fixed), fixed)["spec"]


@pytest.mark.parametrize(("text", "expected"), [
    ("", (None, None)), (" 2 ", (2, None)), ("+3", (3, None)), ("0", (0, None)), ("-1", (-1, None)),
    ("one", (None, "GPUs 'one' is not a whole number")), ("1.5", (None, "GPUs '1.5' is not a whole number")),
    ("l", (None, "GPUs 'l' is not a whole number")), ("1_0", (None, "GPUs '1_0' is not a whole number")),
    ("-", (None, "GPUs '-' is not a whole number")),
])
def test_a_form_number_is_read_whole_or_said_to_be_bad(text, expected):
    from app.model.spaces import whole_number

    assert whole_number("GPUs", text) == expected
