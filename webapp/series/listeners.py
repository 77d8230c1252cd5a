"""What series do when something happens elsewhere (webapp/events.py): a unit merged into
another brings its seat quotas along. Runs in the transaction of the change."""

from sqlalchemy import select

from webapp import events
from webapp.db import db
from webapp.series.models import UnitQuota


@events.units_merged.connect
def _units_merged(_sender, *, source_id: int, target_id: int, **_facts) -> None:
    # Where both units had a quota in a series, the merged unit may fill both.
    quotas = db.session.scalars(
        select(UnitQuota).where(UnitQuota.unit_id.in_((source_id, target_id)))
    ).all()
    by_series: dict[int, list[UnitQuota]] = {}
    for quota in quotas:
        by_series.setdefault(quota.series_id, []).append(quota)
    for rows in by_series.values():
        source = next((row for row in rows if row.unit_id == source_id), None)
        target = next((row for row in rows if row.unit_id == target_id), None)
        if source is None:
            continue
        if target is None:
            db.session.add(
                UnitQuota(series_id=source.series_id, unit_id=target_id, quota=source.quota)
            )
        else:
            target.quota += source.quota
        db.session.delete(source)
    db.session.flush()
