"""dcgm-exporter: its exposition text parsed, its series joined to nodes, GPUs, MIG slices and pods.

Parsing uses `prometheus_client`'s parser for what is hard to get right, the label sets with their quoting and
escapes. A dcgm-exporter prints the same label set once per field (a dozen times per GPU) and again on every poll,
so each distinct label block is parsed once by the library and remembered; the rest of a sample line (name, value,
optional timestamp) is split here. A line that does not parse is skipped and counted, never fatal.

Field and label names follow NVIDIA/dcgm-exporter: host as `Hostname` (older) or `hostname` (newer), the pod as
`pod`/`namespace`/`container` or the older `pod_name`/`pod_namespace`/`container_name`, MIG instances as
`GPU_I_PROFILE` and `GPU_I_ID`. MIG slices read 0 in DCGM_FI_DEV_GPU_UTIL: their activity is
DCGM_FI_PROF_GR_ENGINE_ACTIVE.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

UTIL = "DCGM_FI_DEV_GPU_UTIL"
GR_ACTIVE = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
FB_USED = "DCGM_FI_DEV_FB_USED"
FB_FREE = "DCGM_FI_DEV_FB_FREE"
POWER = "DCGM_FI_DEV_POWER_USAGE"
TEMP = "DCGM_FI_DEV_GPU_TEMP"
XID = "DCGM_FI_DEV_XID_ERRORS"
WANTED = frozenset({UTIL, GR_ACTIVE, FB_USED, FB_FREE, POWER, TEMP, XID})
"""The fields the GPU view reads; lines of other fields are passed over unparsed."""

MAX_LABEL_CACHE = 200_000
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass
class Series:
    """One device's fields from one scrape: the labels identify it, `values` holds field -> value.

    A device's lines do not all carry the same labels: dcgm-exporter >= 3.3.6 adds `err_code`/`err_msg` to
    DCGM_FI_DEV_XID_ERRORS, and a time-sliced GPU is printed once per pod sharing it. Lines are grouped by device
    (`device_key`), their values merged, and every pod named on them kept in `pods`."""

    labels: dict[str, str]
    values: dict[str, float] = field(default_factory=dict)
    pods: list[tuple[str, str]] = field(default_factory=list)
    """(namespace, pod) of every holder named on the device's lines, in order of appearance."""

    def add_pod(self, labels: dict[str, str]) -> None:
        pod = pod_of(labels)
        if pod is not None and pod not in self.pods:
            self.pods.append(pod)

    @property
    def hostname(self) -> str:
        return self.labels.get("hostname") or self.labels.get("Hostname") or ""

    @property
    def gpu(self) -> int | None:
        try:
            return int(self.labels["gpu"])
        except (KeyError, ValueError):
            return None

    @property
    def uuid(self) -> str | None:
        return self.labels.get("UUID") or self.labels.get("uuid") or None

    @property
    def mig_profile(self) -> str | None:
        return self.labels.get("GPU_I_PROFILE") or None

    @property
    def gi_id(self) -> int | None:
        try:
            return int(self.labels["GPU_I_ID"])
        except (KeyError, ValueError):
            return None

    @property
    def pod(self) -> tuple[str, str] | None:
        """(namespace, pod) of the (first) holder; None when free."""
        return self.pods[0] if self.pods else pod_of(self.labels)


def pod_of(labels: Mapping[str, str]) -> tuple[str, str] | None:
    """(namespace, pod) a line names, from either generation of label names; None when none.

    Scraped by a Prometheus through Kubernetes service discovery, `pod`/`namespace` are the exporter's own (target
    labels) and dcgm-exporter's become `exported_pod`/`exported_namespace`: those win."""
    pod = labels.get("exported_pod") or labels.get("pod") or labels.get("pod_name") or ""
    if labels.get("exported_pod"):
        namespace = labels.get("exported_namespace") or ""
    else:
        namespace = labels.get("namespace") or labels.get("pod_namespace") or ""
    return (namespace, pod) if pod else None


def device_key(labels: Mapping[str, str]) -> tuple[str, ...] | None:
    """What identifies a device among one exporter's lines (or one Prometheus's, with the host): its GPU (UUID, else
    index) and MIG instance; None when a line names no device."""
    gpu = labels.get("UUID") or labels.get("uuid") or labels.get("gpu")
    if not gpu:
        return None
    host = labels.get("hostname") or labels.get("Hostname") or ""
    return (host, gpu, labels.get("GPU_I_ID", ""))


