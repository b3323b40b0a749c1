"""Semantic reuse (--reuse): the reuse index on its own, then through a real tiny server.

The tiny encoder is random, so the server runs with --reuse-threshold set just
under the cosine the test measures for its paraphrase and mirror pairs: the
paraphrase must be reused, the mirror ("smaller" / "larger") must not, though
it is as close. A restart on the same adapter folder rebuilds the index.
"""

from __future__ import annotations

import httpx
import openai
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from t2l_vllm.reuse import ReuseIndex, canonical_text, lexical_conflict
from t2l_vllm.serving.config import ServeConfig
from tests.server_utils import running_tiny_server
from tests.test_server import wait_for

SMALLER = "Return the smaller of the two numbers."
LARGER = "Return the larger of the two numbers."
PARAPHRASE = "Return the smaller of the two numbers, please."
API_KEY = "reuse-key"


def test_canonical_text_merges_only_space_trailing_punctuation_and_the_first_letters_case():
    assert canonical_text("Reply with the plural of the noun.") == canonical_text("  reply with the plural of  the noun ")
    assert canonical_text("'Answer yes or no.'") == canonical_text("Answer yes or no")
    assert canonical_text("Answer yes or no.") != canonical_text("Answer yes, or no.")
    # Case beyond the first letter is kept: the suite has opposite tasks that differ only in case.
    a, b = "Example: 'blue river' -> 'BLUE RIVER'.", "Example: 'BLUE River' -> 'blue river'."
    assert canonical_text(a) != canonical_text(b) and lexical_conflict(a, b) is not None


@pytest.mark.parametrize("a, b", [
    (SMALLER, LARGER),
    ("Give the day before the given weekday.", "Give the day after the given weekday."),
    ("Sort the words alphabetically.", "Sort the words in reverse alphabetical order."),
    ("Return the 3rd letter of the word.", "Return the 4th letter of the word."),
    ("Answer in uppercase.", "Answer in lowercase."),
    ("Example: 'France' -> 'Paris'.", "Example: 'Paris' -> 'France'."),  # roles swapped: cosine 0.998
    ("Reformat the ISO date as day/month/year.", "Reformat the ISO date as month/day/year."),
    ("Example: '12, 85, 40' -> '85'.", "Example: '12, 85, 40' -> '12'."),  # max / min by example: 0.987
    ("Floor the number to a multiple of ten.", "Ceil the number to a multiple of ten."),
])
def test_lexical_check_blocks_opposites_negations_and_numbers(a, b):
    assert lexical_conflict(a, b) is not None
    assert lexical_conflict(b, a) is not None


def test_lexical_check_lets_paraphrases_through():
    assert lexical_conflict(SMALLER, PARAPHRASE) is None
    assert lexical_conflict("Which number is less?", "Which of the two numbers is less?") is None


def test_index_matches_by_threshold_and_lexical_check_and_forgets_removed():
    e = torch.eye(4)
    near = torch.tensor([1.0, 0.1, 0.0, 0.0])  # cosine 0.995 to e[0]
    index = ReuseIndex(4, threshold=0.99)
    index.add("t2l-a", SMALLER, e[0])
    index.add("t2l-b", "Something else entirely.", e[1])
    assert index.match(PARAPHRASE, near).adapter_id == "t2l-a"
    assert index.match(PARAPHRASE, near).kind == "semantic"
    assert index.match(LARGER, near) is None  # as close, but an opposite
    assert index.match("return the smaller of the two numbers", None).kind == "exact"
    assert index.match(PARAPHRASE, torch.tensor([1.0, 1.0, 0.0, 0.0])) is None  # cosine 0.71
    index.remove("t2l-a")
    assert index.match(PARAPHRASE, near) is None and index.exact(SMALLER) is None
    assert len(index) == 1 and index.nearest(e[1])[0][0] == "t2l-b"
    assert ReuseIndex(4, threshold=None).match(PARAPHRASE, near) is None  # exact only


def test_threshold_and_mode_are_validated():
    with pytest.raises(ValueError, match="reuse must be one of"):
        ServeConfig.from_env({}, reuse="sometimes")
    with pytest.raises(ValueError, match="reuse_threshold"):
        ServeConfig.from_env({}, reuse_threshold=1.5)
    with pytest.raises(ValueError, match="threshold"):
        ReuseIndex(4, threshold=-2)


