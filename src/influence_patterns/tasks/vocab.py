"""The project's own vocabulary for the agreement templates (SVA and RA).

Words are chosen for this project. Every word that can be masked (a verb that
agrees, ``is/are``, ``was/were``, a reflexive) is a single word piece in the
uncased BERT vocabulary, so a masked-LM head scores it directly (a test checks it).

Nouns and content verbs are split deterministically into a ``train`` part (about
75%) and a ``heldout`` part (every fourth entry of each list), so that a model
trained on templates can be tested on unseen nouns and verbs. Closed-class words
(determiner, copulas and linking verbs, reflexives, prepositions, adjectives) are
shared by both parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence, TypeVar

SPLITS = ("train", "heldout", "all")


class Pair(NamedTuple):
    """A singular/plural pair of one word (a noun, or a verb form that agrees)."""

    sing: str
    plur: str


class Phrase(NamedTuple):
    """A verb phrase whose head verb agrees: ``sing``/``plur`` head + fixed ``rest`` words."""

    sing: str
    plur: str
    rest: str


# --- nouns ---------------------------------------------------------------------

ANIMATE_NOUNS: tuple[Pair, ...] = tuple(
    Pair(s, p)
    for s, p in [
        ("pilot", "pilots"), ("teacher", "teachers"), ("doctor", "doctors"),
        ("lawyer", "lawyers"), ("farmer", "farmers"), ("student", "students"),
        ("dancer", "dancers"), ("singer", "singers"), ("writer", "writers"),
        ("painter", "painters"), ("nurse", "nurses"), ("driver", "drivers"),
        ("chef", "chefs"), ("soldier", "soldiers"), ("actor", "actors"),
        ("officer", "officers"), ("engineer", "engineers"), ("player", "players"),
        ("worker", "workers"), ("visitor", "visitors"), ("neighbor", "neighbors"),
        ("artist", "artists"), ("scientist", "scientists"), ("judge", "judges"),
        ("guest", "guests"), ("tourist", "tourists"), ("poet", "poets"),
        ("clerk", "clerks"), ("surgeon", "surgeons"), ("editor", "editors"),
        ("athlete", "athletes"), ("sailor", "sailors"), ("hunter", "hunters"),
        ("priest", "priests"), ("child", "children"), ("woman", "women"),
        ("man", "men"), ("boxer", "boxers"), ("professor", "professors"),
        ("mayor", "mayors"),
    ]
)

INANIMATE_NOUNS: tuple[Pair, ...] = tuple(
    Pair(s, p)
    for s, p in [
        ("book", "books"), ("car", "cars"), ("painting", "paintings"),
        ("song", "songs"), ("house", "houses"), ("letter", "letters"),
        ("movie", "movies"), ("poem", "poems"), ("table", "tables"),
        ("chair", "chairs"), ("window", "windows"), ("phone", "phones"),
        ("picture", "pictures"), ("game", "games"), ("story", "stories"),
        ("bridge", "bridges"), ("shirt", "shirts"), ("lamp", "lamps"),
        ("clock", "clocks"), ("map", "maps"), ("boat", "boats"),
        ("box", "boxes"), ("bus", "buses"), ("knife", "knives"),
    ]
)

# --- verbs (content verbs are split train/heldout) -------------------------------

# Intransitive, animate subject: "the pilot laughs".
INTRANSITIVE_VERBS: tuple[Pair, ...] = tuple(
    Pair(s, p)
    for s, p in [
        ("laughs", "laugh"), ("smiles", "smile"), ("sings", "sing"),
        ("dances", "dance"), ("sleeps", "sleep"), ("cries", "cry"),
        ("waits", "wait"), ("works", "work"), ("runs", "run"),
        ("talks", "talk"), ("jumps", "jump"), ("travels", "travel"),
        ("shouts", "shout"), ("wins", "win"), ("arrives", "arrive"),
        ("leaves", "leave"), ("whispers", "whisper"), ("falls", "fall"),
        ("reads", "read"), ("writes", "write"),
    ]
)

# Transitive with an animate object: "the pilots that the dancer trusts".
TRANSITIVE_ANIMATE_VERBS: tuple[Pair, ...] = tuple(
    Pair(s, p)
    for s, p in [
        ("likes", "like"), ("loves", "love"), ("hates", "hate"),
        ("knows", "know"), ("trusts", "trust"), ("helps", "help"),
        ("meets", "meet"), ("fears", "fear"), ("respects", "respect"),
        ("visits", "visit"), ("remembers", "remember"), ("follows", "follow"),
        ("thanks", "thank"), ("praises", "praise"), ("calls", "call"),
        ("avoids", "avoid"), ("ignores", "ignore"), ("watches", "watch"),
    ]
)

# Transitive with an inanimate object: "the books that the pilot wants".
TRANSITIVE_INANIMATE_VERBS: tuple[Pair, ...] = tuple(
    Pair(s, p)
    for s, p in [
        ("wants", "want"), ("needs", "need"), ("buys", "buy"),
        ("sells", "sell"), ("finds", "find"), ("keeps", "keep"),
        ("prefers", "prefer"), ("enjoys", "enjoy"), ("owns", "own"),
        ("sees", "see"), ("describes", "describe"), ("chooses", "choose"),
    ]
)

# Long verb phrases for long VP coordination; the head verb agrees.
LONG_VPS: tuple[Phrase, ...] = tuple(
    Phrase(s, p, rest)
    for s, p, rest in [
        ("plays", "play", "the piano every evening"),
        ("drinks", "drink", "coffee after every meal"),
        ("walks", "walk", "the dog before breakfast"),
        ("grows", "grow", "tomatoes in the back garden"),
        ("takes", "take", "the early train to the city"),
        ("speaks", "speak", "three languages very fluently"),
        ("studies", "study", "history at the local university"),
        ("paints", "paint", "portraits of the distant mountains"),
        ("collects", "collect", "stamps from foreign countries"),
        ("teaches", "teach", "music to young pupils"),
        ("eats", "eat", "lunch in the park every day"),
        ("drives", "drive", "an old truck to the market"),
        ("builds", "build", "small canoes in the summer"),
    ]
)

# Past-tense verbs that take a reflexive object (number-neutral): "hurt himself".
REFLEXIVE_VERBS: tuple[str, ...] = (
    "hurt", "injured", "doubted", "criticized", "taught", "introduced",
    "amused", "defended", "cut", "fooled", "surprised", "embarrassed",
    "questioned",
)

# Past-tense verbs taking a sentential complement (number-neutral): "said".
COMPLEMENT_VERBS: tuple[str, ...] = (
    "said", "thought", "believed", "hoped", "claimed", "felt",
    "heard", "assumed", "suspected", "guessed", "announced", "insisted",
)

# --- closed-class words (shared by train and heldout) -----------------------------

COPULAS: tuple[Pair, ...] = (Pair("is", "are"), Pair("was", "were"))
LINKING_VERBS: tuple[Pair, ...] = COPULAS + (Pair("seems", "seem"), Pair("looks", "look"))

ANIMATE_ADJECTIVES: tuple[str, ...] = (
    "tall", "young", "old", "happy", "tired", "busy", "clever", "kind",
    "rich", "quiet", "brave", "hungry", "famous", "ready", "polite", "angry",
    "nervous", "friendly",
)
INANIMATE_ADJECTIVES: tuple[str, ...] = (
    "old", "new", "small", "large", "heavy", "cheap", "expensive", "popular",
    "broken", "beautiful", "strange", "useful", "dirty", "clean",
)

# Prepositions (some multi-word) that fit animate and inanimate heads alike.
PREPOSITIONS: tuple[str, ...] = (
    "near", "behind", "beside", "next to", "in front of", "across from",
)

SING_REFLEXIVES: tuple[str, ...] = ("himself", "herself")
PLUR_REFLEXIVE = "themselves"

T = TypeVar("T")


def split_items(items: Sequence[T], split: str) -> tuple[T, ...]:
    """Deterministic split of one word list: every fourth entry (index 3, 7, ...) is held out."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "all":
        return tuple(items)
    held = split == "heldout"
    return tuple(x for i, x in enumerate(items) if (i % 4 == 3) == held)


