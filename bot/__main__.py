"""`python -m bot`: read the settings, start the bot. Bad settings: one line, exit code 2."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from types import FrameType


def _exit_now(signum: int, frame: FrameType | None) -> None:
    """SIGTERM or SIGINT before the bot runs (its imports take seconds): nothing is being
    answered or written yet, so it ends at once, with no traceback. Also what makes SIGTERM
    work at all there when the bot is a container's PID 1, which ignores it by default."""
    os._exit(0)


def main() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_now)  # the event loop's own handlers replace these later
    os.umask(0o077)  # the conversations it stores are for no other user of the machine
    from bot.logs import RedactingFilter, setup_logging  # after the handlers: pydantic is slow
    from config import SettingsError, load_settings, misspelt, unused

    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(settings.log_level, settings.secrets)
    for warning in [*misspelt(), *unused(settings)]:
        logging.getLogger("config").warning(warning)
    from bot.app import (  # slow to import
        StartupError,
        build_app,
        freeze_startup_objects,
        run_polling,
        run_webhook,
    )

    try:
        app = build_app(settings)
        freeze_startup_objects()
        if settings.bot_mode == "webhook":
            asyncio.run(run_webhook(app))
        else:
            asyncio.run(run_polling(app, web=True))
    except StartupError as error:
        # A URL in it may hold the token (`…/bot<token>` pasted as TELEGRAM_API_URL).
        print(f"error: {RedactingFilter(settings.secrets).redact(str(error))}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
