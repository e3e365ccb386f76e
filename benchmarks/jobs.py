"""The Jobs pane at scale: rows for 5,000 jobs, and a 1,000-event burst applied to them.

    .venv/bin/python benchmarks/jobs.py [--jobs 5000]

Measures, in one process with the real widgets headless:
- `job_rows` (the join of jobs, Workloads and pods into rows) for N jobs with their Workloads and 2 pods each;
- the first render of the pane's table with those rows;
- a burst of 1,000 changed jobs: the join again plus the table's keyed diff (only changed cells are touched);
- the log view fed 5,000 lines a second: how late the event loop runs meanwhile (the UI's responsiveness).
The peer in the same run is Textual's own DataTable filled from scratch with the same rows (`clear` + `add_rows`),
which is what a pane without keyed updates would do on every change.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual.app import App, ComposeResult  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

from app.screens.jobs import JobsPane  # noqa: E402
from widgets.log_view import LogView  # noqa: E402
from widgets.resource_table import ResourceTable  # noqa: E402


def objects(jobs: int, step: int = 0) -> dict[str, dict[str, dict]]:
    stores: dict[str, dict[str, dict]] = {"hyperpodpytorchjobs": {}, "workloads": {}, "pods": {}}
    for i in range(jobs):
        ns = f"hyperpod-ns-team-{'abc'[i % 3]}"
        name, uid = f"job-{i:05d}", f"uid-{i}"
        running = (i + step) % 4 != 0
        stores["hyperpodpytorchjobs"][f"{ns}/{name}"] = {
            "metadata": {"name": name, "namespace": ns, "uid": uid, "creationTimestamp": "2026-11-27T10:00:00Z",
                         "labels": {"kueue.x-k8s.io/queue-name": f"{ns}-localqueue",
                                    "kueue.x-k8s.io/priority-class": "training-priority"}},
            "spec": {"nprocPerNode": 8, "replicaSpecs": [{"name": "pod", "replicas": 2, "template": {"spec": {
                "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "8"}}}]}}}]},
            "status": {"conditions": [{"type": "Created", "status": "True"}]
                       + ([{"type": "Running", "status": "True"}] if running else []),
                       "startTime": "2026-11-27T10:05:00Z"},
        }
        stores["workloads"][f"{ns}/wl-{i}"] = {
            "metadata": {"name": f"wl-{i}", "namespace": ns, "ownerReferences": [{"uid": uid}]},
            "spec": {"queueName": f"{ns}-localqueue"},
            "status": {"conditions": [{"type": "Admitted", "status": "True" if running else "False",
                                       "reason": "Admitted" if running else "Pending",
                                       "message": "" if running else "insufficient quota for nvidia.com/gpu"}]},
        }
        for r in range(2):
            stores["pods"][f"{ns}/{name}-pod-{r}"] = {
                "metadata": {"name": f"{name}-pod-{r}", "namespace": ns, "labels": {"HPJob": name}},
                "spec": {"nodeName": f"node-{i % 500}"},
                "status": {"phase": "Running" if running else "Pending",
                           "containerStatuses": [{"name": "c", "restartCount": step % 3}]},
            }
    return stores


class Bench(App[None]):
    def compose(self) -> ComposeResult:
        yield ResourceTable(JobsPane.columns, id="ours")
        yield DataTable(id="peer")


async def main(jobs: int) -> None:
    pane = JobsPane()
    before = objects(jobs)
    started = time.perf_counter()
    rows = pane.rows(before)
    join = time.perf_counter() - started

    changed = objects(jobs, step=1)
    keys = list(changed["hyperpodpytorchjobs"])[:1000]
    burst = {name: dict(store) for name, store in before.items()}
    for key in keys:  # 1,000 jobs change state; their Workloads and pods with them
        i = int(key.rsplit("-", 1)[1])
        ns = key.split("/")[0]
        burst["hyperpodpytorchjobs"][key] = changed["hyperpodpytorchjobs"][key]
        burst["workloads"][f"{ns}/wl-{i}"] = changed["workloads"][f"{ns}/wl-{i}"]

    app = Bench()
    async with app.run_test(size=(200, 50)) as pilot:
        ours = app.query_one("#ours", ResourceTable)
        peer = app.query_one("#peer", DataTable)
        peer.add_columns(*JobsPane.columns)
        started = time.perf_counter()
        ours.set_rows(rows)
        await pilot.pause()
        first_render = time.perf_counter() - started

        started = time.perf_counter()
        burst_rows = pane.rows(burst)
        ours.set_rows(burst_rows)
        await pilot.pause()
        burst_time = time.perf_counter() - started

        started = time.perf_counter()
        peer.clear()
        peer.add_rows([r.cells for r in burst_rows])
        await pilot.pause()
        peer_time = time.perf_counter() - started

    lag, shown = await log_view_under_load()
    print(f"{jobs:,} jobs (with {jobs:,} Workloads and {2 * jobs:,} pods)")
    print(f"  join into rows (job_rows)                 {join * 1000:8.0f} ms")
    print(f"  first render of the table                 {first_render * 1000:8.0f} ms")
    print(f"  1,000-job burst: join + keyed diff        {burst_time * 1000:8.0f} ms")
    print(f"  peer: DataTable cleared and refilled      {peer_time * 1000:8.0f} ms   "
          f"ours/peer = {burst_time / peer_time:.2f}")
    print(f"log view at 5,000 lines/s for 3 s: {shown:,} lines, the event loop at most {lag * 1000:.0f} ms late")


class LogBench(App[None]):
    def compose(self) -> ComposeResult:
        from app.cluster.logs import LogBuffer

        self.buffer = LogBuffer(maxlen=50_000)
        yield LogView(self.buffer)


async def log_view_under_load(rate: int = 5000, seconds: float = 3.0) -> tuple[float, int]:
    """Lines arrive at `rate` per second while a timer measures how late the event loop runs: the UI's
    responsiveness. Returns (worst lag in seconds, lines in the view)."""
    app = LogBench()
    async with app.run_test(size=(160, 45)) as pilot:
        view = app.query_one(LogView)
        lags: list[float] = []
        loop = asyncio.get_running_loop()
        expected = loop.time() + 0.05

        def tick() -> None:
            nonlocal expected
            lags.append(loop.time() - expected)
            expected = loop.time() + 0.05

        app.set_interval(0.05, tick)
        started = loop.time()
        sent = 0
        while loop.time() - started < seconds:
            due = int((loop.time() - started) * rate)
            for i in range(sent, due):
                app.buffer.append(f"[pod-{i % 4}] step {i} loss {1 / (i + 1):.6f} lr 3.0e-04 tokens/s 51234")
            if due > sent:
                view.lines_changed()
            sent = due
            await asyncio.sleep(0.01)
        await pilot.pause(0.2)
        return max(lags), len(app.buffer)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    asyncio.run(main(parser.parse_args().jobs))
