"""Pure functions of the embedded API server: selectors, patches, schema validation, JSONPath, printing."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.demo.apiserver.catalog import DEFAULT_KINDS
from app.demo.apiserver.errors import ApiError
from app.demo.apiserver.jsonpath import find_first
from app.demo.apiserver.kinds import KindRegistry, sorted_versions
from app.demo.apiserver.patch import json_patch, merge_patch, strategic_merge_patch
from app.demo.apiserver.printers import human_duration, pod_ready, pod_restarts, pod_status
from app.demo.apiserver.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from app.demo.apiserver.validation import apply_schema, name_errors

REGISTRY = KindRegistry(DEFAULT_KINDS)
POD = REGISTRY.lookup("", "v1", "pods")
WORKLOAD = REGISTRY.lookup("kueue.x-k8s.io", "v1beta2", "workloads")


# --- label selectors -------------------------------------------------------------------------------------------

LABELS = {"app": "trainer", "tier": "gpu", "gen": "5"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=trainer", True),
        ("app==trainer", True),
        ("app!=trainer", False),
        ("app!=other", True),
        ("missing!=x", True),
        ("tier in (gpu,cpu)", True),
        ("tier notin (gpu)", False),
        ("tier notin (cpu)", True),
        ("app", True),
        ("!app", False),
        ("!missing", True),
        ("app=trainer,tier in (cpu, gpu),!missing", True),
        ("app=trainer,tier=cpu", False),
        ("gen>4", True),
        ("gen<4", False),
        ("", True),
    ],
)
def test_label_selector_operators(selector: str, expected: bool) -> None:
    assert labels_match(parse_label_selector(selector), LABELS) is expected


@pytest.mark.parametrize("selector", ["app in ()", "a b c", "bad key!=x", "app=not valid value", "app,,tier"])
def test_malformed_label_selector_is_a_400(selector: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_label_selector(selector)
    assert caught.value.code == 400
    assert "unable to parse requirement" in caught.value.message


def test_field_selectors_on_pods() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    assert fields_match(parse_field_selector("status.phase=Running,spec.nodeName=n1", POD), pod)
    assert not fields_match(parse_field_selector("status.phase!=Running", POD), pod)
    assert fields_match(parse_field_selector("metadata.name=p,metadata.namespace==ns", POD), pod)
    unscheduled = {"metadata": {"name": "q"}, "spec": {}}
    assert fields_match(parse_field_selector("spec.nodeName=", POD), unscheduled)


def test_unknown_field_label_is_rejected_with_the_real_wording() -> None:
    with pytest.raises(ApiError, match=re.escape("field label not supported: spec.foo")):
        parse_field_selector("spec.foo=x", POD)
    with pytest.raises(ApiError, match=re.escape('"spec.queueName" is not a known field selector')):
        parse_field_selector("spec.queueName=x", WORKLOAD)


# --- patches ---------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


@given(json_objects, json_objects)
def test_merge_patch_laws(target: dict, patch: dict) -> None:
    original = copy.deepcopy(target)
    result = merge_patch(target, patch)
    assert target == original, "the target must not be mutated"
    for key, value in patch.items():
        if value is None:
            assert key not in result
        elif not isinstance(value, dict):
            assert result[key] == value
    assert merge_patch(result, patch) == result, "a merge patch is idempotent"


def test_json_patch_operations() -> None:
    doc = {"spec": {"items": [1, 2], "name": "a"}}
    patched = json_patch(
        doc,
        [
            {"op": "add", "path": "/spec/items/-", "value": 3},
            {"op": "replace", "path": "/spec/name", "value": "b"},
            {"op": "copy", "from": "/spec/name", "path": "/spec/alias"},
            {"op": "move", "from": "/spec/alias", "path": "/metadata"},
            {"op": "remove", "path": "/spec/items/0"},
            {"op": "test", "path": "/spec/items", "value": [2, 3]},
            {"op": "add", "path": "/spec/a~1b", "value": True},
        ],
    )
    assert patched == {"spec": {"items": [2, 3], "name": "b", "a/b": True}, "metadata": "b"}
    assert doc == {"spec": {"items": [1, 2], "name": "a"}}


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        (
            [{"op": "remove", "path": "/spec/nope"}],
            'remove operation does not apply: doc is missing path: "/spec/nope"',
        ),
        ([{"op": "replace", "path": "/x/y", "value": 1}], "replace operation does not apply"),
        ([{"op": "test", "path": "/spec", "value": 1}], "testing value /spec failed"),
    ],
)
def test_failing_json_patch_is_a_422(operations: list, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        json_patch({"spec": {}}, operations)
    assert caught.value.code == 422
    assert message in caught.value.message


def test_strategic_merge_patch_merges_lists_by_key_and_honours_directives() -> None:
    pod = {
        "metadata": {"finalizers": ["a"], "labels": {"x": "1"}},
        "spec": {
            "containers": [
                {"name": "main", "image": "v1", "env": [{"name": "A", "value": "1"}]},
                {"name": "sidecar", "image": "s1"},
            ],
            "tolerations": [{"key": "k1"}],
        },
        "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]},
    }
    patched = strategic_merge_patch(
        pod,
        {
            "metadata": {"finalizers": ["b"], "labels": {"x": None}},
            "spec": {
                "containers": [
                    {"name": "main", "image": "v2", "env": [{"name": "B", "value": "2"}]},
                    {"name": "sidecar", "$patch": "delete"},
                ],
                "tolerations": [{"key": "k2"}],
            },
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        },
    )
    assert patched["metadata"] == {"finalizers": ["a", "b"], "labels": {}}
    assert patched["spec"]["containers"] == [
        {"name": "main", "image": "v2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    ]
    assert patched["spec"]["tolerations"] == [{"key": "k2"}], "lists without a merge key are replaced"
    assert patched["status"]["conditions"][0] == {"type": "Ready", "status": "True"}
    assert len(patched["status"]["conditions"]) == 2


def test_strategic_merge_patch_set_element_order_and_replace() -> None:
    spec = {"containers": [{"name": "a"}, {"name": "b"}]}
    reordered = strategic_merge_patch(spec, {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]})
    assert [c["name"] for c in reordered["containers"]] == ["b", "a"]
    assert "$setElementOrder/containers" not in reordered
    replaced = strategic_merge_patch({"spec": {"a": 1, "b": 2}}, {"spec": {"$patch": "replace", "c": 3}})
    assert replaced == {"spec": {"c": 3}}


# --- schema validation ------------------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["podSets"],
            "properties": {
                "podSets": {
                    "type": "array",
                    "maxItems": 2,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                            "count": {"type": "integer", "minimum": 0, "default": 1},
                        },
                    },
                },
                "mode": {"type": "string", "enum": ["Running", "Stopped"]},
                "quota": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
    },
}


def _spec(spec: dict) -> dict:
    return {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"}, "spec": spec}


def test_schema_defaults_and_prunes_unknown_fields() -> None:
    obj = _spec({"podSets": [{"name": "main"}], "extra": 1, "free": {"anything": {"goes": True}}, "labels": {"a": "b"}})
    result = apply_schema(obj, SCHEMA)
    assert result.errors == []
    assert result.unknown_fields == ["spec.extra"]
    assert obj["spec"] == {
        "podSets": [{"name": "main", "count": 1}],
        "free": {"anything": {"goes": True}},
        "labels": {"a": "b"},
    }


@pytest.mark.parametrize(
    ("spec", "rendered"),
    [
        ({}, "spec.podSets: Required value"),
        ({"podSets": [{}]}, "spec.podSets[0].name: Required value"),
        (
            {"podSets": [{"name": "a", "count": "3"}]},
            'spec.podSets[0].count: Invalid value: "string": spec.podSets[0].count in body must be of type integer: "string"',
        ),
        (
            {"podSets": [{"name": "a", "count": -1}]},
            "spec.podSets[0].count: Invalid value: -1: spec.podSets[0].count in body should be greater than or equal to 0",
        ),
        (
            {"podSets": [{"name": "A1"}]},
            "spec.podSets[0].name: Invalid value: \"A1\": spec.podSets[0].name in body should match '^[a-z]+$'",
        ),
        ({"podSets": [{"name": "abcdefghij"}]}, "spec.podSets[0].name: Too long: may not be more than 8 bytes"),
        ({"podSets": [{"name": "a"}] * 3}, "spec.podSets: Too many: 3: must have at most 2 items"),
        (
            {"podSets": [], "mode": "Paused"},
            'spec.mode: Unsupported value: "Paused": supported values: "Running", "Stopped"',
        ),
        (
            {"podSets": [], "quota": 1.5},
            'spec.quota: Invalid value: "number": spec.quota in body must be of type integer,string: "number"',
        ),
        (
            {"podSets": [], "labels": {"a": 1}},
            'spec.labels[a]: Invalid value: "integer": spec.labels[a] in body must be of type string: "integer"',
        ),
    ],
)
def test_schema_violations_name_the_field(spec: dict, rendered: str) -> None:
    result = apply_schema(_spec(spec), SCHEMA)
    assert [str(e) for e in result.errors] == [rendered]


@pytest.mark.parametrize(
    ("name", "rule", "valid"),
    [
        ("web-1", "subdomain", True),
        ("a.b.c", "subdomain", True),
        ("Web", "subdomain", False),
        ("-web", "subdomain", False),
        ("a.b", "label", False),
        ("1abc", "dns1035", False),
        ("abc1", "dns1035", True),
        ("x" * 64, "label", False),
    ],
)
def test_object_name_rules(name: str, rule: str, valid: bool) -> None:
    assert (name_errors(name, rule) == ()) is valid


# --- JSONPath, versions, printing ------------------------------------------------------------------------------------


def test_printer_column_jsonpath_subset() -> None:
    obj = {
        "metadata": {"annotations": {"workspace.jupyter.org/created-by": "ana"}},
        "status": {"conditions": [{"type": "Admitted", "status": "True"}, {"type": "Finished", "status": "False"}]},
    }
    assert find_first(obj, ".status.conditions[?(@.type=='Admitted')].status") == "True"
    assert find_first(obj, '.status.conditions[?(@.type=="Finished")].status') == "False"
    assert find_first(obj, ".status.conditions[-1:].type") == "Finished"
    assert find_first(obj, ".metadata.annotations['workspace\\.jupyter\\.org/created-by']") == "ana"
    assert find_first(obj, ".spec.missing") is None


def test_version_priority_matches_kubernetes_ordering() -> None:
    assert sorted_versions(["v1alpha1", "v1beta1", "v1", "v1beta2", "v2", "foo"]) == [
        "v2",
        "v1",
        "v1beta2",
        "v1beta1",
        "v1alpha1",
        "foo",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600 + 120, "3h2m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600, "3d1h"),
        (400 * 86400, "400d"),
        (3 * 365 * 86400, "3y"),
    ],
)
def test_human_duration_like_kubectl(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_pod_columns_fold_container_states() -> None:
    pod = {
        "metadata": {},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}}},
                {"name": "b", "ready": False, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ],
        },
    }
    assert pod_ready(pod) == "1/2"
    assert pod_status(pod) == "CrashLoopBackOff"
    assert pod_restarts(pod) == "3"
    pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert pod_status(pod) == "Terminating"


def test_validate_crd_changes_nothing_and_the_served_crd_gets_its_list_kind(k8s_client: Any) -> None:
    from kubernetes import client

    from app.demo.apiserver.crds import validate_crd

    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }
    before = copy.deepcopy(crd)
    assert validate_crd(crd) == [] and crd == before
    created = client.ApiextensionsV1Api(k8s_client).create_custom_resource_definition(crd)
    assert created.spec.names.list_kind == "GadgetList" and created.status.accepted_names.list_kind == "GadgetList"