@dataclass
class ParseResult:
    series: list[Series]
    samples: int = 0
    malformed: int = 0
    first_error: str = ""


class ExpositionParser:
    """Parses dcgm-exporter text. Keep one per source: its memory of label blocks makes later polls cheap."""

    def __init__(self, wanted: frozenset[str] | None = WANTED) -> None:
        self.wanted = wanted
        self._labels: dict[str, tuple[dict[str, str], tuple[str, ...] | None] | None] = {}

    def parse(self, text: str) -> ParseResult:
        by_device: dict[Any, Series] = {}
        result = ParseResult([])
        wanted = self.wanted
        for number, raw in enumerate(text.split("\n"), 1):
            line = raw.strip()
            if not line or line[0] == "#":
                continue
            brace = line.find("{")
            if brace >= 0:
                close = line.rfind("}")
                if close < brace:
                    self._malformed(result, number, "a label block that does not close")
                    continue
                name, block, rest = line[:brace].strip(), line[brace:close + 1], line[close + 1:]
            else:
                name, _, rest = line.partition(" ")
                block = ""
            if wanted is not None and name not in wanted:
                if not _NAME.fullmatch(name):
                    self._malformed(result, number, f"not a metric name: {name[:80]!r}")
                continue
            fields = rest.split()
            if not fields or len(fields) > 2 or (wanted is None and not _NAME.fullmatch(name)):
                self._malformed(result, number, f"not `name{{labels}} value`: {line[:80]!r}")
                continue
            try:
                value = float(fields[0])
                if len(fields) == 2:
                    float(fields[1])  # a timestamp, which must at least be a number
            except ValueError:
                self._malformed(result, number, f"value {fields[0][:40]!r} is not a number")
                continue
            known = self._label_set(block)
            if known is None:
                self._malformed(result, number, f"labels do not parse: {block[:80]!r}")
                continue
            labels, key = known
            series = by_device.get(key or block)
            if series is None:
                series = by_device[key or block] = Series(labels)
            series.add_pod(labels)
            if not math.isnan(value):
                series.values[name] = value
            result.samples += 1
        result.series = list(by_device.values())
        return result

    def _label_set(self, block: str) -> tuple[dict[str, str], tuple[str, ...] | None] | None:
        """The labels of a block and the device they name, parsed once per distinct block."""
        if not block:
            return {}, None
        try:
            return self._labels[block]
        except KeyError:
            pass
        labels = parse_label_block(block)
        known = None if labels is None else (labels, device_key(labels))
        if len(self._labels) >= MAX_LABEL_CACHE:
            self._labels.clear()
        self._labels[block] = known
        return known

    @staticmethod
    def _malformed(result: ParseResult, number: int, why: str) -> None:
        result.malformed += 1
        if not result.first_error:
            result.first_error = f"line {number}: {why}"


def parse_label_block(block: str) -> dict[str, str] | None:
    """`{a="x",b="y"}` -> {"a": "x", "b": "y"} by prometheus_client's parser; None when it is malformed."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        families = list(text_string_to_metric_families(f"m{block} 0\n"))
    except (ValueError, IndexError, KeyError, TypeError):
        return None
    if len(families) != 1 or len(families[0].samples) != 1:
        return None
    return dict(families[0].samples[0].labels)


def parse(text: str) -> ParseResult:
    """One-off parse of an exposition text (tests, the CLI)."""
    return ExpositionParser().parse(text)


@dataclass
class Reading:
    """What one series says about its device, in the model's units."""

    util_percent: float | None
    mem_used_mib: float | None
    mem_total_mib: float | None
    power_w: float | None
    temp_c: float | None
    xid: int | None


def reading(series: Series) -> Reading:
    values = series.values
    if series.mig_profile:
        active = values.get(GR_ACTIVE)
        util = None if active is None else active * 100.0
    else:
        util = values.get(UTIL)
        if util is None and GR_ACTIVE in values:
            util = values[GR_ACTIVE] * 100.0
    used, free = values.get(FB_USED), values.get(FB_FREE)
    total = used + free if used is not None and free is not None else None
    xid = values.get(XID)
    return Reading(util, used, total, values.get(POWER), values.get(TEMP), None if xid is None else int(xid))
