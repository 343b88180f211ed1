"""Projectors from encoder features to LLM input embeddings, and AffectGPT-style pre-fusion.

Every projector maps a padded feature sequence (batch x steps x dim, with a mask of real steps) to a
fixed number of LLM-width tokens, so a placeholder in the prompt always expands to the same count:
- ``linear`` / ``mlp``: project each step, then average the real steps in ``tokens`` equal time spans;
- ``qformer``: ``tokens`` learned queries cross-attend to the projected steps (BLIP-2's idea, small).
``PreFusion`` (AffectGPT) first lets learned queries attend over the audio and video steps together
(each tagged with a modality embedding), so the LLM receives already fused audio-visual tokens.
"""

from __future__ import annotations

import torch
from torch import nn

PROJECTORS = ("linear", "mlp", "qformer")


def span_means(steps: torch.Tensor, mask: torch.Tensor, tokens: int) -> torch.Tensor:
    """(batch, tokens, dim): the mean of the real steps in each of ``tokens`` equal time spans."""
    rows = []
    for sequence, valid in zip(steps, mask, strict=True):
        real = sequence[valid]
        if len(real) == 0:
            rows.append(sequence.new_zeros(tokens, sequence.shape[-1]))
            continue
        spans = torch.tensor_split(torch.arange(len(real), device=real.device), min(tokens, len(real)))
        pooled = torch.stack([real[span].mean(dim=0) for span in spans])
        if len(pooled) < tokens:  # fewer steps than tokens: repeat the last to keep the count fixed
            pooled = torch.cat([pooled, pooled[-1:].expand(tokens - len(pooled), -1)])
        rows.append(pooled)
    return torch.stack(rows)


class QueryAttention(nn.Module):
    """``tokens`` learned queries cross-attending to a sequence (one pre-norm transformer decoder layer)."""

    def __init__(self, width: int, tokens: int, heads: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(tokens, width) * 0.02)
        self.layer = nn.TransformerDecoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0,
                                                batch_first=True, norm_first=True)

    def forward(self, steps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, width)."""
        empty = ~mask.any(dim=1)
        mask = mask.clone()
        mask[empty, 0] = True  # a clip without steps attends to one zero step instead of nothing
        queries = self.queries.expand(len(steps), -1, -1)
        return self.layer(queries, steps, memory_key_padding_mask=~mask)


def _heads(width: int) -> int:
    return next(h for h in (8, 4, 2, 1) if width % h == 0)


class Projector(nn.Module):
    """Encoder features -> ``tokens`` LLM-width embeddings."""

    def __init__(self, kind: str, in_dim: int, out_dim: int, tokens: int):
        super().__init__()
        if kind not in PROJECTORS:
            raise ValueError(f"projector {kind!r}: choose one of {PROJECTORS}")
        self.kind, self.tokens = kind, tokens
        if kind == "linear":
            self.net = nn.Linear(in_dim, out_dim)
        else:
            self.net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        self.queries = QueryAttention(out_dim, tokens, _heads(out_dim)) if kind == "qformer" else None

    def forward(self, steps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, out_dim)."""
        projected = self.net(steps)
        if self.queries is not None:
            return self.queries(projected, mask)
        return span_means(projected, mask, self.tokens)


class PreFusion(nn.Module):
    """AffectGPT-style pre-fusion: learned queries attend over all modalities' steps, then a projector."""

    def __init__(self, dims: dict[str, int], width: int, out_dim: int, tokens: int, kind: str = "mlp"):
        super().__init__()
        self.order = sorted(dims)
        self.inputs = nn.ModuleDict({m: nn.Linear(d, width) for m, d in dims.items()})
        self.modality = nn.ParameterDict({m: nn.Parameter(torch.zeros(width)) for m in dims})
        self.queries = QueryAttention(width, tokens, _heads(width))
        self.out = Projector("linear" if kind == "linear" else "mlp", width, out_dim, tokens)

    def forward(self, steps: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> torch.Tensor:
        """(batch, tokens, out_dim) fused tokens."""
        joined = torch.cat([self.inputs[m](steps[m]) + self.modality[m] for m in self.order], dim=1)
        mask = torch.cat([masks[m] for m in self.order], dim=1)
        fused = self.queries(joined, mask)
        return self.out(fused, torch.ones(fused.shape[:2], dtype=torch.bool, device=fused.device))
