"""The size limits on untrusted input: one place for every bound and its default.

The loader, the expand pass, ``check`` and ``render`` enforce them; the CLI's
``--max-*`` flags raise them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Bounds on untrusted input, all checked before the tree is walked or allocated."""

    max_bytes: int = 1 << 20  # 1 MiB of YAML
    max_depth: int = 64  # nesting of mappings and sequences
    max_yaml_nodes: int = 100_000  # values after alias expansion
    max_int_digits: int = 20
    max_nodes: int = 20_000  # graph nodes after blocks and repeats are expanded
    max_repeat: int = 1_000
    max_block_depth: int = 16
    max_include_depth: int = 8
    max_channels: int = 1 << 16
    max_params: int = 2_000_000_000
    max_elements: int = 1 << 31  # elements of one per-sample tensor
    max_string: int = 4096

    def replace(self, **kw: int) -> Limits:
        return Limits(**{**self.__dict__, **kw})


DEFAULT_LIMITS = Limits()
