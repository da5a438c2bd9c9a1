use super::*;

/// memcheck 3.19's XML for `leak.c` (an out-of-bounds read at line 7 of a block allocated
/// at line 3, and that block leaked), recorded.
const LEAK: &str = include_str!("../../tests/traces/memcheck-leak.xml");

#[test]
fn the_invalid_read_and_the_leak_come_with_their_source_lines() {
    let m = parse_memcheck(LEAK).unwrap();
    assert_eq!(m.errors.len(), 1);
    let read = &m.errors[0];
    assert_eq!(read.kind, "InvalidRead");
    assert_eq!(read.what, "Invalid read of size 4");
    assert_eq!(read.count, 1);
    assert_eq!(read.stack[0].describe(), "main (leak.c:7)");
    assert_eq!(read.aux.len(), 1);
    assert!(read.aux[0]
        .what
        .contains("0 bytes after a block of size 16"));
    let alloc: Vec<String> = read.aux[0].stack.iter().map(Frame::describe).collect();
    assert_eq!(alloc[1..], ["make (leak.c:3)", "main (leak.c:5)"]);
    assert_eq!(m.leaks.len(), 1);
    let leak = &m.leaks[0];
    assert_eq!(leak.kind, "Leak_DefinitelyLost");
    assert_eq!(leak.leaked_bytes, Some(16));
    assert_eq!(leak.leaked_blocks, Some(1));
    assert_eq!(leak.stack[1].describe(), "make (leak.c:3)");
}

#[test]
fn a_run_that_did_not_finish_or_another_tool_is_refused() {
    let cut = &LEAK[..LEAK.find("<state>FINISHED").unwrap()];
    assert!(matches!(parse_memcheck(cut), Err(ValgrindError::Xml(_))));
    let unfinished = LEAK.replace("FINISHED", "RUNNING");
    assert_eq!(parse_memcheck(&unfinished), Err(ValgrindError::Unfinished));
    let helgrind = LEAK.replace("<tool>memcheck</tool>", "<tool>helgrind</tool>");
    assert!(matches!(
        parse_memcheck(&helgrind),
        Err(ValgrindError::NotMemcheck(_))
    ));
    assert!(matches!(
        parse_memcheck("<html/>"),
        Err(ValgrindError::NotMemcheck(_))
    ));
    // An entity bomb is no XML memcheck writes: DTDs are refused.
    let bomb = format!("<!DOCTYPE v [<!ENTITY a \"aaaa\">]>{LEAK}");
    assert!(matches!(parse_memcheck(&bomb), Err(ValgrindError::Xml(_))));
}

#[test]
fn stacks_and_errors_are_capped() {
    let frame = "<frame><ip>0x1</ip><fn>f</fn></frame>";
    let deep = LEAK.replacen(
        "<stack>",
        &format!("<stack>{}", frame.repeat(MAX_FRAMES + 10)),
        1,
    );
    let m = parse_memcheck(&deep).unwrap();
    assert_eq!(m.errors[0].stack.len(), MAX_FRAMES);
    let start = LEAK.find("<error>").unwrap();
    let end = LEAK.find("</error>").unwrap() + "</error>".len();
    let many = format!(
        "{}{}{}",
        &LEAK[..start],
        LEAK[start..end].repeat(MAX_ERRORS + 5),
        &LEAK[end..]
    );
    let m = parse_memcheck(&many).unwrap();
    assert_eq!(m.errors.len() + m.leaks.len(), MAX_ERRORS);
    assert_eq!(m.omitted, 6);
}

#[test]
fn callgrinds_total_is_the_summary_line() {
    assert_eq!(callgrind_total("summary: 127443"), Some(127443));
    assert_eq!(callgrind_total("totals: 127443 12"), Some(127443));
    assert_eq!(callgrind_total("events: Ir"), None);
    assert_eq!(callgrind_total("summary: lots"), None);
}
