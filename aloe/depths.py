"""Block depths of a transformer with L blocks, as the config names them: one resolver each for
the alignment depths and the dense-probe blocks. Standard library only (the Snakefile imports it).

Alignment depths (config keys ``alignment.depths``, ``ablations.depths.settings``) count block
outputs from 1: depth ``l`` is ``hidden_states[l]`` of the HF output (``hidden_states[0]`` is the
embedding output), so the valid range is 1..L. The config may name them by symbol: ``L``,
``L/3`` (floor), ``2L/3`` (floor), ``all`` (1..L), or ``default``, the paper's {floor(L/3),
floor(2L/3), L}. Symbols that fall below block 1 on a shallow model (L/3 for L < 3) are clamped to
block 1, and duplicates merge: for L = 2 the default is [1, 2]. The authors' public code indexed
``hidden_states[int(L/3)-1, int(2L/3)-1, L-1]`` (blocks 3, 7, 11 for L = 12); the integers
``[3, 7, 11]`` reproduce it.

Dense-probe blocks (``evaluation.dense.blocks``) are another convention: 0-based block indices
whose patch tokens the feature cache stores (Probe3D's L/4-1, L/2-1, 3L/4-1, L-1).
"""

from __future__ import annotations

from typing import Any, Sequence

DEPTH_SYMBOLS = ("L", "L/3", "2L/3", "all")
DEFAULT_DEPTHS = ("L/3", "2L/3", "L")  # the paper's {floor(L/3), floor(2L/3), L}


def _symbol_blocks(symbol: str, num_layers: int) -> list[int]:
    if symbol == "all":
        return list(range(1, num_layers + 1))
    if symbol == "L":
        return [num_layers]
    if symbol == "L/3":
        return [max(num_layers // 3, 1)]
    if symbol == "2L/3":
        return [max(2 * num_layers // 3, 1)]
    raise ValueError(f"config key 'depths': {symbol!r} is not an integer or one of {DEPTH_SYMBOLS}")


def resolve_depths(depths: Any, num_layers: int) -> list[int]:
    """The sorted, distinct 1-based block outputs that config ``depths`` names on a model with
    ``num_layers`` blocks: ``None`` or ``"default"`` (the paper's default), or a non-empty list of
    integers in 1..num_layers and symbols (module docstring). Anything else is a ValueError
    naming the config key."""
    if depths is None or depths == "default":
        depths = DEFAULT_DEPTHS
    if isinstance(depths, str) or not isinstance(depths, Sequence):
        raise ValueError(f"config key 'depths': {depths!r} is not 'default' or a list of depths")
    out: set[int] = set()
    for d in depths:
        if isinstance(d, str):
            out.update(_symbol_blocks(d, num_layers))
        elif isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= num_layers:
            raise ValueError(
                f"config key 'depths': {d!r} is outside the model; depths are 1-based block "
                f"outputs in 1..{num_layers} (hidden_states[d], hidden_states[0] = embeddings)"
            )
        else:
            out.add(d)
    if not out:
        raise ValueError("config key 'depths' is empty; give at least one depth or 'default'")
    return sorted(out)


def default_depths(num_layers: int) -> list[int]:
    """The paper's depths {floor(L/3), floor(2L/3), L} on a model with ``num_layers`` blocks."""
    return resolve_depths("default", num_layers)


DENSE_BLOCK_SYMBOLS = ("quartiles", "last")


def dense_blocks(blocks: Any, num_layers: int) -> list[int]:
    """0-based blocks whose patch tokens feed the dense probes (config ``evaluation.dense.blocks``):
    ``"quartiles"`` = Probe3D's L/4-1, L/2-1, 3L/4-1, L-1 (floored, clamped to block 0, distinct),
    ``"last"`` = [L-1], or a list of 1-based blocks, each moved to 0-based."""
    if blocks == "quartiles":
        return sorted({max(num_layers * q // 4 - 1, 0) for q in (1, 2, 3, 4)})
    if blocks == "last":
        return [num_layers - 1]
    if isinstance(blocks, str):
        raise ValueError(f"config key 'evaluation.dense.blocks': {blocks!r} is not a list or one of "
                         f"{DENSE_BLOCK_SYMBOLS}")
    return [b - 1 for b in blocks]
