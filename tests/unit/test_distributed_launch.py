"""Several processes for one run: the accelerate configs in recipes/accelerate/, the checks made
before a run exists, the launch command, and how the job reads the processes' result."""

import threading
from pathlib import Path

import pytest

from studio.config import StudioConfig, apply_overrides
from studio.distributed import (ACCELERATE_CONFIGS, STRATEGY_FILES, check_launch, launch_command,
                                launch_environment, outcome)
from studio.errors import UserError
from studio.i18n import Msg
from studio.runs import RunStore

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(ACCELERATE_CONFIGS.glob("*.yaml"))
KINDS = {"ddp.yaml": ("MULTI_GPU", None), "fsdp.yaml": ("FSDP", None),
         "deepspeed_zero2.yaml": ("DEEPSPEED", 2), "deepspeed_zero3.yaml": ("DEEPSPEED", 3)}


def test_every_strategy_has_its_config():
    assert {p.name for p in CONFIGS} == set(STRATEGY_FILES.values()) == set(KINDS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_accelerate_config_is_what_accelerate_launch_accepts(path):
    """accelerate's own loader (unknown keys refused) and its launcher's validation, as
    `accelerate launch --config_file …` would run them; the first line is that command."""
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    kind, stage = KINDS[path.name]
    config = ClusterConfig.from_yaml_file(path)
    assert config.distributed_type.value == kind
    args = launch_command_parser().parse_args(["--config_file", str(path), "--num_processes", "2",
                                               "-m", "studio.train"])
    args = _validate_launch_command(args)[0]
    assert (args.use_fsdp, args.use_deepspeed, args.multi_gpu) == (kind == "FSDP", kind == "DEEPSPEED",
                                                                   kind == "MULTI_GPU")
    if stage:
        assert int(args.zero_stage) == stage
    if kind == "FSDP":
        assert int(args.fsdp_version) == 2
    first = path.read_text().splitlines()[0]
    assert first.startswith(f"# accelerate launch --config_file {path.relative_to(ROOT)} ")
    assert "-m studio.train recipes/" in first
    recipe = ROOT / first.split("-m studio.train ")[1].split()[0]
    assert recipe.is_file()


def cfg(**settings) -> StudioConfig:
    return apply_overrides(StudioConfig(), [f"{k}={v}" for k, v in settings.items()])


def refusal(c, **machine) -> UserError:
    with pytest.raises(UserError) as caught:
        check_launch(c, **machine)
    return caught.value


def test_one_process_needs_no_check():
    check_launch(cfg(processes=1, distributed="zero3"), gpus=0, cpus=1)


def test_cpu_processes_use_ddp_and_one_core_each():
    check_launch(cfg(processes=2), gpus=0, cpus=2)
    err = refusal(cfg(processes=2, distributed="fsdp"), gpus=0, cpus=2)
    assert err.key == "train.distributed" and "ddp" in str(err.msg)
    err = refusal(cfg(processes=4), gpus=0, cpus=2)
    assert err.key == "train.processes" and "2" in str(err.msg)


def test_gpu_processes_need_as_many_gpus_and_deepspeed_for_zero(monkeypatch):
    check_launch(cfg(processes=2, distributed="fsdp"), gpus=2)
    err = refusal(cfg(processes=4), gpus=2)
    assert err.key == "train.processes"
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    err = refusal(cfg(processes=2, distributed="zero2"), gpus=2)
    assert err.key == "train.distributed" and "deepspeed" in str(err.msg)


def test_every_message_reads_in_both_languages():
    for c, machine in [(cfg(processes=2, distributed="fsdp"), {"gpus": 0, "cpus": 2}),
                       (cfg(processes=3), {"gpus": 0, "cpus": 2}), (cfg(processes=3), {"gpus": 2})]:
        msg = refusal(c, **machine).msg
        assert "{" not in msg.render("en") and "{" not in msg.render("zh") and msg.render("en") != msg.render("zh")


def test_launch_commands(tmp_path):
    run = RunStore(tmp_path).create(cfg(processes=2, distributed="fsdp"))
    cpu = launch_command(run, tmp_path, gpus=0)
    assert cpu[1:3] == ["-m", "torch.distributed.run"] and cpu[cpu.index("--nproc_per_node") + 1] == "2"
    assert cpu[-6:] == ["-m", "studio.train", "--run-id", run.id, "--home", str(tmp_path)]
    gpu = launch_command(run, tmp_path, resume_from="ckpt", gpus=2)
    assert gpu[1:3] == ["-m", "accelerate.commands.launch"]
    assert gpu[gpu.index("--config_file") + 1] == str(ACCELERATE_CONFIGS / "fsdp.yaml")
    assert gpu[-2:] == ["--resume-from", "ckpt"]


def test_cpu_ranks_share_the_cores(monkeypatch):
    monkeypatch.setattr("studio.models.usable_cpus", lambda: 8)
    assert launch_environment(2, gpus=0)["OMP_NUM_THREADS"] == "4"
    assert launch_environment(16, gpus=0)["OMP_NUM_THREADS"] == "1"


@pytest.mark.parametrize("state, code, ends", [
    ("completed", 0, "completed"), ("stopped", 0, "stopped"), ("failed", 1, "failed"),
    ("running", -9, "failed")])
def test_the_job_ends_as_the_processes_did(tmp_path, state, code, ends):
    run = RunStore(tmp_path).create(StudioConfig())
    run.update_status(state=state, message=Msg("jobs.completed"))
    (run.path / "processes.log").write_text("Traceback …\nRuntimeError: rank 1 lost\n")
    stop = threading.Event()
    result = outcome(run, code, stop)
    failure = result.get("failure")
    got = "failed" if failure else "stopped" if stop.is_set() else "completed"
    assert got == ends
    if state == "running":  # a killed launcher: its last line and where the rest is
        assert "rank 1 lost" in failure.render("en") and "processes.log" in failure.render("zh")


def test_a_stop_request_is_a_file_in_the_run_folder(tmp_path):
    run = RunStore(tmp_path).create(StudioConfig())
    assert not run.stop_requested()
    run.request_stop()
    assert run.stop_requested()
    run.clear_stop_request()
    assert not run.stop_requested()


def test_the_forms_hub_token_reaches_the_processes_by_environment_only(tmp_path, monkeypatch):
    from studio import hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert "HF_TOKEN" not in launch_environment(2, gpus=0)
    hub.set_token("hf_secretsecret")
    try:
        assert launch_environment(2, gpus=0)["HF_TOKEN"] == "hf_secretsecret"
        run = RunStore(tmp_path).create(cfg(processes=2))
        assert "hf_secret" not in " ".join(launch_command(run, tmp_path, gpus=0))
    finally:
        hub.set_token(None)
