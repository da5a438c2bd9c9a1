;; The first package to read: GNU Hello's shape, built from the C source in examples/hello/
;; with gnu-build-system (./configure, make, make check, make install), in the sandbox.
;;
;;   guixie eval examples/hello.scm          # the .drv path
;;   guixie build examples/hello.scm         # the output path; run its bin/hello
;;   guixie show hello -f examples/hello.scm # the package's fields

(define hello
  (package
    (name "hello")
    (version "1.0")
    (source (local-file "hello" #:recursive? #t))
    (build-system gnu-build-system)
    (arguments
     (list #:configure-flags #~(list "--greeting=Hello, world!")))
    (synopsis "Hello, world! in C")
    (description "Prints a friendly greeting; the smallest package built from source.")
    (home-page "https://example.org/hello")
    (license 'gpl3+)))

hello
