"""Data for the open-ended task families (open_families.py).

People's first names, surnames, company suffixes and job titles come from the en_US providers of
the pinned `faker` package (MIT): only the providers' word lists are read,
never Faker's own random generator, so the task generators keep drawing from
the `random.Random` they are given. The lists are filtered to short, plain
entries and sorted, so their order does not depend on how Faker stores them.
Everything else is a plain constant here. Bilingual tables carry gender and
plural so that phrases are composed with correct agreement.
"""

from __future__ import annotations

import re

from faker.providers.company.en_US import Provider as _FakerCompanies
from faker.providers.job.en_US import Provider as _FakerJobs
from faker.providers.person.en_US import Provider as _FakerPeople


def _plain_names(names, max_len: int) -> tuple[str, ...]:
    return tuple(sorted({n for n in names if n.isalpha() and n[0].isupper() and 3 <= len(n) <= max_len}))


FIRST_NAMES: tuple[str, ...] = _plain_names(
    list(_FakerPeople.first_names_female) + list(_FakerPeople.first_names_male), 8
)
LAST_NAMES: tuple[str, ...] = _plain_names(_FakerPeople.last_names, 9)
COMPANY_SUFFIXES: tuple[str, ...] = tuple(sorted(_FakerCompanies.company_suffixes))  # "Inc", "LLC", ...

# Entries that are fragments or need a capital in mid-sentence are left out.
_JOB_EXCLUDED = frozenset({
    "Copy", "Land", "Make", "Sub", "Press sub", "Publishing copy", "Best boy", "Gaffer",
    "Cabin crew", "Ambulance person", "Dealer", "Mudlogger",
})
# Lowercase job titles of one or two words ("software engineer").
JOBS: tuple[str, ...] = tuple(sorted({
    j.lower() for j in _FakerJobs.jobs
    if re.fullmatch(r"[A-Z][a-z]+( [a-z]+)?", j) and len(j) <= 20 and j not in _JOB_EXCLUDED
}))

CITIES: tuple[str, ...] = (
    "Lisbon", "Porto", "Oslo", "Bergen", "Dublin", "Cork", "Lyon", "Nice", "Milan", "Turin",
    "Munich", "Hamburg", "Vienna", "Prague", "Krakow", "Riga", "Tallinn", "Geneva", "Zurich",
    "Madrid", "Seville", "Valencia", "Leeds", "Bristol", "Glasgow", "Cardiff", "Boston",
    "Denver", "Austin", "Seattle", "Chicago", "Dallas", "Atlanta", "Toronto", "Montreal",
    "Kyoto", "Osaka", "Sydney", "Perth", "Auckland", "Nairobi", "Lagos", "Cairo", "Lima",
)

# --- rewriting: (base, third person singular, past, past participle, complement)
# The complements never contain a pronoun, so a change of person or tense only
# touches the subject and the verb.
ACTIVITIES: tuple[tuple[str, str, str, str], ...] = (
    ("walk", "walks", "walked", "to the station"),
    ("bake", "bakes", "baked", "bread for the family"),
    ("drink", "drinks", "drank", "a cup of tea"),
    ("write", "writes", "wrote", "a long letter"),
    ("cook", "cooks", "cooked", "dinner"),
    ("visit", "visits", "visited", "the museum"),
    ("buy", "buys", "bought", "fresh bread"),
    ("play", "plays", "played", "the piano"),
    ("watch", "watches", "watched", "the news"),
    ("clean", "cleans", "cleaned", "the kitchen"),
    ("take", "takes", "took", "the bus"),
    ("eat", "eats", "ate", "breakfast"),
    ("go", "goes", "went", "to the gym"),
    ("run", "runs", "ran", "in the park"),
    ("swim", "swims", "swam", "in the lake"),
    ("teach", "teaches", "taught", "a yoga class"),
    ("sing", "sings", "sang", "in a choir"),
    ("ride", "rides", "rode", "a bike to work"),
    ("make", "makes", "made", "coffee"),
    ("feed", "feeds", "fed", "the cat"),
    ("fix", "fixes", "fixed", "the old radio"),
    ("study", "studies", "studied", "French"),
    ("carry", "carries", "carried", "a heavy bag"),
    ("meet", "meets", "met", "a friend for lunch"),
    ("bring", "brings", "brought", "a cake"),
    ("send", "sends", "sent", "an email to the team"),
    ("paint", "paints", "painted", "the fence"),
    ("water", "waters", "watered", "the plants"),
    ("wash", "washes", "washed", "the car"),
    ("catch", "catches", "caught", "the early train"),
    ("sell", "sells", "sold", "vegetables at the market"),
    ("draw", "draws", "drew", "maps"),
)

