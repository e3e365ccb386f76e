"""dcgm-exporter's exposition text: every field and label the reference lists, both label generations, MIG
series, and malformed lines that are skipped and counted without losing the good ones."""

from __future__ import annotations

from app.metrics.dcgm import ExpositionParser, parse, reading

GPU0 = ('gpu="0",UUID="GPU-0a1b2c3d-1111-2222-3333-444455556666",pci_bus_id="00000000:53:00.0",device="nvidia0",'
        'modelName="NVIDIA H100 80GB HBM3",Hostname="node-a",DCGM_FI_DRIVER_VERSION="550.127.05",'
        'container="main",namespace="team-a",pod="train-0"')
MIG = ('gpu="1",UUID="GPU-9f8e7d6c-1111-2222-3333-444455556666",pci_bus_id="00000000:64:00.0",device="nvidia1",'
       'modelName="NVIDIA H100 80GB HBM3",GPU_I_PROFILE="3g.40gb",GPU_I_ID="1",hostname="node-a",'
       'container_name="nb",pod_namespace="team-b",pod_name="notebook-0"')
FIELDS = {
    "DCGM_FI_DEV_GPU_UTIL": (87, 0),
    "DCGM_FI_DEV_FB_USED": (70000, 30000),
    "DCGM_FI_DEV_FB_FREE": (11559, 10704),
    "DCGM_FI_DEV_POWER_USAGE": (612.5, 201.25),
    "DCGM_FI_DEV_GPU_TEMP": (66, 48),
    "DCGM_FI_DEV_SM_CLOCK": (1980, 1980),
    "DCGM_FI_DEV_XID_ERRORS": (0, 79),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": (0.91, 0.42),
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": (0.55, 0.2),
    "DCGM_FI_PROF_DRAM_ACTIVE": (0.61, 0.3),
}


def _xid(labels: str, code: int) -> str:
    """dcgm-exporter >= 3.3.6 adds err_code/err_msg to the XID line only."""
    message = {0: "No Error", 79: "GPU has fallen off the bus"}[code]
    return f'{labels},err_code="{code}",err_msg="{message}"'


def exposition(extra: str = "") -> str:
    lines = []
    for name, (whole, mig) in FIELDS.items():
        first, second = (_xid(GPU0, whole), _xid(MIG, mig)) if name == "DCGM_FI_DEV_XID_ERRORS" else (GPU0, MIG)
        lines += [f"# HELP {name} some help", f"# TYPE {name} gauge", f"{name}{{{first}}} {whole}",
                  f"{name}{{{second}}} {mig}"]
    return "\n".join(lines) + "\n" + extra


def test_every_field_and_label_of_the_reference():
    result = ExpositionParser(wanted=None).parse(exposition())
    assert (result.samples, result.malformed) == (20, 0)
    whole, mig = result.series  # the XID line's extra err_code/err_msg labels do not split a device in two
    assert {name: whole.values[name] for name in FIELDS} == {name: float(v[0]) for name, v in FIELDS.items()}
    assert {name: mig.values[name] for name in FIELDS} == {name: float(v[1]) for name, v in FIELDS.items()}
    assert (whole.hostname, whole.gpu, whole.uuid, whole.mig_profile, whole.gi_id, whole.pod) == (
        "node-a", 0, "GPU-0a1b2c3d-1111-2222-3333-444455556666", None, None, ("team-a", "train-0"))
    assert whole.labels["pci_bus_id"] == "00000000:53:00.0" and whole.labels["device"] == "nvidia0"
    assert whole.labels["modelName"] == "NVIDIA H100 80GB HBM3" and whole.labels["container"] == "main"
    assert (mig.hostname, mig.gpu, mig.mig_profile, mig.gi_id, mig.pod) == (
        "node-a", 1, "3g.40gb", 1, ("team-b", "notebook-0"))
    assert mig.labels["container_name"] == "nb"


def test_readings_use_the_graphics_engine_on_mig_and_gpu_util_on_whole_gpus():
    whole, mig = parse(exposition()).series
    first = reading(whole)
    assert (first.util_percent, first.mem_used_mib, first.mem_total_mib, first.power_w, first.temp_c, first.xid) == (
        87.0, 70000.0, 81559.0, 612.5, 66.0, 0)
    second = reading(mig)
    assert second.util_percent == 42.0  # GR_ENGINE_ACTIVE 0.42, not DCGM_FI_DEV_GPU_UTIL's 0
    assert (second.mem_total_mib, second.xid) == (40704.0, 79)


def test_the_default_parser_reads_only_the_fields_it_shows():
    result = parse(exposition())
    assert result.samples == 14  # 7 of the 10 fields, two devices
    assert "DCGM_FI_DEV_SM_CLOCK" not in result.series[0].values


