"""The training operators (HyperPod, Kubeflow, the Job and JobSet controllers) and the training they run.

Operators act on the API objects only. For a job that may run (not suspended, and admitted by Kueue when it is
queued) they create its pods, with the labels the real operators put on them:

- HyperPodPyTorchJob: pods `<job>-pod-<i>` labelled `HPJob=<job>`; conditions `Created`, `PodsRunning`,
  `Running`, `Suspended`, `Completed`, `Failed` (the last `True` one is the job's state); `restartCount`.
- PyTorchJob: pods `<job>-master-0`, `<job>-worker-<i>` labelled `training.kubeflow.org/job-name`,
  `.../replica-type`, `.../replica-index`, `.../job-role`; conditions `Created`, `Running`, `Restarting`,
  `Suspended`, `Succeeded`, `Failed` with Kubeflow's reasons and messages; `replicaStatuses`.
- Job: pods `<job>-<5 chars>`, counts `active`/`ready`/`succeeded`/`failed`, conditions `Suspended`,
  `SuccessCriteriaMet`+`Complete`, `FailureTarget`+`Failed`.
- JobSet: child Jobs `<jobset>-<replicatedJob>-<i>`, `replicatedJobsStatus`, `Completed`/`Failed`/`Suspended`.

The pods of one job form a gang. Once all of them run, the training process loads (a few simulated seconds), then
steps: every step appends a log line to rank 0's container and loss, learning rate, gradient norm and throughput
points to the job's MLflow run (named after the job, tagged with its namespace, kind and uid), with an eval loss
every `eval_every` steps and a checkpoint every `checkpoint_every`. A job whose hints say so crashes once (an NCCL
timeout on its last rank); it resumes from its last checkpoint after the container restarts. A pod whose command
is `sleep N` simply exits 0 after N seconds, like the Kueue samples.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from .base import Controller, JobHints, World
from .jobs import QUEUE_LABEL, BatchJobAdapter, HyperPodJobAdapter, JobAdapter, JobSetAdapter, PyTorchJobAdapter
from .objects import controller_of, copy, is_true, owner_reference, set_condition

HP, PT, BATCH, JOBSET = HyperPodJobAdapter(), PyTorchJobAdapter(), BatchJobAdapter(), JobSetAdapter()
TERMINAL = ("Succeeded", "Failed")
LOAD_SECONDS = 20.0
_SLEEP = re.compile(r"\bsleep\s+(\d+)")
_STEPS = re.compile(r"--(?:max[-_]steps|steps|total[-_]steps)[= ](\d+)")


def sleep_seconds(pod_spec: dict[str, Any]) -> int | None:
    """N when the main container's command is `sleep N` (e.g. the Kueue sample job)."""
    container = (pod_spec.get("containers") or [{}])[0]
    text = " ".join(str(x) for x in (container.get("command") or []) + (container.get("args") or []))
    match = _SLEEP.search(text)
    return int(match.group(1)) if match else None


