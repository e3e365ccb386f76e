"""A real, small training loop that logs to MLflow: run by the test MLflow venv's Python (numpy + mlflow there).

    python mlflow_train.py URI EXPERIMENT RUN_NAME --steps N [--run-id ID] [--start S] [--tag K=V ...]
                           [--bad STEP=nan|inf ...] [--end FINISHED] [--system] [--only-system] [--stepless]

Fits a linear regression with mini-batch SGD in numpy and logs the training loss of each step (and an eval loss every
10 steps, the learning rate, and with --system a `system/gpu_0_utilization_percentage`) with `log_batch`, a few
hundred points per call. `--run-id` continues a run (a run followed while it trains). `--only-system` logs only the
system metrics (as MLflow's system-metrics monitor does for a run that logs nothing else yet); `--stepless` logs the
loss without a step (all at step 0, as `log_metric` does by default). Prints the run id.
Not imported by pytest: it runs in the MLflow server's own environment, with `python -P` (this folder holds a
`mlflow.py` that would shadow the package).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("experiment")
    parser.add_argument("run_name")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--run-id")
    parser.add_argument("--tag", action="append", default=[])
    parser.add_argument("--bad", action="append", default=[])
    parser.add_argument("--end")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--system", action="store_true")
    parser.add_argument("--only-system", action="store_true")
    parser.add_argument("--stepless", action="store_true")
    args = parser.parse_args()

    import numpy as np
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=args.uri)
    if args.run_id:
        run_id = args.run_id
    else:
        found = client.get_experiment_by_name(args.experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(args.experiment)
        tags = dict(t.split("=", 1) for t in args.tag)
        run_id = client.create_run(experiment_id, run_name=args.run_name, tags=tags).info.run_id
        client.log_batch(run_id, params=[Param("lr", str(args.lr)), Param("model", "linear"),
                                         Param("batch_size", "32")])
    bad = {int(k): float(v) for k, v in (b.split("=", 1) for b in args.bad)}

    rng = np.random.default_rng(args.seed)
    true_w = rng.normal(size=8)
    features = rng.normal(size=(2048, 8))
    targets = features @ true_w + rng.normal(scale=0.1, size=2048)
    weights = np.zeros(8)
    rng_steps = np.random.default_rng(args.seed + 1)
    for _ in range(args.start):  # replay the earlier steps so a continued run goes on from where it was
        batch = rng_steps.integers(0, 2048, size=32)
        grad = 2 * features[batch].T @ (features[batch] @ weights - targets[batch]) / 32
        weights -= args.lr * grad
    metrics = []
    now = int(time.time() * 1000)
    for step in range(args.start, args.start + args.steps):
        batch = rng_steps.integers(0, 2048, size=32)
        error = features[batch] @ weights - targets[batch]
        loss = float(np.mean(error ** 2))
        weights -= args.lr * 2 * features[batch].T @ error / 32
        ts = now + step * 100
        if args.only_system:
            metrics.append(Metric("system/gpu_0_utilization_percentage", 90.0 + step % 7, ts, step))
            continue
        metrics.append(Metric("loss", bad.get(step, loss), ts, 0 if args.stepless else step))
        if args.stepless:
            continue
        metrics.append(Metric("learning_rate", args.lr, ts, step))
        if step % 10 == 0:
            eval_loss = float(np.mean((features[:256] @ weights - targets[:256]) ** 2))
            metrics.append(Metric("eval_loss", eval_loss, ts, step))
            if args.system:
                metrics.append(Metric("system/gpu_0_utilization_percentage", 90.0 + step % 7, ts, step))
                metrics.append(Metric("system/cpu_utilization_percentage", 20.0 + step % 5, ts, step))
    for start in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[start:start + 900])
    if args.end:
        client.set_terminated(run_id, args.end)
    print(run_id)


if __name__ == "__main__":
    main()
