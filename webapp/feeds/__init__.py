"""iCalendar feeds: private subscription links, feed documents the worker keeps up to date,
served as stored bytes with HTTP caching."""
