//! Minimal glob matching for trial filters: `*` (any run of characters, including `:`),
//! `?` (one character); everything else literal. A pattern without `*` or `?` matches as
//! a substring, like libtest filters.

/// Whether `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    if !is_glob(pattern) {
        return name.contains(pattern);
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // iterative wildcard matching with backtracking to the last `*`
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether `pattern` uses wildcards.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("pv-cli-v1::*", "pv-cli-v1::FALSIFY-PV-CLI-001"));
        assert!(matches(
            "*::FALSIFY-PV-CLI-00?",
            "pv-cli-v1::FALSIFY-PV-CLI-003"
        ));
        assert!(!matches(
            "*::FALSIFY-PV-CLI-00?",
            "pv-cli-v1::FALSIFY-PV-CLI-0031"
        ));
        assert!(matches("ship-*", "ship-007-apr-gguf-parity-v1::F-X-001"));
        assert!(!matches("ship-*", "pv-cli-v1::F-X-001"));
        assert!(matches("CLI-00", "pv-cli-v1::FALSIFY-PV-CLI-001"));
        assert!(matches("*", ""));
    }
}
