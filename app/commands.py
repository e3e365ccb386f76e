"""Command mode (`:`) as k9s users know it: parsing and completion, kept free of any UI code."""

from __future__ import annotations

from dataclasses import dataclass, field

PANES: dict[str, str] = {
    # alias -> pane id
    "spaces": "spaces", "space": "spaces", "sp": "spaces",
    "jobs": "jobs", "job": "jobs", "queue": "jobs",
    "gpus": "gpus", "gpu": "gpus",
    "runs": "training", "training": "training", "run": "training",
    "endpoints": "endpoints", "endpoint": "endpoints", "ep": "endpoints",
}

PRIMARY = ("spaces", "jobs", "gpus", "runs", "endpoints")

VERBS: dict[str, str] = {
    # verb -> what `:help` says about it
    "ns": "ns NAME|all — scope the panes to a namespace, or all of them",
    "ctx": "ctx NAME — switch to another kubeconfig context",
    "theme": "theme NAME — switch the colour theme",
    "split": "split [PANE [PANE]] — show two panes side by side; `:split` alone toggles",
    "submit": "submit FILE — check a job manifest, dry-run it on the server, then create it",
    "queues": "queues — team quotas per ClusterQueue and flavor",
    "tunnels": "tunnels — the open tunnels: route, state, bytes; close one or all",
    "connect": "connect NAMESPACE/NAME — open a tunnel to a space's IDE",
    "help": "help — list every key of the focused pane",
    "q": "q — quit",
    "quit": "quit — quit",
}


class CommandError(ValueError):
    """A command line the user typed that cannot be run; the message says why."""


@dataclass(frozen=True)
class Command:
    verb: str
    args: tuple[str, ...] = field(default_factory=tuple)


def parse(text: str) -> Command:
    """Turn `jobs`, `ns team-a`, `:ctx prod` into a Command; a pane alias becomes verb `pane` with the pane id."""
    words = text.strip().lstrip(":").split()
    if not words:
        raise CommandError("empty command — try :help")
    head, *rest = words
    head = head.lower()
    if head in PANES:
        if rest:
            raise CommandError(f":{head} takes no argument")
        return Command("pane", (PANES[head],))
    if head not in VERBS:
        raise CommandError(f"unknown command :{head} — try :help")
    if head in ("ns", "ctx", "theme", "submit", "connect") and len(rest) != 1:
        raise CommandError(f":{head} needs exactly one name, e.g. {VERBS[head].split(' — ')[0]}")
    if head == "split":
        unknown = [w for w in rest if w.lower() not in PANES]
        if unknown or len(rest) > 2:
            raise CommandError(f":split takes up to two panes ({', '.join(sorted(set(PANES.values())))})")
        return Command("split", tuple(PANES[w.lower()] for w in rest))
    if head == "quit":
        head = "q"
    return Command(head, tuple(rest))


def completions(text: str, names: dict[str, list[str]]) -> list[str]:
    """Full command lines that extend `text`, best first.

    `names` gives the completions for each verb's argument (`ns` -> namespaces, `ctx` -> contexts, ...).
    """
    stripped = text.lstrip(":")
    if " " not in stripped:
        # The canonical pane names first, then the verbs, then the short aliases.
        words = [*PRIMARY, *VERBS, *(a for a in PANES if a not in PRIMARY)]
        return [w for w in words if w.startswith(stripped.lower()) and w != stripped]
    verb, _, partial = stripped.partition(" ")
    if verb == "split":
        done, _, partial = partial.rpartition(" ")
        prefix = f"split {done} " if done else "split "
        return [prefix + p for p in sorted(set(PANES.values())) if p.startswith(partial)]
    return [f"{verb} {n}" for n in names.get(verb, []) if n.startswith(partial) and n != partial]
