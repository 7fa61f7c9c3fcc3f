"""``tools/train_shapes_model.py`` runs one optimisation step at tiny sizes and writes a loadable checkpoint."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "train_shapes_model.py"
_TINY = ["--shape-scenes", "4", "--sign-scenes", "2", "--easy-scenes", "2", "--val-scenes", "3", "--batch-size", "4",
         "--questions-per-image", "2", "--vision-width", "32", "--vision-layers", "1", "--text-width", "32",
         "--text-layers", "3", "--eval-every", "1"]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_shapes_model", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_step_writes_a_checkpoint_that_loads(tmp_path: Path) -> None:
    from adaptive_svdprune.models.llava import load_llava

    script = _script()
    threads = torch.get_num_threads()
    try:
        assert script.main(["--out", str(tmp_path), "--steps", "1", *_TINY]) == 0
    finally:
        torch.set_num_threads(threads)
    log = json.loads((tmp_path / "training_log.json").read_text())
    assert log["steps_done"] == 1 and len(log["curve"]) == 1 and "acc_gqa" in log["curve"][0]
    model, processor = load_llava(tmp_path)
    cfg = model.config
    assert (cfg.image_seq_length, cfg.vision_feature_layer, cfg.vision_feature_select_strategy) == (576, -2, "default")
    assert (cfg.vision_config.image_size, cfg.vision_config.patch_size) == (336, 14)
    assert cfg.text_config.num_hidden_layers == 3
    assert processor.chat_template and "ASSISTANT:" in processor.chat_template
    tok = processor.tokenizer  # every answer the world can ask for is a single token after "ASSISTANT:"
    assert all(len(tok(" " + w, add_special_tokens=False)["input_ids"]) == 1 for w in ("yes", "purple", "hotel", "3"))


def test_shared_prefix_forward_matches_the_full_forward(tmp_path: Path) -> None:
    """The training shortcut (one prefix pass per image) gives the full model's logits."""
    import argparse

    script = _script()
    args = argparse.Namespace(vision_width=32, vision_layers=1, text_width=32, text_layers=3, seed=0)
    model, processor = script.build_model(tmp_path, args)
    cache = script.SceneCache(0, 1, 2, 1, 0)
    prompts, rng = script.Prompts(processor), np.random.default_rng(0)
    examples = [script.make_example(cache, i, rng, prompts, 0.5) for i in range(3) for _ in range(2)]
    batch = script.collate(examples, processor.tokenizer.pad_token_id)
    pixels = script.pixel_values(cache.images[:3], processor)
    with torch.no_grad():
        feats = script.vision_features(model, pixels)
        reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          pixel_values=pixels.repeat_interleave(2, 0)).logits[batch["labels"] != -100]
        shared, attn_losses = script.forward_shared_prefix(model, batch, feats, 2)
    torch.testing.assert_close(shared, reference, atol=1e-4, rtol=1e-4)
    assert attn_losses == []


def test_attention_loss_matches_eager_attention(tmp_path: Path) -> None:
    """The attention loss reads the same attention the model computes (eager attention as the reference)."""
    import argparse

    script = _script()
    args = argparse.Namespace(vision_width=32, vision_layers=1, text_width=32, text_layers=3, seed=0)
    model, processor = script.build_model(tmp_path, args)
    with torch.no_grad():
        for param in model.parameters():  # a wide init, so attention is far from uniform
            param.normal_(0, 0.3)
    cache = script.SceneCache(0, 1, 2, 1, 0)
    prompts, rng = script.Prompts(processor), np.random.default_rng(0)
    examples = [script.make_example(cache, i, rng, prompts, 0.5) for i in range(3) for _ in range(2)]
    batch = script.collate(examples, processor.tokenizer.pad_token_id)
    pixels = script.pixel_values(cache.images[:3], processor)
    targets = [list(range(100, 130))] * len(examples)
    with torch.no_grad():
        image_start = int((batch["input_ids"][0] == model.config.image_token_id).nonzero().min())
        absolute = [[(-1, [image_start + p for p in t])] for t in targets]
        _, (loss,) = script.forward_shared_prefix(model, batch, script.vision_features(model, pixels), 2,
                                                  [(1, absolute)])
        model.set_attn_implementation("eager")
        attentions = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           pixel_values=pixels.repeat_interleave(2, 0), output_attentions=True).attentions[1]
    image_positions = (batch["input_ids"][0] == model.config.image_token_id).nonzero()[:, 0]
    expected = []
    for i, target in enumerate(targets):
        query = int((batch["labels"][i] != -100).nonzero().min())
        mass = attentions[i, :, query][:, image_positions[target]].sum(-1)
        expected.append(-torch.log(mass.max() + 1e-6))
    torch.testing.assert_close(loss, torch.stack(expected).mean(), atol=1e-4, rtol=1e-4)


