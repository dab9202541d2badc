"""`make bench`: the real bot against the fake Telegram and backend at growing loads."""
