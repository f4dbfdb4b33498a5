"""Zero-shot classification with a SigLIP text tower (paper Sec. 4.4 and App. A: the teacher's own
text encoder, prompts, temperature and normalisation). The classifier is built as in OpenCLIP
(mlfoundations/open_clip, src/open_clip/zero_shot_classifier.py, ``build_zero_shot_classifier``).

classifier W = renormalised mean over templates of L2-normalised text embeddings, (D, C);
logits = norm(image_embedding) @ W * exp(logit_scale) + logit_bias.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from aloe.data.zero_shot import canonicalize_text, format_prompts


def classifier_from_text_embeddings(text_emb: torch.Tensor) -> torch.Tensor:
    """(C, T, D) text embeddings (class x template) -> (D, C) zero-shot classifier."""
    if text_emb.ndim != 3:
        raise ValueError(f"text embeddings must be (classes, templates, dim), got {tuple(text_emb.shape)}")
    mean = F.normalize(text_emb.float(), dim=-1).mean(dim=1)
    return F.normalize(mean, dim=-1).T.contiguous()


def zeroshot_logits(
    image_emb: torch.Tensor,
    classifier: torch.Tensor,
    logit_scale: float | torch.Tensor,
    logit_bias: float | torch.Tensor,
) -> torch.Tensor:
    """(N, D) image embeddings -> (N, C) logits."""
    scale = torch.as_tensor(logit_scale, dtype=torch.float32).exp()
    bias = torch.as_tensor(logit_bias, dtype=torch.float32)
    return F.normalize(image_emb.float(), dim=-1) @ classifier * scale + bias


@torch.no_grad()
def siglip_text_embeddings(
    model: Any,
    tokenizer: Any,
    class_names: Sequence[str],
    templates: Sequence[str],
    *,
    max_length: int = 64,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """(C, T, D) text embeddings from a HF SiglipModel (or its SiglipTextModel): canonicalised prompts
    (``aloe.data.zero_shot.canonicalize_text``: lowercase, punctuation deleted, whitespace
    collapsed, as SigLIP's evaluation cleans text), padding="max_length".

    Only input_ids are passed, as SigLIP was trained without a text attention mask.
    Templates use ``{}`` for the class name (``aloe.data.zero_shot.load_templates``).
    """
    if not class_names or not templates:
        raise ValueError("zero-shot needs at least one class name and one template")
    texts = [canonicalize_text(p) for row in format_prompts(list(class_names), list(templates)) for p in row]
    encode = getattr(model, "get_text_features", model)  # a SiglipTextModel is its own text encoder
    out = []
    for s in range(0, len(texts), batch_size):
        ids = tokenizer(
            texts[s : s + batch_size], padding="max_length", max_length=max_length,
            truncation=True, return_tensors="pt",
        )["input_ids"]
        out.append(encode(input_ids=ids.to(device)).pooler_output.float().cpu())
    return torch.cat(out).view(len(class_names), len(templates), -1)


def build_siglip_classifier(
    model: Any, tokenizer: Any, class_names: Sequence[str], templates: Sequence[str], **kwargs: Any
) -> tuple[torch.Tensor, float, float]:
    """(classifier (D, C), logit_scale, logit_bias) from a HF SiglipModel and its tokenizer."""
    w = classifier_from_text_embeddings(siglip_text_embeddings(model, tokenizer, class_names, templates, **kwargs))
    return w, float(model.logit_scale.detach().reshape(())), float(model.logit_bias.detach().reshape(()))


@torch.no_grad()
def zeroshot_top1(
    image_encoder: Any,
    batches: Any,
    classifier: torch.Tensor,
    logit_scale: float,
    logit_bias: float,
    *,
    device: str | torch.device = "cpu",
) -> tuple[float, int]:
    """Top-1 (percent) and sample count over (pixels01, labels) batches.

    ``image_encoder`` follows the foundation contract: its ``pooler_output`` is the SigLIP
    image embedding (teacher, B-cosified or ALOE student alike).
    """
    correct = total = 0
    for pixels, labels in batches:
        emb = image_encoder(pixels.to(device)).pooler_output.float().cpu()
        pred = zeroshot_logits(emb, classifier, logit_scale, logit_bias).argmax(dim=1)
        correct += int((pred == torch.as_tensor(labels)).sum())
        total += len(pred)
    if total == 0:
        raise ValueError("zero-shot evaluation got no images")
    return 100.0 * correct / total, total
