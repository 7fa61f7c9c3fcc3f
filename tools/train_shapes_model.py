"""Train the shapes reference model: a small LLaVA-1.5-geometry model that has learned the shapes world.

This is a repo asset, not part of the package (the product never trains what it prunes). It writes a complete
Hugging Face checkpoint (safetensors, config, tokenizer, processor with the LLaVA-1.5 chat template) that
``load_llava`` reads, plus ``training_log.json`` (learning curve, seeds, wall time).

How it trains fast on 2 CPU cores (DESIGN.md section 5):

- scenes are rendered once (JPEG round trip included, as evaluation reads JPEGs) into a uint8 tensor cache;
- stage 1 (``--vision-steps``) trains the vision tower alone: a dense per-patch loss on the features at
  ``vision_feature_layer`` (colour, shape, word, column, centre and sign-letter class under each of the 576
  patches, background patches weighted ``--bg-weight``) and a per-object loss (shape or word from the mean of
  the object's patch features, as attention reads them), through linear heads that are thrown away. The patch
  embedding starts at the patches' principal components (``--pca-init``) and the positions at 2-D sin-cos
  (``--sincos-init``). Held-out probes of what the tower reads are logged (``vision_curve``);
- later stages keep the tower frozen (``--freeze-vision``) and its features cached, so a step costs only the
  projector and the language model;
- attention and readout losses on each hop of a GQA-style answer (the generator knows which objects each
  question word names): ``--word-weight`` (layer 0: each colour/shape word looks at its objects),
  ``--readout-weight`` (colour, shape, column and count of those objects linearly readable off the word),
  ``--route-weight`` (layer 1: the answer position looks at each object mention, one head per mention). With
  the answer loss alone, or with ``--attn-weight`` (the answer position looks straight at the objects), GQA
  stayed near its answer prior: attention landed on every object alike, and where it was forced onto the right
  one the answer still did not read it;
- several questions per image, and the prompt up to the image computed once per image (causal attention: it
  never sees the question), so the language model costs per question only its ~40 text tokens;
- a curriculum: the first steps draw scenes with at most two shapes;
- the vision tower runs only up to the feature layer (the layers after it get no gradient anyway).

The answer loss uses exactly the evaluation prompt (``format_question`` + ``build_prompt`` through the
processor's chat template) followed by `` <answer></s>``. Deterministic for a given ``--seed`` / ``--data-seed``
and thread count.

Usage (the shipped checkpoint: ``make shapes-model`` runs the three stages and merges their logs)::

    python tools/train_shapes_model.py --out runs/shapes-vision --pca-init --sincos-init --vision-steps 600 --steps 1
    python tools/train_shapes_model.py --init-from runs/shapes-vision --freeze-vision --out runs/shapes-stage2 ...
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from adaptive_svdprune.data.prompts import build_prompt, format_question
from adaptive_svdprune.models.tiny import _IMAGE_SIZE, _PATCH_SIZE, LLAVA_15_CHAT_TEMPLATE, _quiet_progress
from adaptive_svdprune.shapes.questions import gqa_question, question_vocabulary, sign_question
from adaptive_svdprune.shapes.world import PATCH_LABELS, patch_classes, render_scene, sample_scene

_SPECIALS = ("<unk>", "<s>", "</s>")
_TRAIN_SALT, _VAL_SALT = 101, 202  # scene streams of the training script (the CLI's splits use others)


def train_tokenizer(path: Path, vocab_size: int = 600) -> Any:
    """Byte-level BPE trained on the world's questions/answers and the prompt text (as tiny.py's, other corpus)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    vocabulary = question_vocabulary()
    # Answers follow "ASSISTANT:" after a space: train them as " word" so each is one token.
    lines = vocabulary * 20 + [f"ASSISTANT: {w}" for w in vocabulary if " " not in w] * 40
    lines += [format_question("x", ["stop", "open"]), "USER: ASSISTANT:"] * 50
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(_SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    tok.add_special_tokens(["<image>", "<pad>"])
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", extra_special_tokens={"image_token": "<image>"},
                                   padding_side="left", model_max_length=4096)
    fast.save_pretrained(path)
    return fast


def build_model(path: Path, args: argparse.Namespace) -> tuple[Any, Any]:
    """Untrained model + processor with LLaVA-1.5's geometry (as models/tiny.py builds it), small widths."""
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        GenerationConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = train_tokenizer(path)
    vision = CLIPVisionConfig(hidden_size=args.vision_width, intermediate_size=2 * args.vision_width,
                              num_hidden_layers=args.vision_layers + 1, num_attention_heads=4,
                              image_size=_IMAGE_SIZE, patch_size=_PATCH_SIZE, projection_dim=args.vision_width)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=args.text_width, intermediate_size=2 * args.text_width,
                       num_hidden_layers=args.text_layers, num_attention_heads=4, num_key_value_heads=4,
                       max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                       tie_word_embeddings=False)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-2,
                         vision_feature_select_strategy="default",
                         image_seq_length=(_IMAGE_SIZE // _PATCH_SIZE) ** 2, projector_hidden_act="gelu")
    torch.manual_seed(args.seed)
    model = LlavaForConditionalGeneration(config)
    if getattr(args, "sincos_init", False):
        _init_sincos_positions(model)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=8)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": _IMAGE_SIZE},
                                            crop_size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=_PATCH_SIZE,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=LLAVA_15_CHAT_TEMPLATE)
    return model, processor