HABIT_TIMES: tuple[str, ...] = (
    "every morning", "on Sundays", "after work", "twice a week", "every evening",
    "before lunch", "at the weekend", "on Fridays", "every day", "in the afternoon",
)

RELATIVES: tuple[str, ...] = (
    "brother", "sister", "mother", "father", "cousin", "neighbour", "uncle", "aunt", "friend",
)

STATES: tuple[str, ...] = (
    "tired today", "happy with the result", "late again", "at home", "ready to leave",
    "busy this week", "new in town", "proud of the team", "sure about the plan",
)

# --- passive voice: (past, past participle, object, object is plural)
PASSIVE_ACTIONS: tuple[tuple[str, str, str, bool], ...] = (
    ("cooked", "cooked", "the soup", False),
    ("wrote", "written", "the letter", False),
    ("painted", "painted", "the fence", False),
    ("fixed", "fixed", "the bike", False),
    ("washed", "washed", "the dishes", True),
    ("built", "built", "the shed", False),
    ("opened", "opened", "the windows", True),
    ("signed", "signed", "the contract", False),
    ("planted", "planted", "the trees", True),
    ("sold", "sold", "the house", False),
    ("cleaned", "cleaned", "the rooms", True),
    ("found", "found", "the keys", True),
    ("baked", "baked", "the bread", False),
    ("broke", "broken", "the vase", False),
    ("sent", "sent", "the invitations", True),
    ("drove", "driven", "the van", False),
    ("caught", "caught", "the fish", False),
    ("stole", "stolen", "the paintings", True),
    ("chose", "chosen", "the winners", True),
    ("checked", "checked", "the results", True),
)

AGENTS: tuple[str, ...] = (
    "the chef", "the teacher", "my neighbour", "the children", "the manager", "the workers",
    "the students", "a stranger", "the mayor", "our team", "the baker", "the police",
)

# --- formal / casual: pairs of the same message in two registers
REGISTER_PAIRS: tuple[tuple[str, str], ...] = (
    ("hey {name}, can't make it to the {event} on {day}, sorry!",
     "Hello {name}, I am unable to attend the {event} on {day}. I apologise."),
    ("thanks a lot for the {thing}, it's awesome!",
     "Thank you very much for the {thing}. It is excellent."),
    ("gonna be late for the {event}, don't wait for me.",
     "I am going to be late for the {event}. Please do not wait for me."),
    ("wanna grab lunch on {day}?",
     "Would you like to have lunch on {day}?"),
    ("yeah, the {thing} is fine, no worries.",
     "Yes, the {thing} is acceptable. There is no need for concern."),
    ("hi {name}! got your {thing}, looks great.",
     "Dear {name}, I have received your {thing}. It looks very good."),
    ("sorry, didn't get the {thing} yet.",
     "I apologise, but I have not received the {thing} yet."),
    ("can you send me the {thing} asap?",
     "Could you please send me the {thing} as soon as possible?"),
    ("cool, see you at the {event} on {day}!",
     "Very well, I look forward to seeing you at the {event} on {day}."),
    ("the {event} was kinda boring tbh.",
     "To be honest, the {event} was rather dull."),
    ("nope, {name} isn't coming to the {event}.",
     "No, {name} will not be attending the {event}."),
    ("btw the {thing} is on my desk.",
     "By the way, the {thing} is on my desk."),
)

EVENTS: tuple[str, ...] = (
    "meeting", "party", "workshop", "dinner", "conference", "review", "rehearsal", "seminar",
    "interview", "launch",
)

THINGS: tuple[str, ...] = (
    "report", "slides", "invoice", "package", "photos", "contract", "draft", "notes",
    "tickets", "budget",
)

