"""`KIND/NAME` as kubectl spells it, for jobs (`hyperdesk logs|cancel|... pytorchjob/x`) and endpoints
(`hyperdesk invoke|scale|... isvc/x`): the shared names of `app.cluster.resources` and each area's one-line error."""

from __future__ import annotations

import pytest

from app.cluster.actions import EXIT_BAD_INPUT, ActionError, split_job_ref
from app.cluster.endpoints import EndpointError, split_ref
from app.cluster.resources import kubectl_names, split_kind_ref


@pytest.mark.parametrize(("ref", "store"), [
    ("pytorchjob/train", "pytorchjobs"),
    ("PyTorchJobs/train", "pytorchjobs"),
    ("pytorchjobs.kubeflow.org/train", "pytorchjobs"),
    ("pytorchjob.kubeflow.org/train", "pytorchjobs"),
    ("hpjob/train", "hyperpodpytorchjobs"),
    ("HyperPodPyTorchJob/train", "hyperpodpytorchjobs"),
    ("job.batch/train", "jobs"),
    ("jobs/train", "jobs"),
    ("jobset/train", "jobsets"),
    ("jobsets.jobset.x-k8s.io/train", "jobsets"),
])
def test_job_kinds_as_kubectl_spells_them(ref: str, store: str) -> None:
    assert split_job_ref(ref) == (store, "train")


@pytest.mark.parametrize(("ref", "store"), [
    ("isvc/clip", "inferenceservices"),
    ("InferenceService/clip", "inferenceservices"),
    ("inferenceservices.serving.kserve.io/clip", "inferenceservices"),
    ("jsm/clip", "jumpstartmodels"),
    ("jumpstartmodel/clip", "jumpstartmodels"),
    ("iec/clip", "inferenceendpointconfigs"),
    ("inferenceendpointconfigs.inference.sagemaker.aws.amazon.com/clip", "inferenceendpointconfigs"),
])
def test_endpoint_kinds_as_kubectl_spells_them(ref: str, store: str) -> None:
    assert split_ref(ref) == (store, "clip")


def test_a_bare_name_names_no_kind() -> None:
    assert split_job_ref("train") == (None, "train")
    assert split_ref("clip") == (None, "clip")


def test_each_area_knows_only_its_own_kinds() -> None:
    with pytest.raises(ActionError) as job:
        split_job_ref("isvc/clip")
    assert (str(job.value), job.value.exit_code) == (
        "unknown job kind 'isvc' in 'isvc/clip' (use one of: hyperpodpytorchjob, pytorchjob, job, jobset)",
        EXIT_BAD_INPUT)
    with pytest.raises(EndpointError) as endpoint:
        split_ref("Job/train")
    assert (str(endpoint.value), endpoint.value.exit_code) == (
        "unknown endpoint kind 'Job' in 'Job/train' (use jumpstartmodel, inferenceendpointconfig or "
        "inferenceservice/isvc)", EXIT_BAD_INPUT)


def test_the_shared_names_and_split() -> None:
    names = kubectl_names(["jobs", "pods"], {"po": "pods"})
    assert names == {"jobs": "jobs", "job": "jobs", "jobs.batch": "jobs", "job.batch": "jobs",
                     "pods": "pods", "pod": "pods", "po": "pods"}
    assert split_kind_ref("Job.Batch/a", names) == ("jobs", "a")
    assert split_kind_ref("a", names) == (None, "a")
    with pytest.raises(KeyError, match="Deployment"):
        split_kind_ref("Deployment/a", names)
