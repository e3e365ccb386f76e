"""The job kinds Kueue queues and the training operator runs, behind one small interface.

Each adapter knows where a kind keeps its pod sets, its suspend flag and its finished state:

- `batch/v1` Job: one pod set `main` (`spec.parallelism` pods), `spec.suspend`, conditions `Complete`/`Failed`.
- Kubeflow `PyTorchJob`: pod sets `master` and `worker` from `spec.pytorchReplicaSpecs`, `spec.runPolicy.suspend`,
  conditions `Succeeded`/`Failed`.
- HyperPod `HyperPodPyTorchJob`: one pod set per `spec.replicaSpecs[]`, `spec.runPolicy.suspend`, conditions
  `Completed`/`Succeeded`/`Failed`.
- `JobSet`: one pod set per replicated job (`replicas` x `parallelism` pods), `spec.suspend`, conditions
  `Completed`/`Failed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"


@dataclass(frozen=True)
class PodSetSpec:
    name: str
    count: int
    template: dict[str, Any]


class JobAdapter:
    api_version = ""
    kind = ""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def pod_sets(self, job: dict[str, Any]) -> list[PodSetSpec]:
        raise NotImplementedError

    def templates(self, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Pod set name -> the pod template inside `job` (the same dict: changing it changes the job)."""
        raise NotImplementedError

    def suspended(self, job: dict[str, Any]) -> bool:
        raise NotImplementedError

    def set_suspended(self, job: dict[str, Any], value: bool) -> None:
        raise NotImplementedError

    def finished(self, job: dict[str, Any]) -> tuple[bool, bool, str]:
        """(finished, succeeded, message) from the job's conditions."""
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond.get("status") != "True":
                continue
            if cond.get("type") in self.success_conditions:
                return True, True, cond.get("message") or "Job finished successfully"
            if cond.get("type") == "Failed":
                return True, False, cond.get("message") or "Job failed"
        return False, False, ""

    success_conditions: tuple[str, ...] = ()


class BatchJobAdapter(JobAdapter):
    api_version, kind = "batch/v1", "Job"
    success_conditions = ("Complete",)

    def pod_sets(self, job: dict[str, Any]) -> list[PodSetSpec]:
        spec = job.get("spec") or {}
        count = int(spec.get("parallelism", 1) or 1)
        if spec.get("completions") is not None:
            count = min(count, int(spec["completions"]))
        return [PodSetSpec("main", count, spec.get("template") or {})]

    def templates(self, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {"main": job.setdefault("spec", {}).setdefault("template", {})}

    def suspended(self, job: dict[str, Any]) -> bool:
        return bool((job.get("spec") or {}).get("suspend"))

    def set_suspended(self, job: dict[str, Any], value: bool) -> None:
        job.setdefault("spec", {})["suspend"] = value


class PyTorchJobAdapter(JobAdapter):
    api_version, kind = "kubeflow.org/v1", "PyTorchJob"
    success_conditions = ("Succeeded",)
    ORDER = ("Master", "Worker")

    def _replicas(self, job: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        specs = (job.get("spec") or {}).get("pytorchReplicaSpecs") or {}
        ordered = [t for t in self.ORDER if t in specs] + sorted(t for t in specs if t not in self.ORDER)
        return [(t, specs[t]) for t in ordered]

    def pod_sets(self, job: dict[str, Any]) -> list[PodSetSpec]:
        return [
            PodSetSpec(t.lower(), int(spec.get("replicas", 1)), spec.get("template") or {})
            for t, spec in self._replicas(job)
        ]

    def templates(self, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {t.lower(): spec.setdefault("template", {}) for t, spec in self._replicas(job)}

    def replica_types(self, job: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return self._replicas(job)

    def suspended(self, job: dict[str, Any]) -> bool:
        return bool(((job.get("spec") or {}).get("runPolicy") or {}).get("suspend"))

    def set_suspended(self, job: dict[str, Any], value: bool) -> None:
        job.setdefault("spec", {}).setdefault("runPolicy", {})["suspend"] = value


class HyperPodJobAdapter(JobAdapter):
    api_version, kind = "sagemaker.amazonaws.com/v1", "HyperPodPyTorchJob"
    success_conditions = ("Completed", "Succeeded")

    def pod_sets(self, job: dict[str, Any]) -> list[PodSetSpec]:
        return [
            PodSetSpec(str(spec.get("name", f"pods-{i}")).lower(), int(spec.get("replicas", 1)), spec.get("template") or {})
            for i, spec in enumerate((job.get("spec") or {}).get("replicaSpecs") or [])
        ]

    def templates(self, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {
            str(spec.get("name", f"pods-{i}")).lower(): spec.setdefault("template", {})
            for i, spec in enumerate(job.setdefault("spec", {}).get("replicaSpecs") or [])
        }

    def suspended(self, job: dict[str, Any]) -> bool:
        return bool(((job.get("spec") or {}).get("runPolicy") or {}).get("suspend"))

    def set_suspended(self, job: dict[str, Any], value: bool) -> None:
        job.setdefault("spec", {}).setdefault("runPolicy", {})["suspend"] = value


class JobSetAdapter(JobAdapter):
    api_version, kind = "jobset.x-k8s.io/v1alpha2", "JobSet"
    success_conditions = ("Completed",)

    def pod_sets(self, job: dict[str, Any]) -> list[PodSetSpec]:
        result = []
        for replicated in (job.get("spec") or {}).get("replicatedJobs") or []:
            job_spec = (replicated.get("template") or {}).get("spec") or {}
            per_job = int(job_spec.get("parallelism", 1) or 1)
            result.append(
                PodSetSpec(replicated["name"], int(replicated.get("replicas", 1)) * per_job, job_spec.get("template") or {})
            )
        return result

    def templates(self, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {
            replicated["name"]: replicated.setdefault("template", {}).setdefault("spec", {}).setdefault("template", {})
            for replicated in job.setdefault("spec", {}).get("replicatedJobs") or []
        }

    def suspended(self, job: dict[str, Any]) -> bool:
        return bool((job.get("spec") or {}).get("suspend"))

    def set_suspended(self, job: dict[str, Any], value: bool) -> None:
        job.setdefault("spec", {})["suspend"] = value


ADAPTERS: tuple[JobAdapter, ...] = (HyperPodJobAdapter(), PyTorchJobAdapter(), BatchJobAdapter(), JobSetAdapter())
BY_KIND = {(a.group, a.kind): a for a in ADAPTERS}


def adapter_for(api_version: str, kind: str) -> JobAdapter | None:
    return BY_KIND.get((api_version.rpartition("/")[0], kind))
