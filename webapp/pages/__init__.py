"""Pages that show several domains at once: a series with its sessions, participants,
calendars and robots; a session with its agenda; the speaker directory. They sit above the
domains they show and only call their services; who may open them is webapp/permissions.py.
"""
