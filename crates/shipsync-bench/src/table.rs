//! A plain Markdown table (aligned, so it reads on a terminal and pastes
//! into BENCHMARKS.md as is).

#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Self {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    pub fn render(&self) -> String {
        let cols = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let cell = |row: &[String], i: usize| row.get(i).cloned().unwrap_or_default();
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| cell(r, i).chars().count())
                .chain([cell(&self.headers, i).chars().count(), 3])
                .max()
                .unwrap_or(3)
        };
        let widths: Vec<usize> = (0..cols).map(width).collect();
        // A column is right-aligned when every value in it is a number.
        let right: Vec<bool> = (0..cols)
            .map(|i| {
                i > 0
                    && self.rows.iter().all(|r| {
                        let c = cell(r, i);
                        looks_numeric(&c) || matches!(c.as_str(), "" | "n/a" | "—")
                    })
            })
            .collect();
        let line = |row: &[String]| {
            let cells: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let c = cell(row, i);
                    let pad = w - c.chars().count();
                    // Numbers right-aligned, text left-aligned.
                    if right[i] {
                        format!("{}{c}", " ".repeat(pad))
                    } else {
                        format!("{c}{}", " ".repeat(pad))
                    }
                })
                .collect();
            format!("| {} |", cells.join(" | "))
        };
        let mut out = line(&self.headers);
        out.push('\n');
        // `|-----|------:|`: numeric columns marked right-aligned.
        let rule: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if !right[i] {
                    "-".repeat(w + 2)
                } else {
                    format!("{}:", "-".repeat(w + 1))
                }
            })
            .collect();
        out.push_str(&format!("|{}|\n", rule.join("|")));
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

fn looks_numeric(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_digit())
        && s.chars().all(|c| {
            c.is_ascii_digit()
                || ".,×% ".contains(c)
                || c == 'M'
                || c == 'B'
                || c == 's'
                || c == '→'
        })
}

/// `1.234` with `digits` decimals, or `n/a`.
pub fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.digits$}"))
}

/// `met` / `MISSED by …` for a value that must stay at or under `target`.
pub fn verdict_at_most(value: Option<f64>, target: f64, unit: &str) -> String {
    match value {
        None => "not measured".into(),
        Some(v) if v <= target => format!("met ({v:.2}{unit} ≤ {target}{unit})"),
        Some(v) => format!(
            "MISSED by {:.2}{unit} ({:.0} % over: {v:.2}{unit} > {target}{unit})",
            v - target,
            (v / target - 1.0) * 100.0
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_markdown() {
        let mut t = Table::new(["run", "wall (s)"]);
        t.row(["pull", "12.50"]).row(["pull 1/10", "1.2"]);
        let s = t.render();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count())
        );
        assert!(lines[1].ends_with(":|"));
    }

    #[test]
    fn verdicts() {
        assert!(verdict_at_most(Some(1.0), 1.1, "×").starts_with("met"));
        assert!(verdict_at_most(Some(1.2), 1.1, "×").starts_with("MISSED"));
        assert_eq!(verdict_at_most(None, 1.1, "×"), "not measured");
    }
}