# --- polite requests: imperative verb phrases (lowercase, no final punctuation)
COMMANDS: tuple[str, ...] = (
    "send me the report by Friday", "call the client after lunch", "book a table for four",
    "close the window before you leave", "print two copies of the contract",
    "check the figures in the last column", "turn off the lights in the hall",
    "bring the chairs from the other room", "update the schedule for next week",
    "order more paper for the printer", "water the plants on the balcony",
    "lock the door when you go", "call the bank about the letter",
    "move the meeting to Thursday", "pick up the parcel at the post office",
    "share the slides with the team", "clean the whiteboard after class",
    "wait for me at the entrance", "sign the form at the bottom", "feed the dog at six",
)

# --- reports
WEATHER_CONDITIONS: tuple[str, ...] = (
    "sunny", "cloudy", "rainy", "windy", "foggy", "overcast", "stormy", "misty",
)
WIND_DIRECTIONS: tuple[str, ...] = ("north", "south", "east", "west", "northwest", "southeast")

TEAMS: tuple[str, ...] = (
    "Lions", "Tigers", "Falcons", "Rovers", "Wolves", "Eagles", "Sharks", "Bears", "Rangers",
    "Hawks", "Comets", "Pirates",
)

PRODUCTS: tuple[str, ...] = (
    "phone", "laptop", "blender", "vacuum cleaner", "coffee machine", "backpack", "tent",
    "headphones", "desk chair", "camera", "kettle", "e-reader",
)
REVIEW_ASPECTS: tuple[str, ...] = (
    "battery", "screen", "price", "delivery", "design", "sound", "comfort", "support",
)

PROJECTS: tuple[str, ...] = (
    "website", "mobile app", "spring campaign", "new office", "product", "training course",
    "newsletter", "summer fair",
)
DECISIONS: tuple[str, ...] = (
    "move the launch to {month}", "hire two more testers", "cut the budget by ten percent",
    "switch to a new supplier", "run a survey of customers", "delay the release by a week",
    "add a second design review", "keep the current price",
)
ACTIONS: tuple[str, ...] = (
    "update the plan", "email the suppliers", "draft the announcement", "book the venue",
    "prepare the budget", "collect the feedback", "write the test plan", "call the printer",
)

# --- label classification: label -> message templates
TICKETS: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice for my subscription this month.",
        "My invoice for {month} shows the wrong amount.",
        "Why was my card billed {n} dollars yesterday?",
        "I still have not received the refund for my cancelled plan.",
        "The price on my last bill is higher than the one I signed up for.",
    ),
    "technical": (
        "The app crashes every time I open the settings page.",
        "I get error {n} when I try to upload a file.",
        "The website has been very slow since {day}.",
        "The video keeps freezing after a few seconds.",
        "Nothing happens when I press the save button.",
    ),
    "shipping": (
        "My order still has not arrived after {n} days.",
        "The parcel was delivered to the wrong address.",
        "Can I change the delivery date of my order to {day}?",
        "The box arrived damaged and two items are missing.",
        "The tracking number you sent me does not work.",
    ),
    "account": (
        "I forgot my password and the reset link never comes.",
        "Please change the email address on my profile.",
        "How do I delete my account and all my data?",
        "My username was changed without my permission.",
        "I want to merge my two profiles into one.",
    ),
}

EMAIL_INTENTS: dict[str, tuple[str, ...]] = {
    "schedule": (
        "Could we meet on {day} at {hour} to go over the {thing}?",
        "Are you free for a short call on {day} morning?",
        "Let's move our {event} from {day} to next week.",
        "What time suits you on {day} for the {event}?",
    ),
    "payment": (
        "Attached is the invoice for the {thing}; payment is due on {day}.",
        "We have not yet received your payment for {month}.",
        "Please transfer the deposit for the {event} by {day}.",
        "Your payment of {n} dollars has been received, thank you.",
    ),
    "complaint": (
        "I am very unhappy with how the {event} was organised.",
        "The {thing} you sent was late and full of mistakes.",
        "This is the third time my request has been ignored.",
        "The service at the {event} on {day} was unacceptable.",
    ),
    "thanks": (
        "Many thanks for your help with the {thing} last week.",
        "I really appreciated your talk at the {event} on {day}.",
        "Thank you for hosting us at the {event}, it was wonderful.",
        "Just wanted to say thanks for sending the {thing} so quickly.",
    ),
}

