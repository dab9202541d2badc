"""The Docker image: built from the repository, run as a user would run it.

Opt-in (building takes a while): runs only when a Docker daemon answers and RUN_DOCKER_TESTS=1,
e.g. `make docker-test`. The last test runs the container on the host network against the fake
Telegram and the fake model backend, so it needs a Linux Docker engine (`--network=host`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import TOKEN
from tests.fakes.llm import FakeLLM
from tests.fakes.telegram import FakeTelegram
from tests.helpers import answer_messages, is_final

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "g4f-telegram-bot:test"
USER = 1234


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        os.environ.get("RUN_DOCKER_TESTS") != "1",
        reason="Docker tests are opt-in: set RUN_DOCKER_TESTS=1 (make docker-test)",
    ),
    pytest.mark.skipif(
        os.environ.get("RUN_DOCKER_TESTS") == "1" and not docker_available(),
        reason="no Docker daemon answers `docker info`",
    ),
]


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


async def docker_async(*args: str) -> tuple[int, str]:
    """Run a docker command without blocking the event loop the fake servers run on."""
    process = await asyncio.create_subprocess_exec(
        "docker",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


@pytest.fixture(scope="module")
def image() -> str:
    """Build the image once for this module, as `docker build -t g4f-telegram-bot:test .`."""
    result = subprocess.run(
        ["docker", "build", "-t", IMAGE, "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, f"docker build failed:\n{result.stdout[-3000:]}{result.stderr}"
    return IMAGE


def run_python(image: str, code: str) -> subprocess.CompletedProcess[str]:
    return docker("run", "--rm", "--entrypoint", "python", image, "-c", code)


def test_image_runs_as_non_root(image: str) -> None:
    configured = docker("image", "inspect", "--format", "{{.Config.User}}", image)
    assert configured.returncode == 0, configured.stderr
    assert configured.stdout.strip().split(":")[0] not in ("", "0", "root")

    result = run_python(image, "import os; print(os.getuid(), os.getgid())")
    assert result.returncode == 0, result.stderr
    uid, gid = (int(n) for n in result.stdout.split())
    assert uid != 0 and gid != 0

    # The data volume belongs to that user, and that is where the bot writes.
    result = run_python(
        image,
        "import os; s = os.stat('/data'); print(os.environ['DATA_DIR'], s.st_uid, os.access("
        "'/data', os.W_OK))",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["/data", str(uid), "True"]


def test_image_has_no_dotenv_and_no_curl_cffi(image: str) -> None:
    find_dotenv = (
        "import os\n"
        "skip = ('/proc', '/sys', '/dev')\n"
        "for top, dirs, files in os.walk('/'):\n"
        "    dirs[:] = [d for d in dirs if os.path.join(top, d) not in skip]\n"
        "    for name in files:\n"
        "        if name == '.env':\n"
        "            print(os.path.join(top, name))\n"
    )
    result = run_python(image, find_dotenv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f".env files in the image:\n{result.stdout}"

    result = run_python(image, "import curl_cffi")
    assert result.returncode != 0
    assert "No module named 'curl_cffi'" in result.stderr

    result = run_python(image, "import g4f, aiogram, bot.__main__")
    assert result.returncode == 0, result.stderr


def test_without_token_exits_2_with_one_line(image: str) -> None:
    result = docker("run", "--rm", image)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "BOT_TOKEN is not set" in lines[0]
    assert "Traceback" not in result.stderr


async def test_container_answers_through_fake_servers(
    image: str, tg: FakeTelegram, llm: FakeLLM
) -> None:
    name = f"g4f-telegram-bot-test-{uuid.uuid4().hex[:8]}"
    with socket.socket() as probe:  # a free port on the host network for /healthz and /metrics
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, output = await docker_async(
        "run",
        "--detach",
        "--name",
        name,
        "--network=host",
        "--health-interval=1s",
        "--health-start-period=1s",
        "--env",
        f"BOT_TOKEN={TOKEN}",
        "--env",
        f"TELEGRAM_API_URL={tg.base_url}",
        "--env",
        f"G4F_API_BASE={llm.base_url}",
        "--env",
        "LLM_IDLE_TIMEOUT=10",
        "--env",
        f"WEB_PORT={port}",
        image,
    )
    try:
        assert code == 0, output

        def answered() -> bool:
            messages = answer_messages(tg, USER)
            return is_final(messages) and "You said: hello from docker" in messages[-1].text

        try:
            await tg.wait_for(lambda: any(c.method == "getUpdates" for c in tg.calls), timeout=60)
            tg.send_user_message(USER, "hello from docker")
            await tg.wait_for(answered, timeout=60)
        except AssertionError as error:
            _, logs = await docker_async("logs", "--tail", "50", name)
            raise AssertionError(f"{error}\ncontainer log:\n{logs}") from None

        # The image's HEALTHCHECK asks /healthz: Telegram and the storage answer.
        for _ in range(60):
            _, health = await docker_async("inspect", "--format", "{{.State.Health.Status}}", name)
            if health.strip() == "healthy":
                break
            await asyncio.sleep(0.5)
        assert health.strip() == "healthy"
        # Its answer is kept, so that an unhealthy container says which part is down.
        _, checks = await docker_async("inspect", "--format", "{{json .State.Health.Log}}", name)
        assert any('"telegram": "ok"' in c["Output"] for c in json.loads(checks)), checks

        [answer] = answer_messages(tg, USER)
        assert answer.text == "You said: hello from docker"
        assert answer.reply_markup is None
        assert llm.received[-1].messages[-1] == {"role": "user", "content": "hello from docker"}

        # `docker stop` ends it cleanly, well before Docker would resort to SIGKILL.
        started = time.monotonic()
        code, output = await docker_async("stop", "--time", "20", name)
        assert code == 0, output
        assert time.monotonic() - started < 15
        _, exit_code = await docker_async("inspect", "--format", "{{.State.ExitCode}}", name)
        assert exit_code.strip() == "0"
    finally:
        await docker_async("rm", "--force", "--volumes", name)
