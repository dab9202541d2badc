"""The embedded store: SQLite in DATA_DIR through aiosqlite (its own thread; the loop never blocks).

Each operation is one function run on that thread (`_run`): its statements, fetches and commit
go over in one hand-off instead of one per call (an execute, a fetch, a cursor close and a commit
would each wake the thread and then the event loop), and no other operation can interleave with
it, so none can re-bind a cached statement another one is still reading.

The schema is versioned with `PRAGMA user_version`; `MIGRATIONS[i]` takes version i to i + 1 and
runs once, in a transaction, at start-up.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from bot.conversations.models import ChatPrefs, PrefName, Turn, TurnStatus, Waiting
from bot.conversations.store import LEFT_FOR, continued_head

MIN_FREE_BYTES = 1024 * 1024  # below this, /healthz reports the storage as unavailable

MIGRATIONS: list[str] = [
    # 0 → 1: turns, the message index, branch heads, chat preferences
    """
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        chat_id INTEGER NOT NULL,
        thread_id INTEGER,
        user_id INTEGER NOT NULL,
        parent_id INTEGER REFERENCES turns(id),
        question TEXT NOT NULL,
        question_message_id INTEGER NOT NULL,
        answer TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'streaming',
        model TEXT,
        created_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE INDEX turns_status ON turns(status);
    CREATE TABLE messages (
        chat_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        turn_id INTEGER NOT NULL REFERENCES turns(id),
        PRIMARY KEY (chat_id, message_id)
    );
    CREATE TABLE heads (
        chat_id INTEGER NOT NULL,
        thread_id INTEGER NOT NULL,
        turn_id INTEGER REFERENCES turns(id),
        PRIMARY KEY (chat_id, thread_id)
    );
    CREATE TABLE chat_prefs (
        chat_id INTEGER PRIMARY KEY,
        model TEXT,
        system_prompt TEXT,
        denied_notice_sent INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 1 → 2: the asker's language, for notices sent later (after a restart)
    """
    ALTER TABLE turns ADD COLUMN lang TEXT;
    """,
    # 2 → 3: questions waiting behind another answer (a crash must not leave their notice)
    """
    CREATE TABLE waiting (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        chat_id INTEGER NOT NULL,
        thread_id INTEGER,
        message_id INTEGER NOT NULL,
        notice_id INTEGER NOT NULL,
        lang TEXT,
        created_at REAL NOT NULL
    );
    """,
    # 3 → 4: what chats that shut the bot out are to show once they let it back in
    """
    CREATE TABLE leftovers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        chat_id INTEGER NOT NULL,
        item TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX leftovers_by_chat ON leftovers (chat_id);
    """,
    # 4 → 5: where `/new` was sent, beside the head it leaves in place
    """
    ALTER TABLE heads ADD COLUMN new_from INTEGER;
    """,
]

_TURN_COLUMNS = (
    "id, chat_id, thread_id, user_id, parent_id, question, question_message_id, answer, status, "
    "model, created_at, lang"
)


R = TypeVar("R")


def _turn(row: Any) -> Turn:
    return Turn(
        id=row[0],
        chat_id=row[1],
        thread_id=row[2],
        user_id=row[3],
        parent_id=row[4],
        question=row[5],
        question_message_id=row[6],
        answer=row[7],
        status=TurnStatus(row[8]),
        model=row[9],
        created_at=row[10],
        lang=row[11],
    )


def _one(conn: sqlite3.Connection, query: str, args: tuple[Any, ...]) -> Any:
    cursor = conn.execute(query, args)
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


def _write(conn: sqlite3.Connection, query: str, args: tuple[Any, ...]) -> None:
    conn.execute(query, args).close()


def _all(conn: sqlite3.Connection, query: str, args: tuple[Any, ...]) -> list[Any]:
    cursor = conn.execute(query, args)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


class StoreTooNew(RuntimeError):
    """The database was written by a newer version of the bot."""


