;; Small C programs with bugs (and a probe of what the sandbox lets through), compiled
;; with debugging information, for the tools of `guixie run --trace`
;; (docs/introspection.md):
;;
;;   guixie build examples/buggy.scm
;;   guixie run --trace=valgrind /gnu/store/…-buggy-1.0/bin/leak   # the bad read and the leak
;;   guixie run --trace=gdb /gnu/store/…-buggy-1.0/bin/crash       # the signal and backtrace
;;   guixie run --trace=perf /gnu/store/…-buggy-1.0/bin/busy       # counters, flame graph

(define buggy
  (package
    (name "buggy")
    (version "1.0")
    (source (local-file "buggy" #:recursive? #t))
    (build-system trivial-build-system)
    (arguments
     (list #:builder
           #~(begin
               (use-modules (guixie build utils))
               (setenv "PATH" "/usr/bin")
               (let ((bin (string-append #$output "/bin")))
                 (mkdir-p bin)
                 (for-each (lambda (name)
                             (invoke "gcc" "-g" "-O0" "-o" (string-append bin "/" name)
                                     (string-append #$source "/" name ".c")))
                           '("leak" "crash" "probe" "busy"))))))
    (synopsis "Programs that leak, read out of bounds and crash")
    (description "Test subjects for valgrind and gdb under guixie run --trace.")
    (home-page "https://example.org/buggy")
    (license 'expat)))

buggy
