"""Scale-out: what several replicas of the bot share through Redis (`REDIS_URL`).

Without `REDIS_URL` none of this is used and one instance keeps everything in SQLite and memory.
"""
