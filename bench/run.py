"""The benchmark: the real bot against the fake Telegram (with its flood limits) and backend.

For each load (1, 10, 25, 50, 200 chats asking at the same moment; one in ten is a group) it
measures what a user feels and what the bot costs:

- first visible: from the question to the first text the user can see;
- staleness: for every piece of text the backend generated, how long until the user could see it
  (p50/p95; private chats and groups apart);
- updates per answer (edits and drafts), 429s, CPU ms per answer (this process only: the fakes run
  in their own; "g4f" is what streaming the same answers through g4f alone costs), peak RSS,
  event-loop lag p99.

Every answer is Markdown as a model writes it (bold, a list, inline code, a code block, a link;
`--answers plain` for plain prose), about 1,000 characters (`--length`) at 250 characters a
second.

Each load runs twice, on chats not used before: once with nothing else in the process (all but
the lag), once with the lag monitor (its 20 wake-ups a second would otherwise be billed to the
bot's CPU). The bot long-polls as `python -m bot` does.

Run it with `make bench`; it prints a table, writes `bench/results.json` and `bench/chart.png`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.streaming.render import render
from bot.streaming.split import Segmenter

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
CHART = ROOT / "bench" / "chart.png"
CURSOR = "▌"


@dataclass
class Level:
    chats: int
    private: int
    groups: int
    seconds: float
    first_visible_p50: float
    first_visible_p95: float
    private_stale_p50: float
    private_stale_p95: float
    group_stale_p50: float
    group_stale_p95: float
    updates_per_answer: float
    count_429: int
    violations: int
    cpu_ms_per_answer: float
    g4f_cpu_ms_per_answer: float
    peak_rss_mb: float
    loop_lag_p99_ms: float
    complete: int


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def visible(text: str) -> int:
    return sum(1 for ch in text if not ch.isspace() and ch != CURSOR)


def shown_sizes(full: str, lengths: list[int]) -> list[int]:
    """Visible characters the bot shows mid-stream for each prefix of `full` (`lengths` grow),
    rendered by the reply engine's own segmenter: a chunk is seen once the chat shows at least
    this much of the text up to its end."""
    segmenter = Segmenter(limit=10**9)  # one part: what matters is the text, not the split
    return [
        visible("".join(p.text for p in segmenter.parts(full[:n], streaming=True))) for n in lengths
    ]


def analyse(report: dict[str, Any], private: list[int], groups: list[int]) -> dict[str, Any]:
    """Turn the fakes' logs into per-chat timelines and the numbers above."""
    by_chat: dict[int, list[dict[str, Any]]] = {}
    for call in report["calls"]:
        if call["status"] == 200 and call["chat_id"] is not None:
            by_chat.setdefault(int(call["chat_id"]), []).append(call)
    first_visible: list[float] = []
    stale: dict[str, list[float]] = {"private": [], "group": []}
    updates: list[int] = []
    complete = 0
    streams = {s["chat_id"]: s for s in report["streams"]}
    for chat in private + groups:
        asked = report["asked"][str(chat)]
        calls = sorted(by_chat.get(chat, []), key=lambda c: c["at"])
        messages: dict[int, str] = {}
        draft = ""
        timeline: list[tuple[float, int]] = []
        for call in calls:
            text = call["text"] or ""
            if call["method"] == "sendMessage":
                messages[call["result_id"]] = text
                draft = ""
            elif call["method"] == "editMessageText":
                messages[int(call["message_id"])] = text
            else:
                draft = text
            shown = sum(visible(t) for t in messages.values()) + visible(draft)
            timeline.append((call["at"], shown))
        first = next((at for at, n in timeline if n > 0), None)
        if first is not None:
            first_visible.append(first - asked)
        updates.append(sum(1 for c in calls if c["method"] != "sendMessage"))
        stream = streams.get(chat)
        if stream is None:
            continue
        full = stream["text"]
        if timeline and timeline[-1][1] >= visible(render(full).text):  # the final state
            complete += 1
        kind = "private" if chat > 0 else "group"
        needs = shown_sizes(full, [length for _, length in stream["chunks"]])
        for (at, _), need in zip(stream["chunks"], needs, strict=True):
            seen = next((t for t, n in timeline if t >= at and n >= need), None)
            if seen is not None:
                stale[kind].append(seen - at)
    return {
        "first_visible": first_visible,
        "stale": stale,
        "updates": updates,
        "complete": complete,
    }


