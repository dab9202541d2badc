"""`python -m bot`: read the settings, start the bot. Bad settings: one line, exit code 2."""

from __future__ import annotations

import asyncio
import logging
import sys

from bot.logs import setup_logging
from config import SettingsError, load_settings, misspelt


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(settings.log_level, settings.secrets)
    for warning in misspelt():
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
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
