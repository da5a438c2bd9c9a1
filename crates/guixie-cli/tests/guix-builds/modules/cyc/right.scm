(define-module (cyc right)
  #:use-module (guix packages)
  #:use-module (guix build-system trivial)
  #:use-module (cyc left))

(define-public right-data
  (package
    (name "right-data")
    (version "1")
    (source #f)
    (build-system trivial-build-system)
    (arguments
     (list #:builder #~(call-with-output-file #$output
                         (lambda (port) (display "right" port)))))
    (synopsis "data") (description "data") (license #f) (home-page #f)))

(define-public right-tool
  (package
    (name "right-tool")
    (version "1")
    (source #f)
    (build-system trivial-build-system)
    (inputs (list left-data))
    (arguments
     (list #:builder #~(copy-file #$(this-package-input "left-data") #$output)))
    (synopsis "tool") (description "tool") (license #f) (home-page #f)))
