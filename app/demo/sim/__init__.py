"""The simulator behind `hyperdesk demo`: a SageMaker HyperPod EKS cluster with task governance, played on the API.

The simulator never talks to the TUI: its controllers read and write API objects through the embedded API
server's store (the same rules as HTTP), write pod logs and register proxy and port-forward targets on the server,
and log training curves to a local MLflow store through `MlflowClient`. The TUI sees all of it through the
kubernetes client, the MLflow client and dcgm-exporter text, as on a real cluster.

Module map:

- `clock`: simulated time (fixed one-second quanta, `--speed`), the seeded random generator, position-keyed noise
- `cache`, `base`: the informer-style cache, the `World` controllers share, the `Controller` base class
- `scenario`: nodes, task governance and the timeline of the `hyperpod` and `bare` scenarios
- `kueue_logic` (pure) and `kueue`: quotas, flavor assignment, preemption; Workloads and queue status
- `jobs`, `training`: job kinds behind one interface; the training operators and the training processes
- `kubelet`: kube-scheduler and the kubelet; `deployments`: Deployments and the garbage collector
- `workspaces`: jupyter-k8s and the demo JupyterLab; `inference`: HyperPod inference and KServe
- `gpus`: the device plugin and dcgm-exporter; `mlflow_writer`: runs written through MlflowClient
- `runner`: `Simulation`, which wires the controllers to a server; `cluster`: `DemoCluster`, server plus simulation
"""

from .cluster import DemoCluster, DemoThread
from .runner import Simulation
from .scenario import SCENARIOS

__all__ = ["SCENARIOS", "DemoCluster", "DemoThread", "Simulation"]