HEADLINES: dict[str, tuple[str, ...]] = {
    "sports": (
        "{team} beat {team2} {a}-{b} in the cup final",
        "Star striker joins the {team} on a three-year deal",
        "{team} coach resigns after five straight defeats",
        "Marathon record broken in {city} by {n} seconds",
    ),
    "politics": (
        "Parliament votes on new {topic} law",
        "Mayor of {city} announces plan to cut {topic} spending",
        "Opposition leader calls for early elections",
        "Ministers meet in {city} to discuss {topic} reform",
    ),
    "science": (
        "Researchers discover new species of frog in {place}",
        "Telescope captures images of a distant {space}",
        "Study finds link between sleep and memory in {animals}",
        "New battery material could double the range of electric cars",
    ),
    "business": (
        "{company} shares rise {n} percent after strong results",
        "{company} to open {n} new stores in {city}",
        "Retail sales fall for the third month in a row",
        "{company} agrees to buy rival in a {n} million dollar deal",
    ),
}
HEADLINE_TOPICS: tuple[str, ...] = ("housing", "education", "transport", "energy", "health", "tax")
HEADLINE_PLACES: tuple[str, ...] = ("the Amazon", "Madagascar", "Borneo", "the Andes", "Costa Rica")
HEADLINE_SPACE: tuple[str, ...] = ("galaxy", "comet", "star cluster", "planet", "nebula")
HEADLINE_ANIMALS: tuple[str, ...] = ("mice", "bees", "fruit flies", "dogs", "zebrafish")

# aspect -> (subjects, positive predicates, negative predicates)
REVIEW_ASPECT_PHRASES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "price": (
        ("The price", "The cost"),
        ("was very reasonable", "felt like a real bargain", "was lower than I expected"),
        ("was far too high", "felt like a rip-off", "was not worth it at all"),
    ),
    "quality": (
        ("The material", "The build quality", "The stitching"),
        ("is excellent", "feels solid and durable", "is better than I hoped"),
        ("is flimsy", "fell apart after a week", "feels cheap and thin"),
    ),
    "delivery": (
        ("The delivery", "Shipping", "The parcel"),
        ("arrived a day early", "was fast and well packed", "came right on time"),
        ("took three weeks", "arrived crushed", "was late and badly packed"),
    ),
    "service": (
        ("The support team", "Customer service", "The staff"),
        ("answered within minutes", "was friendly and helpful", "solved my problem at once"),
        ("never replied", "was rude and unhelpful", "kept me waiting for hours"),
    ),
}

# --- JSON extraction
EVENT_NAMES: tuple[str, ...] = (
    "book club", "team lunch", "yoga class", "board meeting", "chess night", "quiz night",
    "project review", "piano recital", "film screening", "coding workshop",
)
VENUES: tuple[str, ...] = (
    "Central Library", "Town Hall", "Blue Room", "City Museum", "Park Cafe", "main office",
    "Green Hall", "community centre",
)
ORDER_ITEMS: tuple[str, ...] = (
    "desk lamp", "coffee mug", "notebook", "office chair", "water bottle", "phone case",
    "wall clock", "table fan", "yoga mat", "backpack",
)

# --- list and table formatting
GROCERIES: tuple[str, ...] = (
    "eggs", "milk", "flour", "butter", "two lemons", "a bag of rice", "olive oil", "tomatoes",
    "fresh basil", "cheese", "bread", "apples", "coffee", "sugar", "a jar of honey", "onions",
    "garlic", "yogurt", "pasta", "oranges",
)
LIST_FRAMES: tuple[tuple[str, str], ...] = (
    # (opening, closing); the items go between them.
    ("For the picnic we need ", "."),
    ("Shopping list: ", "."),
    ("Don't forget to buy ", "."),
    ("Could you pick up ", " on your way home?"),
    ("The recipe calls for ", "."),
    ("We ran out of ", "."),
)

PROCEDURES: tuple[tuple[str, ...], ...] = (
    ("preheat the oven", "mix the flour and sugar", "add the eggs", "pour the batter into a tin",
     "bake for forty minutes"),
    ("unplug the router", "wait thirty seconds", "plug it back in", "wait for the green light",
     "reconnect your laptop"),
    ("open the settings", "choose your account", "tap change password", "enter the new password",
     "save the changes"),
    ("boil the water", "warm the teapot", "add the tea leaves", "pour in the water",
     "let it steep for three minutes"),
    ("clear the desk", "sort the papers", "file the invoices", "recycle the old drafts",
     "wipe the surface"),
    ("fill the kettle", "grind the coffee", "rinse the filter", "add the grounds",
     "pour the hot water slowly"),
)
STEP_CONNECTORS: tuple[str, ...] = ("then", "after that", "next")

