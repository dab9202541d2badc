"""Restarts lose nothing: SIGTERM lets answers finish or interrupts them cleanly; after SIGKILL the
unfinished answer is found at start-up and the asker is told. The bot runs as `python -m bot`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TOKEN, BotRunner
from tests.fakes.llm import FakeLLM, Reply
from tests.fakes.telegram import FakeTelegram
from tests.helpers import CURSOR, answer_messages, final_answer
from tests.test_e2e_long_texts import origin

ROOT = Path(__file__).resolve().parent.parent
USER = 6006


def start_process(
    tg: FakeTelegram, llm: FakeLLM, data_dir: Path, **env: str
) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "G4F_", "LLM_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "bot"],
        cwd=data_dir.parent,
        env={
            **clean,
            "PYTHONPATH": str(ROOT),
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": tg.base_url,
            "G4F_API_BASE": llm.base_url,
            "DATA_DIR": str(data_dir),
            "STREAM_MODE": "edit",
            "LOG_LEVEL": "INFO",
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": "0",  # /healthz and /metrics on a free port, not 8080
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def output_lines(process: subprocess.Popen[str]) -> list[str]:
    """The lines the process writes, as they come (read by a thread of their own)."""
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True).start()
    return lines


async def wait_exit(process: subprocess.Popen[str], timeout: float = 30) -> int:  # noqa: ASYNC109
    for _ in range(int(timeout * 20)):
        if process.poll() is not None:
            return process.returncode
        await asyncio.sleep(0.05)
    process.kill()
    raise AssertionError("the bot did not exit")


async def sigterm_mid_answer(
    tg: FakeTelegram, llm: FakeLLM, tmp_path: Path, reply: Reply, grace: str
) -> int:
    """Run the bot, ask, send SIGTERM once the answer shows; the bot must exit with code 0."""
    process = start_process(tg, llm, tmp_path / "data", SHUTDOWN_GRACE=grace)
    try:
        await tg.wait_for(lambda: any(c.method == "getUpdates" for c in tg.calls), timeout=60)
        llm.script(reply)
        question = tg.send_user_message(USER, "a question")["message"]
        await tg.wait_for(lambda: bool(answer_messages(tg, USER, question["message_id"])))
        process.send_signal(signal.SIGTERM)
        assert await wait_exit(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
    return int(question["message_id"])


async def test_sigterm_interrupts_a_long_answer_and_exits_0(
    tg: FakeTelegram, llm: FakeLLM, tmp_path: Path
) -> None:
    reply = Reply("word " * 3000, chunk_size=5, delay=0.02)
    question_id = await sigterm_mid_answer(tg, llm, tmp_path, reply, grace="1")
    messages = answer_messages(tg, USER, question_id)
    text = messages[-1].text
    assert text.startswith("word") and "stopped before this answer was finished" in text
    assert all(m.reply_markup is None for m in messages)
    await tg.wait_for(lambda: llm.received[-1].client_closed, timeout=5)


async def test_sigterm_lets_a_short_answer_finish(
    tg: FakeTelegram, llm: FakeLLM, tmp_path: Path
) -> None:
    reply = Reply("short answer " * 30, chunk_size=10, delay=0.03)
    question_id = await sigterm_mid_answer(tg, llm, tmp_path, reply, grace="10")
    [answer] = answer_messages(tg, USER, question_id)
    assert answer.text == ("short answer " * 30).strip()


async def test_a_second_signal_interrupts_the_answers_at_once(
    tg: FakeTelegram, llm: FakeLLM, tmp_path: Path
) -> None:
    process = start_process(tg, llm, tmp_path / "data", SHUTDOWN_GRACE="60")
    lines = output_lines(process)
    try:
        await tg.wait_for(lambda: any(c.method == "getUpdates" for c in tg.calls), timeout=60)
        llm.script(Reply("word " * 3000, chunk_size=5, delay=0.02))  # 60 s of answer
        question = tg.send_user_message(USER, "a question")["message"]
        await tg.wait_for(lambda: bool(answer_messages(tg, USER, question["message_id"])))
        process.send_signal(signal.SIGTERM)
        await tg.wait_for(lambda: any("waiting up to 60 s" in line for line in lines))
        process.send_signal(signal.SIGINT)  # Ctrl+C
        assert await wait_exit(process, timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    await tg.wait_for(lambda: any("interrupting the answers now" in line for line in lines))
    text = answer_messages(tg, USER, question["message_id"])[-1].text
    assert "stopped before this answer was finished" in text


async def test_after_sigkill_the_unfinished_answer_is_marked_interrupted(
    tg: FakeTelegram, llm: FakeLLM, tmp_path: Path, start_bot: BotRunner
) -> None:
    data_dir = tmp_path / "data"
    process = start_process(tg, llm, data_dir)
    try:
        await tg.wait_for(lambda: any(c.method == "getUpdates" for c in tg.calls), timeout=60)
        llm.script(Reply("word " * 3000, chunk_size=5, delay=0.02))
        question = tg.send_user_message(USER, "a long answer please", language_code="ru")["message"]
        # Edited once with its Stop button: the bot has recorded the message id by then (it does
        # that right after the send, before its next call), so the restart can find it.
        await tg.wait_for(
            lambda: any(
                m.reply_markup and m.edits >= 1
                for m in answer_messages(tg, USER, question["message_id"])
            )
        )
        # A second question waits behind that answer, and is promised an answer after it.
        waiting = tg.send_user_message(USER, "and this one", language_code="ru")["message"]
        await tg.wait_for(
            lambda: any(
                m.text.startswith("⏳") and m.reply_to_message_id == waiting["message_id"]
                for m in tg.bot_messages(USER)
            )
        )
        await asyncio.sleep(0.3)  # its record is written right after the notice
    finally:
        process.kill()  # SIGKILL: no chance to clean up
        process.wait(10)
    shown = next(m for m in answer_messages(tg, USER, question["message_id"]) if m.reply_markup)
    # What it stored is for no other user of the machine.
    for path in (data_dir, data_dir / "bot.sqlite3", data_dir / "bot.sqlite3-wal"):
        assert path.stat().st_mode & 0o077 == 0, f"{path}: {path.stat().st_mode:o}"
    promise = next(m for m in tg.bot_messages(USER) if m.text.startswith("⏳"))

    start_bot.data_dir = data_dir
    await start_bot()
    await tg.wait_for(
        lambda: any("остановился" in m.text for m in tg.bot_messages(USER)), timeout=20
    )
    await tg.wait_for(lambda: tg.message(USER, promise.message_id).deleted, timeout=20)
    notices = [m for m in tg.bot_messages(USER) if "остановился" in m.text]
    assert [n.reply_to_message_id for n in notices] == [
        question["message_id"],
        waiting["message_id"],
    ]
    assert "не успев ответить" in notices[1].text  # not answered: ask again
    # The last message shows what it showed, without its Stop button and cursor.
    left = tg.message(USER, shown.message_id)
    assert left.reply_markup is None
    assert left.text.startswith("word word") and not left.text.endswith(CURSOR)
    # The conversation goes on from what was shown.
    follow = tg.send_user_message(USER, "again")["message"]
    await final_answer(tg, USER, after=follow["message_id"])
    sent = llm.received[-1].messages
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "a long answer please" and sent[2]["content"] == "again"
    assert sent[1]["content"].strip() == left.text


async def stop_mid_drain(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner, caplog: pytest.LogCaptureFixture
) -> tuple[Any, asyncio.Task[None], threading.Thread]:
    """A bot stopping with a long answer under way, waiting for it (grace 30 s): the bot, its
    run, and its SQLite connection's thread."""
    caplog.set_level(logging.INFO, logger="bot.conversations.service")
    app = await start_bot(shutdown_grace=30)
    thread = app.store.db._thread
    llm.script(Reply("word " * 3000, chunk_size=5, delay=0.02))
    question = tg.send_user_message(USER, "a long answer please")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, question["message_id"])))
    _, task = start_bot.running.pop(id(app))
    await app.dispatcher.stop_polling()
    await tg.wait_for(lambda: "waiting up to 30 s" in caplog.text)
    return app, task, thread


