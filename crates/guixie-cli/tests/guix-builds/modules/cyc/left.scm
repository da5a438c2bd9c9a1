;; Two modules that use each other, as Guix's package modules often do: each one's packages
;; take the other's as inputs, which are looked up only when the inputs are needed.
(define-module (cyc left)
  #:use-module (guix packages)
  #:use-module (guix build-system trivial)
  #:use-module (cyc right))

(define-public left-data
  (package
    (name "left-data")
    (version "1")
    (source #f)
    (build-system trivial-build-system)
    (arguments
     (list #:builder #~(call-with-output-file #$output
                         (lambda (port) (display "left" port)))))
    (synopsis "data") (description "data") (license #f) (home-page #f)))

(define-public left-tool
  (package
    (name "left-tool")
    (version "1")
    (source #f)
    (build-system trivial-build-system)
    (inputs (list right-data))
    (arguments
     (list #:builder #~(copy-file #$(this-package-input "right-data") #$output)))
    (synopsis "tool") (description "tool") (license #f) (home-page #f)))