async def g4f_cost(app: Any, chats: list[int]) -> float:
    """CPU ms per answer spent by g4f alone: the same answers streamed with no Telegram side."""

    async def one(chat: int) -> None:
        messages = [{"role": "user", "content": f"question for chat {chat}"}]
        async for _ in app.llm.stream(messages):
            pass

    before = time.process_time()
    await asyncio.gather(*(one(c) for c in chats))
    return (time.process_time() - before) * 1000 / len(chats)


class LagMonitor:
    """Samples event-loop lag: how late a 50 ms sleep wakes up."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(0.05)
            self.samples.append(max(0.0, loop.time() - start - 0.05))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        if self._task:
            self._task.cancel()


_chat_ids = itertools.count()


def new_chats(n: int) -> tuple[list[int], list[int]]:
    """`n` chats never used before (private ones, then groups: one in ten), so that no budget
    is still spent from an earlier load (a group's is counted over a minute)."""
    groups = [-1_000_000 - next(_chat_ids) for _ in range(n // 10)]
    private = [10_000 + next(_chat_ids) for _ in range(n - len(groups))]
    return private, groups


class Finished:
    """Wakes the benchmark when the bot has delivered a number of answers, without polling
    (a poll every 50 ms would be counted in the bot's CPU)."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._target = 0
        self._event = asyncio.Event()
        record = app.metrics.record_answer

        def recorded(*args: Any, **kwargs: Any) -> None:
            record(*args, **kwargs)
            if app.answerer.finished >= self._target:
                self._event.set()

        app.metrics.record_answer = recorded

    async def wait(self, count: int) -> None:
        self._target = self._app.answerer.finished + count
        self._event.clear()
        await self._event.wait()


async def load(
    finished: Finished,
    http: aiohttp.ClientSession,
    control: str,
    chats: list[int],
    profile: int = 0,
) -> tuple[float, float]:
    """Every chat asks at once; returns the seconds and the CPU seconds until all are answered.
    With BENCH_PROFILE set and `profile` given, writes a cProfile of the window."""
    await http.post(f"{control}/control/reset")
    profiler = cProfile.Profile() if profile and os.environ.get("BENCH_PROFILE") else None
    if profiler:
        profiler.enable()
    cpu_before = time.process_time()
    started = time.monotonic()
    await http.post(f"{control}/control/ask", json={"chats": chats})
    try:
        async with asyncio.timeout(900):
            await finished.wait(len(chats))
    except TimeoutError:
        raise SystemExit(f"{len(chats)} chats: answers did not finish in 15 min") from None
    seconds = time.monotonic() - started
    cpu = time.process_time() - cpu_before
    if profiler:
        profiler.disable()
        profiler.dump_stats(f"{os.environ['BENCH_PROFILE']}.{profile}")
    return seconds, cpu


def start_fakes(
    answers: str = "markdown", chars_per_second: float = 250.0, length: int = 1000
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The fakes in a process of their own; it ends when its stdin closes."""
    fakes = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.fakes_server",
            "--answers",
            answers,
            "--chars-per-second",
            str(chars_per_second),
            "--length",
            str(length),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fakes.stdout is not None
    return fakes, json.loads(fakes.stdout.readline())


async def idle_cost(seconds: float = 3.0) -> float:
    """CPU ms a second the bot process spends with nothing to answer: the fixed cost that a
    load's answers share (at one chat, a large part of its CPU per answer)."""
    await asyncio.sleep(1.0)
    before = time.process_time()
    await asyncio.sleep(seconds)
    return (time.process_time() - before) * 1000 / seconds


async def run(
    levels: list[int], mode: str, urls: dict[str, str], *, idle: list[float] | None = None
) -> list[Level]:
    """Measure each load; with `idle`, also the idle cost first (appended to it)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as data_dir:
        return await _measure(levels, mode, urls, Path(data_dir), idle)


async def _measure(
    levels: list[int],
    mode: str,
    urls: dict[str, str],
    data_dir: Path,
    idle: list[float] | None,
) -> list[Level]:
    from bot.app import build_app, freeze_startup_objects, run_polling
    from config import load_settings

    logging.basicConfig(level=logging.ERROR)
    settings = load_settings(
        bot_token=urls["token"],
        telegram_api_url=urls["telegram"],
        g4f_api_base=urls["llm"],
        data_dir=data_dir,
        stream_mode=mode,
        user_rate_limit="100000/60",
        log_level="ERROR",
    )
    app = build_app(settings)
    freeze_startup_objects()  # as `python -m bot` does
    bot_task = asyncio.create_task(run_polling(app, handle_signals=False))
    results: list[Level] = []
    async with aiohttp.ClientSession() as http:
        control = urls["control"]
        await asyncio.sleep(1.0)
        finished = Finished(app)
        await load(finished, http, control, [1])  # warm-up, not measured
        if idle is not None:
            idle.append(await idle_cost())
            print(f"(idle: {idle[-1]:.1f} ms CPU a second: long polling, timers)")
        for n in levels:
            private, groups = new_chats(n)
            chats = private + groups
            # Pass 1 measures everything but loop lag with nothing else running in the process;
            # pass 2 repeats the load with the lag monitor, which would add its own 20 wake-ups
            # a second to the CPU of pass 1.
            seconds, cpu = await load(finished, http, control, chats, profile=n)
            async with http.get(f"{control}/control/report") as response:
                report = await response.json()
            stats = analyse(report, private, groups)
            await asyncio.sleep(2.0)  # let the per-chat and global windows drain
            lag = LagMonitor()
            lag.start()
            lag_private, lag_groups = new_chats(n)
            await load(finished, http, control, lag_private + lag_groups)
            lag.stop()
            async with http.get(f"{control}/control/report") as response:
                lag_report = await response.json()
            g4f_ms = await g4f_cost(app, chats)
            level = Level(
                chats=n,
                private=len(private),
                groups=len(groups),
                seconds=seconds,
                first_visible_p50=pct(stats["first_visible"], 0.5),
                first_visible_p95=pct(stats["first_visible"], 0.95),
                private_stale_p50=pct(stats["stale"]["private"], 0.5),
                private_stale_p95=pct(stats["stale"]["private"], 0.95),
                group_stale_p50=pct(stats["stale"]["group"], 0.5),
                group_stale_p95=pct(stats["stale"]["group"], 0.95),
                updates_per_answer=statistics.mean(stats["updates"]) if stats["updates"] else 0,
                count_429=report["count_429"] + lag_report["count_429"],
                violations=report["violations"] + lag_report["violations"],
                cpu_ms_per_answer=cpu * 1000 / n,
                g4f_cpu_ms_per_answer=g4f_ms,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                loop_lag_p99_ms=pct(lag.samples, 0.99) * 1000,
                complete=min(
                    stats["complete"], analyse(lag_report, lag_private, lag_groups)["complete"]
                ),
            )
            results.append(level)
            print(row(level), flush=True)
            await asyncio.sleep(2.0)
    await app.dispatcher.stop_polling()
    await bot_task
    return results


HEADER = (
    f"{'chats':>5} {'priv/grp':>8} {'secs':>5} {'first p50/p95':>14} {'private stale':>14} "
    f"{'group stale':>12} {'upd/ans':>7} {'429':>4} {'cpu ms (g4f)':>12} {'rss MB':>6} "
    f"{'lag p99':>7} "
    f"{'complete':>8}"
)


def row(r: Level) -> str:
    return (
        f"{r.chats:>5} {r.private:>4}/{r.groups:<3} {r.seconds:>5.1f} "
        f"{r.first_visible_p50:>6.2f}/{r.first_visible_p95:<6.2f} "
        f"{r.private_stale_p50:>6.2f}/{r.private_stale_p95:<6.2f} "
        f"{r.group_stale_p50:>5.2f}/{r.group_stale_p95:<5.2f} {r.updates_per_answer:>7.1f} "
        f"{r.count_429:>4} {r.cpu_ms_per_answer:>5.1f} ({r.g4f_cpu_ms_per_answer:>4.1f}) "
        f"{r.peak_rss_mb:>6.0f} "
        f"{r.loop_lag_p99_ms:>5.1f}ms {r.complete:>4}/{r.chats:<3}"
    )


def chart(results: list[Level], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r.chats for r in results]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    ax = axes[0][0]
    ax.plot(x, [r.private_stale_p50 for r in results], "o-", label="private p50")
    ax.plot(x, [r.private_stale_p95 for r in results], "o-", label="private p95")
    ax.plot(x, [r.group_stale_p95 for r in results], "s--", label="group p95")
    ax.plot(x, [max(1.0, c * 1.15 / 25) for c in x], ":", color="grey", label="fair share")
    ax.axhline(1.5, ls="-.", color="tab:orange", alpha=0.5, label="private target (≤ 25 chats)")
    ax.axhline(3.5, ls="-.", color="tab:green", alpha=0.5, label="group target")
    ax.set_title("staleness of generated text (s)")
    ax.legend()
    ax = axes[0][1]
    ax.plot(x, [r.first_visible_p50 for r in results], "o-", label="p50")
    ax.plot(x, [r.first_visible_p95 for r in results], "o-", label="p95")
    ax.axhline(0.3, ls=":", color="grey", label="target 0.3 s")
    ax.set_title("time to first visible text (s)")
    ax.legend()
    ax = axes[1][0]
    ax.plot(x, [r.cpu_ms_per_answer for r in results], "o-", label="CPU ms / 1,000-char answer")
    ax.plot(x, [r.g4f_cpu_ms_per_answer for r in results], "o:", label="of which g4f alone")
    ax.plot(x, [r.loop_lag_p99_ms for r in results], "s--", label="loop lag p99 (ms)")
    ax.axhline(15, ls=":", color="grey", label="target 15 ms")
    ax.set_title("cost")
    ax.legend()
    ax = axes[1][1]
    ax.plot(x, [r.peak_rss_mb for r in results], "o-", label="peak RSS (MB)")
    ax.axhline(250, ls=":", color="grey", label="RSS target 250 MB")
    ax.bar(
        x,
        [r.count_429 for r in results],
        width=[c * 0.2 for c in x],
        alpha=0.4,
        label="429s",
        color="red",
    )
    ax.set_title("memory and 429s")
    ax.legend()
    for a in axes.flat:
        a.set_xscale("log")
        a.set_xlabel("simultaneous chats")
        a.set_xticks(x)
        a.set_xticklabels([str(c) for c in x])
        a.grid(alpha=0.3)
    fig.suptitle("g4f-telegram-bot against the fake Telegram (flood limits on)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,10,25,50,200")
    parser.add_argument("--mode", default="auto", choices=("auto", "draft", "edit"))
    parser.add_argument("--answers", default="markdown", choices=("markdown", "plain"))
    parser.add_argument(
        "--length", type=int, default=1000, help="characters per answer (CPU is per answer)"
    )
    parser.add_argument("--no-chart", action="store_true")
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(",")]
    print(
        f"STREAM_MODE={args.mode}; {args.answers} answers of about {args.length:,} characters "
        "at 250 characters a second"
    )
    print(HEADER, flush=True)
    fakes, urls = start_fakes(args.answers, length=args.length)
    try:
        idle: list[float] = []
        results = asyncio.run(run(levels, args.mode, urls, idle=idle))
    finally:
        assert fakes.stdin is not None
        fakes.stdin.close()
        fakes.wait(10)
    report = {
        "mode": args.mode,
        "answers": args.answers,
        "length": args.length,
        "idle_cpu_ms_per_second": round(idle[0], 1) if idle else None,
        "levels": [asdict(r) for r in results],
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    if not args.no_chart:
        chart(results, CHART)
        print(f"wrote {RESULTS.relative_to(ROOT)} and {CHART.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
