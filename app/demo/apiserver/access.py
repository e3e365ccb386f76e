"""Who is calling, and may they: bearer-token users and RBAC-style rules, with the real server's answers.

Users come from a config (a dict or YAML file): each has a token, groups and rules; a rule grants verbs on
resources (`pods`, `pods/log`, `*`) of API groups, by resource name, in some namespaces (or cluster-wide when it
names none), or verbs on non-resource URLs. Requests without a token are `system:anonymous`, allowed everything by
default (the demo) or nothing when the config says `anonymous: false`. Like the real default roles, every
authenticated user may read discovery, OpenAPI and health paths and review its own access.

    users:
    - name: alice
      token: alice-token
      rules:
      - {verbs: [get, list, watch], apiGroups: [""], resources: [pods, pods/log], namespaces: [team-a]}
    anonymous: false

Denials are 403 Status objects worded like RBAC's (`pods is forbidden: User "alice" cannot list resource "pods" in
API group "" in the namespace "team-b"`); a token nobody has is a 401. SelfSubjectAccessReview and
SelfSubjectRulesReview answer from the same rules, so `kubectl auth can-i` tells the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import errors
from .requestinfo import RequestInfo

ANONYMOUS = "system:anonymous"
ALLOW_ALL = ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "nonResourceURLs": ["*"]},)

# Paths every authenticated user may read (system:discovery, system:public-info-viewer).
_PUBLIC_PREFIXES = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")
_SELF_REVIEWS = {
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
}


@dataclass(frozen=True)
class Rule:
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ("",)
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()  # empty: cluster-wide (a ClusterRoleBinding); else only these namespaces
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Rule:
        return cls(
            verbs=tuple(raw.get("verbs") or ()),
            api_groups=tuple(raw.get("apiGroups", [""])),
            resources=tuple(raw.get("resources") or ()),
            resource_names=tuple(raw.get("resourceNames") or ()),
            namespaces=tuple(raw.get("namespaces") or ()),
            non_resource_urls=tuple(raw.get("nonResourceURLs") or ()),
        )

    def _verb(self, verb: str) -> bool:
        return "*" in self.verbs or verb in self.verbs

    def allows_resource(
        self, verb: str, group: str, resource: str, subresource: str, namespace: str, name: str
    ) -> bool:
        if not self._verb(verb):
            return False
        if "*" not in self.api_groups and group not in self.api_groups:
            return False
        wanted = f"{resource}/{subresource}" if subresource else resource
        if not any(r == "*" or r == wanted or (subresource and r == f"*/{subresource}") for r in self.resources):
            return False
        if self.resource_names and name not in self.resource_names:
            return False
        return not self.namespaces or namespace in self.namespaces

    def allows_path(self, verb: str, path: str) -> bool:
        if not self._verb(verb):
            return False
        for pattern in self.non_resource_urls:
            if pattern == path or (pattern.endswith("*") and path.startswith(pattern[:-1])):
                return True
        return False


@dataclass(frozen=True)
class User:
    name: str
    token: str = ""
    groups: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> User:
        return cls(
            name=raw["name"],
            token=raw.get("token", ""),
            groups=tuple(raw.get("groups") or ()),
            rules=tuple(Rule.from_dict(r) for r in raw.get("rules") or ()),
        )


@dataclass
class AccessControl:
    """Authentication by bearer token and authorization by the users' rules."""

    users: list[User] = field(default_factory=list)
    anonymous: bool = True

    @classmethod
    def from_config(cls, config: dict[str, Any] | str | Path) -> AccessControl:
        """From a dict, or the path of a YAML file, shaped as in this module's docstring."""
        if not isinstance(config, dict):
            config = yaml.safe_load(Path(config).read_text()) or {}
        return cls([User.from_dict(u) for u in config.get("users") or ()], bool(config.get("anonymous", True)))

    def user(self, name: str) -> User:
        for user in self.users:
            if user.name == name:
                return user
        raise KeyError(name)

    def authenticate(self, authorization: str | None) -> User:
        """The user a request's Authorization header names; 401 for an unknown token."""
        if not authorization:
            if not self.anonymous:
                raise errors.ApiError(401, "Unauthorized", "Unauthorized")
            rules = tuple(Rule.from_dict(r) for r in ALLOW_ALL)
            return User(ANONYMOUS, groups=("system:unauthenticated",), rules=rules)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer":
            for user in self.users:
                if user.token and user.token == token.strip():
                    return user
        raise errors.ApiError(401, "Unauthorized", "Unauthorized")

    def allowed(self, user: User, info: RequestInfo) -> bool:
        if not info.is_resource:
            if user.name != ANONYMOUS and info.path.startswith(_PUBLIC_PREFIXES):
                return True
            return any(rule.allows_path(info.verb, info.path) for rule in user.rules)
        if (info.group, info.resource) in _SELF_REVIEWS and info.verb == "create":
            return True
        return self.can(user, info.verb, info.group, info.resource, info.subresource, info.namespace, info.name)

    def can(
        self,
        user: User,
        verb: str,
        group: str,
        resource: str,
        subresource: str = "",
        namespace: str = "",
        name: str = "",
    ) -> bool:
        return any(rule.allows_resource(verb, group, resource, subresource, namespace, name) for rule in user.rules)

    def authorize(self, user: User, info: RequestInfo) -> None:
        """Raise the real server's 403 when `user` may not do what `info` asks."""
        if self.allowed(user, info):
            return
        who = f'User "{user.name}"'
        if not info.is_resource:
            raise errors.forbidden_error(f'forbidden: {who} cannot {info.verb} path "{info.path}"', {})
        resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
        target = errors.qualified_resource(info.group, info.resource)
        subject = f'{target} "{info.name}"' if info.name else target
        scope = f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope"
        message = (
            f'{subject} is forbidden: {who} cannot {info.verb} resource "{resource}" in API group "{info.group}" '
            f"{scope}"
        )
        details: dict[str, Any] = {"name": info.name} if info.name else {}
        if info.group:
            details["group"] = info.group
        details["kind"] = info.resource
        raise errors.forbidden_error(message, details)

    # --- access reviews ----------------------------------------------------------------------------------------

    def access_review(self, user: User, spec: dict[str, Any]) -> dict[str, Any]:
        """The status of a SelfSubjectAccessReview for `spec`."""
        attributes = spec.get("resourceAttributes")
        if attributes:
            allowed = self.can(
                user,
                attributes.get("verb", ""),
                attributes.get("group", ""),
                attributes.get("resource", ""),
                attributes.get("subresource", ""),
                attributes.get("namespace", ""),
                attributes.get("name", ""),
            )
        else:
            path = (spec.get("nonResourceAttributes") or {}).get("path", "")
            verb = (spec.get("nonResourceAttributes") or {}).get("verb", "")
            allowed = (user.name != ANONYMOUS and path.startswith(_PUBLIC_PREFIXES)) or any(
                rule.allows_path(verb, path) for rule in user.rules
            )
        status: dict[str, Any] = {"allowed": allowed}
        if allowed:
            status["reason"] = "allowed by the hyperdesk demo server's access rules"
        return status

    def rules_review(self, user: User, namespace: str) -> dict[str, Any]:
        """The status of a SelfSubjectRulesReview: the rules that apply in `namespace`."""
        resource_rules = [
            {
                "verbs": ["create"],
                "apiGroups": ["authorization.k8s.io"],
                "resources": sorted(r for _, r in _SELF_REVIEWS),
            }
        ]
        non_resource_rules: list[dict[str, Any]] = []
        if user.name != ANONYMOUS:
            non_resource_rules.append(
                {"verbs": ["get"], "nonResourceURLs": [p + "/*" for p in _PUBLIC_PREFIXES] + list(_PUBLIC_PREFIXES)}
            )
        for rule in user.rules:
            if rule.namespaces and namespace not in rule.namespaces:
                continue
            if rule.resources:
                entry: dict[str, Any] = {
                    "verbs": list(rule.verbs),
                    "apiGroups": list(rule.api_groups),
                    "resources": list(rule.resources),
                }
                if rule.resource_names:
                    entry["resourceNames"] = list(rule.resource_names)
                resource_rules.append(entry)
            if rule.non_resource_urls:
                non_resource_rules.append({"verbs": list(rule.verbs), "nonResourceURLs": list(rule.non_resource_urls)})
        return {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": False}
