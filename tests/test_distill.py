"""Context distillation: the KL, the teacher's continuations, and SFT with the distillation term."""

import json

import pytest
import torch

from t2l_vllm.hypernet import HyperLoRA, randomise_heads
from t2l_vllm.prompts import prompt_ids
from t2l_vllm.tasks import training_families
from t2l_vllm.training import loop
from t2l_vllm.training.data import IGNORE_INDEX, pad_id, sample_step
from t2l_vllm.training.distill import (
    TEACHER_STYLE,
    TeacherCache,
    continuation_logits,
    distill_batches,
    distill_loss,
    greedy_continuations,
    kl_per_token,
)
from t2l_vllm.training.functional_lora import target_modules


@pytest.fixture(scope="module")
def base(tiny_base_dir):
    return loop.load_frozen_base(tiny_base_dir)


EXAMPLES = [
    {"task": "a", "description": "Translate the word into French.", "input": "hello world", "target": "x"},
    {"task": "b", "description": "Count the vowels in the input and answer with a number.", "input": "yes no maybe",
     "target": "y"},
    {"task": "c", "description": "Reverse the string.", "input": "Paris", "target": "z"},
]


def _embed(config, descriptions):
    from t2l_vllm.encoders import load_encoder

    return load_encoder(config.encoder).encode(list(descriptions))


def _kl(model, tok, net, config, examples, ys, student_style="t2l"):
    t_batch, s_batch = distill_batches(tok, examples, ys, student_style, 128, pad_id(tok))
    with torch.no_grad():
        lora = net.eval()(_embed(config, [ex["description"] for ex in examples]))
        return distill_loss(model, target_modules(model, config.target), lora, t_batch, s_batch).item()


def test_kl_is_zero_for_equal_logits_and_positive_otherwise():
    torch.manual_seed(0)
    logits = torch.randn(7, 50) * 3
    assert kl_per_token(logits, logits.clone()).item() == 0.0
    assert kl_per_token(logits, logits + 5.0).item() == pytest.approx(0.0, abs=1e-6)  # softmax ignores a shift
    other = torch.randn(7, 50)
    assert kl_per_token(logits, other).item() > 0.1
    # Per token: the mean over rows of sum_v p (log p - log q).
    p, q = logits.log_softmax(-1), other.log_softmax(-1)
    torch.testing.assert_close(kl_per_token(logits, other), (p.exp() * (p - q)).sum(-1).mean())
    with pytest.raises(ValueError, match="teacher logits"):
        kl_per_token(logits, other[:6])


def test_teacher_continuations_are_greedy_and_batched_like_single(base):
    model, tok = base
    prompts = [prompt_ids(tok, TEACHER_STYLE, ex["description"], ex["input"]) for ex in EXAMPLES]
    assert len({len(p) for p in prompts}) > 1  # the batch really is left-padded
    batched = greedy_continuations(model, prompts, 12, tok.eos_token_id, pad_id(tok))
    for prompt, y in zip(prompts, batched):
        assert 1 <= len(y) <= 12 and tok.eos_token_id not in y[:-1]
        # Manual greedy decoding of this prompt alone, without padding or cache.
        ids, manual = list(prompt), []
        with torch.no_grad():
            for _ in range(12):
                nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
                manual.append(nxt)
                ids.append(nxt)
                if nxt == tok.eos_token_id:
                    break
        assert y == manual


def test_distill_loss_zero_for_the_teacher_itself_positive_for_the_student(base, tiny_hypernet_config):
    model, tok = base
    ys = greedy_continuations(
        model, [prompt_ids(tok, TEACHER_STYLE, ex["description"], ex["input"]) for ex in EXAMPLES], 10,
        tok.eos_token_id, pad_id(tok),
    )
    noop = HyperLoRA.initialise(tiny_hypernet_config, seed=0)  # bias-HyperInit: B = 0, the adapter adds nothing
    # Student = teacher: a no-op adapter and the teacher's own prompt.
    assert _kl(model, tok, noop, tiny_hypernet_config, EXAMPLES, ys, student_style=TEACHER_STYLE) == pytest.approx(0.0, abs=1e-6)
    # The description removed from the prompt, or a real adapter: the student differs.
    without_desc = _kl(model, tok, noop, tiny_hypernet_config, EXAMPLES, ys)
    assert without_desc > 1e-3
    adapted = _kl(model, tok, randomise_heads(HyperLoRA.initialise(tiny_hypernet_config, seed=0)), tiny_hypernet_config,
                  EXAMPLES, ys, student_style=TEACHER_STYLE)
    assert adapted > 1e-3