class SQLiteStore:
    """`Store` on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SQLiteStore.open() was not called")
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        try:
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA foreign_keys=ON")
            await self.migrate()
        except BaseException:
            # Not a database, or a newer one: its thread would keep the process from exiting.
            await self.close()
            raise

    async def migrate(self) -> int:
        """Bring the schema to the newest version; returns it."""
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise StoreTooNew(
                f"{self.path} has schema version {version}, newer than this bot knows "
                f"({len(MIGRATIONS)}); upgrade the bot"
            )
        for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await self.db.executescript(
                f"BEGIN;\n{script}\nPRAGMA user_version = {target};\nCOMMIT;"
            )
        return len(MIGRATIONS)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _run(self, operation: Callable[[sqlite3.Connection], R], write: bool = False) -> R:
        """Run `operation` on the connection's thread, in one hand-off; with `write`, commit
        after it (or roll back if it raised)."""
        db = self.db

        def run() -> R:
            conn = db._conn
            if not write:
                return operation(conn)
            try:
                result = operation(conn)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
            return result

        # `_execute` is how each of aiosqlite's own calls queues its function for the thread
        # (0.20 to 0.22); the store's tests fail if that changes.
        return cast(R, await db._execute(run))  # type: ignore[no-untyped-call]

    async def ping(self) -> bool:
        """The database answers, and its disk has room for the next answers (a read alone
        succeeds on a full disk, where every answer then fails to be stored)."""
        try:
            await self._run(lambda conn: _one(conn, "SELECT 1", ()))
            return shutil.disk_usage(self.path.parent).free >= MIN_FREE_BYTES
        except Exception:
            return False

    async def add_turn(
        self,
        *,
        chat_id: int,
        thread_id: int | None,
        user_id: int,
        parent_id: int | None,
        question: str,
        question_message_id: int,
        model: str | None,
        lang: str | None = None,
    ) -> Turn:
        now = time.time()

        def insert(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO turns (chat_id, thread_id, user_id, parent_id, question, "
                "question_message_id, model, created_at, lang) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    chat_id,
                    thread_id,
                    user_id,
                    parent_id,
                    question,
                    question_message_id,
                    model,
                    now,
                    lang,
                ),
            )
            turn_id = int(cursor.lastrowid or 0)
            conn.execute(
                "INSERT OR REPLACE INTO messages (chat_id, message_id, turn_id) VALUES (?, ?, ?)",
                (chat_id, question_message_id, turn_id),
            )
            return turn_id

        turn_id = await self._run(insert, write=True)
        return Turn(
            id=turn_id,
            chat_id=chat_id,
            thread_id=thread_id,
            user_id=user_id,
            parent_id=parent_id,
            question=question,
            question_message_id=question_message_id,
            model=model,
            created_at=now,
            lang=lang,
        )

    async def finish_turn(
        self, turn_id: int, *, answer: str, status: TurnStatus, message_ids: list[int]
    ) -> None:
        def update(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE turns SET answer = ?, status = ?, finished_at = ? WHERE id = ?",
                (answer, status.value, time.time(), turn_id),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO messages (chat_id, message_id, turn_id) "
                "SELECT chat_id, ?, id FROM turns WHERE id = ?",
                [(m, turn_id) for m in message_ids],
            )

        await self._run(update, write=True)

    async def save_progress(self, turn_id: int, answer: str) -> None:
        await self._run(
            lambda conn: _write(
                conn,
                "UPDATE turns SET answer = ? WHERE id = ? AND status = ?",
                (answer, turn_id, TurnStatus.STREAMING.value),
            ),
            write=True,
        )

    async def set_question(self, chat_id: int, message_id: int, question: str) -> None:
        await self._run(
            lambda conn: _write(
                conn,
                "UPDATE turns SET question = ? WHERE chat_id = ? AND question_message_id = ?",
                (question, chat_id, message_id),
            ),
            write=True,
        )

    async def link_message(self, chat_id: int, message_id: int, turn_id: int) -> None:
        await self._run(
            lambda conn: _write(
                conn,
                "INSERT OR REPLACE INTO messages (chat_id, message_id, turn_id) VALUES (?, ?, ?)",
                (chat_id, message_id, turn_id),
            ),
            write=True,
        )

    async def turn_by_message(self, chat_id: int, message_id: int) -> Turn | None:
        row = await self._run(
            lambda conn: _one(
                conn,
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE id = "
                "(SELECT turn_id FROM messages WHERE chat_id = ? AND message_id = ?)",
                (chat_id, message_id),
            )
        )
        return _turn(row) if row else None

    async def get_turn(self, turn_id: int) -> Turn | None:
        row = await self._run(
            lambda conn: _one(conn, f"SELECT {_TURN_COLUMNS} FROM turns WHERE id = ?", (turn_id,))
        )
        return _turn(row) if row else None

    async def chain(self, turn_id: int, max_turns: int = 500) -> list[Turn]:
        query = f"""
            WITH RECURSIVE up(id, depth) AS (
                SELECT id, 0 FROM turns WHERE id = ?
                UNION ALL
                SELECT turns.parent_id, up.depth + 1 FROM turns JOIN up ON turns.id = up.id
                WHERE turns.parent_id IS NOT NULL AND up.depth < ?
            )
            SELECT {", ".join("turns." + c.strip() for c in _TURN_COLUMNS.split(","))}
            FROM up JOIN turns ON turns.id = up.id ORDER BY up.depth DESC
        """
        rows = await self._run(lambda conn: _all(conn, query, (turn_id, max_turns - 1)))
        return [_turn(r) for r in rows]

    async def latest_turn(
        self, chat_id: int, thread_id: int | None, user_id: int | None = None
    ) -> Turn | None:
        query = f"SELECT {_TURN_COLUMNS} FROM turns WHERE chat_id = ? AND thread_id IS ?"
        args: tuple[Any, ...] = (chat_id, thread_id)
        if user_id is not None:
            query += " AND user_id = ?"
            args += (user_id,)
        query += " ORDER BY id DESC LIMIT 1"
        row = await self._run(lambda conn: _one(conn, query, args))
        return _turn(row) if row else None

    async def get_head(self, chat_id: int, thread_id: int | None) -> int | None:
        row = await self._run(
            lambda conn: _one(
                conn,
                "SELECT turn_id FROM heads WHERE chat_id = ? AND thread_id = ?",
                (chat_id, thread_id or 0),
            )
        )
        return int(row[0]) if row and row[0] is not None else None

    async def set_head(self, chat_id: int, thread_id: int | None, turn_id: int | None) -> None:
        await self._run(
            lambda conn: _write(
                conn,
                "INSERT INTO heads (chat_id, thread_id, turn_id) VALUES (?, ?, ?) "
                "ON CONFLICT(chat_id, thread_id) DO UPDATE SET turn_id = excluded.turn_id",
                (chat_id, thread_id or 0, turn_id),
            ),
            write=True,
        )

    async def start_afresh(self, chat_id: int, thread_id: int | None, message_id: int) -> None:
        await self._run(
            lambda conn: _write(
                conn,
                "INSERT INTO heads (chat_id, thread_id, new_from) VALUES (?, ?, ?) "
                "ON CONFLICT(chat_id, thread_id) DO UPDATE SET new_from = excluded.new_from",
                (chat_id, thread_id or 0, message_id),
            ),
            write=True,
        )

    async def head_for(self, chat_id: int, thread_id: int | None, message_id: int) -> int | None:
        row = await self._run(
            lambda conn: _one(
                conn,
                "SELECT h.turn_id, h.new_from, t.question_message_id FROM heads h "
                "LEFT JOIN turns t ON t.id = h.turn_id WHERE h.chat_id = ? AND h.thread_id = ?",
                (chat_id, thread_id or 0),
            )
        )
        if not row or row[0] is None:
            return None
        return continued_head(int(row[0]), row[1], row[2], message_id)

    async def prefs(self, chat_id: int) -> ChatPrefs:
        row = await self._run(
            lambda conn: _one(
                conn,
                "SELECT model, system_prompt, denied_notice_sent FROM chat_prefs WHERE chat_id = ?",
                (chat_id,),
            )
        )
        if row is None:
            return ChatPrefs(chat_id)
        return ChatPrefs(chat_id, row[0], row[1], bool(row[2]))

    async def set_pref(self, chat_id: int, name: PrefName, value: str | None) -> None:
        if name not in ("model", "system_prompt"):
            raise ValueError(name)
        await self._run(
            lambda conn: _write(
                conn,
                f"INSERT INTO chat_prefs (chat_id, {name}) VALUES (?, ?) "
                f"ON CONFLICT(chat_id) DO UPDATE SET {name} = excluded.{name}",
                (chat_id, value),
            ),
            write=True,
        )

    async def claim_denied_notice(self, chat_id: int) -> bool:
        def claim(conn: sqlite3.Connection) -> bool:
            conn.execute("INSERT OR IGNORE INTO chat_prefs (chat_id) VALUES (?)", (chat_id,))
            cursor = conn.execute(
                "UPDATE chat_prefs SET denied_notice_sent = 1 "
                "WHERE chat_id = ? AND denied_notice_sent = 0",
                (chat_id,),
            )
            return cursor.rowcount == 1

        return await self._run(claim, write=True)

    async def add_waiting(
        self,
        *,
        chat_id: int,
        thread_id: int | None,
        message_id: int,
        notice_id: int,
        lang: str | None,
    ) -> int:
        def insert(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO waiting (chat_id, thread_id, message_id, notice_id, lang, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (chat_id, thread_id, message_id, notice_id, lang, time.time()),
            )
            waiting_id = int(cursor.lastrowid or 0)
            cursor.close()
            return waiting_id

        return await self._run(insert, write=True)

    async def remove_waiting(self, waiting_id: int) -> None:
        await self._run(
            lambda conn: _write(conn, "DELETE FROM waiting WHERE id = ?", (waiting_id,)),
            write=True,
        )

    async def leave(self, chat_id: int, item: str) -> None:
        now = time.time()

        def add(conn: sqlite3.Connection) -> None:
            _write(conn, "DELETE FROM leftovers WHERE created_at < ?", (now - LEFT_FOR,))
            _write(
                conn,
                "INSERT INTO leftovers (chat_id, item, created_at) VALUES (?, ?, ?)",
                (chat_id, item, now),
            )

        await self._run(add, write=True)

    async def take_left(self, chat_id: int) -> list[str]:
        since = time.time() - LEFT_FOR

        def take(conn: sqlite3.Connection) -> list[str]:
            rows = _all(
                conn,
                "SELECT item FROM leftovers WHERE chat_id = ? AND created_at >= ? ORDER BY id",
                (chat_id, since),
            )
            _write(conn, "DELETE FROM leftovers WHERE chat_id = ?", (chat_id,))
            return [row[0] for row in rows]

        return await self._run(take, write=True)

    async def orphaned_waiting(self) -> list[Waiting]:
        """Every record: one process uses the database, and it calls this at start-up."""

        def take(conn: sqlite3.Connection) -> list[Waiting]:
            rows = _all(
                conn,
                "SELECT id, chat_id, thread_id, message_id, notice_id, lang FROM waiting "
                "ORDER BY id",
                (),
            )
            _write(conn, "DELETE FROM waiting", ())
            return [Waiting(*row) for row in rows]

        return await self._run(take, write=True)

    async def unfinished(self) -> list[Turn]:
        def read(conn: sqlite3.Connection) -> list[Turn]:
            rows = _all(
                conn,
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE status = ?",
                (TurnStatus.STREAMING.value,),
            )
            turns = [_turn(r) for r in rows]
            for turn in turns:
                ids = _all(
                    conn,
                    "SELECT message_id FROM messages WHERE turn_id = ? AND message_id != ? "
                    "ORDER BY message_id",
                    (turn.id, turn.question_message_id),
                )
                turn.message_ids = [int(r[0]) for r in ids]
            return turns

        return await self._run(read)
