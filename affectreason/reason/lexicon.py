"""A small emotion lexicon: open-vocabulary labels by basic emotion, and words that signal them in speech.

It serves the ``rules`` engine (which labels to emit, which spoken words are emotional cues) and
offline label extraction from free text. Basic emotions follow MELD's seven classes; each label list
is ordered from mild to intense so that intensity can pick the nuance (content -> happy -> delighted), and
lies on its basic emotion's ring of the emotion wheel the evaluator uses (``affectreason.eval.wheel``): there
"frustrated" reads as sad, "curious" as joyful, "displeased" as angry and "astonished" / "shocked" on no ring,
so they are labels the lexicon knows (``LABEL_TO_BASIC``) but not nuances the engine emits.
Word valence comes from VADER (MIT, shipped in the ``vadersentiment`` package), not from here.

Licence and sources of ``CUE_WORDS``: the list is affectreason's own, under the package's Apache-2.0 licence,
so users may rely on it as they rely on the code. It was written by hand from everyday English: the emotion
terms of ``NUANCES`` and ``EMOTION_WORDS`` below grouped by the basic emotion they name (after Parrott's tree
of primary emotions), their common inflections, and conversational interjections and fixed phrases ("oh no",
"no way", "shut up"). No entry is copied from the NRC Emotion Lexicon (research use only) or another list
whose licence is unclear (``empath`` 0.89 on PyPI states none), and none was picked by looking at the MELD
utterances the engine is calibrated or tested on. ``emotion_evidence`` reads the words in context: a cue word
within three words after a negator of the same clause ("not happy", "I'm not angry") is negated (negated joy
counts half toward sadness, a negated negative emotion toward nothing), an intensifier right before it
("very angry", "so happy") weighs it 1.5, a diminisher ("a bit", "slightly") 0.5.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from affectreason import labels as label_text  # the generic matching; the vocabulary is here

# basic emotion -> labels from mild to intense
NUANCES: dict[str, tuple[str, ...]] = {
    "joy": ("content", "pleased", "happy", "joyful", "delighted"),
    "sadness": ("disappointed", "sad", "upset", "heartbroken"),
    "anger": ("annoyed", "irritated", "angry", "furious"),
    "fear": ("uneasy", "worried", "anxious", "afraid", "terrified"),
    "surprise": ("startled", "surprised", "amazed", "astounded"),
    "disgust": ("disgusted", "repulsed", "revolted"),
    "neutral": ("neutral", "calm"),
}

# words (and fixed phrases) in a transcript that point to a basic emotion; VADER handles general valence
CUE_WORDS: dict[str, tuple[str, ...]] = {
    "joy": ("happy", "happier", "happiest", "happiness", "glad", "great", "awesome", "wonderful", "love", "loved",
            "lovely", "thanks", "thank you", "yay", "congratulations", "congrats", "excited", "exciting", "fantastic",
            "perfect", "amazing", "haha", "fun", "beautiful", "proud", "celebrate", "delighted", "thrilled",
            "joy", "enjoy", "enjoyed", "pleased", "cheers", "hooray", "woohoo", "brilliant", "terrific", "cool",
            "sweet", "excellent", "good news", "can't wait", "relieved", "grateful", "adore"),
    "sadness": ("sorry", "sad", "sadly", "miss", "missed", "lost", "cry", "crying", "cried", "hurt", "alone",
                "lonely", "unfortunately", "depressed", "broke up", "died", "tired", "gone", "heartbroken",
                "unhappy", "miserable", "upset", "disappointed", "disappointing", "tears", "grief", "funeral",
                "dumped", "regret", "sigh", "poor thing", "too bad", "i wish"),
    "anger": ("damn", "hell", "shut up", "stupid", "idiot", "hate", "hated", "angry", "mad", "furious",
              "how dare", "ridiculous", "get out", "annoying", "annoyed", "sick of", "pissed", "jerk", "liar",
              "lied", "screw you", "how could you", "enough", "leave me alone", "irritating", "outrageous",
              "fed up", "unbelievable", "back off", "bastard", "moron"),
    "fear": ("scared", "scary", "afraid", "nervous", "worried", "worry", "terrified", "panic", "help", "oh no",
             "frightened", "anxious", "fear", "freaking out", "freaked", "dangerous", "careful", "what if"),
    "surprise": ("what?", "really?", "wow", "oh my god", "oh my gosh", "no way", "seriously?", "whoa", "huh?",
                 "you're kidding", "are you serious", "what!", "surprise", "surprised", "surprising", "shocked",
                 "unexpected", "can't believe", "oh!", "what the", "omg"),
    "disgust": ("gross", "ew", "eww", "yuck", "disgusting", "disgusted", "nasty", "sick", "ugh", "revolting",
                "creepy", "awful smell", "vomit", "puke"),
}
NEGATORS = frozenset("not no never nothing nobody neither nor without hardly cannot".split())
INTENSIFIERS = frozenset("very so really extremely totally absolutely incredibly too such completely utterly "
                         "super truly deeply".split())
DIMINISHERS = frozenset("bit slightly somewhat little kinda sorta barely".split())  # "a bit", "a little"
INTENSIFIED, DIMINISHED, NEGATED_JOY_AS_SADNESS = 1.5, 0.5, 0.5
NEGATION_SCOPE = 3  # words before the cue word (Hutto & Gilbert's VADER looks three words back, too)
CLAUSE_END = re.compile(r"[.,;:!?]|\bbut\b")

# labels of a basic emotion that the engine does not emit (off their ring of the wheel) but reads in answers
OTHER_LABELS = {"frustrated": "anger", "curious": "surprise", "astonished": "surprise", "shocked": "surprise",
                "displeased": "disgust"}
LABEL_TO_BASIC = {label: basic for basic, labels in NUANCES.items() for label in labels} | OTHER_LABELS

# Open-vocabulary emotion words a label may be (adjectives and nouns, after Parrott's tree, the GEW and the
# emotion words of MELD / MER / EMER answers). A label none of whose words is here is kept but recorded as
# unknown (``Explanation.unknown_labels``): a misspelling, a non-emotion word ("face", "speech") or a rare term.
EMOTION_WORDS: frozenset[str] = frozenset(LABEL_TO_BASIC) | frozenset("""
    admiration admiring adoration adoring affection affectionate afraid aggravated aggressive agitated agitation
    agony alarm alarmed alert alienated amazed amazement ambivalent amused amusement anger angry anguish annoyance
    annoyed anticipation anxiety anxious apathetic apprehension apprehensive aroused arrogant ashamed astonished
    astonishment awe awed awkward bashful betrayed bitter bitterness bliss blissful bored boredom bothered brave
    calm calmness cheerful cheerfulness cheery comfortable compassion compassionate composed concern concerned
    confident confidence confused confusion contempt contemptuous content contented contentment courageous cranky
    craving curiosity curious defeated defensive dejected delight delighted depressed depression desire desperate
    despair determined devastated disappointed disappointment disapproval disbelief discomfort discontent
    discouraged disgust disgusted disheartened dismay dismayed displeased displeasure dissatisfied distracted
    distress distressed distrust disturbed doubt doubtful dread eager eagerness ecstasy ecstatic elated elation
    embarrassed embarrassment empathy enchanted energetic engaged enjoyment enraged enthusiasm enthusiastic envious
    envy euphoria euphoric exasperated exasperation excited excitement exhausted fascinated fear fearful ferocious
    fond fondness frightened frustrated frustration fulfilled furious fury glad gladness gloomy glee gleeful
    gratitude grateful grief grieving grouchy grumpy guilt guilty happiness happy hate hatred helpless hesitant
    homesick hope hopeful hopeless hopelessness horrified horror hostile hostility humiliated humiliation hurt
    hysterical impatient impatience indifferent indignant indignation infatuated insecure insecurity inspired
    insulted interest interested irate irritable irritated irritation isolated jealous jealousy jolly jovial joy
    joyful jubilant kind lonely loneliness longing love loving mad melancholy miserable misery moody mortified
    mournful nervous nervousness neutral nostalgia nostalgic offended optimism optimistic outraged outrage
    overjoyed overwhelmed panic panicked passionate peaceful pensive pity playful pleased pleasure proud pride
    puzzled rage regret regretful rejected relaxed relief relieved reluctant remorse remorseful resentful
    resentment resigned restless revulsion romantic sad sadness sarcastic satisfaction satisfied scared scorn
    scornful secure sensitive sentimental serene serenity shame shamed shocked shock shy skeptical sorrow
    sorrowful sorry spiteful startled stressed stress stunned suffering sulky surprise surprised suspicious
    sympathetic sympathy tender tenderness tense tension terrified terror thankful thrilled timid tired tolerant
    torment tormented triumphant troubled trust trusting uncertain uncomfortable uneasy unhappy upset vengeful
    vexed vulnerable wary weary woeful wonder worried worry wrath yearning zeal zest
