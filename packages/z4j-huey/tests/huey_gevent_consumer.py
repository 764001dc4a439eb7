"""`huey_consumer` for the greenlet worker type: gevent's monkey patching must come first."""

from gevent import monkey

monkey.patch_all()

from huey.bin.huey_consumer import consumer_main  # noqa: E402

if __name__ == "__main__":
    consumer_main()
