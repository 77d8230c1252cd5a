"""What a web process keeps of feeds in memory: bodies by ETag (bounded) and each token
lookup for a second."""

import threading
import time
from collections import OrderedDict


class BodyCache:
    """Feed bodies kept in memory by ETag (bounded), so serving a feed reads a small row
    rather than the whole document from the database on every poll."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024):
        self.max_bytes = max_bytes
        self.size = 0
        self.items: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str, etag: str) -> bytes | None:
        with self.lock:
            item = self.items.get(key)
            if item is None or item[0] != etag:
                return None
            self.items.move_to_end(key)
            return item[1]

    def put(self, key: str, etag: str, body: bytes) -> None:
        with self.lock:
            old = self.items.pop(key, None)
            if old is not None:
                self.size -= len(old[1])
            self.items[key] = (etag, body)
            self.size += len(body)
            while self.size > self.max_bytes and self.items:
                _key, (_etag, dropped) = self.items.popitem(last=False)
                self.size -= len(dropped)


body_cache = BodyCache()


class LookupCache:
    """Remembers feed lookups (a token's feed and its validators; a public series' feed), so
    a feed polled many times at once costs no query. While the process hears the database's
    notifications (`listening`, webapp/feeds/invalidation.py) an entry lives for minutes and
    is forgotten the moment a feed or link changes; otherwise for a second (the setting
    FEED_LOOKUP_CACHE_SECONDS), in which a revoked link or a re-rendered feed is seen."""

    WHILE_LISTENING = 300.0  # seconds: a safety net; notifications clear it much sooner

    def __init__(self):
        self.lock = threading.Lock()
        self.entries: dict[str, tuple[float, object]] = {}
        self.listening = False

    def ttl(self, configured: float) -> float:
        return self.WHILE_LISTENING if self.listening else configured

    def get(self, digest: str):
        with self.lock:
            entry = self.entries.get(digest)
            if entry is None or entry[0] < time.monotonic():
                return None
            return entry[1]

    def put(self, digest: str, value, *, ttl: float) -> None:
        if ttl <= 0:
            return
        with self.lock:
            if len(self.entries) > 10_000:
                self.entries.clear()
            self.entries[digest] = (time.monotonic() + ttl, value)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


lookup_cache = LookupCache()
