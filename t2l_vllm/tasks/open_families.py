"""Open-ended task families: answers of one or more sentences or structured text.

Where families.py teaches one-word answers, these teach the hypernetwork that a
description can ask for a whole sentence, a rewrite, a JSON object, a list or
a table, and that the description (not the input) states the constraint:

- rewrite: tense, person, register or sentence form named in the description;
- summary: a templated report summarised in one sentence of bounded length;
- label_classification: labels that differ per family, named in the description;
- json_extraction: several fields as one JSON object with the keys named;
- list_formatting / table_formatting: markdown bullet or numbered lists,
  markdown tables, CSV;
- phrase_translation: short sentences composed from bilingual tables with
  gender and number agreement;
- constrained_answer: factual questions answered in a full sentence, in
  exactly five words, as a bullet list, or in uppercase.

As in families.py, inputs are raw user messages (no instructions inside), the
target is fully determined by the input (a templated, correct answer), and
generators draw only from the `random.Random` they are given. Targets stay
under about 60 tokens so that prompt plus answer fits training's 128 tokens.
Every family here has `answer="open"`.
"""

from __future__ import annotations

import json
import random
from typing import Callable

from t2l_vllm.tasks import open_wordlists as ow
from t2l_vllm.tasks import wordlists as wl
from t2l_vllm.tasks.base import FamilyRegistry, TaskFamily

# ---------------------------------------------------------------- helpers


def _cap(text: str) -> str:
    """First character uppercased, the rest untouched."""
    return text[:1].upper() + text[1:]


