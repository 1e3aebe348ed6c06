"""The doctor's checks for marker search (markers.py: TRL 0.19's collator, Unsloth's train_on_responses_only):
a marker that is not found (and the marker that would be), the last match winning, pad == eos masking the
EOS, the header never trained, another turn trained between markers. doctor.scan calls `note` for every
example labelled under those rules; doctor.REPORTS lists the reports below.
"""

from .labels import IGNORE
from .markers import RULES, find_all, marker_ids, unsloth_marker

KEPT_IDS = 20  # unmatched examples whose ids are kept to propose a marker that matches


def note(seq, index, env, tallies, scan, pad):
    """Count one example's marker problems (seq.marks says where the markers matched; `pad` is the pad id the
    trainer used)."""
    m, o = seq.marks, env.options
    if not m.response:
        tallies["marker_missing"].add(index, lambda: near_match(seq.input_ids, m.response_ids, env.tok)[0])
        if len(scan.unmatched) < KEPT_IDS:
            scan.unmatched.append(seq.input_ids)
        return
    if o.rules == "trl-0.19" and o.instruction and not m.instruction:  # the collator masks the whole row
        tallies["instruction_missing"].add(index)
    if any(lab != IGNORE for lab in seq.labels):
        tallies["header"].add(index, range(m.response[0], m.response[0] + len(m.response_ids)))
    if o.rules == "trl-0.19" and not o.instruction and len(m.response) > 1:
        tallies["last_match"].add(index, m.response[:-1], f"{len(m.response)} matches; the answers after the first "
                                                           f"{len(m.response) - 1} are masked")
    if o.rules == "trl-0.19" and pad is not None and pad == env.eos:
        masked = [p for p, (t, lab) in enumerate(zip(seq.input_ids, seq.labels)) if t == env.eos and lab == IGNORE
                  and p > m.response[0]]
        if masked:
            tallies["pad_eos"].add(index, masked)
    openers = opener_ids(m, env.special)
    inside = [p for a, b in m.spans for p in range(a, b) if seq.input_ids[p] in openers]
    if inside:
        tallies["other_turn"].add(index, inside)


def opener_ids(m, special):
    """The ids that open a turn: the first token of both markers (<|im_start|>) when it is a special token (a plain
    '###' can open a heading inside an answer), else none."""
    r, q = m.response_ids, m.instruction_ids
    return {r[0]} if r and q and r[0] == q[0] and r[0] in special else set()


def near_match(ids, marker, tok, most=2048):
    """Where the row comes closest to the marker: (positions of the tokens there, the ids there when they cover
    the marker's own text, else []). The text is searched first; failing that, the longest run of the marker's
    ids found in the row (first `most` tokens, first 64 marker ids: bounded work for any input)."""
    ids = ids[:most]
    text = tok.decode(marker).strip()
    context = in_context(ids, text, tok) if text else []
    if context:
        return context, [ids[p] for p in context]
    marker, best, previous = marker[:64], (0, 0), [0] * (len(marker[:64]) + 1)
    for p, token in enumerate(ids):  # longest common run: one row of the table at a time
        current = [0] * len(previous)
        for i, m in enumerate(marker):
            if token == m:
                current[i + 1] = previous[i] + 1
                if current[i + 1] > best[0]:
                    best = (current[i + 1], p + 1 - current[i + 1])
        previous = current
    n, start = best
    return list(range(start, start + n)), []


def in_context(ids, text, tok):
    """The positions of the tokens that cover the first occurrence of `text` in the row's decoded text."""
    full = tok.decode(ids)
    at = full.find(text)
    if at < 0:
        return []

    def end_of(k):  # characters decoded by the first k tokens
        return len(tok.decode(ids[:k]))

    lo, hi = 0, len(ids)
    while lo < hi:  # the first k whose prefix reaches past the start of the text
        mid = (lo + hi) // 2
        if end_of(mid + 1) > at:
            hi = mid
        else:
            lo = mid + 1
    first = lo
    last = first
    while last < len(ids) and end_of(last + 1) < at + len(text):
        last += 1
    return list(range(first, min(last + 1, len(ids))))


def matcher(rules, tok):
    """The ids a marker string is searched as, under `rules`."""
    if rules == "unsloth":
        return lambda marker: unsloth_marker(marker, tok)[0]
    return lambda marker: marker_ids(marker, tok)


def proposal(c):
    """(a marker that matches the most unmatched examples kept, how many of them, and of how many), or None."""
    unmatched, tok, o = c.sc.unmatched, c.tok, c.options
    if not unmatched:
        return None
    ids_of = matcher(o.rules, tok)
    candidates = [o.response.strip(), "\n" + o.response.strip(), " " + o.response.strip(), o.response.rstrip("\n"),
                  "\n" + o.response, o.response.lstrip()]
    _, context = near_match(unmatched[0], ids_of(o.response), tok)
    if context:
        candidates.insert(0, tok.decode(context))
        if o.rules == "trl-0.19":
            candidates.append(str(context))  # the ids themselves: the collator takes them
    best = None
    for marker in dict.fromkeys(candidates):
        if not marker or marker == o.response:
            continue
        ids = ids_of(marker)
        if not ids:
            continue
        hits = sum(bool(find_all(row, ids)) for row in unmatched)
        if hits and (best is None or hits > best[1]):
            best = (marker, hits, len(unmatched))
    return best