def test_two_stage_run_freezes_the_tower_after_stage_one(tmp_path: Path) -> None:
    """``--vision-steps`` trains the tower alone first (probe metrics logged), then keeps it frozen."""
    from adaptive_svdprune.models.llava import load_llava

    script = _script()
    threads = torch.get_num_threads()
    args = ["--out", str(tmp_path), "--steps", "1", "--vision-steps", "2", "--vision-batch", "2", "--pca-init",
            "--sincos-init", *_TINY]
    try:
        assert script.main(args) == 0
        stage1 = script.main([*args[:-len(_TINY)], *_TINY, "--out", str(tmp_path / "again")])
    finally:
        torch.set_num_threads(threads)
    assert stage1 == 0
    log = json.loads((tmp_path / "training_log.json").read_text())
    assert [row["vision_step"] for row in log["vision_curve"]] == [1, 2]
    assert {"probe_colour", "probe_shape", "object_shape"} <= set(log["vision_curve"][-1])
    model, _ = load_llava(tmp_path)
    again, _ = load_llava(tmp_path / "again")
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=f"{name} differs between two runs with the same seeds")


def test_pca_init_whitens_the_training_patches(tmp_path: Path) -> None:
    import argparse

    from torch.nn import functional as F

    script = _script()
    args = argparse.Namespace(vision_width=32, vision_layers=1, text_width=32, text_layers=3, seed=0)
    model, processor = script.build_model(tmp_path, args)
    cache = script.SceneCache(0, 1, 4, 1, 0)
    script.init_patch_embedding_pca(model, processor, cache, n_patches=2000)
    tower = model.model.vision_tower
    conv = getattr(tower, "vision_model", tower).embeddings.patch_embedding
    pixels = script.pixel_values(cache.images, processor)
    with torch.no_grad():
        out = conv(pixels).flatten(2).transpose(1, 2).reshape(-1, 32)
    std = out.std(0)
    assert torch.all((std > 0.5) & (std < 1.5)), std  # unit variance per component, up to sampling
    weight = conv.weight.reshape(32, -1)
    cosine = F.normalize(weight, dim=1) @ F.normalize(weight, dim=1).T
    torch.testing.assert_close(cosine, torch.eye(32), atol=1e-4, rtol=0)  # orthogonal directions


def test_merge_logs_keeps_every_stage_in_order(tmp_path: Path) -> None:
    script = _script()
    for i, name in enumerate(("a", "b", "c")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "training_log.json").write_text(json.dumps({"command": name, "wall_minutes": i + 1.0}))
    assert script.main(["--merge-logs", *(str(tmp_path / n) for n in ("a", "b", "c"))]) == 0
    merged = json.loads((tmp_path / "c" / "training_log.json").read_text())
    assert [s["command"] for s in merged["stages"]] == ["a", "b", "c"] and merged["wall_minutes_total"] == 6.0
    assert script.main(["--merge-logs", str(tmp_path / "c")]) == 0  # merging again keeps the stages
    assert [s["command"] for s in json.loads((tmp_path / "c" / "training_log.json").read_text())["stages"]] == [
        "a", "b", "c"]


