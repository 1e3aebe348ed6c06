"""Labels by marker search, as two other trainers make them (labels.py is TRL 1.16's SFTTrainer).

Both find the answer by searching each row's token ids for the token ids of a marker string, such as
"<|im_start|>assistant\\n" or "### Answer:". Nothing in the data says where the answer is: when the marker
tokenizes differently inside the text than on its own, nothing matches and the row trains on nothing.

- "trl-0.19": TRL 0.19.1, the last release with `DataCollatorForCompletionOnlyLM(response_template,
  instruction_template)`. The trainer prepares the data (EOS appended as text, no drop on truncation),
  then the collator copies input_ids to labels, masks every pad id (with pad == eos, the real EOS too),
  and masks everything up to the end of the LAST response marker (or, with an instruction marker, every
  instruction..response stretch, paired with zip).
- "unsloth": unsloth_zoo 2026.10.9's `train_on_responses_only(trainer, instruction_part, response_part)`
  on the data Unsloth's own `sft_prepare_dataset` makes (no EOS appended to text). A span starts after a
  response marker and ends at the next instruction marker, or at an EOS, which it includes (on
  prompt-completion rows the span keeps the completion mask's labels: a marker inside the prompt trains
  nothing there). Rows left with no label are dropped, with a printed count; if every row is, Unsloth raises.

`prepare()` returns the same `labels.Prepared` as labels.prepare, plus where the markers matched (`marks`).
"""

import json
from array import array
from dataclasses import dataclass, field

from .labels import IGNORE, Prepared, Sequence, TRLRefusal, add_eos, encode, from_sharegpt, is_conversational, \
    is_sharegpt, pad_id

MAX_MARKER_CHARS = 200


@dataclass(frozen=True)
class Rules:
    name: str  # on the command line
    label: str  # on the page
    markers: tuple  # the marker flags it takes, response first
    required: tuple  # the ones it cannot do without


RULES = {r.name: r for r in (
    Rules("trl", "TRL 1.16 SFTTrainer", (), ()),
    Rules("trl-0.19", "TRL 0.19 DataCollatorForCompletionOnlyLM", ("response_template", "instruction_template"),
          ("response_template",)),
    Rules("unsloth", "Unsloth train_on_responses_only", ("response_part", "instruction_part"),
          ("response_part", "instruction_part")),
)}


@dataclass
class Marks:
    """Where the markers matched in one row: positions where each match starts, and the trained spans."""
    response: list = field(default_factory=list)
    instruction: list = field(default_factory=list)
    spans: list = field(default_factory=list)  # (start, end) of each stretch whose labels were kept
    response_ids: list = field(default_factory=list)  # the ids searched for
    instruction_ids: list = field(default_factory=list)


def marker_ids(marker, tok):
    """A marker as token ids: a string is tokenized alone (no special tokens added), as both libraries do;
    a JSON list of whole numbers ("[32001, 13]") is taken as the ids themselves.

    >>> from sftviz.tokenizer import load_tokenizer
    >>> marker_ids("[608, 17]", load_tokenizer("default"))
    [608, 17]
    """
    text = marker.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            ids = json.loads(text)
        except ValueError:
            ids = None
        if isinstance(ids, list) and ids and all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            bad = [i for i in ids if not 0 <= i < len(tok)]
            if bad:  # no row can hold them: the search could only miss
                raise TRLRefusal(f"token id {bad[0]} is not in this tokenizer's vocabulary (ids 0 to {len(tok) - 1})")
            return ids
    return tok(marker, add_special_tokens=False)["input_ids"]


def check_marker(name, marker):
    """A marker from the page or the command line: a non-empty string of at most MAX_MARKER_CHARS."""
    if not isinstance(marker, str) or not marker:
        raise ValueError(f"{name} must be a marker string such as '<|im_start|>assistant\\n' or '### Answer:' (TRL 0.19 "
                         f"also takes token ids: [32001])")
    if len(marker) > MAX_MARKER_CHARS:
        raise ValueError(f"{name} is {len(marker):,} characters; a marker is at most {MAX_MARKER_CHARS}")
    return marker


