use guile::{with_guile, Guile, Primitive, PrimitiveError, Value};

struct Concat;
impl Primitive for Concat {
    const NAME: &'static str = "rust-concat";
    fn call<'g>(g: &'g Guile, args: &[Value<'g>]) -> Result<Value<'g>, PrimitiveError> {
        let mut s = String::new();
        for (i, a) in args.iter().enumerate() {
            s.push_str(&a.to_text().ok_or_else(|| {
                PrimitiveError::new(format!("argument {} is not a string", i + 1))
            })?);
        }
        Ok(g.string(&s))
    }
}

struct Panics;
impl Primitive for Panics {
    const NAME: &'static str = "rust-panics";
    fn call<'g>(_: &'g Guile, _: &[Value<'g>]) -> Result<Value<'g>, PrimitiveError> {
        panic!("deliberate")
    }
}

#[test]
fn eval_call_errors_and_primitives() {
    with_guile(|g| {
        assert_eq!(g.eval_str("(+ 1 2)").unwrap().to_i64(), Some(3));
        let e = g.eval_str("(car 5)").unwrap_err();
        assert_eq!(e.key, "wrong-type-arg");
        assert!(e.message.contains("car"), "{e}");
        let e = g.eval_str("(undefined-thing 1)").unwrap_err();
        assert_eq!(e.key, "unbound-variable");
        assert!(e.message.contains("undefined-thing"), "{e}");
        let e = g.eval_str("(let ((a 1) b) a)").unwrap_err();
        assert_eq!(e.key, "syntax-error");

        g.define_module(
            "test prims",
            |g| {
                g.define_primitive::<Concat>();
                g.define_primitive::<Panics>();
            },
            &["rust-concat", "rust-panics"],
        )
        .unwrap();
        g.eval_str("(use-modules (test prims))").unwrap();
        assert_eq!(
            g.eval_str(r#"(rust-concat "a" 'b "c")"#)
                .unwrap()
                .to_text()
                .unwrap(),
            "abc"
        );
        let e = g.eval_str(r#"(rust-concat "a" 5)"#).unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.message.as_str()),
            ("guixie-error", "argument 2 is not a string")
        );
        let e = g.eval_str("(rust-panics)").unwrap_err();
        assert!(
            e.message.contains("panic") && e.message.contains("deliberate"),
            "{e}"
        );
        // Scheme catches Rust errors like any other exception.
        let v = g
            .eval_str(
                r#"(catch 'guixie-error (lambda () (rust-concat 1)) (lambda (k . a) "caught"))"#,
            )
            .unwrap();
        assert_eq!(v.to_text().unwrap(), "caught");
        // Still usable after all of that.
        let f = g.eval_str("(lambda (a b) (string-append a b))").unwrap();
        let r = g.call(f, &[g.string("x"), g.string("y")]).unwrap();
        assert_eq!(r.to_text().unwrap(), "xy");
        let l = g.eval_str("(list 1 2 3)").unwrap().list().unwrap();
        assert_eq!(
            l.map(|v| v.to_i64().unwrap()).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    });
}

#[test]
fn read_error_location() {
    with_guile(|g| {
        let dir = std::env::temp_dir().join(format!("guile-rs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("broken.scm");
        std::fs::write(&f, "(define x 1)\n(foo \"abc\n").unwrap();
        let e = g
            .eval_str(&format!("(primitive-load \"{}\")", f.display()))
            .unwrap_err();
        assert_eq!(e.key, "read-error");
        let loc = e.location.clone().expect("read errors have a location");
        assert!(loc.file.ends_with("broken.scm") && loc.line == 3, "{e:?}");
    });
}

#[test]
fn callers_on_many_threads_share_the_guile_thread() {
    let handles: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                with_guile(|g| g.eval_str(&format!("(* {i} 10)")).unwrap().to_i64())
            })
        })
        .collect();
    let r: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(r, (0..8).map(|i| Some(i * 10)).collect::<Vec<_>>());
}

#[test]
fn lists_built_from_rust_survive_collections() {
    with_guile(|g| {
        let gc = g.eval_str("(lambda () (gc))").unwrap();
        let items: Vec<i64> = (0..20_000).collect();
        let l = g.list_with(&items, |i| {
            if i % 2_000 == 0 {
                g.call(gc, &[]).unwrap();
            }
            g.cons(g.string(&format!("item-{i}")), g.int(*i))
        });
        g.call(gc, &[]).unwrap();
        let mut n = 0;
        for (i, v) in l.list().unwrap().enumerate() {
            assert_eq!(v.car().unwrap().to_text().unwrap(), format!("item-{i}"));
            assert_eq!(v.cdr().unwrap().to_i64(), Some(i as i64));
            n += 1;
        }
        assert_eq!(n, items.len());
    });
}
