"""Training: loss masking, functional LoRA == PEFT, SFT learns and resumes, baselines."""

import json

import pytest
import torch

from t2l_vllm.hypernet import HyperLoRA, randomise_heads
from t2l_vllm.tasks import FAMILIES, training_families
from t2l_vllm.training import loop
from t2l_vllm.training.data import IGNORE_INDEX, collate, pad_id, sample_step, tokenize_example
from t2l_vllm.training.functional_lora import lora_applied, target_modules


@pytest.fixture(scope="module")
def base(tiny_base_dir):
    return loop.load_frozen_base(tiny_base_dir)


def _example(target="blue"):
    return {"task": "t", "description": "Name the colour.", "input": "sky", "target": target}


def test_only_answer_tokens_are_labelled(base):
    _, tok = base
    ids, labels = tokenize_example(tok, "t2l", _example(), max_tokens=64)
    answer = tok("blue", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    n_prompt = len(ids) - len(answer)
    assert ids[n_prompt:] == answer
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert labels[n_prompt:] == answer
    # The prompt is the same one eval renders: the chat template with the input as user message.
    prompt = tok.apply_chat_template([{"role": "user", "content": "sky"}], tokenize=False, add_generation_prompt=True)
    assert ids[:n_prompt] == tok(prompt, add_special_tokens=False)["input_ids"]


def test_long_prompts_are_cut_from_the_left_and_long_targets_refused(base):
    _, tok = base
    ex = _example() | {"input": "word " * 200}
    ids, labels = tokenize_example(tok, "t2l", ex, max_tokens=32)
    assert len(ids) == 32 and labels[-1] == tok.eos_token_id
    with pytest.raises(ValueError, match="max_tokens"):
        tokenize_example(tok, "t2l", _example("long " * 50), max_tokens=32)


def test_completion_loss_counts_answer_tokens_only(base):
    model, tok = base
    rows = [tokenize_example(tok, "t2l", _example(t), 64) for t in ("blue", "a much longer answer here")]
    batch = collate(rows, pad_id(tok))
    loss = loop.completion_loss(model, batch)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float()
    manual = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), batch.labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
    )
    torch.testing.assert_close(loss, manual)
    # Changing a prompt token's label or a padding token id leaves the loss unchanged.
    ids = batch.input_ids.clone()
    ids[0, -1] = 5  # padding of the shorter row (masked out by attention)
    changed = loop.completion_loss(model, type(batch)(ids, batch.labels, batch.attention_mask))
    torch.testing.assert_close(changed, loss)
    with pytest.raises(ValueError, match="no answer tokens"):
        loop.completion_loss(model, type(batch)(batch.input_ids, torch.full_like(batch.labels, IGNORE_INDEX), batch.attention_mask))


