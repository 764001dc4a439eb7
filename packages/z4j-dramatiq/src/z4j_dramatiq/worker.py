"""Where the agent runs in a Dramatiq deployment, and when it starts and drains.

`dramatiq app.broker` is a supervisor: its main process never imports the app, and each worker
process it starts (fork by default, spawn with `--use-spawn`) imports the broker module itself
and runs the message threads. So the agent lives in each worker process, born there when the
module instruments the broker: every thread of that process shares its one link (one WebSocket
per worker process, never one per thread), and no agent is ever inherited across a fork. The
agent's `after_fork="restart"` policy covers the rare app that imports the broker before forking
(a preloading web server): the child gets a fresh agent identity on its first event.

- A worker process starts the link when the broker module is imported (no fork follows), and
  drains it in `after_worker_shutdown`: Dramatiq's worker processes leave through
  multiprocessing, which skips `atexit`.
- A process that only enqueues (a web app, a script) starts the link when it instruments the
  broker and drains it at interpreter exit.
"""

from __future__ import annotations


def start_now(start: bool | None) -> bool:
    """Whether `instrument` starts the link at once: always, unless the caller said False."""
    return start is None or start
