use super::*;

/// gdb 13's logs, recorded: a null dereference in `deref` called from `main`, and an
/// `abort()` in a program with a second thread waiting in `pause()`.
const SEGV: &str = include_str!("../../tests/traces/gdb-segv.txt");
const ABORT: &str = include_str!("../../tests/traces/gdb-abort-threads.txt");

fn described(t: &Thread) -> Vec<String> {
    t.frames.iter().map(Frame::describe).collect()
}

#[test]
fn a_segfault_gives_the_signal_and_the_functions_with_lines() {
    let (ending, threads, omitted) = parse_batch_log(SEGV).unwrap();
    assert_eq!(
        ending,
        Ending::Signal {
            name: "SIGSEGV".into(),
            description: "Segmentation fault".into(),
            thread: Some(1)
        }
    );
    assert_eq!(omitted, 0);
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0].name.as_deref(), Some("crash"));
    assert!(threads[0].lwp.is_some());
    assert_eq!(
        described(&threads[0]),
        ["deref (crash.c:2)", "main (crash.c:3)"]
    );
    assert_eq!(threads[0].frames[0].level, 0);
    assert_eq!(
        threads[0].frames[1].address.as_deref(),
        Some("0x0000555555555185")
    );
}

#[test]
fn every_thread_is_kept_the_signalled_one_first() {
    let (ending, threads, _) = parse_batch_log(ABORT).unwrap();
    assert!(
        matches!(&ending, Ending::Signal { name, thread: Some(1), .. } if name == "SIGABRT"),
        "{ending:?}"
    );
    assert_eq!(threads.iter().map(|t| t.id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        threads[0].frames.last().unwrap().describe(),
        "main (ok.c:5)"
    );
    assert!(described(&threads[1]).contains(&"spin (ok.c:4)".to_owned()));
}

#[test]
fn exits_are_read_in_gdbs_octal() {
    let log = "[New Thread 0x7f (LWP 2)]\n[Inferior 1 (process 8339) exited with code 012]\n";
    assert_eq!(parse_batch_log(log).unwrap().0, Ending::Exited { code: 10 });
    let log = "[Inferior 1 (process 9) exited normally]\nNo stack.\n";
    assert_eq!(
        parse_batch_log(log).unwrap(),
        (Ending::Exited { code: 0 }, vec![], 0)
    );
    let log = "\nProgram terminated with signal SIGKILL, Killed.\nThe program no longer exists.\n";
    assert!(matches!(
        parse_batch_log(log).unwrap().0,
        Ending::Terminated { name, .. } if name == "SIGKILL"
    ));
}

#[test]
fn a_log_without_an_ending_is_an_error_and_frames_are_capped() {
    assert!(parse_batch_log("/x: No such file or directory.\n").is_err());
    let mut log = String::from("Program received signal SIGSEGV, Segmentation fault.\n");
    log.push_str("Thread 1 (Thread 0x1 (LWP 5) \"r\"):\n");
    for i in 0..MAX_FRAMES + 50 {
        log.push_str(&format!("#{i}  0x1 in recurse (n=1) at r.c:2\n"));
    }
    for t in 2..MAX_THREADS as u32 + 5 {
        log.push_str(&format!(
            "Thread {t} (Thread 0x1 (LWP {t})):\n#0  f () from /lib/libc.so.6\n"
        ));
    }
    let (_, threads, omitted) = parse_batch_log(&log).unwrap();
    assert_eq!(threads[0].frames.len(), MAX_FRAMES);
    assert_eq!(threads.len(), MAX_THREADS);
    assert_eq!(omitted, 4);
    assert_eq!(threads[1].frames[0].describe(), "f (from /lib/libc.so.6)");
}
