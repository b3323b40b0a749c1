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
