"""The one OpenAI-compatible reasoner: ``explain --backend openai`` and ``affectreason query`` both send the explain
prompt with the bounded Explanation schema as ``response_format`` (a vLLM server then constrains decoding to it),
and parse the answer into an ``Explanation``.

A native multimodal model can also be sent the clip's key frames (images) or evenly spaced frames as one video (an
MPEG-4 ``video_url`` part at the frames' own rate: vLLM's chat API for video) and its audio (16 kHz WAV, the rate
Whisper-style encoders take, so the server does not resample). The offline vLLM engine takes the same messages.
Transient HTTP failures are retried with backoff by ``ChatClient``.
"""

from __future__ import annotations

import base64
import io
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectreason.endpoint import ChatClient
from affectreason.errors import UsageError
from affectreason.media import VIDEO_SUFFIXES, clip_media, key_frames, media_frames, read_audio
from affectreason.reason.messages import (
    DEFAULT_PROMPT,
    MAX_CHARS,
    MAX_ITEMS,
    build_messages,
    explanation_schema,
    prompt_id,
    response_format,
)
from affectreason.reason.parse import parse_explanation
from affectreason.schema import Clip, Cues, Explanation


@dataclass
class QueryConfig:
    """How to ask the server."""

    concurrency: int = 8
    """requests in flight at once"""
    timeout_s: float = 300.0
    """per request"""
    retries: int = 3
    """retries of a request after a connection error, 429 or 5xx"""
    backoff_s: float = 1.0
    """first retry delay; doubles each time"""
    max_tokens: int = 768
    max_chars: int = MAX_CHARS
    """maxLength of every free-text field"""
    max_items: int = MAX_ITEMS
    """maxItems of every list (observations, labels)"""
    frames: int = 0
    """key frames sent as images (native vision-language models)"""
    audio: bool = False
    """send the clip's audio (native audio models)"""
    prompt: str = DEFAULT_PROMPT
    """the prompt to render: an adapter's own (its affectreason_adapter.json says which) or reason/explain"""
    video: bool = False
    """send the ``frames`` as one video instead of images (Qwen-VL models)"""
    schema: dict = field(default_factory=explanation_schema)


def wav_base64(samples: np.ndarray, rate: int) -> str:
    """Mono float samples in [-1, 1] as a base64 16-bit PCM WAV."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return base64.b64encode(buffer.getvalue()).decode()


def jpeg_data_url(image: np.ndarray) -> str:
    """An RGB frame as a ``data:image/jpeg;base64,...`` URL."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def mp4_data_url(frames: list[np.ndarray], fps: float) -> str:
    """RGB frames as one MPEG-4 video at ``fps`` (sides cut to even numbers, as 4:2:0 video needs), a data URL."""
    from fractions import Fraction

    import av

    height, width = (side - side % 2 for side in frames[0].shape[:2])
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.qmax = 3  # near-lossless: the model should see what the cues were read from
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return "data:video/mp4;base64," + base64.b64encode(buffer.getvalue()).decode()


def media_parts(clip: Clip, cues: Cues, frames: int, audio: bool, video: bool = False) -> list[dict]:
    """OpenAI content parts for the clip's frames (key frames as images, or evenly spaced frames as one video) and
    audio (empty when neither is asked for or present)."""
    parts: list[dict] = []
    if frames and video and Path(clip.path).suffix.lower() in VIDEO_SUFFIXES:
        images, rate = media_frames(clip_media(clip.path), cues.fps or 5.0, frames, clip.start, clip.end)
        if images:
            parts.append({"type": "video_url", "video_url": {"url": mp4_data_url(images, rate)}})
    elif frames:
        parts += [{"type": "image_url", "image_url": {"url": jpeg_data_url(frame)}}
                  for frame in key_frames(clip, cues, frames)]
    if audio:
        track, _ = read_audio(clip.path, start=clip.start, end=clip.end)
        if track is not None:
            parts.append({"type": "input_audio",
                          "input_audio": {"data": wav_base64(track.samples, track.rate), "format": "wav"}})
    return parts


class ServerReasoner:
    """Explanations from a model behind an OpenAI-compatible server, schema-constrained, optionally with media."""

    batching = "threads"  # requests are independent: a batch keeps ``config.concurrency`` in flight

    def __init__(self, client: ChatClient, config: QueryConfig | None = None, name: str = "server"):
        self.client = client
        self.config = config or QueryConfig()
        self.format = response_format(self.config.max_chars, self.config.max_items, self.config.schema)
        self.prompt = self.config.prompt
        self.name = name
        self.extractor = None

    def messages(self, cues: Cues, clip: Clip | None = None) -> list[dict]:
        """The chat messages: the explain prompt, with media parts before the text of the last message."""
        return clip_messages(cues, clip, self.config)

    def explain(self, cues: Cues, clip: Clip | None = None) -> Explanation:
        """Ask (no cache: a served model may change under the same name) and parse one explanation."""
        text = self.client.complete(self.messages(cues, clip), temperature=0.0, max_tokens=self.config.max_tokens,
                                    response_format=self.format, use_cache=False)
        explanation = parse_explanation(text, extractor=self.extractor, clip_id=cues.clip_id, backend=self.name,
                                        model=self.client.model)
        explanation.prompt = prompt_id(self.prompt)
        return explanation


def clip_messages(cues: Cues, clip: Clip | None, config: QueryConfig) -> list[dict]:
    """The explain prompt's chat messages, with the media ``config`` asks for before the last message's text."""
    messages = build_messages(cues, prompt=config.prompt)
    parts = media_parts(clip, cues, config.frames, config.audio, config.video) if clip is not None else []
    if parts:
        last = messages[-1]
        messages[-1] = {**last, "content": [*parts, {"type": "text", "text": last["content"]}]}
    return messages


def connect(server: str, model: str | None, api_key: str | None, config: QueryConfig | None = None,
            name: str = "server") -> ServerReasoner:
    """A reasoner for ``model`` at ``server`` (default: the first model the server lists)."""
    config = config or QueryConfig()
    client = ChatClient(server, model or "", api_key=api_key, timeout_s=config.timeout_s,
                        max_retries=config.retries, backoff_s=config.backoff_s)
    if not model:
        names = client.models()
        if not names:
            raise UsageError(f"{server} lists no model; pass --model NAME")
        client.model = names[0]
    return ServerReasoner(client, config, name)
