//! Span fields shared by the engine and the web layer (see the binary's
//! `logging` module for the spans and their fields).

/// Ids a list field names; one delivery may hold thousands of shipments.
const MAX_LISTED: usize = 10;

/// Ids as one span field, `a,b,c`; past the first ten the rest are counted
/// (`a,…,j,+5`).
pub fn list_field<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    let mut more = 0usize;
    for (i, id) in ids.into_iter().enumerate() {
        if i >= MAX_LISTED {
            more += 1;
            continue;
        }
        if i > 0 {
            out.push(',');
        }
        out.push_str(id);
    }
    if more > 0 {
        out.push_str(&format!(",+{more}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_joined_and_cut() {
        assert_eq!(list_field([]), "");
        assert_eq!(list_field(["S-1"]), "S-1");
        assert_eq!(list_field(["S-1", "S-2"]), "S-1,S-2");
        let many: Vec<String> = (0..13).map(|i| format!("S-{i}")).collect();
        assert_eq!(
            list_field(many.iter().map(String::as_str)),
            "S-0,S-1,S-2,S-3,S-4,S-5,S-6,S-7,S-8,S-9,+3"
        );
    }
}
