"""The verbs of one resource, with the rules of the real API server's generic registry.

`ResourceStorage` turns requests into commits on the `Store`: it fills the fields the server owns (`uid`,
`creationTimestamp`, `generation`, `resourceVersion`), enforces optimistic concurrency and the status/spec split of
the `status` subresource, runs metadata and schema validation, handles `generateName`, dry runs, finalizers and
`deletionTimestamp`, and delegates kind-specific behaviour (namespace termination, service IPs, CRD registration)
to a `Strategy`. Nothing is committed unless every check passed, so a rejected request never half-writes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import FieldError, cannot_decode, forbidden, invalid
from .apply import apply_configuration
from .conversion import convert
from .jsonpath import JsonPathError, field_path, find_first
from .patch import MERGE_PATCH, STRATEGIC_MERGE_PATCH, apply_patch
from .schemas import decode_problem, schema_of
from .selectors import Selection, format_label_selector, selector_from_label_selector
from .store import StoredObject, fresh_copy, new_uid
from .strategies import NAMESPACE_KIND, namespace_content_removed, strategy_for
from .validation import apply_schema, validate_metadata

if TYPE_CHECKING:
    from .kinds import Kind
    from .store import Store

# Server-owned metadata: never taken from a request body.
_SERVER_METADATA = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
FIELD_VALIDATION = ("Ignore", "Warn", "Strict")


@dataclass
class Written:
    """The outcome of a write: the object as stored (or as it would be, for a dry run) and any warnings."""

    stored: StoredObject
    warnings: list[str] = field(default_factory=list)
    removed: bool = False  # for deletes: gone now, rather than waiting on finalizers
    created: bool = False


def _strict_error(kind: Kind, version: str, unknown: list[str]) -> errors.ApiError:
    detail = ", ".join(f'unknown field "{path}"' for path in unknown)
    return cannot_decode(kind.kind, version, f"strict decoding error: {detail}")


def _content(obj: dict[str, Any], *, without_status: bool) -> dict[str, Any]:
    """The part of an object whose change bumps `metadata.generation`."""
    return {k: v for k, v in obj.items() if k != "metadata" and not (without_status and k == "status")}


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj["metadata"].items() if k not in ("resourceVersion", "managedFields")}
    return {**obj, "metadata": meta}


class ResourceStorage:
    def __init__(self, store: Store, kind: Kind) -> None:
        self.store = store
        self.kind = kind
        self.strategy = strategy_for(kind)

    # --- helpers ---------------------------------------------------------------------------------------------

    def _scope(self, namespace: str) -> str:
        return namespace if self.kind.namespaced else ""

    def get(self, namespace: str, name: str) -> StoredObject:
        stored = self.store.lookup(self.kind, self._scope(namespace), name)
        if stored is None:
            raise errors.not_found(self.kind.group, self.kind.plural, name)
        return stored

    def _check_body(
        self, version: str, namespace: str, body: Any, current: StoredObject | None = None
    ) -> dict[str, Any]:
        """Check a request body's types and envelope; normalise apiVersion, kind and namespace (at `version`).

        Sections shared with the `current` version (what a patch leaves alone) were checked when it was stored.
        """
        kind = self.kind
        if not isinstance(body, dict):
            raise cannot_decode(kind.kind, version, "the body must be an object")
        if current is not None:
            stored = current.as_version(kind.api_version(version))
            body_to_check = {k: v for k, v in body.items() if v is not stored.get(k)}
        else:
            body_to_check = body
        problem = decode_problem(schema_of(kind.group, kind.kind), body_to_check, kind.kind)
        if problem:
            raise cannot_decode(kind.kind, version, problem)
        expected_api = kind.api_version(version)
        api_version = body.get("apiVersion") or expected_api
        if api_version != expected_api:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version ({expected_api})"
            )
        if body.get("kind", kind.kind) != kind.kind:
            raise cannot_decode(kind.kind, version, f"the object provided is unrecognized ({body.get('kind')})")
        meta = body.get("metadata")
        if meta is None:
            meta = {}
        if kind.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        # Below the top level, a body may share dicts with stored (immutable) versions; writes only ever replace
        # top-level sections and metadata keys, so copying those two levels is enough to never alter history.
        meta = dict(meta)
        if kind.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        ordered = {"apiVersion": expected_api, "kind": kind.kind, "metadata": meta}
        ordered.update((k, v) for k, v in body.items() if k not in ordered)
        return ordered

    def _decode(
        self, version: str, namespace: str, body: Any, current: StoredObject | None = None
    ) -> dict[str, Any]:
        """A checked request body (see `_check_body`) converted to the storage version."""
        checked = self._check_body(version, namespace, body, current)
        return convert(checked, self.kind.api_version(self.kind.storage_version))

    def _validate(self, obj: dict[str, Any], version: str, field_validation: str) -> list[str]:
        """Metadata, schema and kind checks; raises 422 (or 400 for strict unknown fields), returns warnings."""
        kind = self.kind
        problems: list[FieldError] = validate_metadata(obj["metadata"], kind.name_rule, namespaced=kind.namespaced)
        warnings: list[str] = []
        schema = kind.schema(version)
        if schema is not None:
            # The schema describes the request's version; defaulting and pruning work in place, on private copies
            # of the sections they may touch.
            view = convert(obj, kind.api_version(version))
            for section in [k for k in view if k not in ("apiVersion", "kind", "metadata")]:
                view[section] = fresh_copy(view[section])
            result = apply_schema(view, schema)
            stored = convert(view, obj["apiVersion"])
            if stored is not obj:
                obj.clear()
                obj.update(stored)
            if result.unknown_fields:
                if field_validation == "Strict":
                    raise _strict_error(kind, version, result.unknown_fields)
                if field_validation == "Warn":
                    warnings.extend(f'unknown field "{path}"' for path in result.unknown_fields)
            problems.extend(result.errors)
        problems.extend(self.strategy.validate(self, obj))
        if problems:
            raise errors.invalid_object(kind.group, kind.kind, obj["metadata"].get("name", ""), problems)
        return warnings

    def _check_namespace(self, namespace: str, name: str) -> None:
        """The NamespaceLifecycle admission rule: namespaced objects go into existing, non-terminating namespaces."""
        if not self.kind.namespaced:
            return
        ns = self.store.lookup(NAMESPACE_KIND, "", namespace)
        if ns is None:
            raise errors.not_found("", "namespaces", namespace)
        if ns.obj["metadata"].get("deletionTimestamp"):
            cause = {
                "reason": "NamespaceTerminating",
                "message": f"namespace {namespace} is being terminated",
                "field": "metadata.namespace",
            }
            raise errors.forbidden_error(
                f'{errors.qualified_resource(self.kind.group, self.kind.plural)} "{name}" is forbidden: unable to '
                f"create new content in namespace {namespace} because it is being terminated",
                {"name": name, "kind": self.kind.plural, "causes": [cause]},
            )

    # --- create ---------------------------------------------------------------------------------------------

    def create(
        self,
        version: str,
        namespace: str,
        body: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "Warn",
        keep_status: bool = False,
    ) -> Written:
        obj = self._decode(version, namespace, body)
        kind = self.kind
        meta = obj["metadata"]
        for owned in (*_SERVER_METADATA, "resourceVersion", "selfLink"):
            meta.pop(owned, None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generated_name(namespace, meta["generateName"])
        if kind.status_subresource and not keep_status:
            obj.pop("status", None)
        self._check_namespace(namespace, meta.get("name", ""))
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = self.store.timestamp()
        if kind.tracks_generation:
            meta["generation"] = 1
        self.strategy.default(obj)
        self.strategy.prepare_for_create(self, obj)
        warnings = self._validate(obj, version, field_validation)
        name = meta["name"]
        if self.store.lookup(kind, self._scope(namespace), name) is not None:
            raise errors.already_exists(kind.group, kind.plural, name)
        if dry_run:
            return Written(StoredObject(obj, 0), warnings, created=True)
        event = self.store.commit(kind, obj, None)
        self.strategy.after_commit(self, event)
        return Written(event.new, warnings, created=True)

    def _generated_name(self, namespace: str, prefix: str) -> str:
        """`generateName` plus five random characters, as the real server builds names (retrying on collision)."""
        limit = 253 if self.kind.name_rule == "subdomain" else 63
        base = prefix[: limit - 5]
        while True:
            name = base + "".join(random.choices(_GENERATE_ALPHABET, k=5))
            if self.store.lookup(self.kind, self._scope(namespace), name) is None:
                return name

    def put(self, version: str, namespace: str, body: Any) -> Written:
        """Create or overwrite, status included, without a resourceVersion precondition (controllers, tests)."""
        meta = body.get("metadata") if isinstance(body, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        current = self.store.lookup(self.kind, self._scope(namespace), name) if isinstance(name, str) else None
        if current is None or not isinstance(meta, dict):
            return self.create(version, namespace, body, keep_status=True)
        body = {**body, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
        return self.update(version, namespace, current.key[1], body, unconditional=True, controller=True)

    # --- update ----------------------------------------------------------------------------------------------

    def update(
        self,
        version: str,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str = "",
        dry_run: bool = False,
        field_validation: str = "Warn",
        unconditional: bool = False,
        controller: bool = False,
    ) -> Written:
        """PUT semantics. `controller` writes (see `put`) also take the status and skip immutability rules."""
        kind = self.kind
        obj = self._decode(version, namespace, body, self.store.lookup(kind, self._scope(namespace), name))
        meta = obj["metadata"]
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        old = self.get(namespace, name)
        old_meta = old.obj["metadata"]
        requested_rv = meta.get("resourceVersion")
        if requested_rv and requested_rv != old_meta["resourceVersion"]:
            raise errors.stale_conflict(kind.group, kind.plural, name)
        if not requested_rv and not unconditional and not kind.builtin:
            raise errors.invalid_object(
                kind.group,
                kind.kind,
                name,
                [invalid("metadata.resourceVersion", 0, "must be specified for an update")],
            )
        if subresource == "status":
            new = {**old.obj, "metadata": dict(old_meta)}
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        else:
            new = obj
            for owned in _SERVER_METADATA:
                if owned in old_meta:
                    meta[owned] = old_meta[owned]
                else:
                    meta.pop(owned, None)
            meta.pop("selfLink", None)
            if kind.status_subresource and not controller:
                if "status" in old.obj:
                    new["status"] = old.obj["status"]
                else:
                    new.pop("status", None)
        deleting = bool(old_meta.get("deletionTimestamp"))
        if deleting:
            added = [f for f in new["metadata"].get("finalizers") or [] if f not in (old_meta.get("finalizers") or [])]
            if added:
                rendered = "[]string{" + ", ".join(f'"{f}"' for f in added) + "}"
                raise errors.invalid_object(
                    kind.group,
                    kind.kind,
                    name,
                    [
                        forbidden(
                            "metadata.finalizers",
                            "no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {rendered}",
                        )
                    ],
                )
        self.strategy.default(new)
        self.strategy.prepare_for_update(self, new, old.obj)
        if not controller and subresource != "status":
            rule_errors = self.strategy.validate_update(new, old.obj)
            if rule_errors:
                raise errors.invalid_object(kind.group, kind.kind, name, rule_errors)
        warnings = self._validate(new, version, field_validation)
        if (
            subresource != "status"
            and kind.tracks_generation
            and _content(new, without_status=kind.status_subresource)
            != _content(old.obj, without_status=kind.status_subresource)
        ):  # compared once defaulted: a write that only spells out defaults changes nothing
            new["metadata"]["generation"] = int(old_meta.get("generation", 0)) + 1
        if dry_run:
            return Written(StoredObject(new, old.rv), warnings)
        if deleting and not new["metadata"].get("finalizers") and self.strategy.finalized(new):
            return self.remove(old, new, warnings)
        if _comparable(new) == _comparable(old.obj):
            return Written(old, warnings)
        event = self.store.commit(kind, new, old)
        self.strategy.after_commit(self, event)
        return Written(event.new, warnings)

    # --- patch ----------------------------------------------------------------------------------------------

    def patch(
        self,
        version: str,
        namespace: str,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str = "",
        dry_run: bool = False,
        field_validation: str = "Warn",
    ) -> Written:
        kind = self.kind
        if content_type == STRATEGIC_MERGE_PATCH and not kind.builtin:
            raise errors.unsupported_media_type(
                content_type,
                ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"],
            )
        old = self.get(namespace, name)
        if subresource == "scale":
            # A Scale is patched as a plain object (it has no strategic-merge metadata of its own).
            scale_type = MERGE_PATCH if content_type == STRATEGIC_MERGE_PATCH else content_type
            patched_scale = apply_patch(scale_type, self.scale(old), patch)
            return self.update_scale(version, namespace, name, patched_scale, dry_run=dry_run)
        # Patches build new dicts along the paths they change and share the rest with the stored version.
        patched = apply_patch(content_type, old.as_version(kind.api_version(version)), patch)
        if not isinstance(patched, dict):
            raise errors.ApiError(422, "Invalid", "the patch must produce an object")
        meta = patched.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.ApiError(422, "Invalid", "metadata must be an object")
        meta.setdefault("resourceVersion", old.obj["metadata"]["resourceVersion"])
        return self.update(
            version,
            namespace,
            name,
            patched,
            subresource=subresource,
            dry_run=dry_run,
            field_validation=field_validation,
            unconditional=True,
        )

    def apply(
        self,
        version: str,
        namespace: str,
        name: str,
        config: Any,
        *,
        manager: str,
        dry_run: bool = False,
        field_validation: str = "Warn",
    ) -> Written:
        """Server-side apply of `config` by field manager `manager` (see `apply.py`)."""
        if not manager:
            raise errors.bad_request("PATCH: fieldManager: Required value: is required for apply patch")
        config = self._check_body(version, namespace, config)
        if config["metadata"].get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({config['metadata']['name']}) does not match the name on the URL ({name})"
            )
        config["metadata"]["name"] = name
        live = self.store.lookup(self.kind, self._scope(namespace), name)
        api_version = self.kind.api_version(version)
        result = apply_configuration(live.as_version(api_version) if live else None, config, manager, api_version)
        if live is None:
            return self.create(version, namespace, result, dry_run=dry_run, field_validation=field_validation)
        return self.update(
            version, namespace, name, result, dry_run=dry_run, field_validation=field_validation, unconditional=True
        )

    # --- scale -----------------------------------------------------------------------------------------------

    def scale(self, stored: StoredObject) -> dict[str, Any]:
        """The `autoscaling/v1` Scale view of an object."""
        spec = self.kind.scale
        assert spec is not None
        meta = stored.obj["metadata"]
        status: dict[str, Any] = {"replicas": int(find_first(stored.obj, spec.status_replicas_path, 0) or 0)}
        if spec.label_selector_path:
            selector = find_first(stored.obj, spec.label_selector_path)
            if isinstance(selector, dict):
                requirements = selector_from_label_selector(selector)
                selector = format_label_selector(requirements) if requirements else ""
            if selector:
                status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                key: meta[key]
                for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if key in meta
            },
            "spec": {"replicas": int(find_first(stored.obj, spec.spec_replicas_path, 0) or 0)},
            "status": status,
        }

    def update_scale(self, version: str, namespace: str, name: str, body: Any, *, dry_run: bool = False) -> Written:
        old = self.get(namespace, name)
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            raise errors.bad_request("the body must be an autoscaling/v1 Scale")
        requested = (body.get("metadata") or {}).get("resourceVersion")
        if requested and requested != old.obj["metadata"]["resourceVersion"]:
            raise errors.stale_conflict(self.kind.group, self.kind.plural, name)
        replicas = body["spec"].get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid_object(
                "autoscaling",
                "Scale",
                name,
                [invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
            )
        assert self.kind.scale is not None
        try:
            path = field_path(self.kind.scale.spec_replicas_path)
        except JsonPathError as exc:
            raise errors.ApiError(500, "InternalError", str(exc)) from None
        new = old.thaw(self.kind.api_version(version))
        target = new
        for step in path[:-1]:
            target = target.setdefault(step, {})
        target[path[-1]] = replicas
        return self.update(version, namespace, name, new, dry_run=dry_run, unconditional=True)

    # --- delete ----------------------------------------------------------------------------------------------

    def delete(
        self,
        namespace: str,
        name: str,
        *,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> Written:
        kind = self.kind
        old = self.get(namespace, name)
        meta = old.obj["metadata"]
        preconditions = preconditions or {}
        if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
            raise errors.conflict(
                kind.group,
                kind.plural,
                name,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {meta.get('uid')}",
            )
        if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta.get("resourceVersion"):
            raise errors.conflict(
                kind.group,
                kind.plural,
                name,
                "Precondition failed: ResourceVersion in precondition: "
                f"{preconditions['resourceVersion']}, ResourceVersion in object meta: {meta.get('resourceVersion')}",
            )
        self.strategy.check_delete(old.obj)
        if dry_run:
            return Written(old)
        if meta.get("finalizers") or not self.strategy.finalized(old.obj):
            if meta.get("deletionTimestamp"):
                return Written(old)
            new_meta = dict(meta)
            new = {**old.obj, "metadata": new_meta}
            new_meta["deletionTimestamp"] = self.store.timestamp()
            new_meta["deletionGracePeriodSeconds"] = 0
            if kind.tracks_generation and "generation" in new_meta:
                new_meta["generation"] = int(new_meta["generation"]) + 1
            self.strategy.prepare_for_delete(self, new)
            event = self.store.commit(kind, new, old)
            self.strategy.after_commit(self, event)
            return Written(event.new)
        return self.remove(old)

    def remove(
        self, old: StoredObject, last_state: dict[str, Any] | None = None, warnings: list[str] | None = None
    ) -> Written:
        """Remove the object for good: one DELETED event carrying its last state.

        `last_state` is the content of the write that released the object (the update removing its last finalizer),
        folded into the deletion as on the real server.
        """
        event = self.store.commit(self.kind, None, old, last_state=last_state)
        self.strategy.after_commit(self, event)
        if self.kind.namespaced:
            namespace_content_removed(self.store, old.key[0])
        return Written(event.new, list(warnings or ()), removed=True)

    def delete_collection(self, selection: Selection, *, dry_run: bool = False) -> list[StoredObject]:
        """Delete every object `selection` matches; returns the objects as they were."""
        page = self.store.list_page(self.kind, selection)
        deleted = []
        for stored in page.items:
            meta = stored.obj["metadata"]
            if self.store.lookup(self.kind, meta.get("namespace", ""), meta["name"]) is None:
                continue
            deleted.append(self.delete(meta.get("namespace", ""), meta["name"], dry_run=dry_run).stored)
        return deleted
