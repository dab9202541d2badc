"""The shared store for scale-out: the same `Store`, in Redis, so any replica continues any chat.

Layout (under the cluster's prefix): `turn:seq` numbers turns; `turn:<id>` is a hash of the turn
and `turn:<id>:msgs` the set of its answer's message ids; `msgs:<chat>` maps a chat's message ids
to turns; `asked:<chat>:<message>` holds the turns a question asked (the first, each /retry's);
`heads` maps `<chat>:<thread>` to a private chat's newest turn, and `new_from` to the message
that sent `/new` there; `latest:<chat>:<thread>` (and
`:<user>`) the newest turn there; `prefs:<chat>` a chat's choices; `streaming` the turns being
answered, each with the replica that answers it (`owner`); `waiting` the questions waiting behind
another answer (`waiting:<id>`, numbered by `waiting:seq`, with their `owner` too). Steps that
must not interleave are Lua scripts, atomic in Redis. One Redis (or a Sentinel-managed one);
Redis Cluster's sharding is not supported, since scripts build key names.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

from bot.conversations.models import ChatPrefs, PrefName, Turn, TurnStatus, Waiting
from bot.conversations.store import LEFT_FOR, continued_head

if TYPE_CHECKING:
    from bot.cluster.node import Cluster

_ADD_TURN = """
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', ARGV[1] .. id, 'chat_id', ARGV[2], 'thread_id', ARGV[3], 'user_id', ARGV[4],
    'parent_id', ARGV[5], 'question', ARGV[6], 'question_message_id', ARGV[7], 'model', ARGV[8],
    'created_at', ARGV[9], 'lang', ARGV[10], 'owner', ARGV[11], 'status', 'streaming',
    'answer', '')
redis.call('HSET', KEYS[2], ARGV[7], id)
redis.call('SET', KEYS[3], id)
redis.call('SET', KEYS[4], id)
redis.call('SADD', KEYS[5], id)
redis.call('SADD', KEYS[6], id)
return id
"""

# The text shown so far, while the turn is still being answered.
_SAVE_PROGRESS = """
if redis.call('HGET', KEYS[1], 'status') == 'streaming' then
    redis.call('HSET', KEYS[1], 'answer', ARGV[1])
end
return 1
"""

# Every turn a message asked (the first and each /retry's) takes its edited question.
_SET_QUESTION = """
local ids = redis.call('SMEMBERS', KEYS[1])
local newest = redis.call('HGET', KEYS[2], ARGV[2])
if newest then table.insert(ids, newest) end  -- a turn stored before this index existed
for _, id in ipairs(ids) do
    if redis.call('HGET', ARGV[1] .. id, 'question_message_id') == ARGV[2] then
        redis.call('HSET', ARGV[1] .. id, 'question', ARGV[3])
    end
end
"""

# The turn and its ancestors, newest first: one round trip however long the chain.
_CHAIN = """
local out = {}
local id = ARGV[2]
local limit = tonumber(ARGV[3])
while id and id ~= '' and #out < limit do
    local fields = redis.call('HGETALL', ARGV[1] .. id)
    if #fields == 0 then break end
    local parent = ''
    for i = 1, #fields, 2 do
        if fields[i] == 'parent_id' then parent = fields[i + 1] end
    end
    table.insert(fields, 'id')
    table.insert(fields, id)
    table.insert(out, fields)
    id = parent
end
return out
"""

# Take over a turn whose replica died: only one replica gets it (and sends the notice).
_CLAIM = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1]
        and redis.call('HGET', KEYS[1], 'status') == 'streaming' then
    redis.call('HSET', KEYS[1], 'owner', ARGV[2])
    return 1
end
return 0
"""

