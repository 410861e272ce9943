"""The attribute catalogue of Einstein puzzles and the English wording of their clues.

Ten categories of eight values each. Every value is a distinct lowercase word, so a value
token names its category on its own; category tokens are capitalised. Each category has a
phrase template that turns a value into a description of the person living in the house,
which is what the natural-language clues talk about.
"""

from __future__ import annotations

from collections.abc import Mapping

# category -> values, in catalogue order
CATEGORIES: Mapping[str, tuple[str, ...]] = {
    "Color": ("red", "green", "blue", "yellow", "white", "purple", "pink", "gray"),
    "Nationality": ("brit", "swede", "dane", "norwegian", "german", "spaniard", "italian", "greek"),
    "Pet": ("dog", "cat", "bird", "fish", "horse", "rabbit", "hamster", "turtle"),
    "Drink": ("tea", "coffee", "milk", "water", "juice", "beer", "soda", "cocoa"),
    "Job": ("doctor", "teacher", "painter", "baker", "pilot", "farmer", "lawyer", "chef"),
    "Sport": ("soccer", "tennis", "golf", "hockey", "rugby", "cricket", "baseball", "volleyball"),
    "Car": ("ford", "toyota", "honda", "bmw", "audi", "tesla", "volvo", "fiat"),
    "Music": ("jazz", "rock", "pop", "blues", "folk", "opera", "techno", "reggae"),
    "Flower": ("rose", "tulip", "lily", "daisy", "orchid", "iris", "lotus", "violet"),
    "Food": ("pizza", "sushi", "pasta", "tacos", "curry", "salad", "steak", "soup"),
}

# How a person is described by one value; "{v}" is the value's display form.
_PERSON = {
    "Color": "the person in the {v} house",
    "Nationality": "the {v}",
    "Pet": "the owner of the {v}",
    "Drink": "the person who drinks {v}",
    "Job": "the {v}",
    "Sport": "the person who plays {v}",
    "Car": "the person who drives the {v}",
    "Music": "the {v} fan",
    "Flower": "the person who grows {v}",
    "Food": "the person who eats {v}",
}

# Display forms that differ from the token.
_DISPLAY = {
    "brit": "Brit", "swede": "Swede", "dane": "Dane", "norwegian": "Norwegian", "german": "German",
    "spaniard": "Spaniard", "italian": "Italian", "greek": "Greek",
    "ford": "Ford", "toyota": "Toyota", "honda": "Honda", "bmw": "BMW", "audi": "Audi",
    "tesla": "Tesla", "volvo": "Volvo", "fiat": "Fiat",
    "rose": "roses", "tulip": "tulips", "lily": "lilies", "daisy": "daisies", "orchid": "orchids",
    "iris": "irises", "lotus": "lotuses", "violet": "violets",
}

CATEGORY_OF: Mapping[str, str] = {value: name for name, values in CATEGORIES.items() for value in values}


def person(value: str) -> str:
    """``the owner of the dog``: the person described by one value."""
    return _PERSON[CATEGORY_OF[value]].format(v=_DISPLAY.get(value, value))


# Clue sentences; {a} and {b} are person descriptions, {k} a house number.
CLUE_WORDING: Mapping[str, str] = {
    "same": "{a} lives in the same house as {b}.",
    "not_same": "{a} does not live in the same house as {b}.",
    "left": "{a} lives directly to the left of {b}.",
    "right": "{a} lives directly to the right of {b}.",
    "next_to": "{a} lives next to {b}.",
    "left_of": "{a} lives somewhere to the left of {b}.",
    "right_of": "{a} lives somewhere to the right of {b}.",
    "at": "{a} lives in house {k}.",
    "not_at": "{a} does not live in house {k}.",
}


def clue_sentence(kind: str, a: str, b: str | None, house: int | None) -> str:
    """One clue in English, capitalised."""
    text = CLUE_WORDING[kind].format(a=person(a), b=person(b) if b else "", k=house)
    return text[0].upper() + text[1:]


def display_aliases() -> Mapping[str, str]:
    """Lowercase display forms that differ from their token (``roses`` -> ``rose``)."""
    return {shown.lower(): value for value, shown in _DISPLAY.items() if shown.lower() != value}
