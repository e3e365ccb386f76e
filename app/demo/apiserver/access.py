"""Who is calling, and may they: bearer-token users and RBAC-style rules, with the real server's answers.

Users come from a config (a dict or YAML file): each has a token, groups and rules; a rule grants verbs on
resources (`pods`, `pods/log`, `*`) of API groups, by resource name, in some namespaces (or cluster-wide when it
names none), or verbs on non-resource URLs. Without users (the demo), requests without a token are `system:anonymous`
and may do anything. With users, anonymous requests are refused (401) unless the config says `anonymous: true`; either
way they may read health and version (`system:public-info-viewer`) and nothing else. Like the real default roles,
every user may also read discovery and OpenAPI (`system:discovery`) and review its own access (`system:basic-user`).

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


_HEALTH = ("/healthz", "/livez", "/readyz", "/version", "/version/")
# The real server's default cluster roles, as rules: what every user (and anonymous, the first one only) may do.
PUBLIC_INFO_VIEWER = Rule(verbs=("get",), api_groups=(), non_resource_urls=_HEALTH)
DISCOVERY = Rule(
    verbs=("get",),
    api_groups=(),
    non_resource_urls=(*_HEALTH, "/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*"),
)
BASIC_USER = Rule(
    verbs=("create",),
    api_groups=("authorization.k8s.io",),
    resources=("selfsubjectaccessreviews", "selfsubjectrulesreviews"),
)
SELF_REVIEWER = Rule(verbs=("create",), api_groups=("authentication.k8s.io",), resources=("selfsubjectreviews",))
ALLOW_ALL = Rule(verbs=("*",), api_groups=("*",), resources=("*",), non_resource_urls=("*",))


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
    anonymous: bool | None = None  # whether requests without a token are served; by default only without users

    def __post_init__(self) -> None:
        if self.anonymous is None:
            self.anonymous = not self.users
        rules = (ALLOW_ALL,) if not self.users else (PUBLIC_INFO_VIEWER,)
        self._anonymous = User(ANONYMOUS, groups=("system:unauthenticated",), rules=rules)

    @classmethod
    def from_config(cls, config: dict[str, Any] | str | Path) -> AccessControl:
        """From a dict, or the path of a YAML file, shaped as in this module's docstring."""
        if not isinstance(config, dict):
            config = yaml.safe_load(Path(config).read_text()) or {}
        anonymous = config.get("anonymous")
        users = [User.from_dict(u) for u in config.get("users") or ()]
        return cls(users, None if anonymous is None else bool(anonymous))

    def user(self, name: str) -> User:
        for user in self.users:
            if user.name == name:
                return user
        raise KeyError(name)

    def authenticate(self, authorization: str | None, info: RequestInfo) -> User:
        """The user a request's Authorization header names; 401 for an unknown token.

        Without a token: anonymous, where allowed; health and version paths are always served, as the real server
        serves them to anonymous requests even when anonymous authentication is off.
        """
        if not authorization:
            if not self.anonymous and not (not info.is_resource and PUBLIC_INFO_VIEWER.allows_path("get", info.path)):
                raise errors.ApiError(401, "Unauthorized", "Unauthorized")
            return self._anonymous
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer":
            for user in self.users:
                if user.token and user.token == token.strip():
                    return user
        raise errors.ApiError(401, "Unauthorized", "Unauthorized")

    @staticmethod
    def rules_of(user: User) -> tuple[Rule, ...]:
        """A user's own rules and those of the default roles every authenticated user has."""
        if user.name == ANONYMOUS:
            return user.rules
        return (BASIC_USER, SELF_REVIEWER, DISCOVERY, *user.rules)

    def allowed(self, user: User, info: RequestInfo) -> bool:
        if not info.is_resource:
            return self.can_get_path(user, info.verb, info.path)
        return self.can(user, info.verb, info.group, info.resource, info.subresource, info.namespace, info.name)

    def can_get_path(self, user: User, verb: str, path: str) -> bool:
        return any(rule.allows_path(verb, path) for rule in self.rules_of(user))

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
        return any(
            rule.allows_resource(verb, group, resource, subresource, namespace, name) for rule in self.rules_of(user)
        )

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
            attributes = spec.get("nonResourceAttributes") or {}
            allowed = self.can_get_path(user, attributes.get("verb", ""), attributes.get("path", ""))
        status: dict[str, Any] = {"allowed": allowed}
        if allowed:
            status["reason"] = "allowed by the hyperdesk demo server's access rules"
        return status

    def self_review(self, user: User, spec: dict[str, Any]) -> dict[str, Any]:
        """The status of a SelfSubjectReview (`kubectl auth whoami`): who the request's credentials say it is."""
        info: dict[str, Any] = {"username": user.name}
        if user.groups:
            info["groups"] = list(user.groups)
        return {"userInfo": info}

    def rules_review(self, user: User, spec: dict[str, Any]) -> dict[str, Any]:
        """The status of a SelfSubjectRulesReview: the rules that apply in `spec.namespace`."""
        namespace = spec.get("namespace") or ""
        resource_rules: list[dict[str, Any]] = []
        non_resource_rules: list[dict[str, Any]] = []
        for rule in self.rules_of(user):
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