def test_distill_batches_align_teacher_and_student_positions(base):
    model, tok = base
    ys = [[5, 6, tok.eos_token_id], [7], [8, 9]]
    t_batch, s_batch = distill_batches(tok, EXAMPLES, ys, "t2l", 128, pad_id(tok))
    for batch, style in ((t_batch, TEACHER_STYLE), (s_batch, "t2l")):
        for i, (ex, y) in enumerate(zip(EXAMPLES, ys)):
            prompt = prompt_ids(tok, style, ex["description"], ex["input"])
            n = len(prompt) + len(y)
            assert batch.input_ids[i, :n].tolist() == prompt + y
            assert batch.labels[i, :n].tolist() == [IGNORE_INDEX] * len(prompt) + y
    # The LM head runs at exactly the len(y) positions per row, in the same order on both sides.
    assert continuation_logits(model, t_batch).shape[0] == continuation_logits(model, s_batch).shape[0] == 6
    with pytest.raises(ValueError, match="continuation of 0 tokens"):
        distill_batches(tok, EXAMPLES[:1], [[]], "t2l", 128, pad_id(tok))


def test_teacher_cache_generates_once_and_survives_in_its_file(base, tmp_path):
    model, tok = base
    path = tmp_path / "cache.jsonl"
    cache = TeacherCache(model, tok, 8, path)
    first = cache.continuations(EXAMPLES + EXAMPLES[:1])
    assert cache.generated == 3 and len(cache) == 3 and first[0] == first[3]
    assert cache.continuations(EXAMPLES[::-1]) == first[:3][::-1] and cache.generated == 3
    with open(path, "a") as fh:
        fh.write('{"description": "cut sho')  # a line cut short by a kill
    again = TeacherCache(model, tok, 8, path)
    assert again.continuations(EXAMPLES) == first[:3] and again.generated == 0


def test_sft_with_distillation_lowers_the_kl_of_its_batch(base, tiny_base_dir, tiny_hypernet_config, tmp_path, monkeypatch):
    """SFT steps on one fixed batch (distillation only) lower that batch's KL; its continuations are generated once."""
    from t2l_vllm.checkpoint import load_hypernet
    from t2l_vllm.training import sft

    model, tok = base
    # On the tiny random model what the description does to the output is specific to each input,
    # so only a batch seen repeatedly shows the effect within a few steps: every step draws this one.
    fixed = sample_step(training_families("short"), 4, 0, 0)
    monkeypatch.setattr(sft, "sample_step", lambda families, n, seed, step, *suite_args: [dict(ex) for ex in fixed])
    config = sft.SFTConfig(
        steps=20, tasks_per_batch=4, lr=1e-3, warmup_steps=2, save_every=20,
        distill_weight=1.0, distill_tokens=8, distill_only=True,
    )
    ckpt = sft.train_sft(tiny_hypernet_config, tiny_base_dir, tmp_path / "run", config)
    ys = TeacherCache(model, tok, 8).continuations(fixed)
    before = _kl(model, tok, HyperLoRA.initialise(tiny_hypernet_config, seed=0), tiny_hypernet_config, fixed, ys)
    after = _kl(model, tok, load_hypernet(ckpt), tiny_hypernet_config, fixed, ys)
    assert after < 0.6 * before, (before, after)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 21))
    assert all("kl" in r and "ce" not in r for r in log)
    assert log[0]["kl"] == pytest.approx(before, rel=1e-4)  # step 1 saw the initial network on this batch
    # The continuations were generated once (4 lines in the run folder) and are the ones recomputed here.
    kept = [json.loads(line) for line in (tmp_path / "run" / sft.TEACHER_CACHE_NAME).read_text().splitlines()]
    assert [row["tokens"] for row in kept] == ys


