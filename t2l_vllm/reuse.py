"""Semantic reuse: serve a new description with an adapter made for one that means the same.

Two layers, cheapest first:

1. Canonical text (`canonical_text`): whitespace collapsed, trailing
   punctuation and wrapping quotes dropped, the first letter lowercased.
   "Reply with the plural of the noun." and "reply with the plural of the
   noun" are one key. Case elsewhere is kept: the suite has descriptions that
   differ only in case and mean opposite tasks ("Example: 'blue river' ->
   'BLUE RIVER'." / "Example: 'BLUE River' -> 'blue river'."). No model involved.
2. Nearest neighbour in the encoder's space (`ReuseIndex`): cosine similarity
   of L2-normalised description embeddings (the vectors the hypernetwork reads)
   against every adapter made so far, brute force ([N, d] x [d]). A hit needs
   cosine >= the threshold AND a clean lexical check (`lexical_conflict`):
   sentence encoders put opposites next to each other ("the smaller of two
   numbers" / "the larger of two numbers": cosine 0.93 with MiniLM) and score
   role swaps near 1 ("'France' -> 'Paris'" / "'Paris' -> 'France'": 0.998),
   so two descriptions whose differing words contain a pair of opposites, a
   negation, a direction or format word or a number, whose shared words come
   in another order, or that write a shared word in capitals on one side
   only, are never merged, however close.

The threshold and the word lists were chosen on the task suites with
`benchmarks/semantic_reuse.py` (rates per threshold in
benchmarks/results/semantic_reuse/). Pure torch + re; no side effects.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import torch

# Chosen with benchmarks/semantic_reuse.py: with the lexical check, no mirror pair of
# either suite is merged from 0.94 up (v1 from 0.91); 0.95 leaves a margin. It still
# merged 2 of 373,000 v1 different-task pairs, which is why --reuse defaults to "exact".
DEFAULT_REUSE_THRESHOLD = 0.95
# Library matches (serving/library.py) by raw cosine, for a checkpoint without a router
# (routing.py has the thresholds of routed matches): several descriptions per adapter, written by
# the people who trained it, checked for opposite words only (`opposite_conflict`).
# Chosen with benchmarks/library_eval.py (8 oracles, 5 of tasks the hypernetwork never
# saw): the lowest threshold swept at which no description of another task or of a
# library task's mirror went to a library adapter. 0.65 sends 14 of 31 held-out
# wordings of library tasks to their oracle (exact match 48.0 vs 17.3 generated) but
# 2 of 10 wordings of a library task's sibling to it (86.2 -> 67.5 there; README).
DEFAULT_LIBRARY_THRESHOLD = 0.80
# --reuse: off, canonical text only, or canonical text then nearest neighbour.
REUSE_MODES = ("off", "exact", "semantic")

_TRAILING = ".!?;:,…。 \t"
_QUOTES = "\"'`“”‘’«»"
_WORD = re.compile(r"[a-z]+|[0-9]+")

# Pairs of words that flip a task when one replaces the other. General English
# opposites and directions, not a list of the suite's families.
OPPOSITES: tuple[tuple[str, str], ...] = (
    ("smaller", "larger"), ("smaller", "bigger"), ("smallest", "largest"), ("smallest", "biggest"),
    ("small", "large"), ("small", "big"), ("less", "more"), ("lesser", "greater"), ("least", "most"),
    ("fewer", "more"), ("fewest", "most"), ("lower", "higher"), ("lowest", "highest"), ("low", "high"),
    ("min", "max"), ("minimum", "maximum"), ("shorter", "longer"), ("shortest", "longest"), ("short", "long"),
    ("before", "after"), ("previous", "next"), ("preceding", "following"), ("precedes", "follows"),
    ("earlier", "later"), ("earliest", "latest"), ("first", "last"), ("initial", "final"),
    ("beginning", "end"), ("start", "end"), ("starts", "ends"), ("prefix", "suffix"), ("leading", "trailing"),
    ("left", "right"), ("up", "down"), ("above", "below"), ("top", "bottom"), ("front", "back"),
    ("increase", "decrease"), ("increment", "decrement"), ("add", "subtract"), ("plus", "minus"),
    ("ascending", "descending"), ("forward", "backward"), ("forwards", "backwards"),
    ("encode", "decode"), ("encrypt", "decrypt"), ("compress", "decompress"), ("to", "from"),
    ("upper", "lower"), ("uppercase", "lowercase"), ("capital", "lowercase"), ("capitals", "lowercase"),
    ("positive", "negative"), ("true", "false"), ("yes", "no"), ("even", "odd"), ("vowel", "consonant"),
    ("vowels", "consonants"), ("include", "exclude"), ("keep", "remove"), ("add", "remove"),
    ("open", "close"), ("push", "pull"), ("buy", "sell"), ("win", "lose"), ("winner", "loser"),
    ("past", "future"), ("yesterday", "tomorrow"), ("older", "younger"), ("oldest", "youngest"),
    ("old", "new"), ("hot", "cold"), ("warmer", "colder"), ("fast", "slow"), ("faster", "slower"),
    ("cheap", "expensive"), ("cheaper", "dearer"), ("north", "south"), ("east", "west"),
    ("singular", "plural"), ("username", "domain"), ("sender", "recipient"), ("question", "answer"),
    ("snake", "camel"), ("kebab", "camel"), ("kebab", "snake"), ("celsius", "fahrenheit"),
    ("miles", "kilometers"), ("miles", "kilometres"), ("pounds", "kilograms"), ("inches", "centimeters"),
    ("buyer", "seller"), ("parent", "child"), ("input", "output"), ("a", "z"), ("floor", "ceil"),
    ("floor", "ceiling"), ("given", "family"), ("forename", "surname"), ("first", "surname"),
)
# A word on one side only that changes what a task does, whatever replaces it.
ONE_SIDED: frozenset[str] = frozenset({
    "not", "no", "never", "without", "except", "excluding", "un", "non", "reverse", "reversed", "reversing",
    "opposite", "inverse", "invert", "inverted", "backwards", "backward", "negate", "negated", "anti",
    "instead", "other", "second", "third", "fourth", "fifth", "penultimate", "middle", "every", "each",
    "odd", "even", "double", "half", "twice", "uppercase", "lowercase", "capital", "capitals", "caps",
    "json", "csv", "xml", "yaml", "markdown", "table", "bullet", "bullets", "list", "numbered", "brackets",
    "sentence", "words", "digits", "roman", "spelled", "spell", "quotes", "quoted", "prefix", "suffix",
    # positions and directions: which item, which way
    "first", "last", "final", "initial", "opening", "closing", "starts", "ends", "begins", "leading", "trailing",
    "before", "after", "next", "previous", "preceding", "following", "follows", "precedes", "above", "below",
    "up", "down", "left", "right", "back", "forward", "backward",
})
# Little words whose counts vary between paraphrases; every other shared word must occur
# as often on both sides (an example's output repeats a part of its input: "-> 'bob'" / "-> 'mail.org'").
STOPWORDS: frozenset[str] = frozenset({
    "the", "a", "an", "of", "to", "in", "on", "at", "and", "or", "is", "are", "it", "its", "with", "as", "for",
    "by", "be", "that", "this", "you", "your", "just", "only", "one", "s", "no", "nothing", "else", "answer",
    "reply", "give", "return", "output", "write", "result", "input", "given", "please",
})
_OPPOSITE_SET = frozenset(frozenset(p) for p in OPPOSITES)


def canonical_text(text: str) -> str:
    """The key of layer 1: NFKC, whitespace collapsed, trailing punctuation and wrapping quotes dropped,
    the first letter lowercased (a sentence start); all other case kept.

    Deliberately shallow: it only merges texts a reader would call the same
    sentence. Never empty for a non-empty description (falls back to the collapsed text).
    """
    folded = " ".join(unicodedata.normalize("NFKC", text).split())
    core = folded
    for _ in range(3):  # "'Answer yes or no.'" -> Answer yes or no
        core = core.strip(_QUOTES).rstrip(_TRAILING).strip()
    core = core or folded
    return core[:1].lower() + core[1:]


_CASED_WORD = re.compile(r"[A-Za-z]+|[0-9]+")


def words(text: str) -> list[str]:
    """Lowercase ASCII words and digit runs (accents folded), in order."""
    return [w.lower() for w in cased_words(text)]


def cased_words(text: str) -> list[str]:
    """ASCII words (case kept) and digit runs (accents folded), in order."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _CASED_WORD.findall(ascii_text)


