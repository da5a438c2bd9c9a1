;; A module written as Guix's package modules are: Guix's module names, licences under a
;; prefix, variants made with package/inherit, modify-inputs and
;; substitute-keyword-arguments, inputs found with this-package-input, properties and
;; search paths.
(define-module (guix-style tools)
  #:use-module (guix packages)
  #:use-module (guix gexp)
  #:use-module (guix utils)
  #:use-module (guix build-system trivial)
  #:use-module ((guix licenses) #:prefix license:)
  #:use-module (srfi srfi-26))

(define-public libdata
  (package
    (name "libdata")
    (version "1.0")
    (source #f)
    (build-system trivial-build-system)
    (arguments
     (list #:builder
           #~(begin
               (mkdir #$output)
               (mkdir (string-append #$output "/lib"))
               (call-with-output-file (string-append #$output "/lib/data")
                 (lambda (port) (display #$(string-append name " " version) port))))))
    (native-search-paths
     (list (search-path-specification
            (variable "DATA_PATH")
            (files '("lib")))))
    (properties '((tunable? . #t)))
    (synopsis "Data") (description "Data for tools.")
    (license license:expat)
    (home-page "https://example.org/libdata")))

(define-public tool
  (package
    (name "tool")
    (version "2.0")
    (source #f)
    (build-system trivial-build-system)
    (inputs (list libdata))
    (arguments
     (list #:builder
           #~(begin
               (mkdir #$output)
               (call-with-output-file (string-append #$output "/uses")
                 (lambda (port)
                   (display (string-append #$(this-package-input "libdata") "/lib/data")
                            port))))))
    (synopsis "A tool") (description "Uses libdata.")
    (license (list license:gpl3+ (license:non-copyleft "file://COPYING")))
    (home-page "https://example.org/tool")))

(define-public libdata-2
  (package/inherit libdata
    (version "2.0")))

;; The tool against libdata 2, with another builder result appended.
(define-public tool-next
  (package/inherit tool
    (name "tool-next")
    (inputs (modify-inputs (package-inputs tool)
              (replace "libdata" libdata-2)))
    (arguments
     (substitute-keyword-arguments (package-arguments tool)
       ((#:builder builder)
        #~(begin #$builder
                 (call-with-output-file (string-append #$output "/next")
                   (lambda (port) (display "next" port)))))
       ((#:modules modules '((guixie build utils)))
        modules)))))

;; Only the inputs change: the inherited arguments see the variant as `this-package', so it
;; uses libdata 2. (tool-next above takes tool's arguments as tool saw them, as in Guix.)
(define-public tool-on-2
  (package/inherit tool
    (name "tool-on-2")
    (inputs (modify-inputs (package-inputs tool)
              (replace "libdata" libdata-2)))))
