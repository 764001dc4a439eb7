"""Where the agent runs in a Dramatiq deployment, and when it starts and drains.

`dramatiq app.broker` is a supervisor that never imports the app; each worker process it starts
(fork, or spawn) imports the broker module itself. So each worker process has its own agent, born
when the module instruments the broker and shared by its threads, never inherited across a fork.
The link starts at once (no fork follows) and drains in the middleware's `after_worker_shutdown`:
worker processes leave through multiprocessing, which skips `atexit`. A process that only
enqueues drains at interpreter exit. More: docs/engines/dramatiq.md. The code is
`z4j_dramatiq.instrument` (the start) and `Z4JMiddleware`'s worker hooks (the drain).
"""
