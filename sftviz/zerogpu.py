"""ZeroGPU, the GPU a free Hugging Face Space gets: how sftviz uses it, and only where it must.

On ZeroGPU (the Space sets SPACES_ZERO_GPU) there is no GPU in the web process. A function decorated with
`spaces.GPU` gets one for one call: the `spaces` package reads the visitor's Gradio request from the calling
thread (the visitor's daily quota pays for the call), asks for a GPU for `duration` seconds, and runs the
function in a process it forks itself. So:

* the tiny model never goes near it: it trains in sftviz's CPU workers on every host (sftviz.jobs), and no
  visitor's quota is spent on it (`device()` says "cpu" there);
* work that needs a GPU is decorated once, at import (`gpu(duration)`), and called in the web process from
  the Gradio event of the visitor who asked for it, never from a worker process;
* a refusal (quota used up, a duration longer than the visitor may use, no GPU free) becomes one line with
  what to do next (`refusal`).

Off ZeroGPU (`spaces` not installed, or SPACES_ZERO_GPU unset) nothing changes. No gradio here: a refusal is
recognised by the title `spaces` gives its gradio.Error.
"""

import importlib.util
import os


def on_zerogpu_host():
    """The Space runs on ZeroGPU hardware (it sets SPACES_ZERO_GPU)."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def active():
    """On a ZeroGPU Space: SPACES_ZERO_GPU set, and the `spaces` package installed."""
    return on_zerogpu_host() and importlib.util.find_spec("spaces") is not None


def gpu(duration):
    """Decorator, applied at import: `spaces.GPU(duration=duration)` on ZeroGPU, the function unchanged
    elsewhere. `duration`: seconds, or a callable of the function's arguments (the work it is given)."""
    def decorate(fn):
        if not active():
            return fn
        import spaces
        return spaces.GPU(duration=duration)(fn)
    return decorate


def device():
    """Where work in a worker process runs: never CUDA on ZeroGPU (the GPU exists only inside a decorated
    call), else CUDA when the machine has it, else the CPU."""
    if on_zerogpu_host():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


NEXT = {  # spaces' error titles -> one line: what happened, and what to do next
    "ZeroGPU quota exceeded": "Your free GPU time on this Space is used up for today (ZeroGPU gives a visitor "
                              "about 2 minutes a day without a Hugging Face login, 5 with a free account). Log in "
                              "or try again tomorrow; the tiny model trains on the CPU and needs no GPU time.",
    "ZeroGPU pending credits exceeded": "Your free GPU time on this Space is used up for now. Try again later; the "
                                        "tiny model trains on the CPU and needs no GPU time.",
    "ZeroGPU illegal duration": "This run needs more GPU time in one go than ZeroGPU gives you. Choose the quick "
                                "preset or fewer steps, or log in to Hugging Face for a larger quota.",
    "ZeroGPU queue timeout": "No GPU was free on this Space in time. Try again in a minute; the tiny model trains "
                             "on the CPU and needs no GPU.",
    "ZeroGPU client error": "No GPU could be had on this Space just now. Try again in a minute; the tiny model "
                            "trains on the CPU and needs no GPU.",
}


def refusal(error):
    """A ZeroGPU refusal (spaces raises gradio.Error with one of NEXT's titles) as one line; else None."""
    title = getattr(error, "title", None)
    if not isinstance(title, str) or not title.startswith("ZeroGPU"):
        return None
    return f"{title}: {NEXT.get(title, 'Try again in a minute, or use the tiny model, which needs no GPU.')}"
