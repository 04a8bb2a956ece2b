"""The bundled labelled text set: short sentences about four topics, generated from templates.

Each topic has its own templates and word lists. The words of each list are split once into
*train* and *test* words (every third word is held out), so the test sentences use words the
classifier head never saw in training: its test accuracy measures what the sentence embedding
generalises, not memorised keywords. Generation is seeded and needs no download.

>>> x, y = topic_sentences("train", n_per_topic=2, seed=0)
>>> len(x), y
(8, [0, 0, 1, 1, 2, 2, 3, 3])
"""
from __future__ import annotations

import random

TOPICS = ("sports", "food", "weather", "technology")

_TEMPLATES = {
    "sports": ["The {team} won the {event} after a {adj} second half.",
               "Our {player} scored twice in the {event}.",
               "Fans cheered as the {team} lifted the trophy.",
               "The coach said the {player} trained hard for the {event}.",
               "A {adj} {event} kept the crowd on its feet."],
    "food": ["She cooked {dish} with fresh {ingredient} for dinner.",
             "This {adj} {dish} needs more {ingredient}.",
             "The chef served {dish} topped with {ingredient}.",
             "We baked a {adj} {dish} for the party.",
             "Add the {ingredient} and let the {dish} simmer."],
    "weather": ["Heavy {precip} is expected across the {region} tonight.",
                "The forecast promises a {adj} morning with {precip} later.",
                "Strong {wind} swept over the {region} yesterday.",
                "It was a {adj} day until the {precip} arrived.",
                "Temperatures will drop as {wind} reaches the {region}."],
    "technology": ["The new {device} ships with a faster {part}.",
                   "Engineers released an update for the {software}.",
                   "My {device} crashed while the {software} was installing.",
                   "The {adj} {part} doubles the speed of the {device}.",
                   "Developers fixed a bug in the {software} last week."],
}

_WORDS = {
    "team": ["team", "club", "squad", "eleven", "side", "franchise"],
    "event": ["match", "final", "game", "tournament", "derby", "championship"],
    "player": ["striker", "goalkeeper", "captain", "midfielder", "defender", "forward"],
    "dish": ["soup", "pasta", "stew", "pie", "curry", "risotto"],
    "ingredient": ["garlic", "basil", "cheese", "onions", "pepper", "butter"],
    "precip": ["rain", "snow", "hail", "sleet", "drizzle", "showers"],
    "region": ["coast", "valley", "north", "mountains", "islands", "plains"],
    "wind": ["winds", "gusts", "gales", "storms", "breezes", "squalls"],
    "device": ["phone", "laptop", "tablet", "computer", "router", "smartwatch"],
    "part": ["processor", "chip", "battery", "screen", "memory", "graphics card"],
    "software": ["browser", "app", "operating system", "database", "compiler", "spreadsheet"],
}
# adjectives are per topic, so that none gives the topic away by being shared
_ADJ = {"sports": ["thrilling", "tense", "dramatic", "gripping", "fierce", "heroic"],
        "food": ["delicious", "spicy", "creamy", "savory", "tasty", "hearty"],
        "weather": ["cloudy", "chilly", "stormy", "foggy", "windy", "humid"],
        "technology": ["powerful", "faster", "efficient", "compact", "wireless", "digital"]}

SPLITS = ("train", "test")


def _pool(words: list[str], split: str) -> list[str]:
    # every third word is held out for the test split
    return [w for i, w in enumerate(words) if (i % 3 == 2) == (split == "test")]


def topic_sentences(split: str = "train", n_per_topic: int = 150, seed: int = 0) -> tuple[list[str], list[int]]:
    """``(sentences, topic labels)``: ``n_per_topic`` generated sentences per topic, in topic order.

    ``split="test"`` draws its words from the held-out third of every word list (another seed
    stream too), so test sentences never share a filler word with the training ones.

    >>> x, _ = topic_sentences("test", n_per_topic=1, seed=0)
    >>> x[0].endswith(".")
    True
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {split!r}")
    if isinstance(n_per_topic, bool) or not isinstance(n_per_topic, int) or n_per_topic < 1:
        raise ValueError(f"n_per_topic must be a positive int, got {n_per_topic!r}")
    rng = random.Random(f"topics-{split}-{seed}")
    sentences, labels = [], []
    for label, topic in enumerate(TOPICS):
        pools = {k: _pool(v, split) for k, v in _WORDS.items()}
        pools["adj"] = _pool(_ADJ[topic], split)
        for _ in range(n_per_topic):
            template = rng.choice(_TEMPLATES[topic])
            sentences.append(template.format(**{k: rng.choice(v) for k, v in pools.items()}))
            labels.append(label)
    return sentences, labels
