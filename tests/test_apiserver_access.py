"""Bearer-token users, RBAC rules, 401/403 Statuses and access reviews, with the official client and kubectl."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from app.demo.apiserver import LocalApiServer, ServerThread
from tests.plugins.apiserver import Kubectl

ACCESS = {
    "anonymous": False,
    "users": [
        {
            "name": "alice",
            "token": "alice-token",
            "groups": ["ml-team"],
            "rules": [
                {
                    "verbs": ["get", "list", "watch"],
                    "apiGroups": [""],
                    "resources": ["pods", "pods/log"],
                    "namespaces": ["team-a"],
                },
                {
                    "verbs": ["create", "delete"],
                    "apiGroups": ["kueue.x-k8s.io"],
                    "resources": ["workloads"],
                    "namespaces": ["team-a"],
                },
                {
                    "verbs": ["get"],
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["settings"],
                    "namespaces": ["team-a"],
                },
                {"verbs": ["list"], "apiGroups": [""], "resources": ["nodes"]},
            ],
        },
        {"name": "admin", "token": "admin-token", "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]},
        {"name": "nobody", "token": "nobody-token"},
    ],
}


@pytest.fixture
def secured() -> Iterator[ServerThread]:
    with LocalApiServer.start_in_thread(access=ACCESS, user="admin") as handle:
        for name in ("team-a", "team-b"):
            handle.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            handle.store.put(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "p", "namespace": name},
                    "spec": {"containers": [{"name": "main", "image": "i"}]},
                }
            )
        yield handle


def api_for(handle: ServerThread, user: str) -> client.ApiClient:
    return config.new_client_from_config(str(handle.kubeconfig_for(user)))


def forbidden(exc: client.ApiException) -> str:
    body = json.loads(exc.body)
    assert (exc.status, body["kind"], body["reason"]) == (403, "Status", "Forbidden")
    return body["message"]


def test_tokens_authenticate_over_tls(secured: ServerThread, tmp_path: Path) -> None:
    assert secured.url.startswith("https://127.0.0.1:")
    core = client.CoreV1Api(api_for(secured, "alice"))
    assert [p.metadata.name for p in core.list_namespaced_pod("team-a").items] == ["p"]
    ca = tmp_path / "ca.crt"
    ca.write_bytes(secured.server.ca_pem or b"")
    anonymous = client.Configuration()
    anonymous.host = secured.url
    anonymous.ssl_ca_cert = str(ca)
    for token in (None, "wrong-token"):
        if token:
            anonymous.api_key = {"authorization": f"Bearer {token}"}
        with pytest.raises(client.ApiException) as caught:
            client.CoreV1Api(client.ApiClient(anonymous)).list_namespaced_pod("team-a")
        assert caught.value.status == 401 and json.loads(caught.value.body)["reason"] == "Unauthorized"


def test_rules_decide_and_denials_read_like_rbac(secured: ServerThread) -> None:
    api = api_for(secured, "alice")
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    core.read_namespaced_pod("p", "team-a")
    with pytest.raises(client.ApiException) as caught:
        core.list_namespaced_pod("team-b")
    assert forbidden(caught.value) == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "team-b"'
    )
    with pytest.raises(client.ApiException) as caught:
        core.delete_namespaced_pod("p", "team-a")
    assert forbidden(caught.value) == (
        'pods "p" is forbidden: User "alice" cannot delete resource "pods" in API group "" in the namespace "team-a"'
    )
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_pod_status("p", "team-a")
    assert 'cannot get resource "pods/status"' in forbidden(caught.value)
    with pytest.raises(client.ApiException) as caught:
        core.list_namespace()
    assert forbidden(caught.value) == (
        'namespaces is forbidden: User "alice" cannot list resource "namespaces" in API group "" at the cluster scope'
    )
    assert core.list_node().items == []
    workload = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload", "metadata": {"name": "w"}, "spec": {}}
    custom.create_namespaced_custom_object("kueue.x-k8s.io", "v1beta2", "team-a", "workloads", workload)
    with pytest.raises(client.ApiException) as caught:
        custom.list_namespaced_custom_object("kueue.x-k8s.io", "v1beta2", "team-a", "workloads")
    assert 'in API group "kueue.x-k8s.io"' in forbidden(caught.value)
    secured.store.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "team-a"}}
    )
    secured.store.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": "team-a"}}
    )
    assert core.read_namespaced_config_map("settings", "team-a").metadata.name == "settings"
    with pytest.raises(client.ApiException):
        core.read_namespaced_config_map("other", "team-a")
    nobody = client.CoreV1Api(api_for(secured, "nobody"))
    with pytest.raises(client.ApiException) as caught:
        nobody.read_namespaced_pod("p", "team-a")
    assert caught.value.status == 403
    assert client.VersionApi(api_for(secured, "nobody")).get_code().git_version.startswith("v1.32"), (
        "every authenticated user may read discovery and version"
    )


def test_access_reviews_answer_from_the_same_rules(secured: ServerThread) -> None:
    authz = client.AuthorizationV1Api(api_for(secured, "alice"))

    def can(
        verb: str, resource: str, namespace: str = "", group: str = "", subresource: str = "", name: str = ""
    ) -> bool:
        review = {
            "spec": {
                "resourceAttributes": {
                    "verb": verb,
                    "resource": resource,
                    "namespace": namespace,
                    "group": group,
                    "subresource": subresource,
                    "name": name,
                }
            }
        }
        return authz.create_self_subject_access_review(review).status.allowed

    assert can("list", "pods", "team-a") and can("get", "pods", "team-a", subresource="log")
    assert not can("list", "pods", "team-b") and not can("delete", "pods", "team-a")
    assert can("create", "workloads", "team-a", group="kueue.x-k8s.io")
    assert not can("create", "workloads", "team-a")  # wrong API group
    assert can("get", "configmaps", "team-a", name="settings") and not can("get", "configmaps", "team-a", name="x")
    rules = authz.create_self_subject_rules_review({"spec": {"namespace": "team-a"}}).status
    resources = {(tuple(r.api_groups), tuple(r.resources)): set(r.verbs) for r in rules.resource_rules}
    assert resources[(("",), ("pods", "pods/log"))] == {"get", "list", "watch"}
    assert resources[(("kueue.x-k8s.io",), ("workloads",))] == {"create", "delete"}
    elsewhere = authz.create_self_subject_rules_review({"spec": {"namespace": "team-b"}}).status
    assert not any("pods" in r.resources for r in elsewhere.resource_rules)


def test_kubectl_auth_can_i_and_forbidden(secured: ServerThread, tmp_path: Path) -> None:
    alice = Kubectl(secured.kubeconfig_for("alice"), tmp_path / "cache")
    for args, answer in (
        (("list", "pods", "-n", "team-a"), "yes"),
        (("get", "pods/log", "-n", "team-a"), "yes"),
        (("delete", "pods", "-n", "team-a"), "no"),
        (("list", "pods", "-n", "team-b"), "no"),
        (("create", "workloads.kueue.x-k8s.io", "-n", "team-a"), "yes"),
        (("list", "nodes"), "yes"),
        (("list", "namespaces"), "no"),
    ):
        result = alice.run("auth", "can-i", *args, check=False)
        assert result.stdout.strip() == answer, args
    listing = alice("auth", "can-i", "--list", "-n", "team-a")
    assert any(line.split()[:1] == ["pods"] and "[get list watch]" in line for line in listing.splitlines())
    denied = alice.run("get", "pods", "-n", "team-b", check=False)
    assert denied.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
        'in the namespace "team-b"'
    )
    assert alice("get", "pods", "-n", "team-a", "-o", "name").strip() == "pod/p"
    admin = Kubectl(secured.kubeconfig_path, tmp_path / "cache-admin")
    assert admin("auth", "can-i", "delete", "namespaces").strip() == "yes"


def _get(url: str, ca: Path, token: str | None = None) -> int:
    """The HTTP status of a GET, over TLS trusting `ca`."""
    import ssl
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=str(ca)), timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("anonymous", [None, False, True])
def test_anonymous_requests_with_token_users(anonymous: bool | None, tmp_path: Path) -> None:
    """With users, anonymous is off unless asked for; health and version are public, discovery is for users."""
    config: dict = {"users": [{"name": "nobody", "token": "nobody-token"}]}
    if anonymous is not None:
        config["anonymous"] = anonymous
    with LocalApiServer.start_in_thread(access=config) as handle:
        ca = tmp_path / "ca.crt"
        ca.write_bytes(handle.server.ca_pem or b"")
        for path in ("/healthz", "/livez", "/readyz", "/version"):
            assert _get(handle.url + path, ca) == 200, path
        denied = 403 if anonymous else 401
        for path in ("/api", "/apis", "/openapi/v3", "/api/v1/namespaces/default/pods", "/api/v1/namespaces"):
            assert _get(handle.url + path, ca) == denied, path
        for path in ("/healthz", "/version", "/api", "/api/v1", "/apis", "/openapi/v3"):
            assert _get(handle.url + path, ca, "nobody-token") == 200, path
        for path in ("/api/v1/namespaces/default/pods", "/metrics", "/logs", "/versions"):
            assert _get(handle.url + path, ca, "nobody-token") == 403, path


def test_the_demo_without_users_serves_anonymous_requests(apiserver_thread: ServerThread) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{apiserver_thread.url}/api/v1/namespaces/default/pods", timeout=10) as answer:
        assert answer.status == 200


def test_kubeconfigs_with_tokens_are_private(tmp_path: Path) -> None:
    existing = tmp_path / "kubeconfig"
    existing.write_text("")
    existing.chmod(0o644)
    with LocalApiServer.start_in_thread(access=ACCESS, kubeconfig_path=existing) as handle:
        for path in (handle.kubeconfig_path, handle.kubeconfig_for("alice")):
            assert "token:" in path.read_text()
            assert path.stat().st_mode & 0o777 == 0o600, path
