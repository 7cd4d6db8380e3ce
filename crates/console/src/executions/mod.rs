//! Executions: the monitor (`list`), its live stream (`stream`), one execution's page
//! (`detail`) and its buttons (`actions`). `row` renders a monitor row, the same markup for
//! the page and for the stream's updates.

pub(crate) mod actions;
pub(crate) mod detail;
pub(crate) mod list;
mod row;
pub(crate) mod stream;
