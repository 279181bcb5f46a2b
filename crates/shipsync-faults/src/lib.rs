//! The shipsync fault suite (`shipsync-faults`): real `shipsync serve`
//! processes under load over HTTP, with faults injected through the
//! sandboxes, a TCP proxy in front of PostgreSQL and `kill -9`; each row
//! checks the store for every shipped unit fulfilled exactly once. See
//! RESILIENCE.md for the latest results and the commands.

pub mod proxy;
pub mod rows;
pub mod world;

use shipsync_bench::table::Table;

/// The results as a Markdown table.
pub fn table(results: &[rows::RowResult]) -> String {
    let mut t = Table::new(["row", "backend", "load", "result", "figures", "time (s)"]);
    for r in results {
        let figures = r
            .figures
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let result = if r.passed {
            "pass".to_owned()
        } else {
            format!("FAIL ({})", r.failure.as_deref().unwrap_or("?"))
        };
        t.row([
            r.row.clone(),
            r.backend.name().to_owned(),
            r.load.clone(),
            result,
            figures,
            format!("{:.0}", r.seconds),
        ]);
    }
    t.render()
}
