"""graphs.rng: every stream named, layouts that never coincide, reproducible draws."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from graphs.errors import InputError
from graphs.rng import Stream, check_seed, generator_for, numpy_rng, seed_entropy


def _keys(stream: Stream, draw: int) -> tuple[int, ...]:
    return (draw, 1, 2) if stream is Stream.PGD_START else (draw,)


def test_layouts_never_coincide():
    seen = {}
    for stream, seed, draw in itertools.product(Stream, range(3), range(12)):
        entropy = tuple(seed_entropy(stream, seed, *_keys(stream, draw)))
        assert seen.setdefault(entropy, (stream, seed, draw)) == (stream, seed, draw), entropy


def test_weight_input_label_layouts_are_the_published_ones():
    # Every committed figure depends on these: [seed, draw], [seed, draw, 1], [seed, draw, 2].
    assert seed_entropy(Stream.WEIGHTS, 5, 7) == [5, 7]
    assert seed_entropy(Stream.INPUTS, 5, 7) == [5, 7, 1]
    assert seed_entropy(Stream.LABELS, 5, 7) == [5, 7, 2]
    assert seed_entropy(Stream.PGD_START, 5, 7, 0, 3) == [5, 7, 3, 0, 3]


def test_same_keys_same_numbers_other_keys_other_numbers():
    a = torch.randn(5, generator=generator_for(Stream.INPUTS, 3, 4))
    b = torch.randn(5, generator=generator_for(Stream.INPUTS, 3, 4))
    c = torch.randn(5, generator=generator_for(Stream.INPUTS, 3, 5))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert numpy_rng(Stream.PATH_SAMPLE, 1).integers(1 << 30) == numpy_rng(Stream.PATH_SAMPLE, 1).integers(1 << 30)
    # the bootstrap's stream is numpy's default for the seed, so published intervals keep their bounds
    assert np.array_equal(numpy_rng(Stream.BOOTSTRAP, 9).random(4), np.random.default_rng(9).random(4))


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_check_seed_refuses_what_seed_sequence_cannot_take(bad):
    with pytest.raises(InputError, match="--seed"):
        check_seed(bad)
    assert check_seed(0) == 0


def test_per_draw_streams_need_the_draw():
    with pytest.raises(ValueError, match="needs the draw as its first key"):
        seed_entropy(Stream.INPUTS, 0)
    with pytest.raises(ValueError, match="takes exactly one key"):
        seed_entropy(Stream.WEIGHTS, 0, 1, 2)


def test_training_streams_are_per_run_and_keyed_by_what_they_draw():
    assert seed_entropy(Stream.TRAIN_INIT, 5, 2) == [5, 2, 9]
    assert seed_entropy(Stream.DATA_ORDER, 5, 2, 7) == [5, 2, 10, 7]
    assert seed_entropy(Stream.ATTACK, 5, 2, 1, 7, 3) == [5, 2, 11, 1, 7, 3]
    assert seed_entropy(Stream.DATA_SUBSET, 5, 1) == [5, 12, 0, 1]
    a = torch.randperm(10, generator=generator_for(Stream.DATA_ORDER, 0, 1, 3))
    assert torch.equal(a, torch.randperm(10, generator=generator_for(Stream.DATA_ORDER, 0, 1, 3)))
    assert not torch.equal(a, torch.randperm(10, generator=generator_for(Stream.DATA_ORDER, 0, 1, 4)))
