"""The shapes world: determinism, object masks against rendered pixels, patch classes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from adaptive_svdprune.shapes.world import (
    COLOURS,
    GRID,
    PATCH,
    PATCH_COVER_MIN_PIXELS,
    PATCH_LABELS,
    object_mask,
    patch_classes,
    render_scene,
    sample_scene,
)

SCENES = [(0, i, False) for i in range(6)] + [(5, i, True) for i in range(4)]


@pytest.mark.parametrize(("seed", "index", "sign"), SCENES, ids=[f"s{s}-i{i}-{'sign' if g else 'shapes'}"
                                                                for s, i, g in SCENES])
def test_masks_agree_with_rendered_pixels(seed: int, index: int, sign: bool) -> None:
    scene = sample_scene(seed, index, with_sign=sign)
    full = np.asarray(render_scene(scene)).astype(int)
    background = np.asarray(render_scene(dataclasses.replace(scene, objects=()))).astype(int)
    changed = (full != background).any(-1)
    union = np.zeros_like(changed)
    for obj in scene.objects:
        mask = object_mask(obj)
        assert not (union & mask).any(), "objects overlap"
        union |= mask
        if obj.shape != "sign":  # a shape is painted in exactly its colour, nowhere else
            assert (full[mask] == COLOURS[obj.colour]).all()
        # the listed patches are those holding enough of the object's pixels (recomputed independently)
        per_patch = mask.reshape(GRID, PATCH, GRID, PATCH).sum(axis=(1, 3)).reshape(-1)
        assert obj.patches == tuple(np.flatnonzero(per_patch >= PATCH_COVER_MIN_PIXELS))
        assert obj.patches, "every object covers at least one patch"
        x0, y0, x1, y1 = obj.bbox
        assert mask[y0:y1, x0:x1].sum() == mask.sum(), "mask inside the box"
    assert not (changed & ~union).any(), "pixels changed outside every object mask"
    # inside the masks the scene differs from the background almost everywhere (a board may match by chance)
    assert (changed & union).sum() >= 0.99 * union.sum()


def test_same_seed_same_scene_and_pixels() -> None:
    a, b = sample_scene(3, 7, with_sign=True), sample_scene(3, 7, with_sign=True)
    assert a == b and a.background == b.background
    assert np.array_equal(np.asarray(render_scene(a)), np.asarray(render_scene(b)))
    assert sample_scene(3, 8) != sample_scene(3, 7) and sample_scene(4, 7) != sample_scene(3, 7)
    assert sample_scene(3, 7, salt=1) != sample_scene(3, 7)


def test_background_is_not_flat() -> None:
    image = np.asarray(render_scene(dataclasses.replace(sample_scene(0, 0), objects=()))).astype(float)
    patches = image.reshape(GRID, PATCH, GRID, PATCH, 3).mean(axis=(1, 3))
    assert patches.std(axis=(0, 1)).min() > 3  # patch means vary across the image
    assert image.reshape(GRID, PATCH, GRID, PATCH, 3).std(axis=(1, 3)).mean() > 2  # texture inside patches


def test_scene_sizes_and_counts() -> None:
    counts = [len(sample_scene(1, i).shapes) for i in range(60)]
    assert min(counts) >= 1 and max(counts) <= 6 and len(set(counts)) >= 4
    sign = sample_scene(1, 0, with_sign=True).sign
    assert sign is not None and sign.word
    for obj in sample_scene(1, 3, n_objects=6).objects:
        assert len(obj.patches) <= 25  # each object covers only a few of the 576 patches


def test_patch_classes_follow_the_objects() -> None:
    scene = sample_scene(2, 1, with_sign=True)
    classes = patch_classes(scene)
    assert set(classes) == set(PATCH_LABELS)
    covered = {p for o in scene.objects for p in o.patches}
    assert set(np.flatnonzero(classes["shape"])) == covered
    assert classes["centre"].sum() == len(scene.objects)
    for obj in scene.objects:
        assert (classes["colour"][list(obj.patches)] == PATCH_LABELS["colour"].index(obj.colour)).all()


@pytest.mark.parametrize("index", range(6))
def test_sign_letters_sit_one_per_patch_cell(index: int) -> None:
    """A sign is a tile board on the patch grid: each letter's ink lies inside its own cell of the middle row."""
    scene = sample_scene(4, index, with_sign=True, n_objects=0)
    sign = scene.sign
    assert sign is not None and sign.word
    x0, y0, x1, y1 = sign.bbox
    assert x0 % PATCH == 0 and y0 % PATCH == 0 and (x1 - x0, y1 - y0) == ((len(sign.word) + 2) * PATCH, 3 * PATCH)
    letters = patch_classes(scene)["letter"]
    cells = np.flatnonzero(letters)
    row, col = y0 // PATCH + 1, x0 // PATCH + 1
    assert list(cells) == [row * GRID + col + i for i in range(len(sign.word))]
    assert "".join(PATCH_LABELS["letter"][k] for k in letters[cells]) == sign.word
    grey = np.asarray(render_scene(scene).convert("L"), np.int32)
    board = grey[y0 + 3 : y1 - 3, x0 + 3 : x1 - 3]  # inside the outline
    ink = np.zeros_like(board, bool)
    ink[board < 100] = True
    inked_rows, inked_cols = np.nonzero(ink)
    assert (inked_rows + y0 + 3 >= row * PATCH).all() and (inked_rows + y0 + 3 < (row + 1) * PATCH).all()
    for i in range(len(sign.word)):  # every letter cell has ink, and no ink crosses into a margin cell
        lo, hi = (col + i) * PATCH, (col + i + 1) * PATCH
        assert ((inked_cols + x0 + 3 >= lo) & (inked_cols + x0 + 3 < hi)).any()
    assert (inked_cols + x0 + 3 >= col * PATCH).all() and (inked_cols + x0 + 3 < (col + len(sign.word)) * PATCH).all()


@pytest.mark.parametrize(("kwargs", "match"), [({"n_objects": 7}, "n_objects"), ({"n_objects": 0}, "n_objects"),
                                               ({"max_objects": 0}, "max_objects")], ids=["7", "0", "max0"])
def test_bad_object_counts(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sample_scene(0, 0, **kwargs)