def test_hooked_lora_equals_peft_loaded_adapter(base, tiny_hypernet_config, tmp_path):
    """The LoRA SFT trains through is the one a PEFT folder (and so vLLM) applies."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from t2l_vllm.adapter import adapter_config, adapter_tensors, write_adapter

    model, tok = base
    net = randomise_heads(HyperLoRA.initialise(tiny_hypernet_config, seed=3), std=0.2, seed=4)
    emb = torch.randn(2, tiny_hypernet_config.encoder.dim, generator=torch.Generator().manual_seed(0))
    lora = net(emb)
    batch = collate([tokenize_example(tok, "t2l", _example(), 64)] * 2, pad_id(tok))
    modules = target_modules(model, tiny_hypernet_config.target)
    with torch.no_grad(), lora_applied(modules, lora):
        hooked = model(input_ids=batch.input_ids).logits
    plain = model(input_ids=batch.input_ids).logits
    assert not torch.allclose(hooked[1], plain[1], atol=1e-3)
    # Example 1's adapter, written and loaded by PEFT.
    single = net(emb[1:2])
    path = write_adapter(
        adapter_tensors(single, tiny_hypernet_config, torch.float32),
        adapter_config(tiny_hypernet_config, "tiny"),
        tmp_path / "a",
    )
    fresh = AutoModelForCausalLM.from_pretrained(str(model.config._name_or_path), dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(fresh, str(path)).eval()
    with torch.no_grad():
        reference = peft_model(input_ids=batch.input_ids[1:2]).logits
    torch.testing.assert_close(hooked[1:2], reference, atol=1e-4, rtol=1e-4)


def test_hooks_are_removed_after_the_block(base, tiny_hypernet_config):
    model, tok = base
    net = randomise_heads(HyperLoRA.initialise(tiny_hypernet_config, seed=3), std=0.2, seed=4)
    lora = net(torch.randn(1, tiny_hypernet_config.encoder.dim))
    ids = torch.tensor([[1, 2, 3]])
    before = model(input_ids=ids).logits
    with torch.no_grad(), lora_applied(target_modules(model, tiny_hypernet_config.target), lora):
        pass
    torch.testing.assert_close(model(input_ids=ids).logits, before)


def test_step_batches_depend_only_on_seed_and_step():
    fams = training_families()
    a = sample_step(fams, 8, seed=1, step=5)
    assert a == sample_step(fams, 8, seed=1, step=5)
    assert a != sample_step(fams, 8, seed=1, step=6)
    assert len({ex["task"] for ex in a}) == 8
    assert all(ex["task"] in {f.name for f in fams} for ex in a)


def _fixed_batch_loss(model, tok, net, config, examples):
    batch = collate([tokenize_example(tok, "t2l", ex, 128) for ex in examples], pad_id(tok))
    from t2l_vllm.encoders import load_encoder

    enc = load_encoder(config.encoder)
    with torch.no_grad():
        lora = net.eval()(enc.encode([ex["description"] for ex in examples]))
        with lora_applied(target_modules(model, config.target), lora):
            return loop.completion_loss(model, batch).item()


def test_sft_steps_reduce_the_loss(base, tiny_base_dir, tiny_hypernet_config, tmp_path):
    from t2l_vllm.checkpoint import load_hypernet
    from t2l_vllm.training.sft import SFTConfig, train_sft

    model, tok = base
    config = SFTConfig(steps=40, lr=3e-3, warmup_steps=2, save_every=20, label_smoothing=0.0)
    ckpt = train_sft(tiny_hypernet_config, tiny_base_dir, tmp_path / "run", config)
    examples = [ex for step in range(3) for ex in sample_step(training_families(config.answer), 8, config.seed, step)]
    before = _fixed_batch_loss(model, tok, HyperLoRA.initialise(tiny_hypernet_config, seed=0), tiny_hypernet_config, examples)
    after = _fixed_batch_loss(model, tok, load_hypernet(ckpt), tiny_hypernet_config, examples)
    assert after < 0.8 * before, (before, after)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 41))


def test_sft_resumes_to_the_same_weights(tiny_base_dir, tiny_hypernet_config, tmp_path):
    from safetensors.torch import load_file

    from t2l_vllm.training.sft import SFTConfig, train_sft

    config = SFTConfig(steps=6, lr=1e-3, warmup_steps=1, save_every=2)
    straight = train_sft(tiny_hypernet_config, tiny_base_dir, tmp_path / "a", config)

    class Stop(Exception):
        pass

    def stop_at_5(step, total, record):
        if step == 5:  # one step past the last save (step 4): it is redone on resume
            raise Stop

    with pytest.raises(Stop):
        train_sft(tiny_hypernet_config, tiny_base_dir, tmp_path / "b", config, progress=stop_at_5)
    assert torch.load(tmp_path / "b" / "train_state.pt", weights_only=False)["step"] == 4
    resumed = train_sft(tiny_hypernet_config, tiny_base_dir, tmp_path / "b", config)
    log = [json.loads(line)["step"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert log == [1, 2, 3, 4, 5, 6]
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="different config"):
        train_sft(tiny_hypernet_config, tiny_base_dir, tmp_path / "b", SFTConfig(steps=6, lr=2e-3, save_every=2))


@pytest.fixture(scope="module")
def oracle_library(tiny_base_dir, tiny_hypernet_config, tmp_path_factory):
    from t2l_vllm.training.peft_lora import OracleConfig, train_oracles

    out = tmp_path_factory.mktemp("oracles")
    fams = list(FAMILIES.values())
    train_oracles(tiny_hypernet_config, tiny_base_dir, out, fams, OracleConfig(steps=8, lr=3e-2, warmup_steps=1))
    return out


def test_oracles_write_peft_folders_and_resume_per_family(oracle_library, tiny_base_dir, tiny_hypernet_config):
    from t2l_vllm.training.peft_lora import OracleConfig, train_oracles

    cfg = json.loads((oracle_library / "even_or_odd" / "adapter_config.json").read_text())
    assert cfg["r"] == tiny_hypernet_config.rank and cfg["use_rslora"] is True
    assert sorted(cfg["target_modules"]) == sorted(tiny_hypernet_config.target.module_names)
    log = [json.loads(line) for line in (oracle_library / "log.jsonl").read_text().splitlines()]
    assert len(log) == len(FAMILIES)
    # Per family a few steps are noisy; over all families the loss must have dropped.
    assert sum(r["last_loss"] for r in log) < 0.95 * sum(r["first_loss"] for r in log)
    # A second run finds every family done and trains nothing.
    done = train_oracles(
        tiny_hypernet_config, tiny_base_dir, oracle_library, list(FAMILIES.values()),
        OracleConfig(steps=8, lr=3e-2, warmup_steps=1),
    )
    assert len(done) == len(FAMILIES)
    assert len((oracle_library / "log.jsonl").read_text().splitlines()) == len(FAMILIES)


def test_reconstruction_fits_the_library(oracle_library, tiny_base_dir, tiny_hypernet_config, tmp_path):
    from t2l_vllm.training.reconstruction import ReconConfig, train_reconstruction

    ckpt = train_reconstruction(
        tiny_hypernet_config, tiny_base_dir, tmp_path / "recon",
        ReconConfig(
            library=str(oracle_library), tasks="even_or_odd,first_letter", tasks_per_batch=2,
            steps=60, lr=1e-3, warmup_steps=2, save_every=30,
        ),
    )
    assert (ckpt / "model.safetensors").is_file()
    log = [json.loads(line)["l1"] for line in (tmp_path / "recon" / "log.jsonl").read_text().splitlines()]
    assert sum(log[-10:]) / 10 < 0.7 * sum(log[:10]) / 10, (log[:3], log[-3:])


def test_reconstruction_names_a_missing_oracle(tiny_base_dir, tiny_hypernet_config, tmp_path):
    from t2l_vllm.training.reconstruction import ReconConfig, train_reconstruction

    with pytest.raises(ValueError, match="no oracle for"):
        train_reconstruction(tiny_hypernet_config, tiny_base_dir, tmp_path / "r", ReconConfig(library=str(tmp_path)))


def test_multitask_trains_one_resumable_adapter(tiny_base_dir, tiny_hypernet_config, tmp_path):
    from t2l_vllm.training.peft_lora import MultitaskConfig, train_multitask

    config = MultitaskConfig(steps=4, lr=1e-2, warmup_steps=1, save_every=2)
    path = train_multitask(tiny_hypernet_config, tiny_base_dir, tmp_path / "mt", config)
    assert (path / "adapter_model.safetensors").is_file()
    assert torch.load(tmp_path / "mt" / "train_state.pt", weights_only=False)["step"] == 4
    # Asking for more steps under the same folder is a different run: refused, nothing lost.
    with pytest.raises(ValueError, match="different config"):
        train_multitask(tiny_hypernet_config, tiny_base_dir, tmp_path / "mt", MultitaskConfig(steps=8))
    assert (path / "adapter_model.safetensors").is_file()
