"""The Export table's claims about Axolotl and LLaMA-Factory, checked with their own label-building code
(frameworks_reference.py, in the venvs scripts/test.sh makes) against TRL 1.16's real SFTTrainer, on 12 OASST
chats with the Phi-3 tokenizer. What each test asserts is what the table says (sftviz.export.FRAMEWORKS)."""

import functools

from conftest import get_tokenizer, run_in_venv, shared_path
from sftviz import data
from sftviz.export import FRAMEWORKS

VENVS = {"axolotl": ".venv-axolotl", "llamafactory": ".venv-llamafactory"}
END, ENDOFTEXT, USER, ASSISTANT, NEWLINE = 32007, 32000, 32010, 32001, 13  # Phi-3's ids


def chats():
    return data.load(shared_path("assets", "data", "oasst_en95_messages.jsonl"), limit=12)


CASES = {  # (framework, the whole-text switch, extra settings)
    "axolotl-answers": ("axolotl", False, {}),
    "axolotl-answers-eot": ("axolotl", False, {"eot_tokens": ["<|end|>"]}),
    "axolotl-whole": ("axolotl", True, {}),
    "llamafactory-answers": ("llamafactory", False, {}),
    "llamafactory-whole": ("llamafactory", True, {}),
}


@functools.lru_cache(maxsize=None)
def real(framework):
    names = [name for name, case in CASES.items() if case[0] == framework]
    cases = [{"rows": chats(), "tokenizer": shared_path("assets", "tokenizers", "phi-3-mini"),
              "train_on_inputs": CASES[n][1], "settings": CASES[n][2]} for n in names]
    results = run_in_venv(VENVS[framework], "frameworks_reference.py", framework, cases)
    return {n: r["records"] for n, r in zip(names, results)}


@functools.lru_cache(maxsize=None)
def trl(mode):
    from trl_reference import trl_rows
    return trl_rows(chats(), get_tokenizer("phi3"), mode, max_length=None)[0]  # no truncation, as below


def row_of(name):
    return next(r for r in FRAMEWORKS if r[0] == name)


def test_axolotl_chat_template_is_assistant_only_loss_once_eot_tokens_names_the_turn_end():
    """Axolotl 0.19.0 (the newest on the index; 0.21 is not there), type chat_template, roles_to_train
    [assistant], train_on_eos turn: with eot_tokens ['<|end|>'] input_ids and labels equal TRL 1.16's
    assistant_only_loss on every chat; with its default eot_tokens (the EOS), each answer's <|end|> is not
    trained, and that is the only difference."""
    ours = trl("assistant")
    assert real("axolotl")["axolotl-answers-eot"] == [{k: r[k] for k in ("input_ids", "labels")} for r in ours]
    for theirs, mine in zip(real("axolotl")["axolotl-answers"], ours):
        assert theirs["input_ids"] == mine["input_ids"]
        differ = [p for p, (a, b) in enumerate(zip(theirs["labels"], mine["labels"])) if a != b]
        assert differ and all(mine["input_ids"][p] == END and theirs["labels"][p] == -100 for p in differ)
    assert "eot_tokens" in row_of("Axolotl")[4] and "checked" in row_of("Axolotl")[4]


def test_axolotl_train_on_inputs_is_not_quite_whole_text():
    """train_on_inputs: true trains the text of every turn, but not the role tokens (and the user turns'
    <|end|>): whole text in TRL trains them too."""
    for theirs, mine in zip(real("axolotl")["axolotl-whole"], trl("whole")):
        assert theirs["input_ids"] == mine["input_ids"]
        differ = {mine["input_ids"][p] for p, (a, b) in enumerate(zip(theirs["labels"], mine["labels"])) if a != b}
        assert differ and differ <= {USER, ASSISTANT, END}
        assert all(theirs["labels"][p] == -100 for p, t in enumerate(mine["input_ids"]) if t in (USER, ASSISTANT))
    assert "role tokens" in row_of("Axolotl")[4]


def test_llamafactory_phi_template_differs_from_trl_as_the_table_says():
    """LLaMA-Factory 0.9.5, template phi: it makes <|end|> the EOS (so the newline after it becomes a token, trained
    after each answer), tokenizes each answer on its own, and ends on '<|end|>\\n' with no <|endoftext|>;
    train_on_prompt trains every token it makes."""
    for theirs, mine in zip(real("llamafactory")["llamafactory-answers"], trl("assistant")):
        ids, labels = theirs["input_ids"], theirs["labels"]
        assert ids != mine["input_ids"] and ENDOFTEXT not in ids
        assert all(ids[p + 1] == NEWLINE for p, t in enumerate(ids[:-1]) if t == END)
        assert labels[-2:] == [END, NEWLINE]  # the answer's end and the newline after it are trained
        assert all(labels[p] == -100 for p, t in enumerate(ids) if t in (USER, ASSISTANT))
    for theirs in real("llamafactory")["llamafactory-whole"]:
        assert theirs["labels"] == theirs["input_ids"]
    assert "not the same tokens" in row_of("LLaMA-Factory")[4]
