"""Attendance: from the appended attendance events to a status per participant and session,
with its explanation, reports and exports."""
