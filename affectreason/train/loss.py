"""The training loss with logits only where it needs them: the reply tokens.

A causal LM's own loss runs the LM head over every position and keeps (batch x tokens x vocabulary)
float32 logits, their log-softmax and its gradient for the backward pass: for SmolLM2 (49,152 words)
that is 0.6 GiB per 1,000 tokens, although the loss covers only the ~240 reply tokens of a chat.

transformers' ``logits_to_keep`` cannot express that: an integer keeps the last N positions, an index tensor
keeps the same positions in every row, and some models (the Qwen2.5-Omni thinker) have no such argument. So
the LM head is intercepted instead (a forward pre-hook on ``get_output_embeddings()``, which every
transformers LM calls on its final hidden states): inside the model's own forward the hook takes the hidden
states of the positions whose next token is a target, runs the head over them in chunks of
``CHUNK_BYTES`` of logits, each chunk recomputed in the backward pass (``torch.utils.checkpoint``), sums
their cross-entropy, and hands the model an empty slice so that it computes no logits of its own. The mean
over target tokens is what the model's loss computes, to float rounding (``tests/test_train_memory.py``).
"""

from __future__ import annotations

from affectreason.train.loop import TrainError

CHUNK_BYTES = 64 * 2**20  # float32 logits held at once per chunk


def logit_transform(config):
    """What a model does to the LM head's output before its loss (softcapping, scaling), or None."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    cap = getattr(text, "final_logit_softcapping", None)
    scale = getattr(text, "logit_scale", None)
    divide = getattr(text, "logits_scaling", None)

    if not (cap or scale or (divide and divide != 1)):
        return None

    def transform(logits):
        import torch

        if scale:
            logits = logits * scale
        if divide and divide != 1:
            logits = logits / divide
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    return transform


def output_head(model):
    """The LM head module of ``model`` (a transformers model, a peft model, or one exposing the method)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise TrainError(f"{type(model).__name__} exposes no LM head (get_output_embeddings); "
                         "use schedule.logits=all")
    return head


def _chunk_loss(head, hidden, targets, transform):
    import torch.nn.functional as F

    logits = head(hidden).float()
    if transform is not None:
        logits = transform(logits)
    return F.cross_entropy(logits, targets, reduction="sum")


class _ReplyHead:
    """The pre-hook: the reply tokens' cross-entropy, computed where the model calls its head."""

    def __init__(self, head, labels, transform):
        self.head, self.labels, self.transform = head, labels, transform
        self.loss_sum, self.count, self.busy = None, 0, False

    def __call__(self, module, args):
        import torch
        from torch.utils.checkpoint import checkpoint

        if self.busy:  # the head called from inside this hook
            return None
        hidden = args[0]
        if hidden.dim() != 3 or hidden.shape[:2] != self.labels.shape:
            raise TrainError(f"the LM head saw hidden states of shape {tuple(hidden.shape)} for labels of shape "
                             f"{tuple(self.labels.shape)}; use schedule.logits=all for this model")
        keep = self.labels[:, 1:] != -100  # position t predicts token t + 1
        selected, targets = hidden[:, :-1][keep], self.labels[:, 1:][keep]
        vocab = int(getattr(module, "out_features", 0) or module.weight.shape[0])
        rows = max(1, CHUNK_BYTES // (4 * vocab))
        total = hidden.new_zeros((), dtype=torch.float32)
        self.busy = True
        try:
            for start in range(0, len(targets), rows):
                part = (self.head, selected[start: start + rows], targets[start: start + rows], self.transform)
                if torch.is_grad_enabled():
                    total = total + checkpoint(_chunk_loss, *part, use_reentrant=False)
                else:
                    total = total + _chunk_loss(*part)
        finally:
            self.busy = False
        self.loss_sum, self.count = total, len(targets)
        return (hidden[:, :0],)


def reply_loss(model, head, batch: dict, transform=None):
    """Mean cross-entropy over the target tokens of ``batch`` (labels -100 elsewhere), with logits only for
    them; ``model`` is called as for training (it may be wrapped for distributed training), ``head`` is its
    LM head module (``output_head`` of the unwrapped model)."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    hook = _ReplyHead(head, batch["labels"], transform)
    handle = head.register_forward_pre_hook(hook)
    try:
        model(**inputs)
    finally:
        handle.remove()
    if hook.loss_sum is None:
        raise TrainError(f"{type(model).__name__} never called its LM head; use schedule.logits=all")
    return hook.loss_sum / max(hook.count, 1)


def lm_loss(model, head, batch: dict, logits: str = "reply", transform=None):
    """The batch's mean reply-token loss: reply-only logits (``reply``) or the model's own loss (``all``)."""
    if logits == "all":
        return model(**batch).loss
    return reply_loss(model, head, batch, transform)
