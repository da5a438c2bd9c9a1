;; Guix's older style: quoted arguments whose phases are code, fields that use earlier
;; fields, and `this-package' in a thunked field.

(define-public greet
  (package
    (name "greet")
    (version "1.2")
    (source (local-file "src" #:recursive? #t))
    (build-system gnu-build-system)
    (arguments
     '(#:tests? #f
       #:make-flags '("V=1")
       #:phases
       (modify-phases %standard-phases
         (delete 'configure)
         (add-before 'build 'patch-message
           (lambda _
             (substitute* "message.txt"
               (("w(or)ld" all inner) (string-append "guixie (" inner ")")))
             #t))
         (replace 'install
           (lambda* (#:key outputs #:allow-other-keys)
             (let ((share (string-append (assoc-ref outputs "out") "/share")))
               (install-file "message.txt" share)
               (install-file "built.txt" share)))))))
    (synopsis (string-append name " " version))
    (description (string-append "The " name " package, version " version "."))
    (license #f)
    (home-page #f)))

(define-public stamped
  (package
    (name "stamped")
    (version "0.3")
    (source #f)
    (build-system trivial-build-system)
    (arguments
     (list #:builder
           #~(begin
               (mkdir #$output)
               (call-with-output-file (string-append #$output "/stamp")
                 (lambda (port)
                   (display #$(string-append (package-name this-package) "@"
                                             (package-version this-package))
                            port))))))
    (synopsis "stamps") (description "x") (license #f) (home-page #f)))

;; The trivial builder in the old style: code, with %output.
(define-public old-trivial
  (package
    (name "old-trivial")
    (version "1")
    (source #f)
    (build-system trivial-build-system)
    (arguments
     `(#:builder (begin
                   (mkdir %output)
                   (call-with-output-file (string-append %output "/from")
                     (lambda (port) (display ,(string-append "made by " name) port))))))
    (synopsis "x") (description "x") (license #f) (home-page #f)))

(list greet stamped old-trivial)
