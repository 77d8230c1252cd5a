"""iCalendar objects for sessions, built with the icalendar library. The UID scheme here is
the one feeds use too, so calendar clients match invitations, updates and feeds."""
