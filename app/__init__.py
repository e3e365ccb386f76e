"""hyperdesk: a keyboard-driven terminal workstation for ML work on Kubernetes GPU clusters.

Keep this module free of imports: `hyperdesk --version` must stay fast.
"""

__version__ = "0.1.0"
