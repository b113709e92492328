"""Deep merge of configuration mappings (Patroni's patch_config rules)."""
from __future__ import annotations

import copy
from typing import Any, Dict, Mapping


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any], drop_none: bool = False) -> Dict[str, Any]:
    """A new mapping: `overlay` over `base`, mappings merged key by key, any
    other value replaced. With drop_none, a None in the overlay removes the key
    (how Patroni merges the files of a configuration directory)."""
    out: Dict[str, Any] = copy.deepcopy(dict(base))
    for name, value in overlay.items():
        if value is None and drop_none:
            out.pop(name, None)
        elif isinstance(value, Mapping) and isinstance(out.get(name), Mapping):
            out[name] = deep_merge(out[name], value, drop_none)
        else:
            out[name] = copy.deepcopy(value)
    return out
