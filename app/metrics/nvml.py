"""Local GPUs through NVML (`nvidia-ml-py`, the optional `gpu` extra), in the same data model as the cluster view.

For hyperdesk running on a GPU machine (a login node, a workstation). The library is imported lazily; without it,
or without a driver, `NvmlUnavailable` says why in one line. MIG instances are listed under their parent GPU, with
no utilisation figure (NVML reads 0 there, as dcgm does for DCGM_FI_DEV_GPU_UTIL): only their memory. Process
owners are not resolved: inside pods NVML reports host PIDs.
"""

from __future__ import annotations

import socket
from typing import Any

from app.metrics.model import Device


class NvmlUnavailable(Exception):
    pass


def _load() -> Any:
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        raise NvmlUnavailable("NVML is not available: install the `gpu` extra (pip install 'hyperdesk[gpu]', "
                              "which brings nvidia-ml-py)") from None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, _DriverNotLoaded, ...
        raise NvmlUnavailable(f"NVML could not start: {exc or type(exc).__name__} (no NVIDIA driver here?)") from None
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _try(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except Exception:  # noqa: BLE001 - a field this GPU or driver does not support
        return None


def local_devices(node: str | None = None) -> list[Device]:
    """The local GPUs and their MIG instances, read once."""
    nvml = _load()
    node = node or socket.gethostname()
    devices: list[Device] = []
    failure = getattr(nvml, "NVMLError", Exception)
    try:
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            model = _text(nvml.nvmlDeviceGetName(handle))
            memory = _try(nvml.nvmlDeviceGetMemoryInfo, handle)
            util = _try(nvml.nvmlDeviceGetUtilizationRates, handle)
            power = _try(nvml.nvmlDeviceGetPowerUsage, handle)
            temp = _try(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
            mode = _try(nvml.nvmlDeviceGetMigMode, handle)
            mig_on = bool(mode and mode[0] == nvml.NVML_DEVICE_MIG_ENABLE)
            devices.append(Device(
                node=node, gpu=index, uuid=_text(nvml.nvmlDeviceGetUUID(handle)), model=model,
                util_percent=None if util is None or mig_on else float(util.gpu),
                mem_used_mib=None if memory is None else memory.used / 1048576,
                mem_total_mib=None if memory is None else memory.total / 1048576,
                power_w=None if power is None else power / 1000.0,
                temp_c=None if temp is None else float(temp),
            ))
            if mig_on:
                devices.extend(_mig_instances(nvml, handle, node, index, model))
    except failure as exc:
        raise NvmlUnavailable(f"NVML failed reading the GPUs: {exc or type(exc).__name__}") from None
    finally:
        _try(nvml.nvmlShutdown)
    return devices


def _mig_instances(nvml: Any, parent: Any, node: str, index: int, model: str) -> list[Device]:
    found: list[Device] = []
    count = _try(nvml.nvmlDeviceGetMaxMigDeviceCount, parent) or 0
    for slot in range(count):
        handle = _try(nvml.nvmlDeviceGetMigDeviceHandleByIndex, parent, slot)
        if handle is None:
            continue
        memory = _try(nvml.nvmlDeviceGetMemoryInfo, handle)
        gi_id = _try(nvml.nvmlDeviceGetGpuInstanceId, handle)
        name = _text(_try(nvml.nvmlDeviceGetName, handle) or "")
        profile = name.rsplit(" ", 1)[-1] if "MIG" in name else None
        uuid = _try(nvml.nvmlDeviceGetUUID, handle)
        found.append(Device(
            node=node, gpu=index, uuid=_text(uuid) if uuid else None, model=model,
            mig_profile=profile, gi_id=gi_id, slot=slot,
            mem_used_mib=None if memory is None else memory.used / 1048576,
            mem_total_mib=None if memory is None else memory.total / 1048576,
        ))
    return found
