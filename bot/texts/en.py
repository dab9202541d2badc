"""English texts."""

EN: dict[str, str] = {
    "start": (
        "Hi, {name}! I answer with a language model through g4f and show the answer as it is "
        "written.\n\nJust send me a question. /help tells more."
    ),
    "help": (
        "Send me a question and I answer it, streaming the text as it is written. "
        "Press ⏹ Stop under an answer to end it early.\n\n"
        "In groups I answer only when addressed: mention me (@{username}), reply to one of my "
        "messages, or use /ask <question>. With privacy mode on (Telegram's default for bots) "
        "I do not even see other messages in a group.\n\n"
        "Commands:\n/ask <question> — ask (handy in groups)\n/help — this text"
    ),
    "not_text": "I can only read text messages. Send me your question as text.",
    "empty_question": "What is the question? Write it after the command or the mention.",
    "unknown_command": "I don't know that command.",
    "stop_button": "⏹ Stop",
    "stop_not_yours": "Only the person who asked (or a chat admin) can stop this answer.",
    "stop_done": "Stopped.",
    "stop_gone": "This answer has already finished.",
    "notice_stopped": "⏹ Stopped.",
    "notice_connection": "⚠️ The connection to the model was lost, so the answer is incomplete. "
    "Please try again.",
    "notice_http": "⚠️ The model service returned an error. Please try again in a moment.",
    "notice_rate_limit": "⚠️ The model service is limiting requests right now. "
    "Please try again in a minute.",
    "notice_idle_timeout": "⚠️ The model stopped responding, so the answer is incomplete. "
    "Please try again.",
    "notice_total_timeout": "⚠️ The answer took too long and was cut off. "
    "Please try again or ask for a shorter answer.",
    "notice_empty": "⚠️ The model returned an empty answer. Please try again.",
    "notice_unavailable": "⚠️ No model is available right now. Please try again later.",
    "notice_internal": "⚠️ Something went wrong on my side. Please try again.",
}
