"""Malformed requests for the serving front end, as hypothesis strategies (issue 14, item 1).

Shared by tests/test_fuzz.py (a short, derandomised run in CI) and
benchmarks/fuzz_bench.py (a long run that counts outcomes). A `Case` is one
HTTP request; `send` sends it and returns an `Outcome`; `violations` says what
is wrong with that outcome:

- a 5xx, or no answer at all (connection reset, closed or timed out);
- a 4xx whose body is not vLLM's OpenAI error JSON
  {"error": {"message", "type", "param", "code"}} with code == status.
  /v1/messages* may answer in Anthropic's shape {"type": "error", "error":
  {"type", "message"}} instead: that is the API it imitates.

Known 5xx that are not about malformed input are listed in `EXPECTED_5XX`.

What the strategies make (`any_case`):
- mutations of valid bodies of every JSON route: a field replaced by an
  arbitrary JSON value, removed, or an extra key added (`mutated_cases`);
  the generation length (max_tokens, ...) is never removed nor made long;
- arbitrary JSON values as the whole body (`json_values`, st.recursive);
- valid bodies in other encodings (UTF-16/32 with and without BOM, UTF-8 BOM,
  Latin-1), with invalid UTF-8 bytes, or truncated (`encoded_cases`);
- nesting of arrays/objects 1..100,000 levels deep, alone or in a field (`deep_cases`);
- NaN / Infinity / 1e999 / 5,000-digit integers in numeric fields (`number_cases`);
- raw bytes and odd content types (`raw_cases`);
- the admin API: GET/DELETE of random adapter ids, /download, /pin, POST bodies, and
  GET /v1/responses/{id} (`admin_cases`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from hypothesis import strategies as st

# Every POST route of vLLM 0.32 (generate task) plus ours that takes a JSON body.
# tests/test_fuzz.py checks this against the server's OpenAPI listing.
JSON_ROUTES = (
    "/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/chat/completions/batch",
    "/v1/messages", "/v1/messages/count_tokens", "/invocations", "/tokenize", "/detokenize",
    "/generative_scoring", "/v1/systemone", "/scale_elastic_ep", "/v1/t2l/adapters", "/v1/t2l/reuse",
    "/v1/t2l/library",
)
# POST routes that take no body; fuzzed with bodies all the same.
BODYLESS_POST_ROUTES = (
    "/ping", "/is_scaling_elastic_ep", "/v1/responses/{response_id}/cancel", "/v1/t2l/adapters/{adapter_id}/pin",
)
ADMIN = "/v1/t2l/adapters"
ANTHROPIC_ROUTES = ("/v1/messages", "/v1/messages/count_tokens")
# 5xx answers to well-formed requests, not to malformed ones: (route, status) -> why.
EXPECTED_5XX = {
    ("/v1/systemone", 501): "vLLM: the model does not support the structured decision API (NotImplementedError)",
}
# A few descriptions, so that valid bodies reuse adapters instead of generating one per example.
DESCRIPTIONS = ("Answer yes or no.", "Classify the sentiment of a tweet as positive or negative.")
MESSAGES = [{"role": "user", "content": "Classify: I love it"}]
CONTENT_TYPES = (
    "application/json", "application/json; charset=utf-8", "application/json; charset=utf-16",
    "text/plain", "application/x-www-form-urlencoded", "",
)
ENCODINGS = ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-8-sig", "latin-1")


@dataclass(frozen=True)
class Case:
    kind: str  # which strategy made it
    method: str
    path: str  # the route template it targets (counts are per route)
    url: str  # the path sent
    body: bytes = b""
    content_type: str = "application/json"

    def describe(self, limit: int = 200) -> str:
        body = self.body[:limit] + (b"..." if len(self.body) > limit else b"")
        return f"{self.kind}: {self.method} {self.url} [{self.content_type!r}, {len(self.body)} bytes] {body!r}"


@dataclass
class Outcome:
    status: int | None  # None: no answer
    error: str | None = None  # "reset", "closed", "timeout", "transport": why there was no answer
    body: bytes = b""
    seconds: float = 0.0


# ---- JSON values -------------------------------------------------------------------

# Strings include lone surrogates (json.dumps writes them as \udXXX escapes) and long ones.
_TEXT = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=10),
    st.sampled_from(["", " ", "t2l-" + "0" * 32, "t2l-x", "\x00", "x" * 5000, "[" * 300, "\\"]),
)
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), _TEXT,
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30, 1.5, -0.0, 1e308]),
)
json_values = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_TEXT, children, max_size=4),
    ),
    max_leaves=12,
)


def dumps(value) -> bytes:
    """json.dumps as a client would send it; NaN/Infinity come out as their (non-JSON) literals."""
    return json.dumps(value).encode()


# ---- valid bodies --------------------------------------------------------------------


def valid_bodies(model: str) -> dict[str, list[dict]]:
    """Small valid bodies per route (max_tokens kept tiny: some run generation)."""
    td = {"task_description": DESCRIPTIONS[0]}
    chat = {"model": model, "messages": MESSAGES, "max_tokens": 2, "temperature": 0}
    completion = {"model": model, "prompt": "Classify: I love it", "max_tokens": 2, "temperature": 0}
    return {
        "/v1/chat/completions": [chat, {**chat, **td}, {**chat, "stream": True, **td}],
        "/v1/completions": [completion, {**completion, **td}],
        "/v1/responses": [{"model": model, "input": "hello", "max_output_tokens": 2}],
        "/v1/chat/completions/batch": [{"model": model, "messages": [MESSAGES, MESSAGES], "max_tokens": 2}],
        "/v1/messages": [{"model": model, "messages": MESSAGES, "max_tokens": 2}],
        "/v1/messages/count_tokens": [{"model": model, "messages": MESSAGES}],
        "/invocations": [completion, chat],
        "/tokenize": [{"model": model, "prompt": "hello"}, {"model": model, "messages": MESSAGES}],
        "/detokenize": [{"model": model, "tokens": [1, 2, 3]}],
        "/generative_scoring": [{"model": model, "query": "is it", "items": ["yes", "no"], "label_token_ids": [1, 2]}],
        "/v1/systemone": [{"model": model, "state": "x", "questions": {"q": {"type": "bool"}}}],
        # No valid body for /scale_elastic_ep: a valid one asks the engine to rescale.
        "/scale_elastic_ep": [{}],
        ADMIN: [{"task_description": d} for d in DESCRIPTIONS],
        "/v1/t2l/reuse": [{"task_description": d} for d in DESCRIPTIONS],
        # Well-formed but not a real adapter (a real upload is megabytes): the upload checks answer 400.
        "/v1/t2l/library": [{"descriptions": [DESCRIPTIONS[0]], "name": "fuzz", "adapter_config": {"r": 8},
                             "adapter_model": ""}],
    }


def post(kind: str, route: str, body: bytes, content_type: str = "application/json") -> Case:
    url = route.replace("{response_id}", "resp_fuzz").replace("{adapter_id}", "t2l-" + "0" * 32)
    return Case(kind, "POST", route, url, body, content_type)


# ---- strategies ----------------------------------------------------------------------


# Fields that bound generation. Removed, null, or set to a valid large value,
# they make a well-formed request that generates up to the context length:
# minutes on a CPU (seen as client timeouts on the default model), and nothing
# malformed to test. So mutations never remove them and only set values that
# are not a long length (other types, negatives, zero, huge, ...).
LENGTH_FIELDS = ("max_tokens", "max_output_tokens", "max_completion_tokens")


def _long_length(value) -> bool:
    """True for what vLLM takes as a generation length over 16 tokens (null: no limit; "300": lax int)."""
    if value is None:
        return True
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 16 < value < 10**7


_NOT_A_LONG_LENGTH = json_values.filter(lambda v: not _long_length(v))


@st.composite
def _mutate(draw, body: dict) -> dict:
    """1-3 edits: a field (top level or one level down) replaced or removed, or an extra key."""
    body = json.loads(json.dumps(body))  # a copy
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["replace", "replace", "remove", "add", "nested"]))
        keys = [k for k in body if k not in LENGTH_FIELDS]
        lengths = [k for k in body if k in LENGTH_FIELDS]
        if lengths and op == "replace" and draw(st.booleans()):
            body[draw(st.sampled_from(lengths))] = draw(_NOT_A_LONG_LENGTH)
        elif op == "add" or not keys:
            key = draw(_TEXT)
            body[key] = draw(_NOT_A_LONG_LENGTH if key in LENGTH_FIELDS else json_values)
        elif op == "remove":
            del body[draw(st.sampled_from(keys))]
        elif op == "replace":
            body[draw(st.sampled_from(keys))] = draw(json_values)
        else:  # inside a list/dict field, e.g. messages[0].content
            key = draw(st.sampled_from(keys))
            inner = body[key]
            if isinstance(inner, list) and inner:
                item = inner[draw(st.integers(0, len(inner) - 1))]
                if isinstance(item, dict) and item:
                    item[draw(st.sampled_from(list(item)))] = draw(json_values)
                else:
                    inner[0] = draw(json_values)
            elif isinstance(inner, dict) and inner:
                inner[draw(st.sampled_from(list(inner)))] = draw(json_values)
            else:
                body[key] = draw(json_values)
    return body


@st.composite
def mutated_cases(draw, model: str):
    # One composite, not a one_of per route: st.one_of flattens nested one_ofs,
    # which would give this strategy 13 of any_case's branches.
    route = draw(st.sampled_from(JSON_ROUTES))
    body = draw(_mutate(draw(st.sampled_from(valid_bodies(model)[route]))))
    return post("mutated", route, dumps(body))


def routes():
    return st.sampled_from(JSON_ROUTES + BODYLESS_POST_ROUTES)


def arbitrary_json_cases():
    return st.builds(lambda r, v: post("json-value", r, dumps(v)), routes(), json_values)


@st.composite
def encoded_cases(draw, model: str):
    route = draw(st.sampled_from(JSON_ROUTES))
    body = draw(st.sampled_from(valid_bodies(model)[route]))
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    how = draw(st.sampled_from(["encoding", "bad-utf8", "truncated"]))
    if how == "encoding":
        encoding = draw(st.sampled_from(ENCODINGS))
        if encoding == "latin-1":
            text = text.replace("I love it", "J'adore \u00e7a")  # non-ASCII, so not also valid UTF-8
        data = text.encode(encoding)
    elif how == "bad-utf8":
        data = bytearray(text.encode())
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]))
        data = bytes(data)
    else:
        data = text.encode()
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    return post(f"encoding-{how}", route, data)


@st.composite
def deep_cases(draw, model: str):
    route = draw(st.sampled_from(JSON_ROUTES))
    depth = draw(st.one_of(st.sampled_from([99, 100, 101, 1000, 5000, 100_000]), st.integers(1, 20_000)))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    nest = opener * depth + ("1" if opener != "[" else "") + closer * depth
    where = draw(st.sampled_from(["whole", "field"]))
    if where == "whole":
        return post("deep", route, nest.encode())
    body = dict(draw(st.sampled_from(valid_bodies(model)[route])))
    key = draw(st.sampled_from(list(body) + ["extra"])) if body else "extra"
    body[key] = "@@NEST@@"
    return post("deep", route, dumps(body).replace(b'"@@NEST@@"', nest.encode()))


_NUMBER_LITERALS = ("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-400", "9" * 5000, "-" + "9" * 4301,
                    "9" * 400, "18446744073709551616", "1.0e+", "01", "0x10", "1_000")
_NUMERIC_FIELDS = ("max_tokens", "temperature", "top_p", "seed", "n", "logprobs", "top_k", "max_output_tokens",
                   "presence_penalty", "priority")


@st.composite
def number_cases(draw, model: str):
    route = draw(st.sampled_from(JSON_ROUTES))
    body = dict(draw(st.sampled_from(valid_bodies(model)[route])))
    body[draw(st.sampled_from(_NUMERIC_FIELDS))] = "@@NUM@@"
    literal = draw(st.sampled_from(_NUMBER_LITERALS))
    return post("number", route, dumps(body).replace(b'"@@NUM@@"', literal.encode()))


@st.composite
def raw_cases(draw, model: str):
    route = draw(routes())
    body = draw(st.one_of(
        st.binary(max_size=200),
        st.text(max_size=100).map(str.encode),
        st.sampled_from([
            b"", b" ", b"\n", b"null", b"[]", b"{}", b'""', b"0", b"{", b"}", b'{"a":}', b"\xef\xbb\xbf{}",
        ]),
        st.builds(lambda b: dumps(b), st.sampled_from(valid_bodies(model).get(route, [{}]))),
    ))
    return post("raw", route, body, draw(st.sampled_from(CONTENT_TYPES)))


# Ids carry no "/" (it makes another path, not a malformed id) and are never "." or ".."
# (clients resolve those away before sending).
_ADAPTER_IDS = st.one_of(
    st.text(st.characters(exclude_characters="/", codec="utf-8"), min_size=1, max_size=40),
    st.from_regex(r"\At2l-[0-9a-f]{32}\Z"),
    st.sampled_from(["t2l-", "t2l-" + "0" * 31, "t2l-" + "G" * 32, "t2l-" + "0" * 33, " ", "%2F"]),
).filter(lambda s: s not in (".", ".."))


@st.composite
def admin_cases(draw, model: str):
    """The admin API: GET/DELETE on ids (a "/" in an id makes another path, so ids carry none), and POST bodies."""
    what = draw(st.sampled_from(["get", "delete", "download", "pin", "unpin", "list", "post", "response"]))
    if what == "list":
        return Case("admin", "GET", ADMIN, ADMIN)
    if what == "response":  # vLLM's own GET with an id in the path
        rid = quote(draw(_ADAPTER_IDS), safe="")
        return Case("admin", "GET", "/v1/responses/{response_id}", f"/v1/responses/{rid}")
    if what == "post":
        body = draw(st.one_of(
            st.sampled_from(valid_bodies(model)[ADMIN]).flatmap(_mutate).map(dumps),
            json_values.map(dumps),
            st.builds(lambda d: dumps({"task_description": d}), json_values),
        ))
        return post("admin", ADMIN, body)
    aid = draw(_ADAPTER_IDS)
    url = f"{ADMIN}/{quote(aid, safe='')}"
    if what == "download":
        return Case("admin", "GET", f"{ADMIN}/{{adapter_id}}/download", url + "/download")
    if what in ("pin", "unpin"):
        return Case("admin", "POST" if what == "pin" else "DELETE", f"{ADMIN}/{{adapter_id}}/pin", url + "/pin")
    return Case("admin", what.upper(), f"{ADMIN}/{{adapter_id}}", url)


def any_case(model: str):
    return st.one_of(
        mutated_cases(model), arbitrary_json_cases(), encoded_cases(model), deep_cases(model),
        number_cases(model), raw_cases(model), admin_cases(model),
    )


# ---- sending and judging -----------------------------------------------------------------


def send(client: httpx.Client, case: Case) -> Outcome:
    """Send `case`; a transport failure is an Outcome with status None, never an exception."""
    headers = {"content-type": case.content_type} if case.content_type else {}
    t0 = time.perf_counter()
    try:
        r = client.request(case.method, case.url, content=case.body, headers=headers)
        return Outcome(r.status_code, None, r.content, time.perf_counter() - t0)
    except httpx.TimeoutException:
        error = "timeout"
    except (httpx.ReadError, httpx.WriteError) as e:
        error = "reset" if "reset" in str(e).lower() else "closed"
    except httpx.RemoteProtocolError:  # the server closed the connection without an answer
        error = "closed"
    except httpx.TransportError:
        error = "transport"
    return Outcome(None, error, b"", time.perf_counter() - t0)


def _is_openai_error(data, status: int) -> bool:
    err = data.get("error") if isinstance(data, dict) else None
    return (
        isinstance(err, dict) and isinstance(err.get("message"), str) and isinstance(err.get("type"), str)
        and "param" in err and err.get("code") == status
    )


def _is_anthropic_error(data) -> bool:
    err = data.get("error") if isinstance(data, dict) else None
    return data.get("type") == "error" and isinstance(err, dict) and isinstance(err.get("message"), str)


def violations(case: Case, outcome: Outcome) -> list[str]:
    """What is wrong with the answer to `case` (empty: nothing)."""
    if outcome.status is None:
        return [f"no answer ({outcome.error})"]
    status = outcome.status
    if status >= 500 and (case.path, status) not in EXPECTED_5XX:
        return [f"status {status}: {outcome.body[:300]!r}"]
    if 400 <= status < 500:
        try:
            data = json.loads(outcome.body)
        except ValueError:
            return [f"status {status} with a body that is not JSON: {outcome.body[:300]!r}"]
        if not (_is_openai_error(data, status) or (case.path in ANTHROPIC_ROUTES and _is_anthropic_error(data))):
            return [f"status {status} without the OpenAI error JSON: {outcome.body[:300]!r}"]
    return []