def marker_missing(c):
    """The response marker is never found in some examples: what it is alone, what is there in context, and a
    marker that matches."""
    t, o, tok = c.sc.tallies["marker_missing"], c.options, c.tok
    if not t.count:
        return []
    alone = matcher(o.rules, tok)(o.response)
    shown = [repr(s) for s in tok.convert_ids_to_tokens(alone)]
    words = (f"The {RULES[o.rules].markers[0]} {o.response!r} is searched as the token ids {alone} "
             f"({' '.join(shown)}). ")
    if c.sc.unmatched:
        _, context = near_match(c.sc.unmatched[0], alone, tok)
        if context:
            words += (f"In example {t.examples[0]['index']} the same text is tokenized as {context} "
                      f"({' '.join(repr(s) for s in tok.convert_ids_to_tokens(context))}): the text around it "
                      "changes how it is split, so the ids never match. ")
    consequence = ("Unsloth drops these rows (and raises if it is every row)." if o.rules == "unsloth" else
                   "The collator sets every label of these rows to -100 and only warns: they train on nothing.")
    fix = "Check the marker against the rendered text, with its surrounding newlines and spaces."
    if o.rules == "unsloth" and alone and context_differs(c, alone):
        fix = ("No marker string can match here: Unsloth tokenizes the string alone, and this tokenizer splits it "
               "differently there than after the text before it. Render the chat with a template whose markers are "
               "special tokens, or train with TRL 1.16's assistant_only_loss (the template marks the answer).")
    found = proposal(c)
    if found:
        marker, hits, of = found
        fix = (f"Use {marker!r}: it matches {hits} of the {of} unmatched examples checked"
               + (" (token ids: the collator takes a list)" if marker.startswith("[") else "") + ".")
    severity = "error" if t.count == c.n else "warning"
    return c.found("marker_not_found", severity, f"The response marker {o.response!r} is not found", t,
                   words + consequence, fix)


def context_differs(c, alone):
    """Whether the marker's text is in the first unmatched example, under other ids."""
    return bool(c.sc.unmatched and near_match(c.sc.unmatched[0], alone, c.tok)[1])


def instruction_missing(c):
    """TRL 0.19's collator masks a whole row where the instruction marker is missing, even with the response
    marker found."""
    o = c.options
    return c.found("instruction_not_found", "error" if c.sc.tallies["instruction_missing"].count == c.n else "warning",
                   f"The instruction marker {o.instruction!r} is not found: the whole row is masked",
                   c.sc.tallies["instruction_missing"],
                   "DataCollatorForCompletionOnlyLM sets every label of a row to -100 when its instruction_template "
                   "does not match, even where the response_template does (it only warns).",
                   f"Check {o.instruction!r} against the rendered text, or leave instruction_template out for "
                   "single-turn data.")


def last_match(c):
    """TRL 0.19 with no instruction marker keeps only what follows the LAST response marker."""
    return c.found("last_match_only", "warning", "Only the text after the last response marker is trained",
                   c.sc.tallies["last_match"],
                   "With no instruction_template, DataCollatorForCompletionOnlyLM masks everything up to the end of "
                   "the last match: earlier answers in a multi-turn row (or an answer that contains the marker "
                   "text) are masked.",
                   "Pass instruction_template too, so that every answer between markers is trained.")


def pad_eos(c):
    """TRL 0.19's collator masks every pad id in the labels: with pad == eos, the EOS too."""
    return c.found("pad_masks_eos", "error", "The EOS is masked: pad_token is the EOS", c.sc.tallies["pad_eos"],
                   "The collator copies input_ids to labels and sets every pad id to -100 before it looks for the "
                   "markers. This tokenizer's pad token is its EOS, so the real EOS is never trained either: "
                   "the model does not learn to stop.",
                   "Set a pad token that is not the EOS (e.g. tokenizer.pad_token = '<|pad|>' or the unk token), or "
                   "use TRL 1.16's completion_only_loss, which builds labels before padding.")


def header(c):
    """The response marker itself is context: neither library trains the header it searches for."""
    return c.found("header_not_trained", "info", "The response marker (the assistant's header) is never trained",
                   c.sc.tallies["header"],
                   "Both libraries start the trained span after the response marker, so the model never learns to "
                   "write it. That is usually intended; TRL 1.16's assistant_only_loss trains whatever the chat "
                   "template puts inside {% generation %}, which can include the header.",
                   "Nothing to fix if the header is given at inference (add_generation_prompt=True).")


def other_turn(c):
    """A span that runs over another turn (a tool result) is trained as if the assistant wrote it."""
    return c.found("other_turn_trained", "warning", "Another turn is trained between the markers",
                   c.sc.tallies["other_turn"],
                   "The trained span runs from a response marker to the next instruction marker, so a turn in "
                   "between (a tool result, a system note) is trained as the assistant's answer.",
                   ("Use TRL 1.16's assistant_only_loss, or Unsloth's train_on_responses_only, which also stops at "
                    "the next turn's opener." if c.options.rules == "trl-0.19" else
                    "Use TRL 1.16's assistant_only_loss (the template marks the assistant's turns)."))


REPORTS = (marker_missing, instruction_missing, pad_eos, last_match, other_turn, header)
