"""SCAN (Lake & Baroni 2018), generated from its published grammar and interpreted by its semantics.

Grammar::

    C -> S | S and S | S after S
    S -> V | V twice | V thrice
    V -> U | U dir | turn dir | U opposite dir | turn opposite dir | U around dir | turn around dir
    U -> walk | look | run | jump          dir -> left | right

Semantics: ``x and y`` = x y; ``x after y`` = y x; ``U dir`` = TURN_dir U; ``opposite`` turns twice
before acting; ``around`` repeats (TURN_dir U) four times; ``twice``/``thrice`` repeat. The full
set has 20,910 pairs; commands have at most 9 words and outputs at most 48 actions.
"""

from __future__ import annotations

import itertools

import numpy as np

from attnq_translation.corpus import Pair

PRIMITIVES = {"walk": "I_WALK", "look": "I_LOOK", "run": "I_RUN", "jump": "I_JUMP"}
DIRECTIONS = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}
REPEATS = {"twice": 2, "thrice": 3}
LENGTH_SPLIT_MAX_TRAIN_OUTPUT = 22  # the length split trains on outputs up to 22 actions


def _verb_phrases() -> list[list[str]]:
    """Every V: the 34 ways to write a single (possibly turning) action."""
    phrases: list[list[str]] = []
    for verb in [*PRIMITIVES, "turn"]:
        if verb != "turn":
            phrases.append([verb])
        for direction in DIRECTIONS:
            phrases += [[verb, direction], [verb, "opposite", direction], [verb, "around", direction]]
    return phrases


def _sentences() -> list[list[str]]:
    """Every S: a V, optionally repeated twice or thrice."""
    return [[*v, *repeat] for v in _verb_phrases() for repeat in ([], ["twice"], ["thrice"])]


def commands() -> list[str]:
    """All 20,910 SCAN commands, in grammar order."""
    sentences = _sentences()
    result = [" ".join(s) for s in sentences]
    for first, second in itertools.product(sentences, repeat=2):
        result.append(" ".join([*first, "and", *second]))
        result.append(" ".join([*first, "after", *second]))
    return result


def _interpret_verb(words: list[str]) -> list[str]:
    verb, rest = words[0], words[1:]
    act = [] if verb == "turn" else [PRIMITIVES[verb]]
    if not rest:
        return act
    turn = [DIRECTIONS[rest[-1]]]
    if rest[0] == "opposite":
        return turn * 2 + act
    if rest[0] == "around":
        return (turn + act) * 4
    return turn + act


def _interpret_sentence(words: list[str]) -> list[str]:
    if words[-1] in REPEATS:
        return _interpret_verb(words[:-1]) * REPEATS[words[-1]]
    return _interpret_verb(words)


def interpret(command: str) -> list[str]:
    """The action sequence a SCAN command means (``x after y`` runs y first)."""
    words = command.split()
    if "and" in words:
        cut = words.index("and")
        return _interpret_sentence(words[:cut]) + _interpret_sentence(words[cut + 1 :])
    if "after" in words:
        cut = words.index("after")
        return _interpret_sentence(words[cut + 1 :]) + _interpret_sentence(words[:cut])
    return _interpret_sentence(words)


def all_pairs() -> list[Pair]:
    return [Pair(tuple(c.split()), tuple(interpret(c))) for c in commands()]


def simple_split(seed: int = 0, train_fraction: float = 0.8) -> tuple[list[Pair], list[Pair]]:
    """A seeded random 80/20 split (16,728 / 4,182 pairs)."""
    pairs = all_pairs()
    order = np.random.default_rng(seed).permutation(len(pairs))
    cut = int(round(train_fraction * len(pairs)))
    return [pairs[i] for i in order[:cut]], [pairs[i] for i in order[cut:]]


def add_primitive_split(primitive: str = "jump") -> tuple[list[Pair], list[Pair]]:
    """Lake & Baroni's "adding a new primitive": train on every command without ``primitive`` and on
    the primitive alone; test on every other command that uses it (jump: 13,204 / 7,706 pairs)."""
    pairs = all_pairs()
    train = [p for p in pairs if primitive not in p.source or p.source == (primitive,)]
    test = [p for p in pairs if primitive in p.source and p.source != (primitive,)]
    return train, test


def length_split() -> tuple[list[Pair], list[Pair]]:
    """Train on outputs of at most 22 actions (16,990 pairs), test on the longer ones (3,920)."""
    pairs = all_pairs()
    train = [p for p in pairs if len(p.target) <= LENGTH_SPLIT_MAX_TRAIN_OUTPUT]
    test = [p for p in pairs if len(p.target) > LENGTH_SPLIT_MAX_TRAIN_OUTPUT]
    return train, test
