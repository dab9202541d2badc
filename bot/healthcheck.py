"""`python -m bot.healthcheck`: the container's health check. Asks the bot's own `/healthz` and
prints its answer, so that `docker inspect` shows why the bot is unhealthy (Telegram or the
storage), not only that it is. Exit code 0: healthy. Standard library only: it starts fast."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    host = os.environ.get("WEB_HOST") or "0.0.0.0"
    if host in ("0.0.0.0", "::"):  # every address: loopback is one of them
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{os.environ.get('WEB_PORT') or '8080'}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            print(response.read().decode(errors="replace"))
            return 0
    except urllib.error.HTTPError as error:  # 503: the body says which part is down
        print(f"HTTP {error.code}: {error.read().decode(errors='replace')}")
    except OSError as error:
        print(f"{url} did not answer: {error}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
