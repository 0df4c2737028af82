//! "Did you mean": the closest known name to a mistyped one, by edit distance. Registry names are
//! only compared with those sharing their first segment, so a lookup stays cheap although the
//! registry holds thousands of names.

use std::collections::HashMap;
use std::sync::OnceLock;

use chronik_protocol::registry;

use super::builtins::Builtin;

/// Registry names by their first segment (`produce`, `kafka`, `record`, …).
fn groups() -> &'static HashMap<&'static str, Vec<&'static str>> {
    static GROUPS: OnceLock<HashMap<&'static str, Vec<&'static str>>> = OnceLock::new();
    GROUPS.get_or_init(|| {
        let mut g: HashMap<&'static str, Vec<&'static str>> = HashMap::new();
        for e in &registry::catalog().entries {
            g.entry(first_segment(e.name)).or_default().push(e.name);
        }
        g
    })
}

fn first_segment(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// The known name (built-in or registry) closest to an unknown, lower-cased one, as a hint
/// for an error message.
pub(crate) fn name_hint(typed: &str) -> Option<String> {
    hint(typed, &Builtin::ALL.map(Builtin::name))
}

/// The registry name closest to an unknown one, as a hint for an error message.
pub(crate) fn registry_name_hint(typed: &str) -> Option<String> {
    hint(typed, &[])
}

fn hint(typed: &str, builtins: &[&'static str]) -> Option<String> {
    let (first, rest) = typed.split_at(typed.find('.').unwrap_or(typed.len()));
    let group = match groups().get(first) {
        Some(g) => Some((g, typed.to_string())),
        // A mistyped first segment: try the closest segment with the rest as typed.
        None => closest(first, groups().keys().copied())
            .and_then(|seg| groups().get(seg).map(|g| (g, format!("{seg}{rest}")))),
    };
    if let Some((g, fixed)) = group {
        if let Some(best) = closest(&fixed, builtins.iter().copied().chain(g.iter().copied())) {
            return Some(format!("did you mean `{best}`?"));
        }
    }
    if let Some(best) = closest(typed, builtins.iter().copied()) {
        return Some(format!("did you mean `{best}`?"));
    }
    // A field's last segment alone, e.g. `throttle_time_ms`.
    if !typed.contains('.') {
        let mut full = registry::catalog()
            .entries
            .iter()
            .filter(|e| e.short == typed)
            .map(|e| e.name);
        if let Some(one) = full.next() {
            let more = full.count();
            return Some(if more == 0 {
                format!("did you mean `{one}`?")
            } else {
                format!("registry names are dotted in full, e.g. `{one}` ({more} more end in `{typed}`)")
            });
        }
    }
    None
}

/// The candidate closest to `word` (case-insensitively), if one is close enough to be a likely
/// typo: at most 2 edits, or a third of the word's length for longer words. Ties go to the
/// first candidate.
pub(crate) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let word: Vec<char> = word.to_lowercase().chars().collect();
    let mut limit = (word.len() / 3).max(2);
    let mut best = None;
    for c in candidates {
        let chars: Vec<char> = c.to_lowercase().chars().collect();
        if let Some(d) = distance(&word, &chars, limit) {
            best = Some(c);
            if d == 0 {
                break;
            }
            // Later candidates must be strictly closer.
            limit = d - 1;
        }
    }
    best
}

/// Levenshtein distance, or `None` when it exceeds `limit` (checked row by row, so far-off
/// candidates cost little).
fn distance(a: &[char], b: &[char], limit: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
            row_min = row_min.min(cur[j + 1]);
        }
        if row_min > limit {
            return None;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    Some(prev[b.len()]).filter(|d| *d <= limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn distance_counts_edits_and_stops_at_the_limit() {
        assert_eq!(distance(&chars("latency"), &chars("latency"), 2), Some(0));
        assert_eq!(distance(&chars("latncy"), &chars("latency"), 2), Some(1));
        assert_eq!(distance(&chars("kitten"), &chars("sitting"), 3), Some(3));
        assert_eq!(distance(&chars("kitten"), &chars("sitting"), 2), None);
        assert_eq!(distance(&chars("a"), &chars("abcdef"), 2), None);
    }

    #[test]
    fn closest_prefers_the_nearest_and_refuses_far_ones() {
        assert_eq!(closest("helth", ["health", "help"]), Some("health"));
        assert_eq!(closest("stalld", ["healthy", "stalled"]), Some("stalled"));
        assert_eq!(closest("PRODUSE", ["Produce", "Fetch"]), Some("Produce"));
        assert_eq!(closest("zzzzzz", ["health", "latency"]), None);
    }

    #[test]
    fn registry_hints_leave_the_built_ins_out() {
        assert_eq!(
            registry_name_hint("produce.response.throttle_time_m").as_deref(),
            Some("did you mean `produce.response.throttle_time_ms`?")
        );
        assert_eq!(
            registry_name_hint("metdata.response.cluster_id").as_deref(),
            Some("did you mean `metadata.response.cluster_id`?")
        );
        assert_eq!(
            name_hint("latncy").as_deref(),
            Some("did you mean `latency`?")
        );
        assert_eq!(registry_name_hint("latncy"), None);
    }
}