def check_options(options):
    """Options.__post_init__'s check of the rules and their markers: the same words on the page and the CLI."""
    if options.rules not in RULES:
        raise ValueError(f"Invalid rules '{options.rules}', must be one of {tuple(RULES)}.")
    rules = RULES[options.rules]
    given = {"response": options.response, "instruction": options.instruction}
    if not rules.markers:
        if any(given.values()):
            raise ValueError("TRL 1.16's SFTTrainer takes no markers: it knows where the answer is from the "
                             "data's columns (pick another trainer to search for markers)")
        return
    for (what, value), flag in zip(given.items(), rules.markers):
        if value is not None or flag in rules.required:
            check_marker(flag, value)


def propose(tok):
    """(instruction, response) markers read from the tokenizer's chat template: the header the template writes
    before a user's text, and the one the generation prompt adds after the user's turn ends. sftviz's own reading,
    simpler than Unsloth's get_chat_template_parts; they agree on ChatML and Phi-3 (tests/test_other_trainers.py),
    and where Unsloth's gives up (SmolLM3's template with its system block) this one still reads the ChatML
    headers. None when the tokenizer has no chat template.

    >>> from sftviz.tokenizer import load_tokenizer
    >>> propose(load_tokenizer("default"))
    ('<|im_start|>user\\n', '<|im_start|>assistant\\n')
    """
    if not tok.chat_template:
        return None
    user, answer = "\x00U", "\x00A"
    try:
        asked = tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)
        both = tok.apply_chat_template([{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
                                       tokenize=False)
    except Exception:  # noqa: BLE001 - a template that cannot render a plain chat proposes nothing
        return None
    if user not in asked or answer not in both:
        return None
    after_user = asked[asked.index(user) + len(user):]  # end of the user's turn, then the response header
    after_answer = both[both.index(answer) + len(answer):]  # end of the assistant's turn
    n = 0
    while n < min(len(after_user), len(after_answer)) and after_user[n] == after_answer[n]:
        n += 1
    end_of_turn = after_user[:n]
    if "\n" in end_of_turn and not end_of_turn.endswith("\n"):
        end_of_turn = end_of_turn[:end_of_turn.rindex("\n") + 1]  # whole lines only: "<|end|>\n", not "<|end|>\n<|"
    response = after_user[len(end_of_turn):]
    before = asked[:asked.index(user)]  # the user's header, after any BOS or default system turn:
    opener = next((response[:m] for m in range(len(response), 1, -1) if response[:m] in before), "")
    instruction = before[before.rindex(opener):] if opener else before  # from the last turn opener they share
    if tok.bos_token and instruction.startswith(tok.bos_token):
        instruction = instruction[len(tok.bos_token):]
    return (instruction, response) if instruction and response else None


def prepare(rows, tok, options):
    """Rows -> labels.Prepared under options.rules ("trl-0.19" or "unsloth")."""
    if not rows:
        raise TRLRefusal("the dataset is empty")
    if options.packing:
        raise TRLRefusal(f"sftviz shows {RULES[options.rules].label} without packing: turn packing off")
    if is_sharegpt(rows[0]):
        if options.rules == "unsloth":  # Unsloth's preparation finds no text and no messages column
            raise TRLRefusal("Unsloth: You must specify a `formatting_func` (ShareGPT 'conversations': map them "
                             "to 'messages' first, e.g. with unsloth's standardize_data_formats)")
        rows = [from_sharegpt(r) for r in rows]  # TRL 0.19 renames them, as TRL 1.16 does
    prepared = (prepare_trl019 if options.rules == "trl-0.19" else prepare_unsloth)(rows, tok, options)
    if options.rules == "unsloth" and any((m or "").strip().startswith("[") for m in (options.response,
                                                                                      options.instruction)):
        prepared.warnings.insert(0, "Unsloth takes marker strings only: a list such as [32001] is searched as text "
                                    "(TRL 0.19's collator is the one that takes token ids).")
    return prepared


# ---- TRL 0.19.1: SFTTrainer._prepare_dataset, then DataCollatorForCompletionOnlyLM -------------------------------

def prepare_trl019(rows, tok, options):
    rows = [{k: remove_none(v) for k, v in r.items()} for r in rows]  # None inside messages is dropped, as TRL does
    warnings, mismatch_said = [], False
    # The EOS is appended as text to the column named "text" (TRL 0.19 looks at that name, whatever
    # dataset_text_field says), else to the completion; chats get none (the template ends the turns).
    if not is_conversational(rows[0]):
        rows = [add_eos(r, tok.eos_token, "text") for r in rows]
    ids = []
    for i, row in enumerate(rows):
        if "prompt" in row:
            if is_conversational(row):
                raise TRLRefusal("TRL 0.19.1 fails on conversational prompt-completion rows with transformers 5 "
                                 "(apply_chat_template returns a dict there): use 'messages'")
            if "completion" not in row:
                raise TRLRefusal(f"example {i} has a 'prompt' but no 'completion' column")
            prompt = tok(text=row["prompt"])["input_ids"]
            full = tok(text=row["prompt"] + row["completion"])["input_ids"]
            if full[:len(prompt)] != prompt and not mismatch_said:  # TRL warns per row; said once here
                mismatch_said = True
                warnings.append("TRL 0.19 warns: Mismatch between tokenized prompt and the start of tokenized "
                                "prompt+completion.")
            ids.append(full)
        elif is_conversational(row):
            try:
                ids.append(list(tok.apply_chat_template(row["messages"], return_dict=True, tools=row.get("tools"),
                                                        **row.get("chat_template_kwargs", {}))["input_ids"]))
            except ValueError as e:
                raise TRLRefusal(f"the tokenizer has no chat template for conversational data: {e}") from None
        elif isinstance(row.get(options.text_field), str):
            ids.append(None)
        else:
            raise TRLRefusal(f"example {i} has no {options.text_field!r} text field, no prompt/completion and no "
                             f"messages (columns: {', '.join(row)})")
    texts = [i for i, e in enumerate(ids) if e is None]
    for i, e in zip(texts, encode(tok, [rows[i][options.text_field] for i in texts])):
        ids[i] = e
    if options.max_length is not None:  # truncate_dataset: keep the start; nothing is dropped
        ids = [e[:options.max_length] for e in ids]

    pad = pad_id(tok)  # for a tokenizer with no pad token, the recipe every 0.19 example follows: pad = eos
    response = marker_ids(options.response, tok)
    instruction = marker_ids(options.instruction, tok) if options.instruction else None
    if not response or (options.instruction and not instruction):
        raise TRLRefusal("IndexError in the collator: the marker tokenizes to no token at all")
    if instruction and pad == tok.eos_token_id:
        warnings.append("TRL 0.19 warns: The pad_token_id and eos_token_id values of this tokenizer are identical. "
                        "If you are planning for multi-turn training, it can result in the model continuously "
                        "generating questions and answers without eos token.")
    sequences, marks, missing = [], {}, {"response": [], "instruction": []}
    for i, row_ids in enumerate(ids):
        labels = [IGNORE if t == pad else t for t in row_ids]  # DataCollatorForLanguageModeling(mlm=False)
        labels, marks[i], lost = collator_labels(labels, response, instruction)
        for what in lost:
            missing[what].append(i)
        sequences.append(Sequence(row_ids, labels, [1] * len(row_ids), None, [i] * len(row_ids), marks=marks[i]))
    for what, where in missing.items():
        if where:
            key = options.response if what == "response" else options.instruction
            warnings.append(f"TRL 0.19 warns: Could not find {what} key `{key}` in {len(where)} of {len(ids)} "
                            f"rows ({rows_list(where)}). These instances will be ignored in loss calculation.")
    return Prepared(sequences, completion_only_loss=False, assistant_only_loss=False, padding_free=False,
                    pad_token_id=pad, warnings=warnings, marks=marks, rules="trl-0.19")


def remove_none(value):
    """TRL's remove_none_values, as it reaches a row through `with_transform` (on batches): keys whose value is None
    are dropped inside nested dicts (a message's), never at the row's top level."""
    if isinstance(value, list):
        return [remove_none(v) for v in value]
    if isinstance(value, dict):
        return {k: remove_none(v) for k, v in value.items() if v is not None}
    return value


def find_all(labels, marker):
    """Every position where `marker` starts in `labels` (the collator: np.where on the first id, then a slice
    compare). Searched here as bytes, 8 per id, so the scan runs at C speed and in linear time whatever the data
    (a match that does not start on an id's first byte is skipped)."""
    hay, needle, size = array("q", labels).tobytes(), array("q", marker).tobytes(), 8
    found, at = [], hay.find(needle)
    while at >= 0:
        if at % size == 0:
            found.append(at // size)
            at = hay.find(needle, at + size)
        else:
            at = hay.find(needle, at + 1)
    return found


def collator_labels(labels, response, instruction):
    """DataCollatorForCompletionOnlyLM.torch_call on one row's labels (pad ids already -100). Returns the labels,
    the Marks, and which markers were missing ("response", "instruction")."""
    labels, lost = list(labels), []
    found = find_all(labels, response)
    marks = Marks(response=found, response_ids=response, instruction_ids=instruction or [])
    if instruction is None:
        if not found:
            return [IGNORE] * len(labels), marks, ["response"]
        end = found[-1] + len(response)  # the last match wins
        labels[:end] = [IGNORE] * end
        marks.spans = [(end, len(labels))]
        return labels, marks, lost
    ends = [k + len(response) for k in found]
    if not ends:
        labels, lost = [IGNORE] * len(labels), ["response"]
    humans = marks.instruction = find_all(labels, instruction)
    if not humans:
        labels, lost = [IGNORE] * len(labels), lost + ["instruction"]
    if humans and ends and humans[0] > ends[0]:
        humans = [0] + humans
    # Mask from each instruction to the end of its paired response marker (the first pair from the row's start),
    # and after the last instruction when it has no response. The stretches are marked first and applied once:
    # the same labels as masking them one by one, in linear time whatever the data.
    stretches = [(0 if k == 0 else start, end) for k, (start, end) in enumerate(zip(humans, ends))]
    if len(ends) < len(humans):
        stretches.append((humans[-1], len(labels)))
    depth = [0] * (len(labels) + 1)
    for start, end in stretches:
        if start < end:
            depth[start] += 1
            depth[end] -= 1
    covered = 0
    for p in range(len(labels)):
        covered += depth[p]
        if covered:
            labels[p] = IGNORE
    marks.spans = spans_of(labels)
    return labels, marks, lost


def spans_of(labels):
    """(start, end) of each run of kept labels."""
    spans, start = [], None
    for k, lab in enumerate(labels + [IGNORE]):
        if lab != IGNORE and start is None:
            start = k
        elif lab == IGNORE and start is not None:
            spans.append((start, k))
            start = None
    return spans


def rows_list(rows, most=8):
    """'rows 1, 5, 9' (at most `most` listed)."""
    shown = ", ".join(map(str, rows[:most]))
    return f"row{'s' if len(rows) > 1 else ''} {shown}{', …' if len(rows) > most else ''}"


# ---- Unsloth: sft_prepare_dataset, then train_on_responses_only --------------------------------------------------

def unsloth_marker(part, tok):
    """(core, optional_left, optional_right) of a marker: unsloth_zoo's _find_common_token_ids with its default
    force_match=True. The core is the marker's own tokenization, trimmed to the part whose ids do not change
    whatever text touches it (probed with a few characters on each side), when an added token anchors that part;
    the trimmed edge tokens are matched when present, not required."""
    original = tok(part, add_special_tokens=False)["input_ids"]
    if not original:
        return [], [], []
    n, start, end = len(original), 0, len(original)
    try:
        for c in ("\\", "{", "a", "A", "1", "(", ".", "<", "}", ">"):
            right = tok(part + c, add_special_tokens=False)["input_ids"]
            k = 0
            while k < min(n, len(right)) and right[k] == original[k]:
                k += 1
            end = min(end, k)
            left = tok(c + part, add_special_tokens=False)["input_ids"]
            k = 0
            while k < min(n, len(left)) and left[len(left) - 1 - k] == original[n - 1 - k]:
                k += 1
            start = max(start, n - k)
    except Exception:  # noqa: BLE001 - as unsloth_zoo: no trimming then
        start, end = 0, n
    if end > start and (start, end) != (0, n):
        added = getattr(tok, "added_tokens_decoder", None) or {}
        if any(str(added.get(i, "")).strip() for i in original[start:end]):
            return original[start:end], original[:start], original[end:]
    return original, [], []


def unsloth_matcher(tok, instruction_part, response_part):
    """The marker ids train_on_responses_only searches for, as a dict (its setup, before any row)."""
    q_must, q_left, q_right = unsloth_marker(instruction_part, tok)
    a_must, a_left, a_right = unsloth_marker(response_part, tok)
    if not q_must or not a_must:
        empty = "instruction_part" if not q_must else "response_part"
        raise TRLRefusal(f"Unsloth: {empty} could not be resolved to a stable token sequence, so it cannot be "
                         "matched against your dataset - it tokenizes to nothing.")
    if a_must == q_must[:len(a_must)] and a_right:  # trimmed to an opener every role shares: keep the role
        a_must, a_right = a_must + a_right, []
    if q_must == a_must[:len(q_must)] and q_right:
        q_must, q_right = q_must + q_right, []
    message_start = []  # a shared special-token opener (<|im_start|>) delimits every turn, tool turns included
    for q, a in zip(q_must, a_must):
        if q != a:
            break
        message_start.append(q)
    added = getattr(tok, "added_tokens_decoder", None) or {}
    special = {i for i, t in added.items() if getattr(t, "special", False)} | set(tok.all_special_ids or [])
    if not all(i in special for i in message_start) or \
            not any(getattr(added.get(i), "content", "").strip() for i in message_start):
        message_start = []
    return {"q": q_must, "q_left": q_left, "q_right": q_right, "a": a_must, "a_left": a_left, "a_right": a_right,
            "start": message_start, "bos": tok.bos_token_id, "eos": tok.eos_token_id}


def widen(ids, j, k, left, right):
    """A marker match ids[j:k] widened over its optional tokens: those before it (nearest first), then after it."""
    for t in reversed(left):
        if j < 1 or ids[j - 1] != t:
            break
        j -= 1
    for t in right:
        if k >= len(ids) or ids[k] != t:
            break
        k += 1
    return j, k


def unsloth_labels(ids, m, old=None):
    """train_on_responses_only's labels for one row, and the Marks. From each response marker (widened over its
    optional edge tokens), the span runs to the next instruction marker, or to an EOS (included), or stops
    before a BOS, a new turn's opener or another response marker; the last one runs to the end of the row.
    Inside a span the labels are copied from `old` (the row's labels so far) if there are any, else input_ids."""
    n, a, q = len(ids), m["a"], m["q"]
    labels, marks, spans = [IGNORE] * n, Marks(response_ids=a, instruction_ids=q), []
    j = 0
    while j < n:  # look for a response marker
        if ids[j] == a[0] and ids[j:j + len(a)] == a:
            marks.response.append(j)
            j, k = widen(ids, j, j + len(a), m["a_left"], m["a_right"])
            begin = j = k  # the answer starts after the marker: the header itself is never trained
            while j < n:  # walk the answer to its end
                token = ids[j]
                if token == m["eos"]:  # an EOS ends it, and is trained
                    spans.append((begin, j + 1))
                    break
                if token == m["bos"] or (m["start"] and ids[j:j + len(m["start"])] == m["start"]) or \
                        (token == a[0] and ids[j:j + len(a)] == a):  # a new sample, turn or answer: stop before it
                    spans.append((begin, j))
                    j -= 1  # and look at it again from the outer loop (a following answer is not skipped)
                    break
                last = j == n - 1  # tested first: on the row's last token the instruction test is skipped,
                if last or (token == q[0] and ids[j:j + len(q)] == q):  # and k keeps its old value (as Unsloth)
                    if not last:
                        k = j + len(q)
                        marks.instruction.append(j)
                    j, k = widen(ids, j, k, m["q_left"], m["q_right"])  # its optional tokens are not trained either
                    if j != n - 1:  # stopped at the instruction marker: the answer ends before it
                        spans.append((begin, j))
                        j = k - 1  # resume after the marker (an empty user turn cannot hide the next one)
                    else:  # the row ends inside the answer: trained to its end
                        spans.append((begin, n))
                    break
                j += 1
        j += 1
    source = ids if old is None else old
    for begin, end in spans:
        labels[begin:end] = source[begin:end]
    marks.spans = spans
    return labels, marks


def prepare_unsloth(rows, tok, options):
    ids, prompt_lens, warnings = unsloth_tokenize(rows, tok, options)
    m = unsloth_matcher(tok, options.instruction, options.response)
    sequences, marks, masked = [], {}, []
    for i, row_ids in enumerate(ids):
        # With TRL >= 1.7 (whose collator no longer applies masks), Unsloth's preparation turns a prompt-completion
        # row's completion mask into a `labels` column, and the marker spans copy those labels: a span inside the
        # prompt stays -100.
        old = None if prompt_lens[i] is None else [IGNORE] * prompt_lens[i] + row_ids[prompt_lens[i]:]
        labels, marks[i] = unsloth_labels(row_ids, m, old)
        empty = max(labels, default=IGNORE) == IGNORE  # Unsloth drops the row
        masked += [i] if empty else []
        sequences.append(Sequence(row_ids, labels, [1] * len(row_ids), None, [i] * len(row_ids), dropped=empty,
                                  marks=marks[i]))
    prepared = Prepared(sequences, completion_only_loss=False, assistant_only_loss=False, padding_free=False,
                        pad_token_id=pad_id(tok), warnings=warnings, marks=marks, rules="unsloth")
    if masked:
        warnings += unsloth_drops(prepared, masked, options)
    return prepared


def unsloth_tokenize(rows, tok, options):
    """sft_prepare_dataset: (input_ids, the prompt's length in each prompt-completion row or None, warnings)."""
    first, warnings, n = rows[0], [], options.max_length
    chat_template = tok.chat_template or ""
    messages = first.get("messages")
    kind = "pc" if "prompt" in first and "completion" in first else \
        "chat" if options.text_field not in first and isinstance(messages, list) and messages and \
        isinstance(messages[0], dict) and "role" in messages[0] else "text"
    if kind == "text" and not isinstance(first.get(options.text_field), str):
        raise TRLRefusal("Unsloth: You must specify a `formatting_func` (no text field "
                         f"{options.text_field!r}, no prompt/completion and no messages)")
    if kind == "pc" and n is None:  # `max_seq_length > 0` with max_length=None
        raise TRLRefusal("Unsloth fails on prompt-completion data with max_length=None (TypeError: '>' not "
                         "supported between 'NoneType' and 'int'): set max_length")
    if kind == "text" and n is None and tok.model_max_length < 1e9:
        n = tok.model_max_length  # tokenizer(truncation=True, max_length=None) cuts there
    test_text = first[options.text_field] if kind == "text" else \
        first["prompt"] if kind == "pc" and isinstance(first["prompt"], str) else None
    add_special = True  # Unsloth's guard against a double BOS: no special tokens when the text or template has one
    if tok.bos_token is not None and ((test_text is not None and test_text.startswith(tok.bos_token))
                                      or tok.bos_token in chat_template):
        add_special = False
        warnings.append("Unsloth: We found double BOS tokens - we shall remove one automatically.")
    ids, prompt_lens = [], []
    for i, row in enumerate(rows):
        if kind == "pc":
            full, prompt = unsloth_prompt_completion(row, tok, add_special)
            ids.append(full[:n])
            prompt_lens.append(min(len(prompt), len(full), n))
            continue
        prompt_lens.append(None)
        if kind == "chat":
            messages = [{k: v for k, v in msg.items() if v is not None} for msg in row["messages"]]
            tools = json.loads(row["tools"]) if isinstance(row.get("tools"), str) else row.get("tools")
            try:
                out = tok.apply_chat_template(messages, tools=tools, tokenize=True, return_dict=True,
                                              **(row.get("chat_template_kwargs") or {}))
            except ValueError as e:
                raise TRLRefusal(f"the tokenizer has no chat template for conversational data: {e}") from None
            # chats are cut at max_length itself (text is cut by the tokenizer, at model_max_length when None)
            ids.append(list(out["input_ids"])[:options.max_length] if options.max_length else list(out["input_ids"]))
        elif not isinstance(row.get(options.text_field), str):
            raise TRLRefusal(f"example {i} has no {options.text_field!r} text field")
        else:
            ids.append(None)
    texts = [i for i, e in enumerate(ids) if e is None]
    if texts:  # text: tokenized as it is, truncated by the tokenizer, and NO EOS appended
        enc = tok([rows[i][options.text_field] for i in texts], truncation=True, max_length=n,
                  add_special_tokens=add_special)["input_ids"]
        for i, e in zip(texts, enc):
            ids[i] = e
    return ids, prompt_lens, warnings


def unsloth_prompt_completion(row, tok, add_special):
    """(prompt+completion ids, prompt ids) of one prompt-completion row: chats through the template (the prompt with
    the generation prompt), plain strings with the EOS appended to the completion."""
    if is_conversational(row):
        kwargs = {"tools": row.get("tools"), **(row.get("chat_template_kwargs") or {})}
        prompt = tok.apply_chat_template(row["prompt"], tokenize=True, add_generation_prompt=True,
                                         return_dict=False, **kwargs)
        prompt = prompt[0] if prompt and isinstance(prompt[0], list) else prompt
        full = tok.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=True, **kwargs)
        return list(full["input_ids"]), list(prompt)
    completion = row["completion"]
    if tok.eos_token and not completion.endswith(tok.eos_token):
        completion += tok.eos_token
    prompt = tok(row["prompt"], add_special_tokens=add_special)["input_ids"]
    return tok(row["prompt"] + completion, add_special_tokens=add_special)["input_ids"], prompt


def unsloth_drops(prepared, masked, options):
    """Unsloth's filter of the rows left with no label: its printed count, its truncation diagnosis (when at least 90%
    of rows are masked and 90% of those sit at max_length), and its error when every row is."""
    n = len(prepared.sequences)
    at_cap = [i for i in masked[:100] if options.max_length and len(prepared.sequences[i].input_ids) >= options.max_length]
    truncation = len(masked) / n >= 0.9 and options.max_length and len(at_cap) >= 0.9 * len(masked[:100])
    cause = (f"Unsloth: train_on_responses_only masked all/most labels to -100. The most likely cause is truncation: "
             f"max_length={options.max_length} cut off the response marker {options.response!r} before masking could "
             f"find it.")
    if len(masked) == n:
        raise refusal(prepared, cause if truncation else
                      f"Unsloth: train_on_responses_only masked every label to -100 in train_dataset, so there is "
                      f"nothing to train on. The response marker {options.response!r} was not found in any sample - "
                      f"check that instruction_part and response_part match your chat template.")
    return ([f"Unsloth: Warning: {cause}"] if truncation else []) + \
        [f"Unsloth: Removed {len(masked)} out of {n} samples from train_dataset where all labels were -100 (no "
         f"response marker found, usually truncation). ({rows_list(masked)})"]


def refusal(prepared, message):
    """Unsloth's error, carrying what it masked (the doctor reads it to say why)."""
    error = TRLRefusal(message)
    error.prepared = prepared
    return error
