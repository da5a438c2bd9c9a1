//! Paths as a traced process named them, resolved lexically (the trace cannot be asked what a
//! link pointed to when it was followed).

/// `path` made absolute against `cwd` (itself absolute), with `.`, `..` and repeated `/`
/// removed; `..` never climbs above `/`.
pub fn resolve(cwd: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{cwd}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Whether `path` is `dir` or lies under it, by whole components.
pub fn is_within(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    dir.is_empty()
        || path == dir
        || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_lexically_and_never_above_the_root() {
        assert_eq!(resolve("/build", "a/./b//c"), "/build/a/b/c");
        assert_eq!(resolve("/build/x", "../y"), "/build/y");
        assert_eq!(resolve("/", "../../etc/passwd"), "/etc/passwd");
        assert_eq!(resolve("/build", "/gnu/store/x/../y"), "/gnu/store/y");
        assert!(is_within("/gnu/store/abc-x/bin", "/gnu/store/abc-x"));
        assert!(is_within("/gnu/store/abc-x", "/gnu/store/abc-x/"));
        assert!(!is_within("/gnu/store/abc-xy", "/gnu/store/abc-x"));
        assert!(is_within("/anything", "/"));
    }
}
