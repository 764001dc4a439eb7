"""Where the agent runs in a Dramatiq deployment, and when it starts and drains.

`dramatiq app.broker` is a supervisor that never imports the app; each worker process it starts
(fork, or spawn with `--use-spawn`) imports the broker module itself. So each worker process has
its own agent, born when the module instruments the broker and shared by its threads (one link
per process), never inherited across a fork (`after_fork="restart"` covers an app that imports
the broker before forking). The link starts at once (no fork follows) and drains in the
middleware's `after_worker_shutdown`: worker processes leave through multiprocessing, which skips
`atexit`. A process that only enqueues starts it when it instruments the broker and drains it at
interpreter exit.
"""

from __future__ import annotations


def start_now(start: bool | None) -> bool:
    """Whether `instrument` starts the link at once: unless the caller said False."""
    return start is None or start
