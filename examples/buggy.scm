;; Small C programs with bugs (and a probe of what the sandbox lets through), compiled
;; with debugging information, for the tools of `guixie run --trace`
;; (docs/introspection.md):
;;
;;   guixie build examples/buggy.scm
;;   guixie run --trace=valgrind /gnu/store/…-buggy-1.0/bin/leak   # the bad read and the leak
;;   guixie run --trace=gdb /gnu/store/…-buggy-1.0/bin/crash       # the signal and backtrace
;;   guixie run --trace=perf /gnu/store/…-buggy-1.0/bin/busy       # counters, flame graph
;;
;; and builds that run them, for `guixie build --trace=valgrind|gdb`: memcheck follows the
;; builder into each program it starts, and gdb shows where a build crashed.
;;
;;   guixie build --trace=valgrind -A leaky-build examples/buggy.scm
;;   guixie build --trace=gdb -A crashing-build examples/buggy.scm   # fails, and is traced

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

;; Raw derivations whose builder is the toolchain's shell (not Guile), with the toolchain
;; as their /usr, where buggy's programs find their C library.
(define (buggy-build name script)
  (builtins-derivation
   `((name . ,name)
     (system . "x86_64-linux")
     (builder . "/bin/sh")
     (args "-c" ,script)
     (guixieToolchain . ,(bootstrap-toolchain))
     (buggy . ,(package->derivation buggy)))))

;; Reads past a block's end and leaks it, in a child of the builder's shell.
(define leaky-build
  (buggy-build "leaky-build" "$buggy/bin/leak > $out"))

;; Dies of SIGSEGV in a child of the builder's shell.
(define crashing-build
  (buggy-build "crashing-build" "echo starting && $buggy/bin/crash && echo never > $out"))

;; What a build under a tool can reach (a host file, Debian's package database; the
;; network; ptrace), written to its output, so that a traced run that reached more differs.
(define probing-build
  (buggy-build "probing-build" "$buggy/bin/probe /var/lib/dpkg/status > $out"))

;; The same, replacing the file memcheck writes for the builder's shell with a link to it.
(define planting-build
  (buggy-build "planting-build"
               "$buggy/bin/probe /var/lib/dpkg/status memcheck/memcheck.1.xml > $out"))

buggy
