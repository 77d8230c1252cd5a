"""Series (系列课程): a course with organizers, a time zone, sessions and enrolled participants."""
