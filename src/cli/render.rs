//! Terminal rendering: tables.

use comfy_table::presets::UTF8_FULL;
use comfy_table::{ContentArrangement, Table};

use crate::migration::MigrationStatusRow;

/// The `migrate status` table.
pub fn status_table(rows: &[MigrationStatusRow]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["Version", "Name", "Applied at", "State"]);
    for row in rows {
        table.add_row([
            row.version.as_str(),
            row.name.as_str(),
            row.applied_at.as_deref().unwrap_or("-"),
            row.state.label(),
        ]);
    }
    table
}