# Take a waiting question whose replica died: only one replica gets it (and tells the asker).
_TAKE_WAITING = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {} end
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return fields
"""


def _opt(value: object | None) -> str:
    return "" if value is None else str(value)


def _opt_int(value: str | None) -> int | None:
    return int(value) if value else None


def _turn(fields: dict[str, str]) -> Turn:
    return Turn(
        id=int(fields["id"]),
        chat_id=int(fields["chat_id"]),
        thread_id=_opt_int(fields.get("thread_id")),
        user_id=int(fields["user_id"]),
        parent_id=_opt_int(fields.get("parent_id")),
        question=fields.get("question", ""),
        question_message_id=int(fields["question_message_id"]),
        answer=fields.get("answer", ""),
        status=TurnStatus(fields.get("status", TurnStatus.STREAMING.value)),
        model=fields.get("model") or None,
        created_at=float(fields.get("created_at") or 0.0),
        lang=fields.get("lang") or None,
    )


class RedisStore:
    """`Store` in the cluster's Redis."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.redis = cluster.redis
        self._add = self.redis.register_script(_ADD_TURN)
        self._chain = self.redis.register_script(_CHAIN)
        self._claim = self.redis.register_script(_CLAIM)
        self._take_waiting = self.redis.register_script(_TAKE_WAITING)
        self._set_question = self.redis.register_script(_SET_QUESTION)
        self._save_progress = self.redis.register_script(_SAVE_PROGRESS)

    def _k(self, *parts: object) -> str:
        return self.cluster.key(*parts)

    async def _fields(self, key: str) -> dict[str, str]:
        return cast(dict[str, str], await self.redis.hgetall(key))

    async def open(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        """The connection belongs to the cluster, which closes it last."""

    async def ping(self) -> bool:
        return await self.cluster.ping()

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
        keys = [
            self._k("turn", "seq"),
            self._k("msgs", chat_id),
            self._k("latest", chat_id, _opt(thread_id)),
            self._k("latest", chat_id, _opt(thread_id), user_id),
            self._k("streaming"),
            self._k("asked", chat_id, question_message_id),
        ]
        args: list[Any] = [
            self._k("turn", ""),
            chat_id,
            _opt(thread_id),
            user_id,
            _opt(parent_id),
            question,
            question_message_id,
            _opt(model),
            repr(now),
            _opt(lang),
            self.cluster.replica_id,
        ]
        turn_id = int(await self._add(keys=keys, args=args))
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
        chat = await self.redis.hget(self._k("turn", turn_id), "chat_id")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._k("turn", turn_id),
                mapping={
                    "answer": answer,
                    "status": status.value,
                    "finished_at": repr(time.time()),
                },
            )
            pipe.srem(self._k("streaming"), turn_id)
            if message_ids and chat is not None:
                pipe.hset(self._k("msgs", chat), mapping={m: turn_id for m in message_ids})
                pipe.sadd(self._k("turn", turn_id, "msgs"), *message_ids)
            await pipe.execute()

    async def save_progress(self, turn_id: int, answer: str) -> None:
        await self._save_progress(keys=[self._k("turn", turn_id)], args=[answer])

    async def set_question(self, chat_id: int, message_id: int, question: str) -> None:
        keys = [self._k("asked", chat_id, message_id), self._k("msgs", chat_id)]
        await self._set_question(keys=keys, args=[self._k("turn", ""), message_id, question])

    async def link_message(self, chat_id: int, message_id: int, turn_id: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._k("msgs", chat_id), str(message_id), turn_id)
            pipe.sadd(self._k("turn", turn_id, "msgs"), message_id)
            await pipe.execute()

    async def turn_by_message(self, chat_id: int, message_id: int) -> Turn | None:
        turn_id = await self.redis.hget(self._k("msgs", chat_id), str(message_id))
        return await self.get_turn(int(turn_id)) if turn_id else None

    async def get_turn(self, turn_id: int) -> Turn | None:
        fields = await self._fields(self._k("turn", turn_id))
        return _turn({**fields, "id": str(turn_id)}) if fields else None

    async def chain(self, turn_id: int, max_turns: int = 500) -> list[Turn]:
        rows = await self._chain(args=[self._k("turn", ""), turn_id, max_turns])
        turns = [_turn(dict(zip(row[::2], row[1::2], strict=True))) for row in rows]
        turns.reverse()
        return turns

    async def latest_turn(
        self, chat_id: int, thread_id: int | None, user_id: int | None = None
    ) -> Turn | None:
        parts: list[object] = ["latest", chat_id, _opt(thread_id)]
        if user_id is not None:
            parts.append(user_id)
        turn_id = await self.redis.get(self._k(*parts))
        return await self.get_turn(int(turn_id)) if turn_id else None

    async def get_head(self, chat_id: int, thread_id: int | None) -> int | None:
        turn_id = await self.redis.hget(self._k("heads"), f"{chat_id}:{thread_id or 0}")
        return int(turn_id) if turn_id else None

    async def set_head(self, chat_id: int, thread_id: int | None, turn_id: int | None) -> None:
        field = f"{chat_id}:{thread_id or 0}"
        if turn_id is None:
            await self.redis.hdel(self._k("heads"), field)
        else:
            await self.redis.hset(self._k("heads"), field, turn_id)

    async def start_afresh(self, chat_id: int, thread_id: int | None, message_id: int) -> None:
        await self.redis.hset(self._k("new_from"), f"{chat_id}:{thread_id or 0}", message_id)

    async def head_for(self, chat_id: int, thread_id: int | None, message_id: int) -> int | None:
        field = f"{chat_id}:{thread_id or 0}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self._k("heads"), field)
            pipe.hget(self._k("new_from"), field)
            head, new_from = await pipe.execute()
        if not head:
            return None
        if new_from is None:
            return int(head)
        asked = await self.redis.hget(self._k("turn", int(head)), "question_message_id")
        return continued_head(int(head), int(new_from), int(asked) if asked else None, message_id)

    async def prefs(self, chat_id: int) -> ChatPrefs:
        fields = await self._fields(self._k("prefs", chat_id))
        return ChatPrefs(
            chat_id,
            fields.get("model"),
            fields.get("system_prompt"),
            fields.get("denied_notice_sent") == "1",
        )

    async def set_pref(self, chat_id: int, name: PrefName, value: str | None) -> None:
        if name not in ("model", "system_prompt"):
            raise ValueError(name)
        if value is None:
            await self.redis.hdel(self._k("prefs", chat_id), name)
        else:
            await self.redis.hset(self._k("prefs", chat_id), name, value)

    async def claim_denied_notice(self, chat_id: int) -> bool:
        return bool(await self.redis.hsetnx(self._k("prefs", chat_id), "denied_notice_sent", "1"))

    async def add_waiting(
        self,
        *,
        chat_id: int,
        thread_id: int | None,
        message_id: int,
        notice_id: int,
        lang: str | None,
    ) -> int:
        waiting_id = int(await self.redis.incr(self._k("waiting", "seq")))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._k("waiting", waiting_id),
                mapping={
                    "chat_id": chat_id,
                    "thread_id": _opt(thread_id),
                    "message_id": message_id,
                    "notice_id": notice_id,
                    "lang": _opt(lang),
                    "owner": self.cluster.replica_id,
                },
            )
            pipe.sadd(self._k("waiting"), waiting_id)
            await pipe.execute()
        return waiting_id

    async def remove_waiting(self, waiting_id: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._k("waiting", waiting_id))
            pipe.srem(self._k("waiting"), waiting_id)
            await pipe.execute()

    async def leave(self, chat_id: int, item: str) -> None:
        key = self._k("left", chat_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, item)
            pipe.expire(key, LEFT_FOR)
            await pipe.execute()

    async def take_left(self, chat_id: int) -> list[str]:
        key = self._k("left", chat_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
            items, _ = await pipe.execute()
        return [str(item) for item in items]

    async def orphaned_waiting(self) -> list[Waiting]:
        """Those left by replicas that are gone, each taken by one replica."""
        found: list[Waiting] = []
        members = cast(set[str], await self.redis.smembers(self._k("waiting")))
        for member in members:
            key = self._k("waiting", member)
            owner = cast(str | None, await self.redis.hget(key, "owner"))
            if owner is None:
                await self.redis.srem(self._k("waiting"), member)
                continue
            if await self.cluster.alive(owner):
                continue
            raw = await self._take_waiting(keys=[key, self._k("waiting")], args=[owner, member])
            if not raw:
                continue  # another replica took it
            fields = dict(zip(raw[::2], raw[1::2], strict=True))
            found.append(
                Waiting(
                    id=int(member),
                    chat_id=int(fields["chat_id"]),
                    thread_id=_opt_int(fields.get("thread_id")),
                    message_id=int(fields["message_id"]),
                    notice_id=int(fields["notice_id"]),
                    lang=fields.get("lang") or None,
                )
            )
        return sorted(found, key=lambda w: w.id)

    async def unfinished(self) -> list[Turn]:
        """Turns left streaming by replicas that are gone, each claimed by this replica."""
        found: list[Turn] = []
        members = cast(set[str], await self.redis.smembers(self._k("streaming")))
        for member in members:
            key = self._k("turn", member)
            fields = await self._fields(key)
            if not fields:
                await self.redis.srem(self._k("streaming"), member)
                continue
            owner = fields.get("owner", "")
            if fields.get("status") != TurnStatus.STREAMING.value or await self.cluster.alive(
                owner
            ):
                continue
            if not await self._claim(keys=[key], args=[owner, self.cluster.replica_id]):
                continue  # another replica took it
            turn = _turn({**fields, "id": member})
            ids = await self.redis.smembers(self._k("turn", member, "msgs"))
            turn.message_ids = sorted(int(m) for m in ids if int(m) != turn.question_message_id)
            found.append(turn)
        return found
