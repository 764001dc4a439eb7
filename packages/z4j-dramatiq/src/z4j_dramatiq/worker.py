"""Where the agent runs in a Dramatiq deployment, and when it starts and drains.

`dramatiq app.broker` is a supervisor: its main process never imports the app, and each worker
process it starts (fork, or spawn with `--use-spawn`) imports the broker module itself. So the
agent is born in each worker process when the module instruments the broker, and every thread of
that process shares its one link; no agent is inherited across a fork (the agent's
`after_fork="restart"` covers an app that imports the broker before forking).

- A worker process starts the link when the broker module is imported (no fork follows) and
  drains it in `after_worker_shutdown`: Dramatiq's worker processes leave through
  multiprocessing, which skips `atexit`.
- A process that only enqueues starts the link when it instruments the broker and drains it at
  interpreter exit.
"""

from __future__ import annotations


def start_now(start: bool | None) -> bool:
    """Whether `instrument` starts the link at once: unless the caller said False."""
    return start is None or start
