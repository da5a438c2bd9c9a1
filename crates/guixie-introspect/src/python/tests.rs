use super::*;

/// The tracer's file for a script that plans in a thread and in its main thread, one
/// word raising ValueError (recorded with Python 3.11, the store path put in).
const PLAN: &str = include_str!("../../tests/traces/python-plan.json");

#[test]
fn a_recorded_trace_gives_the_call_tree_with_arguments_and_exceptions() {
    let p = parse_trace(PLAN.as_bytes()).unwrap();
    assert_eq!((p.threads, p.argv.clone()), (2, vec!["plan.py".to_owned()]));
    let names: Vec<&str> = p.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["<module>", "worker", "plan", "parse"]);
    assert_eq!((p.functions[3].calls, p.functions[3].exceptions), (6, 1));
    let depth = depths(&p.calls);
    let raised: Vec<(usize, &str, &str)> = p
        .calls
        .iter()
        .zip(&depth)
        .filter_map(|(c, d)| {
            Some((
                *d,
                p.functions[c.function as usize].name.as_str(),
                c.exception.as_deref()?,
            ))
        })
        .collect();
    // parse('42') raised; plan saw it pass (and caught it).
    assert_eq!(
        raised,
        [(1, "plan", "ValueError"), (2, "parse", "ValueError")]
    );
    let bad = p
        .calls
        .iter()
        .find(|c| c.exception.is_some() && c.function == 3)
        .unwrap();
    assert_eq!(bad.args, [("word".to_owned(), "'42'".to_owned())]);
    // The thread's calls hang from worker, not from the main thread's module.
    assert_eq!(p.calls[2].parent, Some(1));
    assert_eq!(p.calls[1].thread, 1);
}

fn edited(from: &str, to: &str) -> Vec<u8> {
    assert!(PLAN.contains(from), "{from}");
    PLAN.replacen(from, to, 1).into_bytes()
}

#[test]
fn a_trace_whose_indices_lie_is_refused_with_the_call_named() {
    let later_parent = edited("[1,2,1,", "[5,2,1,");
    assert!(parse_trace(&later_parent)
        .unwrap_err()
        .contains("call 2: its parent 5"));
    let no_function = edited("[1,2,1,", "[1,9,1,");
    assert!(parse_trace(&no_function)
        .unwrap_err()
        .contains("call 2: no function 9"));
    let no_thread = edited("[1,2,1,", "[1,2,7,");
    assert!(parse_trace(&no_thread)
        .unwrap_err()
        .contains("thread 7 of 2"));
    let counts = edited("[[1,0],", "[");
    assert!(parse_trace(&counts)
        .unwrap_err()
        .contains("4 functions and 3 counts"));
    let schema = edited("python-trace/1", "python-trace/9");
    assert!(parse_trace(&schema).unwrap_err().contains("trace schema"));
    assert!(parse_trace(b"{\"schema\":")
        .unwrap_err()
        .contains("not a Python trace"));
}

#[test]
fn long_texts_are_cut_on_a_character_boundary() {
    let long = format!("'{}'", "é".repeat(400));
    let p = parse_trace(&edited("'42'", &long)).unwrap();
    let shown = &p.calls[8].args[0].1;
    assert!(shown.len() <= MAX_TEXT + '…'.len_utf8() && shown.ends_with('…'));
}
