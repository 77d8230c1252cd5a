"""Import every model, so that the mapper and Alembic see the whole schema."""

from webapp.people.models import Role, Speaker, Unit, UnitKind, User, UserRole  # noqa: F401
from webapp.series.models import (  # noqa: F401
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    Series,
    SeriesStatus,
    Visibility,
)
from webapp.sessions.models import Lecture, LectureSession, SessionStatus  # noqa: F401
