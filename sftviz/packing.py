"""Packing: several tokenized examples per row of max_length tokens, as TRL 1.16's `pack_dataset` does.

TRL packs with `dataset.map(batched=True)`, so examples are packed within chunks of 1,000 (the
`datasets` default batch size), never across them. The strategies (SFTConfig.packing_strategy) are the
table STRATEGIES at the end of this file; every list of strategies in sftviz is read from it.

    bfd        Best Fit Decreasing: longest documents first, each into the fullest row it still fits;
               a document longer than max_length is cut (its tail is lost). Rows are padding-free.
    bfd_split  the same, but an over-long document is split into max_length fragments that are packed
               like documents (a later fragment starts at position 0, without the earlier text).
    wrapped    concatenate everything and cut every max_length tokens, across document boundaries:
               documents see each other, and a document's first token is predicted from the previous one.

Each packed row is returned as (input_ids, labels, sources, seq_lengths, dropped=False), where
`sources[t]` is the index of the example position t came from and seq_lengths the document lengths
(None for wrapped, which keeps no boundaries).
"""

import bisect
from collections import defaultdict, deque
from dataclasses import dataclass

CHUNK = 1000  # datasets.map's default batch_size


@dataclass(frozen=True)
class Strategy:
    name: str  # SFTConfig.packing_strategy
    padding_free: bool  # TRL's collator then sends position_ids and no attention mask (no padding at all), and
    # each document attends only to itself; without it, the documents of a row attend to each other
    description: str  # one line, for the page and the CLI's help
    pack_chunk: object  # (docs, max_length) -> packed rows; docs are (input_ids, labels, source index)


def refuse_unknown(strategy):
    """TRL's own check and wording (trl.data_utils.pack_dataset)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"Invalid packing strategy '{strategy}', must be one of {tuple(STRATEGIES)}.")


def pack(ids, labels, max_length, strategy):
    """Tokenized examples -> packed rows, chunk by chunk as TRL's batched `datasets.map` does. A row is
    (input_ids, labels, the source example of each token, the documents' lengths or None, dropped).

    Best fit decreasing: the longest document (example 2) first, then the one that fills its row best;
    the rows keep each document's labels, and the documents' lengths restart the position ids:

    >>> ids, labels = [[1, 2, 3], [4, 5], [6, 7, 8, 9]], [[1, 2, 3], [-100, 5], [6, 7, 8, 9]]
    >>> for row in pack(ids, labels, 6, "bfd"): print(row[:4])
    ([6, 7, 8, 9, 4, 5], [6, 7, 8, 9, -100, 5], [2, 2, 2, 2, 1, 1], [4, 2])
    ([1, 2, 3], [1, 2, 3], [0, 0, 0], [3])

    Wrapped: one stream cut every max_length tokens, across documents (no lengths: nothing restarts):

    >>> for row in pack(ids, labels, 4, "wrapped"): print(row[:3])
    ([1, 2, 3, 4], [1, 2, 3, -100], [0, 0, 0, 1])
    ([5, 6, 7, 8], [5, 6, 7, 8], [1, 2, 2, 2])
    ([9], [9], [2])
    """
    refuse_unknown(strategy)
    pack_chunk = STRATEGIES[strategy].pack_chunk
    rows = []
    for start in range(0, len(ids), CHUNK):
        docs = [(ids[i], labels[i], i) for i in range(start, min(start + CHUNK, len(ids)))]
        rows += pack_chunk(docs, max_length)
    return rows


def wrapped(docs, max_length):
    """One long stream of tokens cut every max_length: a row may start or end mid-document, nothing
    separates documents (no position_ids restart, an ordinary attention mask over the whole row)."""
    flat_ids = [t for d, _, _ in docs for t in d]
    flat_labels = [t for _, lab, _ in docs for t in lab]
    flat_src = [i for d, _, i in docs for _ in d]
    return [(flat_ids[k:k + max_length], flat_labels[k:k + max_length], flat_src[k:k + max_length], None, False)
            for k in range(0, len(flat_ids), max_length)]


def bfd(docs, max_length, split):
    """Best Fit Decreasing bin packing, as TRL's `_pack_bfd`: pieces sorted longest first, each put into
    the open row with the least free space that still holds it (a new row when none does)."""
    pieces = []
    for d, lab, i in docs:
        if not d:  # empty documents are removed
            continue
        if split:  # fragments of max_length, the last one shorter
            pieces += [(d[k:k + max_length], lab[k:k + max_length], i) for k in range(0, len(d), max_length)]
        else:  # keep the start, lose the rest
            pieces.append((d[:max_length], lab[:max_length], i))

    # Longest first (a stable sort, so equal lengths keep their order). Each piece goes into the bin with
    # the least free space that still fits it; bins with the same free space are used oldest first.
    order = sorted(range(len(pieces)), key=lambda k: -len(pieces[k][0]))
    bins, free_spaces, by_space = [], [], defaultdict(deque)  # free_spaces: sorted, spaces < max_length
    for k in order:
        length = len(pieces[k][0])
        pos = bisect.bisect_left(free_spaces, length)
        if pos < len(free_spaces):
            space = free_spaces[pos]
            b = by_space[space].popleft()
            if not by_space[space]:
                free_spaces.pop(pos)
        else:
            space, b = max_length, []
            bins.append(b)
        b.append(k)
        space -= length
        by_space[space].append(b)
        if space > 0 and len(by_space[space]) == 1:
            bisect.insort(free_spaces, space)

    rows = []
    for b in bins:
        rows.append(([t for k in b for t in pieces[k][0]], [t for k in b for t in pieces[k][1]],
                     [pieces[k][2] for k in b for _ in pieces[k][0]], [len(pieces[k][0]) for k in b], False))
    return rows


STRATEGIES = {s.name: s for s in (
    Strategy("bfd", True, "best fit decreasing: longest documents first, each into the fullest row it fits; "
             "a document longer than max_length loses its tail",
             lambda docs, max_length: bfd(docs, max_length, split=False)),
    Strategy("bfd_split", True, "best fit decreasing, but a document longer than max_length is split into "
             "fragments that are packed like documents",
             lambda docs, max_length: bfd(docs, max_length, split=True)),
    Strategy("wrapped", False, "everything concatenated and cut every max_length tokens: documents attend to "
             "each other", wrapped),
)}
