"""NVML's MIG instances as `get gpus --source nvml` lists them, read through a stand-in for the NVML module (the
real one needs an NVIDIA driver): what NVML does not say stays unknown (null), never made up."""

from __future__ import annotations

from types import SimpleNamespace

from app.metrics.nvml import _mig_instances


class _Failure(Exception):
    pass


def _nvml(name: str | None, uuid: str | None) -> SimpleNamespace:
    """NVML with one MIG instance on slot 3 of the parent GPU, whose name and UUID may be unknown (the call fails)."""

    def answer(value):
        def call(*_):
            if value is None:
                raise _Failure("Not Supported")
            return value
        return call

    def handle(parent, slot):
        if slot != 3:
            raise _Failure("Not Found")
        return slot

    return SimpleNamespace(
        nvmlDeviceGetMaxMigDeviceCount=answer(4),
        nvmlDeviceGetMigDeviceHandleByIndex=handle,
        nvmlDeviceGetMemoryInfo=answer(SimpleNamespace(used=1 << 30, total=10 << 30)),
        nvmlDeviceGetGpuInstanceId=answer(9),
        nvmlDeviceGetName=answer(name),
        nvmlDeviceGetUUID=answer(uuid),
    )


def test_a_mig_instance_keeps_its_profile_and_uuid():
    [device] = _mig_instances(_nvml("NVIDIA H100 80GB HBM3 MIG 1g.10gb", b"MIG-4c1e0b5a"), "parent", "host", 0, "H100")
    item = device.as_dict()
    assert (item["mig_profile"], item["uuid"], item["gpu_instance_id"], item["gpu"]) == ("1g.10gb", "MIG-4c1e0b5a", 9, 0)
    assert item["mem_total_mib"] == 10240


def test_an_unknown_profile_and_uuid_are_null_not_invented():
    [device] = _mig_instances(_nvml(None, None), "parent", "host", 0, "H100")
    item = device.as_dict()
    assert item["mig_profile"] is None and item["uuid"] is None  # not "slot3", not ""
    assert item["gpu_instance_id"] == 9