def test_exact_reuse_by_default_and_semantic_only_with_a_threshold_for_this_encoder(tiny_generator):
    from t2l_vllm.serving.service import build_reuse_index

    assert ServeConfig.from_env({}).reuse == "exact"  # the default: the suite's numbers (README) say so
    assert build_reuse_index(tiny_generator, ServeConfig.from_env({})).threshold is None
    assert build_reuse_index(tiny_generator, ServeConfig.from_env({}, reuse="semantic")).threshold is None
    semantic = ServeConfig.from_env({}, reuse="semantic", reuse_threshold=0.9)
    assert build_reuse_index(tiny_generator, semantic).threshold == 0.9
    assert build_reuse_index(tiny_generator, ServeConfig.from_env({}, reuse="off")) is None


# ---- through the server -------------------------------------------------------------


def _cos(generator, a: str, b: str) -> float:
    e = generator.embed([a, b])
    return float(torch.nn.functional.cosine_similarity(e[0], e[1], dim=0))


def _cache(http) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for s in family.samples:
            if s.name == "t2l_adapter_cache_total":
                out[s.labels["result"]] = s.value
    return out


def _chat(client, description):
    return client.chat.completions.with_raw_response.create(
        model=client.models.list().data[0].id, messages=[{"role": "user", "content": "3, 8"}], max_tokens=4,
        temperature=0, extra_body={"task_description": description},
    )


@pytest.fixture(scope="module")
def threshold(tiny_generator):
    # Just under both pairs: only the lexical check can keep the mirror apart.
    return round(min(_cos(tiny_generator, SMALLER, PARAPHRASE), _cos(tiny_generator, SMALLER, LARGER)) - 0.002, 4)


def test_server_reuses_paraphrases_never_mirrors_and_survives_a_restart(
        tmp_path, tiny_base_dir, tiny_hypernet_dir, threshold):
    flags = ("--reuse", "semantic", "--reuse-threshold", str(threshold))
    with running_tiny_server(tmp_path, tiny_base_dir, tiny_hypernet_dir, *flags, api_key=API_KEY) as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=API_KEY, max_retries=0)
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as http:
            first = _chat(client, SMALLER)
            smaller_id = first.headers["x-t2l-adapter-id"]
            assert first.parse().model == smaller_id and "x-t2l-reuse" not in first.headers

            exact = _chat(client, "return the smaller of the two numbers")
            assert exact.headers["x-t2l-adapter-id"] == smaller_id and exact.parse().model == smaller_id
            assert exact.headers["x-t2l-reuse"] == "exact"

            para = _chat(client, PARAPHRASE)
            assert para.headers["x-t2l-adapter-id"] == smaller_id
            assert para.headers["x-t2l-reuse"] == "semantic"
            assert float(para.headers["x-t2l-reuse-similarity"]) >= threshold

            mirror = _chat(client, LARGER)
            assert mirror.headers["x-t2l-adapter-id"] != smaller_id and "x-t2l-reuse" not in mirror.headers
            preview = http.post("/v1/t2l/reuse", json={"task_description": LARGER}).json()
            assert preview["own_adapter_exists"] and preview["match"] is None
            near = {n["adapter_id"]: n for n in preview["nearest"]}
            assert near[smaller_id]["similarity"] >= threshold and "opposites" in near[smaller_id]["conflict"]

            counts = _cache(http)
            assert counts["exact_hit"] == 1 and counts["semantic_hit"] == 1 and counts["miss"] == 2
            record = http.get(f"/v1/t2l/adapters/{smaller_id}").json()
            assert record["reused"] == 2
            assert len(http.get("/v1/t2l/adapters").json()["data"]) == 2  # no copies for the rewordings
            assert http.post("/v1/t2l/reuse", json={"task_description": ""}).status_code == 400

    # Same adapter folder, new server: the index is rebuilt from the stored descriptions.
    with running_tiny_server(tmp_path, tiny_base_dir, tiny_hypernet_dir, *flags, api_key=API_KEY) as srv:
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as http:
            def rebuilt():
                match = http.post("/v1/t2l/reuse", json={"task_description": PARAPHRASE}).json()["match"]
                return match if match and match["adapter_id"] == smaller_id else None

            assert wait_for(rebuilt, timeout=60)["kind"] == "semantic"
            client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=API_KEY, max_retries=0)
            assert _chat(client, PARAPHRASE).headers["x-t2l-adapter-id"] == smaller_id

