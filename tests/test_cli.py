import json

from tests.conftest import run_python


def test_generate_json(tmp_path, tiny_hypernet_dir, tiny_base_dir):
    proc = run_python(
        ["-m", "t2l_vllm.cli", "generate", "Classify tweets.", "Sort the list.", "--json", "--out", str(tmp_path),
         "--hypernet", str(tiny_hypernet_dir), "--base-model", str(tiny_base_dir), "--base-model-name", "tiny"],
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [r["description"] for r in report["adapters"]] == ["Classify tweets.", "Sort the list."]
    for r in report["adapters"]:
        folder = tmp_path / r["adapter_id"]
        assert r["path"] == str(folder)
        assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny"
    assert set(report["timings_ms"]) == {"load", "encode", "hypernet", "write"}


def test_generate_human_output(tmp_path, tiny_hypernet_dir, tiny_base_dir, tiny_generator):
    proc = run_python(
        ["-m", "t2l_vllm.cli", "generate", "Count the vowels.", "--out", str(tmp_path), "--dtype", "float32",
         "--hypernet", str(tiny_hypernet_dir), "--base-model", str(tiny_base_dir)],
    )
    assert proc.returncode == 0, proc.stderr
    first, summary = proc.stdout.strip().splitlines()
    expected_id = tiny_generator.adapter_id("Count the vowels.")
    assert first == f"{expected_id}  {tmp_path / expected_id}"
    assert summary.startswith("1 adapter(s): encode ") and "hypernet" in summary and "write" in summary


def test_bad_input_is_a_clear_error(tmp_path, tiny_hypernet_dir, tiny_base_dir):
    common = ["--out", str(tmp_path), "--hypernet", str(tiny_hypernet_dir), "--base-model", str(tiny_base_dir)]
    proc = run_python(["-m", "t2l_vllm.cli", "generate", "   ", *common])
    assert proc.returncode == 2
    assert "error: task_description is empty or whitespace only" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_python(["-m", "t2l_vllm.cli", "generate", "ok", *common[:2], "--hypernet", str(tmp_path)])
    assert proc.returncode == 2 and "not a hypernetwork checkpoint" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_serve_command_lora_flags(tiny_hypernet_dir, tiny_base_dir, tiny_hypernet_config):
    """`serve` LoRA-wraps only the hypernetwork's modules, sized from its rank; the user's flags win."""
    from t2l_vllm.config import VLLM_RANKS
    from t2l_vllm.serving.config import ServeConfig
    from t2l_vllm.serving.launch import serve_command as launch

    config = ServeConfig.from_env({}, hypernet_dir=tiny_hypernet_dir)

    def serve_command(_, vllm_args):
        return launch(str(tiny_base_dir), config, vllm_args, {}, on_cpu=True)

    args = None
    cmd, env = serve_command(args, [])
    modules = [m.name for m in tiny_hypernet_config.target.modules]
    at = cmd.index("--lora-target-modules")
    assert cmd[at + 1 : at + 1 + len(modules)] == modules
    rank = next(r for r in VLLM_RANKS if r >= tiny_hypernet_config.rank)
    assert cmd[cmd.index("--max-lora-rank") + 1] == str(rank) and "--enable-lora" in cmd
    assert "t2l_vllm" in env["VLLM_PLUGINS"].split(",")
    cmd, _ = serve_command(args, ["--lora-target-modules", "o_proj", "--max-loras=4"])
    assert cmd.count("--lora-target-modules") == 1 and cmd[-3:] == ["--lora-target-modules", "o_proj", "--max-loras=4"]
    assert "--max-loras" not in cmd
