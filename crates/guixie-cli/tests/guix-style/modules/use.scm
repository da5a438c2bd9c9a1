;; Module specs as Guix's modules write them: #:prefix, #:select with renaming, a pure SRFI
;; module, and guixie's own module under a prefix.
(define-module (use)
  #:use-module ((my base) #:prefix b:)
  #:use-module ((my base) #:select ((make-thing . mk)))
  #:use-module ((srfi srfi-1) #:select (take))
  #:use-module ((guixie packages) #:prefix p:))

(define-public one (b:make-thing "one"))
(define-public two (mk "two"))
(list (car (take (list one two) 1)) two)
