"""What the page holds of a labelled dataset: of each example at most VIEW_TOKENS positions (the end of a
longer one), in compact arrays (4 bytes a value instead of the ~40 of a list of Python ints). An example is
expanded back into a labels.Sequence when it is shown; what the page's counts read (dropped, role counts,
lengths) is kept beside, so counting never expands anything.

    >>> from sftviz.labels import Sequence
    >>> long = Sequence(list(range(10)), [-100] * 6 + [6, 7, 8, 9], [1] * 10, None, [0] * 10)
    >>> rows = Shown([long], limit=4)
    >>> shown = rows[0]
    >>> shown.input_ids, shown.offset, shown.full_length, shown.role_counts()["target"]
    ([6, 7, 8, 9], 6, 10, 4)
"""

import os
from array import array
from dataclasses import dataclass

from .labels import Sequence

VIEW_TOKENS = int(os.environ.get("SFTVIZ_VIEW_TOKENS", 4096))  # positions of one example the page holds and shows


@dataclass
class Window(Sequence):
    """A sequence as the page holds it: its last VIEW_TOKENS positions (all of a shorter one), with the whole
    sequence's length, role counts and scored tokens, so counts and statistics stay exact."""

    window_offset: int = 0
    length: int = 0
    counts: dict = None
    scored: int = 0

    @property
    def offset(self):
        return self.window_offset

    @property
    def full_length(self):
        return self.length

    def role_counts(self):
        return dict(self.counts)

    @property
    def num_scored(self):
        return self.scored


class Shown:
    """labels.Prepared.sequences as the page keeps them: list-like (rows[i] is a Window), compact inside, with
    `dropped`, `counts` (role counts) and `lengths` (full lengths) per example."""

    def __init__(self, sequences, limit=None):
        limit = limit or VIEW_TOKENS
        self.dropped = [s.dropped for s in sequences]
        self.counts = [s.role_counts() for s in sequences]
        self.lengths = [len(s.input_ids) for s in sequences]
        self.scored = [s.num_scored for s in sequences]
        self._rows = [_pack(s, max(0, len(s.input_ids) - limit)) for s in sequences]

    def __len__(self):
        return len(self._rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = range(len(self))[i]  # negative indexes, and IndexError past the end
        ids, labels, mask, positions, sources, start = self._rows[i]
        return Window(ids.tolist(), labels.tolist(), None if mask is None else mask.tolist(),
                      None if positions is None else positions.tolist(), sources.tolist(), self.dropped[i],
                      window_offset=start, length=self.lengths[i], counts=self.counts[i], scored=self.scored[i])

    def __iter__(self):
        return (self[k] for k in range(len(self)))


def _pack(seq, start):
    """The lists of `seq` from position `start` on, as arrays of 32-bit ints."""
    def cut(xs):
        return None if xs is None else array("i", xs[start:] if start else xs)
    return (cut(seq.input_ids), cut(seq.labels), cut(seq.attention_mask), cut(seq.position_ids), cut(seq.sources),
            start)