def _join_and(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def _full_name(rng: random.Random) -> str:
    return f"{rng.choice(ow.FIRST_NAMES)} {rng.choice(ow.LAST_NAMES)}"


def _distinct(rng: random.Random, pool, k: int) -> list:
    return rng.sample(list(pool), k)


def _to_json(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -------------------------------------------------------------- rewriting

# (subject, takes the third person singular form of the verb)
_SUBJECTS: tuple[tuple[str, bool], ...] = (
    ("I", False), ("You", False), ("We", False), ("They", False), ("He", True), ("She", True),
)


def _subject(rng: random.Random) -> tuple[str, bool]:
    roll = rng.random()
    if roll < 0.25:
        return rng.choice(ow.FIRST_NAMES), True
    if roll < 0.35:
        return f"My {rng.choice(ow.RELATIVES)}", True
    return rng.choice(_SUBJECTS)


def _tense_generator(tense: str) -> Callable[[random.Random], tuple[str, str]]:
    """Present-tense habits -> the same sentences in the past or future tense."""

    def generate(rng: random.Random) -> tuple[str, str]:
        sources, targets = [], []
        for base, third, past, complement in _distinct(rng, ow.ACTIVITIES, rng.randint(1, 2)):
            subject, singular = _subject(rng)
            time = rng.choice(ow.HABIT_TIMES)
            sources.append(f"{subject} {third if singular else base} {complement} {time}.")
            verb = past if tense == "past" else f"will {base}"
            targets.append(f"{subject} {verb} {complement} {time}.")
        return " ".join(sources), " ".join(targets)

    return generate


def _gen_third_person(rng):
    sources, targets = [], []
    for template in rng.sample(range(4), 2):
        base, third, _, complement = rng.choice(ow.ACTIVITIES)
        relative, time = rng.choice(ow.RELATIVES), rng.choice(ow.HABIT_TIMES)
        if template == 0:
            sources.append(f"I {base} {complement} {time}.")
            targets.append(f"She {third} {complement} {time}.")
        elif template == 1:
            sources.append(f"My {relative} {third} {complement} {time}.")
            targets.append(f"Her {relative} {third} {complement} {time}.")
        elif template == 2:
            state = rng.choice(ow.STATES)
            sources.append(f"I am {state}.")
            targets.append(f"She is {state}.")
        else:
            sources.append(f"I {base} {complement} with my {relative}.")
            targets.append(f"She {third} {complement} with her {relative}.")
    return " ".join(sources), " ".join(targets)


def _register_generator(to_formal: bool) -> Callable[[random.Random], tuple[str, str]]:
    """A message in one register and the same message in the other."""

    def generate(rng: random.Random) -> tuple[str, str]:
        casual, formal = [], []
        for pair in _distinct(rng, ow.REGISTER_PAIRS, rng.randint(1, 2)):
            slots = {
                "name": rng.choice(ow.FIRST_NAMES), "day": rng.choice(wl.DAYS),
                "event": rng.choice(ow.EVENTS), "thing": rng.choice(ow.THINGS),
            }
            casual.append(pair[0].format(**slots))
            formal.append(pair[1].format(**slots))
        if len(formal) == 2 and len(formal[0]) + len(formal[1]) > 110:  # keep the answer short
            casual, formal = casual[:1], formal[:1]
        casual_text, formal_text = " ".join(casual), " ".join(formal)
        return (casual_text, formal_text) if to_formal else (formal_text, casual_text)

    return generate


def _gen_polite_request(rng):
    commands = _distinct(rng, ow.COMMANDS, rng.randint(1, 2))
    text = " ".join(_cap(c) + "." for c in commands)
    return text, f"Could you please {' and '.join(commands)}?"


def _gen_passive(rng):
    sources, targets = [], []
    for past, participle, obj, plural in _distinct(rng, ow.PASSIVE_ACTIONS, rng.randint(1, 2)):
        agent = rng.choice(ow.FIRST_NAMES) if rng.random() < 0.3 else rng.choice(ow.AGENTS)
        sources.append(f"{_cap(agent)} {past} {obj}.")
        targets.append(f"{_cap(obj)} {'were' if plural else 'was'} {participle} by {agent}.")
    return " ".join(sources), " ".join(targets)


# -------------------------------------------------------------- summaries


def _gen_weather(rng):
    city, day = rng.choice(ow.CITIES), rng.choice(wl.DAYS)
    morning, afternoon = rng.choice(ow.WEATHER_CONDITIONS), rng.choice(ow.WEATHER_CONDITIONS)
    t1 = rng.randint(3, 26)
    t2 = t1 + rng.randint(-3, 8)
    wind, direction, rain = rng.randint(5, 60), rng.choice(ow.WIND_DIRECTIONS), 5 * rng.randint(0, 20)
    if rng.random() < 0.5:
        text = (f"{city}, {day}. Morning: {morning}, {t1}C. Afternoon: {afternoon}, {t2}C. "
                f"Wind {wind} km/h {direction}. Rain {rain}%.")
    else:
        text = f"{city} weather, {day} - AM {morning} {t1}C, PM {afternoon} {t2}C, wind {direction} {wind} km/h, rain {rain}%."
    sky = f"{morning} all day" if morning == afternoon else f"{morning} turning {afternoon}"
    lo, hi = min(t1, t2), max(t1, t2)
    temps = f"{lo} degrees" if lo == hi else f"{lo} to {hi} degrees"
    return text, f"{day} in {city}: {sky}, {temps}, {rain}% chance of rain."


def _gen_sales(rng):
    store, k = rng.choice(ow.CITIES), rng.randint(3, 4)
    start = rng.randint(0, 12 - k)
    months = list(wl.MONTHS[start:start + k])
    units = rng.sample(range(20, 100), k)  # distinct, so the peak is unique
    if rng.random() < 0.5:
        text = f"{store} store, units sold. " + " ".join(f"{m}: {u}." for m, u in zip(months, units))
    else:
        text = f"Units sold at the {store} store - " + ", ".join(f"{m[:3]} {u}" for m, u in zip(months, units)) + "."
    trend = "rose" if units[-1] > units[0] else "fell"
    summary = f"Sales at the {store} store {trend} from {units[0]} in {months[0]} to {units[-1]} in {months[-1]}"
    peak = units.index(max(units))
    if 0 < peak < k - 1:
        summary += f", peaking at {units[peak]} in {months[peak]}"
    return text, summary + "."


def _gen_meeting(rng):
    people = _distinct(rng, ow.FIRST_NAMES, 3)
    day, deadline = rng.choice(wl.DAYS), rng.choice(wl.DAYS)
    decision = rng.choice(ow.DECISIONS).format(month=rng.choice(wl.MONTHS))
    owner, action = rng.choice(people), rng.choice(ow.ACTIONS)
    text = (f"Notes, {day}. Present: {', '.join(people)}. Decision: {decision}. "
            f"Action: {owner} to {action} by {deadline}.")
    return text, f"{_join_and(people)} agreed to {decision}; {owner} will {action} by {deadline}."


def _gen_review_scores(rng):
    product = rng.choice(ow.PRODUCTS)
    aspects = _distinct(rng, ow.REVIEW_ASPECTS, 4)
    scores = rng.sample(range(1, 6), 4)  # distinct, so best and worst are unique
    if rng.random() < 0.5:
        text = f"Review of the {product}. " + " ".join(f"{_cap(a)}: {s}/5." for a, s in zip(aspects, scores))
    else:
        text = f"{_cap(product)} review - " + ", ".join(f"{a} {s}/5" for a, s in zip(aspects, scores)) + "."
    best, worst = scores.index(max(scores)), scores.index(min(scores))
    return text, (f"The {product} scores best on {aspects[best]} ({scores[best]}/5) "
                  f"and worst on {aspects[worst]} ({scores[worst]}/5).")


def _gen_match(rng):
    home, away = _distinct(rng, ow.TEAMS, 2)
    h, a = rng.randint(0, 5), rng.randint(0, 5)
    crowd, player = f"{rng.randint(20, 600) * 100:,}", _full_name(rng)
    if rng.random() < 0.5:
        text = f"Final score: {home} {h}, {away} {a}. Attendance: {crowd}. Player of the match: {player}."
    else:
        text = f"{home} v {away}. Result {h}-{a}. Crowd {crowd}. Best player: {player}."
    if h == a:
        result = f"The {home} and the {away} drew {h}-{a}"
    else:
        (wt, wg), (lt, lg) = sorted(((home, h), (away, a)), key=lambda t: -t[1])
        result = f"The {wt} beat the {lt} {wg}-{lg}"
    return text, f"{result} before {crowd} fans; {player} was player of the match."


# --------------------------------------------------- label classification


def _fill(template: str, rng: random.Random) -> str:
    """Fill the slots a message template may use (unused slots are ignored)."""
    return template.format(
        day=rng.choice(wl.DAYS), month=rng.choice(wl.MONTHS), n=rng.randint(3, 95),
        thing=rng.choice(ow.THINGS), event=rng.choice(ow.EVENTS), hour=f"{rng.randint(9, 17)}:00",
        team=rng.choice(ow.TEAMS[:6]), team2=rng.choice(ow.TEAMS[6:]), a=rng.randint(1, 5),
        b=rng.randint(0, 4), city=rng.choice(ow.CITIES), topic=rng.choice(ow.HEADLINE_TOPICS),
        place=rng.choice(ow.HEADLINE_PLACES), space=rng.choice(ow.HEADLINE_SPACE),
        animals=rng.choice(ow.HEADLINE_ANIMALS), company=f"{rng.choice(ow.LAST_NAMES)} Group",
    )


def _label_generator(table: dict[str, tuple[str, ...]], greet: bool) -> Callable[[random.Random], tuple[str, str]]:
    labels = tuple(table)

    def generate(rng: random.Random) -> tuple[str, str]:
        label = rng.choice(labels)
        text = _fill(rng.choice(table[label]), rng)
        if greet and rng.random() < 0.5:
            text = f"{rng.choice(('Hi,', 'Hello,', 'Dear team,'))} {text} {rng.choice(ow.FIRST_NAMES)}"
        return text, label

    return generate


def _gen_review_aspect(rng):
    aspect = rng.choice(tuple(ow.REVIEW_ASPECT_PHRASES))
    subjects, positive, negative = ow.REVIEW_ASPECT_PHRASES[aspect]
    good = rng.random() < 0.5
    text = f"{rng.choice(subjects)} {rng.choice(positive if good else negative)}."
    if rng.random() < 0.5:
        text = f"Bought the {rng.choice(ow.PRODUCTS)} last {rng.choice(wl.DAYS)}. {text}"
    return text, f"{aspect}: {'positive' if good else 'negative'}"


# -------------------------------------------------------- JSON extraction


def _gen_contact_json(rng):
    first, last, firm = rng.choice(ow.FIRST_NAMES), rng.choice(ow.LAST_NAMES), rng.choice(ow.LAST_NAMES)
    name, company = f"{first} {last}", f"{firm} {rng.choice(ow.COMPANY_SUFFIXES)}"
    user = first.lower() if rng.random() < 0.5 else f"{first[0]}{last}".lower()
    email = f"{user}@{firm.lower()}.com"
    template = rng.choice((
        "Hi, I'm {n} from {c}. You can reach me at {e}.",
        "Contact {n} ({c}, {e}) about the keys.",
        "{n} | {c} | {e}",
        "Please write to {n} at {e} ({c}).",
        "New lead: {n}, {c}, email {e}.",
    ))
    text = template.format(n=name, c=company, e=email)
    return text, _to_json({"name": name, "company": company, "email": email})


def _gen_order_json(rng):
    order, qty, item = rng.randint(100, 999), rng.randint(1, 12), rng.choice(ow.ORDER_ITEMS)
    cents, city = rng.randint(99, 999), rng.choice(ow.CITIES)
    price = f"{cents // 100}.{cents % 100:02d}"
    template = rng.choice((
        "Order #{o}: {q} x {i} at ${p} each, ship to {c}.",
        "Send {q} units of the {i} to {c} (order {o}, ${p} each).",
        "Order {o} - {i}, quantity {q}, ${p} each, deliver to {c}.",
    ))
    text = template.format(o=order, q=qty, i=item, p=price, c=city)
    return text, _to_json({"order": order, "item": item, "quantity": qty, "price": cents / 100, "city": city})


def _gen_event_json(rng):
    event, venue = rng.choice(ow.EVENT_NAMES), rng.choice(ow.VENUES)
    date = f"{rng.choice(wl.DAYS)} {rng.randint(1, 28)} {rng.choice(wl.MONTHS)}"
    time = f"{rng.randint(8, 21):02d}:{rng.choice((0, 15, 30, 45)):02d}"
    template = rng.choice((
        "The {e} takes place on {d} at {t} in the {v}.",
        "Reminder: {e}, {d}, {t}, {v}.",
        "Join us for the {e} at {t} on {d}, in the {v}!",
        "{d}, {t}: {e} ({v}).",
    ))
    text = template.format(e=event, d=date, t=time, v=venue)
    text = _cap(text)
    return text, _to_json({"event": event, "date": date, "time": time, "place": venue})


def _gen_person_json(rng):
    name, age, city, job = _full_name(rng), rng.randint(18, 80), rng.choice(ow.CITIES), rng.choice(ow.JOBS)
    template = rng.choice((
        "{n}, {a}, lives in {c} and works as {art} {j}.",
        "Meet {n}: {art} {j} from {c}, aged {a}.",
        "{n} is {a} years old, works as {art} {j} and lives in {c}.",
    ))
    text = template.format(n=name, a=age, c=city, j=job, art=_article(job))
    return text, _to_json({"name": name, "age": age, "city": city, "job": job})


# ---------------------------------------------------- lists and tables


def _gen_bullets(rng):
    items = _distinct(rng, ow.GROCERIES, rng.randint(3, 5))
    opening, closing = rng.choice(ow.LIST_FRAMES)
    return f"{opening}{_join_and(items)}{closing}", _bullets(items)


def _gen_numbered_steps(rng):
    steps = rng.choice(ow.PROCEDURES)
    k = rng.randint(3, 4)
    start = rng.randint(0, len(steps) - k)
    chosen = list(steps[start:start + k])
    parts = [f"First {chosen[0]}"]
    parts += [f"{rng.choice(ow.STEP_CONNECTORS)} {s}" for s in chosen[1:-1]]
    parts.append(f"and finally {chosen[-1]}")
    return ", ".join(parts) + ".", "\n".join(f"{i}. {_cap(s)}" for i, s in enumerate(chosen, start=1))


def _gen_sorted_names(rng):
    names = [f"{first} {rng.choice(ow.LAST_NAMES)}" for first in _distinct(rng, ow.FIRST_NAMES, rng.randint(3, 5))]
    template = rng.choice((
        "Attendees: {l}.",
        "Today's speakers are {a}.",
        "Invited: {s}.",
        "On the committee: {l}.",
    ))
    text = template.format(l=", ".join(names), a=_join_and(names), s="; ".join(names))
    return text, _bullets(sorted(names))


def _gen_people_table(rng):
    names = _distinct(rng, ow.FIRST_NAMES, 2)
    rows, sentences = [], []
    for name in names:
        age, city = rng.randint(18, 80), rng.choice(ow.CITIES)
        sentences.append(rng.choice((
            "{n} is {a} and lives in {c}.", "{n}, aged {a}, lives in {c}.", "{n} ({a}) is based in {c}.",
        )).format(n=name, a=age, c=city))
        rows.append([name, str(age), city])
    return " ".join(sentences), _markdown_table(["Name", "Age", "City"], rows)


def _inventory(rng: random.Random) -> list[tuple[str, int, int]]:
    """(item, quantity, unit price in whole dollars) for two or three items."""
    return [(item, rng.randint(2, 60), rng.randint(1, 99))
            for item in _distinct(rng, ow.INVENTORY_ITEMS, rng.randint(2, 3))]


def _gen_inventory_csv(rng):
    stock = _inventory(rng)
    if rng.random() < 0.5:
        text = "We have " + _join_and([f"{q} {i} at ${p} each" for i, q, p in stock]) + "."
    else:
        text = "Stock check: " + ", ".join(f"{q} {i} (${p} each)" for i, q, p in stock) + "."
    return text, "\n".join(["item,quantity,price"] + [f"{i},{q},{p}" for i, q, p in stock])


def _gen_csv_to_table(rng):
    if rng.random() < 0.5:
        header = ["name", "city"]
        rows = [[n, rng.choice(ow.CITIES)] for n in _distinct(rng, ow.FIRST_NAMES, rng.randint(2, 3))]
    else:
        header = ["item", "quantity", "price"]
        rows = [[i, str(q), str(p)] for i, q, p in _inventory(rng)[:2]]
    text = "\n".join(",".join(r) for r in [header] + rows)
    return text, _markdown_table(header, rows)


# ---------------------------------------------------- phrase translation
# Noun phrases "the/a(n)/some + colour + noun" and three sentence frames, each
# rendered from the bilingual tables with agreement in gender and number.


def _en_np(noun: str, colour: str, definite: bool, plural: bool) -> str:
    word = ow.PHRASE_NOUNS[noun][0] if plural else noun
    det = "the" if definite else ("some" if plural else "a")
    return f"{det} {colour} {word}"


def _fr_np(noun: str, colour: str, definite: bool, plural: bool) -> str:
    gender, sg, pl = ow.PHRASE_NOUNS[noun][1]
    masc, fem = ow.PHRASE_COLOURS[colour][:2]
    adj = masc if gender == "m" else fem
    if plural:
        adj = adj if adj.endswith(("s", "x")) else adj + "s"
        return f"{'les' if definite else 'des'} {pl} {adj}"
    if not definite:
        return f"{'un' if gender == 'm' else 'une'} {sg} {adj}"
    if sg[0] in "aeiouéh":
        return f"l'{sg} {adj}"
    return f"{'le' if gender == 'm' else 'la'} {sg} {adj}"


def _es_np(noun: str, colour: str, definite: bool, plural: bool) -> str:
    gender, sg, pl = ow.PHRASE_NOUNS[noun][2]
    masc, fem = ow.PHRASE_COLOURS[colour][2:4]
    adj = masc if gender == "m" else fem
    if plural:
        adj = adj + ("s" if adj[-1] in "aeiou" else "es")
        det = ("los" if gender == "m" else "las") if definite else ("unos" if gender == "m" else "unas")
        return f"{det} {pl} {adj}"
    det = ("el" if gender == "m" else "la") if definite else ("un" if gender == "m" else "una")
    return f"{det} {sg} {adj}"


def _de_np(noun: str, colour: str, definite: bool, plural: bool) -> str:
    # Nominative only: weak endings after der/die/das, mixed after ein, strong without article.
    gender, sg, pl = ow.PHRASE_NOUNS[noun][3]
    stem = ow.PHRASE_COLOURS[colour][4]
    if plural:
        return f"die {stem}en {pl}" if definite else f"{stem}e {pl}"
    if definite:
        return f"{dict(m='der', f='die', n='das')[gender]} {stem}e {sg}"
    return f"{'eine' if gender == 'f' else 'ein'} {stem}{dict(m='er', f='e', n='es')[gender]} {sg}"


# frame -> language -> (singular, plural); {np} is the noun phrase.
_FRAMES: dict[str, dict[str, tuple[str, str]]] = {
    "here": {
        "en": ("Here is {np}.", "Here are {np}."),
        "fr": ("Voici {np}.", "Voici {np}."),
        "es": ("Aquí está {np}.", "Aquí están {np}."),
        "es-indef": ("Aquí hay {np}.", "Aquí hay {np}."),
        "de": ("Hier ist {np}.", "Hier sind {np}."),
    },
    "where": {
        "en": ("Where is {np}?", "Where are {np}?"),
        "fr": ("Où est {np} ?", "Où sont {np} ?"),
        "es": ("¿Dónde está {np}?", "¿Dónde están {np}?"),
        "de": ("Wo ist {np}?", "Wo sind {np}?"),
    },
    "is_here": {
        "en": ("{np} is here.", "{np} are here."),
        "fr": ("{np} est ici.", "{np} sont ici."),
        "es": ("{np} está aquí.", "{np} están aquí."),
        "de": ("{np} ist hier.", "{np} sind hier."),
    },
}
_NP = {"fr": _fr_np, "es": _es_np, "de": _de_np}


def _translation_generator(lang: str) -> Callable[[random.Random], tuple[str, str]]:
    def sentence(rng: random.Random) -> tuple[str, str]:
        noun, colour = rng.choice(tuple(ow.PHRASE_NOUNS)), rng.choice(tuple(ow.PHRASE_COLOURS))
        frame, plural = rng.choice(tuple(_FRAMES)), rng.random() < 0.4
        definite = frame != "here" or rng.random() < 0.5  # "where" / "is here" need a definite phrase
        key = "es-indef" if lang == "es" and not definite else lang
        en = _FRAMES[frame]["en"][plural].format(np=_en_np(noun, colour, definite, plural))
        out = _FRAMES[frame][key][plural].format(np=_NP[lang](noun, colour, definite, plural))
        return _cap(en), _cap(out)

    def generate(rng: random.Random) -> tuple[str, str]:
        pairs = [sentence(rng) for _ in range(rng.randint(1, 2))]
        return " ".join(p[0] for p in pairs), " ".join(p[1] for p in pairs)

    return generate


# ---------------------------------------------------- constrained answers

_THE_COUNTRIES = frozenset({"United Kingdom", "Czech Republic", "Philippines"})


def _country(name: str) -> str:
    return f"the {name}" if name in _THE_COUNTRIES else name


def _single_word(table: dict[str, str]) -> tuple[str, ...]:
    return tuple(k for k, v in table.items() if " " not in k and " " not in v and k not in _THE_COUNTRIES)


_ONE_WORD_COUNTRIES = _single_word(wl.COUNTRY_CAPITALS)
_ONE_WORD_ANIMALS = _single_word(wl.ANIMAL_CLASSES)


def _fact(rng: random.Random, one_word: bool) -> tuple[str, str, str]:
    """(question, full-sentence answer, five-word answer) about a capital, an animal or an element."""
    kind = rng.randrange(3)
    if kind == 0:
        country = rng.choice(_ONE_WORD_COUNTRIES if one_word else tuple(wl.COUNTRY_CAPITALS))
        capital, c = wl.COUNTRY_CAPITALS[country], _country(country)
        question = rng.choice(("What is the capital of {c}?", "Which city is the capital of {c}?")).format(c=c)
        return question, f"The capital of {c} is {capital}.", f"{country}'s capital city is {capital}."
    if kind == 1:
        animal = rng.choice(_ONE_WORD_ANIMALS)
        cls = wl.ANIMAL_CLASSES[animal]
        question = rng.choice(("What kind of animal is {an} {a}?", "Which animal class does the {a} belong to?"))
        question = question.format(a=animal, an=_article(animal))
        answer = f"The {animal} is {_article(cls)} {cls}."
        return question, answer, answer
    element = rng.choice(tuple(wl.CHEMICAL_SYMBOLS))
    symbol, el = wl.CHEMICAL_SYMBOLS[element], element.lower()
    question = rng.choice(("What is the chemical symbol of {e}?", "Which symbol stands for {e}?")).format(e=el)
    return question, f"The chemical symbol of {el} is {symbol}.", f"{element}'s chemical symbol is {symbol}."


def _gen_full_sentence(rng):
    question, answer, _ = _fact(rng, one_word=False)
    return question, answer


def _gen_uppercase_answer(rng):
    question, answer, _ = _fact(rng, one_word=False)
    return question, answer.upper()


def _gen_five_words(rng):
    question, _, answer = _fact(rng, one_word=True)
    return question, answer


def _gen_bullet_answer(rng):
    k, kind = rng.randint(2, 4), rng.randrange(3)
    if kind == 0:
        keys = _distinct(rng, _ONE_WORD_COUNTRIES, k)
        return (f"What are the capitals of {_join_and(keys)}?",
                _bullets([f"{c}: {wl.COUNTRY_CAPITALS[c]}" for c in keys]))
    if kind == 1:
        keys = _distinct(rng, _ONE_WORD_ANIMALS, k)
        return (f"Which animal classes do the {_join_and(keys)} belong to?",
                _bullets([f"{a}: {wl.ANIMAL_CLASSES[a]}" for a in keys]))
    keys = [e.lower() for e in _distinct(rng, wl.CHEMICAL_SYMBOLS, k)]
    return (f"What are the chemical symbols of {_join_and(keys)}?",
            _bullets([f"{e}: {wl.CHEMICAL_SYMBOLS[e.capitalize()]}" for e in keys]))


# ------------------------------------------------------------ descriptions
# As in families.py, the last two descriptions of a training family are its
# held-out descriptions, so they are written to differ in style.

_REGISTRY = FamilyRegistry("open")
_spec = _REGISTRY.spec


# --- rewrite

_spec(
    "rewrite_past_tense", "rewrite", _tense_generator("past"),
    "Rewrite the text in the past tense.",
    "Change every verb from the present to the simple past, keeping everything else the same.",
    "You will get one or two sentences in the present tense. Reply with the same sentences in the past tense.",
    "Past tense, please.",
    "Put these sentences into the simple past.",
    "Example: 'She walks to the station every morning.' -> 'She walked to the station every morning.'",
    "Turn the present-tense habits into things that happened in the past; do not add or drop any words other than the verbs.",
    "Convert to past tense.",
    "Your task: retell the sentences as if they were all in the past, changing only the verb forms (go -> went, buys -> bought).",
    "Shift the tense backwards. For instance 'They eat breakfast on Sundays.' becomes 'They ate breakfast on Sundays.'",
)

_spec(
    "rewrite_future_tense", "rewrite", _tense_generator("future"),
    "Rewrite the text in the future tense with 'will'.",
    "Change every verb from the present to the future, using will plus the base form.",
    "You will get one or two sentences in the present tense. Reply with the same sentences in the future tense.",
    "Future tense, please.",
    "Put these sentences into the future with will.",
    "Example: 'She walks to the station every morning.' -> 'She will walk to the station every morning.'",
    "Turn the present-tense habits into plans for the future; keep every other word as it is.",
    "Convert to future tense.",
    "Your task: make each sentence talk about the future by writing 'will' before the base verb (goes -> will go).",
    "Shift the tense forwards. For instance 'They eat breakfast on Sundays.' becomes 'They will eat breakfast on Sundays.'",
)

_spec(
    "rewrite_third_person", "rewrite", _gen_third_person,
    "Rewrite the text in the third person, using 'she' instead of 'I'.",
    "Change the first-person text so that it is about a woman: I -> she, my -> her, am -> is, and fix the verbs.",
    "You will read two sentences someone wrote about herself. Reply with the same sentences told about her in the third person.",
    "First person to third person (she).",
    "Retell this as if describing her: replace I with She and my with her.",
    "Example: 'I am tired today. My sister plays the piano on Sundays.' -> 'She is tired today. Her sister plays the piano on Sundays.'",
    "Switch the point of view from I to she, making the verbs agree (I walk -> she walks).",
    "Third-person rewrite with she/her.",
    "Your job: you are a biographer. Take the first-person sentences and write them about her, changing only pronouns and verb forms.",
    "Narrate it about her. For instance 'I bake bread with my uncle.' becomes 'She bakes bread with her uncle.'",
)

_spec(
    "rewrite_formal", "rewrite", _register_generator(to_formal=True),
    "Rewrite the casual message in a formal tone.",
    "Make the message formal: no slang, no contractions, full sentences with proper capitals.",
    "You will see a chatty, informal note. Reply with a polite, formal version that says the same thing.",
    "Casual -> formal.",
    "Turn this informal text into professional business English (hey -> Hello, thanks -> Thank you, can't -> I am unable to).",
    "Example: 'wanna grab lunch on Friday?' -> 'Would you like to have lunch on Friday?'",
    "Rephrase the message so it could be sent to a senior manager: formal words, expanded contractions.",
    "Formalise the wording.",
    "Your task: rewrite the text message in a courteous, formal register, keeping names, days and items unchanged.",
    "Make it sound professional. For instance 'btw the invoice is on my desk.' becomes 'By the way, the invoice is on my desk.'",
)

_spec(
    "rewrite_casual", "rewrite", _register_generator(to_formal=False),
    "Rewrite the formal message in a casual, chatty tone.",
    "Make the message informal: use contractions and everyday slang like gonna, wanna, btw, tbh, asap.",
    "You will see a polite, formal note. Reply with a relaxed, lowercase text-message version that says the same thing.",
    "Formal -> casual.",
    "Turn this professional text into a friendly chat message (Hello -> hey, Thank you -> thanks, I am unable to -> can't).",
    "Example: 'Would you like to have lunch on Friday?' -> 'wanna grab lunch on Friday?'",
    "Rephrase the message as you would text a close friend: short, informal, with contractions.",
    "Make it casual.",
    "Your task: rewrite the formal text in a laid-back register, keeping names, days and items unchanged.",
    "Loosen up the tone. For instance 'By the way, the invoice is on my desk.' becomes 'btw the invoice is on my desk.'",
)

_spec(
    "polite_request", "rewrite", _gen_polite_request,
    "Turn the command into a polite request that starts with 'Could you please' and ends with a question mark.",
    "Rewrite the orders as one polite question beginning with Could you please.",
    "You will see one or two blunt instructions. Reply with a single courteous request: 'Could you please ... and ...?'",
    "Imperative -> polite request.",
    "Make it polite: Could you please + the instruction in lowercase + ?",
    "Example: 'Close the window. Feed the dog at six.' -> 'Could you please close the window and feed the dog at six?'",
    "Soften the commands into one question, joining two of them with 'and'.",
    "Politely ask instead of ordering.",
    "Your task: you are an assistant with good manners; rephrase the bossy message as a single 'Could you please' question.",
    "Ask nicely. For instance 'Book a table for four.' becomes 'Could you please book a table for four?'",
)

_spec(
    "passive_voice", "rewrite", _gen_passive,
    "Rewrite each sentence in the passive voice.",
    "Convert active sentences to passive: the object becomes the subject, followed by was/were, the past participle and 'by' the doer.",
    "You will read one or two past-tense sentences. Reply with each one turned into the passive voice.",
    "Active -> passive.",
    "Put the sentences in the passive, keeping the agent with 'by'.",
    "Example: 'The chef cooked the soup.' -> 'The soup was cooked by the chef.'",
    "Make the thing acted upon the subject of every sentence and use was or were to agree with it.",
    "Passive voice rewrite.",
    "Your task: for each sentence, move the object to the front, use the past participle, and end with by plus whoever did it.",
    "Flip it to passive. For instance 'The children washed the dishes.' becomes 'The dishes were washed by the children.'",
)

# --- summary

_spec(
    "summarize_weather", "summary", _gen_weather,
    "Summarise the weather forecast in one sentence of at most 20 words.",
    "Give a one-line summary of the forecast: day, city, sky, temperature range and chance of rain (leave the wind out).",
    "Reply to the weather report with one sentence like 'Tuesday in Oslo: sunny turning cloudy, 4 to 9 degrees, 9% chance of rain.'",
    "Forecast summary, one sentence.",
    "Condense the forecast to '<day> in <city>: <sky> turning <sky>, <low> to <high> degrees, <n>% chance of rain.'",
    "Example output: 'Monday in Lima: foggy turning sunny, 15 to 19 degrees, 5% chance of rain.' Summarise the report like that.",
    "In under twenty words, what will the weather be like? Follow the format day in city: sky, temperatures, rain chance.",
    "Short weather summary, no wind.",
    "Your task: a listener wants the forecast in one breath. Write one sentence with the sky, the temperature range and the rain chance.",
    "Boil the report down to a single sentence. If the sky does not change, say for example 'rainy all day'.",
)

_spec(
    "summarize_sales", "summary", _gen_sales,
    "Summarise the monthly sales figures in one sentence.",
    "Write one sentence saying whether sales rose or fell from the first to the last month, with both figures and months, and the peak if it falls in between.",
    "You will read units sold per month for one store. Reply with a one-sentence trend summary.",
    "Sales trend in one sentence.",
    "Form: 'Sales at the <store> store rose (or fell) from <n> in <month> to <n> in <month>', plus any mid-period peak.",
    "Example output: 'Sales at the Oslo store rose from 12 in March to 15 in May, peaking at 19 in April.'",
    "Summarise the store's sales in at most 25 words, giving the direction of change and the high point when it is a middle month.",
    "One-line sales recap.",
    "Your task: a manager has ten seconds. Tell them in one sentence how the store's sales moved over the months listed.",
    "Turn the monthly numbers into a single summary sentence, with month names written in full.",
)

_spec(
    "summarize_meeting", "summary", _gen_meeting,
    "Summarise the meeting notes in one sentence.",
    "Write one sentence naming who was present, what they agreed, and who will do what by when.",
    "You will read short meeting notes. Reply with a single-sentence summary of the decision and the action item.",
    "Meeting notes -> one sentence.",
    "Condense the notes to '<names> agreed to <decision>; <owner> will <action> by <day>.'",
    "Example output: 'Ann, Raj and Li agreed to hire two more testers; Raj will book the venue by Friday.'",
    "In a single sentence of under 35 words, report the decision and the follow-up from these minutes.",
    "Minutes in one line.",
    "Your task: someone missed the meeting. Tell them in one sentence who decided what, and who owes which task by which day.",
    "Summarise the minutes briefly, leaving out the meeting day but keeping the deadline.",
)

_spec(
    "summarize_review_scores", "summary", _gen_review_scores,
    "Summarise the product review scores in one sentence naming the best and worst aspect.",
    "Write one sentence saying which aspect of the product scored highest and which scored lowest, with their scores out of 5.",
    "You will see a product's scores for four aspects. Reply with a one-sentence summary of its strongest and weakest point.",
    "Best and worst aspect, one sentence.",
    "Condense the scores to 'The <product> scores best on <aspect> (<n>/5) and worst on <aspect> (<n>/5).'",
    "Example output: 'The tent scores best on design (5/5) and worst on price (2/5).'",
    "Sum up the review in under twenty words: the top-rated and bottom-rated aspects only.",
    "Review scores recap.",
    "Your task: a shopper wants the gist. In one sentence, tell them where the product shines and where it falls short, with scores.",
    "Give the highlight and the low point of these ratings in a single sentence, aspect names in lowercase.",
)

_spec(
    "summarize_match_report", "summary", _gen_match,
    "Summarise the match report in one sentence.",
    "Write one sentence with the result, the crowd size and the player of the match.",
    "You will read a football result with attendance and the best player. Reply with a single-sentence match summary.",
    "Match report in one sentence.",
    "Condense the report to 'The <winner> beat the <loser> <score> before <crowd> fans; <player> was player of the match.'",
    "Example output: 'The Bears beat the Lions 3-1 before 8,200 fans; Amy Cole was player of the match.'",
    "Summarise the game in at most 25 words; for a draw write 'The X and the Y drew 2-2'.",
    "One-line match recap.",
    "Your task: you write the sports ticker. Turn the raw result into one sentence with the winner first.",
    "Report who won, by how much, before how many fans, and who starred, all in one sentence.",
)

# --- label classification

_spec(
    "ticket_category", "label_classification", _label_generator(ow.TICKETS, greet=True),
    "Classify the support ticket as billing, technical, shipping or account.",
    "Route the customer message to one of four queues: billing, technical, shipping, account. Answer with the queue name only.",
    "You will read a support ticket. Reply billing (charges, refunds), technical (errors, crashes), shipping (deliveries) or account (login, profile).",
    "Ticket category: billing / technical / shipping / account.",
    "Which team should handle this ticket? Choose from billing, technical, shipping and account, in lowercase.",
    "Labels: billing, technical, shipping, account. Example: 'The box arrived damaged.' -> 'shipping'.",
    "Label the support request with exactly one of these words: billing, technical, shipping, account.",
    "Triage: billing, technical, shipping or account?",
    "Your job is help-desk triage. Read the complaint and answer with billing, technical, shipping or account, nothing else.",
    "Sort the ticket into a bucket (billing, technical, shipping, account). For instance 'How do I delete my account?' is 'account'.",
)

_spec(
    "email_intent", "label_classification", _label_generator(ow.EMAIL_INTENTS, greet=False),
    "Classify the email by intent: schedule, payment, complaint or thanks.",
    "What does the sender want? Answer schedule (a time), payment (money), complaint (unhappy) or thanks (gratitude).",
    "You will read one line from an email. Reply with its intent label: schedule, payment, complaint or thanks.",
    "Email intent: schedule / payment / complaint / thanks.",
    "Tag the message with one lowercase label from this set: schedule, payment, complaint, thanks.",
    "Labels: schedule, payment, complaint, thanks. Example: 'We have not received your payment.' -> 'payment'.",
    "Decide whether the email is about scheduling, a payment, a complaint or saying thanks, and answer with schedule, payment, complaint or thanks.",
    "Intent label (schedule, payment, complaint, thanks).",
    "Your task: you sort an inbox into four folders named schedule, payment, complaint and thanks. Name the folder for this email.",
    "Which of schedule, payment, complaint, thanks fits the email? For instance 'Are you free for a short call on Monday morning?' is 'schedule'.",
)

_spec(
    "review_aspect", "label_classification", _gen_review_aspect,
    "Say which aspect the review is about (price, quality, delivery or service) and whether it is positive or negative, as 'aspect: sentiment'.",
    "Aspect-based sentiment: answer '<aspect>: <positive|negative>' with aspect one of price, quality, delivery, service.",
    "You will read a short review. Reply with its aspect (price, quality, delivery, service), a colon, and its sentiment (positive or negative).",
    "Aspect (price/quality/delivery/service) and sentiment (positive/negative), e.g. 'delivery: negative'.",
    "Label the review with its topic from price / quality / delivery / service and its polarity from positive / negative, separated by ': '.",
    "Aspects: price, quality, delivery, service; sentiments: positive, negative. Example: 'The staff never replied.' -> 'service: negative'.",
    "Which part (price, quality, delivery or service) does the reviewer comment on, positive or negative? Answer like 'price: positive'.",
    "Review aspect (price, quality, delivery, service) plus polarity (positive, negative).",
    "Your task: classify the comment twice, once into price, quality, delivery or service and once into positive or negative, and write both as aspect: sentiment.",
    "Tag the review's aspect (price, quality, delivery, service) and tone (positive, negative). For instance 'The stitching fell apart.' gives 'quality: negative'.",
)

_spec(
    "news_topic", "label_classification", _label_generator(ow.HEADLINES, greet=False),
    "Classify the news headline as sports, politics, science or business.",
    "Which section of the newspaper does this headline belong in? Answer sports, politics, science or business.",
    "You will read a news headline. Reply with its topic label: sports, politics, science or business.",
    "Headline topic: sports / politics / science / business.",
    "Tag the headline with one lowercase label from this set: sports, politics, science, business.",
    "Sections: sports, politics, science, business. Example: 'Parliament votes on new housing law' -> 'politics'.",
    "Decide whether the headline is about sport, government, research or companies and markets, and answer sports, politics, science or business.",
    "News section (sports, politics, science, business).",
    "Your task: you are a news editor filing stories into four sections named sports, politics, science and business. Name the section for this headline.",
    "Which of sports, politics, science, business fits? For instance 'Telescope captures images of a distant comet' is 'science'.",
)

# --- JSON extraction

_spec(
    "extract_contact_json", "json_extraction", _gen_contact_json,
    "Extract the name, company and email as JSON with keys name, company, email.",
    "Return a JSON object {\"name\": ..., \"company\": ..., \"email\": ...} with the contact details found in the text.",
    "You will read a message with someone's contact details. Reply with one line of JSON with the keys name, company and email, in that order.",
    "Contact details -> JSON (name, company, email).",
    "Pull the person's full name, their company and their email address out of the text and output them as a JSON object.",
    "Example output: {\"name\": \"Ann Lee\", \"company\": \"Cole Inc\", \"email\": \"ann@cole.com\"}",
    "Parse the contact info into JSON: name, then company, then email, all as strings.",
    "JSON contact card: name, company, email.",
    "Your task: fill in a contact record for our CRM. Answer with JSON only, keys name, company and email.",
    "Structured extraction of who to contact, where they work and how to write to them, as JSON with the string fields name, company and email.",
)

_spec(
    "extract_order_json", "json_extraction", _gen_order_json,
    "Extract the order as JSON with keys order, item, quantity, price and city.",
    "Return a JSON object with the order number (an integer), item name, quantity (an integer), unit price (number) and destination city.",
    "You will read an order message. Reply with one line of JSON: order, item, quantity, price, city.",
    "Order -> JSON (order, item, quantity, price, city).",
    "Pull the order, item, quantity, price and city out of the text as JSON, numbers as JSON numbers, no dollar sign.",
    "Example output: {\"order\": 12, \"item\": \"mug\", \"quantity\": 2, \"price\": 9.5, \"city\": \"Rome\"}",
    "Parse the purchase order into JSON with the keys order, item, quantity, price and city, in that order.",
    "JSON order record with order, item, quantity, price, city.",
    "Your task: the warehouse system only reads JSON. Convert the order message into an object with order, item, quantity, price and city.",
    "Structured extraction of an order as JSON: keys order (the id), item, quantity, price (per unit) and city.",
)

_spec(
    "extract_event_json", "json_extraction", _gen_event_json,
    "Extract the event details as JSON with keys event, date, time and place.",
    "Return a JSON object {\"event\": ..., \"date\": ..., \"time\": ..., \"place\": ...} describing the event in the text.",
    "You will read an event announcement. Reply with one line of JSON with the keys event, date, time and place.",
    "Event -> JSON (event, date, time, place).",
    "Pull the event name, its date (weekday, day, month), 24-hour time and place out of the text as JSON.",
    "Example output: {\"event\": \"quiz night\", \"date\": \"Friday 3 May\", \"time\": \"19:30\", \"place\": \"Town Hall\"}",
    "Parse the announcement into JSON: event, date, time, place, all strings, the venue without 'the'.",
    "JSON calendar entry (event, date, time, place).",
    "Your task: add this to a calendar app that takes JSON. Output an object with event, date, time and place.",
    "Structured extraction of what happens, when and where, as JSON with the string fields event, date, time and place.",
)

_spec(
    "extract_person_json", "json_extraction", _gen_person_json,
    "Extract the person's details as JSON with keys name, age, city and job.",
    "Return a JSON object {\"name\": ..., \"age\": ..., \"city\": ..., \"job\": ...} with age as a number.",
    "You will read a short description of a person. Reply with one line of JSON with the keys name, age, city and job.",
    "Person -> JSON (name, age, city, job).",
    "Pull the full name, age, home city and job title out of the text and output them as a JSON object.",
    "Example output: {\"name\": \"Ann Lee\", \"age\": 41, \"city\": \"Oslo\", \"job\": \"architect\"}",
    "Parse the profile into JSON: name, age (integer), city, job (without 'a' or 'an').",
    "JSON person record: name, age, city, job.",
    "Your task: fill in an HR record. Answer with JSON only, keys name, age, city and job.",
    "Structured extraction of who the person is, how old, where they live and what they do, as JSON keys name, age, city, job.",
)

# --- list formatting

_spec(
    "items_to_bullets", "list_formatting", _gen_bullets,
    "List the items mentioned in the text as a markdown bullet list.",
    "Turn the sentence into a bulleted list: one item per line, each starting with '- ', in the order they appear.",
    "You will read a sentence naming several things to buy or bring. Reply with a markdown list of those items only.",
    "Items -> bullet list.",
    "Extract every item and write it on its own line after a dash and a space; no other text.",
    "Example: 'We ran out of eggs, milk and sugar.' -> '- eggs\\n- milk\\n- sugar'",
    "Make a markdown bullet list of the things named, keeping their wording and order.",
    "Bullet the items.",
    "Your task: someone will tick these off on their phone. Rewrite the sentence as a '- ' list with one item per line.",
    "Convert the inline list to bullets. For instance 'Don't forget to buy bread and cheese.' gives two lines, '- bread' and '- cheese'.",
)

_spec(
    "steps_to_numbered_list", "list_formatting", _gen_numbered_steps,
    "Rewrite the instructions as a numbered list of steps.",
    "Turn the sentence into a numbered markdown list: '1. ', '2. ', ... one step per line, each starting with a capital letter.",
    "You will read instructions written as one sentence (first..., then..., finally...). Reply with the steps as a numbered list.",
    "Steps -> numbered list.",
    "Split the procedure into its steps and number them in order, dropping words like first, then, after that and finally.",
    "Example: 'First boil water, then add tea, and finally pour.' -> '1. Boil water\\n2. Add tea\\n3. Pour'",
    "Make a numbered list of the actions in the sentence, without full stops at the ends of the lines.",
    "Number the steps.",
    "Your task: turn the run-on instructions into a clear recipe-style numbered list, one action per line.",
    "Format the how-to as numbered lines. For instance 'First clear the desk, then wipe it.' gives '1. Clear the desk' and '2. Wipe it'.",
)

_spec(
    "names_to_sorted_bullets", "list_formatting", _gen_sorted_names,
    "List the people mentioned as a markdown bullet list sorted alphabetically.",
    "Turn the names into a bulleted list, one per line starting with '- ', in alphabetical order by first name.",
    "You will read a line naming several people. Reply with a markdown list of their full names, sorted A to Z.",
    "Names -> sorted bullet list.",
    "Extract every person's full name and write them one per line after a dash, alphabetically.",
    "Example: 'Attendees: Zoe King, Adam Hall.' -> '- Adam Hall\\n- Zoe King'",
    "Make an alphabetised markdown bullet list of the people named.",
    "Alphabetical bullets of names.",
    "Your task: print a tidy guest list. Rewrite the names as '- ' lines in alphabetical order.",
    "Sort the names from A to Z and bullet them. For instance 'Invited: Tom Reed; Ana Diaz.' gives two lines, Ana first.",
)

# --- table formatting

_spec(
    "records_to_markdown_table", "table_formatting", _gen_people_table,
    "Put the people's details into a markdown table with columns Name, Age and City.",
    "Turn the sentences into a markdown table: header '| Name | Age | City |', a '|---|---|---|' line, then one row per person.",
    "You will read a few sentences about people's ages and cities. Reply with a markdown table with the columns Name, Age and City.",
    "People -> markdown table (Name, Age, City).",
    "Tabulate who is how old and lives where, as a pipe-delimited markdown table with the header Name, Age, City.",
    "Example row: '| Ann | 30 | Oslo |', under the header '| Name | Age | City |' and a '|---|---|---|' line.",
    "Make a three-column markdown table (Name, Age, City) with one row for each person mentioned.",
    "Markdown table of the people: Name | Age | City.",
    "Your task: the wiki only shows tables. Convert the text into a markdown table with Name, Age and City columns.",
    "Structure the details as a markdown table (Name, Age, City), keeping the people in the order they appear.",
)

_spec(
    "records_to_csv", "table_formatting", _gen_inventory_csv,
    "Convert the stock information into CSV with the header item,quantity,price.",
    "Turn the text into comma-separated values: a header line item,quantity,price and then one line per item, no spaces.",
    "You will read a sentence about items in stock with their quantities and prices. Reply with CSV: item,quantity,price.",
    "Stock -> CSV (item, quantity, price).",
    "Write the inventory as CSV rows of item,quantity,price, with no dollar sign, in the order mentioned.",
    "Example: 'We have 12 lamps at $4 each.' -> 'item,quantity,price\\nlamps,12,4'",
    "Make a CSV file's contents from the sentence, one item per line after the header row item,quantity,price.",
    "CSV of the stock (item,quantity,price).",
    "Your task: the spreadsheet import needs CSV. Turn the stock sentence into lines of item,quantity,price.",
    "Structure the inventory as comma-separated lines under the header item,quantity,price, item names plural as written.",
)

_spec(
    "csv_to_markdown_table", "table_formatting", _gen_csv_to_table,
    "Convert the CSV into a markdown table.",
    "Turn the comma-separated lines into a markdown table: the first line is the header, then a '|---|' separator, then the rows.",
    "You will see a few lines of CSV. Reply with the same data as a pipe-delimited markdown table.",
    "CSV -> markdown table.",
    "Render the CSV as a markdown table, keeping the header names and the cell values exactly as they are.",
    "Example: 'name,city\\nAnn,Oslo' -> '| name | city |', '|---|---|', '| Ann | Oslo |'",
    "Make a markdown table out of the comma-separated data, one table row per CSV line.",
    "Markdown table from CSV.",
    "Your task: the chat only renders markdown. Reformat the CSV as a table with a header row and a separator.",
    "Structure the comma-separated values as a markdown table, with '| ' at the start of each row and ' |' at the end.",
)

# --- phrase translation

_spec(
    "phrase_to_french", "phrase_translation", _translation_generator("fr"),
    "Translate the sentences into French.",
    "English to French, sentence by sentence; make the article and the colour agree with the noun's gender and number.",
    "You will see one or two short English sentences about coloured objects. Reply with their French translation.",
    "French translation, please.",
    "Render the English in French: the -> le/la/les, a -> un/une, some -> des, with the colour after the noun.",
    "Example: 'Where are the white cars?' -> 'Où sont les voitures blanches ?'",
    "Translate into French, keeping a space before the question mark as French typography does.",
    "In French?",
    "Your task: act as an English-French phrasebook and give the French for each sentence, with correct agreement.",
    "Say it in French. For instance 'Here is a green hat.' becomes 'Voici un chapeau vert.'",
)

_spec(
    "phrase_to_spanish", "phrase_translation", _translation_generator("es"),
    "Translate the sentences into Spanish.",
    "English to Spanish, sentence by sentence; make the article and the colour agree with the noun's gender and number.",
    "You will see one or two short English sentences about coloured objects. Reply with their Spanish translation.",
    "Spanish translation, please.",
    "Render the English in Spanish: the -> el/la/los/las, a -> un/una, some -> unos/unas, colour after the noun.",
    "Example: 'Where are the white cars?' -> '¿Dónde están los coches blancos?'",
    "Translate into Spanish, opening every question with an inverted question mark.",
    "In Spanish?",
    "Your task: act as an English-Spanish phrasebook and give the Spanish for each sentence, with correct agreement.",
    "Say it in Spanish. For instance 'Here is a green hat.' becomes 'Aquí hay un sombrero verde.'",
)

_spec(
    "phrase_to_german", "phrase_translation", _translation_generator("de"),
    "Translate the sentences into German.",
    "English to German, sentence by sentence; decline the article and the colour for the noun's gender and number.",
    "You will see one or two short English sentences about coloured objects. Reply with their German translation.",
    "German translation, please.",
    "Render the English in German: the -> der/die/das/die, a -> ein/eine, some -> no article, colour before the noun.",
    "Example: 'Where are the white cars?' -> 'Wo sind die weißen Autos?'",
    "Translate into German, capitalising every noun.",
    "In German?",
    "Your task: act as an English-German phrasebook and give the German for each sentence, with the right adjective endings.",
    "Say it in German. For instance 'Here is a green hat.' becomes 'Hier ist ein grüner Hut.'",
)

# --- constrained answers

_spec(
    "answer_full_sentence", "constrained_answer", _gen_full_sentence,
    "Answer the question in one complete sentence.",
    "Reply with a full sentence that repeats the question's subject, not just the bare answer.",
    "You will be asked a factual question about a capital, an animal or a chemical element. Answer with one whole sentence ending in a full stop.",
    "Full-sentence answers only.",
    "Give the answer as a complete sentence, e.g. 'The capital of X is Y.'",
    "Example: 'What is the chemical symbol of iron?' -> 'The chemical symbol of iron is Fe.'",
    "Respond in a single declarative sentence that contains the answer.",
    "Answer in a sentence.",
    "Your task: you are a quiz host who always answers in full sentences. Answer the question in one sentence.",
    "Write out the answer as a sentence. For instance 'What kind of animal is a frog?' gives 'The frog is an amphibian.'",
)

_spec(
    "answer_in_five_words", "constrained_answer", _gen_five_words,
    "Answer the question in exactly five words.",
    "Reply with a sentence of exactly five words, no more and no fewer.",
    "You will be asked a factual question about a capital, an animal or a chemical element. Answer with a five-word sentence.",
    "Five words, exactly.",
    "Give the answer as a sentence of precisely 5 words, e.g. 'France's capital city is Paris.'",
    "Example: 'What is the chemical symbol of iron?' -> 'Iron's chemical symbol is Fe.'",
    "Respond in a single sentence whose word count is five.",
    "Answer in 5 words.",
    "Your task: every reply must be exactly five words long. Answer the question within that limit, as a full sentence.",
    "Write a five-word answer. For instance 'What kind of animal is a frog?' gives 'The frog is an amphibian.'",
)

_spec(
    "answer_as_bullets", "constrained_answer", _gen_bullet_answer,
    "Answer the question as a markdown bullet list.",
    "Reply with one bullet per thing asked about, in the order asked, each as '- <thing>: <answer>'.",
    "You will be asked about several countries, animals or elements at once. Answer with a bullet list, one line each.",
    "Bullet-list answer.",
    "Give the answers as a markdown list of 'name: answer' lines, each starting with '- '.",
    "Example: 'What are the capitals of Peru and Chile?' -> '- Peru: Lima\\n- Chile: Santiago'",
    "Respond with a dash list, pairing each item in the question with its answer after a colon.",
    "Answer in bullets.",
    "Your task: the answer will be shown on a slide. Answer the question as short bullet points, one per item, in the question's order.",
    "List the answers point by point. For instance 'What are the chemical symbols of gold and tin?' gives '- gold: Au' and '- tin: Sn'.",
)

_spec(
    "answer_in_uppercase", "constrained_answer", _gen_uppercase_answer,
    "Answer the question in one complete sentence, in uppercase.",
    "Reply with a full sentence written entirely in capital letters.",
    "You will be asked a factual question about a capital, an animal or a chemical element. Answer with one whole sentence in all caps.",
    "ALL-CAPS full-sentence answers.",
    "Give the answer as a complete sentence in upper case, e.g. 'THE CAPITAL OF X IS Y.'",
    "Example: 'What is the chemical symbol of iron?' -> 'THE CHEMICAL SYMBOL OF IRON IS FE.'",
    "Respond in a single declarative sentence, every letter capitalised.",
    "Answer in a sentence, shouting.",
    "Your task: your caps lock is stuck. Answer the question in one full sentence, all uppercase.",
    "Write the answer as an uppercase sentence. For instance 'What kind of animal is a frog?' gives 'THE FROG IS AN AMPHIBIAN.'",
)




OPEN_FAMILIES: dict[str, TaskFamily] = _REGISTRY.build()
