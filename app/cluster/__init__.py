"""Kubernetes access: kubeconfig and contexts, discovery, reflectors and stores, actions, logs."""
