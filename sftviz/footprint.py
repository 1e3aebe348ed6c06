"""About how much memory a cached value holds: what the page's caches count (SFTVIZ_CACHE_MB), so that the
limit is the memory really held, not the size of the value's pickle (a list of token ids pickles to ~3 bytes a
token and takes ~40 in memory: a pointer and an int object).

    >>> footprint([1, 2, 3]) < footprint([1000, 2000, 3000])  # small ints are shared by Python, others are not
    True
    >>> row = {"prompt": "x" * 1000}
    >>> footprint([row, row]) < 2 * footprint([row])  # an object held twice is counted once
    True
"""

import sys
from array import array
from dataclasses import fields, is_dataclass

INT = 32  # an int object outside Python's shared small ints (-5..256): 28 bytes, 32 as allocated
SLOT = 8  # a pointer in a list, a tuple or a dict
TOKEN_ENTRY = 1000  # bytes per vocabulary entry of a loaded tokenizer (GPT-2's 50k: 14 MB, Phi-3's 32k: 31 MB)


def footprint(value):
    """Approximate deep size in bytes of `value`: strings, numbers, lists, tuples, dicts, dataclasses and arrays
    as they sit in memory, each object counted once; a tokenizer by its vocabulary (TOKEN_ENTRY)."""
    seen = set()
    total, stack = 0, [value]
    while stack:
        obj = stack.pop()
        if obj is None or isinstance(obj, bool):
            continue
        if isinstance(obj, int):
            total += 0 if -5 <= obj <= 256 else INT
            continue
        if isinstance(obj, float):
            total += 24
            continue
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (str, bytes, bytearray, array)):
            total += sys.getsizeof(obj)
        elif isinstance(obj, list) and obj and type(obj[0]) is int:  # token ids, labels, masks: one pass in C
            total += sys.getsizeof(obj) + _ints(obj)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            total += sys.getsizeof(obj)
            stack.extend(obj)
        elif isinstance(obj, dict):
            total += sys.getsizeof(obj)
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif is_dataclass(obj):
            total += sys.getsizeof(obj) + SLOT * len(fields(obj))
            stack.extend(getattr(obj, f.name) for f in fields(obj))
        elif hasattr(obj, "convert_ids_to_tokens"):  # a tokenizer
            total += max(2**20, TOKEN_ENTRY * len(obj))
        elif hasattr(obj, "__dict__"):  # another object: its attributes
            total += sys.getsizeof(obj)
            stack.append(vars(obj))
        else:
            total += sys.getsizeof(obj)
    return total


def _ints(ints):
    """The int objects a list of ints holds (small ones are shared: free), estimated from its extremes."""
    try:
        if -5 <= min(ints) and max(ints) <= 256:
            return 0
    except TypeError:  # not all ints after all
        return sum(footprint(x) for x in ints)
    return INT * len(ints)