""".split())


def unknown_labels(labels: list[str], vocabulary: set[str] | frozenset[str] | None = None) -> list[str]:
    """The labels none of whose words is an emotion word of ``vocabulary`` (``EMOTION_WORDS`` by default).

    >>> unknown_labels(["happy", "slightly annoyed", "face", "irritated", "blorp"])
    ['face', 'blorp']
    """
    known = vocabulary or EMOTION_WORDS
    return [label for label in labels
            if label not in known and not any(word in known for word in re.split(r"[ '-]", label))]
_WORD = {basic: [re.compile(r"(?<![a-z])" + re.escape(w) + (r"(?![a-z])" if w[-1].isalpha() else ""))
                 for w in words] for basic, words in CUE_WORDS.items()}


def nuance(basic: str, strength: float) -> str:
    """The label of a basic emotion at a strength in [0, 1].

    >>> nuance("joy", 0.95), nuance("joy", 0.5), nuance("joy", 0.0)
    ('delighted', 'happy', 'content')
    """
    labels = NUANCES[basic]
    index = min(len(labels) - 1, int(max(0.0, min(1.0, strength)) * len(labels)))
    return labels[index]


@dataclass
class Evidence:
    """What the words of an utterance say about each basic emotion."""

    scores: dict[str, float] = field(default_factory=dict)
    """basic emotion -> summed weight of its (non-negated) cue words, plus negated joy toward sadness"""
    hits: dict[str, list[str]] = field(default_factory=dict)
    """basic emotion -> its cue words found and not negated, in lexicon order"""
    negated: list[str] = field(default_factory=list)
    """cue words found under a negator ("not happy")"""


def _context(lowered: str, start: int) -> list[str]:
    """The words of the same clause before a match, at most ``NEGATION_SCOPE`` of them."""
    before = CLAUSE_END.split(lowered[:start])[-1]
    return re.findall(r"[a-z']+", before)[-NEGATION_SCOPE:]


def _weight(context: list[str]) -> float:
    """Intensifier or diminisher right before the cue word (``a bit``, ``kind of`` count as diminishers)."""
    last = context[-1] if context else ""
    if last in INTENSIFIERS:
        return INTENSIFIED
    if last in DIMINISHERS or context[-2:] in (["kind", "of"], ["sort", "of"]):
        return DIMINISHED
    return 1.0


def emotion_evidence(text: str) -> Evidence:
    """Cue words of ``text`` by basic emotion, with negation and intensifiers applied.

    >>> e = emotion_evidence("I'm not happy. I'm very angry!")
    >>> e.scores, e.negated
    ({'sadness': 0.5, 'anger': 1.5}, ['happy'])
    """
    lowered = text.lower().replace("’", "'")
    evidence = Evidence()
    for basic, patterns in _WORD.items():
        for word, pattern in zip(CUE_WORDS[basic], patterns, strict=True):
            match = pattern.search(lowered)
            if match is None:
                continue
            context = _context(lowered, match.start())
            if any(w in NEGATORS or w.endswith("n't") for w in context) and word[-1].isalpha():
                evidence.negated.append(word)
                if basic == "joy":
                    evidence.scores["sadness"] = evidence.scores.get("sadness", 0.0) + NEGATED_JOY_AS_SADNESS
                continue
            evidence.hits.setdefault(basic, []).append(word)
            evidence.scores[basic] = evidence.scores.get(basic, 0.0) + _weight(context)
    return evidence


def cue_words(text: str) -> dict[str, list[str]]:
    """Emotion-signalling words/phrases found in ``text`` and not negated, by basic emotion.

    >>> cue_words("Oh no, I'm so sorry. Really?")
    {'sadness': ['sorry'], 'fear': ['oh no'], 'surprise': ['really?']}
    >>> cue_words("I'm not angry")
    {}
    """
    return emotion_evidence(text).hits


def extract_labels(text: str, vocabulary: set[str] | None = None) -> list[str]:
    """Emotion labels named in free text, in order of first mention (lexicon labels, or a given vocabulary).

    >>> extract_labels("She seems happy, maybe a little anxious; overall happy.")
    ['happy', 'anxious']
    """
    return label_text.extract_labels(text, vocabulary or LABEL_TO_BASIC)
