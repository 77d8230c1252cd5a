"""python -m scheduler: build the app with create_app() and run the worker."""

import logging
import os

from scheduler.runner import run
from webapp import create_app


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("YUNKETANG_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
    )
    run(create_app())


if __name__ == "__main__":
    main()
