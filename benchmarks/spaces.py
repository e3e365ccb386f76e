"""The Spaces pane at scale, and `hyperdesk get spaces` against kubectl.

    .venv/bin/python benchmarks/spaces.py [--spaces 2000] [--pods 20000]

Measures, in one process:
- `space_rows` (workspaces joined with their templates and pods) for N workspaces among P pods, and the pane's
  `rows()` (the cells it shows), against the peer `json.loads` of the same objects as one list (the floor of any
  client that reads them);
- on the embedded API server holding N workspaces: `hyperdesk get spaces -A -o json` against
  `kubectl get workspaces -A -o json`, each run as a user runs it (a subprocess), best of 3.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.model.spaces import space_rows  # noqa: E402


def workspace(i: int) -> dict:
    ns = f"hyperpod-ns-team-{'abc'[i % 3]}"
    running = i % 3 != 0
    return {
        "apiVersion": "workspace.jupyter.org/v1alpha1", "kind": "Workspace",
        "metadata": {"name": f"space-{i:05d}", "namespace": ns, "creationTimestamp": "2026-11-27T10:00:00Z",
                     "labels": {"kueue.x-k8s.io/queue-name": f"{ns}-localqueue"},
                     "annotations": {"workspace.jupyter.org/created-by": f"user{i % 50}@example.com"}},
        "spec": {"displayName": f"Space {i}", "desiredStatus": "Running" if running else "Stopped",
                 "templateRef": {"name": "sagemaker-jupyter-template", "namespace": "jupyter-k8s-system"},
                 "resources": {"requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}},
                 "idleShutdown": {"enabled": True, "idleTimeoutInMinutes": 120,
                                  "detection": {"httpGet": {"port": 8888}}}},
        "status": {"conditions": [{"type": "Available", "status": "True" if running else "False",
                                   "reason": "ResourcesReady", "message": "", "lastTransitionTime": "2026-11-27T10:01:00Z"}]},
    }


def pod(i: int, spaces: int) -> dict:
    ns = f"hyperpod-ns-team-{'abc'[i % 3]}"
    labels = {"workspace.jupyter.org/workspace-name": f"space-{i:05d}"} if i < spaces else {"app": "other"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"pod-{i:06d}", "namespace": ns, "labels": labels},
            "spec": {"nodeName": f"node-{i % 100}", "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running"}}


def best(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def in_process(spaces: int, pods: int) -> None:
    from textual.app import App

    from app.screens.spaces import SpacesPane

    objects = [workspace(i) for i in range(spaces)]
    stores = {
        "workspaces": {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in objects},
        "pods": {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in (pod(i, spaces) for i in range(pods))},
        "workspacetemplates": {},
    }
    encoded = json.dumps(objects)
    rows_s = best(3, lambda: space_rows(stores))
    peer_s = best(3, lambda: json.loads(encoded))

    class Host(App[None]):
        def compose(self):
            yield SpacesPane()

    pane_s = 0.0

    async def measure() -> None:
        nonlocal pane_s
        app = Host()
        async with app.run_test():
            pane = app.query_one(SpacesPane)
            pane_s = best(3, lambda: pane.rows(stores))

    import asyncio

    asyncio.run(measure())
    print(f"space_rows, {spaces} workspaces among {pods} pods: {rows_s * 1000:.0f} ms")
    print(f"pane rows() (cells shown):                     {pane_s * 1000:.0f} ms")
    print(f"peer json.loads of the {spaces} workspaces:      {peer_s * 1000:.0f} ms"
          f"   ratio space_rows/json.loads {rows_s / peer_s:.1f}")


def against_kubectl(spaces: int) -> None:
    from app.demo.apiserver import LocalApiServer

    kubectl = shutil.which("kubectl")
    with LocalApiServer.start_in_thread() as server:
        objects = [workspace(i) for i in range(spaces)]
        namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"hyperpod-ns-team-{t}"}}
                      for t in "abc"]
        server.call(lambda: [server.server.store.create(o) for o in namespaces + objects])
        config = str(server.kubeconfig_path)
        ours = best(3, lambda: subprocess.run([sys.executable, "-m", "app", "--kubeconfig", config, "get", "spaces",
                                               "-A", "-o", "json"], capture_output=True, check=True))
        print(f"hyperdesk get spaces -A -o json, {spaces} workspaces: {ours:.2f} s")
        if kubectl:
            theirs = best(3, lambda: subprocess.run([kubectl, "--kubeconfig", config, "get", "workspaces", "-A",
                                                     "-o", "json"], capture_output=True, check=True))
            print(f"kubectl get workspaces -A -o json:                {theirs:.2f} s   ratio {ours / theirs:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spaces", type=int, default=2000)
    parser.add_argument("--pods", type=int, default=20000)
    args = parser.parse_args()
    in_process(args.spaces, args.pods)
    against_kubectl(args.spaces)


if __name__ == "__main__":
    main()
