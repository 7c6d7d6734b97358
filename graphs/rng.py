"""Every random stream of the toolkit, named in one enum, and the generators that draw them.

Randomness is an argument: a sampler takes a run seed and the ids of what it draws (a weight
draw, a trial), never global state. Each stream's generator is seeded from a
``numpy.random.SeedSequence`` whose entropy is laid out as follows, so that two streams never
share entropy and draw i of a run can be recomputed on its own:

=====================  ==========================================  ===============================
stream                 entropy                                     what it draws
=====================  ==========================================  ===============================
``WEIGHTS``            ``[seed, draw]``                            He weights of draw ``draw``
``INPUTS``             ``[seed, draw, 1]``                         the inputs of that draw
``LABELS``             ``[seed, draw, 2]``                         their labels
``PGD_START``          ``[seed, draw, 3, norm, eps_index]``        PGD's random start
``SHARED_COMPONENT``   ``[seed, draw, 4]``                         Lemma 9's planted shared weight
``SYMMETRY_TRIAL``     ``[seed, 5, 0, trial]``                     prime and point of (S)'s test
``PATH_SAMPLE``        ``[seed, 6, 0]``                            Lemma 9's sampled paths
``LINEAR_PGD``         ``[seed, 7, 0]``                            PGD's linear-model reference
``BOOTSTRAP``          ``[seed]``                                  bootstrap resamples
``TRAIN_INIT``         ``[seed, run, 9]``                          initial weights of training run
``DATA_ORDER``         ``[seed, run, 10, epoch]``                  that run's minibatch order
``ATTACK``             ``[seed, run, 11, purpose, epoch, batch]``  its PGD starts (training, held-out)
``DATA_SUBSET``        ``[seed, 12, 0, split]``                    the training/held-out subsets
=====================  ==========================================  ===============================

The training streams (``verify trained``) are per-draw streams whose draw is the training run
(the training seed's index): run i of every size and arm starts from the same weights and sees
the same minibatch order, so runs are paired across sizes and arms as weight draws are.

Per-draw streams have a stream id >= 1 in third place; per-run streams carry the id in second
place and a 0 in third, which no per-draw stream has, and weights alone have two entries, so
no two layouts coincide. The weight, input and label layouts predate this enum and are kept:
every published figure depends on them.

The structure of a ``random-dag`` is not drawn from a run stream: it is part of the
architecture, a function of the family's own ``dag_seed`` and of d
(``SeedSequence([dag_seed, d])``), so one named architecture is one net in every run.

Draws happen on the CPU (float64 where it matters) and are then moved, so a seed gives the
same numbers on every device.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import torch

__all__ = ["Stream", "check_seed", "generator_for", "numpy_rng", "seed_entropy"]


class Stream(IntEnum):
    """The random streams; the value is the stream id in the entropy layout (module docstring)."""

    WEIGHTS = 0
    INPUTS = 1
    LABELS = 2
    PGD_START = 3
    SHARED_COMPONENT = 4
    SYMMETRY_TRIAL = 5
    PATH_SAMPLE = 6
    LINEAR_PGD = 7
    BOOTSTRAP = 8
    TRAIN_INIT = 9
    DATA_ORDER = 10
    ATTACK = 11
    DATA_SUBSET = 12


_PER_DRAW = {
    Stream.INPUTS,
    Stream.LABELS,
    Stream.PGD_START,
    Stream.SHARED_COMPONENT,
    Stream.TRAIN_INIT,
    Stream.DATA_ORDER,
    Stream.ATTACK,
}


def check_seed(seed: int, name: str = "--seed") -> int:
    """``seed`` as an int; SeedSequence rejects negative entropy, so a negative seed is an input error."""
    from graphs.errors import InputError

    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise InputError(f"{name}: {seed!r} is not a non-negative integer; give e.g. {name} 0")
    return int(seed)


def seed_entropy(stream: Stream, seed: int, *keys: int) -> list[int]:
    """The SeedSequence entropy of ``stream`` (layout in the module docstring).

    Per-draw streams take the draw id as the first key (``WEIGHTS``: ``(draw,)``;
    ``PGD_START``: ``(draw, norm, eps_index)``); per-run streams take their own keys.
    """
    seed = int(seed)
    ids = [int(k) for k in keys]
    if stream is Stream.WEIGHTS:
        if len(ids) != 1:
            raise ValueError("the WEIGHTS stream takes exactly one key: the draw")
        return [seed, ids[0]]
    if stream is Stream.BOOTSTRAP and not ids:
        return [seed]
    if stream in _PER_DRAW:
        if not ids:
            raise ValueError(f"the {stream.name} stream needs the draw as its first key")
        return [seed, ids[0], int(stream), *ids[1:]]
    return [seed, int(stream), 0, *ids]


def generator_for(stream: Stream, seed: int, *keys: int) -> torch.Generator:
    """A CPU ``torch.Generator`` for ``stream`` (e.g. ``generator_for(Stream.INPUTS, seed, draw)``)."""
    state = np.random.SeedSequence(seed_entropy(stream, seed, *keys)).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def numpy_rng(stream: Stream, seed: int, *keys: int) -> np.random.Generator:
    """A numpy ``Generator`` for ``stream`` (``BOOTSTRAP`` with no keys is ``default_rng(seed)``)."""
    entropy = seed_entropy(stream, seed, *keys)
    if stream is Stream.BOOTSTRAP and not keys:
        return np.random.default_rng(seed)
    return np.random.default_rng(np.random.SeedSequence(entropy))
