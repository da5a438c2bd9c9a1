;; A package module, found on the load path as Guix's are:
;;   guixie -L examples/modules show greeting
;;   guixie -L examples/modules build greeting
(define-module (example greetings)
  #:use-module (guixie packages))

;; trivial-build-system: the builder is a G-expression, run by Guile inside the build.
(define-public greeting
  (package
    (name "greeting")
    (version "1.0")
    (source #f)
    (build-system trivial-build-system)
    (arguments
     (list #:builder
           #~(begin
               (use-modules (guixie build utils))
               (let ((dir (string-append #$output "/share/greeting")))
                 (mkdir-p dir)
                 (call-with-output-file (string-append dir "/text")
                   (lambda (port) (display "Hello from a package module!\n" port)))))))
    (synopsis "A greeting in a file")
    (description "Written by a G-expression builder.")
    (home-page #f)
    (license 'cc0)))
