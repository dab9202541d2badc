"""Settings of the bot: one schema, read from the environment and `.env`."""

from config.settings import Settings, SettingsError, load_settings, misspelt, unused

__all__ = ["Settings", "SettingsError", "load_settings", "misspelt", "unused"]