def default_hints(template: dict[str, Any]) -> JobHints:
    """Hints for a job the scenario did not script: steps from `--max-steps N` or env MAX_STEPS, else 300."""
    container = ((template.get("spec") or {}).get("containers") or [{}])[0]
    text = " ".join(str(x) for x in (container.get("command") or []) + (container.get("args") or []))
    steps = 300
    match = _STEPS.search(text)
    if match:
        steps = int(match.group(1))
    for env in container.get("env") or []:
        if env.get("name") == "MAX_STEPS" and str(env.get("value", "")).isdigit():
            steps = int(env["value"])
    return JobHints(total_steps=steps, step_seconds=2.0, eval_every=max(10, steps // 10), checkpoint_every=max(10, steps // 10))


# --- the training process -------------------------------------------------------------------------------------------


def learning_rate(hints: JobHints, step: int) -> float:
    if step < hints.warmup_steps:
        return hints.learning_rate * (step + 1) / hints.warmup_steps
    progress = (step - hints.warmup_steps) / max(1, hints.total_steps - hints.warmup_steps)
    return hints.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def expected_loss(hints: JobHints, step: int) -> float:
    """The noiseless curve: a power-law decay from `initial_loss` toward `final_loss`."""
    tau = max(1.0, hints.total_steps / 25)
    return hints.final_loss + (hints.initial_loss - hints.final_loss) * (1 + step / tau) ** -0.75


@dataclass
class TrainingRun:
    """One job's training process across its pods (a gang), surviving restarts and preemptions."""

    namespace: str
    name: str
    uid: str
    kind: str
    hints: JobHints
    step: int = 0
    checkpoint: int = 0
    phase: str = "waiting"  # waiting, loading, stepping, done
    elapsed: float = 0.0
    progress: float = 0.0
    crashed: bool = False
    mlflow_started: bool = False
    attempts: int = 0
    pods: list[dict[str, Any]] = field(default_factory=list)  # current gang, rank order

    @property
    def run_key(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}/{self.uid}"


class TrainingOperator(Controller):
    name = "training-operator"
    watches = frozenset(
        {("", "Pod"), ("batch", "Job"), ("kubeflow.org", "PyTorchJob"), ("sagemaker.amazonaws.com", "HyperPodPyTorchJob"),
         ("jobset.x-k8s.io", "JobSet"), ("kueue.x-k8s.io", "Workload")}
    )

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.runs: dict[str, TrainingRun] = {}
        self._sleepers: set[str] = set()

    # --- helpers ------------------------------------------------------------------------------------------------

    def _index(self) -> tuple[dict[str, list[dict[str, Any]]], set[str]]:
        pods_by_owner: dict[str, list[dict[str, Any]]] = {}
        for pod in self.cache.all("v1", "Pod"):
            ref = controller_of(pod)
            if ref is not None:
                pods_by_owner.setdefault(ref["uid"], []).append(pod)
        admitted = set()
        for workload in self.cache.all("kueue.x-k8s.io/v1beta1", "Workload"):
            if is_true(workload, "Admitted") and not is_true(workload, "Evicted"):
                for ref in workload["metadata"].get("ownerReferences") or []:
                    admitted.add(ref["uid"])
        return pods_by_owner, admitted

    def _may_run(self, adapter: JobAdapter, job: dict[str, Any], admitted: set[str]) -> bool:
        if adapter.suspended(job):
            return False
        queued = QUEUE_LABEL in (job["metadata"].get("labels") or {})
        return not queued or job["metadata"]["uid"] in admitted

    def _delete_pods(self, pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in TERMINAL:
                self.world.delete(pod)

    def _write_status(self, job: dict[str, Any], status: dict[str, Any]) -> None:
        if status != (job.get("status") or {}):
            updated = copy(job)
            updated["status"] = status
            self.world.put(updated)

    def _pod(self, job: dict[str, Any], name: str, template: dict[str, Any], labels: dict[str, str],
             restart_policy: str, env: dict[str, str]) -> dict[str, Any]:
        meta = template.get("metadata") or {}
        spec = copy(template.get("spec") or {})
        spec["restartPolicy"] = restart_policy
        for container in spec.get("containers") or []:
            extra = [{"name": k, "value": v} for k, v in env.items()]
            present = {e.get("name") for e in container.get("env") or []}
            container["env"] = (container.get("env") or []) + [e for e in extra if e["name"] not in present]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": job["metadata"]["namespace"],
                "labels": {**(meta.get("labels") or {}), **labels},
                "annotations": dict(meta.get("annotations") or {}),
                "ownerReferences": [owner_reference(job)],
            },
            "spec": spec,
        }

    def _run_for(self, job: dict[str, Any], kind: str, template: dict[str, Any]) -> TrainingRun:
        uid = job["metadata"]["uid"]
        run = self.runs.get(uid)
        if run is None:
            namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
            hints = self.world.hints.get((namespace, name)) or default_hints(template)
            run = self.runs[uid] = TrainingRun(namespace, name, uid, kind, hints)
        return run

    # --- reconcile ----------------------------------------------------------------------------------------------------

    def reconcile(self) -> None:
        pods_by_owner, admitted = self._index()
        live: set[str] = set()
        for adapter in (HP, PT):
            for job in self.cache.all(adapter.api_version, adapter.kind):
                live.add(job["metadata"]["uid"])
                self._gang_job(adapter, job, pods_by_owner.get(job["metadata"]["uid"], []), admitted)
        for jobset in self.cache.all(JOBSET.api_version, JOBSET.kind):
            live.add(jobset["metadata"]["uid"])
            self._jobset(jobset, pods_by_owner, admitted)
        for job in self.cache.all(BATCH.api_version, BATCH.kind):
            live.add(job["metadata"]["uid"])
            self._batch_job(job, pods_by_owner.get(job["metadata"]["uid"], []), admitted)
        for uid in [u for u in self.runs if u not in live]:
            run = self.runs.pop(uid)
            if run.mlflow_started and run.phase != "done" and self.world.mlflow is not None:
                self.world.mlflow.end_run(run.run_key, "KILLED", self.world.clock.millis())
        self._sleep_programs()

    # --- HyperPodPyTorchJob and PyTorchJob ------------------------------------------------------------------------

    def _plan(self, adapter: JobAdapter, job: dict[str, Any]) -> list[tuple[str, str, int, dict[str, Any], dict[str, str], str]]:
        """(pod name, replica type, index, template, labels, restart policy) for every pod of a gang job."""
        name = job["metadata"]["name"]
        plan = []
        if adapter is PT:
            for replica_type, spec in PT.replica_types(job):
                lower = replica_type.lower()
                policy = spec.get("restartPolicy", "OnFailure")
                policy = "Never" if policy == "ExitCode" else policy
                for index in range(int(spec.get("replicas", 1))):
                    labels = {
                        "training.kubeflow.org/job-name": name,
                        "training.kubeflow.org/operator-name": "pytorchjob-controller",
                        "training.kubeflow.org/replica-type": lower,
                        "training.kubeflow.org/replica-index": str(index),
                    }
                    if lower == "master":
                        labels["training.kubeflow.org/job-role"] = "master"
                    plan.append((f"{name}-{lower}-{index}", replica_type, index, spec.get("template") or {}, labels, policy))
        else:
            index = 0
            for spec in (job.get("spec") or {}).get("replicaSpecs") or []:
                template = spec.get("template") or {}
                policy = (template.get("spec") or {}).get("restartPolicy", "Never")
                for _ in range(int(spec.get("replicas", 1))):
                    labels = {"HPJob": name, "sagemaker.amazonaws.com/replica-name": str(spec.get("name", "pods"))}
                    plan.append((f"{name}-pod-{index}", str(spec.get("name", "pods")), index, template, labels, policy))
                    index += 1
        return plan

    def _gang_job(self, adapter: JobAdapter, job: dict[str, Any], pods: list[dict[str, Any]], admitted: set[str]) -> None:
        world = self.world
        meta = job["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        now = world.clock.timestamp()
        status = copy(job.get("status") or {})
        conditions = status.setdefault("conditions", [])
        kubeflow = adapter is PT
        style = "kubeflow" if kubeflow else "meta"
        word = "PyTorchJob" if kubeflow else "HyperPodPyTorchJob"

        def cond(type_: str, value: str, reason: str, message: str, *, last: bool = True) -> None:
            set_condition(conditions, type_, value, reason, message, now, style=style, move_to_end=last and value == "True")

        if not any(c.get("type") == "Created" for c in conditions):
            cond("Created", "True", f"{word}Created", f"{word} {name} is created.")
        finished, _, _ = adapter.finished(job)
        plan = self._plan(adapter, job)
        by_name = {p["metadata"]["name"]: p for p in pods}
        if finished:
            self._write_status(job, status)
            return
        if not self._may_run(adapter, job, admitted):
            self._delete_pods(pods)
            if adapter.suspended(job):
                for other in ("Running", "PodsRunning", "Restarting"):
                    if any(c.get("type") == other and c.get("status") == "True" for c in conditions):
                        cond(other, "False", f"{word}Suspended", f"{word} {name} is suspended.", last=False)
                cond("Suspended", "True", f"{word}Suspended", f"{word} {name} is suspended.")
            if kubeflow:
                status["replicaStatuses"] = {t: {"active": 0} for t, _ in PT.replica_types(job)}
            self._write_status(job, status)
            if self.runs.get(meta["uid"]):
                self.runs[meta["uid"]].phase = "waiting"
            return
        if any(c.get("type") == "Suspended" and c.get("status") == "True" for c in conditions):
            cond("Suspended", "False", f"{word}Resumed", f"{word} {name} is resumed.", last=False)
        status.setdefault("startTime", now)
        run = self._run_for(job, adapter.kind, plan[0][3] if plan else {})
        world_size = len(plan)
        failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
        if failed and not kubeflow:
            retries = int(((job.get("spec") or {}).get("runPolicy") or {}).get("jobMaxRetryCount", 0) or 0)
            if int(status.get("restartCount", 0)) < retries:
                for pod in pods:
                    world.delete(pod)
                status["restartCount"] = int(status.get("restartCount", 0)) + 1
                run.phase = "waiting"
                cond("PodsRunning", "False", "PodFailed", f"pod {failed[0]['metadata']['name']} failed; restarting the job", last=False)
                self._write_status(job, status)
                return
        if failed:
            message = (f"{word} {namespace}/{name} has failed because {len(failed)} "
                       f"{(failed[0]['metadata'].get('labels') or {}).get('training.kubeflow.org/replica-type', 'pod').capitalize()} "
                       "replica(s) failed.")
            for other in ("Running", "PodsRunning", "Restarting"):
                if any(c.get("type") == other and c.get("status") == "True" for c in conditions):
                    cond(other, "False", f"{word}Failed", message, last=False)
            cond("Failed", "True", f"{word}Failed", message)
            status["completionTime"] = now
            self._finish_run(run, success=False)
        else:
            for rank, (pod_name, _, index, template, labels, policy) in enumerate(plan):
                if pod_name in by_name:
                    continue
                master = plan[0][0]
                env = {"MASTER_ADDR": master, "MASTER_PORT": "23456", "WORLD_SIZE": str(world_size), "RANK": str(rank),
                       "PET_NNODES": str(world_size), "PET_NODE_RANK": str(rank)}
                nproc = (job.get("spec") or {}).get("nprocPerNode")
                if nproc:
                    env["PET_NPROC_PER_NODE"] = str(nproc)
                pod = self._pod(job, pod_name, template, labels, policy, env)
                pod["spec"].setdefault("hostname", pod_name)
                created = world.create(pod)
                if created is not None:
                    by_name[pod_name] = created
            gang = [by_name[p[0]] for p in plan if p[0] in by_name]
            run.pods = gang
            phases = [(p.get("status") or {}).get("phase") for p in gang]
            waiting = any("waiting" in ((c.get("state") or {})) and (c.get("state") or {})["waiting"].get("reason") == "CrashLoopBackOff"
                          for p in gang for c in (p.get("status") or {}).get("containerStatuses") or [])
            if gang and len(gang) == len(plan) and all(ph == "Succeeded" for ph in phases):
                success = f"{word} {namespace}/{name} successfully completed."
                for other in ("Running", "PodsRunning", "Restarting"):
                    if any(c.get("type") == other and c.get("status") == "True" for c in conditions):
                        cond(other, "False", f"{word}Succeeded", success, last=False)
                cond("Succeeded" if kubeflow else "Completed", "True", f"{word}Succeeded", success)
                status["completionTime"] = now
            elif waiting and kubeflow:
                crashed = [p for p in gang for c in (p.get("status") or {}).get("containerStatuses") or []
                           if ((c.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"]
                replica = (crashed[0]["metadata"].get("labels") or {}).get("training.kubeflow.org/replica-type", "worker")
                message = f"PyTorchJob {name} is restarting because {len(crashed)} {replica.capitalize()} replica(s) failed."
                cond("Running", "False", "PyTorchJobRestarting", message, last=False)
                cond("Restarting", "True", "PyTorchJobRestarting", message)
            elif gang and len(gang) == len(plan) and all(ph == "Running" for ph in phases) and not waiting:
                if kubeflow:
                    if any(c.get("type") == "Restarting" and c.get("status") == "True" for c in conditions):
                        cond("Restarting", "False", "PyTorchJobRunning", f"PyTorchJob {namespace}/{name} is running.", last=False)
                    cond("Running", "True", "PyTorchJobRunning", f"PyTorchJob {namespace}/{name} is running.")
                else:
                    cond("PodsRunning", "True", "AllPodsRunning", f"All {len(gang)} pods of {name} are running")
                    cond("Running", "True", "JobRunning", f"HyperPodPyTorchJob {name} is running")
        if kubeflow:
            replica_statuses: dict[str, dict[str, Any]] = {}
            for replica_type, _ in PT.replica_types(job):
                lower = replica_type.lower()
                mine = [p for p in by_name.values()
                        if (p["metadata"].get("labels") or {}).get("training.kubeflow.org/replica-type") == lower]
                entry: dict[str, Any] = {}
                for phase, field_name in (("Running", "active"), ("Pending", "active"), ("Succeeded", "succeeded"), ("Failed", "failed")):
                    count = sum(1 for p in mine if (p.get("status") or {}).get("phase", "Pending") == phase)
                    if count:
                        entry[field_name] = entry.get(field_name, 0) + count
                entry["selector"] = f"training.kubeflow.org/job-name={name},training.kubeflow.org/operator-name=pytorchjob-controller,training.kubeflow.org/replica-type={lower}"
                replica_statuses[replica_type] = entry
            status["replicaStatuses"] = replica_statuses
            status["lastReconcileTime"] = status.get("lastReconcileTime") or now
        else:
            status.setdefault("restartCount", 0)
        self._write_status(job, status)

    # --- JobSet ---------------------------------------------------------------------------------------------------

    def _jobset(self, jobset: dict[str, Any], pods_by_owner: dict[str, list[dict[str, Any]]], admitted: set[str]) -> None:
        world = self.world
        meta = jobset["metadata"]
        name = meta["name"]
        now = world.clock.timestamp()
        status = copy(jobset.get("status") or {})
        conditions = status.setdefault("conditions", [])
        children = {j["metadata"]["name"]: j for j in self.cache.all(BATCH.api_version, BATCH.kind, meta["namespace"])
                    if (controller_of(j) or {}).get("uid") == meta["uid"]}
        finished, _, _ = JOBSET.finished(jobset)
        may_run = self._may_run(JOBSET, jobset, admitted)
        replicated_status = []
        all_complete, any_failed = True, False
        for replicated in (jobset.get("spec") or {}).get("replicatedJobs") or []:
            rj = replicated["name"]
            counts = {"name": rj, "ready": 0, "succeeded": 0, "failed": 0, "active": 0, "suspended": 0}
            for index in range(int(replicated.get("replicas", 1))):
                child_name = f"{name}-{rj}-{index}"
                child = children.get(child_name)
                template = copy(replicated.get("template") or {})
                if child is None and not finished:
                    job_meta = template.setdefault("metadata", {})
                    jobset_labels = {"jobset.sigs.k8s.io/jobset-name": name, "jobset.sigs.k8s.io/replicatedjob-name": rj,
                                     "jobset.sigs.k8s.io/job-index": str(index)}
                    job_meta["labels"] = {**(job_meta.get("labels") or {}), **jobset_labels}
                    pod_template = template.setdefault("spec", {}).setdefault("template", {})
                    pod_meta = pod_template.setdefault("metadata", {})
                    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **jobset_labels}
                    template["spec"]["suspend"] = not may_run
                    child = world.create({"apiVersion": "batch/v1", "kind": "Job",
                                          "metadata": {**job_meta, "name": child_name, "namespace": meta["namespace"],
                                                       "ownerReferences": [owner_reference(jobset)]},
                                          "spec": template["spec"]})
                    if child is None:
                        all_complete = False
                        continue
                elif child is not None and not finished and bool((child.get("spec") or {}).get("suspend")) == may_run:
                    updated = copy(child)
                    updated["spec"]["suspend"] = not may_run
                    selector = ((template.get("spec") or {}).get("template") or {}).get("spec", {}).get("nodeSelector")
                    if may_run and selector:
                        updated["spec"]["template"]["spec"]["nodeSelector"] = selector
                    world.put(updated)
                if child is None:
                    all_complete = False
                    continue
                child_done, child_ok, _ = BATCH.finished(child)
                child_status = child.get("status") or {}
                counts["ready"] += 1 if child_status.get("ready") else 0
                counts["active"] += 1 if child_status.get("active") else 0
                counts["suspended"] += 1 if (child.get("spec") or {}).get("suspend") else 0
                if child_done and child_ok:
                    counts["succeeded"] += 1
                else:
                    all_complete = False
                if child_done and not child_ok:
                    counts["failed"] += 1
                    any_failed = True
            replicated_status.append(counts)
        status["replicatedJobsStatus"] = replicated_status
        status.setdefault("restarts", 0)
        if not finished:
            if any_failed:
                set_condition(conditions, "Failed", "True", "FailedJobs", "jobset failed due to one or more job failures", now)
                status["terminalState"] = "Failed"
            elif all_complete and children:
                set_condition(conditions, "Completed", "True", "AllJobsCompleted", "jobset completed successfully", now)
                status["terminalState"] = "Completed"
            elif not may_run and JOBSET.suspended(jobset):
                set_condition(conditions, "Suspended", "True", "SuspendedJobs", "jobset is suspended", now)
            elif any(c.get("type") == "Suspended" and c.get("status") == "True" for c in conditions):
                set_condition(conditions, "Suspended", "False", "ResumeJobs", "jobset is resumed", now)
        self._write_status(jobset, status)

    # --- batch/v1 Job ---------------------------------------------------------------------------------------------

    def _batch_job(self, job: dict[str, Any], pods: list[dict[str, Any]], admitted: set[str]) -> None:
        world = self.world
        meta, spec = job["metadata"], job.get("spec") or {}
        name = meta["name"]
        now = world.clock.timestamp()
        status = copy(job.get("status") or {})
        conditions = status.setdefault("conditions", [])
        finished, _, _ = BATCH.finished(job)
        phases = [(p.get("status") or {}).get("phase", "Pending") for p in pods]
        active = [p for p, ph in zip(pods, phases, strict=True) if ph not in TERMINAL]
        succeeded = phases.count("Succeeded")
        failed = phases.count("Failed")
        parallelism = int(spec.get("parallelism", 1) or 1)
        completions = int(spec.get("completions") if spec.get("completions") is not None else parallelism)
        if not finished:
            if not self._may_run(BATCH, job, admitted):
                self._delete_pods(active)
                active = []
                if BATCH.suspended(job):
                    set_condition(conditions, "Suspended", "True", "JobSuspended", "Job suspended", now, style="job")
            else:
                if any(c.get("type") == "Suspended" and c.get("status") == "True" for c in conditions):
                    set_condition(conditions, "Suspended", "False", "JobResumed", "Job resumed", now, style="job")
                status.setdefault("startTime", now)
                if succeeded >= completions:
                    set_condition(conditions, "SuccessCriteriaMet", "True", "CompletionsReached",
                                  "Reached expected number of succeeded pods", now, style="job")
                    set_condition(conditions, "Complete", "True", "CompletionsReached",
                                  "Reached expected number of succeeded pods", now, style="job")
                    status["completionTime"] = now
                elif failed > int(spec.get("backoffLimit", 6)):
                    self._delete_pods(active)
                    active = []
                    set_condition(conditions, "FailureTarget", "True", "BackoffLimitExceeded",
                                  "Job has reached the specified backoff limit", now, style="job")
                    set_condition(conditions, "Failed", "True", "BackoffLimitExceeded",
                                  "Job has reached the specified backoff limit", now, style="job")
                else:
                    template = spec.get("template") or {}
                    missing = min(parallelism, completions - succeeded) - len(active)
                    for index in range(missing):
                        pod = self._pod(job, f"{name}-{world.rng.suffix()}", template,
                                        {"batch.kubernetes.io/job-name": name, "job-name": name,
                                         "batch.kubernetes.io/controller-uid": meta["uid"], "controller-uid": meta["uid"]},
                                        (template.get("spec") or {}).get("restartPolicy", "Never"), {})
                        if spec.get("completionMode") == "Indexed":
                            pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] = str(succeeded + len(active) + index)
                        created = world.create(pod)
                        if created is not None:
                            active.append(created)
        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if any(c.get("type") == "Ready" and c.get("status") == "True"
                                                       for c in (p.get("status") or {}).get("conditions") or []))
        status["succeeded"] = succeeded
        status["failed"] = failed
        status["terminating"] = 0
        status["uncountedTerminatedPods"] = {}
        for zero in ("active", "succeeded", "failed"):
            if not status[zero]:
                del status[zero]
        self._write_status(job, status)

    def _top_owner(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The job at the top of the owner chain (a JobSet for its child Jobs)."""
        ref = controller_of(obj)
        if ref is not None and ref.get("kind") == "JobSet":
            parent = self.cache.get(JOBSET.api_version, "JobSet", ref["name"], obj["metadata"]["namespace"])
            if parent is not None:
                return parent
        return obj

    # --- the programs in the pods -----------------------------------------------------------------------------------

    def _sleep_programs(self) -> None:
        kubelet = self.world.kubelet
        for pod in self.cache.all("v1", "Pod"):
            uid = pod["metadata"]["uid"]
            if uid in self._sleepers or (pod.get("status") or {}).get("phase") != "Running" or controller_of(pod) is None:
                continue
            seconds = sleep_seconds(pod.get("spec") or {})
            if seconds is None:
                continue
            self._sleepers.add(uid)
            container = pod["spec"]["containers"][0]["name"]
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            self.world.logs.write(key[0], key[1], container, [], at=self.world.clock.now())

            def finish(key: tuple[str, str] = key, uid: str = uid, container: str = container) -> None:
                current = self.cache.get("v1", "Pod", key[1], key[0])
                if current is not None and current["metadata"]["uid"] == uid and kubelet is not None:
                    kubelet.exit_container(current, container, 0)

            self.world.after(seconds, finish)

    def _gangs(self) -> list[tuple[TrainingRun, list[dict[str, Any]]]]:
        """Every training run with its current pods (Job pods grouped under their JobSet when they have one)."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for job in self.cache.all(BATCH.api_version, BATCH.kind):
            template = (job.get("spec") or {}).get("template") or {}
            if sleep_seconds(template.get("spec") or {}) is not None:
                continue
            top = self._top_owner(job)
            pods = [p for p in self.cache.all("v1", "Pod", job["metadata"]["namespace"])
                    if (controller_of(p) or {}).get("uid") == job["metadata"]["uid"]]
            groups.setdefault(top["metadata"]["uid"], []).extend(pods)
            self._run_for(top, top["kind"], template)
        for uid, pods in groups.items():
            self.runs[uid].pods = sorted(pods, key=lambda p: p["metadata"]["name"])
        result = []
        for run in self.runs.values():
            fresh = [self.cache.get("v1", "Pod", p["metadata"]["name"], p["metadata"]["namespace"]) for p in run.pods]
            result.append((run, [p for p in fresh if p is not None]))
        return result

    def tick(self) -> None:
        for run, pods in self._gangs():
            self._advance(run, [p for p in pods if (p.get("status") or {}).get("phase") not in TERMINAL or run.phase == "done"])

    def _expected(self, run: TrainingRun) -> int:
        if run.kind in ("HyperPodPyTorchJob", "PyTorchJob"):
            job = self.cache.get(HP.api_version if run.kind == "HyperPodPyTorchJob" else PT.api_version, run.kind, run.name, run.namespace)
            return len(self._plan(HP if run.kind == "HyperPodPyTorchJob" else PT, job)) if job else 0
        top_kind = BATCH if run.kind == "Job" else JOBSET
        job = self.cache.get(top_kind.api_version, run.kind, run.name, run.namespace)
        return sum(p.count for p in top_kind.pod_sets(job)) if job else 0

    def _advance(self, run: TrainingRun, pods: list[dict[str, Any]]) -> None:
        world = self.world
        if run.phase == "done":
            return
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
                   and all("running" in (c.get("state") or {}) for c in (p.get("status") or {}).get("containerStatuses") or [{}])]
        keys = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods]
        expected = self._expected(run)
        if not pods or len(running) < expected or len(pods) < expected:
            if run.phase in ("loading", "stepping"):
                run.phase = "waiting"
            for key in keys:
                if key in world.activity:
                    world.activity[key] = "idle"
            return
        if run.phase == "waiting":
            run.phase, run.elapsed = "loading", 0.0
            run.attempts += 1
            self._log_start(run, running)
            for key in keys:
                world.activity[key] = "load"
        if run.phase == "loading":
            run.elapsed += 1.0
            if run.elapsed < LOAD_SECONDS:
                return
            run.phase, run.progress = "stepping", 0.0
            run.step = run.checkpoint
            self._start_mlflow(run)
            if run.checkpoint:
                self._log(run, running[0], [f"Resumed from checkpoint /fsx/checkpoints/{run.name}/step_{run.checkpoint:06d} (step {run.checkpoint})"])
            for key in keys:
                world.activity[key] = "train"
        run.progress += 1.0 / run.hints.step_seconds
        while run.progress >= 1.0 - 1e-9 and run.phase == "stepping":
            run.progress -= 1.0
            self._step(run, running)

    # --- steps, logs and metrics --------------------------------------------------------------------------------------

    def _container(self, pod: dict[str, Any]) -> str:
        return pod["spec"]["containers"][0]["name"]

    def _log(self, run: TrainingRun, pod: dict[str, Any], lines: list[str]) -> None:
        self.world.logs.write(pod["metadata"]["namespace"], pod["metadata"]["name"], self._container(pod), lines,
                              at=self.world.clock.now())

    def _log_start(self, run: TrainingRun, pods: list[dict[str, Any]]) -> None:
        hints = run.hints
        world_size = len(pods)
        for rank, pod in enumerate(pods):
            gpus = sum(int(str(v)) for c in pod["spec"]["containers"]
                       for k, v in ((c.get("resources") or {}).get("limits") or (c.get("resources") or {}).get("requests") or {}).items()
                       if k.startswith("nvidia.com/"))
            lines = [
                f"[rank{rank}] torch.distributed initialized: backend=nccl world_size={world_size} rank={rank} local_gpus={gpus or 1}",
                f"[rank{rank}] NCCL INFO Bootstrap : Using eth0:{(pod.get('status') or {}).get('podIP', '10.1.0.1')}<0>",
                f"[rank{rank}] NCCL INFO NET/OFI Selected provider is efa, fabric is efa-direct (found 32 nics)",
            ]
            if rank == 0:
                lines += [
                    f"Model: {hints.model} | steps: {hints.total_steps} | lr: {hints.learning_rate:g} | warmup: {hints.warmup_steps}",
                    f"Loading dataset shards from /fsx/datasets/{hints.extra.get('dataset', 'pile-dedup')} ...",
                ]
            self._log(run, pod, lines)

    def _start_mlflow(self, run: TrainingRun) -> None:
        if run.mlflow_started or self.world.mlflow is None:
            return
        run.mlflow_started = True
        hints = run.hints
        self.world.mlflow.start_run(
            run.run_key,
            experiment=run.namespace,
            name=run.name,
            tags={
                "hyperdesk.job": f"{run.namespace}/{run.name}",
                "kubernetes.namespace": run.namespace,
                "kubernetes.job.kind": run.kind,
                "kubernetes.job.name": run.name,
                "kubernetes.job.uid": run.uid,
            },
            params={"model": hints.model, "learning_rate": hints.learning_rate, "max_steps": hints.total_steps,
                    "warmup_steps": hints.warmup_steps, "eval_every": hints.eval_every, **hints.extra},
            start_ms=self.world.clock.millis(),
        )

    def _step(self, run: TrainingRun, pods: list[dict[str, Any]]) -> None:
        world, hints, rng = self.world, run.hints, self.world.rng
        run.step += 1
        step = run.step
        base = expected_loss(hints, step)
        loss = max(0.05, base * (1 + rng.gauss(0, 0.012 + 0.03 / math.sqrt(step))))
        lr = learning_rate(hints, step)
        grad_norm = max(0.05, 0.25 + 1.4 * math.exp(-step / max(1, hints.total_steps / 8)) + rng.gauss(0, 0.05))
        if rng.random() < 0.004:
            grad_norm *= rng.uniform(3, 8)  # the occasional spike
        seconds = hints.step_seconds * (1 + rng.gauss(0, 0.02))
        throughput = hints.tokens_per_step / seconds
        millis = world.clock.millis()
        metrics = [("loss", round(loss, 5), millis, step), ("learning_rate", lr, millis, step),
                   ("grad_norm", round(grad_norm, 4), millis, step), ("tokens_per_second", round(throughput, 1), millis, step)]
        lines = [f"step {step:>6}/{hints.total_steps} | loss {loss:.4f} | lr {lr:.3e} | grad_norm {grad_norm:.3f} | "
                 f"tokens/s {throughput:,.0f} | {seconds:.2f}s/it"]
        if step % hints.eval_every == 0 or step == hints.total_steps:
            eval_loss = max(0.05, base * 1.035 * (1 + rng.gauss(0, 0.006)))
            metrics.append(("eval_loss", round(eval_loss, 5), millis, step))
            lines.append(f"eval  {step:>6}/{hints.total_steps} | eval_loss {eval_loss:.4f} | perplexity {math.exp(min(eval_loss, 20)):.2f}")
        if step % 10 == 0:
            metrics.append(("system/gpu_0_utilization_percentage", round(94 + rng.random() * 5, 1), millis, step))
            metrics.append(("system/gpu_0_memory_usage_percentage", round(88 + rng.random() * 4, 1), millis, step))
        if step % hints.checkpoint_every == 0:
            run.checkpoint = step
            lines.append(f"Saved checkpoint /fsx/checkpoints/{run.name}/step_{step:06d} in {8 + rng.random() * 4:.1f}s")
        self._log(run, pods[0], lines)
        if world.mlflow is not None:
            world.mlflow.log(run.run_key, metrics)
        if hints.fail_at_step is not None and not run.crashed and step >= hints.fail_at_step:
            self._crash(run, pods)
        elif step >= hints.total_steps:
            self._complete(run, pods)

    def _crash(self, run: TrainingRun, pods: list[dict[str, Any]]) -> None:
        run.crashed = True
        run.phase = "waiting"
        victim = pods[-1]
        rank = len(pods) - 1
        self._log(run, victim, [
            f"[rank{rank}]:[E ProcessGroupNCCL.cpp:616] [Rank {rank}] Watchdog caught collective operation timeout: "
            f"WorkNCCL(SeqNum={run.step * 7}, OpType=ALLREDUCE, NumelIn=262144000, Timeout(ms)=600000) ran for 600012 milliseconds before timing out.",
            f"[rank{rank}]:[E ProcessGroupNCCL.cpp:1785] [PG 0 Rank {rank}] Exception (either an error or timeout) detected by watchdog at work: {run.step * 7}",
            "Traceback (most recent call last):",
            '  File "/workspace/train.py", line 214, in <module>',
            "    loss.backward()",
            "torch.distributed.DistBackendError: NCCL communicator was aborted on rank %d." % rank,
            "ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: 1) local_rank: 0 (pid: 412) of binary: /usr/bin/python3",
        ])
        self._log(run, pods[0], [f"[rank0] NCCL watchdog: rank {rank} is unresponsive, aborting communicators"])
        if self.world.kubelet is not None:
            self.world.kubelet.exit_container(victim, self._container(victim), 1,
                                              message=f"NCCL communicator was aborted on rank {rank}")

    def _complete(self, run: TrainingRun, pods: list[dict[str, Any]]) -> None:
        world = self.world
        run.phase = "done"
        self._log(run, pods[0], [f"Training complete: {run.step} steps, final checkpoint /fsx/checkpoints/{run.name}/final"])
        self._finish_run(run, success=True)
        for pod in pods:
            world.activity.pop((pod["metadata"]["namespace"], pod["metadata"]["name"]), None)
            if world.kubelet is not None:
                for container in pod["spec"]["containers"]:
                    world.kubelet.exit_container(self.cache.get("v1", "Pod", pod["metadata"]["name"], pod["metadata"]["namespace"]) or pod,
                                                 container["name"], 0)

    def _finish_run(self, run: TrainingRun, *, success: bool) -> None:
        if run.mlflow_started and self.world.mlflow is not None:
            self.world.mlflow.end_run(run.run_key, "FINISHED" if success else "FAILED", self.world.clock.millis())
        run.mlflow_started = False
        run.phase = "done"
