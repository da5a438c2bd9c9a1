;; Two packages, one depending on the other, and a variant made with `inherit'.
;;
;;   guixie build examples/greeter.scm        # builds libgreet, greeter and greeter-loud
;;   guixie graph examples/greeter.scm        # the dependency graph (DOT)

(define libgreet
  (package
    (name "libgreet")
    (version "0.1")
    (source (local-file "greeter/libgreet" #:recursive? #t))
    (build-system gnu-build-system)
    (arguments
     (list #:make-flags #~(list (string-append "prefix=" #$output) "CC=gcc")
           #:phases #~(modify-phases %standard-phases
                        (delete 'configure)   ; there is no ./configure
                        (delete 'check))))
    (synopsis "A static C library that greets")
    (description "libgreet.a and greet.h.")
    (home-page "https://example.org/libgreet")
    (license 'expat)))

(define greeter
  (package
    (name "greeter")
    (version "0.1")
    (source (local-file "greeter/greeter" #:recursive? #t))
    (build-system gnu-build-system)
    (inputs (list libgreet))
    (arguments
     (list #:make-flags #~(list (string-append "prefix=" #$output))
           #:phases #~(modify-phases %standard-phases
                        (delete 'configure))))
    (synopsis "Greets, with libgreet")
    (description "A program linked against libgreet.")
    (home-page "https://example.org/greeter")
    (license 'expat)))

;; The same package, built differently: only the fields given here change.
(define greeter-loud
  (package
    (inherit greeter)
    (name "greeter-loud")
    (arguments
     (list #:make-flags #~(list (string-append "prefix=" #$output) "LOUD=1")
           #:phases #~(modify-phases %standard-phases
                        (delete 'configure)
                        (replace 'check       ; our own test instead of `make check'
                          (lambda _
                            (invoke "sh" "-c" "./greeter test | grep -q 'HELLO, TEST'")))
                        (add-after 'install 'say-hello
                          (lambda* (#:key outputs #:allow-other-keys)
                            (invoke (string-append (assoc-ref outputs "out") "/bin/greeter")
                                    "build"))))))))

(list libgreet greeter greeter-loud)
