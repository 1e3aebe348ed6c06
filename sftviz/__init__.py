"""sftviz: see what supervised fine-tuning (TRL's SFTTrainer) trains on, token by token."""

TRL_VERSION = "1.16.0"  # the TRL release whose behaviour sftviz mirrors


import re

MESSAGE_CHARS = 300  # the most a message shows: a 1 MB Hub id or a million-column header is not echoed whole
_SURROGATE = re.compile("[\ud800-\udfff]")
# Library messages that would mean nothing to a visitor -> ours. (Where a reader knows the file and row, it
# says so itself: sftviz.readers.)
LIBRARY_WORDS = (
    ("PanicException", "the tokenizer stopped on this data (a text too long for its memory budget, or one it "
                       "cannot read); try shorter rows"),
    ("RecursionError", "the data is nested too deeply to read (more than about a thousand levels), or a template "
                       "calls itself without end"),
    ("Exceeds the limit", "a number has too many digits to read (more than 4,300 by default), in the data or made "
                          "by a template"),
    ("TextEncodeInput must be", "a value the tokenizer was given is not text: check that every text column holds "
                                "text in every row"),
)


def clean_text(text):
    """`text` with lone UTF-16 surrogates (as JSON's "\ud800" can make) replaced by U+FFFD: such a string
    cannot be encoded as UTF-8, so no page, file or pipe could carry it."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def quoted(text, chars=80):
    """repr(text), cut to about `chars` characters: how a message echoes what a visitor typed."""
    text = str(text)
    return repr(text) if len(text) <= chars else repr(text[:chars]) + f"… ({len(text):,} characters)"


def one_line(error):
    """An exception as the one-line message the CLI and the page show (never a traceback): its first line,
    in our words where a library's would mean nothing, at most MESSAGE_CHARS characters."""
    text = str(error).strip()
    for needle, ours in LIBRARY_WORDS:
        if needle in type(error).__name__ or needle in text:
            text = ours
            break
    text = clean_text(text.splitlines()[0] if text else type(error).__name__)
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 1] + "…"