def lexical_conflict(a: str, b: str) -> str | None:
    """Why `a` and `b` must not share an adapter, from the words that differ; None when nothing does.

    Blocks: an opposite pair split across the two sides ("smaller" / "larger"),
    a negation, direction or format word on one side only ("reverse
    alphabetical order"), digits on one side only (another position, count
    or example), the shared words in another order ("'France' -> 'Paris'" /
    "'Paris' -> 'France'", "DD/MM" / "MM/DD"), a shared word (not a STOPWORD)
    occurring more often on one side (an example whose output repeats another
    part of its input), or a shared word in capitals on one side only ("BLUE" / "blue").
    """
    ca, cb = cased_words(a), cased_words(b)
    la, lb = [w.lower() for w in ca], [w.lower() for w in cb]
    wa, wb = set(la), set(lb)
    only_a, only_b = wa - wb, wb - wa
    if (reason := opposite_conflict(a, b)) is not None:
        return reason
    for w in sorted(only_a | only_b):
        if w in ONE_SIDED:
            return f"{w!r} on one side only"
        if w.isdigit():
            return f"number {w!r} on one side only"
    shared = wa & wb
    fa, fb = [w for w in la if w in shared], [w for w in lb if w in shared]
    if sorted(fa) == sorted(fb) and fa != fb:  # the same words, reordered: roles swapped
        return "shared words in another order"
    for w in sorted(shared - STOPWORDS):
        if la.count(w) != lb.count(w):
            return f"{w!r} occurs {la.count(w)} / {lb.count(w)} times"
    once = {w for w in shared if la.count(w) == 1 and lb.count(w) == 1}
    if [w for w in la if w in once] != [w for w in lb if w in once]:
        return "shared words in another order"
    caps_a = {w.lower() for w in ca if len(w) > 1 and w.isupper()}
    caps_b = {w.lower() for w in cb if len(w) > 1 and w.isupper()}
    if (caps_a ^ caps_b) & wa & wb:
        return "a shared word in capitals on one side only"
    return None


