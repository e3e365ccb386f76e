"""WATCH semantics: initial events, resuming without loss, 410 after compaction, bookmarks, timeouts, selectors."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from kubernetes import client, watch
from kubernetes.aio import client as aio_client
from kubernetes.aio import config as aio_config
from kubernetes.aio import watch as aio_watch

from app.demo.apiserver import LocalApiServer, ServerOptions, ServerThread


def configmap(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
    }


async def read_events(
    server: LocalApiServer, query: str, *, until: int | None = None, timeout: float = 5
) -> list[dict[str, Any]]:
    """Raw watch events of configmaps in `default` (stops after `until` events or at the end of the stream)."""
    events: list[dict[str, Any]] = []
    url = f"{server.url}/api/v1/namespaces/default/configmaps?watch=true&{query}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response,
    ):
        assert response.status == 200
        async for line in response.content:
            events.append(json.loads(line))
            if until is not None and len(events) >= until:
                break
    return events


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


async def test_watch_without_version_starts_with_current_objects(apiserver: LocalApiServer) -> None:
    apiserver.store.create(configmap("a"))
    apiserver.store.create(configmap("b"))
    first = await read_events(apiserver, "", until=2)
    assert summary(first) == [("ADDED", "a"), ("ADDED", "b")]


async def test_resuming_from_a_resource_version_loses_no_event(apiserver: LocalApiServer) -> None:
    store = apiserver.store
    store.create(configmap("a"))
    start = store.resource_version
    store.create(configmap("b"))
    store.patch("v1", "ConfigMap", "a", {"data": {"k": "v"}}, "default")
    store.delete("v1", "ConfigMap", "b", "default")
    store.create(configmap("c"))
    events = await read_events(apiserver, f"resourceVersion={start}", until=4)
    assert summary(events) == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b"), ("ADDED", "c")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > start
    # Resume again from the middle: exactly the rest.
    rest = await read_events(apiserver, f"resourceVersion={versions[1]}", until=2)
    assert summary(rest) == [("DELETED", "b"), ("ADDED", "c")]


async def test_live_events_follow_replayed_ones_in_order(apiserver: LocalApiServer) -> None:
    store = apiserver.store
    start = store.resource_version

    async def write_later() -> None:
        await asyncio.sleep(0.05)
        for i in range(50):
            store.create(configmap(f"live-{i}"))

    store.create(configmap("before"))
    writer = asyncio.create_task(write_later())
    events = await read_events(apiserver, f"resourceVersion={start}", until=51)
    await writer
    assert [name for _, name in summary(events)] == ["before"] + [f"live-{i}" for i in range(50)]


async def test_compacted_history_gives_410_as_an_error_event(apiserver: LocalApiServer) -> None:
    store = apiserver.store
    store.create(configmap("a"))
    old = store.resource_version
    store.create(configmap("b"))
    store.compact()
    events = await read_events(apiserver, f"resourceVersion={old - 1}")
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"].startswith(f"too old resource version: {old - 1}")
    # The newest version is still watchable.
    store.create(configmap("c"))
    assert summary(await read_events(apiserver, f"resourceVersion={store.resource_version - 1}", until=1)) == [
        ("ADDED", "c")
    ]


async def test_bounded_history_expires_old_versions() -> None:
    async with LocalApiServer(history_size=5) as server:
        start = server.store.resource_version
        for i in range(10):
            server.store.create(configmap(f"c{i}"))
        events = await read_events(server, f"resourceVersion={start}")
        assert events[0]["object"]["code"] == 410


async def test_bookmarks_arrive_when_allowed() -> None:
    async with LocalApiServer(options=ServerOptions(bookmark_interval=0.1)) as server:
        server.store.create(configmap("a"))
        rv = server.store.resource_version
        events = await read_events(server, f"resourceVersion={rv}&allowWatchBookmarks=true", until=2)
        assert [e["type"] for e in events] == ["BOOKMARK", "BOOKMARK"]
        assert events[0]["object"]["metadata"]["resourceVersion"] == str(rv)
        assert events[0]["object"]["kind"] == "ConfigMap"
        plain = await read_events(server, f"resourceVersion={rv}&timeoutSeconds=1")
        assert plain == [], "no bookmarks unless the client allows them"


async def test_timeout_seconds_ends_the_stream(apiserver: LocalApiServer) -> None:
    started = time.monotonic()
    assert await read_events(apiserver, f"resourceVersion={apiserver.store.resource_version}&timeoutSeconds=1") == []
    assert 0.9 <= time.monotonic() - started < 3


async def test_selector_transitions_become_added_and_deleted(apiserver: LocalApiServer) -> None:
    store = apiserver.store
    store.create(configmap("x", team="a"))
    rv = store.resource_version
    store.patch("v1", "ConfigMap", "x", {"metadata": {"labels": {"team": "b"}}}, "default")
    store.patch("v1", "ConfigMap", "x", {"data": {"k": "1"}}, "default")
    store.patch("v1", "ConfigMap", "x", {"metadata": {"labels": {"team": "a"}}}, "default")
    events = await read_events(apiserver, f"resourceVersion={rv}&labelSelector=team%3Da", until=1)
    assert summary(events) == [("DELETED", "x")]
    events = await read_events(apiserver, f"resourceVersion={rv}&labelSelector=team%3Db", until=3)
    assert summary(events) == [("ADDED", "x"), ("MODIFIED", "x"), ("DELETED", "x")]


async def test_aio_client_watch_with_capital_true(apiserver: LocalApiServer) -> None:
    """kubernetes.aio sends `watch=True`; its Watch helper must see initial and live events and bookmarks."""
    api_client = await aio_config.new_client_from_config(str(apiserver.kubeconfig_path))
    async with api_client:
        core = aio_client.CoreV1Api(api_client)
        apiserver.store.create(configmap("first"))

        async def write() -> None:
            await asyncio.sleep(0.2)
            apiserver.store.create(configmap("second"))

        writer = asyncio.create_task(write())
        seen = []
        async for event in aio_watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=1):
            seen.append((event["type"], event["object"].metadata.name))
        await writer
    assert seen == [("ADDED", "first"), ("ADDED", "second")]


def test_sync_client_watch_and_410(apiserver_thread: ServerThread, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    apiserver_thread.store.create(configmap("a"))
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    apiserver_thread.store.create(configmap("b"))
    seen = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1
        )
    ]
    assert seen == [("ADDED", "b")]
    apiserver_thread.call(apiserver_thread.server.store.compact)
    with pytest.raises(client.ApiException) as caught:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1
        ):
            pass
    assert caught.value.status == 410


async def test_bookmarks_never_overtake_events_queued_for_a_slow_reader() -> None:
    """A reader slower than the writes: every event after a BOOKMARK is newer than the bookmark."""
    async with LocalApiServer(options=ServerOptions(bookmark_interval=0.001)) as server:
        store = server.store
        start = store.resource_version
        payload = "x" * 200_000  # big events fill the socket buffers, so the server's writes wait on the reader

        async def write() -> None:
            for i in range(100):
                store.create({**configmap(f"big-{i}"), "data": {"payload": payload}})
                await asyncio.sleep(0)

        url = f"{server.url}/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true"
        seen: list[tuple[str, int]] = []
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}&resourceVersion={start}", timeout=aiohttp.ClientTimeout(total=30)) as response,
        ):
            writer = asyncio.create_task(write())
            async for line in response.content:
                await asyncio.sleep(0.002)
                event = json.loads(line)
                seen.append((event["type"], int(event["object"]["metadata"]["resourceVersion"])))
                if sum(1 for kind, _ in seen if kind != "BOOKMARK") == 100:
                    break
            await writer
    assert any(kind == "BOOKMARK" for kind, _ in seen), "the test needs bookmarks while events flow"
    bookmark = 0
    for kind, rv in seen:
        if kind == "BOOKMARK":
            bookmark = max(bookmark, rv)
        else:
            assert rv > bookmark, f"event at {rv} after a bookmark at {bookmark}"


async def test_a_busy_kind_does_not_expire_a_quiet_kinds_history() -> None:
    async with LocalApiServer(history_size=5) as server:
        store = server.store
        store.create(configmap("quiet"))
        start = store.resource_version
        store.patch("v1", "ConfigMap", "quiet", {"data": {"k": "v"}}, "default")
        for i in range(20):
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"busy-{i}", "namespace": "default"}}
            store.create({**pod, "spec": {"containers": [{"name": "main", "image": "busybox"}]}})
        events = await read_events(server, f"resourceVersion={start}", until=1)
        assert summary(events) == [("MODIFIED", "quiet")]
        store.compact()
        events = await read_events(server, f"resourceVersion={start}")
        assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410, "compaction forgets every history"


async def test_a_zero_timeout_means_the_server_default(apiserver: LocalApiServer) -> None:
    async def write_later() -> None:
        await asyncio.sleep(0.3)
        apiserver.store.create(configmap("later"))

    writer = asyncio.create_task(write_later())
    rv = apiserver.store.resource_version
    events = await read_events(apiserver, f"resourceVersion={rv}&timeoutSeconds=0", until=1)
    await writer
    assert summary(events) == [("ADDED", "later")]


async def test_a_watcher_that_falls_behind_is_cut_off_and_forgotten() -> None:
    """A client that stops reading: once its backlog passes the history size, the connection is aborted."""
    async with LocalApiServer(history_size=20) as server:
        store = server.store
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            path = f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={store.resource_version}"
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")  # the watch is open, and nobody reads it
            assert len(store.watchers()) == 1
            payload = "x" * 100_000
            for i in range(300):  # far more than the socket buffers hold, then more than the history size
                store.create({**configmap(f"big-{i}"), "data": {"payload": payload}})
                await asyncio.sleep(0)
            for _ in range(100):
                if not store.watchers():
                    break
                await asyncio.sleep(0.05)
            assert store.watchers() == [], "the watcher is closed and unregistered"
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                while await reader.read(1 << 20):
                    pass
                raise ConnectionResetError("the stream ended")  # an orderly end would also do: the watch is over
        finally:
            writer.transport.abort()


def test_subscribers_see_events_in_commit_order_when_one_writes(
    apiserver_thread: ServerThread, k8s_client: client.ApiClient
) -> None:
    """A subscriber that writes while it is notified (a controller): every subscriber still sees commit order."""
    store = apiserver_thread.server.store
    seen: list[tuple[str, str]] = []

    def controller(event: Any) -> None:
        if event.type == "ADDED" and event.object["metadata"]["name"] == "job":
            store.create(configmap("job-status"))

    def observer(event: Any) -> None:
        seen.append((event.type, event.object["metadata"]["name"]))

    apiserver_thread.call(store.subscribe, controller)
    apiserver_thread.call(store.subscribe, observer)
    client.CoreV1Api(k8s_client).create_namespaced_config_map("default", configmap("job"))
    assert seen == [("ADDED", "job"), ("ADDED", "job-status")]


async def test_a_write_while_the_watch_response_starts_is_not_lost() -> None:
    server = LocalApiServer()

    async def write_during_prepare(request: Any, response: Any) -> None:
        if request.query.get("watch") == "true":
            server.store.create(configmap("racing"))  # committed while the watch handler awaits its response

    server.api.app.on_response_prepare.append(write_during_prepare)
    async with server:
        events = await read_events(server, f"resourceVersion={server.store.resource_version}", until=1, timeout=2)
    assert summary(events) == [("ADDED", "racing")]
