"""English texts."""

EN: dict[str, str] = {
    "start": (
        "Hi, {name}! I answer with a language model through g4f and show the answer as it is "
        "written.\n\nJust send me a question. /help tells more."
    ),
    "help": (
        "Send me a question and I answer it, streaming the text as it is written. "
        "To end an answer early, press ⏹ Stop under it (or the stop control shown while it is "
        "written) or send /stop.\n\n"
        "In a private chat I remember the conversation: a new message continues it, a reply to "
        "one of my earlier answers continues from that point, and /new starts afresh.\n\n"
        "In groups I answer only when addressed: mention me (@{username}), reply to one of my "
        "messages, or use /ask <question>. Each such message that is not a reply starts its own "
        "thread; replies continue it. With privacy mode on (Telegram's default for bots) I do "
        "not even see the other messages of a group.\n\n"
        "Commands:\n"
        "/ask <question> — ask (handy in groups)\n"
        "/new — start a new conversation\n"
        "/retry — answer the last question again\n"
        "/stop — stop the answer being written\n"
        "/model — choose the model\n"
        "/system — show or set the system prompt\n"
        "/help — this text"
    ),
    "start_group": (
        "Hi, {name}! I answer with a language model through g4f and show the answer as it is "
        "written.\n\nIn this group, mention me (@{username}), reply to one of my messages or use "
        "/ask <question>. /help tells more."
    ),
    "cmd_start": "Start",
    "cmd_help": "How to use the bot",
    "cmd_ask": "Ask a question",
    "cmd_new": "Start a new conversation",
    "cmd_retry": "Answer the last question again",
    "cmd_stop": "Stop the answer being written",
    "cmd_model": "Choose the model",
    "cmd_system": "Show or set the system prompt",
    "not_text": "I can only read text messages. Send me your question as text.",
    "empty_question": "What is the question? Write it after the command or the mention.",
    "unknown_command": "I don't know that command.",
    "command_for_another_bot": "That command is addressed to @{bot}, another bot.",
    "queued": "⏳ I'll answer this right after the current answer.",
    "rate_limited": "You have reached the limit of questions for now. "
    "Please come back in {minutes} min.",
    "new_done": "🆕 New conversation. What would you like to ask?",
    "new_group": "In groups every message to me that is not a reply starts a new conversation, "
    "so there is nothing to reset.",
    "retry_nothing": "There is no earlier question to answer again.",
    "edited_unanswered": "✏️ I'll remember the question as edited. I have not answered it; "
    "to have it answered, reply to this message with /retry.",
    "edited": "✏️ I'll remember the question as edited. My answer is to the earlier version; "
    "to have this one answered, reply to my answer with /retry.",
    "stop_button": "⏹ Stop",
    "stop_not_yours": "Only the person who asked (or a chat admin) can stop this answer.",
    "stop_done": "Stopped.",
    "stop_gone": "This answer has already finished.",
    "stop_none": "Nothing is being answered right now.",
    "model_current": "Model: {model}. Choose another one:",
    "model_set": "Model set to {model}.",
    "model_only": "Model: {model}. It is the only one available here.",
    "model_gone": "That model is no longer available; the menu shows the current ones.",
    "model_not_allowed": "Only a chat admin can change the model here.",
    "model_admins_choose": "Model: {model}. Only a chat admin can change it here.",
    "system_show": "System prompt of this chat:\n\n{prompt}",
    "system_none": "This chat has no system prompt. Set one with /system <text> (in a group: a "
    "chat admin); /system reset goes back to the default.",
    "system_set": "✅ System prompt saved. It applies from the next question.",
    "system_reset": "✅ System prompt reset to the default.",
    "system_not_allowed": "Only a chat admin can change the system prompt.",
    "access_denied_private": "Sorry, this bot is private. Your user id is {user_id}: "
    "ask the bot's owner to add it.",
    "access_denied_chat": "This bot is not enabled for this chat (id {chat_id}). "
    "Ask the bot's owner to add the chat.",
    "access_denied_user": "Sorry, you are not allowed to use this bot (your user id is {user_id}).",
    "access_denied_button": "Sorry, you are not allowed to use this bot.",
    "notice_stopped": "⏹ Stopped.",
    "notice_connection": "⚠️ The connection to the model was lost, so the answer is incomplete. "
    "Please try again.",
    "notice_connection_none": "⚠️ Could not reach the model. Please try again in a moment.",
    "notice_http": "⚠️ The model service returned an error, so the answer is incomplete. "
    "Please try again in a moment.",
    "notice_http_none": "⚠️ The model service returned an error. Please try again in a moment.",
    "notice_rate_limit": "⚠️ The model service is limiting requests right now. "
    "Please try again in a minute.",
    "notice_idle_timeout": "⚠️ The model stopped responding, so the answer is incomplete. "
    "Please try again.",
    "notice_idle_timeout_none": "⚠️ The model did not respond. Please try again.",
    "notice_total_timeout": "⚠️ The answer took too long and was cut off. "
    "Please try again or ask for a shorter answer.",
    "notice_total_timeout_none": "⚠️ The model took too long to answer. Please try again.",
    "notice_empty": "⚠️ The model returned an empty answer. Please try again.",
    "notice_unavailable": "⚠️ No model is available right now. Please try again later.",
    "notice_internal": "⚠️ Something went wrong on my side. Please try again.",
    "notice_not_started": "⚠️ The bot stopped before it could answer this. Please ask again.",
    "notice_interrupted": "⚠️ The bot stopped before this answer was finished. Please ask again.",
}
