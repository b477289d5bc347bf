"""Search for the passwords that cost zxcvbn the most, capped (what Gatehouse runs) and not.

    .venv/bin/python scripts/zxcvbn_worst.py [--seconds 60] [--length 128]

Work is counted, not only timed: every dictionary look-up zxcvbn makes (one per substring per
ranked dictionary, the l33t matcher repeating the whole search once per substitution table),
so a result does not depend on the machine's load. Candidates are built from l33t-heavy
blocks, repeated substitutable characters, l33ted dictionary fragments and self-repeats, then
improved by random mutation (hill climbing on the capped work). Prints the worst inputs found
with their capped and uncapped work and time; `WORST_INPUTS` in the tests holds them.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zxcvbn import matching, zxcvbn

from modules.users import strength

L33T_CHARS = "".join(sorted({c for subs in matching.L33T_TABLE.values() for c in subs}))
WORDS = [
    "password",
    "trustno1",
    "iloveyou",
    "dragon",
    "monkey",
    "letmein",
    "sunshine",
    "troubador",
    "correct",
    "horse",
    "battery",
    "staple",
    "basketball",
    "calligraphic",
]
LEET = {
    "a": "4@",
    "b": "8",
    "c": "({[<",
    "e": "3",
    "g": "69",
    "i": "1!|",
    "l": "1|7",
    "o": "0",
    "s": "$5",
    "t": "+7",
    "x": "%",
    "z": "2",
}


class WorkCounter:
    """Counts dictionary look-ups by wrapping zxcvbn's dictionary_match (module global)."""

    def __init__(self) -> None:
        self.lookups = 0
        self._original = matching.dictionary_match

        def counting(
            password: str, _ranked_dictionaries: dict[str, dict[str, int]]
        ) -> list[dict[str, object]]:
            n = len(password)
            self.lookups += n * (n + 1) // 2 * len(_ranked_dictionaries)
            found: list[dict[str, object]] = self._original(password, _ranked_dictionaries)
            return found

        matching.dictionary_match = counting

    def measure(self, run: Callable[[], object]) -> tuple[int, float]:
        """(look-ups, seconds) of one call."""
        self.lookups = 0
        start = time.perf_counter()
        run()
        return self.lookups, time.perf_counter() - start


def leet(word: str, rng: random.Random) -> str:
    return "".join(rng.choice(LEET[c]) if c in LEET and rng.random() < 0.8 else c for c in word)


def candidate(length: int, rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:  # every l33t character, shuffled, repeated
        chars = list(L33T_CHARS)
        rng.shuffle(chars)
        text = "".join(chars)
    elif kind == 1:  # l33ted dictionary words
        text = "".join(leet(rng.choice(WORDS), rng) for _ in range(20))
    elif kind == 2:  # all l33t characters first, then l33ted words
        text = L33T_CHARS + "".join(leet(rng.choice(WORDS), rng) for _ in range(20))
    elif kind == 3:  # repeated substitutable characters
        text = "".join(rng.choice(L33T_CHARS) * rng.randint(1, 4) for _ in range(64))
    else:  # a self-repeat of an l33t-heavy block
        block = L33T_CHARS + leet(rng.choice(WORDS), rng)
        text = block * 8
    return (text * (length // max(1, len(text)) + 1))[:length]


def mutate(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(len(chars))
        chars[position] = rng.choice(L33T_CHARS + "abcdefghijklmnopqrstuvwxyz")
    return "".join(chars)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--uncapped", action="store_true", help="also time uncapped zxcvbn")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    counter = WorkCounter()
    strength.bounded_zxcvbn("warm-up", [])

    def capped_work(password: str) -> tuple[int, float]:
        return counter.measure(lambda: strength.bounded_zxcvbn(password, []))

    best: list[tuple[int, float, str]] = []
    deadline = time.monotonic() + args.seconds
    current = candidate(args.length, rng)
    current_work = capped_work(current)[0]
    while time.monotonic() < deadline:
        trial = candidate(args.length, rng) if rng.random() < 0.3 else mutate(current, rng)
        work, seconds = capped_work(trial)
        best.append((work, seconds, trial))
        if work >= current_work:
            current, current_work = trial, work
    best.sort(reverse=True)
    print(f"{len(best)} candidates at {args.length} characters; the worst (capped):")
    for work, seconds, text in best[:5]:
        print(f"  capped: {work:>9} look-ups {seconds * 1000:7.1f} ms  {text!r}")
        if args.uncapped:
            for label, limit in (("first 64", 64), ("whole", len(text))):
                strength._install_l33t_cap(10**9)  # every substitution table, as zxcvbn does
                uncapped = counter.measure(partial(zxcvbn, text[:limit], max_length=limit))
                strength._install_l33t_cap(strength.MAX_L33T_TABLES)
                print(f"  zxcvbn, {label}: {uncapped[0]:>9} look-ups {uncapped[1] * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