# item name (plural) for the inventory sentences
INVENTORY_ITEMS: tuple[str, ...] = (
    "lamps", "chairs", "mugs", "tables", "pens", "folders", "cables", "plates", "towels", "clocks",
)

# --- phrase translation tables
# English noun -> (English plural, French (gender, sg, pl), Spanish (gender, sg, pl),
# German (gender, sg, pl)); gender m / f / n.
PHRASE_NOUNS: dict[str, tuple] = {
    "dog": ("dogs", ("m", "chien", "chiens"), ("m", "perro", "perros"), ("m", "Hund", "Hunde")),
    "cat": ("cats", ("m", "chat", "chats"), ("m", "gato", "gatos"), ("f", "Katze", "Katzen")),
    "house": ("houses", ("f", "maison", "maisons"), ("f", "casa", "casas"), ("n", "Haus", "Häuser")),
    "car": ("cars", ("f", "voiture", "voitures"), ("m", "coche", "coches"), ("n", "Auto", "Autos")),
    "book": ("books", ("m", "livre", "livres"), ("m", "libro", "libros"), ("n", "Buch", "Bücher")),
    "table": ("tables", ("f", "table", "tables"), ("f", "mesa", "mesas"), ("m", "Tisch", "Tische")),
    "door": ("doors", ("f", "porte", "portes"), ("f", "puerta", "puertas"), ("f", "Tür", "Türen")),
    "flower": ("flowers", ("f", "fleur", "fleurs"), ("f", "flor", "flores"), ("f", "Blume", "Blumen")),
    "bird": ("birds", ("m", "oiseau", "oiseaux"), ("m", "pájaro", "pájaros"), ("m", "Vogel", "Vögel")),
    "chair": ("chairs", ("f", "chaise", "chaises"), ("f", "silla", "sillas"), ("m", "Stuhl", "Stühle")),
    "bag": ("bags", ("m", "sac", "sacs"), ("m", "bolso", "bolsos"), ("f", "Tasche", "Taschen")),
    "hat": ("hats", ("m", "chapeau", "chapeaux"), ("m", "sombrero", "sombreros"), ("m", "Hut", "Hüte")),
    "shirt": ("shirts", ("f", "chemise", "chemises"), ("f", "camisa", "camisas"), ("n", "Hemd", "Hemden")),
    "bicycle": ("bicycles", ("m", "vélo", "vélos"), ("f", "bicicleta", "bicicletas"),
                ("n", "Fahrrad", "Fahrräder")),
    "cup": ("cups", ("f", "tasse", "tasses"), ("f", "taza", "tazas"), ("f", "Tasse", "Tassen")),
    "ball": ("balls", ("m", "ballon", "ballons"), ("f", "pelota", "pelotas"), ("m", "Ball", "Bälle")),
    "box": ("boxes", ("f", "boîte", "boîtes"), ("f", "caja", "cajas"), ("f", "Kiste", "Kisten")),
    "key": ("keys", ("f", "clé", "clés"), ("f", "llave", "llaves"), ("m", "Schlüssel", "Schlüssel")),
    "window": ("windows", ("f", "fenêtre", "fenêtres"), ("f", "ventana", "ventanas"),
               ("n", "Fenster", "Fenster")),
}
# English colour -> (French m, French f, Spanish m, Spanish f, German stem)
PHRASE_COLOURS: dict[str, tuple[str, str, str, str, str]] = {
    "red": ("rouge", "rouge", "rojo", "roja", "rot"),
    "blue": ("bleu", "bleue", "azul", "azul", "blau"),
    "green": ("vert", "verte", "verde", "verde", "grün"),
    "black": ("noir", "noire", "negro", "negra", "schwarz"),
    "white": ("blanc", "blanche", "blanco", "blanca", "weiß"),
    "yellow": ("jaune", "jaune", "amarillo", "amarilla", "gelb"),
    "grey": ("gris", "grise", "gris", "gris", "grau"),
}
