"""RAM++ and RAM: Swin backbone → image tokens → label queries → tagging head → one logit per tag.

Parameter names are those of the official checkpoints, so they load strictly after only the
documented clean-up (see ``checkpoint.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ram_model.config import RamConfig
from ram_model.head import TaggingHead
from ram_model.swin import SwinBackbone

# Tags scored at a time when no chunk size is given. The head's activations grow with
# batch × tags (about 30 MB per image per 1,000 tags in fp32), and tags never interact, so
# scoring them in chunks bounds memory; 512 still keeps each matrix product large.
DEFAULT_TAG_CHUNK = 512


class RamTagger(nn.Module):
    """RAM++ (``variant="ram_plus"``) or RAM (``variant="ram"``) built from a :class:`RamConfig`.

    ``model(images)`` returns logits ``[B, C]`` for preprocessed images ``[B, 3, H, W]``.
    """

    def __init__(self, config: RamConfig) -> None:
        super().__init__()
        self.config = config
        head = config.head
        self.visual_encoder = SwinBackbone(config.swin)
        self.image_proj = nn.Linear(config.swin.vision_width, config.label_dim)
        self.label_embed = nn.Parameter(
            torch.zeros(config.num_class * config.descriptions_per_class, config.label_dim)
        )
        if config.variant == "ram_plus":
            self.reweight_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.wordvec_proj = nn.Linear(config.label_dim, head.hidden_size)
        self.tagging_head = TaggingHead(head, config.label_dim)
        self.fc = nn.Linear(head.hidden_size, 1)

    @property
    def num_class(self) -> int:
        return self.config.num_class

    def matmul_only_parameters(self) -> list[str]:
        """Names of the parameters used only as operands of matrix products: linear and convolution
        layers, and the label embeddings. Autocast casts exactly these to the compute precision on
        every call, so holding them in that precision from the start gives the same results and
        keeps one copy instead of two."""
        names = ["label_embed"]
        for prefix, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                names += [f"{prefix}.{name}" for name, _ in module.named_parameters(recurse=False)]
        return names

    def class_label_embed(self) -> torch.Tensor:
        """The built-in label embeddings as ``[C, D, label_dim]``."""
        return self.label_embed.view(self.config.num_class, self.config.descriptions_per_class, -1)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Image tokens in label space: ``[B, 1 + HW, label_dim]`` (token 0 is the mean token)."""
        return self.image_proj(self.visual_encoder(images))

    def label_queries(self, image_embeds: torch.Tensor, label_embed: torch.Tensor) -> torch.Tensor:
        """``wordvec_proj`` of each tag's label embedding, before the ReLU: ``[B, T, hidden]``.

        ``label_embed`` is ``[T, D, label_dim]``. RAM++ weighs the D descriptions of every tag by
        their softmaxed similarity to the image's mean token; RAM (D = 1) uses the row as it is.
        """
        batch = image_embeds.shape[0]
        if self.config.variant == "ram":
            if label_embed.shape[1] != 1:
                raise ValueError("RAM takes exactly one label embedding per tag")
            return self.wordvec_proj(label_embed[:, 0]).unsqueeze(0).expand(batch, -1, -1)
        cls = image_embeds[:, 0]
        cls = cls / cls.norm(dim=-1, keepdim=True)
        num_tags, per_tag, dim = label_embed.shape
        sims = self.reweight_scale.exp() * (cls @ label_embed.reshape(-1, dim).t())
        weights = F.softmax(sims.view(batch, num_tags, per_tag), dim=-1)
        reweighted = torch.einsum("btd,tdk->btk", weights, label_embed)
        return self.wordvec_proj(reweighted)

    def score(self, image_embeds: torch.Tensor, label_embed: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T]`` for the tags whose label embeddings are given (``[T, D, label_dim]``)."""
        queries = F.relu(self.label_queries(image_embeds, label_embed))
        return self.fc(self.tagging_head(queries, image_embeds)).squeeze(-1)

    def score_chunked(
        self,
        image_embeds: torch.Tensor,
        label_sets: Sequence[torch.Tensor],
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """Score several label sets (built-in, custom, ...) in one pass, ``chunk_size`` tags at a time
        (:data:`DEFAULT_TAG_CHUNK` when not given).

        Tags never interact in the head, so chunking bounds memory without changing any logit.
        """
        step = chunk_size or DEFAULT_TAG_CHUNK
        pieces = []
        for label_embed in label_sets:
            for start in range(0, label_embed.shape[0], step):
                pieces.append(self.score(image_embeds, label_embed[start : start + step]))
        return torch.cat(pieces, dim=1)

    def forward(
        self,
        images: torch.Tensor,
        tag_indices: torch.Tensor | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, C]`` (or ``[B, len(tag_indices)]`` for a subset of the built-in tags)."""
        label_embed = self.class_label_embed()
        if tag_indices is not None:
            label_embed = label_embed[tag_indices]
        return self.score_chunked(self.encode_image(images), [label_embed], chunk_size)

    def forward_intermediates(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every stage's output, named as in the golden reference file, for parity checks."""
        visual = self.visual_encoder(images)
        image_embeds = self.image_proj(visual)
        wordvec = self.label_queries(image_embeds, self.class_label_embed())
        head_out = self.tagging_head(F.relu(wordvec), image_embeds)
        return {
            "visual_encoder_out": visual,
            "image_embeds": image_embeds,
            "wordvec_proj_out": wordvec,
            "tagging_head_out": head_out,
            "logits": self.fc(head_out).squeeze(-1),
        }