def test_sft_with_distillation_resumes_to_the_same_weights(tiny_base_dir, tiny_hypernet_config, tmp_path):
    from safetensors.torch import load_file

    from t2l_vllm.training.sft import SFTConfig, train_sft

    config = SFTConfig(steps=6, tasks_per_batch=4, lr=1e-3, warmup_steps=1, save_every=2, distill_weight=0.5, distill_tokens=8)
    straight = train_sft(tiny_hypernet_config, tiny_base_dir, tmp_path / "a", config)

    class Stop(Exception):
        pass

    def stop_at_5(step, total, record):
        if step == 5:
            raise Stop

    with pytest.raises(Stop):
        train_sft(tiny_hypernet_config, tiny_base_dir, tmp_path / "b", config, progress=stop_at_5)
    resumed = train_sft(tiny_hypernet_config, tiny_base_dir, tmp_path / "b", config)
    log_a = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    log_b = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log_b] == [1, 2, 3, 4, 5, 6]
    assert all({"loss", "ce", "kl", "l2"} <= r.keys() for r in log_a)
    assert [r["kl"] for r in log_a] == [r["kl"] for r in log_b]
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_from_before_the_distillation_fields_resumes(tiny_base_dir, tiny_hypernet_config, tmp_path):
    from dataclasses import asdict

    from t2l_vllm.training.sft import SFTConfig, train_sft

    config = SFTConfig(steps=1, tasks_per_batch=2, save_every=1)
    old = {k: v for k, v in asdict(config).items() if not k.startswith("distill_")}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / loop.RUN_CONFIG_NAME).write_text(json.dumps(old))
    with pytest.raises(ValueError, match="different config"):
        changed = SFTConfig(steps=1, tasks_per_batch=2, save_every=1, distill_weight=1.0)
        train_sft(tiny_hypernet_config, tiny_base_dir, tmp_path / "run", changed)
    train_sft(tiny_hypernet_config, tiny_base_dir, tmp_path / "run", config)
    assert json.loads((tmp_path / "run" / loop.RUN_CONFIG_NAME).read_text()) == asdict(config)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"distill_weight": -0.1}, "distill_weight"),
        ({"distill_weight": float("nan")}, "distill_weight"),
        ({"distill_weight": float("inf")}, "distill_weight"),
        ({"distill_tokens": 0}, "distill_tokens"),
        ({"distill_weight": 1.0, "distill_tokens": 128, "max_tokens": 128}, "max_tokens"),
        ({"distill_only": True}, "distill_only"),
    ],
)
def test_bad_distillation_config_is_refused(kwargs, match):
    from t2l_vllm.training.sft import SFTConfig

    with pytest.raises(ValueError, match=match):
        SFTConfig(**kwargs)


def test_defaults_leave_distillation_off():
    from t2l_vllm.training.sft import SFTConfig

    c = SFTConfig(max_tokens=32)  # the default continuation length only matters when distillation is on
    assert c.distill_weight == 0.0 and c.distill_tokens == 48 and not c.distill_only


def test_cli_flags_reach_the_config(monkeypatch, tmp_path):
    from t2l_vllm import cli

    seen = []
    monkeypatch.setattr(cli, "_train", lambda args, name, train, config: seen.append(config) or 0)
    args = cli.build_parser().parse_args(
        ["train-sft", "--out", str(tmp_path), "--distill-weight", "0.5", "--distill-tokens", "32", "--distill-only"]
    )
    assert args.func(args) == 0
    args = cli.build_parser().parse_args(["train-sft", "--out", str(tmp_path)])
    assert args.func(args) == 0
    (on, off) = seen
    assert (on.distill_weight, on.distill_tokens, on.distill_only) == (0.5, 32, True)
    assert (off.distill_weight, off.distill_tokens, off.distill_only) == (0.0, 48, False)
