"""The job <-> run link: a run belongs to the job its job tag names (`NAME` or `NAMESPACE/NAME`, tag configurable
as `mlflow.job_tag`), else to the job whose name is the run's name. A link exists only where such a job does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from app.tracking.client import RunInfo


@dataclass(frozen=True)
class JobRef:
    key: str
    """The Jobs pane's row key (`<store>/<namespace>/<name>`)."""
    namespace: str
    name: str
    state: str = ""

    @property
    def text(self) -> str:
        return f"{self.namespace}/{self.name}"


def link_runs(runs: Iterable[RunInfo], jobs: Iterable[JobRef], job_tag: str | None,
              prefer_namespace: str | None = None) -> dict[str, JobRef]:
    """run id -> the job it belongs to, for the runs whose job exists. A job name found in several namespaces, the
    run not saying which, links to the one in `prefer_namespace` (the app's namespace), else to none."""
    by_name: dict[str, list[JobRef]] = {}
    for job in jobs:
        by_name.setdefault(job.name, []).append(job)
    links: dict[str, JobRef] = {}
    for run in runs:
        namespace, name = run.job_ref(job_tag)
        candidates = by_name.get(name, [])
        if namespace is not None:
            candidates = [j for j in candidates if j.namespace == namespace]
        if len(candidates) == 1:
            links[run.run_id] = candidates[0]
        elif candidates and prefer_namespace:  # the same name in several namespaces, the run does not say which
            preferred = [j for j in candidates if j.namespace == prefer_namespace]
            if len(preferred) == 1:
                links[run.run_id] = preferred[0]
    return links


def runs_of_job(runs: Iterable[RunInfo], job: JobRef, jobs: Iterable[JobRef], job_tag: str | None,
                prefer_namespace: str | None = None) -> list[RunInfo]:
    """The runs of one job, newest first (a job restarted from a checkpoint may log several): those that
    `link_runs` links to it among all the `jobs` known (it is added if missing), so that a run whose name is found in
    several namespaces goes to the same job (or none) as in the runs table, never to whichever job was asked about."""
    runs = list(runs)
    jobs = list(jobs)
    if not any((j.namespace, j.name) == (job.namespace, job.name) for j in jobs):
        jobs.append(job)
    links = link_runs(runs, jobs, job_tag, prefer_namespace)
    found = [run for run in runs
             if (linked := links.get(run.run_id)) is not None and (linked.namespace, linked.name) == (job.namespace,
                                                                                                    job.name)]
    return sorted(found, key=lambda r: r.start_time or 0, reverse=True)