def test_question_word_targets_name_the_objects(tmp_path: Path) -> None:
    """Stage 2's attention and readout targets: each colour/shape word points at the objects it names."""
    import argparse

    from adaptive_svdprune.data.prompts import format_question
    from adaptive_svdprune.shapes.world import COLOURS, SHAPES, Scene, SceneObject

    script = _script()
    args = argparse.Namespace(vision_width=32, vision_layers=1, text_width=32, text_layers=3, seed=0)
    _, processor = script.build_model(tmp_path, args)
    content = script.content_tokens(processor.tokenizer)
    assert len(content) == len(COLOURS) + 2 * len(SHAPES)  # every colour, shape and plural is one token
    red = SceneObject("circle", "red", "small", (14, 14, 38, 38), patches=(25, 26, 49, 50))
    blue = SceneObject("square", "blue", "small", (196, 14, 220, 38), patches=(39, 40, 63, 64))
    blue2 = SceneObject("circle", "blue", "small", (196, 196, 220, 220), patches=(338, 339, 362, 363))
    scene = Scene(0, 0, objects=(red, blue, blue2))
    prompt = script.Prompts(processor).prompt(
        format_question("Is the red circle to the left or to the right of the blue square?"))
    groups = script.mention_groups(prompt, content)
    words = [[processor.tokenizer.decode([prompt[p]]).strip() for p in g] for g in groups]
    assert words == [["red", "circle"], ["blue", "square"]]  # two mentions, in question order
    start = 5
    targets = dict(script.word_targets(prompt, content, scene, start))
    red_pos, circle_pos = groups[0]
    assert targets[red_pos] == [start + p for p in red.patches]
    assert targets[circle_pos] == sorted(start + p for p in (*red.patches, *blue2.patches))
    # each mention names one object (all its words must match): the blue circle is neither "red circle" nor
    # "blue square"
    assert script.mention_targets(prompt, content, scene, start) == [[start + p for p in red.patches],
                                                                      [start + p for p in blue.patches]]
    readout = {pos: rest for pos, *rest in script.readout_targets(prompt, content, scene)}
    assert readout[red_pos] == [list(COLOURS).index("red"), SHAPES.index("circle"), 1, 1]  # one object: all known
    assert readout[circle_pos] == [-1, -1, -1, 2]  # two circles: only the count
    plural = script.Prompts(processor).prompt(format_question("How many circles are there?"))
    assert script.word_targets(plural, content, scene, start) == []  # a count's mass, not its patches, matters
    assert script.mention_targets(plural, content, scene, start) == []
    assert [r[-1] for r in script.readout_targets(plural, content, scene)] == [2]


def test_a_later_stage_with_the_hop_losses_is_deterministic(tmp_path: Path) -> None:
    """``--init-from`` skips the model build (which seeds torch): the readout head must be seeded on its own."""
    from adaptive_svdprune.models.llava import load_llava

    script = _script()
    threads = torch.get_num_threads()
    hops = ["--freeze-vision", "--steps", "2", "--whiten-projector", "--word-weight", "1", "--route-weight", "1",
            "--route-layer", "1", "--attn-weight", "0", "--readout-weight", "1", "--seed", "1"]
    try:
        assert script.main(["--out", str(tmp_path / "s1"), "--steps", "1", *_TINY]) == 0
        for run in ("a", "b"):
            torch.manual_seed(int(run, 16))  # whatever the global generator holds, the result is the same
            assert script.main(["--init-from", str(tmp_path / "s1"), "--out", str(tmp_path / run), *hops,
                                *_TINY]) == 0
    finally:
        torch.set_num_threads(threads)
    first, _ = load_llava(tmp_path / "a")
    second, _ = load_llava(tmp_path / "b")
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=f"{name} differs between two runs with the same seeds")