def _init_sincos_positions(model: Any) -> None:
    """Start the vision tower's learned position embeddings at 2-D sine-cosine values (a training choice).

    A random start has no notion of which patches are neighbours, and the tower then took hundreds of steps
    to read a shape or a word, which span several patches; with 2-D sin-cos, attention to neighbours is
    there from the start. The embeddings stay trainable; the CLS position starts at zero.
    """
    tower = model.model.vision_tower
    emb = getattr(tower, "vision_model", tower).embeddings.position_embedding.weight
    dim, grid = emb.shape[1], _IMAGE_SIZE // _PATCH_SIZE
    quarter = dim // 4
    freqs = 1.0 / (100.0 ** (torch.arange(quarter, dtype=torch.float32) / max(1, quarter)))
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                                indexing="ij")
    parts = []
    for axis in (rows.reshape(-1), cols.reshape(-1)):
        angle = axis[:, None] * freqs[None]
        parts += [angle.sin(), angle.cos()]
    table = torch.cat(parts, dim=1)
    with torch.no_grad():
        emb.zero_()
        emb[1:, : table.shape[1]] = table


# -- data -------------------------------------------------------------------------------------------------------
class SceneCache:
    """Scenes rendered once: uint8 images ``(N, 336, 336, 3)`` (after a JPEG round trip) and patch labels."""

    def __init__(self, seed: int, salt: int, n_shapes: int, n_signs: int, easy: int) -> None:
        self.scenes = []
        for i in range(n_shapes):
            self.scenes.append(sample_scene(seed, i, max_objects=2 if i < easy else 6, salt=salt))
        for i in range(n_signs):
            self.scenes.append(sample_scene(seed, 10**6 + i, with_sign=True, max_objects=2 if i < easy // 3 else 6,
                                            salt=salt))
        self.images = torch.empty(len(self.scenes), _IMAGE_SIZE, _IMAGE_SIZE, 3, dtype=torch.uint8)
        self.labels = torch.empty(len(self.scenes), len(PATCH_LABELS), (_IMAGE_SIZE // _PATCH_SIZE) ** 2,
                                  dtype=torch.long)
        for i, scene in enumerate(self.scenes):
            buf = io.BytesIO()
            render_scene(scene).save(buf, format="JPEG", quality=95)
            from PIL import Image

            self.images[i] = torch.from_numpy(np.asarray(Image.open(buf).convert("RGB")).copy())
            classes = patch_classes(scene)
            self.labels[i] = torch.from_numpy(np.stack([classes[k] for k in PATCH_LABELS]))
        self.n_shapes, self.easy, self.n_signs = n_shapes, easy, n_signs


class Prompts:
    """Token ids of prompts (cached by question text) and answers, exactly as evaluation builds them."""

    def __init__(self, processor: Any) -> None:
        from PIL import Image

        self.processor = processor
        self.blank = Image.new("RGB", (_IMAGE_SIZE, _IMAGE_SIZE))
        self.cache: dict[str, list[int]] = {}
        self.eos = processor.tokenizer.eos_token_id

    def prompt(self, question_text: str) -> list[int]:
        if question_text not in self.cache:
            text = build_prompt(self.processor, question_text)
            ids = self.processor(images=self.blank, text=text, return_tensors="pt")["input_ids"][0]
            self.cache[question_text] = ids.tolist()
        return self.cache[question_text]

    def answer(self, answer: str) -> list[int]:
        return [*self.processor.tokenizer(" " + answer, add_special_tokens=False)["input_ids"], self.eos]


# (prompt ids, answer ids + EOS, question family, patches of the objects the answer depends on)
Example = tuple[list[int], list[int], str, list[int]]


def make_example(cache: SceneCache, idx: int, rng: np.random.Generator, prompts: Prompts,
                 ocr_prob: float) -> Example:
    scene = cache.scenes[idx]
    if scene.sign is not None:
        q, ocr = sign_question(scene, rng)
        text = format_question(q.question, ocr if rng.random() < ocr_prob else None)
    else:
        q = gqa_question(scene, rng)
        text = format_question(q.question)
    about = sorted({p for i in q.about for p in scene.objects[i].patches})
    return prompts.prompt(text), prompts.answer(q.answer), q.family, about


#: A question word an object can be named by: ("colour" | "shape", the value, whether it is a plural).
Word = tuple[str, str, bool]


def content_tokens(tokenizer: Any) -> dict[int, Word]:
    """The words a GQA-style question hinges on, by token id: colours, shapes and their plurals."""
    from adaptive_svdprune.shapes.questions import _PLURAL
    from adaptive_svdprune.shapes.world import COLOURS, SHAPES

    words = [*(("colour", c, False, c) for c in COLOURS), *(("shape", s, False, s) for s in SHAPES),
             *(("shape", s, True, p) for s, p in _PLURAL.items())]
    out = {}
    for kind, value, plural, text in words:
        ids = tokenizer(" " + text, add_special_tokens=False)["input_ids"]
        if len(ids) == 1:  # the shipped tokenizer has every one as one token
            out[ids[0]] = (kind, value, plural)
    return out


def route_positions(prompt: list[int], content: dict[int, Word]) -> list[int]:
    """Positions of the question's content words in ``prompt`` (after the image; the routing loss's targets)."""
    return [i for i, t in enumerate(prompt) if t in content]


def mention_groups(prompt: list[int], content: dict[int, Word]) -> list[list[int]]:
    """The question's object mentions: runs of adjacent content words ("red circle", "blue square", "crosses")."""
    groups: list[list[int]] = []
    for pos in route_positions(prompt, content):
        if groups and groups[-1][-1] == pos - 1:
            groups[-1].append(pos)
        else:
            groups.append([pos])
    return groups


def _named(scene: Any, *words: Word) -> list[Any]:
    """The shapes of ``scene`` that every one of ``words`` names ("red" and "circle": the red circles)."""
    return [o for o in scene.shapes if all(getattr(o, kind) == value for kind, value, _ in words)]


def word_targets(prompt: list[int], content: dict[int, Word], scene: Any, image_start: int
                 ) -> list[tuple[int, list[int]]]:
    """Per singular content word of the question: its position and the patches of the objects it names (absolute).

    Plurals (how-many questions) are left to the answer loss and the count readout: there the share of attention
    that lands on the objects, not which patches it lands on, must carry the number.
    """
    out = []
    for pos in route_positions(prompt, content):
        word = content[prompt[pos]]
        if not word[2]:
            patches = sorted({p for o in _named(scene, word) for p in o.patches})
            out.append((pos, [image_start + p for p in patches]))
    return out


def mention_targets(prompt: list[int], content: dict[int, Word], scene: Any, image_start: int) -> list[list[int]]:
    """Per object mention of the question, the patches (absolute) of the objects matching all its words.

    A relation names two objects ("red circle", "blue square"); one word alone may name several objects, the
    mention names one. Counted mentions (plurals) get no target, as in :func:`word_targets`.
    """
    out = []
    for group in mention_groups(prompt, content):
        words = [content[prompt[p]] for p in group]
        if any(w[2] for w in words):
            continue
        out.append([image_start + p for o in _named(scene, *words) for p in o.patches])
    return out


#: Classes of the readout head: colour, shape, column of the one object a word names, and how many it names.
READOUT_COUNT = 7


def readout_targets(prompt: list[int], content: dict[int, Word], scene: Any) -> list[tuple[int, int, int, int, int]]:
    """Per content word: (position, colour, shape, column, count) as class indices; -1 where undefined.

    The readout loss asks that these be linearly readable from the word's hidden state after ``--word-layer``:
    the word's attention finds the objects, and this makes its value path carry what they look like (colour,
    shape, column when the word names exactly one object) and how many there are.
    """
    from adaptive_svdprune.shapes.world import COLOURS, GRID, PATCH, SHAPES

    out = []
    for pos in route_positions(prompt, content):
        named = _named(scene, content[prompt[pos]])
        count = min(len(named), READOUT_COUNT - 1)
        if len(named) == 1:
            o = named[0]
            column = min(GRID - 1, int(o.centre[0] // PATCH))
            out.append((pos, list(COLOURS).index(o.colour), SHAPES.index(o.shape), column, count))
        else:
            out.append((pos, -1, -1, -1, count))
    return out


def collate(examples: list[Example], pad: int) -> dict[str, torch.Tensor]:
    length = max(len(p) + len(a) for p, a, *_ in examples)
    ids = torch.full((len(examples), length), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (p, a, *_) in enumerate(examples):  # right padding: positions are 0..n-1 as in left-padded generation
        seq = p + a
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        labels[i, len(p) - 1 : len(seq) - 1] = torch.tensor(a)  # logits at t predict token t + 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# -- model pieces -----------------------------------------------------------------------------------------------
def pixel_values(images: torch.Tensor, processor: Any) -> torch.Tensor:
    ip = processor.image_processor
    mean = torch.tensor(ip.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(ip.image_std).view(1, 3, 1, 1)
    return (images.permute(0, 3, 1, 2).float() / 255.0 - mean) / std


def vision_features(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    """Features at ``vision_feature_layer`` without CLS, running only the layers that produce them."""
    vm = model.model.vision_tower
    vm = getattr(vm, "vision_model", vm)  # transformers < 5 nests the transformer one level deeper
    layer = model.config.vision_feature_layer
    n = len(vm.encoder.layers) + 1 + layer  # hidden_states[layer] comes after this many encoder layers
    h = vm.pre_layrnorm(vm.embeddings(pixels))
    for block in vm.encoder.layers[:n]:
        h = block(h, None)
    return h[:, 1:]


def forward(model: Any, batch: dict[str, torch.Tensor], feats: torch.Tensor) -> torch.Tensor:
    """Logits at the label positions (``labels != -100``), flattened."""
    embeds = model.get_input_embeddings()(batch["input_ids"])
    image = model.model.multi_modal_projector(feats)
    where = batch["input_ids"] == model.config.image_token_id
    embeds = embeds.masked_scatter(where.unsqueeze(-1), image.reshape(-1, image.shape[-1]).to(embeds.dtype))
    hidden = model.model.language_model(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).last_hidden_state
    keep = batch["labels"] != -100
    return model.lm_head(hidden[keep])


#: An attention target: (decoder layer, per row a list of (query position, absolute positions it should look at));
#: query position -1 is the position that predicts the answer.
AttentionTarget = tuple[int, list[list[tuple[int, list[int]]]]]


def readout_loss(head: nn.Module, hidden: torch.Tensor, batch: dict[str, torch.Tensor], examples: list[Any],
                 scenes: list[Any], content: dict[int, Word]) -> torch.Tensor | None:
    """Cross-entropy of a linear head reading :func:`readout_targets` off each content word's hidden state."""
    from adaptive_svdprune.shapes.world import COLOURS, GRID, SHAPES

    prefix_len = batch["input_ids"].shape[1] - hidden.shape[1]
    rows, cols, targets = [], [], []
    for r, (e, scene) in enumerate(zip(examples, scenes, strict=True)):
        if e[2] == "sign":
            continue
        for pos, *classes in readout_targets(e[0], content, scene):
            rows.append(r)
            cols.append(pos - prefix_len)
            targets.append(classes)
    if not rows:
        return None
    logits = head(hidden[rows, cols]).split([len(COLOURS), len(SHAPES), GRID, READOUT_COUNT], dim=-1)
    t = torch.as_tensor(targets)
    return sum(F.cross_entropy(lg, t[:, k], ignore_index=-1) for k, lg in enumerate(logits)) / len(logits)


def forward_shared_prefix(model: Any, batch: dict[str, torch.Tensor], feats: torch.Tensor, per_image: int,
                          attn_targets: list[AttentionTarget] = (),  # type: ignore[assignment]
                          hidden_out: list[torch.Tensor] | None = None,
                          ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """Same logits as :func:`forward` when every ``per_image`` consecutive rows ask about one image.

    The prompt up to the last image token (``<s>USER: <image>...``) is the same for every question about an
    image, and under causal attention its hidden states never see the question: the language model runs it once
    per image and the questions continue from a shared KV cache. Exact, and ~``per_image`` times cheaper.

    For each ``(layer, targets)`` of ``attn_targets`` (per row, pairs of a query position after the image, -1
    for the position that predicts the answer, and the absolute positions it should look at: the image patches
    the answer depends on, or the question's content words) it also returns an attention loss: the mean
    ``-log`` of the attention mass that the best head of that decoder layer puts on the targets from the
    query (pairs without targets are skipped; ``None`` when there is none). ``hidden_out``, when given, receives
    the hidden states of the positions after the prefix (the embeddings, then each layer's output).
    """
    from transformers import DynamicCache

    ids = batch["input_ids"]
    is_image = (ids == model.config.image_token_id).any(0).nonzero()
    prefix_len = int(is_image.max()) + 1
    prefix = ids[::per_image, :prefix_len]
    assert torch.equal(prefix.repeat_interleave(per_image, 0), ids[:, :prefix_len]), "prefixes differ"
    lm = model.model.language_model
    embeds = model.get_input_embeddings()(prefix)
    image = model.model.multi_modal_projector(feats)
    where = (prefix == model.config.image_token_id).unsqueeze(-1)
    embeds = embeds.masked_scatter(where, image.reshape(-1, image.shape[-1]).to(embeds.dtype))
    cache = DynamicCache(config=lm.config)
    lm(inputs_embeds=embeds, cache=cache, use_cache=True)
    for layer in cache.layers:
        layer.keys = layer.keys.repeat_interleave(per_image, 0)
        layer.values = layer.values.repeat_interleave(per_image, 0)
    suffix = ids[:, prefix_len:]
    positions = torch.arange(prefix_len, ids.shape[1]).expand(ids.shape[0], -1)
    out = lm(inputs_embeds=model.get_input_embeddings()(suffix), attention_mask=batch["attention_mask"],
             cache=cache, position_ids=positions, use_cache=True,
             output_hidden_states=bool(attn_targets) or hidden_out is not None)
    if hidden_out is not None:
        hidden_out.extend(out.hidden_states)
    keep = batch["labels"][:, prefix_len:] != -100
    logits = model.lm_head(out.last_hidden_state[keep])
    return logits, [_attention_loss(model, out.hidden_states[layer], positions, cache.layers[layer].keys,
                                    batch["labels"], prefix_len, targets, layer) for layer, targets in attn_targets]


def _attention_loss(model: Any, hidden: torch.Tensor, positions: torch.Tensor, keys: torch.Tensor,
                    labels: torch.Tensor, prefix_len: int, targets: list[list[tuple[int, list[int]]]],
                    layer_idx: int) -> torch.Tensor | None:
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    pairs = [(i, query, where) for i, row in enumerate(targets) for query, where in row if where]
    if not pairs:
        return None
    lm = model.model.language_model
    layer = lm.layers[layer_idx]
    attn = layer.self_attn
    b, s, _ = hidden.shape
    q = attn.q_proj(layer.input_layernorm(hidden)).view(b, s, -1, attn.head_dim).transpose(1, 2)
    cos, sin = lm.rotary_emb(hidden, positions)
    q, _ = apply_rotary_pos_emb(q, q, cos, sin)
    groups = q.shape[1] // keys.shape[1]
    k = keys.repeat_interleave(groups, 1)  # (B, H, L, d)
    loss = []
    for i, query_pos, where in pairs:
        if query_pos < 0:
            query_pos = int((labels[i] != -100).nonzero().min())  # the position whose logits give the answer
        scores = torch.einsum("hd,hld->hl", q[i, :, query_pos - prefix_len], k[i, :, : query_pos + 1]) * attn.scaling
        probs = scores.softmax(-1)  # (H, query_pos + 1): causal, every key up to here is a real token
        mass = probs[:, where].sum(-1)
        loss.append(-torch.log(mass.max() + 1e-6))
    return torch.stack(loss).mean()


_LABEL_WEIGHTS = {"colour": 1.0, "shape": 1.0, "word": 1.0, "column": 0.5, "centre": 0.5, "letter": 1.0}


def patch_loss(head: nn.Module, feats: torch.Tensor, labels: torch.Tensor, bg_weight: float) -> torch.Tensor:
    """Dense per-patch loss on the features (object patches weigh 1, background patches ``bg_weight``)."""
    splits = [len(v) for v in PATCH_LABELS.values()]
    obj = (labels[:, 1] > 0).float()  # the shape label marks object patches
    weight = bg_weight + (1 - bg_weight) * obj
    total = feats.new_zeros(())
    for k, (logits, w) in enumerate(zip(head(feats).split(splits, dim=-1), _LABEL_WEIGHTS.values(), strict=True)):
        ce = F.cross_entropy(logits.transpose(1, 2), labels[:, k], reduction="none")
        total = total + w * (ce * weight).sum() / weight.sum()
    return total


def object_class(obj: Any) -> int:
    """Class of an object for the per-object head: its shape (``1..len(SHAPES)``), or after them its sign's word."""
    if obj.word:
        return len(PATCH_LABELS["shape"]) - 1 + PATCH_LABELS["word"].index(obj.word)
    return PATCH_LABELS["shape"].index(obj.shape)


def object_loss(head: nn.Module, feats: torch.Tensor, scenes: list[Any]) -> torch.Tensor:
    """Shape (or a sign's word) of each object from the mean of its patches' features, as attention reads it.

    Per patch, the inside of a large circle looks like the inside of a square; the object as a whole does not.
    ``head`` maps a pooled feature to ``len(SHAPES) + 1 + len(WORDS)`` logits: the shape classes, then words.
    """
    pooled, targets = [], []
    for i, scene in enumerate(scenes):
        for o in scene.objects:
            if o.patches:
                pooled.append(feats[i, list(o.patches)].mean(0))
                targets.append(object_class(o))
    if not pooled:
        return feats.new_zeros(())
    return F.cross_entropy(head(torch.stack(pooled)), torch.as_tensor(targets))


def probe_accuracy(model: Any, processor: Any, head: nn.Module, cache: SceneCache,
                   obj_head: nn.Module | None = None) -> dict[str, float]:
    """How well the per-patch head reads colour, shape and word on the object patches of held-out scenes."""
    splits = [len(v) for v in PATCH_LABELS.values()]
    hits: dict[str, list[torch.Tensor]] = {"colour": [], "shape": [], "word": [], "letter": []}
    objects: dict[str, list[bool]] = {"shape": [], "word": []}  # the object's patches vote (mean logits)
    with torch.no_grad():
        for s in range(0, len(cache.scenes), 32):
            feats = vision_features(model, pixel_values(cache.images[s : s + 32], processor))
            logits = head(feats).split(splits, dim=-1)
            labels = cache.labels[s : s + 32]
            obj = labels[:, 1] > 0
            for k, name in enumerate(PATCH_LABELS):
                if name in hits:
                    mask = {"word": labels[:, 2] > 0, "letter": labels[:, 5] > 0}.get(name, obj)
                    hits[name].append((logits[k].argmax(-1) == labels[:, k])[mask])
            for i, scene in enumerate(cache.scenes[s : s + 32]):
                for o in scene.objects:
                    if not o.patches:
                        continue
                    idx = torch.as_tensor(o.patches)
                    name, k = ("word", 2) if o.word else ("shape", 1)
                    if obj_head is None:
                        objects[name].append(int(logits[k][i, idx].mean(0).argmax()) == int(labels[i, k, idx[0]]))
                    else:
                        objects[name].append(int(obj_head(feats[i, idx].mean(0)).argmax()) == object_class(o))
    out = {f"probe_{k}": round(float(torch.cat(v).float().mean()), 4) for k, v in hits.items()}
    out.update({f"object_{k}": round(float(np.mean(v)), 4) for k, v in objects.items() if v})
    return out


def init_patch_embedding_pca(model: Any, processor: Any, cache: SceneCache, n_patches: int = 20000) -> None:
    """Start the patch embedding at the top principal components of the training patches (whitened).

    A random 588 -> width projection keeps mostly colour; the principal components carry the edges and
    strokes that shapes and letters are made of, so the tower starts with them (a training choice).
    """
    tower = model.model.vision_tower
    conv = getattr(tower, "vision_model", tower).embeddings.patch_embedding
    gen = torch.Generator().manual_seed(0)
    pick = torch.randint(len(cache.scenes), (64,), generator=gen)
    pixels = pixel_values(cache.images[pick], processor)  # (64, 3, 336, 336)
    patches = F.unfold(pixels, kernel_size=_PATCH_SIZE, stride=_PATCH_SIZE).transpose(1, 2)
    patches = patches.reshape(-1, conv.weight[0].numel())
    patches = patches[torch.randperm(len(patches), generator=gen)[:n_patches]].double()
    patches = patches - patches.mean(0)
    _, s, vh = torch.linalg.svd(patches, full_matrices=False)
    width = conv.weight.shape[0]
    std = s[:width] / math.sqrt(len(patches))
    weight = vh[:width] / std[:, None]  # unit variance per component
    with torch.no_grad():
        conv.weight.copy_(weight.view_as(conv.weight).float())


def train_vision(model: Any, processor: Any, cache: SceneCache, val_cache: SceneCache, head: nn.Module,
                 args: argparse.Namespace, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Stage 1: the vision tower (up to the feature layer) learns what each patch shows, from the dense labels."""
    vm = model.model.vision_tower
    if args.pca_init:
        init_patch_embedding_pca(model, processor, cache)
    obj_head = nn.Linear(head.in_features, len(PATCH_LABELS["shape"]) - 1 + len(PATCH_LABELS["word"]))
    params = [*vm.parameters(), *head.parameters(), *obj_head.parameters()]
    opt = torch.optim.AdamW(params, lr=args.vision_lr, weight_decay=0.01, betas=(0.9, 0.98))
    steps = args.vision_steps
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    curve: list[dict[str, Any]] = []
    start = time.time()
    for step in range(steps):
        index = torch.as_tensor(rng.integers(0, len(cache.scenes), args.vision_batch))
        feats = vision_features(model, pixel_values(cache.images[index], processor))
        loss = patch_loss(head, feats, cache.labels[index], args.bg_weight)
        loss = loss + args.object_weight * object_loss(obj_head, feats, [cache.scenes[int(i)] for i in index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if (step + 1) % args.eval_every == 0 or step + 1 == steps:
            row = {"vision_step": step + 1, "patch_loss": round(loss.item(), 4),
                   "minutes": round((time.time() - start) / 60, 2),
                   **probe_accuracy(model, processor, head, val_cache, obj_head)}
            curve.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return curve


def cached_features(model: Any, processor: Any, cache: SceneCache) -> torch.Tensor:
    """Feature-layer outputs of every scene, computed once (stage 2 keeps the vision tower frozen)."""
    with torch.no_grad():
        return torch.cat([vision_features(model, pixel_values(cache.images[s : s + 32], processor))
                          for s in range(0, len(cache.scenes), 32)])


def init_projector_whitened(model: Any, feats: torch.Tensor, n_patches: int = 50000, seed: int = 0) -> None:
    """Start the projector's first layer at the features' PCA whitening, as ``[W; -W]`` so GELU keeps both signs.

    The frozen tower's features share a large mean (uncentred, one direction holds most of their energy), so a
    random projector hands the language model tokens that differ from each other by a small part of their norm,
    and attention then needs many steps to tell the object patches apart. A training choice, as ``--pca-init``.
    """
    proj = model.model.multi_modal_projector.linear_1
    flat = feats.reshape(-1, feats.shape[-1])
    gen = torch.Generator().manual_seed(seed)
    sample = flat[torch.randperm(len(flat), generator=gen)[:n_patches]].double()
    mean = sample.mean(0)
    _, s, vh = torch.linalg.svd(sample - mean, full_matrices=False)
    std = (s / math.sqrt(len(sample))).clamp_min(1e-3 * float(s[0]) / math.sqrt(len(sample)))
    white = vh / std[:, None]  # (D, D): unit variance per principal component
    rows = torch.cat([white, -white])[: proj.out_features]
    with torch.no_grad():
        proj.weight.zero_()
        proj.bias.zero_()
        proj.weight[: len(rows)] = rows.float()
        proj.bias[: len(rows)] = -(rows @ mean).float()


def evaluate(model: Any, processor: Any, cache: SceneCache, examples: list[Example],
             batch_size: int = 32, features: torch.Tensor | None = None) -> dict[str, float]:
    """Greedy-decoding accuracy, computed teacher-forced (every answer token and EOS must be the argmax)."""
    model.eval()
    right: dict[str, list[bool]] = {}
    with torch.no_grad():
        for s in range(0, len(examples), batch_size):
            chunk = examples[s : s + batch_size]
            batch = collate(chunk, processor.tokenizer.pad_token_id)
            feats = features[s : s + len(chunk)] if features is not None else \
                vision_features(model, pixel_values(cache.images[s : s + len(chunk)], processor))
            pred = forward(model, batch, feats).argmax(-1)
            target = batch["labels"][batch["labels"] != -100]
            offset = 0
            for _, a, family, _ in chunk:
                ok = bool((pred[offset : offset + len(a)] == target[offset : offset + len(a)]).all())
                right.setdefault(family, []).append(ok)
                offset += len(a)
    model.train()
    out = {f"acc_{k}": float(np.mean(v)) for k, v in sorted(right.items())}
    gqa = [x for k, v in right.items() if k != "sign" for x in v]
    out["acc_gqa"] = float(np.mean(gqa)) if gqa else float("nan")
    return out


def merge_logs(folders: list[str]) -> Path:
    """Write one ``training_log.json`` into the last folder: every stage's log in order, and the total wall time."""
    stages = []
    for folder in folders:
        log = json.loads((Path(folder) / "training_log.json").read_text())
        stages.extend(log.get("stages", [log]))
    merged = {"note": "stages in order; each continued from the one before (--init-from). Curves: held-out "
              "teacher-forced greedy accuracy per question family, and stage 1's vision probes.",
              "wall_minutes_total": round(sum(s["wall_minutes"] for s in stages), 2), "stages": stages}
    out = Path(folders[-1]) / "training_log.json"
    out.write_text(json.dumps(merged, indent=1) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="adaptive_svdprune/shapes/checkpoint")
    p.add_argument("--seed", type=int, default=0, help="weight init and question sampling")
    p.add_argument("--data-seed", type=int, default=1, help="training scenes (held-out scenes use a other stream)")
    p.add_argument("--shape-scenes", type=int, default=1700)
    p.add_argument("--sign-scenes", type=int, default=700)
    p.add_argument("--easy-scenes", type=int, default=400, help="first shape scenes have at most 2 shapes")
    p.add_argument("--easy-steps", type=float, default=0.1, help="share of steps drawing only easy scenes")
    p.add_argument("--val-scenes", type=int, default=240)
    p.add_argument("--steps", type=int, default=900)
    p.add_argument("--batch-size", type=int, default=48, help="questions per step")
    p.add_argument("--questions-per-image", type=int, default=6)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--aux-weight", type=float, default=1.0)
    p.add_argument("--bg-weight", type=float, default=0.05,
                   help="weight of background patches in the per-patch loss (object patches: 1); 0.2 left the "
                   "object colours unlearnt")
    p.add_argument("--attn-weight", type=float, default=0.5,
                   help="weight of the attention loss: layer --attn-layer looks at the objects asked about")
    p.add_argument("--attn-layer", type=int, default=1)
    p.add_argument("--route-weight", type=float, default=0.0,
                   help="weight of the routing loss: at layer --route-layer the answer position looks, with one head "
                   "per object mention (\"red circle\"), at the question's colour and shape words")
    p.add_argument("--route-layer", type=int, default=0)
    p.add_argument("--word-weight", type=float, default=0.0,
                   help="weight of the word loss: at layer --word-layer, each colour or shape word of the question "
                   "looks at the patches of the objects it names")
    p.add_argument("--word-layer", type=int, default=0)
    p.add_argument("--mention-weight", type=float, default=0.0,
                   help="weight of the mention loss: at layer --mention-layer the answer position looks, with one "
                   "head per object the question mentions, at that object's patches")
    p.add_argument("--mention-layer", type=int, default=2)
    p.add_argument("--readout-weight", type=float, default=0.0,
                   help="weight of the readout loss: colour, shape, column and count of the objects a question word "
                   "names, linearly read off that word's hidden state after --word-layer (a head thrown away)")
    p.add_argument("--ocr-prob", type=float, default=0.2)
    p.add_argument("--vision-width", type=int, default=64)
    p.add_argument("--vision-layers", type=int, default=3, help="layers up to the feature layer")
    p.add_argument("--text-width", type=int, default=128)
    p.add_argument("--text-layers", type=int, default=3, help="3 so FastV's default layer 2 applies")
    p.add_argument("--vision-steps", type=int, default=0,
                   help="stage 1: steps training only the vision tower on the per-patch labels; then stage 2 "
                   "trains projector and language model on its frozen features (0: one joint stage)")
    p.add_argument("--vision-batch", type=int, default=16, help="images per stage-1 step")
    p.add_argument("--freeze-vision", action="store_true",
                   help="keep the vision tower frozen (implied by --vision-steps; with --init-from: stage 2 only)")
    p.add_argument("--pca-init", action="store_true", help="stage 1 starts the patch embedding at the patches' PCA")
    p.add_argument("--object-weight", type=float, default=1.0,
                   help="stage 1: weight of the per-object loss (shape or word from the object's mean feature)")
    p.add_argument("--vision-lr", type=float, default=2e-3)
    p.add_argument("--sincos-init", action="store_true",
                   help="start the vision position embeddings at 2-D sin-cos values instead of random ones")
    p.add_argument("--whiten-projector", action="store_true",
                   help="with frozen vision features: start the projector's first layer at their PCA whitening")
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--threads", type=int, default=1,
                   help="1 beats 2 when another process shares the 2 cores (OpenMP threads then spin)")
    p.add_argument("--init-from", default=None, help="start from this checkpoint instead of random weights")
    p.add_argument("--max-minutes", type=float, default=None, help="stop early (breaks determinism)")
    p.add_argument("--merge-logs", nargs="+", metavar="DIR", default=None,
                   help="only merge the training logs of these stage folders into the last one's, then exit")
    args = p.parse_args(argv)
    if args.merge_logs:
        print(f"wrote {merge_logs(args.merge_logs)}", file=sys.stderr)
        return 0

    start = time.time()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.init_from:  # a second stage: continue from a saved checkpoint (its tokenizer and processor)
        from adaptive_svdprune.models.llava import load_llava

        model, processor = load_llava(args.init_from)
        model.train()
        processor.tokenizer.padding_side = "left"
        args.vision_width = model.config.vision_config.hidden_size
    else:
        model, processor = build_model(out, args)
    head = nn.Linear(args.vision_width, sum(len(v) for v in PATCH_LABELS.values()))

    cache = SceneCache(args.data_seed, _TRAIN_SALT, args.shape_scenes, args.sign_scenes, args.easy_scenes)
    n_val_signs = args.val_scenes // 3
    val_cache = SceneCache(args.data_seed, _VAL_SALT, args.val_scenes - n_val_signs, n_val_signs, 0)
    prompts = Prompts(processor)
    val_rng = np.random.default_rng([args.seed, 7])
    val_examples = [make_example(val_cache, i, val_rng, prompts, 0.0) for i in range(len(val_cache.scenes))]
    print(f"data ready in {time.time() - start:.0f}s: {len(cache.scenes)} train scenes, "
          f"{len(val_examples)} held-out questions", file=sys.stderr, flush=True)

    vision_curve: list[dict[str, Any]] = []
    train_feats = val_feats = None
    if args.vision_steps > 0 or args.freeze_vision:
        if args.vision_steps > 0:
            vision_rng = np.random.default_rng([args.seed, 3])
            vision_curve = train_vision(model, processor, cache, val_cache, head, args, vision_rng)
        model.model.vision_tower.requires_grad_(False)
        train_feats, val_feats = cached_features(model, processor, cache), cached_features(model, processor, val_cache)
        print(f"stage 1 done at {(time.time() - start) / 60:.1f} min; features cached", file=sys.stderr, flush=True)
        if args.whiten_projector:
            init_projector_whitened(model, train_feats, seed=args.seed)
        params = [p for p in model.parameters() if p.requires_grad]
    else:
        params = [*model.parameters(), *head.parameters()]
    from adaptive_svdprune.shapes.world import COLOURS, GRID, SHAPES

    with torch.random.fork_rng():  # seeded here: with --init-from nothing else seeds the global generator
        torch.manual_seed(args.seed)
        readout = nn.Linear(model.config.text_config.hidden_size, len(COLOURS) + len(SHAPES) + GRID + READOUT_COUNT)
    if args.readout_weight > 0:
        params = [*params, *readout.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
    rng = np.random.default_rng([args.seed, 1])
    content = content_tokens(processor.tokenizer)
    image_start = prompts.prompt(format_question("x")).index(model.config.image_token_id)
    n_all, n_easy = len(cache.scenes), args.easy_scenes
    easy_pool = np.concatenate([np.arange(n_easy), cache.n_shapes + np.arange(min(args.sign_scenes, n_easy // 3))])
    curve: list[dict[str, Any]] = []
    model.train()
    t_loop, steps_done = time.time(), 0
    for step in range(args.steps):
        pool = easy_pool if step < args.easy_steps * args.steps else None
        n_img = args.batch_size // args.questions_per_image
        idx = rng.choice(pool, n_img) if pool is not None else rng.integers(0, n_all, n_img)
        # Several questions per image: the vision tower runs once per image (cheap), the LLM once per question.
        examples = [make_example(cache, int(i), rng, prompts, args.ocr_prob)
                    for i in idx for _ in range(args.questions_per_image)]
        batch = collate(examples, processor.tokenizer.pad_token_id)
        index = torch.as_tensor(idx)
        if train_feats is not None:
            feats = train_feats[index]
        else:
            feats = vision_features(model, pixel_values(cache.images[index], processor))
        specs: list[AttentionTarget] = []
        weights: list[float] = []
        if args.attn_weight > 0:
            specs.append((args.attn_layer, [[(-1, [image_start + p for p in e[3]])] for e in examples]))
            weights.append(args.attn_weight)
        if args.route_weight > 0:
            # one target per object mention: a relation's two objects go to two heads, in question order
            specs.append((args.route_layer, [[(-1, g) for g in mention_groups(e[0], content)] if e[2] != "sign" else []
                                             for e in examples]))
            weights.append(args.route_weight)
        scenes = [cache.scenes[int(i)] for i in idx for _ in range(args.questions_per_image)]
        if args.mention_weight > 0:
            specs.append((args.mention_layer, [
                [(-1, t) for t in mention_targets(e[0], content, s, image_start)] if e[2] != "sign" else []
                for e, s in zip(examples, scenes, strict=True)]))
            weights.append(args.mention_weight)
        if args.word_weight > 0:
            specs.append((args.word_layer, [word_targets(e[0], content, s, image_start) if e[2] != "sign" else []
                                            for e, s in zip(examples, scenes, strict=True)]))
            weights.append(args.word_weight)
        hidden: list[torch.Tensor] | None = [] if args.readout_weight > 0 else None
        logits, attn_losses = forward_shared_prefix(model, batch, feats, args.questions_per_image, specs, hidden)
        if hidden:
            attn_losses.append(readout_loss(readout, hidden[args.word_layer + 1], batch, examples, scenes, content))
            weights.append(args.readout_weight)
        answer_loss = F.cross_entropy(logits, batch["labels"][batch["labels"] != -100])
        if train_feats is None:
            aux = patch_loss(head, feats, cache.labels[index], args.bg_weight)
            loss = answer_loss + args.aux_weight * aux
        else:  # stage 2: the vision tower is frozen
            aux, loss = torch.zeros(()), answer_loss
        for weight, extra in zip(weights, attn_losses, strict=True):
            if extra is not None:
                loss = loss + weight * extra
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        steps_done = step + 1
        if step % 20 == 0:
            rate = steps_done * (args.batch_size // args.questions_per_image) * args.questions_per_image / (
                time.time() - t_loop)
            attn_text = " ".join(f"{x.item():.3f}" if x is not None else "-" for x in attn_losses)
            print(f"step {step} loss {answer_loss.item():.3f} aux {aux.item():.3f} attn {attn_text} {rate:.1f} "
                  "samples/s",
                  file=sys.stderr, flush=True)
        if steps_done % args.eval_every == 0 or steps_done == args.steps:
            row = {"step": steps_done, "samples": steps_done * args.batch_size,
                   "answer_loss": round(answer_loss.item(), 4), "aux_loss": round(aux.item(), 4),
                   "minutes": round((time.time() - start) / 60, 2),
                   **{k: round(v, 4) for k, v in evaluate(model, processor, val_cache, val_examples,
                                                           features=val_feats).items()}}
            curve.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        if args.max_minutes and time.time() - start > 60 * args.max_minutes:
            print(f"stopping at step {steps_done}: --max-minutes reached", file=sys.stderr)
            break
    model.eval()
    with _quiet_progress():
        model.save_pretrained(out)
    processor.save_pretrained(out)
    command = ["python", "tools/train_shapes_model.py", *(argv if argv is not None else sys.argv[1:])]
    log = {"command": " ".join(command),
           "args": vars(args), "steps_done": steps_done, "wall_minutes": round((time.time() - start) / 60, 2),
           "threads": args.threads, "torch": torch.__version__, "vision_curve": vision_curve, "curve": curve,
           "train_scene_stream": {"seed": args.data_seed, "salt": _TRAIN_SALT},
           "heldout_scene_stream": {"seed": args.data_seed, "salt": _VAL_SALT}}
    (out / "training_log.json").write_text(json.dumps(log, indent=1) + "\n")
    print(f"saved {out} after {log['wall_minutes']} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