async def test_a_shutdown_cut_short_still_closes_everything(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner, caplog: pytest.LogCaptureFixture
) -> None:
    # Before, storage stayed open: its thread (not a daemon) kept the process from exiting.
    app, task, thread = await stop_mid_drain(tg, llm, start_bot, caplog)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert app.store._db is None
    thread.join(5)
    assert not thread.is_alive()
    assert app.bot.session._session is None or app.bot.session._session.closed
    await tg.wait_for(lambda: llm.received[-1].client_closed, timeout=5)
    # The answer was interrupted as at the end of SHUTDOWN_GRACE: told so, and remembered.
    assert "stopped before this answer was finished" in tg.bot_messages(USER)[-1].text
    assert _turns(start_bot.data_dir) == [("interrupted", True)]


async def test_an_answer_that_cannot_end_as_a_shutdown_is_cut_short_is_left_as_by_a_crash(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner, caplog: pytest.LogCaptureFixture
) -> None:
    """Its interrupted state cannot be shown within seconds (a 429 for 7 s): the answer is
    cancelled, nothing of the bot runs on after the shutdown, and the next start tells the
    asker, as after a crash."""
    app, task, thread = await stop_mid_drain(tg, llm, start_bot, caplog)
    tg.inject_429(chat_id=USER, methods=("editMessageText", "sendMessage"), retry_after=7, times=1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert "abandoning 1 answer(s)" in caplog.text
    assert not app.conversations._inflight and not app.conversations.retrying._tasks
    assert app.store._db is None
    assert app.bot.session._session is None or app.bot.session._session.closed
    thread.join(5)
    assert not thread.is_alive()
    [(status, stored)] = _turns(start_bot.data_dir)
    assert status == "streaming" and stored  # unfinished, with the text its message showed

    await asyncio.sleep(7)  # the 429's wait
    await start_bot()
    await tg.wait_for(
        lambda: "stopped before this answer was finished" in tg.bot_messages(USER)[-1].text,
        timeout=20,
    )


async def test_a_message_held_for_its_forwards_does_not_prolong_the_shutdown(
    tg: FakeTelegram, llm: FakeLLM, start_bot: BotRunner
) -> None:
    """A forward waits for the rest of its messages, and then in line behind the answer
    streaming in its chat: the shutdown waits SHUTDOWN_GRACE for both, not for that answer to
    end. Before, it waited until the answer ended or 30 s passed."""
    app = await start_bot(shutdown_grace=1)
    llm.script(Reply("word " * 3000, chunk_size=5, delay=0.02))  # 60 s of answer
    question = tg.send_user_message(USER, "a long answer please")["message"]
    await tg.wait_for(lambda: bool(answer_messages(tg, USER, question["message_id"])))
    forward = tg.send_user_message(USER, "forwarded", forward_origin=origin("user", "Bob"))
    await tg.wait_for(lambda: bool(app.rejoiner._held))
    _, task = start_bot.running.pop(id(app))
    await app.dispatcher.stop_polling()
    await asyncio.wait_for(task, 15)
    assert "stopped before this answer was finished" in tg.bot_messages(USER)[-2].text
    told = tg.bot_messages(USER)[-1]  # the forward: not answered, and told so
    assert told.reply_to_message_id == forward["message"]["message_id"]


def _turns(data_dir: Path) -> list[tuple[str, bool]]:
    """Each turn's status, and whether it holds an answer."""
    with contextlib.closing(sqlite3.connect(data_dir / "bot.sqlite3")) as db:
        rows = db.execute("SELECT status, length(answer) > 0 FROM turns ORDER BY id").fetchall()
    return [(status, bool(stored)) for status, stored in rows]


async def test_a_step_of_shutdown_that_fails_does_not_keep_storage_open(
    tg: FakeTelegram,
    llm: FakeLLM,
    start_bot: BotRunner,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.conversations.service")
    app = await start_bot()
    thread = app.store.db._thread

    async def broken(*args: object) -> None:
        raise RuntimeError("drain broke")

    monkeypatch.setattr(app.conversations, "drain", broken)
    _, task = start_bot.running.pop(id(app))
    await app.dispatcher.stop_polling()
    with pytest.raises(RuntimeError, match="drain broke"):
        await task
    assert app.store._db is None
    thread.join(5)
    assert not thread.is_alive()