@dataclass(frozen=True)
class Vocab:
    """The words one split of the generator draws from."""

    split: str
    animate_nouns: tuple[Pair, ...]
    inanimate_nouns: tuple[Pair, ...]
    intransitive_verbs: tuple[Pair, ...]
    transitive_animate_verbs: tuple[Pair, ...]
    transitive_inanimate_verbs: tuple[Pair, ...]
    long_vps: tuple[Phrase, ...]
    reflexive_verbs: tuple[str, ...]
    complement_verbs: tuple[str, ...]
    linking_verbs: tuple[Pair, ...] = LINKING_VERBS
    animate_adjectives: tuple[str, ...] = ANIMATE_ADJECTIVES
    inanimate_adjectives: tuple[str, ...] = INANIMATE_ADJECTIVES
    prepositions: tuple[str, ...] = PREPOSITIONS

    def noun_words(self) -> set[str]:
        """Every noun form (singular and plural) of this split."""
        return {w for p in self.animate_nouns + self.inanimate_nouns for w in p}

    def verb_words(self) -> set[str]:
        """Every content-verb form of this split (the split part of the verbs)."""
        pairs = (
            self.intransitive_verbs
            + self.transitive_animate_verbs
            + self.transitive_inanimate_verbs
        )
        words = {w for p in pairs for w in p}
        words |= {w for p in self.long_vps for w in (p.sing, p.plur)}
        return words | set(self.reflexive_verbs) | set(self.complement_verbs)

    def noun_number(self, word: str) -> str | None:
        """``"sing"``, ``"plur"`` or None when ``word`` is not a noun of this split."""
        for p in self.animate_nouns + self.inanimate_nouns:
            if word == p.sing:
                return "sing"
            if word == p.plur:
                return "plur"
        return None


def get_vocab(split: str = "all") -> Vocab:
    """The vocabulary of one split: ``"train"``, ``"heldout"`` or ``"all"``."""
    return Vocab(
        split=split,
        animate_nouns=split_items(ANIMATE_NOUNS, split),
        inanimate_nouns=split_items(INANIMATE_NOUNS, split),
        intransitive_verbs=split_items(INTRANSITIVE_VERBS, split),
        transitive_animate_verbs=split_items(TRANSITIVE_ANIMATE_VERBS, split),
        transitive_inanimate_verbs=split_items(TRANSITIVE_INANIMATE_VERBS, split),
        long_vps=split_items(LONG_VPS, split),
        reflexive_verbs=split_items(REFLEXIVE_VERBS, split),
        complement_verbs=split_items(COMPLEMENT_VERBS, split),
    )


def target_words() -> set[str]:
    """Every word the generator can mask (all splits): these must be single word pieces."""
    pairs = (
        INTRANSITIVE_VERBS
        + TRANSITIVE_ANIMATE_VERBS
        + TRANSITIVE_INANIMATE_VERBS
        + LINKING_VERBS
        + tuple(Pair(p.sing, p.plur) for p in LONG_VPS)
    )
    words = {w for p in pairs for w in p}
    return words | set(SING_REFLEXIVES) | {PLUR_REFLEXIVE}