def opposite_conflict(a: str, b: str) -> str | None:
    """The weaker check of library matches: only an opposite pair split across the two sides
    ("smaller" / "larger", "add" / "subtract"). Paraphrases written by different people differ in
    many other words, numbers and examples, which `lexical_conflict` rightly refuses for reuse."""
    wa, wb = set(words(a)), set(words(b))
    for x in wa - wb:
        for y in wb - wa:
            if frozenset((x, y)) in _OPPOSITE_SET:
                return f"opposites {x!r} / {y!r}"
    return None


@dataclass(frozen=True)
class ReuseMatch:
    """The adapter a description is served by instead of a new one."""

    adapter_id: str
    description: str  # the description that adapter was made from
    similarity: float  # cosine, rounded to 4 places; 1.0 for a canonical-text match
    kind: str  # "exact" (canonical text) or "semantic" (nearest neighbour)


class ReuseIndex:
    """Adapters by canonical text and by embedding; brute-force cosine lookup.

    Brute force: a lookup is one [N, d] x [d] product plus a top-k, measured
    in benchmarks/results/semantic_reuse/ at 1k/10k/100k entries (d = 384).
    Rows live in one preallocated float32 matrix that doubles when full;
    removal swaps the last row in, so the matrix stays dense.
    """

    def __init__(self, dim: int, threshold: float | None = DEFAULT_REUSE_THRESHOLD, top_k: int = 8,
                 conflict=lexical_conflict):
        """threshold: cosine for the semantic layer; None keeps canonical-text reuse only.
        conflict(new, indexed) -> reason or None: the lexical check a semantic match must pass."""
        if threshold is not None and not -1.0 <= threshold <= 1.0:
            raise ValueError(f"reuse threshold is a cosine similarity in [-1, 1], got {threshold}")
        if dim < 1 or top_k < 1:
            raise ValueError(f"dim and top_k must be >= 1, got {dim} and {top_k}")
        self.dim, self.threshold, self.top_k, self.conflict = dim, threshold, top_k, conflict
        self._emb = torch.zeros(64, dim)  # [capacity, dim], rows [0, n) in use, L2-normalised
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._row: dict[str, int] = {}
        self._canonical: dict[str, str] = {}  # canonical text -> adapter id
        self._descriptions: dict[str, str] = {}  # adapter id -> its description

    def __len__(self) -> int:
        return len(self._descriptions)

    def __contains__(self, adapter_id: str) -> bool:
        return adapter_id in self._descriptions

    @property
    def embedded(self) -> int:
        """Entries with an embedding (those the semantic layer can match)."""
        return len(self._ids)

    def add(self, adapter_id: str, description: str, embedding: torch.Tensor | None) -> None:
        """Index an adapter by its description (and its [dim] embedding, when known). Re-adding is a no-op."""
        if adapter_id in self._descriptions:
            return
        self._descriptions[adapter_id] = description
        self._canonical.setdefault(canonical_text(description), adapter_id)
        if embedding is None:
            return
        e = embedding.detach().reshape(-1).to("cpu", torch.float32)
        if e.numel() != self.dim:
            raise ValueError(f"expected a {self.dim}-d embedding, got {e.numel()} values")
        n = len(self._ids)
        if n == self._emb.shape[0]:
            self._emb = torch.cat([self._emb, torch.zeros_like(self._emb)])
        self._emb[n] = e / e.norm().clamp_min(1e-12)
        self._row[adapter_id] = n
        self._ids.append(adapter_id)
        self._texts.append(description)

    def remove(self, adapter_id: str) -> None:
        description = self._descriptions.pop(adapter_id, None)
        if description is not None and self._canonical.get(canonical_text(description)) == adapter_id:
            del self._canonical[canonical_text(description)]
        row = self._row.pop(adapter_id, None)
        if row is None:
            return
        last = len(self._ids) - 1
        if row != last:  # move the last row into the hole
            self._emb[row] = self._emb[last]
            self._ids[row], self._texts[row] = self._ids[last], self._texts[last]
            self._row[self._ids[row]] = row
        self._ids.pop()
        self._texts.pop()

    def exact(self, description: str) -> ReuseMatch | None:
        """Layer 1 only: an adapter whose description has the same canonical text."""
        aid = self._canonical.get(canonical_text(description))
        return None if aid is None else ReuseMatch(aid, self._descriptions[aid], 1.0, "exact")

    def nearest(self, embedding: torch.Tensor, k: int | None = None) -> list[tuple[str, str, float]]:
        """The k most similar indexed adapters: (id, description, cosine), best first."""
        n = len(self._ids)
        if n == 0:
            return []
        q = embedding.detach().reshape(-1).to("cpu", torch.float32)
        q = q / q.norm().clamp_min(1e-12)
        sims = self._emb[:n] @ q  # [n]
        top = torch.topk(sims, min(k or self.top_k, n))
        return [(self._ids[i], self._texts[i], float(s)) for s, i in zip(top.values.tolist(), top.indices.tolist())]

    def match(self, description: str, embedding: torch.Tensor | None) -> ReuseMatch | None:
        """The adapter to reuse for `description`, or None to make a new one.

        Canonical text first; then the nearest neighbours at or above the
        threshold, best first, skipping any that fail the lexical check.
        """
        hit = self.exact(description)
        if hit is not None or embedding is None or self.threshold is None:
            return hit
        for aid, text, sim in self.nearest(embedding):
            if sim < self.threshold:
                break
            if self.conflict(description, text) is None:
                return ReuseMatch(aid, text, round(sim, 4), "semantic")
        return None
