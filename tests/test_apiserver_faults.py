"""Fault injection: every control, and what a client sees when it is used."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest
from kubernetes import client

from app.demo.apiserver import LocalApiServer, ServerThread


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}}


def test_faults_are_off_by_default(apiserver_thread: ServerThread, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    for i in range(30):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
    assert len(core.list_namespaced_config_map("default").items) == 30
    assert apiserver_thread.faults.failed_requests == 0


def test_failures_500_and_429_with_retry_after(apiserver_thread: ServerThread, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    faults = apiserver_thread.faults
    faults.fail(1.0, status=500)
    with pytest.raises(client.ApiException) as caught:
        core.list_namespaced_pod("default")
    body = json.loads(caught.value.body)
    assert (caught.value.status, body["kind"], body["reason"]) == (500, "Status", "InternalError")

    faults.fail(1.0, status=429, retry_after=3)
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(f"{apiserver_thread.url}/api/v1/pods", timeout=5)
    assert raw.value.code == 429 and raw.value.headers["Retry-After"] == "3"
    assert json.loads(raw.value.read())["details"] == {"retryAfterSeconds": 3}

    # The official client honours Retry-After: one throttled answer, then the retry succeeds.
    faults.fail(1.0, status=429, retry_after=1, times=1)
    before = faults.failed_requests
    started = time.monotonic()
    assert core.list_namespaced_pod("default").items == []
    assert faults.failed_requests == before + 1 and time.monotonic() - started >= 1

    faults.fail(1.0, match=lambda info: info.verb == "create")
    assert core.list_namespaced_pod("default").items == [], "only matching requests fail"
    with pytest.raises(client.ApiException):
        core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    faults.clear()
    core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})


def test_a_fraction_of_requests_fail() -> None:
    with LocalApiServer.start_in_thread(fault_seed=7) as handle:
        handle.faults.fail(0.3)
        failures = 0
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"{handle.url}/api/v1/namespaces/default/configmaps", timeout=5):
                    pass
            except urllib.error.HTTPError as exc:
                assert exc.code == 500
                failures += 1
        assert 30 <= failures <= 90 and failures == handle.faults.failed_requests


def test_delay(apiserver_thread: ServerThread, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    apiserver_thread.faults.delay(0.3)
    started = time.monotonic()
    core.list_namespaced_pod("default")
    assert time.monotonic() - started >= 0.3
    apiserver_thread.faults.clear()
    started = time.monotonic()
    core.list_namespaced_pod("default")
    assert time.monotonic() - started < 0.3


async def _watch_lines(server: LocalApiServer, rv: int) -> tuple[aiohttp.ClientSession, aiohttp.ClientResponse]:
    session = aiohttp.ClientSession()
    response = await session.get(f"{server.url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}")
    assert response.status == 200
    return session, response


async def test_drop_watches_cuts_the_connections(apiserver: LocalApiServer) -> None:
    session, response = await _watch_lines(apiserver, apiserver.store.resource_version)
    try:
        apiserver.store.create(configmap("a"))
        assert json.loads(await asyncio.wait_for(response.content.readline(), 5))["type"] == "ADDED"
        assert apiserver.faults.drop_watches() == 1
        with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, ConnectionError)):
            await asyncio.wait_for(response.content.read(), 5)
        assert apiserver.store.watchers() == []
    finally:
        response.close()
        await session.close()


async def test_stalled_watch_stays_open_and_silent(apiserver: LocalApiServer) -> None:
    rv = apiserver.store.resource_version
    stalled_session, stalled = await _watch_lines(apiserver, rv)
    try:
        await asyncio.sleep(0.1)
        assert apiserver.faults.stall_watches() == 1
        apiserver.store.create(configmap("a"))
        fresh_session, fresh = await _watch_lines(apiserver, rv)
        async with fresh_session:
            assert json.loads(await asyncio.wait_for(fresh.content.readline(), 5))["object"]["metadata"]["name"] == "a"
            fresh.close()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stalled.content.readline(), 0.5)
        assert not stalled.content.at_eof(), "the stalled connection is still open"
    finally:
        stalled.close()
        await stalled_session.close()


async def test_compact_makes_older_versions_gone(apiserver: LocalApiServer) -> None:
    apiserver.store.create(configmap("a"))
    old = apiserver.store.resource_version
    apiserver.store.create(configmap("b"))
    apiserver.faults.compact()
    session, response = await _watch_lines(apiserver, old)
    async with session:
        event = json.loads(await asyncio.wait_for(response.content.readline(), 5))
        response.close()
    assert event["type"] == "ERROR" and event["object"]["code"] == 410


async def test_restart_on_the_same_port(apiserver: LocalApiServer) -> None:
    url = f"{apiserver.url}/api/v1/namespaces/default/configmaps"
    apiserver.store.create(configmap("kept"))
    session, response = await _watch_lines(apiserver, apiserver.store.resource_version)
    restart = asyncio.create_task(apiserver.faults.restart(downtime=0.5))
    try:
        assert await asyncio.wait_for(response.content.read(), 5) == b"", "open watches end"
        await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as probe:
            with pytest.raises(aiohttp.ClientConnectionError):
                await probe.get(url)
        await restart
        async with aiohttp.ClientSession() as probe, probe.get(url) as listed:
            body = await listed.json()
        assert [i["metadata"]["name"] for i in body["items"]] == ["kept"], "same port, same data"
    finally:
        response.close()
        await session.close()


def test_injected_503_is_service_unavailable(apiserver_thread: ServerThread, k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    apiserver_thread.faults.fail(1.0, status=503, times=1)
    with pytest.raises(client.ApiException) as caught:
        core.list_namespaced_pod("default")
    body = json.loads(caught.value.body)
    assert (caught.value.status, body["reason"], body["code"]) == (503, "ServiceUnavailable", 503)
    assert core.list_namespaced_pod("default").items == [], "only the next request failed"
