"""Import every model, so that the mapper and Alembic see the whole schema."""

from webapp.api.tokens import ApiToken  # noqa: F401
from webapp.attendance.models import (  # noqa: F401
    AttendanceFinal,
    AttendanceImport,
    AttendanceOverride,
    AttendanceRecord,
    ExcuseNote,
)
from webapp.audit import AuditEntry  # noqa: F401
from webapp.feeds.models import EventFragment, FeedDocument, FeedToken  # noqa: F401
from webapp.people.models import (  # noqa: F401
    LoginAttempt,
    LoginSession,
    LoginToken,
    Role,
    Speaker,
    Unit,
    UnitKind,
    User,
    UserRole,
)
from webapp.reminders.models import (  # noqa: F401
    Delivery,
    Notification,
    NotificationKind,
    ReminderPlan,
    ReminderRule,
    Webhook,
    WorkerHeartbeat,
)
from webapp.series.models import (  # noqa: F401
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    ImportBatch,
    Series,
    SeriesStatus,
    UnitQuota,
    Visibility,
)
from webapp.sessions.models import (  # noqa: F401
    Lecture,
    LectureSession,
    SessionChange,
    SessionJoin,
    SessionStatus,
)
from webapp.settings import Setting  # noqa: F401
from webapp.streaming.models import (  # noqa: F401
    Broadcast,
    Recording,
    Stream,
    ViewerSample,
)
