"""A small emotion lexicon: open-vocabulary labels by basic emotion, and words that signal them in speech.

It serves the ``rules`` engine (which labels to emit, which spoken words are emotional cues) and
offline label extraction from free text. Basic emotions follow MELD's seven classes; each label list
is ordered from mild to intense so that intensity can pick the nuance (content -> happy -> delighted).
Word valence comes from VADER (shipped in the ``vadersentiment`` package), not from here.
"""

from __future__ import annotations

import re

from affectreason import labels as label_text  # the generic matching; the vocabulary is here

# basic emotion -> labels from mild to intense
NUANCES: dict[str, tuple[str, ...]] = {
    "joy": ("content", "pleased", "happy", "joyful", "delighted"),
    "sadness": ("disappointed", "sad", "upset", "heartbroken"),
    "anger": ("annoyed", "frustrated", "angry", "furious"),
    "fear": ("uneasy", "worried", "anxious", "afraid", "terrified"),
    "surprise": ("curious", "surprised", "astonished", "shocked"),
    "disgust": ("displeased", "disgusted", "revolted"),
    "neutral": ("neutral", "calm"),
}

# words (and fixed phrases) in a transcript that point to a basic emotion; VADER handles general valence
CUE_WORDS: dict[str, tuple[str, ...]] = {
    "joy": ("happy", "glad", "great", "awesome", "wonderful", "love", "thanks", "thank you", "yay", "congratulations",
            "excited", "fantastic", "perfect", "amazing", "haha", "fun", "beautiful", "proud", "celebrate"),
    "sadness": ("sorry", "sad", "miss", "lost", "cry", "crying", "hurt", "alone", "lonely", "unfortunately",
                "depressed", "broke up", "died", "tired", "gone"),
    "anger": ("damn", "hell", "shut up", "stupid", "idiot", "hate", "angry", "mad", "furious", "how dare",
              "ridiculous", "get out", "annoying", "sick of"),
    "fear": ("scared", "afraid", "nervous", "worried", "terrified", "panic", "help", "oh no", "frightened"),
    "surprise": ("what?", "really?", "wow", "oh my god", "oh my gosh", "no way", "seriously?", "whoa", "huh?",
                 "you're kidding", "are you serious", "what!"),
    "disgust": ("gross", "ew", "eww", "yuck", "disgusting", "nasty", "sick", "ugh"),
}

LABEL_TO_BASIC = {label: basic for basic, labels in NUANCES.items() for label in labels}

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


def cue_words(text: str) -> dict[str, list[str]]:
    """Emotion-signalling words/phrases found in ``text``, by basic emotion.

    >>> cue_words("Oh no, I'm so sorry. Really?")
    {'sadness': ['sorry'], 'fear': ['oh no'], 'surprise': ['really?']}
    """
    lowered = text.lower()
    found: dict[str, list[str]] = {}
    for basic, patterns in _WORD.items():
        hits = [CUE_WORDS[basic][i] for i, p in enumerate(patterns) if p.search(lowered)]
        if hits:
            found[basic] = hits
    return found


def extract_labels(text: str, vocabulary: set[str] | None = None) -> list[str]:
    """Emotion labels named in free text, in order of first mention (lexicon labels, or a given vocabulary).

    >>> extract_labels("She seems happy, maybe a little anxious; overall happy.")
    ['happy', 'anxious']
    """
    return label_text.extract_labels(text, vocabulary or LABEL_TO_BASIC)
