"""`python -m bot`: read the settings, start the bot. Bad settings: one line, exit code 2."""

from __future__ import annotations

import asyncio
import logging
import sys

from config import SettingsError, load_settings


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from bot.app import StartupError, build_app, run_polling  # aiogram is slow to import

    try:
        app = build_app(settings)
        asyncio.run(run_polling(app))
    except StartupError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
