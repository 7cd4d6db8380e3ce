//! Wall-clock timestamps in the formats the faked services write.

use time::OffsetDateTime;
use time::macros::format_description;

/// `2024-05-01T10:00:00Z`: Dataverse's `createdon`/`modifiedon` (UTC, whole seconds).
pub(crate) fn utc_seconds() -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::now_utc().format(format).expect("formatting a UTC timestamp")
}

/// `2024-05-01T10:00:00.123+00:00`: QuickBooks' `time` of an answer (milliseconds, offset).
pub(crate) fn offset_millis() -> String {
    let format = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour sign:mandatory]:[offset_minute]"
    );
    OffsetDateTime::now_utc().format(format).expect("formatting a UTC timestamp")
}

/// `2024-05-01T10:00:00+00:00`: QuickBooks' `MetaData` times (whole seconds, offset).
pub(crate) fn offset_seconds() -> String {
    let format = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
    );
    OffsetDateTime::now_utc().format(format).expect("formatting a UTC timestamp")
}

/// `2024-05-01T10:00:00.123Z`: the `time` of a CloudEvents webhook (UTC, milliseconds).
pub(crate) fn utc_millis() -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::now_utc().format(format).expect("formatting a UTC timestamp")
}