MALFORMED = "\n".join([
    "DCGM_FI_DEV_GPU_UTIL{gpu=\"2\",UUID=\"GPU-2\",Hostname=\"node-a\"}",            # no value
    "DCGM_FI_DEV_GPU_UTIL{gpu=\"3\",UUID=\"GPU-3\",Hostname=\"node-a\"} busy",       # not a number
    "DCGM_FI_DEV_GPU_UTIL{gpu=\"4\",UUID=\"GPU-4\",Hostname=\"node-a\" 12",          # label block never closes
    "DCGM_FI_DEV_GPU_UTIL{gpu=4,UUID=\"GPU-5\"} 12",                                 # unquoted label value
    "DCGM_FI_DEV_GPU_UTIL{gpu=\"6\",UUID=\"GPU-6\"} 12 1700000000000 extra",        # too many fields
    "DCGM_FI_DEV_GPU_UTIL{gpu=\"7\",UUID=\"GPU-7\"} 12 yesterday",                   # timestamp not a number
    "DCGM_FI_DEV_GPU_TEMP{gpu=\"8\",UUID=\"GPU-8\",modelName=\"A \\\"quoted\\\" \\\\ name\"} 40 1700000000000",
    "\x00\x01 binary junk",
    "",
])


def test_malformed_lines_are_skipped_and_counted_never_fatal():
    result = parse(exposition(MALFORMED))
    assert result.malformed == 7
    assert result.first_error.startswith(f"line {4 * len(FIELDS) + 1}:")
    assert result.samples == 14 + 1
    by_uuid = {s.uuid: s for s in result.series}
    assert set(by_uuid) == {"GPU-0a1b2c3d-1111-2222-3333-444455556666", "GPU-9f8e7d6c-1111-2222-3333-444455556666",
                            "GPU-8"}
    assert by_uuid["GPU-8"].labels["modelName"] == 'A "quoted" \\ name'  # escapes undone by prometheus_client
    assert by_uuid["GPU-8"].values == {"DCGM_FI_DEV_GPU_TEMP": 40.0}


def test_label_blocks_are_remembered_between_polls():
    parser = ExpositionParser()
    first = parser.parse(exposition())
    second = parser.parse(exposition().replace(" 87\n", " 12\n"))
    assert first.series[0].labels == second.series[0].labels
    assert second.series[0].values["DCGM_FI_DEV_GPU_UTIL"] == 12.0


def test_empty_and_comment_only_texts():
    assert parse("").series == [] and parse("# HELP x\n# TYPE x gauge\n").malformed == 0


def test_stale_figures_say_how_old_they_are():
    from app.metrics.collector import GpuView
    from app.metrics.model import NodeGpus

    view = GpuView(nodes=[NodeGpus("n", metrics_state="ok")], exporters=1, scraped_at=1000.0)
    assert view.state_line(now=1005.0) == ""
    assert view.state_line(now=1030.0) == "stale: metrics from 30s ago"
    assert view.state_line(now=1000.0 + 3 * 3600 + 120) == "stale: metrics from 3h ago"


def test_a_time_sliced_gpu_is_one_device_with_every_pod_sharing_it():
    shared = GPU0.replace(',container="main",namespace="team-a",pod="train-0"', "")
    text = "".join(f'{name}{{{shared},container="c",namespace="{ns}",pod="{pod}"}} {value}\n'
                   for ns, pod in (("team-a", "nb-0"), ("team-b", "nb-1"))
                   for name, value in (("DCGM_FI_DEV_GPU_UTIL", 30), ("DCGM_FI_DEV_FB_USED", 1000),
                                       ("DCGM_FI_DEV_FB_FREE", 80559)))
    [series] = parse(text).series
    assert series.pods == [("team-a", "nb-0"), ("team-b", "nb-1")] and series.pod == ("team-a", "nb-0")
    assert reading(series).util_percent == 30.0 and reading(series).mem_total_mib == 81559.0


def test_service_discovery_labels_name_the_exporter_and_exported_ones_the_holder():
    from app.metrics.dcgm import pod_of
    from app.metrics.prometheus import device_labels

    metric = {"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "0", "UUID": "GPU-1", "Hostname": "node-a",
              "job": "gpu-operator/nvidia-dcgm-exporter", "instance": "10.0.0.5:9400", "service": "nvidia-dcgm-exporter",
              "endpoint": "gpu-metrics", "namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-x2x7q",
              "container": "nvidia-dcgm-exporter", "node": "node-a",
              "exported_namespace": "team-a", "exported_pod": "train-0", "exported_container": "main"}
    labels = device_labels(metric)
    assert pod_of(labels) == ("team-a", "train-0") and labels["container"] == "main"
    assert labels["__exporter_pod"] == "nvidia-dcgm-exporter-x2x7q" and labels["__node"] == "node-a"
    assert not {"job", "instance", "service", "endpoint", "__name__"} & set(labels)
    assert pod_of({"exported_pod": "train-0", "exported_namespace": "team-a", "pod": "exp", "namespace": "ops"}) == (
        "team-a", "train-0")
