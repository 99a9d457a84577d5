"""The one place torch and transformers are first imported, under a lock.

Two threads importing transformers at once (the app's preload and its first run) can see a
half-initialised module: ``ImportError: cannot import name 'AutoConfig' from 'transformers'``.
Every thread that is about to touch a model calls :func:`import_heavy` first; the first caller
imports, the others wait for it, and later calls cost nothing.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_done = False


def import_heavy() -> None:
    """Import torch and transformers once (blocking until done); safe from any thread."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        import torch  # noqa: F401
        from transformers import AutoConfig, AutoModelForCausalLM  # noqa: F401 — resolves the lazy module

        _done = True
