"""Store semantics (pure): coalesced changes, relist differences, states; and object trimming."""

from __future__ import annotations

from app.cluster.resources import KINDS, object_key, trim_object
from app.cluster.store import ADDED, DELETED, MODIFIED, Store


def pod(name: str, rv: str, namespace: str = "team-a", **extra) -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": rv}, **extra}


def test_changes_coalesce_between_drains() -> None:
    store = Store("pods")
    store.apply(ADDED, "team-a/a", pod("a", "1"))
    store.apply(MODIFIED, "team-a/a", pod("a", "2"))
    store.apply(ADDED, "team-a/b", pod("b", "3"))
    store.apply(DELETED, "team-a/b", pod("b", "4"))
    changes = store.drain()
    assert (changes.added, changes.modified, changes.deleted, changes.events) == ({"team-a/a"}, set(), set(), 4)
    assert store.get("team-a/a")["metadata"]["resourceVersion"] == "2"
    assert not store.drain(), "nothing changed since"

    store.apply(DELETED, "team-a/a", pod("a", "5"))
    store.apply(ADDED, "team-a/a", pod("a", "6"))
    changes = store.drain()
    assert (changes.added, changes.modified, changes.deleted) == (set(), {"team-a/a"}, set())


def test_deleting_an_unknown_key_changes_nothing() -> None:
    store = Store("pods")
    version = store.version
    store.apply(DELETED, "team-a/ghost", pod("ghost", "1"))
    assert store.version == version
    assert not store.drain()


def test_replace_reports_only_real_differences() -> None:
    store = Store("pods")
    store.replace({"a": pod("a", "1"), "b": pod("b", "1"), "c": pod("c", "1")})
    store.drain()
    differences = store.replace({"a": pod("a", "1"), "b": pod("b", "2"), "d": pod("d", "1")})
    changes = store.drain()
    assert differences == 3
    assert (changes.added, changes.modified, changes.deleted) == ({"d"}, {"b"}, {"c"})
    assert store.keys() == {"a", "b", "d"}


def test_state_changes_are_delivered_and_stale_keeps_its_first_time() -> None:
    store = Store("pods")
    store.set_state("stale", "connection refused")
    since = store.status.since
    assert store.drain().state_changed
    store.set_state("stale", "500 Internal Server Error")
    assert store.status.since == since
    assert store.status.detail == "500 Internal Server Error"


def test_trim_keeps_what_panes_need_and_drops_the_rest() -> None:
    raw = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "llama-0", "namespace": "team-a", "resourceVersion": "7", "labels": {"HPJob": "llama"},
            "managedFields": [{"manager": "kubectl"}] * 20,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{" * 5000, "keep": "me"},
        },
        "spec": {"nodeName": "node-1", "volumes": [{"name": "data"}] * 10,
                 "containers": [{"name": "trainer", "image": "pytorch", "env": [{"name": "X"}] * 50,
                                 "resources": {"limits": {"nvidia.com/gpu": "8"}}}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "trainer", "restartCount": 2,
                                                               "imageID": "sha256:..."}]},
    }
    trimmed = trim_object(KINDS["pods"], raw)
    assert trimmed["metadata"] == {"name": "llama-0", "namespace": "team-a", "resourceVersion": "7",
                                   "labels": {"HPJob": "llama"}, "annotations": {"keep": "me"}}
    assert trimmed["spec"] == {"nodeName": "node-1", "containers": [
        {"name": "trainer", "image": "pytorch", "resources": {"limits": {"nvidia.com/gpu": "8"}}}]}
    assert trimmed["status"] == {"phase": "Running", "containerStatuses": [{"name": "trainer", "restartCount": 2}]}
    assert raw["metadata"]["annotations"]["keep"] == "me", "the raw object is not modified"
    assert object_key(raw) == "team-a/llama-0"
    assert object_key({"metadata": {"name": "node-1"}}) == "node-1"
