"""A stand-in for Hugging Face's `spaces` package, for tests/test_zerogpu.py.

ZeroGPU cannot be switched on here: `import spaces` with SPACES_ZERO_GPU=true needs the Spaces device API and a
CUDA build of torch. So the tests put this module first on sys.path instead. It keeps the contract the real
`spaces.GPU` (spaces==0.51.3, spaces/zero/wrappers.py and client.py) relies on, and records every use:

* `GPU(fn)` / `GPU(duration=...)(fn)`: a decoration is recorded at once ("decorated");
* a call is recorded when the real one would ask for a GPU (a generator: when it is first iterated), with the
  process, the thread, the Gradio event and request of that thread (what spaces reads to charge the visitor's
  quota) and the duration asked for (a callable duration is called with the function's arguments, as spaces does);
* while the file named by SFTVIZ_SPACES_REFUSE holds one of spaces' error titles ("ZeroGPU quota exceeded",
  "ZeroGPU illegal duration", "ZeroGPU queue timeout", ...), the call raises gradio.Error with that title, as
  spaces does.

Records are JSON lines appended to the file named by SFTVIZ_SPACES_LOG.
"""

import functools
import inspect
import json
import os
import threading


def _log(record):
    with open(os.environ["SFTVIZ_SPACES_LOG"], "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _ask_for_gpu(fn, duration, args, kwargs):
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    seconds = duration(*args, **kwargs) if callable(duration) else duration
    _log({"call": fn.__qualname__, "pid": os.getpid(), "thread": threading.current_thread().name,
          "main_thread": threading.current_thread() is threading.main_thread(),
          "event_id": LocalContext.event_id.get(None), "session": getattr(request, "session_hash", None),
          "duration": seconds})
    path = os.environ.get("SFTVIZ_SPACES_REFUSE")
    title = open(path, encoding="utf-8").read().strip() if path and os.path.exists(path) else ""
    if title:
        import gradio as gr
        raise gr.Error(f"{title} (raised by the test's stand-in for spaces)", title=title)


def GPU(fn=None, duration=60):  # noqa: N802  (the real name)
    def decorate(f):
        _log({"decorated": f.__qualname__, "pid": os.getpid()})
        if inspect.isgeneratorfunction(f):
            @functools.wraps(f)
            def gen_wrapper(*args, **kwargs):
                _ask_for_gpu(f, duration, args, kwargs)
                yield from f(*args, **kwargs)
            return gen_wrapper

        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            _ask_for_gpu(f, duration, args, kwargs)
            return f(*args, **kwargs)
        return wrapper
    return decorate(fn) if callable(fn) else decorate
